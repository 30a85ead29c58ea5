"""Zero-shot conversion by frame matching (kNN-VC, Baas et al. 2023): a pool of the target's content
frames, each source frame replaced by the mean of its k nearest pool frames (cosine similarity)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from wavegrad.audio import audio_files, load_audio
from wavegrad.errors import AudioError, WaveGradError

from .rates import FRONTEND_RATE

K = 4  # kNN-VC's default number of neighbours
MIN_REFERENCE_SECONDS = 10.0  # below this the pool is too thin to cover the source's phones
CHUNK = 4096  # query frames per similarity matrix, to bound memory


def knn_match(query: np.ndarray, pool: np.ndarray, k: int = K, exclude: np.ndarray | None = None) -> np.ndarray:
    """Each query frame [Tq, D] replaced by the mean of its `k` most cosine-similar pool frames [Tp, D].

    exclude: optional bool [Tp], True for pool frames that may not be chosen (prematching leaves an
    utterance out of its own pool). Returns float32 [Tq, D].
    """
    if len(pool) < k:
        raise WaveGradError(f"the matching pool has {len(pool)} frames, fewer than k={k}")
    q = torch.nn.functional.normalize(torch.from_numpy(np.asarray(query, np.float32)), dim=1)
    p_raw = torch.from_numpy(np.asarray(pool, np.float32))
    p = torch.nn.functional.normalize(p_raw, dim=1)
    barred = None if exclude is None else torch.from_numpy(np.asarray(exclude, bool))
    out = []
    for start in range(0, len(q), CHUNK):
        similarity = q[start:start + CHUNK] @ p.T
        if barred is not None:
            similarity[:, barred] = -math.inf
        nearest = similarity.topk(k, dim=1).indices  # [chunk, k]
        out.append(p_raw[nearest].mean(dim=1))
    return torch.cat(out).numpy() if out else np.zeros((0, pool.shape[1]), np.float32)


def prematch(features: list[np.ndarray], speakers: list[int], k: int = K) -> list[np.ndarray]:
    """kNN-VC's prematched training inputs: every utterance [T_i, D] matched against the other utterances
    of its speaker, so that the model learns to render matched frames. A speaker with one utterance keeps
    it unmatched."""
    matched = list(features)
    for speaker in sorted(set(speakers)):
        members = [i for i, s in enumerate(speakers) if s == speaker]
        if len(members) < 2:
            continue
        pool = np.concatenate([features[i] for i in members])
        owner = np.concatenate([np.full(len(features[i]), i) for i in members])
        for i in members:
            matched[i] = knn_match(features[i], pool, min(k, len(pool) - len(features[i])), exclude=owner == i)
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
    """A target voice given by recordings: content frames [N, D] at 50 fps and the median f0 in Hz."""

    features: np.ndarray
    median_f0: float | None
    seconds: float


def reference_pool(folder: str | Path, encoder: Callable[[np.ndarray], np.ndarray],
                   pitch: Callable[[np.ndarray], np.ndarray] | None) -> ReferencePool:
    """The pool of a folder of the target's recordings, at any sample rate and channel count (resampled to
    16 kHz and mixed down). Unreadable files are skipped; a folder with under MIN_REFERENCE_SECONDS of
    readable audio is refused with one line."""
    folder = Path(folder)
    fix = f"give a folder with at least {MIN_REFERENCE_SECONDS:.0f} s (30 s or more works best) of the target voice"
    if not folder.is_dir():
        raise WaveGradError(f"{folder}: reference folder not found; {fix}")
    pool = pool_of_files(audio_files(folder), encoder, pitch)
    if pool.seconds < MIN_REFERENCE_SECONDS:
        found = f"only {pool.seconds:.1f} s of readable audio" if pool.seconds else "no readable audio"
        raise WaveGradError(f"{folder}: {found} in the reference folder; {fix}")
    return pool


def pool_of_files(files: list[Path], encoder: Callable[[np.ndarray], np.ndarray],
                  pitch: Callable[[np.ndarray], np.ndarray] | None) -> ReferencePool:
    """The pool of recordings `files`, unreadable ones skipped (an empty pool has 0 frames and 0 s);
    without `pitch` it has no median f0."""
    features, f0s, seconds = [], [], 0.0
    for path in files:
        try:
            audio = load_audio(path, FRONTEND_RATE).numpy()
        except AudioError:
            continue
        seconds += len(audio) / FRONTEND_RATE
        features.append(encoder(audio).astype(np.float32))
        if pitch is not None:
            f0s.append(pitch(audio))
    median = median_f0(np.concatenate(f0s)) if f0s else None
    return ReferencePool(np.concatenate(features) if features else np.zeros((0, 0), np.float32), median, seconds)
