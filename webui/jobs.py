"""Background jobs that outlive the page and the app: a registry of JSON files under `<logs>/ui_jobs/`, and
the runner process (`python -m webui.jobs JOB.json`) that waits its turn, runs the command and records how
it ended. Jobs run one at a time, oldest first; each runner is its own session, so closing the tab or
restarting the app leaves it running, and a restarted app reads every job back from the registry."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FOLDER = "ui_jobs"
PENDING = ("queued", "running")
POLL_S = 0.5  # how often a waiting runner looks at the queue


@dataclasses.dataclass
class Job:
    """One registry entry. pid: the runner (leader of the process group that holds the command);
    times are Unix seconds; status: queued, running, finished, failed, cancelled or interrupted (the
    runner vanished, e.g. the machine rebooted)."""

    id: str
    kind: str
    title: str
    command: list[str]
    log: str
    status: str = "queued"
    pid: int | None = None
    created: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    returncode: int | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.status in PENDING


def alive(pid: int | None) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_job(path: Path) -> Job:
    return Job(**json.loads(path.read_text()))


def write_job(path: Path, job: Job) -> None:
    """Write the entry atomically (temporary file, then rename); this module does not import wavegrad, so
    that a runner, which lives as long as its job, does not load torch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(job), indent=1))
    tmp.replace(path)


class JobRegistry:
    """The jobs under `<logs>/ui_jobs/`: `<id>.json` (the Job) and `<id>.log` (the command's stdout+stderr)."""

    def __init__(self, logs: Path):
        self.root = Path(logs) / FOLDER
        self._runners: dict[str, subprocess.Popen] = {}  # runners this process started, reaped when polled

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def submit(self, kind: str, title: str, command: list[str], meta: dict[str, Any] | None = None) -> Job:
        """Register a job and start its runner, which waits behind older pending jobs."""
        now = time.time_ns()  # ids sort by submission time: the queue's order
        stamp = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now / 1e9))}.{now % 10**9:09d}"
        job_id = f"{stamp}-{kind}-{secrets.token_hex(2)}"
        job = Job(job_id, kind, title, [str(c) for c in command], str(self.root / f"{job_id}.log"),
                  meta=meta or {})
        write_job(self.path(job_id), job)
        with open(job.log, "ab") as log:
            runner = subprocess.Popen([sys.executable, "-m", "webui.jobs", str(self.path(job_id))],
                                      start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._runners[job_id] = runner
        job.pid = runner.pid
        write_job(self.path(job_id), job)  # before the runner has imported anything, let alone written
        return job

    def get(self, job_id: str) -> Job:
        """The job as recorded, `interrupted` when it is pending but its runner is gone."""
        for runner in self._runners.values():
            runner.poll()  # reap finished runners, so that `alive` sees them gone
        path = self.path(job_id)
        try:
            job = read_job(path)
        except (OSError, ValueError, TypeError) as exc:
            from wavegrad.errors import WaveGradError  # here: the runner must not import torch

            raise WaveGradError(f"{path}: no such job or unreadable ({exc.__class__.__name__})") from exc
        if job.pending and job.pid is not None and not alive(job.pid):
            job.status = "interrupted"
        return job

    def jobs(self, kind: str | None = None) -> list[Job]:
        """All jobs (of `kind`), newest first; unreadable entries are skipped."""
        found = []
        for path in sorted(self.root.glob("*.json"), reverse=True) if self.root.is_dir() else []:
            try:
                job = self.get(path.stem)
            except Exception:  # a half-written or foreign entry: not a job
                continue
            if kind is None or job.kind == kind:
                found.append(job)
        return found

    def ahead(self, job: Job) -> list[Job]:
        """Pending jobs older than `job` (the queue in front of it)."""
        return [j for j in self.jobs() if j.pending and j.id < job.id]

    def queue_note(self, job: Job) -> str:
        """What a queued job waits for, in words."""
        ahead = self.ahead(job)
        return f"waiting behind {len(ahead)} job(s) in the queue ({ahead[-1].title} first)" if ahead else "starting"

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job (SIGTERM to its process group; its runner records `cancelled`)."""
        job = self.get(job_id)
        if job.pending and job.pid is not None:
            try:
                os.killpg(job.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return job

    def wait(self, job_id: str, timeout: float) -> Job:
        """Poll until the job is no longer pending or `timeout` seconds pass; returns its last state."""
        deadline = time.monotonic() + timeout
        while (job := self.get(job_id)).pending and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return job


class Cancelled(Exception):
    """SIGTERM reached the runner."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Cancelled


def run(path: Path) -> int:
    """The runner: wait until no older job is pending and the queue lock is free, run the command with its
    output appended to the job's log, and record running/finished/failed/cancelled with times and status."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    job = read_job(path)
    registry = JobRegistry(path.parent.parent)
    job.pid = os.getpid()
    child = None
    try:
        with open(registry.root / "queue.lock", "a") as lock:
            while True:
                if not registry.ahead(job):
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        pass
                time.sleep(POLL_S)
            job.status, job.started = "running", time.time()
            write_job(path, job)
            with open(job.log, "ab") as log:
                child = subprocess.Popen(job.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
                job.returncode = child.wait()
            job.status = "finished" if job.returncode == 0 else "failed"
    except Cancelled:
        if child is not None:
            child.terminate()  # (already done when the signal went to the whole process group)
            try:
                job.returncode = child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                job.returncode = child.wait()
        job.status = "cancelled"
    job.finished = time.time()
    write_job(path, job)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
