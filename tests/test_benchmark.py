"""benchmark.py: the reference's entry points (fibonacci, grid, grid search, RTF) and its command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import benchmark
from tests.tiny_model import ROOT, one_thread, train_tiny_checkpoint
from wavegrad import WaveGrad, linear_betas, load_audio, load_schedule, save_schedule
from wavegrad.filelist import read_filelist


@pytest.fixture
def tiny_model() -> WaveGrad:
    torch.manual_seed(0)
    model = benchmark._model(str(ROOT / "configs/tiny.yaml"), None)
    assert model.config.data_config.sample_rate == 16000
    return model


def test_fibonacci_matches_the_reference_recurrence() -> None:
    assert benchmark.fibonacci(n_iter=6) == pytest.approx([1e-6, 9e-6, 1e-5, 1.9e-5, 2.9e-5, 4.8e-5], rel=1e-12)
    assert benchmark.fibonacci(2e-6, 3e-6, 1) == [2e-6]
    betas = benchmark.fibonacci()
    assert len(betas) == 25
    assert all(c == pytest.approx(a + b) for a, b, c in zip(betas, betas[1:], betas[2:], strict=False))


def test_grid_defaults_to_the_reference_size_and_rtf_is_seconds_per_audio_second() -> None:
    assert benchmark.generate_betas_grid(6, (1e-6, 1e-2)).shape == (9 ** 5, 6)
    assert benchmark.generate_betas_grid(4, (1e-6, 1e-2)).shape == (9 ** 4, 4)
    assert benchmark.compute_rtf(torch.zeros(1, 44100), 3.0, 22050) == pytest.approx(1.5)


def test_grid_search_and_rtf_on_a_filelist(tmp_path: Path, tiny_model: WaveGrad) -> None:
    filelist = tmp_path / "clips.txt"
    filelist.write_text(f"{ROOT / 'data/voices/en_allison/conf-getpin.flac'}\n")
    with one_thread():
        stats = benchmark.estimate_average_rtf_on_filelist(filelist, tiny_model, torch.tensor([1e-4, 1e-2]), False)
        betas, scores = benchmark.iters_schedule_grid_search(tiny_model, filelist, n_iter=3, max_size=4,
                                                             path_to_store_schedule=tmp_path / "3iters.pt",
                                                             verbose=False)
    assert len(stats["rtfs"]) == 1 and stats["average"] > 0
    assert len(scores) == 4 + 1  # the grid and the linear schedule
    assert min(scores.values()) == scores[tuple(float(f"{b:.9g}") for b in betas.tolist())]
    torch.testing.assert_close(load_schedule(tmp_path / "3iters.pt"), betas.float().double())


@pytest.mark.parametrize("command", ["rtf", "search-throughput", "search-quality", "vocoder-eval", "ablation",
                                     "recipe-cost"])
def test_command_line_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([command, "--help"])
    assert exit_info.value.code == 0 and "--config" in capsys.readouterr().out


def test_search_throughput_runs(capsys: pytest.CaptureFixture) -> None:
    with one_thread():
        benchmark.main(["search-throughput", "-c", str(ROOT / "configs/tiny.yaml"), "--clips",
                        str(ROOT / "filelists/test.txt"), "--candidates", "2", "--jobs", "1", "--seconds", "0.3"])
    out = capsys.readouterr().out
    assert "reference-style" in out and "cand/s" in out


def test_search_quality_reports_held_out_scores(capsys: pytest.CaptureFixture) -> None:
    with one_thread():
        benchmark.main(["search-quality", "-c", str(ROOT / "configs/tiny.yaml"), "--clips",
                        str(ROOT / "filelists/test.txt"), "--budget", "8", "--jobs", "1", "--seconds", "0.3",
                        "--n-held-out", "2", "--held-out-seconds", "1.0"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(":")[0].strip(): line for line in lines if "held-out clips" in line}
    assert {"linear", "grid of 8", "grid of 2 + refinement", "fibonacci"} == set(rows)
    assert all("pesq_wb" in row and "stoi" in row for row in rows.values())


def test_schedule_labels_keep_same_named_files_apart() -> None:
    assert benchmark.schedule_labels(["schedules/6iters.pt", "linear:50"]) == ["6iters.pt", "linear:50"]
    assert benchmark.schedule_labels(["schedules/6iters.pt", "/tmp/new/6iters.pt", "a/25iters.pt"]) == [
        "schedules/6iters.pt", "/tmp/new/6iters.pt", "25iters.pt"]


def test_world_pitch_up_doubles_f0_at_12_semitones_and_keeps_the_length() -> None:
    from wavegrad.metrics import f0_track

    audio = load_audio(read_filelist(ROOT / "filelists/test.txt")[0], 16000)
    raised = benchmark.world_pitch_up(audio, 12, 16000)
    f0, f0_raised = f0_track(audio.numpy(), 16000), f0_track(raised.numpy(), 16000)
    assert raised.shape == audio.shape
    assert np.median(f0_raised[f0_raised > 0]) / np.median(f0[f0 > 0]) == pytest.approx(2, rel=0.05)


def test_pitch_trackers_score_a_known_contour(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """harvest on a WORLD resynthesis at its own contour, and at that contour +12: near the truth; pm too."""
    with one_thread():
        benchmark.main(["pitch-trackers", "--trackers", "harvest", "pm", "--n-clips", "1", "--out",
                        str(tmp_path / "trackers")])
    rows = json.loads((tmp_path / "trackers.json").read_text())["rows"]
    means, clips = rows[:4], rows[4:]
    assert [(row["tracker"], row["semitones"], row["clip"]) for row in means] == [
        (t, s, "mean of 1") for s in (0, 12) for t in ("harvest", "pm")]
    assert [(row["tracker"], row["semitones"]) for row in clips] == [(t, s) for s in (0, 12) for t in ("harvest", "pm")]
    assert all(row["f0_corr"] > 0.8 and row["f0_gross_error"] < 0.1 and 0.5 < row["voiced_kept"] <= 1 for row in rows)
    assert "| tracker | semitones | clip |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        benchmark.main(["pitch-trackers", "--trackers", "yin"])
    assert refused.value.code == 2 and "invalid choice: 'yin'" in capsys.readouterr().err


def test_vocoder_eval_writes_voice_means_and_a_row_per_clip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with one_thread():
        checkpoint = train_tiny_checkpoint(tmp_path / "checkpoint_40.pt")
        save_schedule(linear_betas(6), tmp_path / "6iters.pt")
        benchmark.main(["vocoder-eval", "-ch", str(checkpoint), "-ns", str(tmp_path / "6iters.pt"), "linear:3",
                        "--clips", str(ROOT / "filelists/test.txt"), str(ROOT / "filelists/heldout_ru.txt"),
                        "--n-clips", "1", "--griffin-lim", "--out", str(tmp_path / "report")])
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    schedules, voices = ("6iters.pt", "linear:3", "Griffin-Lim (64 iterations)"), ("en_allison", "ru_voice")
    means, clips = rows[:6], rows[6:]
    assert [(row["schedule"], row["voice"], row["clip"]) for row in means] == [
        (s, v, "mean of 1") for s in schedules for v in voices]
    assert [(row["schedule"], row["clip"]) for row in clips] == [
        (s, c) for s in schedules for c in ("conf-getpin", "auth-incorrect")]
    assert all(row["log_mel_l1"] > 0 and {"mr_stft", "f0_rmse_hz", "vuv_error", "f0_corr", "pesq_wb", "stoi"}
               <= set(row) and "f0_corr_recorded" not in row for row in rows)
    assert means[4]["log_mel_l1"] < means[0]["log_mel_l1"]  # Griffin-Lim beats a 40-step tiny vocoder
    assert "| schedule | clip | voice |" in capsys.readouterr().out
    with one_thread():
        benchmark.main(["vocoder-eval", "-ch", str(checkpoint), "-ns", "linear:3", "--clips",
                        str(ROOT / "filelists/test.txt"), "--n-clips", "1", "--pitch-up", "12", "--out",
                        str(tmp_path / "raised")])
    raised = json.loads((tmp_path / "raised.json").read_text())
    assert raised["title"].endswith("clips moved up 12 semitones by WORLD") and len(raised["rows"]) == 2
    assert all({"f0_corr", "f0_corr_recorded"} <= set(row) for row in raised["rows"])

    curve = ["curve", "--csv", str(tmp_path / "curve.csv"), "--png", str(tmp_path / "curve.png")]
    benchmark.main([*curve, "--add", "40", str(tmp_path / "report.json")])
    points = list(csv.DictReader((tmp_path / "curve.csv").open()))
    assert [(p["step"], p["schedule"], p["voices"]) for p in points] == [
        ("40", s, v) for s in schedules for v in ("training", "unseen")]
    for point, mean in zip(points, means, strict=True):  # one voice per group here: its mean is the point
        assert float(point["pesq_wb"]) == pytest.approx(mean["pesq_wb"], abs=5e-4)
        assert float(point["stoi"]) == pytest.approx(mean["stoi"], abs=5e-4)
    assert (tmp_path / "curve.png").stat().st_size > 10_000 and "6 points" in capsys.readouterr().out


def test_curve_refuses_a_point_it_has_and_a_file_that_is_no_report(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    table = tmp_path / "curve.csv"
    table.write_text("step,schedule,voices,pesq_wb,stoi\n100,6iters.pt,training,1.5,0.8\n")
    curve = ["curve", "--csv", str(table), "--png", str(tmp_path / "curve.png")]
    (tmp_path / "notes.json").write_text('{"title": "notes"}')
    (tmp_path / "report.json").write_text(json.dumps({"rows": [
        {"schedule": "6iters.pt", "clip": "mean of 2", "voice": "en_allison", "pesq_wb": 1.6, "stoi": 0.9}]}))
    for add, message in ((["100", str(tmp_path / "report.json")], "step 100 of 6iters.pt is already on the curve"),
                         (["200", str(tmp_path / "notes.json")], "notes.json: not a vocoder-eval report"),
                         (["200", str(tmp_path / "missing.json")], "missing.json: not a vocoder-eval report"),
                         ([str(tmp_path / "notes.json"), "200"], "give the training step first")):
        with pytest.raises(SystemExit) as exit_info:
            benchmark.main([*curve, "--add", *add])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert table.read_text().count("\n") == 2  # nothing the user had was changed
    (tmp_path / "report.json").write_text((tmp_path / "report.json").read_text().replace("6iters", "25iters"))
    benchmark.main([*curve, "--add", "100", str(tmp_path / "report.json")])  # another schedule at that step
    assert table.read_text().splitlines()[-1] == "100,25iters.pt,training,1.6,0.9"


def test_ablation_trains_each_recipe_for_the_same_cpu_time(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Tiny recipes, 4 steps of the reference's cost each: every recipe row and Griffin-Lim, for the training
    voices and the unseen one."""
    with one_thread():
        benchmark.main(["ablation", "-c", str(ROOT / "configs/tiny.yaml"), "--steps", "4", "--threads", "1",
                        "--cost-repeats", "1", "--out", str(tmp_path), "--grid-size", "2", "--budget", "1",
                        "--n-held-out", "1", "--n-unseen", "1"])
    rows = json.loads((tmp_path / "ablation.json").read_text())["rows"]
    recipes = ["Griffin-Lim (64 iterations)"] + [label for label, _, _ in benchmark.ABLATION_ROWS]
    assert [(row["recipe"], row["voices"]) for row in rows] == [
        (recipe, voices) for recipe in recipes for voices in ("training voices", "unseen voice")]
    for row in rows:
        assert {"log_mel_l1", "mr_stft", "pesq_wb", "stoi", "vuv_error"} <= set(row) and row["stoi"] > 0
    costs = json.loads((tmp_path / "costs.json").read_text())
    for row in (row for row in rows if "steps" in row):
        run = next(run for label, run, _ in benchmark.ABLATION_ROWS if label == row["recipe"])
        assert row["steps"] == round(4 * costs["reference"] / costs[run])  # the same CPU time for every recipe
        assert row["CPU s"] == pytest.approx(4 * costs["reference"], rel=0.2)
    gl, reference = rows[0], rows[2]
    assert gl["log_mel_l1"] < reference["log_mel_l1"]  # a 4-step model is far below the Griffin-Lim floor
    assert "Equal-compute ablation" in capsys.readouterr().out


