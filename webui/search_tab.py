"""Schedule-search tab: `wavegrad search` as a background job; its live state read from the stats file it
appends to (`<out>.stats.jsonl`), drawn with `wavegrad.search.plot_search`, and saving the best schedule into
the user schedules folder `<logs>/schedules/` (the installed package's folder is never written)."""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from pathlib import Path

import torch

from wavegrad.errors import ScheduleError, WaveGradError
from wavegrad.schedule import save_schedule
from wavegrad.search import SearchResult, check_grid_args, plot_search, read_stats

from .catalog import user_schedules_dir
from .jobs import Job, JobRegistry

KIND = "search"
WORK = "ui_search"  # <logs>/ui_search/<checkpoint>_<n>iters/: the search's output, stats (resumable) and plot


def search_out(logs: Path, checkpoint: str, n_iter: int) -> Path:
    """`<logs>/ui_search/<checkpoint slug>_<n>iters/<n>iters.pt`: the same search resumes from its stats."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(checkpoint).removesuffix(".pt")).strip("_.")[-60:]
    return logs / WORK / f"{slug}_{n_iter}iters" / f"{n_iter}iters.pt"


def stats_path(out: Path) -> Path:
    """The stats file `wavegrad search` appends to for `--out out`."""
    return out.with_suffix(".stats.jsonl")


def start_search(registry: JobRegistry, logs: Path, checkpoint: str, n_iter: int, grid_size: int, budget: int,
                 clips: str, n_clips: int = 2, seconds: float = 1.0) -> Job:
    """Check the arguments, then queue `wavegrad search` writing into `search_out(...)`."""
    if not checkpoint:
        raise WaveGradError("no checkpoint chosen: pick a vocoder checkpoint")
    n_iter, grid_size, budget = int(n_iter), int(grid_size), int(budget)
    check_grid_args(n_iter, (1e-6, 0.01))
    if grid_size < 1 or budget < 0:
        raise ScheduleError(f"grid size must be >= 1 and budget >= 0, got {grid_size} and {budget}")
    if not clips or not Path(clips).is_file():
        raise WaveGradError(f"{clips or '(empty)'}: clip list not found; give a text file of held-out audio "
                            "paths, one per line (e.g. filelists/test.txt)")
    out = search_out(logs, checkpoint, n_iter)
    busy = [j for j in registry.jobs(KIND) if j.pending and j.meta.get("out") == str(out)]
    if busy:
        raise WaveGradError(f"this search is already {busy[0].status} as job {busy[0].id}; cancel it or wait")
    command = [sys.executable, "-m", "wavegrad", "search", "-ch", checkpoint, "-n", str(n_iter), "--clips", clips,
               "--grid-size", str(grid_size), "--budget", str(budget), "--n-clips", str(int(n_clips)),
               "--seconds", str(float(seconds)), "--out", str(out)]
    return registry.submit(KIND, f"{Path(checkpoint).stem} {n_iter} iterations", command,
                           {"out": str(out), "grid_size": grid_size, "budget": budget,
                            "resumed_from": len(read_stats(stats_path(out))[1])})


@dataclasses.dataclass
class SearchState:
    """A search as its stats file shows it: candidates scored, of them this job's, candidates per second
    (this job's, over its running time), the best score and schedule [n_iter] so far (None before any)."""

    scored: int
    new: int
    rate: float
    best_score: float | None
    best: torch.Tensor | None


def search_state(job: Job) -> SearchState:
    """Live figures of a search job from its stats file."""
    entries = read_stats(stats_path(Path(job.meta["out"])))[1]
    new = max(0, len(entries) - job.meta.get("resumed_from", 0))
    running = ((job.finished or time.time()) - job.started) if job.started else 0.0
    if not entries:
        return SearchState(0, 0, 0.0, None, None)
    betas, score = min(entries, key=lambda e: e[1])
    return SearchState(len(entries), new, new / running if running > 0 else 0.0, score,
                       torch.tensor(betas, dtype=torch.float64))


def plot_progress(job: Job, path: Path) -> Path | None:
    """Draw the search so far with `plot_search` into `path` (start = best of the first grid-size candidates,
    the order the search scores them in); None before any candidate is scored."""
    entries = read_stats(stats_path(Path(job.meta["out"])))[1]
    if not entries:
        return None
    start_betas, start_score = min(entries[:job.meta["grid_size"]], key=lambda e: e[1])
    betas, score = min(entries, key=lambda e: e[1])
    grid = min(len(entries), job.meta["grid_size"])
    as_tensor = (lambda b: torch.tensor(b, dtype=torch.float64))
    result = SearchResult(as_tensor(betas), score, as_tensor(start_betas), start_score,
                          {tuple(b): s for b, s in entries}, len(entries), grid, len(entries) - grid)
    plot_search(result, path)
    return path


def save_best(logs: Path, job: Job, name: str) -> Path:
    """Save the job's best schedule so far as `<logs>/schedules/<name>.pt`; returns the file."""
    name = (name or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ScheduleError(f"schedule name {name!r} must be a plain file name such as 6iters_mine")
    state = search_state(job)
    if state.best is None:
        raise ScheduleError(f"{stats_path(Path(job.meta['out']))}: no candidate scored yet; wait for the search")
    path = user_schedules_dir(logs) / f"{name.removesuffix('.pt')}.pt"
    save_schedule(state.best, path)
    return path
