"""The functions behind the web app's tabs, at tiny sizes: catalog, conversion (same output as the CLI), bad
input, rendering, the job queue (real subprocesses), one-click's command and progress, a real tiny search."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voiceconv.checkpoint import export_model
from voiceconv.model import Converter
from wavegrad.audio import load_audio, save_audio
from wavegrad.checkpoint import save_checkpoint
from wavegrad.config import load_config
from wavegrad.errors import AudioError, CheckpointError, ConfigError, ScheduleError, WaveGradError
from wavegrad.schedule import linear_betas, save_schedule
from webui import catalog, convert_tab, search_tab, train_tab, vocoder_tab
from webui.jobs import JobRegistry

from .tiny_model import untrained_tiny_checkpoint
from .vc_fixtures import TINY_CONFIG, VOICES, tiny_model_config

CLIP = VOICES / "it_carlo" / "conf-getpin.flac"
VOICE = "tiny_voice"


def make_logs(logs: Path, voice: str = VOICE) -> dict[str, str]:
    """A run root as training leaves it: a tiny vocoder run (`vocoder/checkpoint_0.pt`), a user schedule
    (`schedules/3iters_test.pt`) and a voice `<voice>/<voice>.pt` (tiny model, bundled Whisper encoder, its
    audio bound to the tiny vocoder) whose remembered settings pick them, with pitch method pm. Returns them."""
    config = load_config(TINY_CONFIG)
    vocoder = logs / "vocoder" / "checkpoint_0.pt"
    vocoder.parent.mkdir(parents=True)
    untrained_tiny_checkpoint(vocoder)
    schedule = catalog.user_schedules_dir(logs) / "3iters_test.pt"
    save_schedule(linear_betas(3, (1e-4, 0.05)), schedule)
    export_model(Converter(tiny_model_config(content_dim=384)), logs / voice / f"{voice}.pt",
                 config.data_config.audio_dict(), {"encoder": "whisper", "version": "tiny.en", "checkpoint": None,
                                                   "dim": 384}, {})
    settings = {**catalog.DEFAULT_SETTINGS, "f0_method": "pm", "vocoder": str(vocoder), "schedule": str(schedule)}
    catalog.save_settings(logs, voice, settings)
    return settings


def short_clip(path: Path, seconds: float = 1.0) -> Path:
    """The first `seconds` of a bundled male clip as a 16 kHz wav."""
    save_audio(path, load_audio(CLIP, 16000)[:int(seconds * 16000)], 16000)
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    make_logs(root)
    return root


def test_catalog_lists_voices_vocoders_and_schedules(logs: Path) -> None:
    (logs / "training" ).mkdir()
    (logs / "training" / "experiment.yaml").write_text("name: training\n")  # a voice still training: no model
    assert catalog.voices(logs) == ["tiny_voice", "training"]
    assert catalog.voice_model(logs, VOICE) == logs / VOICE / f"{VOICE}.pt"
    with pytest.raises(ConfigError, match="no trained model training.pt.*one-click --exp training"):
        catalog.voice_model(logs, "training")
    save_checkpoint({"model": {}}, logs / "vocoder" / "checkpoint_12.pt")
    assert ("vocoder/checkpoint_12.pt", str(logs / "vocoder" / "checkpoint_12.pt")) in catalog.vocoders(logs)
    assert catalog.vocoders(logs)[0] == ("small_16k (shipped)", "small_16k")
    schedules = dict((value, label) for label, value in catalog.schedules(logs, with_linear=True))
    assert schedules["6iters"] == "6iters (shipped, 6 iterations)" and list(schedules)[0] == "6iters"
    assert schedules[str(logs / "schedules" / "3iters_test.pt")] == "3iters_test (yours, 3 iterations)"
    assert catalog.LINEAR in schedules and len(catalog.schedule_betas(catalog.LINEAR, 4)) == 4


def test_settings_are_remembered_per_voice(logs: Path) -> None:
    saved = catalog.load_settings(logs, VOICE)
    assert saved["f0_method"] == "pm" and saved["schedule"].endswith("3iters_test.pt")
    assert catalog.load_settings(logs, "other") == catalog.DEFAULT_SETTINGS
    (logs / VOICE / catalog.SETTINGS_NAME).write_text("{not json")
    assert catalog.load_settings(logs, VOICE) == catalog.DEFAULT_SETTINGS


def test_conversion_matches_the_cli_and_remembers_settings(logs: Path, tmp_path: Path) -> None:
    """The page's conversion writes the same samples as `voiceconv convert` with the same flags."""
    from voiceconv.__main__ import main as cli

    settings = catalog.load_settings(logs, VOICE)
    clip = short_clip(tmp_path / "in.wav")
    settings.update(f0_up_key=3.0, index_rate=0.0, rms_mix_rate=0.5)
    result = convert_tab.convert(logs, str(clip), VOICE, **settings)
    assert result.wav.parent == logs / "ui_outputs" / VOICE and result.sample_rate == 16000
    written, rate = sf.read(result.wav, dtype="float32")
    assert rate == 16000 and len(written) == 16000 and np.isfinite(written).all()
    assert set(result.rtf) == {"pitch", "content", "model", "vocoder"} and all(v > 0 for v in result.rtf.values())
    assert result.picture.ndim == 3 and result.picture.shape[2] == 3 and result.picture.dtype == np.uint8
    assert json.loads((logs / VOICE / catalog.SETTINGS_NAME).read_text())["f0_up_key"] == 3.0
    out = tmp_path / "cli.wav"
    status = cli(["convert", "--model", str(logs / VOICE / f"{VOICE}.pt"), "--input", str(clip), "--output", str(out),
                  "--vocoder-checkpoint", settings["vocoder"], "--schedule", settings["schedule"], "--f0-method", "pm",
                  "--f0-up-key", "3", "--index-rate", "0", "--rms-mix-rate", "0.5", "--device", "cpu"])
    assert status == 0
    # the CLI sets torch's thread count, and another split of the sums moves samples by ~1e-7
    np.testing.assert_allclose(sf.read(out, dtype="float32")[0], written, rtol=0, atol=1e-5)
    assert "content" in convert_tab.rtf_table(result.rtf, result.seconds)


