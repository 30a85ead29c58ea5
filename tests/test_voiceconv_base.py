"""The pretrained base: export, fitting, and fine-tuning that starts from its weights with a new speaker row."""

from __future__ import annotations

import contextlib
import io
import math
import shutil

import pytest
import torch

from voiceconv import base
from voiceconv import train as train_module
from voiceconv.__main__ import main as voiceconv_main
from voiceconv.checkpoint import read
from voiceconv.data import ExperimentDataset, batches
from voiceconv.model import Converter
from voiceconv.perturb import PITCH_SHIFTS
from voiceconv.train import TrainOptions, train
from wavegrad.checkpoint import newest_checkpoint
from wavegrad.errors import WaveGradError

from .vc_fixtures import FEATURE_DIM, VOICES, make_experiment, tiny_audio, tiny_model_config

CONTENT = {"encoder": "toy", "dim": FEATURE_DIM}


def _train(root, filelist, epochs: int, **kwargs):
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True)
    options = TrainOptions(total_epoch=epochs, save_every_epoch=1, batch_size=4, lr=2e-3, progress=False)
    return train(root, dataset, tiny_model_config(discriminator=True), tiny_audio().audio_dict(), CONTENT, options,
                 **kwargs)


def _pretrained_base(tmp_path, clips: int = 3):
    """A tiny experiment of `clips` clips and the base exported after one epoch on it: filelist, G and D paths."""
    filelist = make_experiment(tmp_path / "data", clips=clips)
    (tmp_path / "pre").mkdir()
    _train(tmp_path / "pre", filelist, 1)
    g_path, d_path = base.export_base(tmp_path / "pre", tmp_path, ["en_allison"])
    return filelist, g_path, d_path


def test_fine_tuning_starts_from_the_base_with_a_new_speaker_row(tmp_path) -> None:
    filelist = make_experiment(tmp_path / "data", clips=3)
    (tmp_path / "pre").mkdir()
    _train(tmp_path / "pre", filelist, 2)
    written = base.export_base(tmp_path / "pre", tmp_path, ["en_allison"])
    assert [p.name for p in written] == ["G_base.pt", "D_base.pt"]
    g = read(tmp_path / "G_base.pt", "G")
    assert g["speakers"] == 1 and g["voices"] == ["en_allison"] and "optimizer" not in g
    assert g["model"]["speaker.weight"].dtype == torch.float16

    (tmp_path / "tuned").mkdir()  # 0 epochs: the exported model is the starting point
    start = _train(tmp_path / "tuned", filelist, 0, pretrained_g=tmp_path / "G_base.pt",
                   pretrained_d=tmp_path / "D_base.pt")
    start = read(start)["model"]
    for name, value in g["model"].items():
        if name != "speaker.weight":
            assert torch.equal(start[name], value), name
    trained_row = g["model"]["speaker.weight"][0].float()
    assert torch.allclose(start["speaker.weight"].float(), trained_row.expand_as(start["speaker.weight"]), atol=1e-3)
    assert not torch.allclose(g["model"]["speaker.weight"][1].float(), trained_row)  # the base's unused rows differ

    (tmp_path / "zero_shot").mkdir()  # a speaker-agnostic model starts from the base without its speaker table
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True, prematch_k=1)
    options = TrainOptions(total_epoch=0, batch_size=4, progress=False)
    agnostic = train(tmp_path / "zero_shot", dataset, tiny_model_config(use_speaker=False), tiny_audio().audio_dict(),
                     CONTENT, options, pretrained_g=tmp_path / "G_base.pt")
    agnostic = read(agnostic)["model"]
    assert "speaker.weight" not in agnostic
    assert all(torch.equal(v, g["model"][k]) for k, v in agnostic.items())

    (tmp_path / "matched").mkdir()  # with matched mels: the base's weights and a silent timbre input
    audio = tiny_audio()
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True, prematch_k=1, matched_mels=audio)
    matched = train(tmp_path / "matched", dataset, tiny_model_config(use_speaker=False, matched_mel=True),
                    audio.audio_dict(), CONTENT, options, pretrained_g=tmp_path / "G_base.pt")
    matched = read(matched)["model"]
    assert matched["timbre.weight"].shape == (32, audio.n_mels) and not matched["timbre.weight"].any()
    assert all(torch.equal(v, g["model"][k]) for k, v in matched.items() if not k.startswith("timbre"))


def test_tune_last_trains_only_the_speaker_rows_the_last_layers_and_the_output(tmp_path) -> None:
    filelist, g_path, d_path = _pretrained_base(tmp_path)
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True)
    options = TrainOptions(total_epoch=2, batch_size=4, lr=2e-3, progress=False, tune_last=1)
    (tmp_path / "tuned").mkdir()
    tuned = train(tmp_path / "tuned", dataset, tiny_model_config(discriminator=True), tiny_audio().audio_dict(),
                  CONTENT, options, pretrained_g=g_path, pretrained_d=d_path)
    start, tuned = read(g_path, "G")["model"], read(tuned)["model"]
    trained = {name for name, value in tuned.items() if not torch.equal(value, start[name])}
    assert trained and all(name.startswith(("speaker.", "layers.1.", "out.")) for name in trained), trained
    assert {"speaker.weight", "out.weight", "layers.1.conv1.weight"} <= trained

    options = TrainOptions(total_epoch=1, batch_size=4, progress=False, tune_last=3)  # the tiny model has 2 layers
    (tmp_path / "too_many").mkdir()
    with pytest.raises(WaveGradError, match="--tune-last 3: the model has 2 encoder layers"):
        train(tmp_path / "too_many", dataset, tiny_model_config(), tiny_audio().audio_dict(), CONTENT, options,
              pretrained_g=g_path)


