"""`voiceconv evaluate` at tiny size: the pairs it scores, the fields it promises, and its bad-input lines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from benchmark import known_contour_rows
from voiceconv.__main__ import main as cli
from voiceconv.checkpoint import export_model
from voiceconv.convert import ConvertOptions, VoiceConverter
from voiceconv.evaluate import F0_MEASURE, FRONTEND_RATE, Bench, split_voices
from voiceconv.model import Converter
from voiceconv.pitch import pitch_estimator
from wavegrad.audio import load_audio
from wavegrad.errors import WaveGradError
from wavegrad.schedule import linear_betas

from .tiny_model import untrained_tiny_checkpoint
from .vc_fixtures import VOICES, tiny_audio, tiny_model_config

HELD_OUT = {"en_allison": ["conf-getpin.flac"], "es_allison": ["vm-nobox.flac"], "it_carlo": ["conf-getpin.flac"],
            "fr_june": ["conf-getpin.flac", "vm-nomore.flac"]}  # fr_june's second clip: a reference
REFERENCES = {"en_allison": ["agent-pass.flac", "conf-locked.flac"], "es_allison": ["conf-locked.flac"],
              "it_carlo": ["agent-pass.flac", "vm-nobox.flac"]}
# en_allison and es_allison are one person: never paired; every other voice's source clip is
PAIRED_SOURCES = {"en_allison": {"it_carlo", "fr_june"}, "it_carlo": {"en_allison", "es_allison", "fr_june"}}
SYSTEM_TARGETS = {"no conversion": PAIRED_SOURCES, "target's own speech": PAIRED_SOURCES, "zero-shot": PAIRED_SOURCES,
                  "fine-tuned": ["it_carlo"]}
SUMMARY_FIELDS = {"system", "target", "seeds", "pairs", "cer_clips", "sim_target", "sim_source", "margin", "margin_raw",
                  "cer", "cer_ratio", "f0_corr_0", "f0_corr_12", "voiced_kept_0", "voiced_kept_12", "rtf", "margin_sd",
                  "cer_ratio_sd"}


def _filelist(path, clips: dict[str, list[str]]):
    path.write_text("".join(f"{VOICES / voice / name}\n" for voice, names in clips.items() for name in names))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny vocoder and 2-step schedule, a zero-shot and a voice model (whisper features), and filelists."""
    root = tmp_path_factory.mktemp("evaluate")
    untrained_tiny_checkpoint(root / "vocoder.pt")
    torch.save(linear_betas(2, (1e-4, 0.05)), root / "schedule.pt")
    torch.manual_seed(0)
    for name, speaker in (("zeroshot", False), ("voice", True)):
        export_model(Converter(tiny_model_config(use_speaker=speaker, content_dim=384)), root / f"{name}.pt",
                     tiny_audio().audio_dict(), {"encoder": "whisper", "version": None, "dim": 384}, {})
    base = torch.load(root / "voice.pt", weights_only=False) | {"voices": ["en_allison", "it_carlo"]}
    torch.save(base, root / "base.pt")  # a multi-voice base: speaker row 1 is it_carlo
    return root, _filelist(root / "held_out.txt", HELD_OUT), _filelist(root / "references.txt", REFERENCES)


def _argv(root, held_out, references, *systems: tuple[str, str, str]) -> list[str]:
    argv = ["evaluate", "--held-out", str(held_out), "--references", str(references), "--clips-per-voice", "1",
            "--reference-clips", "2", "--f0-method", "pm", "--vocoder-checkpoint", str(root / "vocoder.pt"),
            "--schedule", str(root / "schedule.pt"), "--out", str(root / "out")]
    for name, model, targets in systems:
        argv += ["--system", name, str(root / model), targets]
    return argv


def test_split_keeps_sources_and_references_apart(files) -> None:
    _, held_out, references = files
    voices = split_voices([held_out], references, clips_per_voice=1)
    assert [c.name for c in voices["fr_june"].sources] == ["conf-getpin.flac"]
    assert [c.name for c in voices["fr_june"].references] == ["vm-nomore.flac"]  # not in the reference list
    assert [c.name for c in voices["it_carlo"].references] == ["agent-pass.flac", "vm-nobox.flac"]
    assert voices["en_allison"].person == voices["es_allison"].person != voices["it_carlo"].person
    with pytest.raises(WaveGradError, match="en_allison: no reference clips; list some in the --references filelist"):
        split_voices([held_out], None, clips_per_voice=1)


