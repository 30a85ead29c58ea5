"""Shared fixtures: the repo's configs and real bundled speech; tiny models the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wavegrad.audio import load_audio
from wavegrad.config import Config, load_config

from .tiny_model import untrained_tiny_checkpoint

REPO = Path(__file__).resolve().parent.parent
VOICES = REPO / "data" / "voices"
FEMALE_CLIP = VOICES / "en_allison" / "conf-getpin.flac"
MALE_CLIP = VOICES / "it_carlo" / "conf-getpin.flac"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA not available")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def one_torch_thread() -> None:
    """Test models are small; one thread per test avoids oversubscribing a busy machine, also after a
    test that ran a CLI in-process (the CLIs set the thread count to the number of cores)."""
    torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> Config:
    return load_config(REPO / "configs" / "tiny.yaml")


@pytest.fixture
def real_clip() -> torch.Tensor:
    """1.2 s of real female speech at 16 kHz, [19200] float."""
    return load_audio(FEMALE_CLIP, 16000)[8000:8000 + 19200]


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A self-describing checkpoint of a randomly initialised tiny model."""
    return untrained_tiny_checkpoint(tmp_path / "checkpoint_0.pt")
