"""Conversion: f0 shift, f0 file, protect, chunking at quiet points, end-to-end length/rate, vocoder refusal."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voiceconv.__main__ import main as cli
from voiceconv.checkpoint import export_model
from voiceconv.convert import (
    ConvertOptions,
    VoiceConverter,
    apply_f0_file,
    cut_points,
    protect_features,
    rms_mix,
    shift_f0,
)
from voiceconv.model import Converter
from voiceconv.pitch import pitch_estimator
from wavegrad.audio import load_audio, save_audio
from wavegrad.checkpoint import save_checkpoint
from wavegrad.model import WaveGrad
from wavegrad.schedule import linear_betas

from .vc_fixtures import VOICES, ToyEncoder, tiny_model_config, tiny_vocoder

CLIP = VOICES / "it_carlo" / "conf-getpin.flac"  # male source voice
SHORT = ConvertOptions(x_pad=0.25, x_query=0.3, x_center=1.0, x_max=1.2, rms_mix_rate=1.0, protect=0.5)


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return load_audio(CLIP, 16000).numpy()


@pytest.fixture(scope="module")
def vocoder(tmp_path_factory) -> WaveGrad:
    return tiny_vocoder(tmp_path_factory.mktemp("vocoder"))


def _converter(vocoder: WaveGrad, use_pitch: bool = True) -> VoiceConverter:
    torch.manual_seed(0)
    model = Converter(tiny_model_config(use_pitch=use_pitch)).eval()
    return VoiceConverter(model, vocoder, linear_betas(2, (1e-4, 0.05)), ToyEncoder(), pitch_estimator("pm"))


def test_f0_shift_and_f0_file() -> None:
    f0 = np.array([0.0, 100.0, 220.0, 0.0], dtype=np.float32)
    assert np.allclose(shift_f0(f0, 12), [0, 200, 440, 0])
    assert np.allclose(shift_f0(f0, -5), f0 * 2 ** (-5 / 12))
    table = np.array([[0.0, 300.0], [0.02, 320.0]])
    assert np.allclose(apply_f0_file(np.zeros(6, np.float32), table, 2), [0, 0, 300, 310, 320, 0])


@pytest.mark.parametrize("semitones", [12, -7])
def test_f0_shift_reaches_model_input(vocoder, source, semitones: float) -> None:
    converter = _converter(vocoder)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    converter.model.register_forward_pre_hook(lambda module, args: seen.append((args[1].clone(), args[2].clone())))
    audio = source[:16000]
    converter.convert(audio, dataclasses.replace(SHORT, f0_up_key=0))
    converter.convert(audio, dataclasses.replace(SHORT, f0_up_key=semitones))
    (coarse0, plain), (coarse1, shifted) = seen
    voiced = plain > 0
    assert voiced.sum() > 10 and torch.equal(voiced, shifted > 0)
    assert torch.allclose(shifted[voiced] / plain[voiced], torch.tensor(2 ** (semitones / 12)), rtol=1e-5)
    assert (coarse1[voiced] > coarse0[voiced]).all() if semitones > 0 else (coarse1[voiced] < coarse0[voiced]).all()


def test_protect_keeps_original_features_where_unvoiced() -> None:
    retrieved, original = np.ones((4, 2), np.float32), np.zeros((4, 2), np.float32)
    f0 = np.array([120.0, 0.0, 0.0, 300.0])
    out = protect_features(retrieved, original, f0, 0.33)
    assert np.allclose(out[:, 0], [1.0, 0.33, 0.33, 1.0])
    assert np.array_equal(protect_features(retrieved, original, f0, 0.5), retrieved)


def test_cut_points_fall_in_quiet_places() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, 48000).astype(np.float32)
    audio[17000:17400] = 0  # a silence near the 1 s centre
    audio[33600:34000] = 0  # and near 2 s
    points = cut_points(audio, SHORT)
    assert len(points) == 2 and all(p % 160 == 0 for p in points)
    assert 16800 <= points[0] <= 17400 and 33440 <= points[1] <= 34000
    assert cut_points(audio[:19000], SHORT) == []  # not longer than x_max


@pytest.mark.parametrize("seconds", [0.9, 3.3, 4.01])
def test_output_length_matches_input_at_output_rate(vocoder, source, seconds: float) -> None:
    audio = source[:int(seconds * 16000)]
    out, mels = _converter(vocoder).convert(audio, SHORT)
    expected_chunks = len(cut_points(audio, SHORT)) + 1
    assert len(mels) == expected_chunks and (expected_chunks > 1) == (seconds > SHORT.x_max)
    assert len(out) == round(len(audio) * vocoder.config.data_config.sample_rate / 16000)
    assert np.isfinite(out).all() and np.abs(out).max() <= 0.99 + 1e-6


def test_rms_mix_rate_zero_follows_the_input_envelope() -> None:
    t = np.arange(32000) / 16000
    loud_then_quiet = (np.sin(2 * np.pi * 200 * t) * np.where(t < 1, 0.8, 0.1)).astype(np.float32)
    flat = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    mixed = rms_mix(loud_then_quiet, flat, 16000, 0.0)
    assert np.abs(mixed[:8000]).max() > 4 * np.abs(mixed[-8000:]).max()
    assert np.allclose(rms_mix(loud_then_quiet, flat, 16000, 1.0), flat, atol=1e-6)


def _exported_model(tmp_path, audio: dict) -> str:
    torch.manual_seed(0)
    path = tmp_path / "voice.pt"
    export_model(Converter(tiny_model_config()), path, audio, {"encoder": "whisper", "version": None, "dim": 16}, {})
    return str(path)


def test_cli_refuses_a_vocoder_with_another_audio_config(tmp_path, vocoder, capsys) -> None:
    other = vocoder.config.data_config.audio_dict() | {"f_max": 7000.0}
    wav = tmp_path / "in.wav"
    save_audio(wav, np.zeros(16000, np.float32), 16000)
    vocoder_path = tmp_path / "checkpoint_0.pt"
    save_checkpoint({"config": vocoder.config.to_dict(), "model": vocoder.state_dict()}, vocoder_path)
    torch.save(linear_betas(3), tmp_path / "3iters.pt")
    status = cli(["convert", "--model", _exported_model(tmp_path, other), "--input", str(wav), "--vocoder-checkpoint",
                  str(vocoder_path), "--schedule", str(tmp_path / "3iters.pt")])
    message = capsys.readouterr().err
    assert status == 2 and str(vocoder_path) in message and "voice.pt" in message
    assert "f_max: 8000.0 vs 7000.0" in message


def test_no_pitch_model_converts_without_a_pitch_method(vocoder, source) -> None:
    converter = _converter(vocoder, use_pitch=False)
    converter.pitch = None
    out, _ = converter.convert(source[:20000], SHORT)
    assert len(out) == 20000 and "pitch" not in converter.timings


def test_cli_folder_in_folder_out_with_whisper_and_index(tmp_path, vocoder) -> None:
    """End to end through `voiceconv convert`: the bundled Whisper encoder (384-d), a faiss index, pitch
    shifted, mel saved; every input gives a wav of the same duration at the vocoder's rate."""
    from voiceconv.content import load_encoder
    from voiceconv.index import build_index, save_index

    inputs = tmp_path / "in"
    inputs.mkdir()
    lengths = {}
    for name, seconds in (("a", 1.3), ("b", 2.6)):
        audio = load_audio(VOICES / "es_allison" / "conf-getpin.flac", 16000).numpy()[:int(seconds * 16000)]
        save_audio(inputs / f"{name}.wav", audio, 16000)
        lengths[name] = len(audio)
    torch.manual_seed(0)
    model = tmp_path / "voice.pt"
    export_model(Converter(tiny_model_config(content_dim=384)), model, vocoder.config.data_config.audio_dict(),
                 {"encoder": "whisper", "version": "tiny.en", "checkpoint": None, "dim": 384}, {})
    rows = np.random.default_rng(0).normal(size=(100, 384)).astype(np.float32)
    index, features_index = tmp_path / "added_IVF1_Flat_nprobe_1_voice_tiny.en.index", tmp_path / "features.index"
    save_index(build_index(load_encoder("whisper").match_keys(rows)), index)
    save_index(build_index(rows), features_index)
    vocoder_path = tmp_path / "checkpoint_0.pt"
    save_checkpoint({"config": vocoder.config.to_dict(), "model": vocoder.state_dict()}, vocoder_path)
    torch.save(linear_betas(3), tmp_path / "3iters.pt")

    def convert(index: Path) -> int:
        return cli(["convert", "--model", str(model), "--input", str(inputs), "--output", str(tmp_path / "out"),
                    "--vocoder-checkpoint", str(vocoder_path), "--schedule", str(tmp_path / "3iters.pt"),
                    "--index", str(index), "--f0-method", "pm", "--f0-up-key", "3", "--x-max", "2", "--x-center",
                    "1.5", "--x-query", "0.4", "--x-pad", "0.3", "--save-mel", "--device", "cpu"])

    assert convert(features_index) == 2  # an index of features, from before match keys: rebuild it
    assert convert(index) == 0
    rate = vocoder.config.data_config.sample_rate
    for name, length in lengths.items():
        data, file_rate = sf.read(tmp_path / "out" / f"{name}.wav")
        assert file_rate == rate and len(data) == round(length * rate / 16000)
        mel = np.load(tmp_path / "out" / f"{name}.npy")
        assert mel.shape[0] == vocoder.config.data_config.n_mels
        assert abs(mel.shape[1] - len(data) / vocoder.config.data_config.hop_length) <= 2


