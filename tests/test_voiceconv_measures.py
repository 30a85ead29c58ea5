"""Conversion metrics on known cases: same vs other speaker, pitch contours, error rates, the recogniser."""

import librosa
import numpy as np
import pytest

from voiceconv.measures import (
    character_error_rate,
    dnsmos,
    pitch_agreement,
    speaker_centroid,
    speaker_similarity,
    transcribe,
)
from voiceconv.pitch import pitch_estimator
from wavegrad.audio import read_audio

from .conftest import FEMALE_CLIP, MALE_CLIP, VOICES


def _clip(path):
    return read_audio(path)[0]


def test_speaker_similarity_prefers_the_same_speaker():
    allison = speaker_centroid([_clip(VOICES / "en_allison" / n) for n in ("conf-locked.flac", "vm-nobox.flac")], 16000)
    same = speaker_similarity(_clip(FEMALE_CLIP), allison, 16000)
    other = speaker_similarity(_clip(MALE_CLIP), allison, 16000)
    assert same > 0.8 and other < same - 0.15


@pytest.mark.parametrize("method", ["harvest", "fcpe"])
def test_pitch_agreement_follows_the_contour_not_the_offset(method):
    audio, track = _clip(FEMALE_CLIP), pitch_estimator(method)
    shifted = librosa.effects.pitch_shift(audio, sr=16000, n_steps=3)
    corr, kept = pitch_agreement(shifted, audio, 16000, track)
    assert corr > 0.75 and kept > 0.8
    flat = 0.3 * np.sin(2 * np.pi * 220 * np.arange(len(audio)) / 16000).astype(np.float32)
    assert abs(pitch_agreement(flat + 0.01 * audio, audio, 16000, track)[0]) < 0.5
    at_22k = (librosa.resample(a, orig_sr=16000, target_sr=22050) for a in (shifted, audio))
    assert pitch_agreement(*at_22k, 22050, track) == pytest.approx((corr, kept), abs=0.05)
    silence = np.zeros_like(audio)
    assert pitch_agreement(silence, audio, 16000, track)[1] == 0  # no voiced frame kept


def test_character_error_rate():
    assert character_error_rate("Please enter the PIN.", "please enter the pin") == 0
    assert character_error_rate("plese enter", "please enter") == pytest.approx(1 / 12)
    assert character_error_rate("", "abc") == 1


def test_bundled_recogniser_transcribes_real_speech():
    text = transcribe(_clip(FEMALE_CLIP), 16000)
    assert character_error_rate(text, "Please enter the conference PIN number.") < 0.1


def test_recogniser_reads_an_unsure_clip_the_same_way_twice():
    backwards = _clip(FEMALE_CLIP)[::-1].copy()  # gibberish: a sampling fallback would read it differently
    assert transcribe(backwards, 16000) == transcribe(backwards, 16000)


def test_dnsmos_scores_speech_above_noise():
    audio = _clip(FEMALE_CLIP)
    noise = np.random.default_rng(0).normal(0, 0.1, len(audio)).astype(np.float32)
    assert dnsmos(audio, 16000)["dnsmos_ovrl"] > dnsmos(noise, 16000)["dnsmos_ovrl"] + 0.5
