"""The mel contract, pinned on real speech, and audio loading errors."""

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from wavegrad.audio import AUDIO_SUFFIXES, MelSpectrogram, audio_files, load_audio, pad_to_hop, save_audio
from wavegrad.config import DataConfig
from wavegrad.errors import AudioError

from .conftest import FEMALE_CLIP


def _librosa_mel(audio: np.ndarray, c: DataConfig) -> np.ndarray:
    """The reference mel computed independently with librosa."""
    power = librosa.feature.melspectrogram(
        y=audio, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
        window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=c.n_mels, fmin=c.f_min,
        fmax=c.f_max, htk=True, norm=None)
    return np.log10(np.maximum(power, c.mel_floor))[:, :-1]


@pytest.mark.parametrize("sample_rate", [16000, 22050])
def test_mel_of_real_speech_matches_librosa(sample_rate):
    config = DataConfig(sample_rate=sample_rate)
    audio = pad_to_hop(load_audio(FEMALE_CLIP, sample_rate), config.hop_length)
    mel = MelSpectrogram(config)(audio)
    assert mel.shape == (80, audio.numel() // 300)
    assert mel.shape[1] * config.hop_length == audio.numel()
    assert torch.isfinite(mel).all()
    expected = _librosa_mel(audio.numpy(), config)
    np.testing.assert_allclose(mel.numpy(), expected, atol=2e-4)


def test_mel_values_are_pinned():
    config = DataConfig(sample_rate=16000)
    audio = pad_to_hop(load_audio(FEMALE_CLIP, 16000), 300)
    mel = MelSpectrogram(config)(audio[None])[0]
    assert mel.shape == (80, 128)
    # Pinned on this clip: speech energy and the floored silence at its edges.
    assert mel.mean().item() == pytest.approx(-1.0062, abs=2e-3)
    assert mel.max().item() == pytest.approx(3.8807, abs=2e-3)
    assert mel.min().item() == pytest.approx(-5.0, abs=1e-6)


def test_digital_silence_is_floored_not_infinite():
    mel = MelSpectrogram(DataConfig(sample_rate=16000))(torch.zeros(3000))
    assert torch.equal(mel, torch.full((80, 10), -5.0))


def test_batched_mel_equals_single():
    config = DataConfig(sample_rate=16000)
    audio = load_audio(FEMALE_CLIP, 16000)[:6000]
    mel = MelSpectrogram(config)
    torch.testing.assert_close(mel(torch.stack([audio, audio]))[1], mel(audio))


def test_load_audio_resamples_or_refuses_other_rates():
    assert load_audio(FEMALE_CLIP, 22050).numel() == pytest.approx(38204 * 22050 / 16000, abs=2)
    with pytest.raises(AudioError, match="16000 Hz but the config needs 22050 Hz"):
        load_audio(FEMALE_CLIP, 22050, resample_to_rate=False)


def test_bad_audio_files_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: audio file not found"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: audio file is empty"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioError, match="corrupt.wav: unreadable or corrupt"):
        load_audio(corrupt)


def test_save_audio_round_trips(tmp_path):
    audio = torch.linspace(-0.5, 0.5, 1600)
    save_audio(tmp_path / "out" / "a.wav", audio, 16000)
    data, rate = sf.read(tmp_path / "out" / "a.wav", dtype="float32")
    assert rate == 16000 and np.allclose(data, audio.numpy())


def test_every_command_takes_the_same_audio_files_from_a_folder(tmp_path):
    from voiceconv.convert import _inputs_outputs
    from voiceconv.preprocess import input_files
    from wavegrad.mel import expand_inputs

    for suffix in AUDIO_SUFFIXES:
        (tmp_path / f"a{suffix}").touch()
    (tmp_path / "b.OPUS").touch()
    (tmp_path / "notes.txt").touch()
    (tmp_path / "sub.wav").mkdir()
    expected = audio_files(tmp_path)
    assert {p.suffix.lower() for p in expected} == AUDIO_SUFFIXES >= {".opus", ".aac", ".m4a", ".flac", ".wav"}
    assert len(expected) == len(AUDIO_SUFFIXES) + 1
    assert expand_inputs([tmp_path]) == expected == input_files(tmp_path)
    assert [source for source, _ in _inputs_outputs(tmp_path, None)] == expected
