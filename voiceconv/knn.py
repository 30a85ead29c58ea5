"""Zero-shot conversion by frame matching (kNN-VC, Baas et al. 2023): a pool of the target's content
frames, each source frame replaced by the mean of its k nearest pool frames (cosine similarity)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from wavegrad.audio import MelSpectrogram, audio_files, load_audio, resample
from wavegrad.config import DataConfig
from wavegrad.errors import AudioError, WaveGradError

from .config import PreprocessSettings
from .model import resample_frames
from .preprocess import highpass, normalize
from .rates import CONTENT_FRAME_RATE, CONTENT_HOP, FRONTEND_RATE

if TYPE_CHECKING:
    from .content import ContentEncoder

K = 4  # kNN-VC's default number of neighbours
MIN_REFERENCE_SECONDS = 10.0  # below this the pool is too thin to cover the source's phones
CHUNK = 4096  # query frames per similarity matrix, to bound memory
MatchKeys = Callable[[np.ndarray], np.ndarray]  # one call's features [T, D] -> what matching compares [T, D]


def knn_match(query: np.ndarray, pool: np.ndarray, k: int = K, exclude: np.ndarray | None = None,
              values: np.ndarray | None = None) -> np.ndarray:
    """Each query frame [Tq, D] replaced by the mean of its `k` most cosine-similar pool frames [Tp, D].

    exclude: optional bool [Tp], True for pool frames that may not be chosen (prematching leaves an
    utterance out of its own pool). values: optional rows [Tp, V] averaged instead of the pool's own
    (frames found by their content, returned with what else is known of them). Returns float32 [Tq, D or V].
    """
    if k < 1:
        raise WaveGradError(f"k={k}: frame matching averages at least 1 neighbour; give k >= 1")
    if len(pool) < k:
        raise WaveGradError(f"the matching pool has {len(pool)} frames, fewer than k={k}")
    q = torch.nn.functional.normalize(torch.from_numpy(np.asarray(query, np.float32)), dim=1)
    p = torch.nn.functional.normalize(torch.from_numpy(np.asarray(pool, np.float32)), dim=1)
    rows = torch.from_numpy(np.asarray(pool if values is None else values, np.float32))
    barred = None if exclude is None else torch.from_numpy(np.asarray(exclude, bool))
    out = []
    for start in range(0, len(q), CHUNK):
        similarity = q[start:start + CHUNK] @ p.T
        if barred is not None:
            similarity[:, barred] = -math.inf
        nearest = similarity.topk(k, dim=1).indices  # [chunk, k]
        out.append(rows[nearest].mean(dim=1))
    return torch.cat(out).numpy() if out else np.zeros((0, rows.shape[1]), np.float32)


def prematch(features: list[np.ndarray], speakers: list[int], k: int = K,
             values: list[np.ndarray] | None = None, keys: MatchKeys | None = None) -> list[np.ndarray]:
    """kNN-VC's prematched training inputs: every utterance [T_i, D] matched against the other utterances
    of its speaker, so that the model learns to render matched frames. `values` [T_i, V] per utterance
    are what the matched frames return (default: the features); `keys` what they are compared by (the encoder's
    `match_keys`; default the features). A speaker with one utterance keeps its own."""
    values = list(features) if values is None else list(values)
    compared = [keys(f) for f in features] if keys is not None else list(features)
    matched = list(values)
    for speaker in sorted(set(speakers)):
        members = [i for i, s in enumerate(speakers) if s == speaker]
        if len(members) < 2:
            continue
        pool = np.concatenate([compared[i] for i in members])
        rows = np.concatenate([values[i] for i in members])
        owner = np.concatenate([np.full(len(features[i]), i) for i in members])
        for i in members:
            matched[i] = knn_match(compared[i], pool, min(k, len(pool) - len(features[i])), exclude=owner == i,
                                   values=rows)
    return matched


def median_f0(f0: np.ndarray) -> float | None:
    """Median of the voiced frames of f0 [frames] in Hz (0 = unvoiced); None when nothing is voiced."""
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else None


def semitones_between(source_f0: np.ndarray, target_median: float) -> float:
    """The shift in semitones that moves the source's median f0 to `target_median` Hz (0 without voicing)."""
    source_median = median_f0(source_f0)
    return 12 * math.log2(target_median / source_median) if source_median else 0.0


