"""voiceconv data preparation on the bundled real voices: slicer, segments, normalisation, pitch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from voiceconv.config import PreprocessSettings
from voiceconv.pitch import coarse_pitch, pitch_estimator
from voiceconv.preprocess import highpass, normalize, segment_bounds, slice_silences, split_audio
from voiceconv.rates import PITCH_HOP
from wavegrad.audio import load_audio
from wavegrad.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
VOICES = REPO / "data" / "voices"
FEMALE_CLIP = VOICES / "en_allison" / "conf-getpin.flac"
MALE_CLIP = VOICES / "it_carlo" / "conf-getpin.flac"

SR = 16000
S = PreprocessSettings()


def clip(path) -> np.ndarray:
    return load_audio(path, SR).numpy()


def test_highpass_removes_dc_and_rumble_keeps_speech_band() -> None:
    t = np.arange(SR * 2) / SR
    low = highpass(0.3 + 0.3 * np.sin(2 * np.pi * 15 * t), SR, S)
    mid = highpass(0.3 * np.sin(2 * np.pi * 1000 * t), SR, S)
    assert np.abs(low[SR:]).max() < 0.01  # DC and 15 Hz gone after the transient
    assert np.sqrt(np.mean(mid[SR:] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)


def test_slicer_cuts_long_silence_only_on_real_speech() -> None:
    """Speech A, 1.2 s of silence, speech B, 0.2 s of silence, speech C: one cut, inside the long silence."""
    a, b, c = clip(FEMALE_CLIP), clip(VOICES / "en_allison" / "one-moment-please.flac"), clip(MALE_CLIP)
    audio = np.concatenate([a, np.zeros(int(1.2 * SR)), b, np.zeros(int(0.2 * SR)), c]).astype(np.float32)
    slices = slice_silences(audio, SR, S)
    assert len(slices) == 2
    (s0, e0), (s1, e1) = slices
    assert s0 == 0 and e1 == len(audio)
    gap_start, gap_end = len(a), len(a) + int(1.2 * SR)
    assert gap_start - 0.2 * SR <= e0 <= gap_start + 0.5 * SR + 1  # at most max_sil_kept of silence kept
    assert gap_end - 0.5 * SR - 1 <= s1 <= gap_end + 0.1 * SR
    assert e0 < s1  # the silence in between is dropped
    # A clip shorter than min_length is never sliced.
    assert slice_silences(a[:SR], SR, S) == [(0, SR)]


def test_segments_are_3_7_s_with_0_3_s_overlap() -> None:
    length = int(11.5 * SR)
    bounds = segment_bounds(length, SR, S)
    assert [b - a for a, b in bounds[:-1]] == [int(3.7 * SR)] * (len(bounds) - 1)
    assert [a for a, _ in bounds] == [int(3.4 * SR) * i for i in range(len(bounds))]
    assert all(prev[1] - nxt[0] == int(0.3 * SR) for prev, nxt in zip(bounds, bounds[1:], strict=False))
    assert bounds[-1][1] == length and bounds[-1][1] - bounds[-1][0] <= 4.0 * SR
    assert len(bounds) == 4  # starts 0, 3.4, 6.8 s (4.7 s left > 4.0), 10.2 s (1.3 s left: the last piece)
    assert segment_bounds(int(4.0 * SR), SR, S) == [(0, int(4.0 * SR))]  # up to per + overlap stays whole


def test_split_audio_on_real_speech_counts_and_lengths() -> None:
    speech = np.concatenate([clip(f) for f in sorted((VOICES / "it_carlo").glob("*.flac"))[:4]])
    audio = np.concatenate([speech, np.zeros(SR), clip(FEMALE_CLIP)]).astype(np.float32)
    expected = sum(len(segment_bounds(e - s, SR, S)) for s, e in slice_silences(highpass(audio, SR, S), SR, S))
    segments = split_audio(audio, SR, S)
    assert len(segments) == expected >= 3
    assert max(len(x) for x in segments) <= 4.0 * SR
    assert sum(len(x) == int(3.7 * SR) for x in segments) >= 1
    assert all(0.675 <= np.abs(x).max() <= 0.925 for x in segments)  # 0.9 * 0.75 + 0.25 * peak, peak <= 1


def test_normalisation_numbers() -> None:
    x = np.array([0.5, -0.25, 0.1], dtype=np.float32)
    np.testing.assert_allclose(normalize(x, S), [0.8, -0.4, 0.16], rtol=1e-6)  # x/0.5*0.675 + 0.25*x
    loud = np.array([0.1, 3.0], dtype=np.float32)
    assert normalize(loud, S) is None  # peak above 2.5 is dropped
    assert normalize(np.zeros(100, np.float32), S) is None
    quiet = clip(FEMALE_CLIP) * 0.1
    m = np.abs(quiet).max()
    assert np.abs(normalize(quiet, S)).max() == pytest.approx(0.675 + 0.25 * m, rel=1e-5)


def test_coarse_pitch_formula() -> None:
    assert coarse_pitch(np.array([50.0, 1100.0, 0.0])).tolist() == [1, 255, 1]
    assert coarse_pitch(np.array([20.0, 3000.0])).tolist() == [1, 255]  # clamped
    mel = 1127 * np.log(1 + 220 / 700)
    assert coarse_pitch(np.array([220.0]))[0] == round((mel - 77.75) * 254 / (1064.41 - 77.75) + 1)
    assert coarse_pitch(np.array([220.0])).dtype == np.int64


def _available(method: str) -> bool:
    package = {"crepe-tiny": "torchcrepe", "crepe": "torchcrepe", "fcpe": "torchfcpe"}.get(method)
    return package is None or importlib.util.find_spec(package) is not None


@pytest.mark.parametrize("method", ["pm", "harvest", "dio", "crepe-tiny", "fcpe"])
def test_pitch_of_real_female_and_male(method: str) -> None:
    if not _available(method):
        pytest.skip(f"optional package for {method} not installed")
    estimate = pitch_estimator(method)
    medians = {}
    for name, path in [("female", FEMALE_CLIP), ("male", MALE_CLIP)]:
        audio = clip(path)
        f0 = estimate(audio)
        assert f0.shape == (len(audio) // PITCH_HOP,) and f0.dtype == np.float32
        voiced = f0[f0 > 0]
        assert len(voiced) > 0.5 * len(f0)
        assert voiced.min() >= 50 and voiced.max() <= 1100
        medians[name] = float(np.median(voiced))
    assert 165 <= medians["female"] <= 300, medians
    assert 85 <= medians["male"] <= 185, medians
    assert medians["female"] > medians["male"] + 25, medians


def test_unavailable_pitch_method_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchcrepe", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="torchcrepe"):
        pitch_estimator("crepe")
    with pytest.raises(ConfigError, match="unknown pitch method"):
        pitch_estimator("rmvpe")
