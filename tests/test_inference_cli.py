"""`wavegrad inference -c -ch -ns -m` round trip and its handling of bad inputs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from wavegrad.__main__ import main
from wavegrad.audio import MelSpectrogram
from wavegrad.schedule import linear_betas, save_schedule

from .conftest import FEMALE_CLIP, REPO


def _inputs(tmp_path, tiny_config, real_clip):
    mel = MelSpectrogram(tiny_config.data_config)(real_clip[:6000])
    torch.save(mel, tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", mel[:, :10].numpy())
    save_schedule(linear_betas(3, (1e-4, 0.05)), tmp_path / "3iters.pt")
    return mel


def test_cli_round_trip_writes_wavs_of_the_right_length(tmp_path, tiny_config, tiny_checkpoint, real_clip, capsys):
    mel = _inputs(tmp_path, tiny_config, real_clip)
    (tmp_path / "mels.txt").write_text("a.pt\nb.npy\n")
    status = main(["inference", "-c", str(REPO / "configs" / "tiny.yaml"), "-ch", str(tiny_checkpoint),
                   "-ns", str(tmp_path / "3iters.pt"), "-m", str(tmp_path / "mels.txt"), "-v", "no",
                   "--out-dir", str(tmp_path / "out")])
    assert status == 0
    audio, rate = sf.read(tmp_path / "out" / "predicted_a.wav")
    assert rate == 16000 and audio.shape == (mel.shape[1] * 300,)
    assert sf.info(tmp_path / "out" / "predicted_b.wav").frames == 3000
    assert "real-time factor" in capsys.readouterr().out


def test_bad_mels_are_reported_and_the_rest_rendered(tmp_path, tiny_config, tiny_checkpoint, real_clip, capsys):
    _inputs(tmp_path, tiny_config, real_clip)
    torch.save(torch.zeros(40, 10), tmp_path / "narrow.pt")
    (tmp_path / "mels.txt").write_text("narrow.pt\nmissing.pt\na.pt\n")
    status = main(["inference", "-ch", str(tiny_checkpoint), "-ns", str(tmp_path / "3iters.pt"),
                   "-m", str(tmp_path / "mels.txt"), "-v", "no"])
    out = capsys.readouterr().out
    assert status == 2
    assert "narrow.pt: mel has shape (40, 10), expected [80, frames]" in out
    assert "missing.pt: mel file not found" in out
    assert (tmp_path / "predicted_a.wav").is_file()
    assert not (tmp_path / "predicted_narrow.wav").exists()


def test_bad_checkpoint_schedule_and_config_exit_2_with_one_line(tmp_path, tiny_config, tiny_checkpoint, real_clip):
    _inputs(tmp_path, tiny_config, real_clip)
    (tmp_path / "mels.txt").write_text("a.pt\n")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    torch.save(torch.tensor([0.5, 1.5]), tmp_path / "bad_schedule.pt")
    cases = {
        "broken.pt: unreadable checkpoint": ["-ch", str(tmp_path / "broken.pt"), "-ns", str(tmp_path / "3iters.pt")],
        "bad_schedule.pt: every beta must lie in (0, 1)": ["-ch", str(tiny_checkpoint), "-ns",
                                                            str(tmp_path / "bad_schedule.pt")],
        "model_config of the given config differs": ["-c", str(REPO / "configs" / "default.json"),
                                                     "-ch", str(tiny_checkpoint), "-ns", str(tmp_path / "3iters.pt")],
    }
    for message, args in cases.items():
        result = subprocess.run([sys.executable, "-m", "wavegrad", "inference", *args, "-m",
                                 str(tmp_path / "mels.txt")], capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_audio_as_filelist_and_unwritable_out_dir_exit_2_with_one_line(tmp_path, tiny_config, tiny_checkpoint,
                                                                         real_clip, capsys):
    _inputs(tmp_path, tiny_config, real_clip)
    (tmp_path / "mels.txt").write_text("a.pt\n")
    (tmp_path / "a_file").write_text("")
    common = ["inference", "-ch", str(tiny_checkpoint), "-ns", str(tmp_path / "3iters.pt"), "-v", "no"]
    cases = {
        "conf-getpin.flac: not a text file": ["-m", str(FEMALE_CLIP)],
        "a_file: cannot create this folder": ["-m", str(tmp_path / "mels.txt"), "--out-dir", str(tmp_path / "a_file")],
    }
    if Path("/proc/self").is_dir():
        cases["/proc/x: cannot create this folder"] = ["-m", str(tmp_path / "mels.txt"), "--out-dir", "/proc/x"]
    for message, args in cases.items():
        assert main([*common, *args]) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