def test_evaluate_writes_the_promised_fields(files, capsys) -> None:
    root, held_out, references = files
    assert cli(_argv(root, held_out, references, ("zero-shot", "zeroshot.pt", "en_allison,it_carlo"),
                     ("fine-tuned", "voice.pt", "it_carlo"))) == 0
    printed = capsys.readouterr().out
    table = json.loads((root / "out" / "evaluation.json").read_text())["rows"]
    assert (root / "out" / "evaluation.md").read_text() in printed
    pairs = json.loads((root / "out" / "pairs.json").read_text())["rows"]
    scored = {(row["system"], row["target"], row["source"]) for row in pairs}
    assert scored == {(system, target, source) for system, targets in SYSTEM_TARGETS.items() for target in targets
                      for source in PAIRED_SOURCES[target]}
    for row in table:
        assert set(row) == SUMMARY_FIELDS
    by_key = {(row["system"], row["target"]): row for row in table}
    zero_shot = by_key[("zero-shot", "all")]
    assert zero_shot["pairs"] == 5 and 0 < zero_shot["rtf"] < 100 and zero_shot["seeds"] == 1
    assert math.isnan(zero_shot["margin_sd"])  # no spread from one seed
    assert zero_shot["margin"] == pytest.approx(zero_shot["sim_target"] - zero_shot["sim_source"])
    assert -1 <= zero_shot["sim_target"] <= 1 and not math.isnan(zero_shot["f0_corr_0"])
    # CER only where the source has a transcript (en_allison), relative to its vocoded rendering
    cers = {(row["system"], row["source"]): row["cer"] for row in pairs if row["target"] == "it_carlo" and "cer" in row}
    assert not math.isnan(cers[("fine-tuned", "en_allison")]) and math.isnan(cers[("fine-tuned", "fr_june")])
    assert by_key[("no conversion", "it_carlo")]["cer_ratio"] == pytest.approx(1.0)
    # F0 through the vocoder alone: the vocoded sources, at 0 and moved +12 semitones by WORLD
    assert all({"f0_corr_0", "f0_corr_12", "voiced_kept_12"} <= set(row) for row in pairs
               if row["system"] == "no conversion")
    # the ceiling: it_carlo's own held-out clip, vocoded, against it_carlo and each voice paired with it
    ceiling = [row for row in pairs if row["system"] == "target's own speech" and row["target"] == "it_carlo"]
    assert {row["clip"] for row in ceiling} == {"conf-getpin"} and len(ceiling) == 3
    assert by_key[("target's own speech", "it_carlo")]["pairs"] == 3
    clips = sorted(p.name for p in (root / "out" / "audio" / "fine-tuned" / "it_carlo" / "seed0").glob("*.wav"))
    assert len(clips) == 3 * 3 and "en_allison_conf-getpin_+12.wav" in clips
    assert np.isfinite(by_key[("fine-tuned", "it_carlo")]["margin_raw"])