def test_sampling_noise_is_seeded(vocoder, source) -> None:
    """The same input and seed give the same output (the demo's figures repeat); another seed differs."""
    converter, audio = _converter(vocoder), source[:12000]
    first, _ = converter.convert(audio, SHORT)
    again, _ = converter.convert(audio, SHORT)
    other, _ = converter.convert(audio, dataclasses.replace(SHORT, seed=1))
    assert np.array_equal(first, again) and not np.allclose(first, other)


@pytest.mark.parametrize("command", ["f0", "prepare", "one-click", "convert"])
@pytest.mark.parametrize("spelling", ["--f0-method", "--method"])
def test_pitch_method_has_one_name_in_every_command(command: str, spelling: str) -> None:
    """`--f0-method` everywhere; the old `--method` of f0/prepare/one-click still works, in convert too."""
    import argparse
    import importlib

    from voiceconv.__main__ import COMMANDS

    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    required = {"f0": ["--exp", "x"], "prepare": ["--exp", "x", "--input", "in"],
                "one-click": ["--exp", "x", "--input", "in"],
                "convert": ["--model", "m.pt", "--input", "in", "--vocoder-checkpoint", "v.pt", "--schedule", "s.pt"]}
    assert parser.parse_args(required[command] + [spelling, "dio"]).f0_method == "dio"
    assert parser.parse_args(required[command]).f0_method == "harvest"
    assert "--f0-method" in parser.format_help()


