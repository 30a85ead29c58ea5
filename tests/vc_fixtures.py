"""Voice-conversion test fixtures: a small RVC-layout experiment made from a bundled voice, a cheap
deterministic content encoder (50 fps) standing in for whisper/hubert, and tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voiceconv.content import ContentEncoder
from voiceconv.model import ConverterConfig, preset
from voiceconv.pitch import coarse_pitch, pitch_estimator
from wavegrad.audio import MelSpectrogram, load_audio, resample
from wavegrad.checkpoint import load_model
from wavegrad.config import DataConfig, load_config
from wavegrad.model import WaveGrad

from .tiny_model import untrained_tiny_checkpoint

REPO = Path(__file__).resolve().parent.parent
VOICES = REPO / "data" / "voices"
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
FEATURE_DIM = 16


class ToyEncoder(ContentEncoder):
    """A fixed random projection of a 50 fps log-mel: audio [samples] at 16 kHz -> [samples // 320, 16]."""

    name, version, dim = "toy", "0", FEATURE_DIM

    def __init__(self) -> None:
        self.mel = MelSpectrogram(DataConfig(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=320,
                                             f_min=0.0, f_max=8000.0, n_mels=40))
        self.projection = torch.randn(40, FEATURE_DIM, generator=torch.Generator().manual_seed(0)) / 6

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        mel = self.mel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
        return (mel.T @ self.projection).numpy()


def tiny_audio() -> DataConfig:
    return load_config(TINY_CONFIG).data_config


def tiny_model_config(**overrides: object) -> ConverterConfig:
    audio = tiny_audio()
    fields = dict(content_dim=FEATURE_DIM, n_mels=audio.n_mels, frame_rate=audio.sample_rate / audio.hop_length,
                  n_speakers=4)
    return preset("tiny", **{**fields, **overrides})


def make_experiment(root: Path, voice: str = "en_allison", clips: int = 4, seconds: float = 2.0) -> Path:
    """Write RVC's layout (1_16k_wavs, 2a_f0, 2b-f0nsf, 3_feature16, 4_mel, filelist.txt) into `root`
    from the first `clips` clips of a bundled voice cut into `seconds`-long segments; returns the filelist."""
    encoder, pitch, mel = ToyEncoder(), pitch_estimator("pm"), MelSpectrogram(tiny_audio())
    dirs = {name: root / name for name in ("1_16k_wavs", "2a_f0", "2b-f0nsf", f"3_feature{FEATURE_DIM}", "4_mel")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    lines, size = [], int(seconds * 16000)
    for i, path in enumerate(sorted((VOICES / voice).glob("*.flac"))[:clips]):
        audio = load_audio(path, 16000).numpy()
        for j in range(max(1, len(audio) // size)):
            stem, segment = f"{i}_{j}", audio[j * size:(j + 1) * size]
            f0 = pitch(segment)
            np.save(dirs["2b-f0nsf"] / f"{stem}.wav.npy", f0)
            np.save(dirs["2a_f0"] / f"{stem}.wav.npy", coarse_pitch(f0))
            np.save(dirs[f"3_feature{FEATURE_DIM}"] / f"{stem}.npy", encoder(segment))
            target = torch.from_numpy(resample(segment, 16000, tiny_audio().sample_rate))
            np.save(dirs["4_mel"] / f"{stem}.npy", mel(target).numpy())
            lines.append("|".join([str(root / "0_gt_wavs" / f"{stem}.wav"),
                                   str(dirs[f"3_feature{FEATURE_DIM}"] / f"{stem}.npy"),
                                   str(dirs["2a_f0"] / f"{stem}.wav.npy"), str(dirs["2b-f0nsf"] / f"{stem}.wav.npy"),
                                   "0"]))
    (root / "filelist.txt").write_text("\n".join(lines) + "\n")
    return root / "filelist.txt"


def tiny_vocoder(folder: Path) -> WaveGrad:
    """An untrained configs/tiny.yaml vocoder (seed 0), saved in `folder` and loaded on the CPU."""
    return load_model(untrained_tiny_checkpoint(folder / "checkpoint_0.pt"), device="cpu")
