"""`voiceconv prepare` end to end on real clips of two speakers: layout, filelist, bad files, resume."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voiceconv.__main__ import main as voiceconv_main
from voiceconv.config import Experiment, bind_experiment
from voiceconv.content import extract_features
from voiceconv.pitch import extract_pitch
from voiceconv.preprocess import preprocess
from voiceconv.targets import mel_targets, read_filelist, write_filelist
from wavegrad.audio import MelSpectrogram, read_audio
from wavegrad.checkpoint import newest_checkpoint
from wavegrad.config import load_config
from wavegrad.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
VOICES = REPO / "data" / "voices"
FEMALE_CLIP = VOICES / "en_allison" / "conf-getpin.flac"
MALE_CLIP = VOICES / "it_carlo" / "conf-getpin.flac"

SMALL = REPO / "configs" / "small_16k.yaml"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, Path, str]:
    """Two speakers (3 + 2 real clips); speaker 0's folder also holds a corrupt, an empty and a 50 ms file."""
    root = tmp_path_factory.mktemp("prep")
    female, male = root / "female", root / "male"
    female.mkdir(), male.mkdir()
    for name in ("conf-getpin", "vm-Cust3", "one-moment-please"):
        shutil.copy(VOICES / "en_allison" / f"{name}.flac", female)
    for name in ("conf-getpin", "one-moment-please"):
        shutil.copy(VOICES / "it_carlo" / f"{name}.flac", male)
    (female / "broken.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (female / "empty.flac").write_bytes(b"")
    sf.write(female / "blip.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 800).astype(np.float32), 16000)
    before = {f: _snapshot(f) for f in (female, male)}
    argv = ["prepare", "--exp", "two", "--logs-dir", str(root / "logs"), "--input", str(female), "--input",
            str(male), "--speaker-id", "0", "--speaker-id", "3", "--vocoder-config", str(SMALL), "--method", "dio",
            "--processes", "1"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert voiceconv_main(argv) == 0
    assert {f: _snapshot(f) for f in (female, male)} == before  # inputs untouched
    return Experiment.at("two", root / "logs"), root, out.getvalue()


def test_bad_files_reported_and_skipped(prepared) -> None:
    exp, root, output = prepared
    for name in ("broken.wav", "empty.flac", "blip.wav"):
        assert f"skipped bad file {root / 'female' / name}" in output
    assert "preprocess: 3 done, 0 already there, 3 failed" in output
    assert "preprocess: 2 done, 0 already there, 0 failed" in output


def test_layout_shapes_and_filelist(prepared) -> None:
    exp, _, _ = prepared
    config = exp.load_config()
    assert config.audio.audio_dict() == load_config(SMALL).data_config.audio_dict()
    assert (config.f0_method, config.encoder, config.feature_dim) == ("dio", "whisper", 384)
    stems = exp.stems()
    assert {s.split("_")[0] for s in stems} == {"0", "3"} and len(stems) >= 5
    assert sorted(p.stem for p in exp.gt_dir.glob("*.wav")) == stems
    mel = MelSpectrogram(config.audio)
    for stem in stems:
        gt, rate = read_audio(exp.gt_wav(stem))
        low, low_rate = read_audio(exp.wav16k(stem))
        assert rate == config.audio.sample_rate and low_rate == 16000 and abs(len(low) - len(gt)) <= 1
        coarse, f0 = np.load(exp.f0_coarse(stem)), np.load(exp.f0_hz(stem))
        assert coarse.shape == f0.shape == (len(low) // 160,) and f0.dtype == np.float32
        assert coarse.min() >= 1 and coarse.max() <= 255 and (coarse[f0 == 0] == 1).all()
        assert np.load(exp.feature(stem, 384)).shape == (len(low) // 320, 384)
        target = np.load(exp.mel(stem))
        assert target.shape == (80, len(gt) // 300)
        np.testing.assert_array_equal(target, mel(torch.from_numpy(gt)).numpy())
    entries = read_filelist(exp.filelist)
    assert [e.stem for e in entries] == stems
    for entry in entries:
        assert entry.speaker_id == int(entry.stem.split("_")[0])
        assert all(p.is_absolute() and p.is_file() for p in (entry.gt_wav, entry.feature, entry.f0_coarse, entry.f0_hz))
    assert exp.filelist.read_text().splitlines()[0].count("|") == 4  # gt|feat|2a|2b|spk


def test_resume_after_deleting_outputs(prepared) -> None:
    """Each step redoes exactly the deleted outputs (two of them over two processes), identically."""
    exp, root, _ = prepared
    config = exp.load_config()
    stems = exp.stems()
    victim_gt, victims_f0, victim_feat, victims_mel = stems[0], stems[1:3], stems[3], stems[-2:]
    kept = {p: p.stat().st_mtime_ns for p in (exp.f0_hz(stems[-1]), exp.feature(stems[0], 384))}
    deleted = [exp.f0_coarse(s) for s in victims_f0] + [exp.feature(victim_feat, 384)]
    deleted += [exp.mel(s) for s in victims_mel]
    saved = {p: np.load(p) for p in deleted}
    saved_gt = read_audio(exp.gt_wav(victim_gt))[0]
    for path in [exp.gt_wav(victim_gt)] + deleted:
        path.unlink()
    # The filelist only lists complete items.
    assert victim_gt not in [e.stem for e in write_filelist(exp, config)]
    assert victim_gt.startswith("0_")  # speaker 0: the female folder, with its 3 bad files reported again
    reports = [preprocess(exp, config, root / "female", 0, progress=False),
               extract_pitch(exp, config, "dio", processes=2, progress=False),
               *extract_features(exp, config, "whisper", progress=False),
               mel_targets(exp, config, processes=2, progress=False)]
    assert [(r.done, len(r.failed)) for r in reports] == [(1, 3), (2, 0), (1, 0), (2, 0)]
    np.testing.assert_array_equal(read_audio(exp.gt_wav(victim_gt))[0], saved_gt)
    for path, value in saved.items():
        np.testing.assert_allclose(np.load(path), value, atol=1e-5)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # untouched outputs were skipped, not rewritten
    assert [e.stem for e in write_filelist(exp, config)] == stems


def test_binding_and_method_switch_refused(prepared) -> None:
    exp, _, _ = prepared
    with pytest.raises(ConfigError, match="differs"):
        bind_experiment(exp, REPO / "configs" / "default.json")
    with pytest.raises(ConfigError, match="delete"):
        extract_pitch(exp, exp.load_config(), "pm", progress=False)
    with pytest.raises(ConfigError, match="speaker id 0 already belongs"):
        preprocess(exp, exp.load_config(), VOICES / "it_carlo", 0, progress=False)


def test_zero_shot_training_and_conversion_through_the_cli(prepared, tmp_path) -> None:
    """`train --zero-shot` makes a speaker-agnostic model from prematched content; `convert --target-refs`
    renders a voice it never trained on (fr_june), with the whisper encoder and the shipped vocoder."""
    from voiceconv.checkpoint import load_converter

    exp, root, _ = prepared
    argv = ["train", "--exp", "two", "--logs-dir", str(root / "logs"), "--zero-shot", "--preset", "tiny",
            "--total-epoch", "1", "--batch-size", "4", "--device", "cpu", "--precision", "bf16"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert voiceconv_main(argv) == 0
    assert torch.load(newest_checkpoint(exp.root, "G"), weights_only=False)["options"]["precision"] == "bf16"
    model, _ = load_converter(exp.root / "two.pt")
    assert not model.config.use_speaker and not hasattr(model, "speaker")
    refs = tmp_path / "refs"
    refs.mkdir()
    for path in sorted((VOICES / "fr_june").glob("*.flac"))[:6]:
        shutil.copy(path, refs)
    torch.save(torch.tensor([1e-4, 0.05], dtype=torch.float64), tmp_path / "2iters.pt")
    out = tmp_path / "out.wav"
    argv = ["convert", "--model", str(exp.root / "two.pt"), "--input", str(VOICES / "it_carlo" / "conf-getpin.flac"),
            "--output", str(out), "--target-refs", str(refs), "--schedule", str(tmp_path / "2iters.pt"),
            "--f0-method", "pm"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert voiceconv_main(argv) == 0
    audio, rate = read_audio(out)
    assert rate == 16000 and len(audio) > 16000 and "matching" in printed.getvalue()