def test_conversion_high_passes_with_the_preprocessing_filter(vocoder, source, monkeypatch) -> None:
    """The input goes through preprocess.highpass at 16 kHz with the converter's PreprocessSettings."""
    import voiceconv.convert
    import voiceconv.preprocess
    from voiceconv.config import PreprocessSettings
    from voiceconv.rates import FRONTEND_RATE

    assert voiceconv.convert.highpass is voiceconv.preprocess.highpass
    seen = []

    def record(audio: np.ndarray, rate: int, settings: PreprocessSettings) -> np.ndarray:
        seen.append((rate, settings))
        raise StopIteration  # the filter's arguments are all this test needs

    monkeypatch.setattr(voiceconv.convert, "highpass", record)
    converter = _converter(vocoder)
    custom = dataclasses.replace(PreprocessSettings(), highpass_hz=70.0)
    for settings in (converter.settings, custom):
        converter.settings = settings
        with pytest.raises(StopIteration):
            converter.convert(source[:1600], SHORT)
    assert seen == [(FRONTEND_RATE, PreprocessSettings()), (FRONTEND_RATE, custom)]


def test_convert_retrieves_with_the_experiments_index_by_default(tmp_path, capsys) -> None:
    from voiceconv.convert import retrieval_index

    folder = tmp_path / "alice"
    folder.mkdir()
    model = folder / "alice.pt"
    model.write_bytes(b"")
    index = folder / "added_IVF4_Flat_nprobe_1_alice_tiny.en.index"
    index.write_bytes(b"")
    (folder / "added_IVF4_Flat_nprobe_1_bob_tiny.en.index").write_bytes(b"")  # another experiment's: never

    def args(**changes):
        return argparse.Namespace(**{"model": model, "index": None, "index_rate": 0.75, "target_refs": None,
                                     **changes})

    assert retrieval_index(args()) == index and "--index-rate 0 turns it off" in capsys.readouterr().out
    assert retrieval_index(args(index=tmp_path / "other.index")) == tmp_path / "other.index"
    assert retrieval_index(args(index_rate=0.0)) is None
    assert retrieval_index(args(target_refs=tmp_path)) is None
    assert retrieval_index(args(model=tmp_path / "zeroshot")) is None  # a name, not a file: no folder to look in
