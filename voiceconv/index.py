"""The faiss retrieval index (RVC's recipe): build from training features, save, load, search and blend."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wavegrad.atomic import atomic_write
from wavegrad.errors import WaveGradError

from .config import add_experiment_arguments, open_experiment

if TYPE_CHECKING:  # faiss loads where an index is built or read, not for `voiceconv --help`
    import faiss

    from .content import ContentEncoder
    from .knn import MatchKeys

KMEANS_THRESHOLD = 200_000  # above this many vectors, index k-means centres instead
KMEANS_CENTRES = 10_000
ADD_BATCH = 8192


def ivf_count(n_vectors: int) -> int:
    """RVC's number of IVF lists: min(int(16 * sqrt(N)), N // 39), at least 1."""
    return max(1, min(int(16 * math.sqrt(n_vectors)), n_vectors // 39))


def index_filename(n_ivf: int, exp: str, version: str) -> str:
    return f"added_IVF{n_ivf}_Flat_nprobe_1_{exp}_{version}.index"


def experiment_index(folder: Path, exp: str) -> Path | None:
    """The newest `added_IVF*_Flat_nprobe_1_<exp>_*.index` in an experiment folder, or None."""
    found = sorted(Path(folder).glob(f"added_IVF*_Flat_nprobe_1_{exp}_*.index"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def index_beside(model: Path) -> Path | None:
    """The newest index of the experiment folder holding the voice model `model`; says which, or that there is
    none and the model converts without retrieval."""
    exp = model.parent.name
    found = experiment_index(model.parent, exp)
    if found is None:
        print(f"{model}: no added_IVF*_{exp}_*.index beside it, so it converts without retrieval "
              f"(`voiceconv index --exp {exp}` builds one)")
    else:
        print(f"retrieving with the experiment's index {found} (--index-rate 0 turns it off)")
    return found


def reduce_vectors(vectors: np.ndarray, threshold: int = KMEANS_THRESHOLD, centres: int = KMEANS_CENTRES,
                   seed: int = 0) -> np.ndarray:
    """Rows [N, D] float32 as they are when N <= threshold, else k-means centres [min(centres, threshold), D]
    (a threshold below `centres` caps the count, so there are always fewer centres than vectors)."""
    import faiss

    if len(vectors) <= threshold:
        return vectors
    kmeans = faiss.Kmeans(vectors.shape[1], min(centres, threshold), niter=20, seed=seed,
                          max_points_per_centroid=256)
    kmeans.train(vectors)
    return kmeans.centroids.astype(np.float32)


def build_index(vectors: np.ndarray, threshold: int = KMEANS_THRESHOLD, centres: int = KMEANS_CENTRES,
                seed: int = 0) -> faiss.Index:
    """Shuffle features [N, D], reduce by k-means above `threshold`, and build IVF{n},Flat (L2, nprobe 1)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors = vectors[np.random.default_rng(seed).permutation(len(vectors))]
    vectors = reduce_vectors(vectors, threshold, centres, seed)
    index = faiss.index_factory(vectors.shape[1], f"IVF{ivf_count(len(vectors))},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(vectors)
    for start in range(0, len(vectors), ADD_BATCH):
        index.add(vectors[start:start + ADD_BATCH])
    return index


def save_index(index: faiss.Index, path: str | Path) -> None:
    """Write an index atomically."""
    import faiss

    with atomic_write(path) as tmp:
        faiss.write_index(index, str(tmp))


def load_index(path: str | Path, encoder: ContentEncoder | None = None) -> tuple[faiss.Index, np.ndarray]:
    """Read an index ("trained" in the name becomes "added", as RVC) and its vectors [N, D]; given the model's
    `encoder`, refuse one that holds features rather than the encoder's match keys."""
    import faiss

    path = Path(str(path).replace("trained", "added"))
    if not path.is_file():
        raise WaveGradError(f"{path}: index not found; build it with `voiceconv index --exp NAME`")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise WaveGradError(f"{path}: not a faiss index ({str(exc).splitlines()[0][:120]}); rebuild it") from exc
    vectors = index.reconstruct_n(0, index.ntotal)
    if encoder is not None and not encoder.are_keys(vectors):
        raise WaveGradError(f"{path}: holds content features, not the match keys retrieval compares (built before "
                            "them); rebuild it with `voiceconv index --exp NAME`")
    return index, vectors


def retrieve(index: faiss.Index, vectors: np.ndarray, keys: np.ndarray, k: int = 8) -> np.ndarray:
    """Weighted mean of the k nearest stored vectors per frame: keys [T, D] -> [T, D].

    Weights are (1 / score)^2 normalised per frame; faiss L2 scores are squared distances, so a
    neighbour's weight is proportional to 1 / distance^4 (RVC). An exact match takes all the weight.
    """
    score, ix = index.search(np.ascontiguousarray(keys, dtype=np.float32), k)
    weight = np.square(1 / np.maximum(score, 1e-12))
    weight /= weight.sum(axis=1, keepdims=True)
    return np.sum(vectors[ix] * weight[..., None], axis=1).astype(np.float32)


def blend(feats: np.ndarray, retrieved: np.ndarray, index_rate: float) -> np.ndarray:
    """index_rate * retrieved + (1 - index_rate) * feats, both [T, D]."""
    return (index_rate * retrieved + (1 - index_rate) * feats).astype(np.float32)


def build_experiment_index(feature_dir: Path, out_dir: Path, exp: str, version: str,
                           threshold: int = KMEANS_THRESHOLD, keys: MatchKeys | None = None) -> Path:
    """Stack the match keys of every `<feature_dir>/*.npy` ([frames, D], sorted; `keys`: the encoder's
    `ContentEncoder.match_keys`, default the features as in RVC), build the index and write
    `added_IVF<n>_Flat_nprobe_1_<exp>_<version>.index` into `out_dir`; returns its path."""
    import faiss

    files = sorted(feature_dir.glob("*.npy"))
    if not files:
        raise WaveGradError(f"{feature_dir}: no content features; run `voiceconv features --exp {exp}` first")
    rows = [np.load(f).astype(np.float32) for f in files]
    vectors = np.concatenate([keys(r) for r in rows] if keys is not None else rows)
    index = build_index(vectors, threshold)
    path = out_dir / index_filename(faiss.extract_index_ivf(index).nlist, exp, version)
    save_index(index, path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_experiment_arguments(parser)
    parser.add_argument("--kmeans-threshold", type=int, default=KMEANS_THRESHOLD,
                        help="reduce to 10,000 k-means centres above this many vectors")


def main(args: argparse.Namespace) -> int:
    from .content import experiment_encoder

    exp, config = open_experiment(args.exp, args.logs_dir)
    if config.feature_dim is None:
        raise WaveGradError(f"{exp.config_file}: no content features yet; run `voiceconv features --exp {args.exp}`")
    path = build_experiment_index(exp.feature_dir(config.feature_dim), exp.root, args.exp,
                                  config.encoder_version or "v2", args.kmeans_threshold,
                                  experiment_encoder(config).match_keys)
    print(f"wrote {path}")
    return 0
