"""Voice perturbation of training inputs (NANSY, Choi et al. 2021; FreeVC): the content encoder sees each
segment with its formants, pitch and pitch range moved at random, so the content it gives carries less of the
speaker. WORLD (pyworld) analyses and resynthesises; the model's targets and pitch input stay the originals.

Pitch-shifted targets, the other way round: the segment's own voice resynthesised an octave or half an octave
higher and lower becomes the mel target for the original content with the f0 input moved as much, so that a
model renders pitches its speaker never reached (RVC's f0_up_key of +-12 semitones)."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

import numpy as np
import torch

from wavegrad.audio import resample
from wavegrad.config import DataConfig

from .rates import FRONTEND_RATE, PITCH_HOP

FORMANT_RATIO, PITCH_RATIO, RANGE_RATIO = 1.4, 2.0, 1.5  # NANSY's largest shifts (each also inverted)
PITCH_SHIFTS = (-12, -6, 6, 12)  # semitones of the pitch-shifted training copies (`voiceconv features --pitch-shifted`)
VOICE_RATIOS = (0.84, 1.19)  # frequency scalings of the virtual voices (`voiceconv train --virtual-voices`): -+3 st


def semitone_list(shifts: tuple[int, ...] = PITCH_SHIFTS) -> str:
    """Shifts as people write them: "-12, -6, +6, +12"."""
    return ", ".join(f"{s:+d}" for s in shifts)


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Formant ratio (>1 raises the spectral envelope), pitch ratio and pitch-range ratio (of log f0 around
    its median)."""

    formant: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Perturbation:
        """NANSY's draw: each ratio uniform in [1, max], inverted with probability 1/2."""
        def ratio(largest: float) -> float:
            value = rng.uniform(1.0, largest)
            return value if rng.random() < 0.5 else 1.0 / value

        return cls(ratio(FORMANT_RATIO), ratio(PITCH_RATIO), ratio(RANGE_RATIO))

    @classmethod
    def for_segment(cls, stem: str, seed: int = 0) -> Perturbation:
        """The draw of one training segment, fixed by its name, so that a resumed extraction repeats it."""
        return cls.draw(np.random.default_rng([seed, zlib.crc32(stem.encode())]))


def warp_envelope(envelope: np.ndarray, ratio: float) -> np.ndarray:
    """Spectral envelope [frames, bins] with its frequency axis scaled by `ratio`: what was at bin k moves to
    bin k * ratio (the top bin is held beyond the edge)."""
    bins = np.arange(envelope.shape[1], dtype=np.float64)
    source = np.clip(bins / ratio, 0, envelope.shape[1] - 1)
    return np.stack([np.interp(source, bins, row) for row in envelope])


def move_pitch(f0: np.ndarray, p: Perturbation) -> np.ndarray:
    """f0 Hz [frames] (0 = unvoiced) scaled by p.pitch, with its log spread around the median scaled by
    p.pitch_range."""
    voiced = f0 > 0
    if not voiced.any():
        return f0
    log_f0, centre = np.log(np.where(voiced, f0, 1.0)), np.median(np.log(f0[voiced]))
    return np.where(voiced, np.exp(centre + (log_f0 - centre) * p.pitch_range) * p.pitch, 0.0)


def _analyse(audio: np.ndarray, f0: np.ndarray, sample_rate: int) -> tuple[np.ndarray, ...]:
    """WORLD analysis of audio [samples] with its f0 [frames] Hz at 100 frames/s (padded or cut to WORLD's
    count): (f0, spectral envelope, aperiodicity), float64, one row per 10 ms frame."""
    import pyworld

    x = np.ascontiguousarray(audio, dtype=np.float64)
    frames = len(x) * FRONTEND_RATE // (sample_rate * PITCH_HOP) + 1  # WORLD's count of 10 ms frames
    f0 = np.pad(np.asarray(f0, np.float64), (0, max(0, frames - len(f0))))[:frames]
    times = np.arange(frames) * PITCH_HOP / FRONTEND_RATE
    return f0, pyworld.cheaptrick(x, f0, times, sample_rate), pyworld.d4c(x, f0, times, sample_rate)


def _synthesise(f0: np.ndarray, envelope: np.ndarray, aperiodicity: np.ndarray, sample_rate: int,
                samples: int) -> np.ndarray:
    """WORLD synthesis of 10 ms frames, cut or padded to `samples`, peak at most 0.95; float32."""
    import pyworld

    y = pyworld.synthesize(f0, envelope, aperiodicity, sample_rate, frame_period=1000 * PITCH_HOP / FRONTEND_RATE)
    y = np.pad(y, (0, max(0, samples - len(y))))[:samples]
    peak = np.abs(y).max()
    return (y * min(1.0, 0.95 / peak) if peak > 0 else y).astype(np.float32)


def perturb(audio: np.ndarray, f0: np.ndarray, p: Perturbation) -> np.ndarray:
    """16 kHz audio [samples] resynthesised by WORLD with f0 [samples // 160 (+1)] Hz moved and the formants
    warped; returns float32 [samples]."""
    f0, envelope, aperiodicity = _analyse(audio, f0, FRONTEND_RATE)
    return _synthesise(move_pitch(f0, p), warp_envelope(envelope, p.formant), aperiodicity, FRONTEND_RATE,
                       len(audio))


def pitch_shifted(audio: np.ndarray, f0: np.ndarray, semitones: tuple[float, ...],
                  sample_rate: int) -> list[np.ndarray]:
    """Audio [samples] resynthesised by WORLD once per shift, its f0 (as `perturb`) moved by that many
    semitones and its spectral envelope (formants) kept: the same voice singing higher or lower."""
    f0, envelope, aperiodicity = _analyse(audio, f0, sample_rate)
    return [_synthesise(f0 * 2 ** (s / 12), envelope, aperiodicity, sample_rate, len(audio)) for s in semitones]


def pitch_shifted_clip(audio: np.ndarray, sample_rate: int, semitones: tuple[float, ...],
                       estimate_f0: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """`pitch_shifted` of audio [samples] at any rate, its f0 estimated by `estimate_f0` (a
    `pitch.pitch_estimator`) on a 16 kHz resampling: 10 ms frames whatever the rate."""
    f0 = estimate_f0(resample(audio, sample_rate, FRONTEND_RATE))
    return pitch_shifted(audio, f0, semitones, sample_rate)


def warp_mel(mel: torch.Tensor, ratio: float, audio: DataConfig) -> torch.Tensor:
    """log10 mel [n_mels, frames] (`audio`'s HTK filterbank) of the same sound with every frequency scaled by
    `ratio`, formants and harmonics alike, as a faster or slower playback: the bin centred at f reads the
    original at f / ratio, interpolated between bins on the mel scale and held at the edges."""
    import librosa

    centres = librosa.mel_frequencies(audio.n_mels + 2, fmin=audio.f_min, fmax=audio.f_max, htk=True)[1:-1]
    scale = librosa.hz_to_mel(centres, htk=True)
    position = np.interp(librosa.hz_to_mel(centres / ratio, htk=True), scale, np.arange(audio.n_mels))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, audio.n_mels - 1)
    frac = torch.from_numpy(position - low).to(mel.dtype)[:, None]
    return mel[low] * (1 - frac) + mel[high] * frac
