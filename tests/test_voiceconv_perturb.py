"""Voice perturbation of training inputs: the envelope warp, the pitch moves, WORLD resynthesis, the fixed draw
per segment, and the perturbed features an experiment trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceconv.batch import Job
from voiceconv.config import Experiment
from voiceconv.content import FeatureWorker
from voiceconv.data import ExperimentDataset
from voiceconv.perturb import FORMANT_RATIO, PITCH_RATIO, Perturbation, move_pitch, perturb, warp_envelope
from voiceconv.pitch import pitch_estimator
from wavegrad.audio import load_audio, save_audio
from wavegrad.errors import WaveGradError

from .vc_fixtures import VOICES, make_experiment


def test_envelope_warp_moves_a_peak_by_the_ratio() -> None:
    envelope = np.full((3, 513), 1e-4)
    envelope[:, 100] = 1.0
    assert np.argmax(warp_envelope(envelope, 1.3)[0]) == 130
    assert np.argmax(warp_envelope(envelope, 0.8)[0]) == 80
    assert np.allclose(warp_envelope(envelope, 1.0), envelope)


def test_pitch_moves_by_ratio_and_spreads_by_range() -> None:
    f0 = np.array([0.0, 100.0, 200.0, 400.0, 0.0])
    moved = move_pitch(f0, Perturbation(pitch=1.5))
    assert np.allclose(moved, f0 * 1.5) and moved[0] == moved[-1] == 0
    spread = move_pitch(f0, Perturbation(pitch_range=2.0))  # log distance from the median (200 Hz) doubles
    assert np.allclose(spread[1:4], [50.0, 200.0, 800.0])


def test_each_segment_has_its_own_fixed_draw_within_nansys_bounds() -> None:
    draws = [Perturbation.for_segment(f"0_{i}_0") for i in range(200)]
    assert Perturbation.for_segment("0_3_0") == draws[3] and len(set(draws)) == 200
    formants = np.array([d.formant for d in draws])
    assert (formants >= 1 / FORMANT_RATIO).all() and (formants <= FORMANT_RATIO).all()
    assert 0.3 < (formants > 1).mean() < 0.7  # inverted half the time
    assert all(1 / PITCH_RATIO <= d.pitch <= PITCH_RATIO for d in draws)


def test_resynthesis_moves_the_pitch_the_estimator_hears() -> None:
    audio = load_audio(VOICES / "fr_june" / "conf-getpin.flac", 16000).numpy()
    harvest = pitch_estimator("harvest")
    f0 = harvest(audio)
    for ratio in (0.7, 1.0, 1.6):
        out = perturb(audio, f0, Perturbation(formant=1.2, pitch=ratio))
        assert out.shape == audio.shape and out.dtype == np.float32 and np.abs(out).max() <= 0.95 + 1e-6
        heard = harvest(out)
        voiced = (heard > 0) & (f0[:len(heard)] > 0)
        assert np.median(heard[voiced] / f0[:len(heard)][voiced]) == pytest.approx(ratio, rel=0.05)


def test_features_of_perturbed_segments_are_what_training_reads(tmp_path) -> None:
    filelist = make_experiment(tmp_path, clips=2)  # toy 16-d features; the worker writes whisper ones beside
    exp = Experiment(tmp_path)
    stems = [Path(line.split("|")[0]).stem for line in filelist.read_text().split()]
    with pytest.raises(WaveGradError, match="no perturbed content features; run `voiceconv features --perturbed`"):
        ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, perturbed=True)
    worker = FeatureWorker(exp, "whisper", None, "v2", perturbed=True)
    plain = FeatureWorker(exp, "whisper", None, "v2")
    for stem in stems:
        audio = load_audio(VOICES / "en_allison" / "agent-pass.flac", 16000).numpy()[:32000]
        save_audio(exp.wav16k(stem), audio, 16000)
        worker(Job(stem, (exp.feature(stem, 16, perturbed=True),)))  # stored under the filelist's 16-d name
        plain(Job(stem, (exp.feature(stem, 384),)))
    moved, original = np.load(exp.feature(stems[0], 16, perturbed=True)), np.load(exp.feature(stems[0], 384))
    assert exp.feature(stems[0], 16, perturbed=True).parent.name == "3_feature16_perturbed"
    assert moved.shape == original.shape and not np.allclose(moved, original)
    dataset = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, perturbed=True)
    assert np.array_equal(dataset.items[0].content.numpy(), np.load(exp.feature(dataset.items[0].name, 16, True)))