def test_bad_conversion_input_gives_one_line_errors(logs: Path, tmp_path: Path) -> None:
    settings = catalog.load_settings(logs, VOICE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    silent = tmp_path / "silent.wav"
    save_audio(silent, np.zeros(8000, np.float32), 16000)
    clip = short_clip(tmp_path / "in.wav", 0.5)
    (logs / "empty_voice").mkdir()
    foreign = tmp_path / "foreign.pt"  # a vocoder of another mel (f_max 7000 Hz)
    payload = torch.load(settings["vocoder"], weights_only=False)
    payload["config"]["data_config"]["f_max"] = 7000.0
    save_checkpoint(payload, foreign)
    cases = [(str(corrupt), VOICE, settings, AudioError, "corrupt.wav: unreadable or corrupt"),
             (str(silent), VOICE, settings, AudioError, "silent.wav: the clip is silent"),
             (None, VOICE, settings, AudioError, "no clip"),
             (str(clip), "empty_voice", settings, ConfigError, "no trained model empty_voice.pt"),
             (str(clip), VOICE, {**settings, "vocoder": str(foreign)}, CheckpointError, "f_max: 7000.0 vs 8000.0")]
    for path, voice, options, error, message in cases:
        with pytest.raises(error, match=message) as info:
            convert_tab.convert(logs, path, voice, **options)
        assert "\n" not in str(info.value)
    assert not (logs / "ui_outputs").exists()


def test_zero_shot_conversion_from_a_reference_folder(logs: Path, tmp_path: Path) -> None:
    """With a speaker-agnostic voice and a folder of the target's recordings (any rate), the Convert tab's
    function converts zero-shot, moving the pitch into the references' range and taking their spectral envelope;
    bad folders give one line."""
    settings = catalog.load_settings(logs, VOICE)
    config = load_config(TINY_CONFIG)
    export_model(Converter(tiny_model_config(content_dim=384, use_speaker=False)), logs / "agnostic" / "agnostic.pt",
                 config.data_config.audio_dict(), {"encoder": "whisper", "version": "tiny.en", "checkpoint": None,
                                                   "dim": 384}, {})
    refs = tmp_path / "refs"
    refs.mkdir()
    for path in sorted((VOICES / "fr_june").glob("*.flac"))[:6]:
        audio = load_audio(path, 22050).numpy()
        sf.write(refs / f"{path.stem}.wav", audio, 22050)
    clip = short_clip(tmp_path / "in.wav")
    result = convert_tab.convert(logs, str(clip), "agnostic", **settings, target_refs=str(refs))
    assert "matching" in result.rtf and "retrieval" not in result.rtf and len(result.audio) == 16000
    plain = convert_tab.convert(logs, str(clip), "agnostic", **settings, target_refs=str(refs), envelope_rate=0.0)
    assert not np.allclose(plain.audio, result.audio)  # the references' envelope (default 0.75) changed the voice
    with pytest.raises(WaveGradError, match="has speaker embeddings, but --target-refs needs") as info:
        convert_tab.convert(logs, str(clip), VOICE, **settings, target_refs=str(refs))
    (tmp_path / "few").mkdir()
    sf.write(tmp_path / "few" / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(WaveGradError, match=r"few: only 1.0 s of readable audio in the reference folder") as info:
        convert_tab.convert(logs, str(clip), "agnostic", **settings, target_refs=str(tmp_path / "few"))
    assert "\n" not in str(info.value)


def test_vocoder_tab_renders_a_clip_and_a_mel_file(logs: Path, tmp_path: Path) -> None:
    checkpoint = str(logs / "vocoder" / "checkpoint_0.pt")
    clip = short_clip(tmp_path / "clip.wav", 0.5)
    original, rendering = vocoder_tab.render(logs, clip, checkpoint, catalog.LINEAR, 2)
    assert original.audio is not None and len(original.audio) == rendering.audio.numel() == 8100
    assert original.mel.shape == rendering.mel.shape == (80, 27)
    assert rendering.iterations == 2 and rendering.rtf > 0 and 0 < rendering.mel_l1 < 20
    assert sf.info(rendering.wav).frames == 8100
    mel_file = tmp_path / "clip.npy"
    np.save(mel_file, original.mel.numpy())
    from_mel, again = vocoder_tab.render(logs, mel_file, checkpoint, str(logs / "schedules" / "3iters_test.pt"))
    assert from_mel.audio is None and again.iterations == 3 and again.audio.numel() == 27 * 300
    np.save(mel_file, np.zeros((40, 10), np.float32))
    with pytest.raises(AudioError, match=r"shape \(40, 10\), expected \[80, frames\]"):
        vocoder_tab.render(logs, mel_file, checkpoint, "6iters")
    with pytest.raises(ScheduleError, match="not found"):
        vocoder_tab.render(logs, clip, checkpoint, str(tmp_path / "missing.pt"))


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_jobs_queue_one_at_a_time_survive_their_app_and_cancel(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path)
    marker = tmp_path / "first_done"
    first = registry.submit("test", "first", python(f"import time; time.sleep(2); open({str(marker)!r}, 'w')"))
    second = registry.submit("test", "second", python("print('second ran')"))
    third = registry.submit("test", "third", python("import time; time.sleep(60)"))
    deadline = time.monotonic() + 20
    while registry.get(first.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert registry.get(second.id).status == "queued" and [j.id for j in registry.ahead(registry.get(second.id))] == [
        first.id]
    assert os.getsid(first.pid) != os.getsid(0)  # its own session: the app's Ctrl-C or exit does not reach it
    restarted = JobRegistry(tmp_path)  # what a restarted app sees
    assert [j.id for j in restarted.jobs()] == [third.id, second.id, first.id]
    assert restarted.wait(second.id, 30).status == "finished" and marker.is_file()
    assert "second ran" in Path(restarted.get(second.id).log).read_text()
    assert restarted.get(first.id).returncode == 0
    assert restarted.wait(third.id, 20).status == "running"
    registry.cancel(third.id)
    ended = registry.wait(third.id, 20)
    assert ended.status == "cancelled" and ended.finished is not None
    failed = registry.submit("test", "fails", python("raise SystemExit(3)"))
    assert registry.wait(failed.id, 30).status == "failed" and registry.get(failed.id).returncode == 3


def test_a_vanished_runner_shows_as_interrupted(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path)
    job = registry.submit("test", "killed", python("import time; time.sleep(60)"))
    assert registry.wait(job.id, 20).status == "running"
    os.killpg(job.pid, 9)  # no chance to record anything
    deadline = time.monotonic() + 10
    while registry.get(job.id).status != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert registry.get(job.id).status == "interrupted"


def test_one_click_command_parses_and_bad_requests_are_refused(tmp_path: Path) -> None:
    from voiceconv.oneclick import add_arguments

    logs, registry = tmp_path / "logs", JobRegistry(tmp_path / "logs")
    command = train_tab.one_click_command(logs, "me", tmp_path, 3, "tiny", "pm")
    assert command[:4] == [sys.executable, "-m", "voiceconv", "one-click"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(command[4:])
    assert (args.exp, args.input, args.total_epoch, args.preset, args.f0_method, args.logs_dir) == (
        "me", [tmp_path], 3, "tiny", "pm", logs)
    assert not (args.pitch_shifted or args.perturbed or args.perturbed_content or args.content_norm)
    switched = parser.parse_args(train_tab.one_click_command(logs, "me", tmp_path, 3, "tiny", "pm",
                                                             list(train_tab.SWITCHES))[4:])
    assert switched.pitch_shifted and switched.perturbed and switched.perturbed_content and switched.content_norm
    empty = tmp_path / "empty"
    empty.mkdir()
    for exp, folder, message in [("../x", str(VOICES / "en_allison"), "plain folder name"),
                                 ("me", str(empty), "no audio files here"), ("me", "", "no recordings"),
                                 ("me", str(tmp_path / "missing"), "input folder not found")]:
        with pytest.raises(ConfigError, match=message):
            train_tab.start_training(registry, logs, exp, folder, None, 1, "tiny", "pm")
    with pytest.raises(ConfigError, match="unknown training switch 'louder'"):
        train_tab.start_training(registry, logs, "me", str(VOICES / "en_allison"), None, 1, "tiny", "pm", ["louder"])
    assert registry.jobs() == []
    staged = train_tab.stage_uploads(logs, "me", [str(CLIP)])
    assert staged == logs / "ui_uploads" / "me" and (staged / CLIP.name).read_bytes() == CLIP.read_bytes()


def test_progress_is_read_from_one_clicks_log(tmp_path: Path) -> None:
    log = ("preprocess: 100%|##########| 4/4 [00:01<00:00]\n"
           "one-click:  33%|###3      | 1/3 [00:12<00:24, 12.0s/stage, train]\r"
           "train epoch 2/5:  30%|###       | 12/40 [00:03<00:07, 3.9step/s, mel_loss=0.8123]\r"
           "\x1b[Atrain epoch 3/5:  45%|####5     | 18/40 [00:04<00:05, 4.1step/s, mel_loss=0.7012]\r")
    path = tmp_path / "job.log"
    path.write_text(log)
    found = train_tab.progress(train_tab.read_tail(path))  # carriage returns and cursor moves as tqdm writes them
    assert found["stage"] == "train" and (found["stages_done"], found["stages"]) == (1, 3)
    assert (found["epoch"], found["epochs"], found["step"], found["steps"]) == (3, 5, 18, 40)
    assert found["loss"] == pytest.approx(0.7012) and found["last"].startswith("train epoch 3/5")
    assert train_tab.progress("epoch 5/5: mel loss 0.5000, saved G_40.pt")["loss"] == 0.5
    assert train_tab.progress("") == {}


def test_a_real_tiny_search_runs_as_a_job_and_its_best_schedule_is_saved(logs: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips.txt"
    clips.write_text(f"{CLIP}\n")
    registry = JobRegistry(logs)
    checkpoint = str(logs / "vocoder" / "checkpoint_0.pt")
    with pytest.raises(ScheduleError, match="n_iter must be >= 1"):
        search_tab.start_search(registry, logs, checkpoint, 0, 3, 2, str(clips))
    job = search_tab.start_search(registry, logs, checkpoint, 2, 3, 2, str(clips), 1, 0.1)
    with pytest.raises(WaveGradError, match="already"):
        search_tab.start_search(registry, logs, checkpoint, 2, 3, 2, str(clips), 1, 0.1)
    job = registry.wait(job.id, 120)
    assert job.status == "finished", Path(job.log).read_text()[-2000:]
    state = search_tab.search_state(job)
    assert 3 <= state.scored == state.new <= 5  # a grid of 3, then at most 2 refinements
    assert state.rate > 0 and state.best.shape == (2,)
    scores = [s for _, s in search_tab.read_stats(search_tab.stats_path(Path(job.meta["out"])))[1]]
    assert state.best_score == min(scores)
    assert search_tab.plot_progress(job, tmp_path / "progress.png").stat().st_size > 1000
    saved = search_tab.save_best(logs, job, "2iters_found")
    assert saved == logs / "schedules" / "2iters_found.pt"
    assert torch.allclose(torch.load(saved).double(), state.best, rtol=1e-6)
    assert (str(saved)) in [value for _, value in catalog.schedules(logs)]
    with pytest.raises(ScheduleError, match="plain file name"):
        search_tab.save_best(logs, job, "../escape")


def test_the_app_builds_with_every_tab(logs: Path) -> None:
    gr = pytest.importorskip("gradio")
    from webui.app import build_app, guarded

    app = build_app(logs)
    labels = {block.label for block in app.blocks.values() if type(block).__name__ == "Tab"}
    assert labels == {"Convert", "Train a voice", "Vocoder", "Schedule search"}
    handler = guarded(lambda name: (convert_tab.convert(logs, None, name).wav,), 1)
    kept, status = handler(VOICE)
    assert status == "**Error:** no clip: upload or record one first" and kept == gr.skip()  # output left as it was
    assert guarded(lambda: 1 / 0, 2)()[-1].startswith("**Error:** internal error (ZeroDivisionError")
    assert guarded(lambda: ("a", "b"), 2)() == ("a", "b", "")