def test_a_base_trained_further_keeps_its_voices_speaker_rows(tmp_path, capsys) -> None:
    filelist, g_path, d_path = _pretrained_base(tmp_path)
    assert base.continued_base(g_path, ["en_allison"]) == ["--pretrained-g", str(g_path), "--pretrained-d",
                                                           str(d_path), "--keep-base-speakers"]
    (tmp_path / "more").mkdir()  # 0 epochs: the base itself, speaker table included, is the starting point
    options = TrainOptions(total_epoch=0, batch_size=4, progress=False, keep_base_speakers=True)
    start = train(tmp_path / "more", ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True),
                  tiny_model_config(discriminator=True), tiny_audio().audio_dict(), CONTENT, options,
                  pretrained_g=g_path, pretrained_d=d_path)
    assert all(torch.equal(value, read(g_path, "G")["model"][name]) for name, value in read(start)["model"].items())

    folder = tmp_path / "voices" / "it_carlo"  # other voices than the base's: one line, exit 2, nothing prepared
    folder.mkdir(parents=True)
    argv = ["pretrain", "--logs-dir", str(tmp_path / "logs"), "--input", str(folder), "--init-from", str(g_path)]
    assert voiceconv_main(argv) == 2
    assert "trained on the voices en_allison, not it_carlo" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_a_filelist_gives_one_voice_per_folder_with_only_its_clips(tmp_path) -> None:
    clips = [VOICES / "it_carlo" / "conf-getpin.flac", VOICES / "en_allison" / "conf-getpin.flac",
             VOICES / "en_allison" / "agent-pass.flac"]
    run = tmp_path / "run"
    assert base.linked_voices(run, clips) == [run / "sources" / "en_allison", run / "sources" / "it_carlo"]
    assert (run / "sources" / "en_allison" / "agent-pass.flac").resolve() == clips[2].resolve()
    base.linked_voices(run, clips[:2])  # a clip left out of the list is no longer linked
    assert sorted(p.name for p in (run / "sources" / "en_allison").iterdir()) == ["conf-getpin.flac"]


def test_the_shipped_base_is_used_only_when_it_fits(tmp_path, monkeypatch) -> None:
    filelist, _, _ = _pretrained_base(tmp_path, clips=2)
    monkeypatch.setattr(base, "shipped", lambda kind: {"G_base": tmp_path / "G_base.pt"})
    config, audio = tiny_model_config(discriminator=True).to_dict(), tiny_audio().audio_dict()
    path, reason = base.fitting_base(config, audio, FEATURE_DIM)
    assert path == tmp_path / "G_base.pt" and "fine-tuning from the shipped base G_base.pt (1 voices)" in reason
    assert base.fitting_base({**config, "use_speaker": False}, audio, FEATURE_DIM)[0] == path  # zero-shot too
    path, reason = base.fitting_base({**config, "hidden": 64}, audio | {"f_max": 7000.0}, FEATURE_DIM)
    assert path is None and reason.endswith("differs in hidden, vocoder audio config")
    monkeypatch.setattr(base, "shipped", lambda kind: {})
    assert base.fitting_base(config, audio, FEATURE_DIM) == (None, "no base is shipped")


