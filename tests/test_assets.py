"""Named assets, paths inside files, and the run root: nothing depends on the working directory."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from voiceconv.__main__ import main as voiceconv_main
from voiceconv.config import Experiment
from wavegrad import load_config, load_model, load_schedule
from wavegrad.__main__ import main as wavegrad_main
from wavegrad.assets import resolve_asset, shipped
from wavegrad.errors import CheckpointError, ConfigError, ScheduleError
from wavegrad.train import add_arguments as train_arguments

from .conftest import FEMALE_CLIP, REPO


def test_shipped_assets_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert set(shipped("config")) == {"default", "small_16k", "tiny"}
    assert {"6iters", "7iters", "12iters", "25iters", "50iters"} <= set(shipped("schedule"))
    model = load_model("small_16k", device="cpu")
    assert model.config.data_config.sample_rate == 16000
    assert torch.equal(load_schedule("6iters"), load_schedule(REPO / "schedules" / "6iters.pt"))
    assert load_config("small_16k").model_config == load_config(REPO / "configs" / "small_16k.yaml").model_config


def test_an_existing_path_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").write_text("model_config: {}\n")
    assert resolve_asset("tiny", "config") == Path("tiny")
    assert resolve_asset("tiny.yaml", "config") == Path("tiny.yaml")  # neither a file nor a name: as given


def test_unknown_names_list_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"big: cannot read config .*shipped name \(default, small_16k, tiny\)"):
        load_config("big")
    with pytest.raises(ScheduleError, match=r"5iters: schedule file not found; .* shipped name \(.*6iters"):
        load_schedule("5iters")
    with pytest.raises(CheckpointError, match=r"large: checkpoint not found; .*shipped vocoder \(small_16k\)"):
        load_model("large")


def test_config_filelists_resolve_against_the_config(tmp_path, monkeypatch):
    (tmp_path / "project" / "lists").mkdir(parents=True)
    (tmp_path / "project" / "lists" / "train.txt").write_text(f"{FEMALE_CLIP}\n")
    config = tmp_path / "project" / "configs" / "mine.yaml"
    config.parent.mkdir()
    config.write_text("training_config:\n  train_filelist_path: ../lists/train.txt\n"
                      "  test_filelist_path: lists/test.txt\n")
    monkeypatch.chdir(tmp_path)
    t = load_config(config).training_config
    assert t.train_filelist_path == str(tmp_path / "project" / "lists" / "train.txt")
    assert t.test_filelist_path == "lists/test.txt"  # nothing beside the config: left to the working directory
    # the repository's configs name their lists relative to themselves, so they work from anywhere
    t = load_config(REPO / "configs" / "small_16k.yaml").training_config
    assert t.train_filelist_path == str(REPO / "filelists" / "train.txt")


def test_one_setting_for_the_run_root(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVEGRAD_LOGS", str(tmp_path / "runs"))
    assert Experiment.at("voice").root == tmp_path / "runs" / "voice"
    parser = argparse.ArgumentParser()
    train_arguments(parser)
    assert parser.parse_args(["-c", "tiny", "--exp", "x"]).logs_dir == tmp_path / "runs"
    monkeypatch.delenv("WAVEGRAD_LOGS")
    assert Experiment.at("voice").root == Path("logs") / "voice"


def test_preprocess_binds_the_shipped_vocoder_config_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / FEMALE_CLIP.name).write_bytes(FEMALE_CLIP.read_bytes())
    assert voiceconv_main(["preprocess", "--exp", "x", "--input", "clips", "--processes", "1"]) == 0
    exp = Experiment.at("x").load_config()
    assert exp.vocoder_config == "small_16k"
    assert exp.audio == load_config("small_16k").data_config
    assert wavegrad_main(["inference", "-ch", "small_16k", "-ns", "7iters", "-m", "none.txt"]) == 2
    assert "none.txt: filelist not found" in capsys.readouterr().err


INSTALLED_CHECK = textwrap.dedent("""
    import sys
    from pathlib import Path
    import wavegrad
    from wavegrad.assets import shipped
    root = Path(wavegrad.__file__).parent
    assert Path(sys.prefix) in root.parents, (root, sys.prefix)
    assert all(root / "assets" in path.parents for kind in ("config", "vocoder", "schedule")
               for path in shipped(kind).values())
    model = wavegrad.load_model("small_16k", device="cpu")
    hop = wavegrad.load_config("tiny").data_config.hop_length
    print(type(model).__name__, len(wavegrad.load_schedule("6iters")), hop)
""")


def test_non_editable_install_works_outside_the_checkout(tmp_path):
    """A wheel installed into a fresh venv (the test extras come from this environment) resolves the shipped
    assets inside its own installation, and `voiceconv preprocess` needs no --vocoder-config."""
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed",
                    *wheels.glob("*.whl")], check=True)
    work.mkdir()
    (work / "clips").mkdir()
    (work / "clips" / FEMALE_CLIP.name).write_bytes(FEMALE_CLIP.read_bytes())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    out = subprocess.run([python, "-c", INSTALLED_CHECK], cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["WaveGrad", "6", "300"]
    done = subprocess.run([venv / "bin" / "voiceconv", "preprocess", "--exp", "x", "--input", "clips"],
                          cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (work / "logs" / "x" / "experiment.yaml").is_file()
    assert any((work / "logs" / "x" / "0_gt_wavs").glob("*.wav"))
