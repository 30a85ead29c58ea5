"""Scoring noise schedules on held-out clips: fixed noise per clip, batched generation, log-mel L1,
multi-resolution STFT distance, or negated PESQ-wb or STOI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .audio import MelSpectrogram, load_audio
from .config import DataConfig
from .diffusion import sample
from .errors import AudioError, ScheduleError, WaveGradError
from .filelist import spread
from .metrics import mel_l1, multi_resolution_stft, pesq_stoi
from .model import WaveGrad

METRICS = ("mel", "mrstft", "pesq", "stoi")  # every distance below; lower is better
PERCEPTUAL = {"pesq": "pesq_wb", "stoi": "stoi"}  # metric -> key of `pesq_stoi`


@dataclasses.dataclass
class Clips:
    """Held-out scoring data: audio [C, T] and log-mels [C, n_mels, T // hop] at the model's rate, and the
    fixed noise [n_iter, C, T] that every candidate gets (candidates are compared fairly), and the mel
    transform (it travels to the workers with its filterbank, so they need not rebuild it)."""

    paths: list[str]
    audio: torch.Tensor
    mels: torch.Tensor
    noise: torch.Tensor
    mel_fn: MelSpectrogram


def prepare_clips(paths: list[Path], data_config: DataConfig, n_iter: int, seconds: float = 1.0,
                  n_clips: int = 2, seed: int = 0) -> Clips:
    """Load `n_clips` files spread over `paths`, centre-cropped (or zero-padded) to `seconds`, rounded
    down to whole hops; unreadable files are skipped with a warning."""
    if not paths:
        raise AudioError("the clip list is empty; pass a filelist of held-out audio (e.g. filelists/test.txt)")
    if n_iter < 1:
        raise ScheduleError(f"n_iter must be >= 1, got {n_iter}")
    hop = data_config.hop_length
    length = max(1, int(seconds * data_config.sample_rate) // hop) * hop
    picks = spread(paths, n_clips)
    audio, used = [], []
    for path in picks:
        try:
            wav = load_audio(path, data_config.sample_rate)
        except WaveGradError as exc:
            print(f"warning: skipping clip: {exc}")
            continue
        start = max(0, (len(wav) - length) // 2)
        audio.append(F.pad(wav[start:start + length], (0, max(0, length - len(wav) + start))))
        used.append(str(path))
    if not audio:
        raise AudioError(f"none of the clips {[str(p) for p in picks]} could be read; check the filelist")
    audio_t = torch.stack(audio)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_iter, len(audio), length, generator=generator)
    mel_fn = MelSpectrogram(data_config)
    return Clips(used, audio_t, mel_fn(audio_t), noise, mel_fn)


def distance(generated: torch.Tensor, real: torch.Tensor, real_mels: torch.Tensor, mel_fn: MelSpectrogram,
             metric: str = "mel") -> torch.Tensor:
    """Per-clip distance [B] between audio [B, T] and the real audio [B, T] (log-mels [B, n_mels, F]).

    "mel": L1 of log10 mels (the reference's score); "mrstft": spectral convergence + log-magnitude
    L1, averaged over three STFT resolutions; "pesq", "stoi": minus wide-band PESQ or STOI (needs the
    `eval` extra), the measures the vocoder's quality targets are stated in.
    """
    if metric == "mel":
        return mel_l1(mel_fn(generated), real_mels)
    if metric == "mrstft":
        return multi_resolution_stft(generated, real)
    if metric not in PERCEPTUAL:
        raise WaveGradError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    key, rate = PERCEPTUAL[metric], mel_fn.config.sample_rate
    scores = [pesq_stoi(g.numpy(), r.numpy(), rate).get(key) for g, r in zip(generated, real, strict=True)]
    if None in scores:
        raise WaveGradError(f"--metric {metric} needs the pesq and pystoi packages: pip install 'wavegrad-vc[eval]'")
    return -torch.tensor(scores)


def render(model: WaveGrad, clips: Clips, betas: torch.Tensor) -> torch.Tensor:
    """The clips generated with each candidate: betas [K, n_iter] -> audio [K * C, T], candidate-major.

    All K * C generations run as one batch, each element with its candidate's schedule and its
    clip's noise (identical across candidates)."""
    betas = torch.as_tensor(betas, dtype=torch.float64).reshape(-1, clips.noise.shape[0])
    k, c = len(betas), len(clips.audio)
    device = next(model.parameters()).device
    return sample(model, clips.mels.repeat(k, 1, 1).to(device), betas.repeat_interleave(c, dim=0),
                  noise=clips.noise.repeat(1, k, 1)).cpu()


def score_schedules(model: WaveGrad, clips: Clips, betas: torch.Tensor, metric: str = "mel") -> np.ndarray:
    """Mean distance over the clips for each candidate: betas [K, n_iter] -> scores [K]."""
    audio = render(model, clips, betas)
    k = len(audio) // len(clips.audio)
    scores = distance(audio, clips.audio.repeat(k, 1), clips.mels.repeat(k, 1, 1), clips.mel_fn, metric)
    return scores.reshape(k, -1).mean(dim=1).double().numpy()
