"""Zero-shot conversion (kNN-VC): frame matching, prematched training inputs, the automatic pitch range,
reference folders, and a speaker-agnostic model end to end at tiny size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from voiceconv.__main__ import main as cli
from voiceconv.base import adapted_base
from voiceconv.checkpoint import export_model
from voiceconv.config import PreprocessSettings
from voiceconv.convert import ConvertOptions, VoiceConverter
from voiceconv.data import ExperimentDataset
from voiceconv.envelope import HARMONIC_MARGIN, dct_matrix, harmonic_quefrency, transplant_envelope
from voiceconv.knn import content_rate_mels, knn_match, mel_at_content_rate, prematch, reference_pool, semitones_between
from voiceconv.model import Converter
from voiceconv.perturb import warp_mel
from voiceconv.pitch import coarse_pitch, pitch_estimator
from voiceconv.preprocess import highpass, normalize
from wavegrad.audio import MelSpectrogram, load_audio, resample
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
    with pytest.raises(WaveGradError, match="k=0: .* at least 1 neighbour"):
        knn_match(big[:2], big, k=0)


def test_knn_match_can_return_other_values_of_the_chosen_frames() -> None:
    pool = np.array([[1, 0], [10, 1], [0, 1], [-1, 0]], np.float32)
    values = np.array([[1, 100], [2, 200], [3, 300], [4, 400]], np.float32)
    query = np.array([[2, 0.1], [0, 3]], np.float32)
    assert np.allclose(knn_match(query, pool, k=1, values=values), [[2, 200], [3, 300]])  # chosen by the pool
    assert np.allclose(knn_match(query, pool, k=2, values=values), [[1.5, 150], [2.5, 250]])


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
    tagged = [np.concatenate([f, np.full((len(f), 1), i, np.float32)], axis=1) for i, f in enumerate(features)]
    for i, rows in enumerate(prematch(features, speakers, k=2, values=tagged)):
        other = [j for j in range(4) if speakers[j] == speakers[i] and j != i][0]
        assert rows.shape == (len(features[i]), 9) and (rows[:, 8] == other).all()  # the values of the matches



def test_prematch_compares_keys_and_returns_the_features() -> None:
    """Frames that carry their place (as Whisper's do) match the frame at the same place of the other utterance;
    compared by keys that drop the place, they match the same content, and return their own features."""
    place = np.zeros((6, 12), np.float32)
    place[:, 6:] = 5 * np.eye(6)
    content = np.eye(6, 12, dtype=np.float32)
    features = [content + place, content[::-1] + place]  # the second utterance says it backwards

    def keys(f: np.ndarray) -> np.ndarray:
        return f - place[:len(f)]

    by_place = prematch(features, [0, 0], k=1)
    by_content = prematch(features, [0, 0], k=1, keys=keys)
    assert np.array_equal(by_place[0], features[1])
    assert np.array_equal(by_content[0], features[1][::-1]) and np.array_equal(by_content[1], features[0][::-1])

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


@pytest.mark.parametrize("matched_mel", [False, True])
def test_zero_shot_conversion_end_to_end(vocoder, references, matched_mel) -> None:
    torch.manual_seed(0)
    model = Converter(tiny_model_config(use_speaker=False, matched_mel=matched_mel)).eval()
    assert not any(name.startswith("speaker") for name, _ in model.named_parameters())
    encoder, pitch = ToyEncoder(), pitch_estimator("pm")
    pool = reference_pool(references, encoder, pitch, content_rate_mels(vocoder.config.data_config))
    converter = VoiceConverter(model, vocoder, linear_betas(2, (1e-4, 0.05)), encoder, pitch, references=pool)
    source = load_audio(VOICES / "it_carlo" / "conf-getpin.flac", 16000).numpy()[:24000]  # a male voice
    out, mels = converter.convert(source, dataclasses.replace(SHORT, protect=0.33, envelope_rate=0.0))
    assert len(out) == 24000 * vocoder.config.data_config.sample_rate // 16000 and np.isfinite(out).all()
    _, enveloped = converter.convert(source, dataclasses.replace(SHORT, protect=0.33, envelope_rate=1.0))
    assert not torch.allclose(enveloped[0], mels[0])  # the references' envelope moved the mel
    assert torch.allclose(enveloped[0].mean(0), mels[0].mean(0), atol=1e-4)  # at the converter's level
    assert converter.timings["matching"] > 0
    if not matched_mel:  # --index-rate: the share of matched content; at 0 the source's own, as with no references
        unmatched = dataclasses.replace(SHORT, f0_up_key=0.0, index_rate=0.0, envelope_rate=0.0)
        chunk, f0 = source[:16000], pitch(source[:16000])
        alone = VoiceConverter(model, vocoder, linear_betas(2, (1e-4, 0.05)), encoder, pitch).mel(chunk, f0, 100,
                                                                                                  unmatched)
        assert torch.allclose(converter.mel(chunk, f0, 100, unmatched), alone)
        assert not torch.allclose(converter.mel(chunk, f0, 100, dataclasses.replace(unmatched, index_rate=0.5)), alone)
    assert converter.semitones(pitch(source), SHORT) == pytest.approx(semitones_between(pitch(source),
                                                                                        pool.median_f0))
    assert converter.semitones(pitch(source), SHORT) > 2  # the male source moves up towards the female range
    with pytest.raises(ValueError, match="speaker-agnostic"):
        VoiceConverter(Converter(tiny_model_config()), vocoder, linear_betas(2), encoder, pitch, references=pool)


def test_envelope_transplant_moves_the_low_quefrencies_and_keeps_level_and_harmonics() -> None:
    dct = dct_matrix(80)
    assert torch.allclose(dct @ dct.T, torch.eye(80), atol=1e-5)  # orthonormal: its transpose inverts it
    assert torch.allclose(dct[1], torch.cos(torch.pi * (torch.arange(80) + 0.5) / 80) * (2 / 80) ** 0.5)
    rng = torch.Generator().manual_seed(0)
    mine, theirs = (dct[1:8].T @ torch.randn(7, 3, generator=rng) for _ in range(2))  # smooth spectra [80, 3]
    harmonics = dct[40:50].T @ torch.randn(10, 3, generator=rng)  # fine structure, above the cut at 16
    mel, target = mine + harmonics - 2.0, theirs - 4.0  # at different levels
    assert torch.equal(transplant_envelope(mel, target, 0.0), mel)
    moved = transplant_envelope(mel, target, 1.0, coefficients=16)
    assert torch.allclose(moved, theirs + harmonics - 2.0, atol=1e-5)  # their envelope, my harmonics and level
    half = transplant_envelope(mel, target, 0.5, coefficients=16)
    assert torch.allclose(half, (mine + theirs) / 2 + harmonics - 2.0, atol=1e-5)


def test_the_cut_stays_below_each_frames_harmonics() -> None:
    import librosa

    centres = librosa.mel_frequencies(n_mels=82, fmin=80.0, fmax=8000.0, htk=True)  # the filterbank's (HTK)
    f0 = torch.tensor([100.0, 200.0, 400.0], dtype=torch.float64)
    width = torch.from_numpy(np.interp(f0.numpy(), centres[1:], np.diff(centres)))  # Hz between bins near f0
    limit = harmonic_quefrency(f0, 80, 80.0, 8000.0)
    assert torch.allclose(limit, 2 * 80 * width / f0, rtol=0.03)  # a ripple of f0 / width bins
    assert 20 < limit[1] < 23 and limit[2] < 16  # a 400 Hz voice's harmonics reach into 16 coefficients
    rng = torch.Generator().manual_seed(1)
    mel, target = torch.randn(80, 3, generator=rng), torch.randn(80, 3, generator=rng)
    moved = transplant_envelope(mel, target, 1.0, coefficients=16, limit=limit.float())
    change = dct_matrix(80) @ (moved - mel)  # [80 coefficients, 3 frames]
    for frame, cut in enumerate([16, 16, int(HARMONIC_MARGIN * limit[2]) + 1]):
        assert change[cut:, frame].abs().max() < 1e-5 and change[1:cut, frame].abs().min() > 0
        assert abs(change[0, frame]) < 1e-5  # the level stays


def test_pool_mels_are_the_vocoders_mel_at_the_content_rate(references) -> None:
    audio = tiny_audio()
    pool = reference_pool(references, ToyEncoder(), None, content_rate_mels(audio))
    assert pool.mels.shape == (pool.features.shape[0], audio.n_mels)
    assert pool.values.shape == (pool.features.shape[0], pool.features.shape[1] + audio.n_mels)
    clip = load_audio(sorted(references.glob("*.wav"))[0], 16000).numpy()
    levelled = normalize(highpass(clip, 16000, PreprocessSettings()), PreprocessSettings())  # as training segments
    mel = MelSpectrogram(audio)(torch.from_numpy(resample(levelled, 16000, audio.sample_rate))).numpy()
    frames = content_rate_mels(audio)(clip)
    at = np.arange(len(clip) // 320) / 50 * audio.sample_rate / audio.hop_length  # content frame i: i / 50 s
    expected = np.stack([np.interp(at, np.arange(mel.shape[1]), row) for row in mel], axis=1)
    assert frames.shape == expected.shape and np.allclose(frames, expected, atol=1e-4)
    assert np.allclose(pool.mels[:len(frames)], frames)
    assert reference_pool(references, ToyEncoder(), None).mels is None


def test_matched_mel_model_starts_as_its_base_and_reads_the_mels(tmp_path) -> None:
    torch.manual_seed(0)
    base = Converter(tiny_model_config(use_speaker=False)).eval()
    config = tiny_model_config(use_speaker=False, matched_mel=True)
    model = Converter(config).eval()
    payload = adapted_base({"model": base.state_dict(), "speakers": 4}, config)
    model.load_state_dict(payload["model"])
    content, f0 = torch.randn(1, 50, 16), torch.full((1, 100), 150.0)
    coarse, mels = torch.from_numpy(coarse_pitch(f0.numpy())), torch.randn(1, 50, config.n_mels)
    args = (coarse, f0, torch.zeros(1, dtype=torch.long), 40)
    with torch.no_grad():
        assert torch.allclose(model(torch.cat([content, mels], -1), *args), base(content, *args), atol=1e-5)
        model.timbre.weight.normal_()
        assert not torch.allclose(model(torch.cat([content, mels], -1), *args), base(content, *args), atol=1e-3)


def test_dataset_prematch_replaces_content_within_the_speaker(tmp_path) -> None:
    filelist = make_experiment(tmp_path, clips=3)
    plain = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True)
    matched = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1)
    for a, b in zip(plain.items, matched.items, strict=True):
        others = torch.cat([item.content for item in plain.items if item.name != a.name])
        assert a.content.shape == b.content.shape and not torch.equal(a.content, b.content)
        assert all((others == row).all(dim=1).any() for row in b.content)
        assert torch.equal(a.mel, b.mel)
    audio = tiny_audio()
    rate = audio.sample_rate / audio.hop_length
    with_mels = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, matched_mels=audio)
    others = {a.name: torch.cat([torch.cat([item.content, torch.from_numpy(mel_at_content_rate(
        item.mel, rate, len(item.content)))], 1) for item in plain.items if item.name != a.name]) for a in plain.items}
    for b, c in zip(matched.items, with_mels.items, strict=True):
        assert torch.equal(c.content[:, :16], b.content) and c.content.shape[1] == 16 + tiny_audio().n_mels
        assert all((others[c.name] == row).all(dim=1).any() for row in c.content)  # content and mel of one frame
    with pytest.raises(WaveGradError, match="matched mels come with kNN prematching: train with --zero-shot"):
        ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, matched_mels=audio)
    with pytest.raises(WaveGradError, match="virtual voices differ only in their matched mels: train with --matched"):
        ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, voice_ratios=(1.2,))


def test_match_shares_blend_each_segment_with_its_own_content_in_turn(tmp_path) -> None:
    filelist = make_experiment(tmp_path, clips=3)
    audio = tiny_audio()
    plain = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True)
    matched = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, matched_mels=audio)
    mixed = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, matched_mels=audio,
                              match_shares=(1.0, 0.25))
    for i, (a, b, c) in enumerate(zip(plain.items, matched.items, mixed.items, strict=True)):
        share = (1.0, 0.25)[i % 2]
        assert torch.allclose(c.content[:, :16], share * b.content[:, :16] + (1 - share) * a.content)
        assert torch.equal(c.content[:, 16:], b.content[:, 16:])  # the matched mels are not blended
    assert not torch.equal(mixed.items[1].content, matched.items[1].content)
    with pytest.raises(WaveGradError, match="match shares blend kNN-prematched content: train with --zero-shot"):
        ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, match_shares=(0.5,))
    with pytest.raises(WaveGradError, match=r"match shares \(1.5,\): give one or more shares between 0 and 1"):
        ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, match_shares=(1.5,))


def test_warp_mel_scales_every_frequency() -> None:
    audio = tiny_audio()
    mel = MelSpectrogram(audio)
    t = torch.arange(audio.sample_rate) / audio.sample_rate
    for hz, ratio in ((700.0, 1.19), (2000.0, 0.84)):
        warped = warp_mel(mel(torch.sin(2 * torch.pi * hz * t)), ratio, audio)
        truth = mel(torch.sin(2 * torch.pi * hz * ratio * t))
        assert abs(int(warped.mean(1).argmax()) - int(truth.mean(1).argmax())) <= 1
    assert torch.equal(warp_mel(truth, 1.0, audio), truth)


def test_virtual_voices_are_new_speakers_with_warped_mels_and_pitch(tmp_path) -> None:
    filelist = make_experiment(tmp_path, clips=3)
    audio = tiny_audio()
    plain = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True)
    virtual = ExperimentDataset(filelist, tmp_path / "4_mel", use_pitch=True, prematch_k=1, matched_mels=audio,
                                voice_ratios=(0.84, 1.19))
    n = len(plain)
    assert len(virtual) == 3 * n and virtual.speakers == 3
    for j, ratio in enumerate((0.84, 1.19), start=1):
        for a, b in zip(plain.items, virtual.items[j * n:(j + 1) * n], strict=True):
            assert b.speaker == j and torch.allclose(b.f0, a.f0 * ratio)
            assert torch.allclose(b.mel, warp_mel(a.mel, ratio, audio))
            pool = torch.cat([torch.from_numpy(mel_at_content_rate(c.mel, audio.sample_rate / audio.hop_length,
                                                                   len(c.content)))
                              for c in virtual.items[j * n:(j + 1) * n] if c.name != b.name])
            assert all((pool == row).all(dim=1).any() for row in b.content[:, 16:])  # its own voice's mels


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
    for model, extra, expected in (
            ("speakers", [], "speakers.pt: has speaker embeddings, but --target-refs needs"),
            ("agnostic", [], "refs: no readable audio in the reference folder"),
            ("agnostic", ["--envelope-rate", "1.5"], "--envelope-rate 1.5: give a share from 0 to 1")):
        assert cli([*argv, *extra, "--model", str(tmp_path / f"{model}.pt")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err
    assert cli([*argv[:-2], "--envelope-rate", "0.5", "--model", str(tmp_path / "agnostic.pt")]) == 2
    assert "with --target-refs" in capsys.readouterr().err
