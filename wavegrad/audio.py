"""Audio loading, resampling and THE mel spectrogram (the one implementation in the package)."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .atomic import atomic_write
from .config import DataConfig
from .errors import AudioError

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3"}  # read by soundfile, never ffmpeg
FFMPEG_SUFFIXES = {".m4a", ".aac", ".opus", ".wma", ".webm"}  # decoded by ffmpeg when soundfile cannot
AUDIO_SUFFIXES = SOUNDFILE_SUFFIXES | FFMPEG_SUFFIXES  # what every command takes from a folder


def audio_files(folder: Path) -> list[Path]:
    """The audio files of `folder` (by suffix, case-insensitive, not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _decode_with_ffmpeg(path: Path, sample_rate: int) -> np.ndarray:
    """Decode any format ffmpeg knows to mono float32 at `sample_rate`."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
           "-ar", str(sample_rate), "-"]
    result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0:
        raise AudioError(f"{path}: ffmpeg cannot decode it ({result.stderr.decode().strip()[:200]})")
    return np.frombuffer(result.stdout, dtype=np.float32).copy()


def read_audio(path: str | Path, fallback_rate: int = 48000) -> tuple[np.ndarray, int]:
    """Read a file as mono float32 at its own rate: ([samples], sample_rate).

    Formats soundfile cannot read go through ffmpeg (when installed), decoded at `fallback_rate`.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found; check the path")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt files
        if path.suffix.lower() in SOUNDFILE_SUFFIXES or shutil.which("ffmpeg") is None:
            raise AudioError(f"{path}: unreadable or corrupt audio ({exc}); replace or remove the file") from exc
        return _decode_with_ffmpeg(path, fallback_rate), fallback_rate
    return data.mean(axis=1), rate


def wrong_rate_error(path: str | Path, rate: int, expected: int) -> AudioError:
    """The error for a file at `rate` Hz where the config needs `expected` Hz."""
    return AudioError(f"{path}: sample rate is {rate} Hz but the config needs {expected} Hz; "
                      "resample the corpus (wavegrad resample) or change data_config.sample_rate")


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float audio [samples] with soxr (high quality)."""
    if orig_rate == target_rate:
        return audio
    return soxr.resample(audio, orig_rate, target_rate, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, sample_rate: int | None = None, resample_to_rate: bool = True) -> torch.Tensor:
    """Load mono float audio [samples] in [-1, 1] at `sample_rate` Hz.

    With `resample_to_rate=False` a file at another rate is refused (training data must match
    the config); with True it is resampled. Empty files are refused.
    """
    audio, rate = read_audio(path, sample_rate or 48000)
    if audio.size == 0:
        raise AudioError(f"{path}: audio file is empty; remove it from the list")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples; re-export the file")
    if sample_rate is not None and rate != sample_rate:
        if not resample_to_rate:
            raise wrong_rate_error(path, rate, sample_rate)
        audio = resample(audio, rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(audio))


def save_audio(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write mono float audio [samples] atomically: 16-bit FLAC when `path` ends in .flac, else 32-bit float wav."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    flac = Path(path).suffix.lower() == ".flac"
    with atomic_write(path) as tmp:
        sf.write(str(tmp), np.asarray(audio, dtype=np.float32).reshape(-1), sample_rate,
                 subtype="PCM_16" if flac else "FLOAT", format="FLAC" if flac else "WAV")


def pad_to_hop(audio: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Zero-pad the last axis up to the next multiple of `hop_length` (at least one sample added,
    as the reference does for test clips), so that `frames * hop == samples`."""
    pad = (audio.shape[-1] // hop_length + 1) * hop_length - audio.shape[-1]
    return torch.nn.functional.pad(audio, (0, pad))


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """HTK-scale triangular filterbank without normalisation: [n_mels, n_fft // 2 + 1]."""
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
                                htk=True, norm=None)
    return torch.from_numpy(basis).float()


class MelSpectrogram(torch.nn.Module):
    """log10 mel spectrogram of the reference implementation.

    Input [B, samples] or [samples] float audio at `sample_rate`; output [B, n_mels, samples // hop]
    (or [n_mels, frames]). Centred reflect-padded STFT with a periodic Hann window, power 2,
    HTK mel filterbank (no norm), power floored at `mel_floor`, log10, last frame dropped.
    """

    def __init__(self, config: DataConfig):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)
        basis = _mel_basis(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
        self.register_buffer("basis", basis.clone(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        squeeze = audio.dim() == 1
        audio = audio.reshape(-1, audio.shape[-1]).float()
        spec = torch.stft(audio, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                          window=self.window.to(audio.device), center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.basis.to(audio.device), power)
        mel = mel.clamp_min(c.mel_floor).log10()[..., :-1]
        return mel[0] if squeeze else mel


def mel_spectrogram(audio: torch.Tensor, config: DataConfig) -> torch.Tensor:
    """Functional form of `MelSpectrogram`: audio [..., samples] -> log10 mel [..., n_mels, samples // hop]."""
    return MelSpectrogram(config).to(audio.device)(audio)


def griffin_lim(mel: torch.Tensor, config: DataConfig, n_iter: int = 64, nnls_iter: int = 200) -> torch.Tensor:
    """A waveform [frames * hop] from a log10 mel [n_mels, frames] with no trained model: the power
    spectrum by non-negative least squares through the filterbank (multiplicative updates from the
    pseudo-inverse; as good as librosa's NNLS, 1000x faster), then `n_iter` Griffin-Lim phase
    iterations (librosa). The floor that a neural vocoder must beat."""
    import librosa

    mel = torch.cat([mel, mel[:, -1:]], dim=1)  # the frame that the mel contract drops, as its neighbour
    basis = _mel_basis(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max).double()
    target = torch.pow(10.0, mel.double().cpu())
    power = (torch.linalg.pinv(basis) @ target).clamp_min(1e-10)
    for _ in range(nnls_iter):
        power *= (basis.T @ target) / (basis.T @ (basis @ power)).clamp_min(1e-20)
    audio = librosa.griffinlim(power.sqrt().numpy(), n_iter=n_iter, hop_length=config.hop_length,
                               win_length=config.win_length, n_fft=config.n_fft, center=True,
                               length=(mel.shape[-1] - 1) * config.hop_length, random_state=0)
    return torch.from_numpy(audio).float()
