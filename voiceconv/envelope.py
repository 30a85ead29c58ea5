"""Spectral envelopes of log mels, and their transplant from a target voice into a converted mel.

The envelope of a log-mel frame is its low quefrencies: the first coefficients of its orthonormal DCT-II
along the mel axis (the mel cepstrum), which follow the formants and the voice's spectral tilt; the higher
ones carry the pitch harmonics. Coefficient 0 is the frame's level. Moving the envelope of a converted mel
towards the mean of the target's matched reference frames gives it the target's timbre while it keeps the
converter's harmonics (its pitch) and loudness. A high voice's harmonics reach down into the envelope's
coefficients, so the cut follows each frame's f0 (`harmonic_quefrency`).
"""

from __future__ import annotations

import functools
import math

import torch

ENVELOPE_COEFFICIENTS = 16  # of the mel cepstrum (80 bins, 80-8000 Hz): a 200 Hz voice's harmonics sit at 21-26
HARMONIC_MARGIN = 0.75  # the cut stays below this share of the harmonics' quefrency


def harmonic_quefrency(f0: torch.Tensor, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Per frame, the mel-cepstrum coefficient of the ripple that harmonics of f0 [T] Hz (> 0) draw across HTK mel
    bins near f0, where the bins are narrowest in Hz and the ripple is slowest: a period of f0 / (bin width) bins
    is coefficient 2 * n_mels * (bin width) / f0. [T] float."""
    import librosa

    spacing = (librosa.hz_to_mel(f_max, htk=True) - librosa.hz_to_mel(f_min, htk=True)) / (n_mels + 1)  # mels apart
    bin_hz = spacing * math.log(10) * (700 + f0) / 2595  # Hz per bin at f0 (the inverse slope of mel(f))
    return 2 * n_mels * bin_hz / f0


@functools.lru_cache(maxsize=4)
def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II [n, n] (row k: coefficient k), so that its transpose inverts it."""
    k, i = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None]
    matrix = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix.float()


def transplant_envelope(mel: torch.Tensor, target: torch.Tensor, rate: float,
                        coefficients: int = ENVELOPE_COEFFICIENTS, limit: torch.Tensor | None = None) -> torch.Tensor:
    """log mel [n_mels, T] with `rate` (0..1) of its envelope replaced by `target`'s [n_mels, T], frame by frame:
    mel cepstrum coefficients 1..coefficients-1 moved, the level (0) and the harmonics (the rest) kept.
    limit: optional [T], per frame the coefficient where the harmonics begin (`harmonic_quefrency`); the cut
    stays below HARMONIC_MARGIN of it."""
    dct = dct_matrix(mel.shape[0]).to(mel)
    k = torch.arange(mel.shape[0], device=mel.device)[:, None].to(mel)
    cut = torch.full_like(mel[0], coefficients)
    if limit is not None:
        cut = cut.minimum(HARMONIC_MARGIN * limit.to(mel))
    moved = ((k >= 1) & (k < cut)).to(mel)  # [n_mels, T]
    return mel + rate * (dct.T @ (moved * (dct @ (target - mel))))
