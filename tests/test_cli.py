"""The command lines: `--version` on both, and `wavegrad mel` (audio -> mel files -> `wavegrad inference -m`)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import wavegrad
from voiceconv.__main__ import main as voiceconv_main
from wavegrad.__main__ import main as wavegrad_main
from wavegrad.audio import load_audio, mel_spectrogram, pad_to_hop
from wavegrad.checkpoint import save_checkpoint
from wavegrad.config import load_config
from wavegrad.schedule import linear_betas, save_schedule

from .conftest import FEMALE_CLIP, MALE_CLIP, REPO

TINY = REPO / "configs" / "tiny.yaml"


@pytest.mark.parametrize("main, prog", [(wavegrad_main, "wavegrad"), (voiceconv_main, "voiceconv")])
def test_version_is_the_package_version(main, prog, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {wavegrad.__version__}"


def test_mel_files_render_with_inference(tmp_path, tiny_checkpoint, capsys) -> None:
    """Audio at 16 and 22.05 kHz -> mels of the config's one mel -> mels.txt -> wavs of the same length."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(FEMALE_CLIP, inputs / "female.flac")
    audio, rate = sf.read(MALE_CLIP)
    sf.write(inputs / "male.wav", audio[:8000], rate)
    sf.write(tmp_path / "silence.wav", np.zeros(22050 // 4), 22050)
    status = wavegrad_main(["mel", "-c", str(TINY), "-i", str(inputs), str(tmp_path / "silence.wav"),
                            "-o", str(tmp_path / "mels")])
    assert status == 0 and "wavegrad inference" in capsys.readouterr().out
    listing = tmp_path / "mels" / "mels.txt"
    assert listing.read_text().split() == ["female.pt", "male.pt", "silence.pt"]
    data = load_config(TINY).data_config
    expected = mel_spectrogram(pad_to_hop(load_audio(FEMALE_CLIP, data.sample_rate), data.hop_length), data)
    torch.testing.assert_close(torch.load(tmp_path / "mels" / "female.pt"), expected)
    assert torch.load(tmp_path / "mels" / "silence.pt").shape == (data.n_mels, 4000 // data.hop_length + 1)

    save_schedule(linear_betas(2, (1e-4, 0.05)), tmp_path / "2iters.pt")
    status = wavegrad_main(["inference", "-ch", str(tiny_checkpoint), "-ns", str(tmp_path / "2iters.pt"),
                            "-m", str(listing), "-v", "no", "--out-dir", str(tmp_path / "wavs")])
    assert status == 0
    frames = torch.load(tmp_path / "mels" / "male.pt").shape[1]
    assert sf.info(tmp_path / "wavs" / "predicted_male.wav").frames == frames * data.hop_length


def test_mel_takes_a_checkpoint_or_filelist_and_skips_bad_audio(tmp_path, tiny_checkpoint, capsys) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "list.txt").write_text(f"{FEMALE_CLIP}\nbroken.wav\nempty.flac\nmissing.wav\n")
    status = wavegrad_main(["mel", "-c", str(tiny_checkpoint), "-f", str(tmp_path / "list.txt"),
                            "-o", str(tmp_path / "mels")])
    out = capsys.readouterr().out
    assert status == 2
    assert f"error: {tmp_path / 'broken.wav'}: unreadable" in out and f"error: {tmp_path / 'empty.flac'}:" in out
    assert "missing.wav" in out and (tmp_path / "mels" / "mels.txt").read_text() == "conf-getpin.pt\n"


def test_mel_refuses_a_checkpoint_without_config(tmp_path, capsys) -> None:
    reference = tmp_path / "reference.pt"
    save_checkpoint({"model": {}, "iteration": 1}, reference)
    status = wavegrad_main(["mel", "-c", str(reference), "-i", str(FEMALE_CLIP), "-o", str(tmp_path / "mels")])
    error = capsys.readouterr().err
    assert status == 2 and error.startswith("error: ") and "no config" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "mels").exists()


HEAVY = ("tensorboard", "faiss", "matplotlib")


@pytest.mark.parametrize("package", ["wavegrad", "voiceconv"])
def test_help_answers_without_heavy_imports(package) -> None:
    """`--help` builds every subcommand's parser, in a fresh process: none may load tensorboard, faiss or matplotlib."""
    script = (f"import sys\nfrom {package}.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
              f"    pass\nprint('loaded:', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert "usage:" in result.stdout and "train" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "loaded: []"
