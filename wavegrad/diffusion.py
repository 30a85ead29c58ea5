"""Diffusion maths around the network: the training loss and batched sampling with any schedule."""

from __future__ import annotations

import torch
from torch import nn

from .metrics import multi_resolution_stft
from .model import WaveGrad
from .schedule import noise_level_bounds, posterior_coefficients, validate_betas

# FreGrad's auxiliary-loss resolutions (n_fft, hop, win): finer than the evaluation's, for 7200-sample segments.
AUX_STFT_RESOLUTIONS = ((512, 50, 300), (1024, 120, 600), (256, 30, 128))


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
                  generator: torch.Generator | None = None, std: torch.Tensor | None = None,
                  mrstft_weight: float = 0.0) -> torch.Tensor:
    """L1 between true and predicted noise, both divided by the prior std; mels [B, n_mels, frames],
    audio [B, frames * hop].

    std: the prior's noise std [B, frames * hop] (None: N(0, I), the reference's loss). The noise is
    std * eps, and the error is weighted by 1 / std: PriorGrad's Mahalanobis weighting, in the
    reference's L1 form (so std = 1 gives exactly the reference's loss).
    mrstft_weight: adds FreGrad's multi-resolution STFT distance between predicted and true noise.
    """
    level = sample_noise_level(betas, audio.shape[0], generator).to(audio.device)
    eps = torch.randn(audio.shape, generator=generator).to(audio.device)
    noise = eps if std is None else std * eps
    predicted = model(mels, diffuse(audio, level, noise), level).float()
    scaled = predicted if std is None else predicted / std
    loss = (scaled - eps).abs().mean()
    if mrstft_weight:
        loss = loss + mrstft_weight * multi_resolution_stft(scaled, eps, AUX_STFT_RESOLUTIONS).mean()
    return loss


@torch.inference_mode()
def sample(model: WaveGrad, mels: torch.Tensor, betas: torch.Tensor, *, clip: bool = True,
           noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Generate waveforms [B, frames * hop] from mels [B, n_mels, frames] by DDPM ancestral sampling.

    betas: [N] shared by the batch, or [B, N], one schedule per batch element (same length N).
    noise: optional [N, B or 1, T] Gaussian draws: noise[0] is the starting y_N, noise[k] the noise
    added after the k-th step (k = 1..N-1); a batch dimension of 1 gives every element the same noise.
    clip: clamp the predicted clean signal to [-1, 1] at every step, as the reference does.
    The model's prior scales the starting noise and every added noise (PriorGrad).
    """
    betas = validate_betas(betas)
    n_iter = betas.shape[-1]
    batch, length = mels.shape[0], mels.shape[-1] * model.hop_length
    device = mels.device
    coef = {k: v.float().to(device).reshape(-1, n_iter) for k, v in posterior_coefficients(betas).items()}
    std = model.prior_std(mels)

    def draw(k: int) -> torch.Tensor:
        if noise is not None:
            z = noise[k].to(device).expand(batch, length)
        else:
            z = torch.randn(batch, length, generator=generator).to(device)
        return z if std is None else std * z

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
