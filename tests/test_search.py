"""Schedule search: the reference's grid, batched scoring, search quality, resume, bad inputs, CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_model import ROOT, one_thread, train_tiny_checkpoint
from wavegrad import AudioError, ScheduleError, WaveGrad, WaveGradError, load_model, load_schedule
from wavegrad import search as search_module
from wavegrad.__main__ import main as cli
from wavegrad.filelist import read_filelist
from wavegrad.schedule import linear_betas
from wavegrad.scoring import distance, prepare_clips, score_schedules
from wavegrad.search import Evaluator, _key, _score_chunk, generate_betas_grid, refine, search

TEST_LIST = ROOT / "filelists" / "test.txt"


@pytest.fixture(scope="module", autouse=True)
def single_thread():  # noqa: ANN201
    with one_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    path = train_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint_40.pt")
    return path, load_model(path, device="cpu")


@pytest.fixture(scope="module")
def clips(trained):  # noqa: ANN001, ANN201
    return prepare_clips(read_filelist(TEST_LIST), trained[1].config.data_config, 6, seconds=0.3, n_clips=2)


def test_full_grid_is_the_product_of_multipliers_and_log_spaced_exponents() -> None:
    grid = generate_betas_grid(3, (1e-6, 1e-2))
    expected = torch.tensor(list(itertools.product(range(1, 10), repeat=3)), dtype=torch.float64)
    expected *= torch.tensor([1e-6, 1e-4, 1e-2], dtype=torch.float64)
    assert grid.shape == (729, 3)
    torch.testing.assert_close(grid, expected, rtol=1e-12, atol=0)


def test_subsampled_grid_takes_evenly_spaced_candidates_of_the_full_grid() -> None:
    full = generate_betas_grid(5, (1e-6, 1e-2))
    sub = generate_betas_grid(5, (1e-6, 1e-2), max_size=1000)
    assert full.shape == (9 ** 5, 5) and sub.shape == (1000, 5)
    index = torch.tensor([k * 9 ** 5 // 1000 for k in range(1000)])
    torch.testing.assert_close(sub, full[index], rtol=1e-12, atol=0)
    assert generate_betas_grid(2, (1e-6, 1e-2), max_size=10 ** 6).shape == (81, 2)
    big = generate_betas_grid(25, (1e-6, 1e-2), max_size=50)  # 9**25 candidates: never materialised
    assert big.shape == (50, 25) and ((big > 0) & (big < 1)).all()
    assert torch.allclose(big[0], torch.logspace(-6, -2, 25, dtype=torch.float64))
    with pytest.warns(UserWarning, match="fixes the last multipliers"):
        aliased = generate_betas_grid(6, (1e-6, 1e-2), max_size=729)
    assert (aliased[:, 3:] == aliased[0, 3:]).all()  # why it warns


@pytest.mark.parametrize("n_iter, betas_range", [(0, (1e-6, 1e-2)), (6, (0.0, 1e-2)), (6, (1e-6, 1.0)),
                                                 (6, (1e-2, 1e-6)), (6, (1e-6, 0.2))])
def test_bad_grid_arguments_are_refused(n_iter: int, betas_range: tuple[float, float]) -> None:
    with pytest.raises(ScheduleError, match="n_iter|betas range"):
        generate_betas_grid(n_iter, betas_range)


def test_empty_clip_list_is_refused(tmp_path: Path, trained, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    with pytest.raises(AudioError, match="clip list is empty"):
        prepare_clips([], trained[1].config.data_config, 6)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    status = cli(["search", "-ch", str(trained[0]), "-n", "6", "--clips", str(empty), "--out",
                  str(tmp_path / "6iters.pt")])
    assert status == 2 and "empty" in capsys.readouterr().err


def test_batched_scores_equal_one_by_one(trained, clips) -> None:  # noqa: ANN001
    candidates = torch.stack([linear_betas(6), generate_betas_grid(6, (1e-6, 1e-2), 7)[3],
                              torch.tensor([1e-6, 1.89e-5, 1e-4, 1e-3, 1.11e-2, 6e-2], dtype=torch.float64)])
    batched = score_schedules(trained[1], clips, candidates)
    single = [score_schedules(trained[1], clips, c[None])[0] for c in candidates]
    assert torch.allclose(torch.tensor(batched), torch.tensor(single), rtol=1e-4, atol=0)
    assert len(set(batched.round(4))) == 3  # the candidates really differ


@pytest.mark.parametrize("backend", ["threading", "multiprocessing", "dask"])
def test_other_joblib_backends_score_as_one_process(trained, clips, backend: str) -> None:  # noqa: ANN001
    candidates = generate_betas_grid(6, (1e-6, 1e-2), 4)
    expected = score_schedules(trained[1], clips, candidates)
    try:
        scores = Evaluator(trained[1], clips, jobs=2, backend=backend, batch_size=2, verbose=False)(candidates)
    finally:
        if backend == "dask":  # stop the local cluster that the evaluator started
            from distributed import get_client

            get_client().close()
    assert torch.allclose(torch.tensor(scores), torch.tensor(expected), rtol=1e-4, atol=0)


def test_mrstft_distance_is_zero_only_for_identical_audio(clips) -> None:  # noqa: ANN001
    same = distance(clips.audio, clips.audio, clips.mels, clips.mel_fn, "mrstft")
    other = distance(clips.audio.flip(0), clips.audio, clips.mels, clips.mel_fn, "mrstft")
    assert torch.allclose(same, torch.zeros(2), atol=1e-6) and (other > 0.1).all()
    with pytest.raises(WaveGradError, match="unknown metric"):
        distance(clips.audio, clips.audio, clips.mels, clips.mel_fn, "snr")


@pytest.mark.parametrize(("metric", "best"), [("pesq", -4.64), ("stoi", -1.0)])
def test_perceptual_distances_are_negated_scores_that_rank_added_noise_worse(trained, metric, best) -> None:  # noqa: ANN001
    long = prepare_clips(read_filelist(TEST_LIST), trained[1].config.data_config, 6, seconds=1.5, n_clips=2)
    noisy = long.audio + 0.03 * torch.randn(long.audio.shape, generator=torch.Generator().manual_seed(0))
    same = distance(long.audio, long.audio, long.mels, long.mel_fn, metric)
    worse = distance(noisy, long.audio, long.mels, long.mel_fn, metric)
    assert same.shape == worse.shape == (2,)
    assert torch.allclose(same.double(), torch.full((2,), best, dtype=torch.float64), atol=0.01)
    assert (worse > same + 0.05).all()


def test_search_beats_linear_and_its_best_grid_point(trained, clips) -> None:  # noqa: ANN001
    evaluate = Evaluator(trained[1], clips, batch_size=8, verbose=False)
    result = search(evaluate, 6, grid_size=16, refine_budget=24)
    assert result.starts == 16 and 0 < result.refined <= 24  # 15 grid points + linear, then the refinement
    assert evaluate.evaluated == result.candidates  # a fresh evaluator: every candidate was new
    grid_best = evaluate(generate_betas_grid(6, (1e-6, 1e-2), 15)).min()  # cached: nothing re-scored
    linear = score_schedules(trained[1], clips, linear_betas(6)[None])[0]
    assert evaluate.evaluated == len(evaluate.cache)
    assert result.score <= grid_best and result.score <= linear
    assert result.score < min(grid_best, linear)  # the refinement improved on its start here
    assert score_schedules(trained[1], clips, result.betas[None])[0] == pytest.approx(result.score, rel=1e-4)


def test_interrupted_search_resumes_without_rescoring(tmp_path: Path, trained, clips) -> None:  # noqa: ANN001
    stats = tmp_path / "6iters.stats.jsonl"
    first = search(Evaluator(trained[1], clips, verbose=False, stats_path=stats), 6, grid_size=5, refine_budget=6)
    lines = stats.read_text().splitlines()
    assert len(lines) == 1 + 5 + 6
    stats.write_text("\n".join(lines[:6]) + '\n{"betas": [1e-06, 2')  # killed mid-write after 5 results
    evaluate = Evaluator(trained[1], clips, verbose=False, stats_path=stats)
    assert len(evaluate.cache) == 5
    second = search(evaluate, 6, grid_size=5, refine_budget=6)
    assert evaluate.evaluated == 5 + 6 - 5 and second.candidates == first.candidates == 5 + 6
    assert torch.allclose(second.betas, first.betas) and second.score == pytest.approx(first.score)
    assert len(stats.read_text().splitlines()) == 1 + 5 + 6
    with pytest.raises(WaveGradError, match="different search"):
        Evaluator(trained[1], clips, metric="mrstft", verbose=False, stats_path=stats)


def test_refinement_budget_counts_distinct_new_candidates() -> None:
    """Moving back to an already scored point is free: `budget` new candidates are scored, no more, no fewer."""
    target = torch.tensor([-5.0, -4.5, -4.0, -3.0, -2.0, -1.5], dtype=torch.float64)
    asked: list[tuple[float, ...]] = []

    def evaluate(betas: torch.Tensor, desc: str = "") -> torch.Tensor:
        asked.extend(map(_key, betas.numpy()))
        return ((betas.log10() - target) ** 2).sum(dim=1).numpy()

    start = linear_betas(6)
    seen = {_key(start.double().numpy())}
    betas, score, used = refine(evaluate, start, float(evaluate(start[None])[0]), 60, seen=seen)
    assert used == 60 and len(set(asked) - {_key(start.double().numpy())}) == 60 and len(seen) == 61
    assert len(asked) > 61  # some candidates were asked again (free), as the old count did not allow for
    assert score < ((start.log10() - target) ** 2).sum()


def test_grid_size_counts_the_linear_schedule(trained, clips) -> None:  # noqa: ANN001
    evaluate = Evaluator(trained[1], clips, verbose=False)
    assert search(evaluate, 6, grid_size=1, refine_budget=0).starts == 1
    assert list(evaluate.cache) == [_key(linear_betas(6).double().numpy())]
    with pytest.raises(ScheduleError, match="grid size"):
        search(evaluate, 6, grid_size=0, refine_budget=0)


def test_a_known_schedule_joins_the_starts_and_the_refinement_starts_from_it(trained, clips) -> None:  # noqa: ANN001
    evaluate = Evaluator(trained[1], clips, batch_size=8, verbose=False)
    first = search(evaluate, 6, grid_size=16, refine_budget=12)
    again = search(evaluate, 6, grid_size=1, refine_budget=4, extra_starts=(first.betas.float(),))
    assert again.starts == 2  # linear and the known schedule
    torch.testing.assert_close(again.start_betas, first.betas.double(), rtol=1e-6, atol=0)
    assert again.start_score == pytest.approx(first.score) and again.score <= first.score
    with pytest.raises(ScheduleError, match="has 12 betas; this search is for 6"):
        search(evaluate, 6, grid_size=1, refine_budget=0, extra_starts=(linear_betas(12),))


def test_cli_refuses_a_start_schedule_of_another_length(tmp_path: Path, trained, capsys) -> None:  # noqa: ANN001
    status = cli(["search", "-ch", str(trained[0]), "-n", "6", "--clips", str(TEST_LIST), "--out",
                  str(tmp_path / "6iters.pt"), "--start", "25iters", "--seconds", "0.3", "-v", "no"])
    assert status == 2 and "has 25 betas; this search is for 6" in capsys.readouterr().err
    assert not (tmp_path / "6iters.pt").exists()


def test_cli_writes_schedule_repeats_stats_and_plot(tmp_path: Path, trained, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "schedules" / "6iters.pt"
    status = cli(["search", "-ch", str(trained[0]), "-n", "6", "--clips", str(TEST_LIST), "--out", str(out),
                  "--grid-size", "8", "--budget", "6", "--jobs", "2", "--seconds", "0.3", "--repeat", "2",
                  "-v", "no"])
    assert status == 0
    betas = load_schedule(out)
    assert betas.shape == (6,)
    torch.testing.assert_close(load_schedule(out.with_name("12iters.pt")), betas.repeat_interleave(2))
    entries = [json.loads(line) for line in out.with_suffix(".stats.jsonl").read_text().splitlines()[1:]]
    assert len(entries) == 8 + 6
    assert "after 14 candidates (8 start + 6 refinement; 14 scored now" in capsys.readouterr().out
    best = min(entries, key=lambda e: e["score"])
    torch.testing.assert_close(betas, torch.tensor(best["betas"]).double(), rtol=1e-6, atol=0)
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_scoring_leaves_the_thread_count_to_the_worker_entry_point(tiny_config, monkeypatch) -> None:  # noqa: ANN001
    """score_schedules keeps the caller's thread count; _score_chunk (what a joblib worker runs) uses its own
    count for the call and restores the previous one (joblib runs one job in the calling process)."""
    model = WaveGrad(tiny_config).eval()
    few = prepare_clips(read_filelist(TEST_LIST), tiny_config.data_config, 2, seconds=0.1, n_clips=1)
    torch.set_num_threads(1)
    score_schedules(model, few, linear_betas(2)[None])
    assert torch.get_num_threads() == 1
    seen = []
    monkeypatch.setattr(search_module, "score_schedules",
                        lambda *args: seen.append((len(args), torch.get_num_threads())) or np.zeros(1))
    _score_chunk(model, few, [(1e-4, 0.05)], "mel", 2)
    assert seen == [(4, 2)] and torch.get_num_threads() == 1
