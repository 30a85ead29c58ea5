"""Self-describing checkpoints, and checkpoints of the reference implementation (ivanvovk/WaveGrad)."""

import math

import pytest
import torch

from wavegrad.checkpoint import load_model, save_checkpoint
from wavegrad.config import load_config
from wavegrad.errors import CheckpointError
from wavegrad.model import NoiseLevelEncoding

from .conftest import REPO


def reference_state_dict(config) -> dict[str, torch.Tensor]:
    """A random state dict in the reference implementation's key layout, built from its architecture."""
    m, n_mels = config.model_config, config.data_config.n_mels
    state: dict[str, torch.Tensor] = {}

    def conv(prefix: str, cin: int, cout: int, k: int) -> None:
        state[f"nn.{prefix}.conv1d.weight"] = torch.randn(cout, cin, k)
        state[f"nn.{prefix}.conv1d.bias"] = torch.randn(cout)

    ups = m.upsampling_out_channels
    conv("ublock_preconv", n_mels, m.upsampling_preconv_out_channels, 3)
    for i, (cin, cout) in enumerate(zip([m.upsampling_preconv_out_channels] + ups[:-1], ups, strict=True)):
        conv(f"ublocks.{i}.first_block_main_branch.upsampling.2", cin, cout, 3)
        conv(f"ublocks.{i}.first_block_main_branch.modulation.convolution", cout, cout, 3)
        conv(f"ublocks.{i}.first_block_residual_branch.0", cin, cout, 1)
        for j in range(2):
            conv(f"ublocks.{i}.second_block_main_branch.modulation_{j}.convolution", cout, cout, 3)
    conv("ublock_postconv", ups[-1], 1, 3)
    downs = m.downsampling_out_channels
    conv("dblock_preconv", 1, m.downsampling_preconv_out_channels, 5)
    for i, (cin, cout) in enumerate(zip([m.downsampling_preconv_out_channels] + downs[:-1], downs, strict=True)):
        for j in range(3):
            conv(f"dblocks.{i}.main_branch.{j + 1}.convolution", cin if j == 0 else cout, cout, 3)
        conv(f"dblocks.{i}.residual_branch.0", cin, cout, 1)
    for i, (cin, cout) in enumerate(zip([m.downsampling_preconv_out_channels] + downs, ups[::-1], strict=True)):
        conv(f"films.{i}.signal_conv.0", cin, cin, 3)
        conv(f"films.{i}.scale_conv", cin, cout, 3)
        conv(f"films.{i}.shift_conv", cin, cout, 3)
        state[f"nn.films.{i}.positional_encoding.pe"] = torch.randn(cin, 100)
    for name in ("betas", "alphas", "alphas_cumprod", "posterior_mean_coef1"):
        state[name] = torch.rand(1000)
    return state


def test_reference_checkpoint_loads_with_key_mapping(tmp_path, tiny_config):
    state = reference_state_dict(tiny_config)
    torch.save({"model": state, "optimizer": {}, "iteration": 7}, tmp_path / "ref.pt")
    model = load_model(tmp_path / "ref.pt", tiny_config, "cpu")
    ours = model.state_dict()
    assert torch.equal(ours["mel_conv.weight"], state["nn.ublock_preconv.conv1d.weight"])
    assert torch.equal(ours["ublocks.2.convs.3.bias"],
                       state["nn.ublocks.2.second_block_main_branch.modulation_1.convolution.conv1d.bias"])
    assert torch.equal(ours["dblocks.3.convs.0.weight"], state["nn.dblocks.3.main_branch.1.convolution.conv1d.weight"])
    assert torch.equal(ours["films.4.output_conv.weight"],
                       torch.cat([state["nn.films.4.scale_conv.conv1d.weight"],
                                  state["nn.films.4.shift_conv.conv1d.weight"]]))
    n_reference_params = sum(v.numel() for k, v in state.items() if k.startswith("nn.") and not k.endswith(".pe"))
    assert sum(p.numel() for p in model.parameters()) == n_reference_params
    assert model.config.model_config.noise_level_encoding == "ivanvovk"


def test_reference_checkpoint_needs_a_config(tmp_path, tiny_config):
    torch.save({"model": reference_state_dict(tiny_config), "iteration": 1}, tmp_path / "ref.pt")
    with pytest.raises(CheckpointError, match="carries no config; pass the config"):
        load_model(tmp_path / "ref.pt")


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
