"""Vocoder tab: render a clip's mel (or a mel file) with a noise schedule, next to the original."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from wavegrad.audio import load_audio, mel_spectrogram, pad_to_hop, save_audio
from wavegrad.checkpoint import load_model
from wavegrad.errors import AudioError
from wavegrad.inference import copy_synthesis, load_mel, synthesize
from wavegrad.metrics import mel_l1
from wavegrad.model import WaveGrad

from .catalog import LINEAR, schedule_betas
from .pictures import check_audible, mel_picture

MEL_SUFFIXES = (".npy", ".pt")
OUTPUTS = "ui_outputs/vocoder"  # <logs>/ui_outputs/vocoder/: every rendering is kept


@dataclasses.dataclass
class Original:
    """The input: its log10 mel [n_mels, frames] at the vocoder's config, and its audio [frames * hop]
    (None for a mel file)."""

    mel: torch.Tensor
    audio: torch.Tensor | None


@dataclasses.dataclass
class Rendering:
    """One schedule's rendering: the wav written, audio [frames * hop], its mel [n_mels, frames], the
    log-mel L1 against the original's mel, the real-time factor (seconds per second of audio) and iterations."""

    wav: Path
    audio: torch.Tensor
    mel: torch.Tensor
    mel_l1: float
    rtf: float
    iterations: int


_models: dict[str, WaveGrad] = {}


def vocoder(spec: str) -> WaveGrad:
    """`wavegrad.load_model(spec)` on the default device, the last one kept in memory."""
    if spec not in _models:
        _models.clear()
        _models[spec] = load_model(spec)
    return _models[spec]


def read_original(path: str | Path, model: WaveGrad) -> Original:
    """A clip (any audio, resampled to the vocoder's rate, padded to whole hops) or a mel file (.npy/.pt
    [n_mels, frames])."""
    path, data = Path(path), model.config.data_config
    if path.suffix.lower() in MEL_SUFFIXES:
        return Original(load_mel(path, data.n_mels), None)
    audio = pad_to_hop(load_audio(path, data.sample_rate), data.hop_length)  # as copy_synthesis renders it
    check_audible(audio, path.name)
    return Original(mel_spectrogram(audio, data), audio)


def render(logs: Path, source: str | Path | None, checkpoint: str, schedule: str, linear_iterations: int = 6,
           seed: int = 0) -> tuple[Original, Rendering]:
    """Render `source` with the vocoder `checkpoint` and a schedule choice (catalog.schedules); a clip goes
    through `wavegrad.inference.copy_synthesis`, a mel file through `synthesize`. The wav is written to
    `<logs>/ui_outputs/vocoder/<stem>_<schedule>_<time>.wav`."""
    if not source:
        raise AudioError("no input: upload a clip or a mel file (.npy/.pt) first")
    model = vocoder(checkpoint)
    data, betas = model.config.data_config, schedule_betas(schedule, linear_iterations)
    original = read_original(source, model)
    if original.audio is not None:
        _, generated, elapsed = copy_synthesis(model, source, betas, seed)
    else:
        start = time.perf_counter()
        generated = synthesize(model, original.mel, betas, generator=torch.Generator().manual_seed(seed))
        elapsed = time.perf_counter() - start
    generated = generated.cpu()
    mel = mel_spectrogram(generated, data)
    frames = min(mel.shape[-1], original.mel.shape[-1])
    name = Path(schedule).stem if schedule != LINEAR else f"{LINEAR}{len(betas)}"
    wav = logs / OUTPUTS / f"{Path(source).stem}_{name}_{time.strftime('%Y%m%d-%H%M%S')}.wav"
    save_audio(wav, generated, data.sample_rate)
    return original, Rendering(wav, generated, mel, float(mel_l1(mel[:, :frames], original.mel[:, :frames])),
                               elapsed / (generated.numel() / data.sample_rate), len(betas))


def picture(mel: torch.Tensor, title: str, model: WaveGrad) -> np.ndarray:
    """One mel panel as an RGB image, time axis in seconds."""
    data = model.config.data_config
    return mel_picture({title: mel}, data.hop_length / data.sample_rate)
