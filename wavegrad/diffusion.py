"""Diffusion maths around the network: the training loss and batched sampling with any schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .schedule import noise_level_bounds, posterior_coefficients, validate_betas


def sample_noise_level(betas: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
    """Continuous noise levels [B]: a step s uniform in 1..N, then sqrt(alpha_bar) uniform between
    sqrt(alpha_bar_{s-1}) and sqrt(alpha_bar_s) (alpha_bar_0 = 1)."""
    bounds = noise_level_bounds(betas).float()
    step = torch.randint(1, len(betas) + 1, (batch_size,), generator=generator)
    low, high = bounds[step], bounds[step - 1]
    return low + (high - low) * torch.rand(batch_size, generator=generator)


def diffuse(clean: torch.Tensor, noise_level: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """y = l * y0 + sqrt(1 - l^2) * eps, for clean/noise [B, T] and levels [B]."""
    level = noise_level[:, None]
    return level * clean + (1 - level.square()).sqrt() * noise


def training_loss(model: nn.Module, mels: torch.Tensor, audio: torch.Tensor, betas: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """L1 between true and predicted noise; mels [B, n_mels, frames], audio [B, frames * hop]."""
    level = sample_noise_level(betas, audio.shape[0], generator).to(audio.device)
    noise = torch.randn(audio.shape, generator=generator).to(audio.device)
    predicted = model(mels, diffuse(audio, level, noise), level)
    return F.l1_loss(predicted.float(), noise)


@torch.inference_mode()
def sample(model: nn.Module, mels: torch.Tensor, betas: torch.Tensor, *, clip: bool = True,
           noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Generate waveforms [B, frames * hop] from mels [B, n_mels, frames] by DDPM ancestral sampling.

    betas: [N] shared by the batch, or [B, N], one schedule per batch element (same length N).
    noise: optional [N, B or 1, T] Gaussian draws: noise[0] is the starting y_N, noise[k] the noise
    added after the k-th step (k = 1..N-1); a batch dimension of 1 gives every element the same noise.
    clip: clamp the predicted clean signal to [-1, 1] at every step, as the reference does.
    """
    betas = validate_betas(betas)
    n_iter = betas.shape[-1]
    batch, length = mels.shape[0], mels.shape[-1] * model.hop_length
    device = mels.device
    coef = {k: v.float().to(device).reshape(-1, n_iter) for k, v in posterior_coefficients(betas).items()}

    def draw(k: int) -> torch.Tensor:
        if noise is not None:
            return noise[k].to(device).expand(batch, length)
        return torch.randn(batch, length, generator=generator).to(device)

    y = draw(0)
    for k, t in enumerate(range(n_iter - 1, -1, -1)):
        c = {name: v[:, t, None] for name, v in coef.items()}
        eps = model(mels, y, c["level"][:, 0].expand(batch)).float()
        clean = c["recip"] * y - c["recipm1"] * eps
        if clip:
            clean = clean.clamp(-1.0, 1.0)
        y = c["c1"] * clean + c["c2"] * y
        if t > 0:
            y = y + (0.5 * c["log_var"]).exp() * draw(k + 1)
    return y