@dataclasses.dataclass
class ReferencePool:
    """A target voice given by recordings: content frames [N, D] at 50 fps and their match keys [N, D]
    (`ContentEncoder.match_keys`), the median f0 in Hz, and (for models with `matched_mel`) the log10 mels of
    the same frames [N, n_mels]."""

    features: np.ndarray
    keys: np.ndarray
    median_f0: float | None
    seconds: float
    mels: np.ndarray | None = None

    @functools.cached_property
    def values(self) -> np.ndarray:
        """What a matched frame returns: its content, followed by its mel when the pool has mels [N, D (+ n_mels)]."""
        return self.features if self.mels is None else np.concatenate([self.features, self.mels], axis=1)


def mel_at_content_rate(mel: torch.Tensor, mel_rate: float, frames: int) -> np.ndarray:
    """log10 mel [n_mels, F] at `mel_rate` fps -> rows [frames, n_mels] at the content rate (50 fps), by time."""
    return resample_frames(mel.T[None], mel_rate, CONTENT_FRAME_RATE, frames)[0].numpy()


def content_rate_mels(audio: DataConfig) -> Callable[[np.ndarray], np.ndarray]:
    """16 kHz audio [samples] -> log10 mels [samples // 320, n_mels] of the vocoder's mel (`audio`, the
    conversion model's output space) at the content frame rate, of the clip high-passed and peak-normalised
    as preprocessing treats training segments (so the levels match the mels the model was trained with)."""
    mel, settings = MelSpectrogram(audio), PreprocessSettings()

    def frames(clip: np.ndarray) -> np.ndarray:
        filtered = highpass(clip, FRONTEND_RATE, settings)
        levelled = normalize(filtered, settings)
        if levelled is None:  # silent or too loud: as it is
            levelled = filtered
        with torch.inference_mode():
            spectrum = mel(torch.from_numpy(resample(levelled, FRONTEND_RATE, audio.sample_rate)).float())
        return mel_at_content_rate(spectrum, audio.sample_rate / audio.hop_length, len(clip) // CONTENT_HOP)

    return frames


def reference_pool(folder: str | Path, encoder: ContentEncoder,
                   pitch: Callable[[np.ndarray], np.ndarray] | None,
                   mels: Callable[[np.ndarray], np.ndarray] | None = None) -> ReferencePool:
    """The pool of a folder of the target's recordings, at any sample rate and channel count (resampled to
    16 kHz and mixed down); `mels` as in `pool_of_files`. Unreadable files are skipped; a folder with under
    MIN_REFERENCE_SECONDS of readable audio is refused with one line."""
    folder = Path(folder)
    fix = f"give a folder with at least {MIN_REFERENCE_SECONDS:.0f} s (30 s or more works best) of the target voice"
    if not folder.is_dir():
        raise WaveGradError(f"{folder}: reference folder not found; {fix}")
    pool = pool_of_files(audio_files(folder), encoder, pitch, mels)
    if pool.seconds < MIN_REFERENCE_SECONDS:
        found = f"only {pool.seconds:.1f} s of readable audio" if pool.seconds else "no readable audio"
        raise WaveGradError(f"{folder}: {found} in the reference folder; {fix}")
    return pool


def pool_of_files(files: list[Path], encoder: ContentEncoder,
                  pitch: Callable[[np.ndarray], np.ndarray] | None,
                  mels: Callable[[np.ndarray], np.ndarray] | None = None) -> ReferencePool:
    """The pool of recordings `files`, unreadable ones skipped (an empty pool has 0 frames and 0 s);
    without `pitch` it has no median f0; with `mels` (`content_rate_mels`) it keeps the mel of every frame."""
    features, keys, f0s, frame_mels, seconds = [], [], [], [], 0.0
    for path in files:
        try:
            audio = load_audio(path, FRONTEND_RATE).numpy()
        except AudioError:
            continue
        seconds += len(audio) / FRONTEND_RATE
        features.append(encoder(audio).astype(np.float32))
        keys.append(encoder.match_keys(features[-1]))
        if pitch is not None:
            f0s.append(pitch(audio))
        if mels is not None:
            frame_mels.append(mels(audio)[:len(features[-1])])
    median = median_f0(np.concatenate(f0s)) if f0s else None
    empty = np.zeros((0, 0), np.float32)
    return ReferencePool(np.concatenate(features) if features else empty, np.concatenate(keys) if keys else empty,
                         median, seconds, np.concatenate(frame_mels) if frame_mels else None)