def test_recipe_cost_compares_every_recipe_or_precision(capsys: pytest.CaptureFixture) -> None:
    benchmark.main(["recipe-cost", "-c", str(ROOT / "configs/tiny.yaml"), "--repeats", "1"])
    out = capsys.readouterr().out
    assert all(f"{name}: " in out for name in benchmark.ABLATION_RUNS) and "x1.000 reference" in out
    benchmark.main(["recipe-cost", "-c", str(ROOT / "configs/tiny.yaml"), "--repeats", "1", "--precisions", "fp32",
                    "bf16"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fp32", "bf16"] and lines[0].endswith("x1.000 fp32")


def test_converter_cost_times_each_precision(capsys: pytest.CaptureFixture) -> None:
    benchmark.main(["converter-cost", "--preset", "tiny", "--batch-size", "2", "--seconds", "0.5", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fp32", "bf16"] and lines[0].endswith("x1.000 fp32")
    assert all(float(line.split()[1]) > 0 for line in lines)


def test_timbre_swap_changes_only_the_matched_mels(tmp_path: Path) -> None:
    from tests.vc_fixtures import make_experiment, tiny_audio, tiny_model_config
    from voiceconv.data import ExperimentDataset
    from voiceconv.model import Converter

    filelist = make_experiment(tmp_path, clips=3)
    dataset = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, matched_mels=tiny_audio(),
                                voice_ratios=(0.84, 1.19))
    torch.manual_seed(0)
    model = Converter(tiny_model_config(use_speaker=False, matched_mel=True)).eval()
    deaf = benchmark.timbre_swap(model, dataset, 3, items=4)  # the timbre input at zero: the mels change nothing
    assert all(row == pytest.approx([row[0]] * 3) for row in deaf) and len({round(row[0], 6) for row in deaf}) == 3
    torch.nn.init.normal_(model.timbre.weight)
    assert all(len(set(row)) == 3 for row in benchmark.timbre_swap(model, dataset, 3, items=4))


def test_timbre_swap_refuses_a_model_without_matched_mels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.vc_fixtures import tiny_audio, tiny_model_config
    from voiceconv.checkpoint import export_model
    from voiceconv.model import Converter

    export_model(Converter(tiny_model_config(use_speaker=False)), tmp_path / "plain.pt", tiny_audio().audio_dict(),
                 {"encoder": "toy", "dim": 16}, {})
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["timbre-swap", "-m", str(tmp_path / "plain.pt"), "--exp", "any"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "plain.pt: not a --matched-mel model" in err
