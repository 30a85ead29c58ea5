"""Config loading and validation; the reference's own default.json (verbatim) and its parameter count."""

import json
from pathlib import Path

import pytest

from voiceconv.__main__ import main as voiceconv_main
from wavegrad.__main__ import main
from wavegrad.config import Config, DistConfig, config_from_dict, load_config, save_config
from wavegrad.errors import ConfigError
from wavegrad.model import WaveGrad, count_parameters

from .conftest import FEMALE_CLIP, REPO

# configs/default.json of github.com/ivanvovk/WaveGrad (BSD-3), byte for byte; see fixtures/reference/README.md.
REFERENCE_DEFAULT_JSON = Path(__file__).parent / "fixtures" / "reference" / "default.json"


def reference_data() -> dict:
    return json.loads(REFERENCE_DEFAULT_JSON.read_text())


def test_default_config_has_reference_parameter_count():
    config = load_config(REPO / "configs" / "default.json")
    assert count_parameters(WaveGrad(config)) == 15_810_401
    assert config.data_config.hop_length == 300 and config.data_config.sample_rate == 22050
    assert config.training_config.batch_size == 96 and config.training_config.use_fp16


def test_reference_default_json_loads_verbatim():
    config = load_config(REFERENCE_DEFAULT_JSON)
    assert count_parameters(WaveGrad(config)) == 15_810_401
    assert config.training_config.lr == 1e-3 and config.training_config.batch_size == 96
    assert config.training_config.training_noise_schedule.betas_range == (1e-6, 0.01)
    assert config.data_config.f_max == 8000.0
    assert config.model_config.noise_level_encoding == "sinusoidal"
    assert config.dist_config == DistConfig(MASTER_ADDR="localhost", MASTER_PORT="600010")


def test_reference_default_json_trains(capsys):
    status = main(["train", "-c", str(REFERENCE_DEFAULT_JSON), "--benchmark", "1", "--benchmark-batch", "1",
                   "--device", "cpu"])
    assert status == 0 and "training step, batch 1 x 7200 samples" in capsys.readouterr().out


def test_saved_config_round_trips(tmp_path, tiny_config):
    save_config(tiny_config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == tiny_config


def test_factors_must_multiply_to_hop():
    data = reference_data()
    data["model_config"]["factors"] = [5, 5, 3, 2, 3]
    with pytest.raises(ConfigError, match=r"\[5, 5, 3, 2, 3\] multiply to 450, but hop_length is 300"):
        config_from_dict(data)


def test_channel_and_dilation_lists_must_agree():
    data = reference_data()
    data["model_config"]["upsampling_out_channels"] = [512, 512, 256, 128]
    with pytest.raises(ConfigError, match=r"upsampling_out_channels \(4\)"):
        config_from_dict(data)
    data = reference_data()
    data["model_config"]["downsampling_dilations"] = [[1, 2, 4]] * 3
    with pytest.raises(ConfigError, match=r"downsampling_dilations \(3\)"):
        config_from_dict(data)


@pytest.mark.parametrize("key,value,bound", [("pitch_up_semitones", 25, r"\[0, 24\]"),
                                             ("pitch_up_probability", 1.5, r"\[0, 1\]")])
def test_pitch_up_augmentation_is_bounded(key, value, bound):
    data = reference_data()
    data["training_config"][key] = value
    with pytest.raises(ConfigError, match=f"{key} must be in {bound}, got {value}"):
        config_from_dict(data)


def test_unknown_key_and_wrong_type_are_named():
    with pytest.raises(ConfigError, match="unknown key.*'hop_lenght'"):
        config_from_dict({"data_config": {"hop_lenght": 300}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dist_cfg'\] in 'config'"):
        config_from_dict({**reference_data(), "dist_cfg": {}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['MASTER_HOST'\] in 'config.dist_config'"):
        config_from_dict({"dist_config": {"MASTER_HOST": "localhost"}})
    with pytest.raises(ConfigError, match="data_config.n_mels"):
        config_from_dict({"data_config": {"n_mels": "eighty"}})


def test_missing_and_malformed_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not: [valid")
    with pytest.raises(ConfigError, match="bad.json"):
        load_config(bad)


def test_partial_config_fills_defaults():
    assert config_from_dict({}) == Config()
    assert config_from_dict({"dist_config": {"MASTER_PORT": 29500}}).dist_config.MASTER_PORT == "29500"


def test_checkpoint_or_binary_file_as_config_is_one_line(tmp_path, tiny_checkpoint, capsys):
    with pytest.raises(ConfigError, match="checkpoint_0.pt: looks like a PyTorch checkpoint, not a config; pass a"):
        load_config(tiny_checkpoint)
    (tmp_path / "clip.bin").write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"clip.bin: not a text file \(binary data at byte 128\)"):
        load_config(tmp_path / "clip.bin")
    assert main(["train", "-c", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint_0.pt: looks like a PyTorch checkpoint" in err


def test_checkpoint_as_vocoder_config_is_one_line(tmp_path, tiny_checkpoint, capsys):
    status = voiceconv_main(["preprocess", "--exp", "x", "--logs-dir", str(tmp_path / "logs"),
                             "--input", str(FEMALE_CLIP.parent), "--vocoder-config", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "looks like a PyTorch checkpoint, not a config" in err
