"""Zero-shot conversion (kNN-VC): frame matching, prematched training inputs, the automatic pitch range,
reference folders, and a speaker-agnostic model end to end at tiny size."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from voiceconv.__main__ import main as cli
from voiceconv.checkpoint import export_model
from voiceconv.convert import ConvertOptions, VoiceConverter
from voiceconv.data import ExperimentDataset
from voiceconv.knn import knn_match, prematch, reference_pool, semitones_between
from voiceconv.model import Converter
from voiceconv.pitch import pitch_estimator
from wavegrad.audio import load_audio, resample
from wavegrad.checkpoint import save_checkpoint
from wavegrad.errors import WaveGradError
from wavegrad.model import WaveGrad
from wavegrad.schedule import linear_betas

from .vc_fixtures import VOICES, ToyEncoder, make_experiment, tiny_audio, tiny_model_config, tiny_vocoder

SHORT = ConvertOptions(f0_up_key=None, x_pad=0.25, x_query=0.3, x_center=1.0, x_max=1.2, rms_mix_rate=1.0,
                       protect=0.5)


def test_knn_match_is_the_mean_of_the_k_most_cosine_similar_frames() -> None:
    pool = np.array([[1, 0], [10, 1], [0, 1], [-1, 0]], np.float32)  # the second is near the first in angle only
    query = np.array([[2, 0.1], [0, 3]], np.float32)
    assert np.allclose(knn_match(query, pool, k=1), [[10, 1], [0, 1]])
    assert np.allclose(knn_match(query, pool, k=2), [[5.5, 0.5], [5, 1]])  # raw frames averaged, cosine chosen
    rng = np.random.default_rng(0)
    big = rng.standard_normal((500, 16)).astype(np.float32)
    assert np.array_equal(knn_match(big[:37], big, k=1), big[:37])  # a pool that holds the query returns it
    barred = np.zeros(500, bool)
    barred[:37] = True
    assert not (knn_match(big[:37], big, k=1, exclude=barred) == big[:37]).all(axis=1).any()
    with pytest.raises(WaveGradError, match="fewer than k=4"):
        knn_match(big[:2], big[:3], k=4)


def test_prematch_draws_from_the_same_speakers_other_utterances() -> None:
    rng = np.random.default_rng(1)
    features = [rng.standard_normal((n, 8)).astype(np.float32) for n in (30, 40, 20, 25)]
    speakers = [0, 0, 1, 1]
    matched = prematch(features, speakers, k=1)
    for i, rows in enumerate(matched):
        other = [features[j] for j in range(4) if speakers[j] == speakers[i] and j != i][0]
        assert rows.shape == features[i].shape
        assert all((other == row).all(axis=1).any() for row in rows)
    alone = prematch(features[:1], [0])
    assert np.array_equal(alone[0], features[0])


def test_automatic_pitch_moves_the_source_median_to_the_target() -> None:
    source = np.array([0, 100, 100, 110, 0, 90], np.float32)
    assert semitones_between(source, 200.0) == pytest.approx(12.0)
    assert semitones_between(source, 100.0 * 2 ** (-5 / 12)) == pytest.approx(-5.0)
    assert semitones_between(np.zeros(10, np.float32), 200.0) == 0.0


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """12+ s of a voice outside the source, written at 44.1 kHz stereo (any rate and channel count is taken)."""
    folder = tmp_path_factory.mktemp("refs")
    for path in sorted((VOICES / "fr_june").glob("*.flac"))[:6]:
        audio = resample(load_audio(path, 16000).numpy(), 16000, 44100)
        sf.write(folder / f"{path.stem}.wav", np.stack([audio, 0.5 * audio], axis=1), 44100)
    return folder


def test_reference_folder_any_rate_and_bad_folders(tmp_path, references) -> None:
    pool = reference_pool(references, ToyEncoder(), pitch_estimator("pm"))
    assert pool.seconds >= 10 and pool.features.shape[1] == 16
    assert pool.features.shape[0] == pytest.approx(pool.seconds * 50, rel=0.02)
    assert 150 < pool.median_f0 < 300  # a female voice
    (tmp_path / "empty").mkdir()
    with pytest.raises(WaveGradError, match="empty: no readable audio in the reference folder; give a folder"):
        reference_pool(tmp_path / "empty", ToyEncoder(), None)
    (tmp_path / "short").mkdir()
    sf.write(tmp_path / "short" / "a.wav", np.zeros(32000, np.float32), 16000)
    (tmp_path / "short" / "b.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(WaveGradError, match=r"short: only 2.0 s of readable audio in the reference folder"):
        reference_pool(tmp_path / "short", ToyEncoder(), None)


@pytest.fixture(scope="module")
def vocoder(tmp_path_factory) -> WaveGrad:
    return tiny_vocoder(tmp_path_factory.mktemp("vocoder"))


def test_zero_shot_conversion_end_to_end(vocoder, references) -> None:
    torch.manual_seed(0)
    model = Converter(tiny_model_config(use_speaker=False)).eval()
    assert not any(name.startswith("speaker") for name, _ in model.named_parameters())
    encoder, pitch = ToyEncoder(), pitch_estimator("pm")
    pool = reference_pool(references, encoder, pitch)
    converter = VoiceConverter(model, vocoder, linear_betas(2, (1e-4, 0.05)), encoder, pitch, references=pool)
    source = load_audio(VOICES / "it_carlo" / "conf-getpin.flac", 16000).numpy()[:24000]  # a male voice
    out, mels = converter.convert(source, SHORT)
    assert len(out) == 24000 * vocoder.config.data_config.sample_rate // 16000 and np.isfinite(out).all()
    assert converter.timings["matching"] > 0
    assert converter.semitones(pitch(source), SHORT) == pytest.approx(semitones_between(pitch(source),
                                                                                        pool.median_f0))
    assert converter.semitones(pitch(source), SHORT) > 2  # the male source moves up towards the female range
    with pytest.raises(ValueError, match="speaker-agnostic"):
        VoiceConverter(Converter(tiny_model_config()), vocoder, linear_betas(2), encoder, pitch, references=pool)


def test_dataset_prematch_replaces_content_within_the_speaker(tmp_path) -> None:
    filelist = make_experiment(tmp_path, clips=3)
    plain = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True)
    matched = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1)
    for a, b in zip(plain.items, matched.items, strict=True):
        others = torch.cat([item.content for item in plain.items if item.name != a.name])
        assert a.content.shape == b.content.shape and not torch.equal(a.content, b.content)
        assert all((others == row).all(dim=1).any() for row in b.content)
        assert torch.equal(a.mel, b.mel)


def test_cli_zero_shot_needs_a_speaker_agnostic_model_and_a_real_folder(tmp_path, vocoder, capsys) -> None:
    save_checkpoint({"config": vocoder.config.to_dict(), "model": vocoder.state_dict()}, tmp_path / "vocoder.pt")
    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    (tmp_path / "refs").mkdir()
    audio = tiny_audio().audio_dict()
    for name, speaker in (("agnostic", False), ("speakers", True)):
        export_model(Converter(tiny_model_config(use_speaker=speaker, content_dim=384)), tmp_path / f"{name}.pt",
                     audio, {"encoder": "whisper", "version": None, "dim": 384}, {})
    argv = ["convert", "--input", str(wav), "--vocoder-checkpoint", str(tmp_path / "vocoder.pt"), "--f0-method", "pm",
            "--target-refs", str(tmp_path / "refs")]
    for model, expected in (("speakers", "speakers.pt: has speaker embeddings, but --target-refs needs"),
                            ("agnostic", "refs: no readable audio in the reference folder")):
        assert cli([*argv, "--model", str(tmp_path / f"{model}.pt")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err
