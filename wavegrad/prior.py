"""The diffusion prior: N(0, I) (the reference) or PriorGrad's energy prior N(0, diag(sigma^2)), where
sigma follows the mel's frame energy (Lee et al., ICLR 2022)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from .audio import load_audio, mel_spectrogram
from .config import DataConfig
from .errors import WaveGradError

STD_FLOOR = 0.1  # PriorGrad's minimum std, so that silent frames still get some noise


def frame_energy(mels: torch.Tensor) -> torch.Tensor:
    """E = sqrt(sum over bins of the power mel) per frame: log10 mels [..., n_mels, frames] -> [..., frames]."""
    return torch.pow(10.0, mels.float()).sum(dim=-2).sqrt()


def measure_energy_range(paths: Iterable[Path], data_config: DataConfig) -> tuple[float, float]:
    """(E_min, E_max) over every mel frame of the audio files (the training set), at the config's rate."""
    low, high = float("inf"), 0.0
    for path in paths:
        energy = frame_energy(mel_spectrogram(load_audio(path, data_config.sample_rate), data_config))
        low, high = min(low, energy.min().item()), max(high, energy.max().item())
    if not high > low:
        raise WaveGradError("the training clips have no energy range (all silent?); cannot fit the energy prior")
    return low, high


class EnergyPrior(nn.Module):
    """sigma = clamp((min(E, E_max) - E_min) / (E_max - E_min), min=0.1) per frame, repeated hop times.

    E_min/E_max are a buffer (so they travel in the checkpoint); NaN until `set_range` or a
    checkpoint fills them.
    """

    def __init__(self, hop_length: int):
        super().__init__()
        self.hop_length = hop_length
        self.register_buffer("energy_range", torch.full((2,), float("nan")))

    def set_range(self, low: float, high: float) -> None:
        self.energy_range.copy_(torch.tensor([low, high]))

    @property
    def fitted(self) -> bool:
        return bool(torch.isfinite(self.energy_range).all())

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Prior std [B, frames * hop] for log10 mels [B, n_mels, frames]."""
        if not self.fitted:
            raise WaveGradError("the energy prior has no E_min/E_max; train the model (they are measured on the "
                                "training set) or load a checkpoint that carries them")
        low, high = self.energy_range.tolist()
        energy = frame_energy(mels).clamp(max=high)
        std = ((energy - low) / (high - low)).clamp(min=STD_FLOOR)
        return std.repeat_interleave(self.hop_length, dim=-1)
