"""What the tabs offer: trained voices, vocoders and noise schedules (shipped and the user's), and the
remembered settings of each voice. Every path lives under the run root (`logs/`) or the shipped assets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from voiceconv.config import CONFIG_NAME, DEFAULT_SCHEDULE, DEFAULT_VOCODER, Experiment
from voiceconv.convert import ConvertOptions
from voiceconv.index import experiment_index
from wavegrad.assets import shipped
from wavegrad.atomic import atomic_write
from wavegrad.checkpoint import newest_checkpoint
from wavegrad.errors import ConfigError, ScheduleError
from wavegrad.schedule import linear_betas, load_schedule

USER_SCHEDULES = "schedules"  # <logs>/schedules: schedules saved from the UI (the installed package is read-only)
SETTINGS_NAME = "ui_settings.json"  # <logs>/<exp>/ui_settings.json: the Convert tab's last settings for a voice
LINEAR = "linear"  # schedule choice: linear betas over the training range, with a chosen number of iterations

Choice = tuple[str, str]  # (label shown, value passed back)


def user_schedules_dir(logs: Path) -> Path:
    """Where the UI saves schedules: `<logs>/schedules/` (next to the shipped ones in every list)."""
    return logs / USER_SCHEDULES


def voices(logs: Path) -> list[str]:
    """Experiment names under `logs` that hold an exported model `<exp>.pt` or an experiment.yaml (a voice
    still training, whose selection says so), sorted."""
    if not logs.is_dir():
        return []
    return sorted(d.name for d in logs.iterdir()
                  if d.is_dir() and ((d / f"{d.name}.pt").is_file() or (d / CONFIG_NAME).is_file()))


def voice_model(logs: Path, name: str) -> Path:
    """The exported model `<logs>/<exp>/<exp>.pt`, or a ConfigError saying how to make it."""
    exp = Experiment.at(name, logs)
    model = exp.root / f"{name}.pt"
    if not model.is_file():
        raise ConfigError(f"{exp.root}: no trained model {model.name} in this voice folder; train it in the "
                          f"'Train a voice' tab (voiceconv one-click --exp {name})")
    return model


def voice_index(logs: Path, name: str) -> Path | None:
    """The newest retrieval index of a voice, or None."""
    return experiment_index(logs / name, name)


def vocoders(logs: Path) -> list[Choice]:
    """Shipped vocoders by name, then the newest `checkpoint_<step>.pt` of each training run under `logs`."""
    choices = [(f"{name} (shipped)", name) for name in shipped("vocoder")]
    if logs.is_dir():
        for run in sorted(d for d in logs.iterdir() if d.is_dir()):
            newest = newest_checkpoint(run, "checkpoint")
            if newest is not None:
                choices.append((f"{run.name}/{newest.name}", str(newest)))
    return choices


def iterations(spec: str) -> int | None:
    """Length of a schedule file or shipped name, None when unreadable."""
    try:
        return len(load_schedule(spec))
    except ScheduleError:
        return None


def schedules(logs: Path, with_linear: bool = False) -> list[Choice]:
    """Shipped schedules (by name), the user's `<logs>/schedules/*.pt|.npy`, and optionally "linear";
    each label shows its iterations. The shipped default comes first."""
    names = sorted(shipped("schedule"), key=lambda n: (n != DEFAULT_SCHEDULE, iterations(n) or 0))
    choices = [(f"{n} (shipped, {iterations(n)} iterations)", n) for n in names]
    folder = user_schedules_dir(logs)
    if folder.is_dir():
        for path in sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".npy")):
            n = iterations(str(path))
            if n is not None:
                choices.append((f"{path.stem} (yours, {n} iterations)", str(path)))
    if with_linear:
        choices.append(("linear (iterations below)", LINEAR))
    return choices


def schedule_betas(spec: str, linear_iterations: int = 6) -> torch.Tensor:
    """Betas [n_iter] float64 of a schedule choice: a shipped name, a file, or LINEAR."""
    if spec == LINEAR:
        return linear_betas(int(linear_iterations))
    return load_schedule(spec)


DEFAULT_SETTINGS: dict[str, Any] = {"f0_up_key": 0.0, "f0_method": "harvest", "index_rate": ConvertOptions.index_rate,
                                    "protect": ConvertOptions.protect, "rms_mix_rate": ConvertOptions.rms_mix_rate,
                                    "vocoder": DEFAULT_VOCODER, "schedule": DEFAULT_SCHEDULE}


def load_settings(logs: Path, name: str) -> dict[str, Any]:
    """The voice's remembered Convert settings over DEFAULT_SETTINGS (defaults when none or unreadable)."""
    path = logs / name / SETTINGS_NAME
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    return {**DEFAULT_SETTINGS, **{k: v for k, v in saved.items() if k in DEFAULT_SETTINGS}}


def save_settings(logs: Path, name: str, settings: dict[str, Any]) -> Path:
    """Write the voice's Convert settings to `<logs>/<exp>/ui_settings.json` atomically; returns the path."""
    path = Experiment.at(name, logs).root / SETTINGS_NAME
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({k: settings[k] for k in DEFAULT_SETTINGS if k in settings}, indent=1))
    return path
