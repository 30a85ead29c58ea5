"""Config loading and validation, and the reference's parameter count."""

import json

import pytest

from wavegrad.config import Config, config_from_dict, load_config, save_config
from wavegrad.errors import ConfigError
from wavegrad.model import WaveGrad, count_parameters

from .conftest import REPO

# configs/default.json of github.com/ivanvovk/WaveGrad, verbatim.
REFERENCE_DEFAULT_JSON = """{
    "model_config": {
        "factors": [5, 5, 3, 2, 2],
        "upsampling_preconv_out_channels": 768,
        "upsampling_out_channels": [512, 512, 256, 128, 128],
        "upsampling_dilations": [[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8]],
        "downsampling_preconv_out_channels": 32,
        "downsampling_out_channels": [128, 128, 256, 512],
        "downsampling_dilations": [[1, 2, 4], [1, 2, 4], [1, 2, 4], [1, 2, 4]]
    },
    "data_config": {"sample_rate": 22050, "n_fft": 1024, "win_length": 1024, "hop_length": 300,
                    "f_min": 80.0, "f_max": 8000, "n_mels": 80},
    "training_config": {
        "logdir": "logs/default", "continue_training": false,
        "train_filelist_path": "filelists/train.txt", "test_filelist_path": "filelists/test.txt",
        "batch_size": 48, "segment_length": 7200, "lr": 1e-3, "grad_clip_threshold": 1,
        "scheduler_step_size": 1, "scheduler_gamma": 0.9, "n_epoch": 100000000,
        "n_samples_to_test": 4, "test_interval": 1,
        "training_noise_schedule": {"n_iter": 1000, "betas_range": [1e-6, 0.01]},
        "test_noise_schedule": {"n_iter": 50, "betas_range": [1e-6, 0.01]}
    }
}"""


def test_default_config_has_reference_parameter_count():
    config = load_config(REPO / "configs" / "default.json")
    assert count_parameters(WaveGrad.from_config(config)) == 15_810_401
    assert config.data_config.hop_length == 300 and config.data_config.sample_rate == 22050
    assert config.training_config.batch_size == 96 and config.training_config.use_fp16


def test_reference_default_json_loads_unchanged(tmp_path):
    path = tmp_path / "default.json"
    path.write_text(REFERENCE_DEFAULT_JSON)
    config = load_config(path)
    assert config.training_config.lr == 1e-3
    assert config.training_config.training_noise_schedule.betas_range == (1e-6, 0.01)
    assert config.data_config.f_max == 8000.0
    assert config.model_config.factors == [5, 5, 3, 2, 2]


def test_saved_config_round_trips(tmp_path, tiny_config):
    save_config(tiny_config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == tiny_config


def test_factors_must_multiply_to_hop():
    data = json.loads(REFERENCE_DEFAULT_JSON)
    data["model_config"]["factors"] = [5, 5, 3, 2, 3]
    with pytest.raises(ConfigError, match=r"\[5, 5, 3, 2, 3\] multiply to 450, but hop_length is 300"):
        config_from_dict(data)


def test_channel_and_dilation_lists_must_agree():
    data = json.loads(REFERENCE_DEFAULT_JSON)
    data["model_config"]["upsampling_out_channels"] = [512, 512, 256, 128]
    with pytest.raises(ConfigError, match=r"upsampling_out_channels \(4\)"):
        config_from_dict(data)
    data = json.loads(REFERENCE_DEFAULT_JSON)
    data["model_config"]["downsampling_dilations"] = [[1, 2, 4]] * 3
    with pytest.raises(ConfigError, match=r"downsampling_dilations \(3\)"):
        config_from_dict(data)


def test_unknown_key_and_wrong_type_are_named():
    with pytest.raises(ConfigError, match="unknown key.*'hop_lenght'"):
        config_from_dict({"data_config": {"hop_lenght": 300}})
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
