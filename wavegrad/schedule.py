"""Noise schedules as data: betas <-> noise levels; linear, Fibonacci and file schedules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .assets import resolve_asset, shipped_names
from .atomic import atomic_write
from .config import DEFAULT_BETAS_RANGE
from .errors import ScheduleError


def validate_betas(betas: torch.Tensor, source: str = "<schedule>") -> torch.Tensor:
    """Check a schedule [n_iter] (or a batch [B, n_iter]): non-empty, finite, 0 < beta < 1."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.dim() not in (1, 2) or betas.shape[-1] == 0:
        raise ScheduleError(f"{source}: a schedule must be a non-empty 1-D tensor of betas, got shape "
                            f"{tuple(betas.shape)}; save e.g. torch.tensor([1e-6, ..., 1e-2])")
    if not torch.isfinite(betas).all():
        raise ScheduleError(f"{source}: the schedule contains NaN or infinite betas; fix the values")
    if not ((betas > 0) & (betas < 1)).all():
        raise ScheduleError(f"{source}: every beta must lie in (0, 1), got min {betas.min().item():.3g} "
                            f"and max {betas.max().item():.3g}")
    return betas


def linear_betas(n_iter: int, betas_range: tuple[float, float] = DEFAULT_BETAS_RANGE) -> torch.Tensor:
    """`n_iter` betas spaced linearly over `betas_range` (the training schedule): [n_iter] float64."""
    if n_iter < 1:
        raise ScheduleError(f"n_iter must be >= 1, got {n_iter}")
    return validate_betas(torch.linspace(betas_range[0], betas_range[1], n_iter, dtype=torch.float64))


def fibonacci_betas(b1: float = 1e-6, b2: float = 9e-6, n_iter: int = 25) -> torch.Tensor:
    """Fibonacci initialisation [b1, b2, b1 + b2, ...]: [n_iter] float64."""
    if n_iter < 1:
        raise ScheduleError(f"n_iter must be >= 1, got {n_iter}")
    betas = [b1, b2]
    while len(betas) < n_iter:
        betas.append(betas[-1] + betas[-2])
    return validate_betas(torch.tensor(betas[:n_iter], dtype=torch.float64))


def repeat_betas(betas: torch.Tensor, times: int) -> torch.Tensor:
    """Repeat each beta `times` times (how the reference made its 50/100/1000-step schedules)."""
    return torch.as_tensor(betas, dtype=torch.float64).repeat_interleave(times)


def noise_levels(betas: torch.Tensor) -> torch.Tensor:
    """sqrt(alpha_bar_t) for each step: [..., n_iter], strictly decreasing in t."""
    return torch.cumprod(1 - betas, dim=-1).sqrt()


def noise_level_bounds(betas: torch.Tensor) -> torch.Tensor:
    """[1, sqrt(alpha_bar_0), ..., sqrt(alpha_bar_{N-1})]: [n_iter + 1], the bins that the training
    noise level is drawn from."""
    return torch.cat([torch.ones(1, dtype=betas.dtype), noise_levels(betas)])


def posterior_coefficients(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """DDPM posterior q(y_{t-1} | y_t, y_0) terms per step, each [..., n_iter].

    `c1` multiplies y0_hat, `c2` multiplies y_t, `log_var` is the clipped log variance;
    `recip` / `recipm1` turn predicted noise into y0_hat = recip * y - recipm1 * eps.
    """
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=-1)
    abar_prev = torch.cat([torch.ones_like(abar[..., :1]), abar[..., :-1]], dim=-1)
    variance = betas * (1 - abar_prev) / (1 - abar)
    return {
        "c1": betas * abar_prev.sqrt() / (1 - abar),
        "c2": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
        "log_var": variance.clamp_min(1e-20).log(),
        "recip": (1 / abar).sqrt(),
        "recipm1": (1 / abar - 1).sqrt(),
        "level": abar.sqrt(),
    }


def load_schedule(path: str | Path) -> torch.Tensor:
    """Read betas [n_iter] float64 from a `.pt` (the reference's format) or `.npy` file, or a shipped
    schedule by name ("6iters"), validated."""
    path = resolve_asset(path, "schedule")
    if not path.is_file():
        raise ScheduleError(f"{path}: schedule file not found; pass a .pt/.npy file of betas "
                            f"or a shipped name ({shipped_names('schedule')})")
    try:
        if path.suffix == ".npy":
            betas = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            betas = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ScheduleError(f"{path}: cannot read schedule ({exc.__class__.__name__}); "
                            "save betas with torch.save(tensor) or numpy.save") from exc
    if not isinstance(betas, torch.Tensor):
        raise ScheduleError(f"{path}: expected a tensor of betas, found {type(betas).__name__}")
    betas = validate_betas(betas, str(path))
    if betas.dim() != 1:
        raise ScheduleError(f"{path}: expected a 1-D tensor of betas, got shape {tuple(betas.shape)}")
    return betas


def save_schedule(betas: torch.Tensor, path: str | Path) -> None:
    """Write betas [n_iter] as a `.pt` (float32, as the reference) or `.npy` file, atomically."""
    path = Path(path)
    betas = validate_betas(betas, str(path)).float()
    with atomic_write(path) as tmp:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:  # np.save on a path would append ".npy" to the temporary name
                np.save(f, betas.numpy())
        else:
            torch.save(betas, tmp)
