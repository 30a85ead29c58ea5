"""Metrics on known cases: a clip against itself, against added noise of known level, and pitch-shifted."""

import librosa
import numpy as np
import pytest
import torch

from wavegrad import metrics, scoring
from wavegrad.audio import MelSpectrogram
from wavegrad.config import DataConfig
from wavegrad.metrics import (
    f0_track,
    log_mel_l1,
    mel_l1,
    multi_resolution_stft,
    pitch_errors,
    vocoder_metrics,
    voiced_kept,
)

CONFIG = DataConfig(sample_rate=16000)


def test_a_clip_against_itself_scores_perfectly(real_clip):
    scores = vocoder_metrics(real_clip, real_clip, CONFIG)
    assert scores["log_mel_l1"] == 0 and scores["mr_stft"] == 0
    assert scores["f0_rmse_hz"] == 0 and scores["vuv_error"] == 0 and scores["f0_gross_error"] == 0
    assert scores["f0_corr"] == pytest.approx(1)
    if "pesq_wb" in scores:
        assert scores["pesq_wb"] > 4.4 and scores["stoi"] > 0.99


def test_distances_grow_with_the_noise_level(real_clip):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(real_clip.shape, generator=generator)
    noisy = torch.stack([real_clip + level * noise for level in (0.001, 0.01, 0.1)])
    mel = log_mel_l1(noisy, real_clip.expand(3, -1), CONFIG)
    stft = multi_resolution_stft(noisy, real_clip.expand(3, -1))
    assert (mel[1:] > mel[:-1]).all() and (stft[1:] > stft[:-1]).all()
    assert mel[0] > 0


def test_pesq_and_stoi_drop_with_noise(real_clip):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    noisy = real_clip + 0.05 * torch.randn(real_clip.shape, generator=torch.Generator().manual_seed(0))
    scores = vocoder_metrics(noisy, real_clip, CONFIG)
    assert scores["pesq_wb"] < 2.5 and scores["stoi"] < 0.95


def test_voiced_kept_counts_the_reference_voiced_frames_only():
    assert voiced_kept(np.array([0.0, 110, 0, 220, 90]), np.array([100.0, 100, 0, 0])) == 0.5
    assert np.isnan(voiced_kept(np.array([100.0, 100]), np.zeros(2)))


def test_pitch_shift_by_two_semitones_is_measured(real_clip):
    audio = real_clip.numpy()
    shifted = librosa.effects.pitch_shift(audio, sr=16000, n_steps=2)
    f0_ref, f0_shift = f0_track(audio, 16000), f0_track(shifted, 16000)
    both = (f0_ref > 0) & (f0_shift > 0)
    ratio = np.median(f0_shift[both] / f0_ref[both])
    assert ratio == pytest.approx(2 ** (2 / 12), rel=0.02)
    errors = pitch_errors(shifted, audio, 16000)
    further = pitch_errors(librosa.effects.pitch_shift(audio, sr=16000, n_steps=5), audio, 16000)
    mean_f0 = np.mean(f0_ref[f0_ref > 0])
    assert 0.8 * mean_f0 * (2 ** (2 / 12) - 1) < errors["f0_rmse_hz"] < further["f0_rmse_hz"]
    assert errors["vuv_error"] < 0.15
    assert errors["f0_corr"] > 0.7  # the offset is no error of the contour (librosa's shift blurs it a little)
    octave_down = librosa.effects.pitch_shift(audio, sr=16000, n_steps=-12)
    assert errors["f0_gross_error"] < 0.5
    assert pitch_errors(octave_down, audio, 16000)["f0_gross_error"] > 0.9


def test_report_has_a_markdown_table_and_json(tmp_path):
    import json

    from wavegrad.metrics import write_report

    rows = [{"iterations": 6, "log_mel_l1": 0.5, "pesq_wb": float("nan")}, {"iterations": 25, "log_mel_l1": 0.25}]
    write_report(rows, tmp_path / "report", "Vocoder")
    table = (tmp_path / "report.md").read_text().splitlines()
    assert table[0] == "# Vocoder" and table[2] == "| iterations | log_mel_l1 | pesq_wb |"
    assert table[4] == "| 6 | 0.500 | n/a |" and table[5] == "| 25 | 0.250 |  |"
    assert json.loads((tmp_path / "report.json").read_text())["rows"][1]["iterations"] == 25


def test_every_log_mel_l1_is_mel_l1(real_clip, monkeypatch):
    """The metric, the search's distance and (tests/test_train.py) the training's test/mel_l1 all call mel_l1."""
    noise = torch.randn(real_clip.shape, generator=torch.Generator().manual_seed(0))
    noisy = torch.stack([real_clip + level * noise for level in (0.01, 0.1)])
    reference, mel_fn = real_clip.expand(2, -1), MelSpectrogram(CONFIG)
    expected = (mel_fn(noisy) - mel_fn(reference)).abs().mean(dim=(1, 2))
    torch.testing.assert_close(mel_l1(mel_fn(noisy), mel_fn(reference)), expected)
    torch.testing.assert_close(log_mel_l1(noisy, reference, CONFIG), expected)
    torch.testing.assert_close(scoring.distance(noisy, reference, mel_fn(reference), mel_fn), expected)
    assert scoring.mel_l1 is metrics.mel_l1
    monkeypatch.setattr(metrics, "mel_l1", lambda a, b: torch.full(a.shape[:-2], 7.0))
    assert log_mel_l1(noisy, reference, CONFIG).tolist() == [7.0, 7.0]
