"""Mel pictures for the page: `wavegrad.plotting.plot_mels` drawn to an RGB array."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from wavegrad.errors import AudioError
from wavegrad.plotting import plot_mels

SILENCE_PEAK = 1e-3  # -60 dBFS: a clip whose peak stays below this is treated as silent


def mel_picture(mels: dict[str, torch.Tensor], hop_seconds: float) -> np.ndarray:
    """Stacked panels of log10 mels [n_mels, frames] (titles are the keys) -> RGB image [H, W, 3] uint8."""
    canvas = FigureCanvasAgg(plot_mels(mels, hop_seconds))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def check_audible(audio: torch.Tensor | np.ndarray, source: str) -> None:
    """Refuse a silent clip (peak below -60 dBFS) with a message naming it."""
    peak = float(np.abs(np.asarray(audio)).max()) if len(audio) else 0.0
    if peak < SILENCE_PEAK:
        raise AudioError(f"{source}: the clip is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
                         "upload or record speech")
