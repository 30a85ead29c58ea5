"""Objective metrics for generated speech against a reference (spectral distances, pitch, PESQ/STOI), and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import MelSpectrogram, resample
from .config import DataConfig

STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # (n_fft, hop, win)
PESQ_RATE = 16000  # Hz at which wide-band PESQ and STOI score here


def _aligned(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both signals cut to the shorter length, as float [..., samples]."""
    length = min(estimate.shape[-1], reference.shape[-1])
    return estimate[..., :length].float(), reference[..., :length].float()


def mel_l1(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean |estimate - reference| per log10 mel: [..., n_mels, frames] twice -> [...]. THE log-mel L1:
    the reference implementation's schedule-search score, also the training's test/mel_l1."""
    return (estimate - reference).abs().mean(dim=(-2, -1))


def log_mel_l1(estimate: torch.Tensor, reference: torch.Tensor, config: DataConfig) -> torch.Tensor:
    """`mel_l1` of two signals' log10 mels (the package's one mel): [..., samples] -> [...]."""
    estimate, reference = _aligned(estimate, reference)
    mel = MelSpectrogram(config).to(estimate.device)
    shape = estimate.shape[:-1]
    distance = mel_l1(mel(estimate.reshape(-1, estimate.shape[-1])), mel(reference.reshape(-1, reference.shape[-1])))
    return distance.reshape(shape)


def multi_resolution_stft(estimate: torch.Tensor, reference: torch.Tensor,
                          resolutions: tuple[tuple[int, int, int], ...] = STFT_RESOLUTIONS) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions: [..., samples] -> [...]."""
    estimate, reference = _aligned(estimate, reference)
    shape = estimate.shape[:-1]
    estimate, reference = estimate.reshape(-1, estimate.shape[-1]), reference.reshape(-1, reference.shape[-1])
    total = torch.zeros(estimate.shape[0], device=estimate.device)
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=estimate.device)
        est, ref = (torch.stft(x, n_fft, hop, win, window, return_complex=True).abs().clamp_min(1e-7)
                    for x in (estimate, reference))
        convergence = torch.linalg.norm(ref - est, dim=(-2, -1)) / torch.linalg.norm(ref, dim=(-2, -1))
        log_l1 = (est.log() - ref.log()).abs().mean(dim=(-2, -1))
        total += convergence + log_l1
    return (total / len(resolutions)).reshape(shape)


def f0_track(audio: np.ndarray, sample_rate: int, frame_period_ms: float = 10.0) -> np.ndarray:
    """f0 in Hz per 10 ms frame (0 = unvoiced) by WORLD's harvest + stonemask, 50-1100 Hz."""
    import pyworld

    audio = np.ascontiguousarray(audio, dtype=np.float64)
    f0, times = pyworld.harvest(audio, sample_rate, f0_floor=50.0, f0_ceil=1100.0, frame_period=frame_period_ms)
    return pyworld.stonemask(audio, f0, times, sample_rate)


def log_f0_correlation(f0_est: np.ndarray, f0_ref: np.ndarray) -> float:
    """Pearson correlation of log-f0 over the frames voiced (> 0) in both tracks [frames], NaN under 3 such
    frames: how well a contour is kept, whatever its offset (a pitch shift adds a constant in log-f0)."""
    frames = min(len(f0_est), len(f0_ref))
    f0_est, f0_ref = f0_est[:frames], f0_ref[:frames]
    voiced = (f0_est > 0) & (f0_ref > 0)
    if voiced.sum() < 3:
        return float("nan")
    return float(np.corrcoef(np.log(f0_est[voiced]), np.log(f0_ref[voiced]))[0, 1])


def voiced_kept(f0_est: np.ndarray, f0_ref: np.ndarray) -> float:
    """Share of the frames voiced (> 0) in `f0_ref` [frames] that are voiced in `f0_est`; NaN if none is."""
    frames = min(len(f0_est), len(f0_ref))
    voiced = f0_ref[:frames] > 0
    return float(np.mean(f0_est[:frames][voiced] > 0)) if voiced.any() else float("nan")


def contour_errors(f0_est: np.ndarray, f0_ref: np.ndarray) -> dict[str, float]:
    """Two f0 tracks [frames] in Hz (0 = unvoiced) compared over the frames voiced in both: F0 RMSE in Hz, the
    gross pitch error rate (share of frames more than 20% off, octave errors among them) and the
    `log_f0_correlation`; and the voiced/unvoiced decision error rate over all frames."""
    frames = min(len(f0_est), len(f0_ref))
    f0_est, f0_ref = f0_est[:frames], f0_ref[:frames]
    both = (f0_est > 0) & (f0_ref > 0)
    nan = float("nan")
    return {"f0_rmse_hz": float(np.sqrt(np.mean((f0_est[both] - f0_ref[both]) ** 2))) if both.any() else nan,
            "vuv_error": float(np.mean((f0_est > 0) != (f0_ref > 0))),
            "f0_gross_error": float(np.mean(np.abs(f0_est[both] / f0_ref[both] - 1) > 0.2)) if both.any() else nan,
            "f0_corr": log_f0_correlation(f0_est, f0_ref)}


def pitch_errors(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float]:
    """`contour_errors` of the `f0_track`s of two clips [samples] at `sample_rate`."""
    return contour_errors(f0_track(estimate, sample_rate), f0_track(reference, sample_rate))


def pesq_stoi(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Wide-band PESQ (at 16 kHz) and STOI, each only when its package is installed."""
    scores: dict[str, float] = {}
    est16, ref16 = resample(estimate, sample_rate, PESQ_RATE), resample(reference, sample_rate, PESQ_RATE)
    try:
        from pesq import pesq

        scores["pesq_wb"] = float(pesq(PESQ_RATE, ref16, est16, "wb"))
    except ImportError:
        pass
    try:
        from pystoi import stoi

        scores["stoi"] = float(stoi(ref16, est16, PESQ_RATE, extended=False))
    except ImportError:
        pass
    return scores


def vocoder_metrics(estimate: torch.Tensor, reference: torch.Tensor, config: DataConfig) -> dict[str, float]:
    """All vocoder metrics of one generated clip against its ground truth, both [samples] at config's rate."""
    estimate, reference = _aligned(estimate.cpu(), reference.cpu())
    est_np, ref_np = estimate.numpy(), reference.numpy()
    return {
        "log_mel_l1": float(log_mel_l1(estimate, reference, config)),
        "mr_stft": float(multi_resolution_stft(estimate, reference)),
        **pitch_errors(est_np, ref_np, config.sample_rate),
        **pesq_stoi(est_np, ref_np, config.sample_rate),
    }


def write_report(rows: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """Write rows of figures as `<path>.md` (a markdown table) and `<path>.json`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"title": title, "rows": rows}, indent=2, default=float))
