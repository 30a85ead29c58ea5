"""Voice perturbation of training inputs: the envelope warp, the pitch moves, WORLD resynthesis, the fixed draw
per segment, and the perturbed features an experiment trains on; pitch-shifted targets and the copies they add;
the pitch-shifted copies of a vocoder's training clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from voiceconv.batch import Job
from voiceconv.config import Experiment, ExperimentConfig
from voiceconv.content import FeatureWorker
from voiceconv.data import ExperimentDataset
from voiceconv.perturb import (
    FORMANT_RATIO,
    PITCH_RATIO,
    Perturbation,
    move_pitch,
    perturb,
    pitch_shifted,
    warp_envelope,
)
from voiceconv.pitch import coarse_pitch, pitch_estimator
from voiceconv.pitch_copies import pitch_copies
from voiceconv.targets import mel_targets
from wavegrad.audio import MelSpectrogram, load_audio, read_audio, resample, save_audio
from wavegrad.errors import ConfigError, WaveGradError
from wavegrad.metrics import f0_track

from .vc_fixtures import VOICES, make_experiment, tiny_audio


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


def test_pitch_shifts_at_another_rate_keep_the_timing_and_move_the_pitch_heard() -> None:
    audio = load_audio(VOICES / "fr_june" / "conf-getpin.flac", 16000).numpy()
    harvest = pitch_estimator("harvest")
    f0 = harvest(audio)
    shifted = pitch_shifted(resample(audio, 16000, 22050), f0, (-12, 0, 7), 22050)  # f0 frames are 10 ms at any rate
    for semitones, out in zip((-12, 0, 7), shifted, strict=True):
        assert out.shape == (len(resample(audio, 16000, 22050)),) and out.dtype == np.float32
        heard = harvest(resample(out, 22050, 16000))
        voiced = (heard > 0) & (f0[:len(heard)] > 0)
        assert voiced.mean() > 0.3  # voicing stays where it was: the frames line up
        ratio = np.median(heard[voiced] / f0[:len(heard)][voiced])
        assert ratio == pytest.approx(2 ** (semitones / 12), rel=0.05)


def test_pitch_shifted_targets_add_copies_with_moved_f0_and_their_own_mels(tmp_path) -> None:
    filelist = make_experiment(tmp_path, clips=1, seconds=1.0)
    exp, audio = Experiment(tmp_path), tiny_audio()
    stems = [Path(line.split("|")[0]).stem for line in filelist.read_text().split()]
    clip = load_audio(VOICES / "en_allison" / "agent-pass.flac", audio.sample_rate).numpy()
    for i, stem in enumerate(stems):  # the gt segments make_experiment cut, at the vocoder's rate
        save_audio(exp.gt_wav(stem), clip[i * audio.sample_rate:(i + 1) * audio.sample_rate], audio.sample_rate)
    config = ExperimentConfig(name="x", vocoder_config="tiny", audio=audio)
    with pytest.raises(ConfigError, match="pitch-shifted targets need the pitch; run `voiceconv f0 --exp"):
        mel_targets(exp, config, progress=False, pitch_shifts=(-12, 12))
    with pytest.raises(WaveGradError, match="no pitch-shifted mel target; run `voiceconv features --pitch-shifted`"):
        ExperimentDataset(filelist, exp.mel_dir, use_pitch=True, pitch_shifts=(12,))
    config.f0_method = "pm"
    report = mel_targets(exp, config, progress=False, pitch_shifts=(-12, 12))
    assert report.done == len(stems) and not report.failed
    assert exp.mel(stems[0], 12).parent.name == "4_mel_pitch+12" and exp.mel(stems[0]).parent == exp.mel_dir
    plain = ExperimentDataset(filelist, exp.mel_dir, use_pitch=True)
    dataset = ExperimentDataset(filelist, exp.mel_dir, use_pitch=True, pitch_shifts=(-12, 12))
    assert len(dataset) == 3 * len(plain)
    original, up = dataset.items[0], dataset.items[2 * len(plain)]
    assert up.name == f"{original.name}+12" and up.content is original.content and up.speaker == original.speaker
    assert torch.allclose(up.f0, original.f0 * 2) and torch.equal(up.coarse, torch.from_numpy(coarse_pitch(up.f0)))
    assert up.mel.shape == original.mel.shape
    resynthesised = pitch_shifted(load_audio(exp.gt_wav(original.name), audio.sample_rate).numpy(),
                                  np.load(exp.f0_hz(original.name)), (12,), audio.sample_rate)[0]
    assert torch.allclose(up.mel, MelSpectrogram(audio)(torch.from_numpy(resynthesised)), atol=1e-4)
    with pytest.raises(WaveGradError, match="need a pitch-conditioned model; drop --no-pitch"):
        ExperimentDataset(filelist, exp.mel_dir, use_pitch=False, pitch_shifts=(12,))


def test_pitch_copies_write_shifted_clips_and_a_filelist_of_both(tmp_path) -> None:
    clip = tmp_path / "corpus" / "fr_june" / "conf-getpin.flac"
    save_audio(clip, load_audio(VOICES / "fr_june" / "conf-getpin.flac", 22050)[:22050 * 2], 22050)
    filelist = tmp_path / "corpus" / "train.txt"
    filelist.write_text("fr_june/conf-getpin.flac\n")
    with pytest.raises(ConfigError, match="would overwrite this filelist"):
        pitch_copies(filelist, filelist.parent, (12,), progress=False)
    listing, report = pitch_copies(filelist, tmp_path / "copies", (6, 12), progress=False)
    assert report.done == 1 and not report.failed
    assert listing.read_text().split() == ["../corpus/fr_june/conf-getpin.flac", "fr_june/conf-getpin_pitch+6.flac",
                                           "fr_june/conf-getpin_pitch+12.flac"]
    original, rate = read_audio(clip)
    octave, octave_rate = read_audio(listing.parent / "fr_june" / "conf-getpin_pitch+12.flac")
    assert octave_rate == rate == 22050 and octave.shape == original.shape
    heard, moved = f0_track(original, rate), f0_track(octave, rate)
    voiced = (heard > 0) & (moved > 0)
    assert np.median(moved[voiced] / heard[voiced]) == pytest.approx(2.0, rel=0.05)
    assert pitch_copies(filelist, tmp_path / "copies", (6, 12), progress=False)[1].skipped == 1  # resumes
    listing, report = pitch_copies(filelist, tmp_path / "copies", (12,), progress=False, originals=2)
    assert report.skipped == 1 and listing.read_text().split() == [
        "../corpus/fr_june/conf-getpin.flac", "../corpus/fr_june/conf-getpin.flac", "fr_june/conf-getpin_pitch+12.flac"]
    with pytest.raises(ConfigError, match="--originals 0"):
        pitch_copies(filelist, tmp_path / "copies", (12,), progress=False, originals=0)
