"""Self-describing checkpoints, and checkpoints of the reference implementation (ivanvovk/WaveGrad)."""

import math
from pathlib import Path

import pytest
import torch

from wavegrad.checkpoint import load_model, save_checkpoint
from wavegrad.config import load_config
from wavegrad.errors import CheckpointError
from wavegrad.model import NoiseLevelEncoding

from .conftest import REPO

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
# Outputs of the reference implementation's own network (github.com/ivanvovk/WaveGrad) on inputs.pt, from
# fixtures/reference/make_fixture.py: out[0, 1000:1006], out[0, -3:] and the mean |out|, out being [1, 4800].
# At 721c37c (its current code; since "fixed PE", 2020-11-20): the paper's sinusoidal noise-level encoding.
PINNED_721C37C = ([4.2355838, 2.8801117, 3.2441118, 4.1435533, 2.5147913, 2.4651475],
                  [1.1839143, 0.19513711, 0.65698281], 3.3235843)
# At e740900 (before 2ecf360, 2020-10-24): level + time-position encoding / 5000; same weights.
PINNED_E740900 = ([5.4751692, 2.5850523, 3.3619742, 3.9675102, -2.6699157, 2.5671518],
                  [3.9885616, 0.85126859, -1.0362494], 2.1364367)


def reference_forward(checkpoint: Path, config) -> tuple[torch.Tensor, str]:
    """Our network loaded from a reference checkpoint, run on the fixture's inputs: (output [1, 4800], encoding)."""
    model = load_model(checkpoint, config, "cpu")
    inputs = torch.load(REFERENCE / "inputs.pt")
    with torch.no_grad():
        out = model(inputs["mels"], inputs["noisy"], inputs["noise_level"])
    return out, model.config.model_config.noise_level_encoding


def assert_pinned(out: torch.Tensor, pinned: tuple) -> None:
    window, tail, mean_abs = pinned
    assert out.shape == (1, 4800)
    torch.testing.assert_close(out[0, 1000:1006], torch.tensor(window), rtol=0, atol=1e-4)
    torch.testing.assert_close(out[0, -3:], torch.tensor(tail), rtol=0, atol=1e-4)
    assert out.abs().mean().item() == pytest.approx(mean_abs, abs=1e-4)


def test_reference_checkpoint_reproduces_the_reference_network():
    config = load_config(REFERENCE / "small.json")
    out, encoding = reference_forward(REFERENCE / "checkpoint_721c37c.pt", config)
    assert encoding == "sinusoidal"
    assert_pinned(out, PINNED_721C37C)
    assert config.model_config.noise_level_encoding == "sinusoidal"  # the caller's config is not modified


def test_checkpoint_from_before_the_encoding_change_uses_the_earlier_encoding():
    out, encoding = reference_forward(REFERENCE / "checkpoint_e740900.pt", REFERENCE / "small.json")
    assert encoding == "ivanvovk"
    assert_pinned(out, PINNED_E740900)


def test_earlier_encoding_stays_selectable_in_the_config():
    config = load_config(REFERENCE / "small.json")
    config.model_config.noise_level_encoding = "ivanvovk"
    out, encoding = reference_forward(REFERENCE / "checkpoint_721c37c.pt", config)
    assert encoding == "ivanvovk"
    assert_pinned(out, PINNED_E740900)


def test_reference_checkpoint_needs_a_config():
    with pytest.raises(CheckpointError, match="carries no config; pass the config"):
        load_model(REFERENCE / "checkpoint_721c37c.pt")


def test_reference_noise_level_encoding_is_level_plus_time_positions():
    encoding = NoiseLevelEncoding(channels=4, kind="ivanvovk", stride=3)
    out = encoding(torch.tensor([0.5]), length=7)
    position, div1 = 5, math.exp(-2 * math.log(10000.0) / 4)
    assert out.shape == (1, 4, 1, 7)
    assert out[0, 0, 0, position].item() == pytest.approx(0.5 + math.sin(position * 3) / 5000)
    assert out[0, 1, 0, position].item() == pytest.approx(0.5 + math.cos(position * 3) / 5000)
    assert out[0, 2, 0, position].item() == pytest.approx(0.5 + math.sin(position * 3 * div1) / 5000)


def test_paper_noise_level_encoding_varies_with_level_not_time():
    encoding = NoiseLevelEncoding(channels=8, kind="sinusoidal", stride=1)
    out = encoding(torch.tensor([0.1, 0.9]), length=5)
    assert out.shape == (2, 8, 1, 1)
    assert out[0, 0, 0, 0].item() == pytest.approx(math.sin(500.0), abs=1e-4)
    assert out[1, 4, 0, 0].item() == pytest.approx(math.cos(4500.0), abs=1e-4)


def test_self_describing_checkpoint_round_trip(tiny_checkpoint, tiny_config):
    model = load_model(tiny_checkpoint)
    assert model.config == tiny_config and not model.training
    assert load_model(tiny_checkpoint, REPO / "configs" / "tiny.yaml").config == tiny_config


def test_config_checkpoint_mismatch_is_named(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="model_config of the given config differs"):
        load_model(tiny_checkpoint, load_config(REPO / "configs" / "default.json"))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "none.pt")
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="trunc.pt: unreadable checkpoint"):
        load_model(tmp_path / "trunc.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt: not a WaveGrad checkpoint"):
        load_model(tmp_path / "foreign.pt")


def test_checkpoint_write_is_atomic(tmp_path, tiny_config):
    path = tmp_path / "checkpoint_5.pt"
    save_checkpoint({"config": tiny_config.to_dict(), "model": {}, "step": 5}, path)
    assert path.is_file() and not list(tmp_path.glob(".*tmp"))
