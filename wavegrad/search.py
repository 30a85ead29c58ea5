"""Noise-schedule search: the reference's grid, batched scoring over joblib workers, resumable stats,
refinement by coordinate descent in log-beta space, and `wavegrad search`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from .checkpoint import load_model
from .config import DEFAULT_BETAS_RANGE
from .device import cpu_threads, set_cpu_threads
from .errors import ScheduleError, WaveGradError
from .filelist import read_filelist
from .model import WaveGrad
from .schedule import fibonacci_betas, linear_betas, load_schedule, noise_levels, repeat_betas, save_schedule
from .scoring import METRICS, Clips, prepare_clips, score_schedules

MULTIPLIERS = 9  # each grid position takes m * e_i, m = 1..9
BETA_BOUNDS = (1e-9, 0.9)  # refinement keeps betas inside these


def check_grid_args(n_iter: int, betas_range: tuple[float, float]) -> None:
    """Refuse n_iter < 1 and ranges outside 0 < low <= high with 9 * high < 1 (every beta in (0, 1))."""
    if n_iter < 1:
        raise ScheduleError(f"n_iter must be >= 1, got {n_iter}")
    low, high = betas_range
    if not (0 < low <= high and MULTIPLIERS * high < 1):
        raise ScheduleError(f"betas range {tuple(betas_range)} is invalid: need 0 < low <= high and "
                            f"{MULTIPLIERS} * high < 1 so every candidate beta lies in (0, 1), e.g. "
                            f"{DEFAULT_BETAS_RANGE[0]:g} {DEFAULT_BETAS_RANGE[1]:g}")


def grid_exponents(n_iter: int, betas_range: tuple[float, float]) -> torch.Tensor:
    """The n_iter exponents e_i, evenly spaced in log10 from low to high: [n_iter] float64."""
    check_grid_args(n_iter, betas_range)
    return torch.logspace(math.log10(betas_range[0]), math.log10(betas_range[1]), n_iter, dtype=torch.float64)


def generate_betas_grid(n_iter: int, betas_range: tuple[float, float] = DEFAULT_BETAS_RANGE,
                        max_size: int | None = None) -> torch.Tensor:
    """Candidate schedules [S, n_iter] float64: beta_i = m_i * e_i with m_i in 1..9.

    Candidates are ordered as base-9 numbers with position 0 most significant (the reference's
    order); S = 9 ** n_iter, or `max_size` evenly spaced ones (index k * 9**n // max_size). A stride
    9**n / max_size that is a multiple of 9 (e.g. max_size 729 for n_iter 6) leaves the last
    multipliers at 1, so such sizes warn.
    """
    exponents = grid_exponents(n_iter, betas_range)
    total = MULTIPLIERS ** n_iter
    size = total if max_size is None else min(total, max_size)
    if size < 1:
        raise ScheduleError(f"max_size must be >= 1, got {max_size}")
    if total % size == 0 and (total // size) % MULTIPLIERS == 0:
        warnings.warn(f"a grid of {size} of the 9**{n_iter} candidates fixes the last multipliers at 1; "
                      "choose a size whose stride is not a multiple of 9 (e.g. 500 instead of 729)", stacklevel=2)
    index = np.array([k * total // size for k in range(size)], dtype=object)
    digits = np.stack([(index // MULTIPLIERS ** (n_iter - 1 - j)) % MULTIPLIERS for j in range(n_iter)], axis=1)
    return (torch.from_numpy(digits.astype(np.int64)) + 1).double() * exponents


def _key(betas: np.ndarray) -> tuple[float, ...]:
    return tuple(float(f"{b:.9g}") for b in betas)


def connect_backend(backend: str, jobs: int) -> None:
    """Make a cluster joblib backend usable. "dask": connect to $DASK_SCHEDULER_ADDRESS, or start a local
    cluster of `jobs` one-thread worker processes; "ray": register Ray's backend (Ray joins $RAY_ADDRESS
    or starts locally). Other backends (loky, threading, multiprocessing) need nothing."""
    try:
        if backend == "dask":
            from distributed import Client, get_client

            try:
                get_client()
            except ValueError:  # no client yet in this process
                if os.environ.get("DASK_SCHEDULER_ADDRESS"):
                    Client(os.environ["DASK_SCHEDULER_ADDRESS"])
                else:
                    Client(n_workers=jobs, threads_per_worker=1)
        elif backend == "ray":
            from ray.util.joblib import register_ray

            register_ray()
    except ImportError as exc:
        package = "dask[distributed]" if backend == "dask" else "ray"
        raise WaveGradError(f"--backend {backend} needs {package}: pip install '{package}' ({exc})") from exc


def read_stats(path: Path) -> tuple[dict | None, list[tuple[list[float], float]]]:
    """A search's stats file: its header and the (betas, score) of every candidate scored so far, in the order
    written; (None, []) when there is no file yet. A torn line (a kill mid-write) is skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None, []
    if not lines:
        return None, []
    entries = []
    for line in lines[1:]:
        try:
            entry = json.loads(line)
            entries.append((entry["betas"], float(entry["score"])))
        except (ValueError, KeyError, TypeError):
            continue
    return json.loads(lines[0]).get("header"), entries