def test_cer_sources_are_scored_by_cer_alone(files, capsys) -> None:
    """--cer-sources: each transcribed clip converted into every target of another person, scored by CER only;
    a clip without a transcript, or --cer-clips under 1, is refused with one line."""
    root, held_out, references = files
    extra = _filelist(root / "cer.txt", {"en_allison": ["from-unknown-caller.flac", "priv-recordintro.flac",
                                                        "vm-msgforwarded.flac"]})
    argv = [*_argv(root, held_out, references, ("fine-tuned", "voice.pt", "it_carlo")), "--cer-sources", str(extra),
            "--cer-clips", "2"]
    assert cli(argv) == 0
    pairs = json.loads((root / "out" / "pairs.json").read_text())["rows"]
    scored = [row for row in pairs if row["clip"] in ("from-unknown-caller", "vm-msgforwarded")]  # 2 spread of 3
    assert {(row["system"], row["target"]) for row in scored} == {("fine-tuned", "it_carlo"),
                                                                   ("no conversion", "it_carlo")} and len(scored) == 4
    assert all(0 <= row["cer"] and "sim_target" not in row for row in scored)
    by_key = {(row["system"], row["target"]): row for row in json.loads((root / "out" / "evaluation.json")
                                                                        .read_text())["rows"]}
    assert by_key[("fine-tuned", "it_carlo")]["pairs"] == 3  # the similarity pairs, as without --cer-sources
    assert by_key[("fine-tuned", "it_carlo")]["cer_clips"] == 3  # en_allison's source of the pairs, and the two
    untranscribed = _filelist(root / "bad.txt", {"en_allison": ["agent-pass.flac"]})
    capsys.readouterr()
    assert cli([*argv[:-3], str(untranscribed)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "agent-pass.flac: no transcript; list it in the --transcripts csv" in err
    assert cli([*argv[:-1], "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cer-clips 0: give at least 1" in err


def test_world_shifted_source_keeps_the_contour_an_octave_up() -> None:
    """With a vocoder that renders perfectly, the WORLD-moved source keeps the source's contour and voicing at +12,
    and a contour turned upside down scores a negative correlation."""
    bench = Bench.__new__(Bench)
    bench.rate, bench.render, bench.measure_pitch = FRONTEND_RATE, lambda audio: audio, pitch_estimator(F0_MEASURE)
    audio = load_audio(VOICES / "it_carlo" / "conf-getpin.flac", FRONTEND_RATE).numpy()
    f0 = pitch_estimator("harvest")(audio)
    scores = bench.f0_scores({0: audio, 12: bench.vocoded_shift(audio, f0, audio, 12)}, audio)
    assert list(scores) == ["f0_corr_0", "voiced_kept_0", "f0_corr_12", "voiced_kept_12"]
    assert scores["f0_corr_0"] > 0.99 and scores["f0_corr_12"] > 0.8 and scores["voiced_kept_12"] > 0.8
    voiced = f0 > 0
    flipped = f0.copy()
    flipped[voiced] = np.exp(2 * np.log(f0[voiced]).mean() - np.log(f0[voiced]))  # mirrored log-contour
    assert bench.f0_scores({0: audio, 12: bench.vocoded_shift(audio, flipped, audio, 12)}, audio)["f0_corr_12"] < 0


def test_the_f0_measure_recovers_a_known_contour() -> None:
    """The evaluation's tracker on speech of known f0 (`known_contour_rows`: WORLD resynthesis at the clip's
    harvest contour) keeps the contour over the frames it calls voiced; harvest, voicing nearly all, errs by
    octaves in the faintest even on the contour it found itself."""
    trackers = {method: pitch_estimator(method) for method in ("harvest", F0_MEASURE)}
    rows = known_contour_rows(VOICES / "en_allison" / "dictate__truncating_audio.flac", trackers, [0])
    measured = {row["tracker"]: row["f0_corr"] for row in rows}
    assert measured[F0_MEASURE] > 0.97 and measured["harvest"] < measured[F0_MEASURE] - 0.05


def _conversion_options(monkeypatch) -> list[ConvertOptions]:
    """The options of every conversion from now on, in order."""
    seen, convert = [], VoiceConverter.convert

    def spy(self, audio, options):
        seen.append(options)
        return convert(self, audio, options)

    monkeypatch.setattr(VoiceConverter, "convert", spy)
    return seen


def test_each_seed_renders_every_conversion_and_the_table_pools_them(files, monkeypatch) -> None:
    """--seeds 3 5: every conversion rendered from each seed (its clips under seed<N>/, with --index-rate and
    --match-k) and each vocoded source scored by CER from each; the table's means pool the seeds, their spread is
    the seeds' standard deviation and evaluation_by_seed gives each seed's."""
    root, held_out, references = files
    seen = _conversion_options(monkeypatch)
    assert cli([*_argv(root, held_out, references, ("fine-tuned", "voice.pt", "it_carlo")), "--seeds", "3", "5",
                "--index-rate", "0.3", "--match-k", "16"]) == 0
    assert [o.seed for o in seen] == [3] * 9 + [5] * 9  # 3 sources x (auto, 0, +12) per seed
    assert {(o.index_rate, o.match_k) for o in seen} == {(0.3, 16)}
    out = root / "out"
    assert all(len(list((out / "audio" / "fine-tuned" / "it_carlo" / f"seed{s}").glob("*.wav"))) == 9 for s in (3, 5))
    table = {(row["system"], row["target"]): row for row in json.loads((out / "evaluation.json").read_text())["rows"]}
    by_seed = {(row["system"], row["target"], row["seed"]): row
               for row in json.loads((out / "evaluation_by_seed.json").read_text())["rows"]}
    tuned = table[("fine-tuned", "all")]
    assert tuned["seeds"] == 2 and tuned["pairs"] == 3 and tuned["cer_clips"] == 1  # clips, not clips x seeds
    margins = [by_seed[("fine-tuned", "all", s)]["margin"] for s in (3, 5)]
    assert margins[0] != margins[1]  # the vocoder's noise differs between seeds
    assert tuned["margin"] == pytest.approx(np.mean(margins))
    assert tuned["margin_sd"] == pytest.approx(np.std(margins, ddof=1))
    pairs = json.loads((out / "pairs.json").read_text())["rows"]
    vocoded = {row["seed"]: row["cer"] for row in pairs if row["system"] == "no conversion" and row["target"] ==
               "it_carlo" and row["source"] == "en_allison"}
    assert set(vocoded) == {3, 5}  # the vocoded source's CER from each seed
    ceiling = table[("target's own speech", "it_carlo")]
    assert ceiling["pairs"] == 3 and ceiling["margin_sd"] == pytest.approx(0)  # seed 0's rendering in every seed


def test_a_base_converts_into_each_voice_by_its_speaker_row(files, monkeypatch) -> None:
    root, held_out, references = files
    seen = _conversion_options(monkeypatch)
    assert cli(_argv(root, held_out, references, ("base", "base.pt", "it_carlo,en_allison"))) == 0
    speakers = [o.speaker_id for o in seen]
    assert set(speakers) == {0, 1} and speakers == sorted(speakers, reverse=True)  # it_carlo's row 1, then row 0


@pytest.mark.parametrize(("system", "expected"), [
    (("fine-tuned", "voice.pt", "it_carlo,fr_june"), "voice.pt: a voice model converts into its own voice only"),
    (("base", "base.pt", "it_carlo,fr_june"), "base.pt: knows the voices en_allison, it_carlo, not fr_june"),
    (("zero-shot", "zeroshot.pt", "ru_voice"), "unknown target voice ru_voice; the held-out lists have en_allison"),
    (("zero-shot", "missing.pt", "it_carlo"), "missing.pt: checkpoint not found; pass an exported model"),
])
def test_bad_systems_give_one_line_and_status_2(files, capsys, system, expected) -> None:
    root, held_out, references = files
    assert cli(_argv(root, held_out, references, system)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