def test_pretrain_command_gives_each_voice_a_speaker_and_exports_the_base(tmp_path, monkeypatch) -> None:
    voices = []
    for voice in ("en_allison", "it_carlo"):
        folder = tmp_path / "voices" / voice
        folder.mkdir(parents=True)
        shutil.copy(VOICES / voice / "conf-getpin.flac", folder)
        voices += ["--input", str(folder)]
    argv = ["pretrain", "--logs-dir", str(tmp_path / "logs"), *voices, "--preset", "tiny", "--total-epoch", "1",
            "--f0-method", "pm", "--batch-size", "2", "--out", str(tmp_path / "out"), "--pitch-shifted",
            "--perturbed-content", "--speaker-film"]
    perturbed = []  # what training read: the voice-perturbed content
    monkeypatch.setattr(train_module, "ExperimentDataset",
                        lambda *a, **k: perturbed.append(k["perturbed"]) or ExperimentDataset(*a, **k))
    with contextlib.redirect_stdout(io.StringIO()):
        assert voiceconv_main(argv) == 0
    g, d = read(tmp_path / "out" / "G_base.pt", "G"), read(tmp_path / "out" / "D_base.pt", "D")
    assert g["voices"] == ["en_allison", "it_carlo"] and g["speakers"] == 2 and g["content"]["encoder"] == "whisper"
    assert d["epoch"] == 1 and "classifier.weight" in d["model"]
    run = tmp_path / "logs" / "vc_base"
    segments = len(list((run / "4_mel").glob("*.npy")))
    for semitones in PITCH_SHIFTS:  # every segment resynthesised at each shift, and trained on as a copy
        assert len(list((run / f"4_mel_pitch{semitones:+d}").glob("*.npy"))) == segments
    (features,) = run.glob("3_feature*_perturbed")  # every segment's content with its voice moved, trained on
    assert len(list(features.glob("*.npy"))) == segments and perturbed == [True]
    assert d["step"] == math.ceil(segments * (1 + len(PITCH_SHIFTS)) / 2)
    assert g["config"]["speaker_film"] and "layers.0.film.weight" in g["model"]

    # resumed without --speaker-film, the run keeps the projections of its checkpoint
    argv = ["train", "--logs-dir", str(tmp_path / "logs"), "--exp", "vc_base", "--preset", "tiny", "--discriminator",
            "--total-epoch", "2", "--batch-size", "2", "--perturbed-content"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert voiceconv_main(argv) == 0
    assert read(run / "vc_base.pt")["config"]["speaker_film"]

    # fine-tuned from this base (a copy of the prepared run, without its checkpoints), the new voice trains only
    # the speaker rows, their projections, the last encoder layer and the output; resumed, it keeps to that
    tuned = tmp_path / "tuned" / "vc_base"
    shutil.copytree(run, tuned, ignore=shutil.ignore_patterns("*.pt", "events.*"))
    argv = ["train", "--logs-dir", str(tuned.parent), "--exp", "vc_base", "--preset", "tiny", "--batch-size", "2",
            "--perturbed-content", "--pretrained-g", str(tmp_path / "out" / "G_base.pt")]
    said = []
    for epochs in ("1", "2"):
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert voiceconv_main([*argv, "--total-epoch", epochs]) == 0
        said.append("the last 1 encoder layer" in printed.getvalue())
        newest = read(newest_checkpoint(tuned, "G"), "G")
        assert newest["options"]["tune_last"] == 1
        changed = {k for k, v in newest["model"].items() if not torch.equal(v.float(), g["model"][k].float())}
        assert changed and all(k.startswith(("speaker.", "layers.1.", "out.")) or ".film." in k for k in changed)
    assert said == [True, False]  # said when fine-tuning began


def test_speaker_film_starts_from_a_base_without_it_and_tunes_with_the_speaker_rows(tmp_path) -> None:
    filelist, g_path, _ = _pretrained_base(tmp_path)
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True)
    film_config = tiny_model_config(speaker_film=True)

    (tmp_path / "start").mkdir()  # 0 epochs: the base's weights, every layer's speaker projection at zero
    start = read(train(tmp_path / "start", dataset, film_config, tiny_audio().audio_dict(), CONTENT,
                       TrainOptions(total_epoch=0, batch_size=4, progress=False), pretrained_g=g_path))["model"]
    films = {name for name in start if ".film." in name}
    assert films == {f"layers.{i}.film.{p}" for i in range(2) for p in ("weight", "bias")}
    assert not any(start[name].any() for name in films)
    plain, conditioned = Converter(tiny_model_config()), Converter(film_config)
    plain.load_state_dict({k: v for k, v in start.items() if k not in films})
    conditioned.load_state_dict(start)
    batch = batches(dataset, 2, 0)[0]
    inputs = (batch["content"], batch["coarse"], batch["f0"], batch["speaker"], batch["mel"].shape[-1])
    assert torch.equal(plain(*inputs), conditioned(*inputs))  # it renders as the base

    (tmp_path / "tuned").mkdir()  # --tune-last 0 trains the speaker rows with their projections into every layer
    options = TrainOptions(total_epoch=2, batch_size=4, lr=2e-3, progress=False, tune_last=0)
    tuned = read(train(tmp_path / "tuned", dataset, film_config, tiny_audio().audio_dict(), CONTENT, options,
                       pretrained_g=g_path))["model"]
    trained = {name for name, value in tuned.items() if not torch.equal(value, start[name])}
    assert {"speaker.weight", "out.weight", "layers.0.film.weight", "layers.1.film.weight"} <= trained
    assert all(name.startswith(("speaker.", "out.")) or ".film." in name for name in trained), trained

    (film_base,) = base.export_base(tmp_path / "tuned", tmp_path / "film_base", ["en_allison"])
    (tmp_path / "zero_shot").mkdir()  # a speaker-agnostic model drops the table with its projections
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True, prematch_k=1)
    agnostic = read(train(tmp_path / "zero_shot", dataset, tiny_model_config(use_speaker=False, speaker_film=True),
                          tiny_audio().audio_dict(), CONTENT, TrainOptions(total_epoch=0, batch_size=4, progress=False),
                          pretrained_g=film_base))["model"]
    assert set(agnostic) == {k for k in tuned if k != "speaker.weight" and ".film." not in k}
