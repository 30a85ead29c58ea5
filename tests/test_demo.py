"""Every step of the end-to-end demo, at a tiny size: vocoder, search, rendering, conversion, reports."""

import importlib.util
import json
import math
import shutil
import subprocess
import sys
import uuid

import pytest
import soundfile as sf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from .conftest import REPO, VOICES


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo", REPO / "runs" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_report_means_and_refreshing_the_curated_samples(tmp_path):
    demo = _demo_module()
    rows = [{"clip": "a", "output": "x", "cer": 0.2, "pitch": math.nan},
            {"clip": "b", "output": "x", "cer": 0.4, "pitch": 0.5},
            {"clip": "a", "output": "y", "cer": 1.0, "pitch": math.nan}]
    means = demo.with_means(rows, "output")
    assert means[:3] == rows and [(m["clip"], m["output"]) for m in means[3:]] == [("mean", "x"), ("mean", "y")]
    assert means[3]["cer"] == pytest.approx(0.3) and means[3]["pitch"] == 0.5 and math.isnan(means[4]["pitch"])
    samples, curated = tmp_path / "samples", tmp_path / "curated"
    (samples / "vocoder").mkdir(parents=True)
    (samples / "vocoder" / "a.wav").write_bytes(b"new")
    (samples / "report.md").write_text("new")
    (samples / demo.EVALUATION_AUDIO).mkdir(parents=True)
    (samples / demo.EVALUATION_AUDIO / "pair.wav").write_bytes(b"many")
    (samples / demo.EVALUATION_AUDIO.parent / "evaluation.md").write_text("table")
    curated.mkdir()
    (curated / "README.md").write_text("kept")
    (curated / "report.md").write_text("old")
    demo.refresh_samples(samples, curated)
    assert (curated / "vocoder" / "a.wav").read_bytes() == b"new" and (curated / "report.md").read_text() == "new"
    assert (curated / "README.md").read_text() == "kept"
    assert (curated / demo.EVALUATION_AUDIO.parent / "evaluation.md").read_text() == "table"
    assert not (curated / demo.EVALUATION_AUDIO).exists()  # the evaluation's clips stay in the run folder


def test_demo_steps_run_end_to_end_at_a_tiny_size(tmp_path):
    exp = f"pytest-demo-{uuid.uuid4().hex[:8]}"
    curated = _snapshot(REPO / "generated_samples")
    target = tmp_path / "fr_june"
    target.mkdir()
    for clip in sorted((VOICES / "fr_june").glob("*.flac"))[:6]:
        shutil.copy(clip, target)
    command = [sys.executable, str(REPO / "runs" / "demo.py"), "--exp", exp,
               "--config", str(REPO / "configs" / "tiny.yaml"), "--retrain-vocoder", "--vocoder-steps", "3",
               "--grid-size", "4", "--search-budget", "2",
               "--vc-epochs", "1", "--vc-preset", "tiny", "--vc-input", str(target), "--f0-method", "pm"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        samples = REPO / "logs" / exp / "samples"  # the default: git-ignored
        assert _snapshot(REPO / "generated_samples") == curated  # the tracked samples are left alone
        assert "| mean | 6 |" in result.stdout and "| zero-shot | ru_voice | 4 |" in result.stdout
        assert "train epoch 1/1" in result.stderr
        vocoder = json.loads((samples / "vocoder_report.json").read_text())["rows"]
        assert {row["iterations"] for row in vocoder} == {6, 25, 50}
        assert {"log_mel_l1", "mr_stft", "f0_rmse_hz", "vuv_error", "pesq_wb", "stoi"} <= set(vocoder[0])
        conversion = json.loads((samples / "conversion_eval" / "evaluation.json").read_text())["rows"]
        assert {(row["system"], row["target"]) for row in conversion} == {
            ("no conversion", "fr_june"), ("no conversion", "ru_voice"), ("no conversion", "all"),
            ("target's own speech", "fr_june"), ("target's own speech", "ru_voice"), ("target's own speech", "all"),
            ("fine-tuned", "fr_june"), ("fine-tuned", "all"),
            ("zero-shot", "fr_june"), ("zero-shot", "ru_voice"), ("zero-shot", "all")}
        assert {"margin", "margin_raw", "cer_ratio", "f0_corr_0", "f0_corr_12", "rtf"} <= set(conversion[0])
        converted = samples / "conversion" / "conf-getpin_to_fr_june_+12.wav"
        source = sf.info(VOICES / "en_allison" / "conf-getpin.flac")
        assert sf.info(converted).samplerate == 16000
        assert abs(sf.info(converted).frames - source.frames) <= 300
        for picture in ("rtf_vs_iterations.png", "vocoder/conf-getpin_mels.png", "conversion/conf-getpin_mels.png"):
            assert (samples / picture).stat().st_size > 1000
        assert "| clip | iterations |" in (samples / "vocoder_report.md").read_text()
        events = EventAccumulator(str(REPO / "logs" / exp))
        events.Reload()
        assert {"schedule/6iters", "vocoder/conf-getpin_mels", "conversion/conf-getpin_mels",
                "rtf_vs_iterations"} <= set(events.Tags()["images"])
        assert {"vocoder_report/text_summary", "conversion_evaluation/text_summary"} <= set(events.Tags()["tensors"])
    finally:
        for folder in (REPO / "logs").glob(f"{exp}*"):
            shutil.rmtree(folder)
