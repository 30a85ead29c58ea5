"""Train tab: `voiceconv one-click` (prepare -> train -> index) as a background job, and its progress read
from the job's log."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from voiceconv.config import Experiment
from voiceconv.preprocess import input_files
from wavegrad.errors import ConfigError

from .jobs import Job, JobRegistry

UPLOADS = "ui_uploads"  # <logs>/ui_uploads/<exp>/: uploaded recordings, kept so that a re-run resumes on them
KIND = "train"
TAIL_BYTES = 64 * 1024  # how much of the log the progress is read from

SWITCHES = {  # the train tab's checkboxes -> `voiceconv one-click` flags
    "Pitch-shifted copies (renders pitches the voice never reached, for +-12 semitones)": ("--pitch-shifted",),
    "Voice-perturbed content (NANSY)": ("--perturbed", "--perturbed-content"),
    "Per-utterance content normalisation": ("--content-norm",),
}
_ONE_CLICK = re.compile(r"one-click:.*?(\d+)/(\d+) \[[^\]]*?, (\w+)\]")
_TRAIN_BAR = re.compile(r"train epoch (\d+)/(\d+):.*?\|\s*(\d+)/(\d+)")
_LOSS = re.compile(r"mel[_ ]loss[= ]([0-9.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # tqdm moves the cursor between nested bars


def stage_uploads(logs: Path, exp: str, files: list[str]) -> Path:
    """Copy uploaded recordings into `<logs>/ui_uploads/<exp>/` (kept: a resumed run reads them again)."""
    folder = logs / UPLOADS / Experiment.at(exp, logs).name
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copyfile(file, folder / Path(file).name)
    return folder


def one_click_command(logs: Path, exp: str, folder: Path, epochs: int, preset: str, f0_method: str,
                      switches: list[str] | None = None) -> list[str]:
    """`voiceconv one-click` for the experiment, run by this interpreter; `switches` are keys of SWITCHES."""
    flags = [flag for switch in switches or [] for flag in SWITCHES[switch]]
    return [sys.executable, "-m", "voiceconv", "one-click", "--exp", exp, "--input", str(folder),
            "--total-epoch", str(int(epochs)), "--preset", preset, "--f0-method", f0_method, "--logs-dir", str(logs),
            *flags]


def start_training(registry: JobRegistry, logs: Path, exp: str, folder: str | None, files: list[str] | None,
                   epochs: int, preset: str, f0_method: str, switches: list[str] | None = None) -> Job:
    """Check the inputs, then queue one-click for `exp` on the uploaded files (else the server folder);
    an experiment that exists resumes where it stopped."""
    exp = (exp or "").strip()
    Experiment.at(exp, logs)  # refuses names that are not a plain folder name
    if int(epochs) < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    unknown = [s for s in switches or [] if s not in SWITCHES]
    if unknown:
        raise ConfigError(f"unknown training switch {unknown[0]!r}; choose among {', '.join(SWITCHES)}")
    busy = [j for j in registry.jobs(KIND) if j.pending and j.meta.get("exp") == exp]
    if busy:
        raise ConfigError(f"voice {exp!r} is already {busy[0].status} as job {busy[0].id}; cancel it or wait")
    if files:
        source = stage_uploads(logs, exp, files)
    elif folder and folder.strip():
        source = Path(folder.strip()).expanduser()
    else:
        raise ConfigError("no recordings: upload audio files or give a folder of them on this machine")
    if not input_files(source):
        raise ConfigError(f"{source}: no audio files here (wav, flac, mp3, ogg, m4a...); add the speaker's recordings")
    return registry.submit(KIND, exp, one_click_command(logs, exp, source, epochs, preset, f0_method, switches),
                           {"exp": exp, "input": str(source), "epochs": int(epochs)})


def read_tail(path: str | Path, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes of a log as text ('' when missing), tqdm's carriage returns turned into newlines
    and its cursor movements removed."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return _ANSI.sub("", f.read().decode(errors="replace").replace("\r", "\n"))
    except OSError:
        return ""


def progress(log_text: str) -> dict[str, str | int | float]:
    """What one-click's log says last: stage (prepare/train/index) and stages done, epoch/epochs,
    step/steps of the training bar, mel loss, and the last line."""
    found: dict[str, str | int | float] = {}
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for line in lines:
        if m := _ONE_CLICK.search(line):
            found.update(stages_done=int(m[1]), stages=int(m[2]), stage=m[3])
        if m := _TRAIN_BAR.search(line):
            found.update(epoch=int(m[1]), epochs=int(m[2]), step=int(m[3]), steps=int(m[4]))
        if m := _LOSS.search(line):
            found["loss"] = float(m[1])
    if lines:
        found["last"] = lines[-1][:200]
    return found


def describe(job: Job, registry: JobRegistry) -> str:
    """One markdown paragraph: the job's status, queue position, progress and (when done) where the voice is."""
    p = progress(read_tail(job.log))
    parts = [f"**{job.title}**: {job.status}"]
    if job.status == "queued":
        parts.append(registry.queue_note(job))
    if "stage" in p:
        parts.append(f"stage {p['stage']} ({p['stages_done']}/{p['stages']} done)")
    if "epoch" in p:
        parts.append(f"epoch {p['epoch']}/{p['epochs']}, step {p['step']}/{p['steps']}")
    if "loss" in p:
        parts.append(f"mel loss {p['loss']:.4f}")
    if job.status == "finished":
        parts.append(f"the voice {job.title!r} is in the Convert tab")
    elif job.status in ("failed", "interrupted", "cancelled"):
        parts.append("start it again to resume")
    return "; ".join(parts) + (f"\n\n`{p['last']}`" if "last" in p else "")