class Evaluator:
    """Scores candidates once each: results are cached, appended to a JSON-lines stats file as they
    arrive (so an interrupted search resumes), and computed in batches spread over joblib workers."""

    def __init__(self, model: WaveGrad, clips: Clips, metric: str = "mel", jobs: int = 1, backend: str = "loky",
                 batch_size: int = 4, stats_path: Path | None = None, header: dict | None = None,
                 verbose: bool = True):
        self.model, self.clips, self.metric = model, clips, metric
        self.jobs, self.batch_size, self.verbose = jobs, batch_size, verbose
        self.threads = None if backend == "threading" else max(1, cpu_threads() // jobs)
        connect_backend(backend, jobs)
        with parallel_config(backend=backend, n_jobs=jobs):  # (which also registers joblib's dask backend)
            try:  # results as they arrive
                self.parallel, self.round_size = Parallel(return_as="generator_unordered"), None
            except ValueError:  # backends without that (multiprocessing, ray) get rounds of `jobs` chunks
                self.parallel, self.round_size = Parallel(), jobs
        self.cache: dict[tuple[float, ...], float] = {}
        self.evaluated = 0  # candidates scored by this process (not read back from the stats file)
        self.cpu_seconds = 0.0  # CPU time the workers spent scoring them
        self.stats_path = stats_path
        self.header = {"n_iter": clips.noise.shape[0], "metric": metric, "clips": clips.paths,
                       "samples": clips.audio.shape[-1], **(header or {})}
        if stats_path is not None:
            self._resume(stats_path)

    def _resume(self, path: Path) -> None:
        """Read back earlier results; a half-written last line (a kill mid-write) is ignored."""
        header, entries = read_stats(path)
        if header is not None:
            if header != self.header:
                raise WaveGradError(f"{path}: stats of a different search ({json.dumps(header)[:200]}); "
                                    "delete the file or choose another --out")
            for betas, score in entries:
                self.cache[_key(np.array(betas))] = score
            with open(path, "w") as f:  # rewrite without any torn line
                f.write("\n".join([json.dumps({"header": header})] + [json.dumps({"betas": list(k), "score": s})
                                                                       for k, s in self.cache.items()]) + "\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"header": self.header}) + "\n")

    def __call__(self, betas: torch.Tensor, desc: str = "search") -> np.ndarray:
        """Scores [K] of candidates [K, n_iter], evaluating only those not already known."""
        rows = betas.double().numpy()
        todo = list(dict.fromkeys(k for k in map(_key, rows) if k not in self.cache))
        size = max(1, min(self.batch_size, math.ceil(len(todo) / self.jobs)))
        chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
        per_round = self.round_size or max(1, len(chunks))
        rounds = [chunks[i:i + per_round] for i in range(0, len(chunks), per_round)]
        best = min(self.cache.values(), default=math.inf)
        with tqdm(total=len(todo), desc=desc, unit="cand", disable=not self.verbose or not todo) as bar:
            results = (result for round_ in rounds for result in self.parallel(
                delayed(_score_chunk)(self.model, self.clips, chunk, self.metric, self.threads) for chunk in round_))
            for chunk, scores, cpu_seconds in results:
                lines = []
                for key, score in zip(chunk, scores, strict=True):
                    self.cache[key] = float(score)
                    lines.append(json.dumps({"betas": list(key), "score": float(score)}))
                if self.stats_path is not None:
                    with open(self.stats_path, "a") as f:
                        f.write("\n".join(lines) + "\n")
                self.evaluated += len(chunk)
                self.cpu_seconds += cpu_seconds
                best = min(best, float(min(scores)))
                bar.set_postfix(best=f"{best:.4f}")
                bar.update(len(chunk))
        return np.array([self.cache[k] for k in map(_key, rows)])


def _score_chunk(model: WaveGrad, clips: Clips, chunk: list[tuple[float, ...]], metric: str,
                 threads: int | None) -> tuple[list[tuple[float, ...]], np.ndarray, float]:
    """What a joblib worker runs: (chunk, scores, CPU seconds); the CPU time is the worker process's (with
    threads, the whole process's). `threads` (None: unchanged) holds for this call only, also when joblib
    runs it in the calling process (one job)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        start = time.process_time()
        scores = score_schedules(model, clips, torch.tensor(chunk, dtype=torch.float64), metric)
        return chunk, scores, time.process_time() - start
    finally:
        torch.set_num_threads(previous)


def _within_budget(candidates: torch.Tensor, seen: set[tuple[float, ...]], room: int) -> torch.Tensor:
    """Mask [K] of candidates [K, n] to score: those in `seen`, and the first `room` others (added to `seen`)."""
    keep = []
    for key in map(_key, candidates.numpy()):
        if key not in seen and room > 0:
            seen.add(key)
            room -= 1
        keep.append(key in seen)
    return torch.tensor(keep, dtype=torch.bool)


def refine(evaluate: Evaluator, betas: torch.Tensor, score: float, budget: int, step: float = 0.5,
           min_step: float = 0.01, seen: set[tuple[float, ...]] | None = None) -> tuple[torch.Tensor, float, int]:
    """Coordinate descent in log10-beta space: score all 2 * n_iter moves of +-step at once, take the
    best one that improves, else halve the step; stop below `min_step` or after `budget` candidates not in
    `seen` (the search's earlier candidates, kept up to date; moving back to one is free).
    Returns (betas, score, candidates used)."""
    betas = betas.double()
    x, used, seen = betas.log10(), 0, set() if seen is None else seen
    lo, hi = (math.log10(b) for b in BETA_BOUNDS)
    while used < budget and step >= min_step:
        moves = torch.cat([torch.eye(len(x)), -torch.eye(len(x))]).double() * step
        proposals = (x + moves).clamp(lo, hi)  # distinct, since each move changes one coordinate
        proposals = proposals[(proposals != x).any(dim=1)]
        before = len(seen)
        proposals = proposals[_within_budget(10 ** proposals, seen, budget - used)]
        used += len(seen) - before
        if len(proposals) == 0:
            step /= 2
            continue
        scores = evaluate(10 ** proposals, desc=f"refine step {step:.3g}")
        best = int(np.argmin(scores))
        if scores[best] < score:
            x, betas, score = proposals[best], 10 ** proposals[best], float(scores[best])
        else:
            step /= 2
    return betas, score, used


@dataclasses.dataclass
class SearchResult:
    """The best schedule [n_iter] and its score, the best starting point, every score the evaluator knows,
    how many candidates this search considered (`starts` + `refined`) and how many it newly scored."""

    betas: torch.Tensor
    score: float
    start_betas: torch.Tensor
    start_score: float
    scores: dict[tuple[float, ...], float]
    evaluated: int
    starts: int
    refined: int

    @property
    def candidates(self) -> int:
        return self.starts + self.refined


def search(evaluate: Evaluator, n_iter: int, betas_range: tuple[float, float] = DEFAULT_BETAS_RANGE,
           grid_size: int | None = 500, refine_budget: int = 200, init: str = "grid",
           extra_starts: tuple[torch.Tensor, ...] = ()) -> SearchResult:
    """Score the start candidates, then refine the best within `refine_budget` more distinct candidates.
    Starts: `grid_size` candidates in all, the linear schedule of the same length included (None: the
    whole grid + linear); or with init "fibonacci", the Fibonacci initialisation and the linear schedule.
    `extra_starts`, schedules [n_iter] such as one searched for an earlier checkpoint, join the starts."""
    check_grid_args(n_iter, betas_range)
    for betas in extra_starts:
        if betas.shape != (n_iter,):
            raise ScheduleError(f"a start schedule has {len(betas)} betas; this search is for {n_iter}")
    linear = linear_betas(n_iter, betas_range)[None]
    if init == "grid":
        if grid_size is not None and grid_size < 1:
            raise ScheduleError(f"grid size must be >= 1 (the linear schedule), got {grid_size}")
        size = None if grid_size is None else grid_size - 1  # the linear schedule is one of the grid_size
        starts = torch.cat([generate_betas_grid(n_iter, betas_range, size), linear]) if size != 0 else linear
    elif init == "fibonacci":
        starts = torch.cat([fibonacci_betas(n_iter=n_iter).clamp(max=BETA_BOUNDS[1])[None], linear])
    else:
        raise WaveGradError(f"unknown init {init!r}; use 'grid' or 'fibonacci'")
    starts = torch.cat([starts.double(), *(betas.double().clamp(*BETA_BOUNDS)[None] for betas in extra_starts)])
    scores = evaluate(starts, desc="grid" if init == "grid" else "start")
    best = int(np.argmin(scores))
    seen = set(map(_key, starts.double().numpy()))
    n_starts = len(seen)
    betas, score, used = refine(evaluate, starts[best], float(scores[best]), refine_budget, seen=seen)
    return SearchResult(betas, score, starts[best], float(scores[best]), dict(evaluate.cache), evaluate.evaluated,
                        n_starts, used)


def plot_search(result: SearchResult, path: Path) -> None:
    """Write a PNG: the start and best schedules' betas and noise levels, and the distribution of scores."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4), layout="constrained")
    axes = figure.subplots(1, 3)
    steps = np.arange(1, len(result.betas) + 1)
    for betas, label in ((result.start_betas, f"start {result.start_score:.4f}"),
                         (result.betas, f"best {result.score:.4f}")):
        axes[0].semilogy(steps, betas.numpy(), "o-", label=label)
        axes[1].plot(steps, noise_levels(betas).numpy(), "o-", label=label)
    axes[0].set(title="betas", xlabel="step")
    axes[1].set(title="noise level sqrt(alpha_bar)", xlabel="step")
    axes[2].hist(list(result.scores.values()), bins=50)
    axes[2].set(title=f"scores of {len(result.scores)} candidates", xlabel="score (lower is better)")
    for ax in axes[:2]:
        ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="config file (needed for reference-format checkpoints)")
    parser.add_argument("-ch", "--checkpoint", required=True, help="trained checkpoint_<step>.pt")
    parser.add_argument("-n", "--n-iter", type=int, required=True, help="schedule length to search")
    parser.add_argument("--clips", required=True, help="filelist of held-out audio to score on")
    parser.add_argument("--out", type=Path, required=True, help="best schedule, e.g. schedules/6iters.pt; "
                        "<out>.stats.jsonl (resumable) and <out>.png are written beside it")
    parser.add_argument("--betas-range", type=float, nargs=2, default=DEFAULT_BETAS_RANGE, metavar=("LOW", "HIGH"))
    parser.add_argument("--grid-size", type=int, default=500,
                        help="start candidates: an even subsample of the grid plus the linear schedule, in all")
    parser.add_argument("--budget", type=int, default=200,
                        help="refinement candidates after the start (distinct from each other and from the start)")
    parser.add_argument("--init", choices=["grid", "fibonacci"], default="grid")
    parser.add_argument("--start", nargs="*", default=[], metavar="SCHEDULE",
                        help="schedule files (or shipped names, e.g. 6iters) added to the starts: re-search "
                             "from the schedule of an earlier checkpoint")
    parser.add_argument("--metric", choices=METRICS, default="mel",
                        help="score: log-mel L1, MR-STFT, or minus PESQ-wb or STOI (lower is better)")
    parser.add_argument("--n-clips", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each scoring clip")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared noise")
    parser.add_argument("--jobs", type=int, default=1, help="joblib workers")
    parser.add_argument("--backend", default="loky",
                        help="joblib backend: loky (processes), threading, dask ($DASK_SCHEDULER_ADDRESS or a "
                             "local cluster), ray ($RAY_ADDRESS or local)")
    parser.add_argument("--batch-size", type=int, default=4, help="candidates per batch in a worker")
    parser.add_argument("--repeat", type=int, nargs="*", default=[],
                        help="also write <n * r>iters.pt, each beta repeated r times (as the reference)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when present)")
    parser.add_argument("-v", "--verbose", choices=["yes", "no"], default="yes")


def main(args: argparse.Namespace) -> int:
    """Search, then write the schedule, its repeats, the stats and the plot."""
    set_cpu_threads()
    extra_starts = tuple(load_schedule(path) for path in args.start)
    model = load_model(args.checkpoint, args.config, args.device)
    clips = prepare_clips(read_filelist(args.clips), model.config.data_config, args.n_iter, args.seconds,
                          args.n_clips, args.seed)
    evaluate = Evaluator(model, clips, args.metric, args.jobs, args.backend, args.batch_size,
                         args.out.with_suffix(".stats.jsonl"), {"checkpoint": str(args.checkpoint), "seed": args.seed},
                         args.verbose == "yes")
    result = search(evaluate, args.n_iter, tuple(args.betas_range), args.grid_size, args.budget, args.init,
                    extra_starts)
    save_schedule(result.betas, args.out)
    for times in args.repeat:
        save_schedule(repeat_betas(result.betas, times), args.out.with_name(f"{args.n_iter * times}iters.pt"))
    plot_search(result, args.out.with_suffix(".png"))
    print(f"start {result.start_score:.4f} -> best {result.score:.4f} ({args.metric}) after {result.candidates} "
          f"candidates ({result.starts} start + {result.refined} refinement; {result.evaluated} scored now, "
          f"the rest read back from the stats); betas {[float(f'{b:.3g}') for b in result.betas]} -> {args.out}")
    return 0
