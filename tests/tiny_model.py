"""Test helper: a tiny WaveGrad trained for a few dozen steps on one real clip, saved as a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from wavegrad import MelSpectrogram, WaveGrad, load_audio, load_config, save_checkpoint
from wavegrad.diffusion import training_loss
from wavegrad.schedule import linear_betas

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "data/voices/en_allison/agent-pass.flac"


@contextmanager
def one_thread() -> Iterator[None]:
    """Two shared cores: one intra-op thread avoids OpenMP oversubscription (8x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def untrained_tiny_checkpoint(path: Path) -> Path:
    """A self-describing checkpoint of configs/tiny.yaml with weights drawn from seed 0; writes `path`."""
    config = load_config(ROOT / "configs/tiny.yaml")
    torch.manual_seed(0)
    save_checkpoint({"config": config.to_dict(), "model": WaveGrad(config).state_dict(), "step": 0}, path)
    return path


def train_tiny_checkpoint(path: Path, steps: int = 40, seed: int = 0) -> Path:
    """Train configs/tiny.yaml with Adam on 3600-sample segments of one clip; write `path`."""
    torch.manual_seed(seed)
    config = load_config(ROOT / "configs/tiny.yaml")
    model = WaveGrad(config)
    audio = load_audio(CLIP, config.data_config.sample_rate)
    segment = config.training_config.segment_length
    starts = torch.arange(0, len(audio) - segment, segment // 2)
    batch = torch.stack([audio[s:s + segment] for s in starts[:4]])
    mels = MelSpectrogram(config.data_config)(batch)
    betas = linear_betas(1000, (1e-6, 0.01))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = training_loss(model, mels, batch, betas, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_checkpoint({"config": config.to_dict(), "model": model.state_dict(), "step": steps}, path)
    return path
