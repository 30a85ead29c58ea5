"""The faiss index: IVF count formula, k-means branch, file name, retrieval weights and blending."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from voiceconv.index import (
    blend,
    build_experiment_index,
    build_index,
    index_beside,
    index_filename,
    ivf_count,
    load_index,
    retrieve,
)


@pytest.mark.parametrize("n, expected", [(1000, 25), (39, 1), (10, 1), (200_000, 5128), (1_000_000, 16000)])
def test_ivf_count_is_min_of_16_sqrt_n_and_n_over_39(n: int, expected: int) -> None:
    assert ivf_count(n) == expected


def test_kmeans_branch_only_above_threshold() -> None:
    vectors = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    reduced = build_index(vectors, threshold=300, centres=50)
    kept = build_index(vectors, threshold=400, centres=50)
    assert reduced.ntotal == 50 and faiss.extract_index_ivf(reduced).nlist == ivf_count(50)
    assert kept.ntotal == 400 and faiss.extract_index_ivf(kept).nlist == ivf_count(400) == 10
    assert faiss.extract_index_ivf(kept).nprobe == 1
    capped = build_index(vectors, threshold=100)  # 10,000 centres capped at the threshold
    assert capped.ntotal == 100


def test_experiment_index_file_name_and_round_trip(tmp_path) -> None:
    features = tmp_path / "3_feature8"
    features.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(features / f"{i}_0.npy", rng.normal(size=(100, 8)).astype(np.float32))
    path = build_experiment_index(features, tmp_path, "alice", "v2")
    assert path.name == index_filename(ivf_count(300), "alice", "v2") == "added_IVF7_Flat_nprobe_1_alice_v2.index"
    index, vectors = load_index(str(path).replace("added", "trained"))
    assert vectors.shape == (300, 8)
    stored = np.concatenate([np.load(f) for f in sorted(features.glob("*.npy"))])
    assert np.allclose(np.sort(vectors, axis=0), np.sort(stored, axis=0))
    place = np.arange(100, dtype=np.float32)[:, None]  # a key per file: what each frame says less its place

    def keys(rows: np.ndarray) -> np.ndarray:
        return rows - place[:len(rows)]

    _, keyed = load_index(build_experiment_index(features, tmp_path, "keyed", "v2", keys=keys))
    assert np.allclose(np.sort(keyed, axis=0), np.sort(stored - np.tile(place, (3, 1)), axis=0), atol=1e-5)


def test_the_index_beside_a_voice_model_is_found_by_its_experiment_or_reported_missing(tmp_path, capsys) -> None:
    folder = tmp_path / "alice"
    folder.mkdir()
    model = folder / "alice.pt"
    assert index_beside(model) is None
    said = capsys.readouterr().out
    assert "alice.pt: no added_IVF*_alice_*.index beside it, so it converts without retrieval" in said
    (folder / index_filename(7, "bob", "v2")).touch()  # another experiment's index is not this model's
    assert index_beside(model) is None
    path = folder / index_filename(7, "alice", "v2")
    path.touch()
    assert index_beside(model) == path
    assert f"retrieving with the experiment's index {path}" in capsys.readouterr().out


def test_retrieval_weights_are_inverse_square_scores() -> None:
    stored = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [10.0, 10.0]], dtype=np.float32)
    index = faiss.IndexFlatL2(2)
    index.add(stored)
    query = np.array([[0.5, 0.5]], dtype=np.float32)
    # squared distances: 0.5, 0.5, 2.5 (the far point is not among k=3)
    weights = np.array([1 / 0.5**2, 1 / 0.5**2, 1 / 2.5**2])
    expected = (weights[:, None] * stored[:3]).sum(0) / weights.sum()
    assert np.allclose(retrieve(index, stored, query, k=3), expected, atol=1e-6)
    # an exact match takes (nearly) all the weight
    assert np.allclose(retrieve(index, stored, stored[1:2], k=3), stored[1], atol=1e-5)


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_blend_by_index_rate(rate: float) -> None:
    feats, retrieved = np.zeros((4, 3), np.float32), np.ones((4, 3), np.float32)
    out = blend(feats, retrieved, rate)
    assert np.allclose(out, rate)
    if rate == 0.0:
        assert np.array_equal(out, feats)
    if rate == 1.0:
        assert np.array_equal(out, retrieved)
