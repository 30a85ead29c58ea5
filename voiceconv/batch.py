"""Batch jobs of the preparation steps: N processes, skip what exists, atomic writes, bad files reported."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from wavegrad.atomic import atomic_write
from wavegrad.device import cpu_threads

Worker = Callable[["Job"], None]


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work: `name` identifies it in reports; it is skipped when all `outputs` exist."""

    name: str
    outputs: tuple[Path, ...]
    data: Any = None


@dataclasses.dataclass
class BatchReport:
    """What a step did: counts, and (name, reason) for each file it could not process."""

    step: str
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.step}: {self.done} done, {self.skipped} already there, {len(self.failed)} failed"]
        lines += [f"  skipped bad file {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write `array` to `path` atomically (temporary file in the same folder, then rename)."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # np.save on a path would append ".npy"
        np.save(f, array)


def _reason(exc: BaseException) -> str:
    return str(exc) if str(exc) else exc.__class__.__name__


class _Inline:
    """Stands in for the results queue when the jobs run in this process."""

    def __init__(self, record: Callable[[str, str | None], None]):
        self.record = record

    def put(self, item: tuple[str, str | None]) -> None:
        self.record(*item)


def _run_chunk(make_worker: Callable[[], Worker], jobs: Sequence[Job], results: Any, threads: int | None) -> None:
    """Process entry point: build the worker once (models load here), run its jobs, report each one.
    `threads`: torch threads of a worker process (None in-line: the caller's setting stands)."""
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        work = make_worker()
    except Exception as exc:  # a worker that cannot start fails all its jobs, with the reason
        for job in jobs:
            results.put((job.name, _reason(exc)))
        return
    for job in jobs:
        try:
            work(job)
            results.put((job.name, None))
        except Exception as exc:  # a bad file is reported and skipped, never fatal to the batch
            results.put((job.name, _reason(exc)))


def run_batch(step: str, jobs: Sequence[Job], make_worker: Callable[[], Worker], processes: int = 1,
              progress: bool = True) -> BatchReport:
    """Run `make_worker()(job)` for every job whose outputs are missing, over `processes` processes.

    `make_worker` must be picklable (a module-level function or class, or a functools.partial of one):
    each process calls it once. Jobs are dealt round-robin, as RVC does; one process runs in-line.
    """
    report = BatchReport(step)
    todo = [job for job in jobs if not (job.outputs and all(p.exists() for p in job.outputs))]
    report.skipped = len(jobs) - len(todo)
    if not todo:
        return report
    processes = max(1, min(processes, len(todo)))
    threads = max(1, cpu_threads() // processes)
    bar = tqdm(total=len(todo), desc=step, unit="file", disable=not progress, file=sys.stderr)
    pending = {job.name for job in todo}

    def record(name: str, error: str | None) -> None:
        pending.discard(name)
        if error is None:
            report.done += 1
        else:
            report.failed.append((name, error))
        bar.update(1)

    if processes == 1:
        _run_chunk(make_worker, todo, _Inline(record), None)
    else:
        ctx = mp.get_context("spawn")  # no fork: torch and ctranslate2 thread pools do not survive it
        results = ctx.Queue()
        workers = [ctx.Process(target=_run_chunk, args=(make_worker, todo[i::processes], results, threads),
                               daemon=True)  # an interrupted step takes its workers with it
                   for i in range(processes)]
        for w in workers:
            w.start()
        while pending:
            try:
                record(*results.get(timeout=1.0))
            except queue.Empty:
                if not any(w.is_alive() for w in workers):
                    break
        for w in workers:
            w.join()
        for name in sorted(pending):  # a process that died (out of memory, killed) leaves its jobs here
            report.failed.append((name, "worker process died before finishing it; run the step again"))
    bar.close()
    report.failed.sort()
    return report
