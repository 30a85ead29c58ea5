"""`voiceconv evaluate`: conversion measured on held-out pairs of voices.

A system is a conversion model and the voices it converts into (`--system NAME MODEL TARGETS`): a voice
model (fine-tuned from the base or trained from scratch) converts into its own voice; the multi-voice base
(`G_base`) into each of its voices, by that voice's speaker row; a zero-shot model (`voiceconv train
--zero-shot`) into any voice, given by that voice's reference clips.

For each target, every held-out source clip of every other person is converted three times: with the pitch
moved into the target's range (the ratio of median f0s) for speaker similarity and the character error rate,
and at 0 and +12 semitones for the F0 correlation and the share of the source's voiced frames kept voiced
(tracked by fcpe, `--f0-measure`). Similarities are cosines of resemblyzer d-vectors to the centroid of each
voice's reference clips, raw and rendered by the same vocoder and schedule ("vocoded"), so that vocoder noise
cancels out of the margin (similarity to the target minus to the source). The rows "no conversion" score the
vocoded source clips themselves, and the rows "target's own speech" the target's held-out clips, vocoded,
against the target and each paired source voice: the margin that a perfect conversion would reach through this
vocoder. The F0 correlations of "no conversion" score the vocoded source, moved first by WORLD for +12
semitones: how well this vocoder keeps a contour.

The vocoder samples noise, and its seed alone moves the CER ratio of the same models by ~0.6. With `--seeds`, every
conversion is rendered once per seed, and so are the vocoded sources scored by CER (the references and the
similarities and F0 of "no conversion" keep seed 0). The table gives means over all seeds and the spread
(standard deviation) of each seed's margin and CER ratio; <out>/evaluation_by_seed.md|json gives each seed's.

With `--cer-sources`, more held-out clips with transcripts are converted into every target of another person
at the automatic transposition and scored by CER alone, so that intelligibility rests on more than the few
transcribed sources of the pairs. `data/get_full_voices.sh` writes two lists of English prompts: cer_en.txt, 12 of
1.5-5 s that no conversion model has heard, and cer_en_long.txt, 16 of 5-30 s with 4.5 times the words, that no
model has heard (the vocoder included).

Voices are folders named `<language>_<name>`: folders that share the name are one person (en_allison and
es_allison) and are never paired. Writes <out>/evaluation.md|json (means per system and target),
<out>/pairs.md|json (every conversion) and the converted clips under <out>/audio/<system>/<target>/seed<N>/.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wavegrad.errors import ConfigError, WaveGradError

from . import measures
from .config import CHECKOUT, DEFAULT_SCHEDULE, DEFAULT_VOCODER
from .convert import ConvertOptions, VoiceConverter
from .index import index_beside, load_index
from .knn import content_rate_mels, pool_of_files, semitones_between
from .rates import FRONTEND_RATE

SHIFTS = (0, 12)  # semitones of the conversions scored by F0 correlation
F0_COLUMNS = [f"{measure}_{shift}" for measure in ("f0_corr", "voiced_kept") for shift in SHIFTS]
F0_MEASURE = "fcpe"  # the tracker of the F0 correlations: 2.3% gross errors on speech of known f0, harvest 5.3%
NO_CONVERSION = "no conversion"
TARGET_SPEECH = "target's own speech"
HELD_OUT_LISTS = [CHECKOUT / "filelists" / "test.txt", CHECKOUT / "filelists" / "heldout_ru.txt"]
REFERENCE_LIST = CHECKOUT / "filelists" / "train.txt"
TRANSCRIPTS = CHECKOUT / "data" / "voices" / "transcripts.csv"


def person(voice: str) -> str:
    """The person of a voice folder `<language>_<name>`: its name."""
    return voice.split("_", 1)[-1]


@dataclasses.dataclass
class Voice:
    """A voice's held-out source clips and its reference clips (disjoint)."""

    name: str
    sources: list[Path]
    references: list[Path]

    @property
    def person(self) -> str:
        return person(self.name)


@dataclasses.dataclass
class System:
    """A row group of the table: `name`, the model file and the voices it converts into."""

    name: str
    model: Path
    targets: list[str]


def _by_voice(clips: Iterable[Path]) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = {}
    for clip in clips:
        grouped.setdefault(clip.parent.name, []).append(clip)
    return grouped


def split_voices(held_out: list[Path], references: Path | None, clips_per_voice: int) -> dict[str, Voice]:
    """Voices by folder name: the first `clips_per_voice` clips of each in the `held_out` filelists are its
    sources; its references are its clips in the `references` filelist, else its other held-out clips."""
    from wavegrad.filelist import read_filelist

    pools = _by_voice(read_filelist(references)) if references else {}
    listed = _by_voice(clip for listing in held_out for clip in read_filelist(listing))
    voices = {name: Voice(name, clips[:clips_per_voice], pools.get(name) or clips[clips_per_voice:])
              for name, clips in listed.items()}
    for voice in voices.values():
        if not voice.references:
            raise WaveGradError(f"{voice.name}: no reference clips; list some in the --references filelist or give "
                                f"it more held-out clips than --clips-per-voice {clips_per_voice}")
    return voices


def read_transcripts(path: Path | None) -> dict[str, str]:
    """`voice/clip.ext` -> text, from a csv with columns file,text (no file: no CER)."""
    if path is None or not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["file"]: row["text"] for row in csv.DictReader(f)}


def transcript_key(path: Path) -> str:
    """A clip's row in the transcripts: `<voice folder>/<file name>`."""
    return f"{path.parent.name}/{path.name}"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@dataclasses.dataclass
class CerClip:
    """A held-out clip scored by CER alone: 16 kHz audio, its f0 [frames], transcript and vocoded CER."""

    path: Path
    voice: str
    audio16k: np.ndarray
    f0: np.ndarray
    text: str
    vocoded_cer: dict[int, float]  # CER of the clip vocoded from each seed of the bench


@dataclasses.dataclass
class SourceClip:
    """One held-out clip: 16 kHz audio for the converter, audio at the vocoder rate, its vocoded rendering.
    f0_scores: `Bench.f0_scores` of the vocoded source per shift in SHIFTS (moved by WORLD for a shift)."""

    path: Path
    voice: Voice
    audio16k: np.ndarray
    audio: np.ndarray
    vocoded: np.ndarray
    f0: np.ndarray
    text: str | None  # the transcript, when there is one
    vocoded_cer: dict[int, float]  # CER of the clip vocoded from each seed of the bench (NaN without a transcript)
    f0_scores: dict[str, float]


class Bench:
    """What every system shares: the vocoder and schedule, the pitch estimator, each voice's centroids and
    median f0, and each source clip with its vocoded rendering (all computed once, when first needed); `seeds`:
    the seeds of the vocoder's sampling noise that the conversions and the vocoded sources' CER are rendered from."""

    def __init__(self, voices: dict[str, Voice], vocoder: str | Path, schedule: str | Path, f0_method: str,
                 transcripts: dict[str, str], reference_clips: int, cer_sources: Iterable[Path] = (),
                 f0_measure: str = F0_MEASURE, seeds: Sequence[int] = (0,)):
        from wavegrad.checkpoint import load_model
        from wavegrad.schedule import load_schedule

        from .pitch import pitch_estimator

        self.voices, self.transcripts, self.reference_clips = voices, transcripts, reference_clips
        self.seeds = list(dict.fromkeys(seeds))
        self.cer_sources = list(cer_sources)
        for path in self.cer_sources:
            if transcript_key(path) not in transcripts:
                raise WaveGradError(f"{path}: no transcript; list it in the --transcripts csv or leave it out of "
                                    "--cer-sources")
        self.vocoder_spec, self.schedule_spec, self.f0_method = vocoder, schedule, f0_method
        self.vocoder, self.betas = load_model(vocoder, device="cpu"), load_schedule(schedule)
        self.rate = self.vocoder.config.data_config.sample_rate
        self.pitch, self.f0_measure = pitch_estimator(f0_method), f0_measure
        try:
            self.measure_pitch = pitch_estimator(f0_measure)
        except ConfigError as exc:
            raise ConfigError(f"--f0-measure {f0_measure}: {exc}") from exc
        self._centroids: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._medians: dict[str, float] = {}
        self._clips: dict[Path, SourceClip] = {}
        self._cer_clips: dict[Path, CerClip] = {}

    def render(self, audio: np.ndarray, seed: int = 0) -> np.ndarray:
        """The rendering [samples] of the mel of `audio` [samples] from noise of `seed`, both at the vocoder rate."""
        from wavegrad.audio import mel_spectrogram
        from wavegrad.inference import synthesize

        mel = mel_spectrogram(torch.from_numpy(audio.astype(np.float32)), self.vocoder.config.data_config)
        return synthesize(self.vocoder, mel, self.betas, generator=torch.Generator().manual_seed(seed)).numpy()

    def vocode(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(audio, its rendering from the mel with seed 0), both [samples] at the vocoder rate."""
        from wavegrad.audio import load_audio, pad_to_hop

        audio = pad_to_hop(load_audio(path, self.rate), self.vocoder.config.data_config.hop_length).numpy()
        return audio, self.render(audio)

    def vocoded_cers(self, audio: np.ndarray, vocoded: np.ndarray, text: str | None) -> dict[int, float]:
        """Seed -> CER of `audio` rendered from that seed (`vocoded`: its seed-0 rendering), per seed of the bench."""
        if text is None:
            return dict.fromkeys(self.seeds, math.nan)
        return {seed: self.cer(self.render(audio, seed) if seed else vocoded, text) for seed in self.seeds}

    def vocoded_shift(self, audio16k: np.ndarray, f0: np.ndarray, audio: np.ndarray, semitones: int) -> np.ndarray:
        """The source (16 kHz `audio16k` with its `f0`) moved `semitones` by WORLD, then vocoded: [samples] at the
        vocoder rate, as long as `audio`."""
        from wavegrad.audio import resample

        from .perturb import pitch_shifted

        moved = resample(pitch_shifted(audio16k, f0, (semitones,), FRONTEND_RATE)[0], FRONTEND_RATE, self.rate)
        return self.render(moved[:len(audio)])

    def f0_scores(self, converted: dict[int, np.ndarray], source: np.ndarray) -> dict[str, float]:
        """The F0_COLUMNS of the clips converted at each shift in SHIFTS (`converted[shift]`) against their source,
        all [samples] at the vocoder rate: per shift, `measures.pitch_agreement` tracked by `f0_measure`."""
        scores = {}
        for shift in SHIFTS:
            scores[f"f0_corr_{shift}"], scores[f"voiced_kept_{shift}"] = measures.pitch_agreement(
                converted[shift], source, self.rate, self.measure_pitch)
        return scores

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return measures.speaker_embedding(audio, self.rate)

    def centroids(self, voice: str) -> tuple[np.ndarray, np.ndarray]:
        """(raw, vocoded) mean d-vectors of the voice's first `reference_clips` reference clips."""
        if voice not in self._centroids:
            pairs = [self.vocode(p) for p in self.voices[voice].references[:self.reference_clips]]
            self._centroids[voice] = (np.mean([self.embed(a) for a, _ in pairs], axis=0),
                                      np.mean([self.embed(v) for _, v in pairs], axis=0))
        return self._centroids[voice]

    def median_f0(self, voice: str) -> float:
        """Median voiced f0 (Hz) of the voice's first `reference_clips` reference clips."""
        from wavegrad.audio import load_audio

        if voice not in self._medians:
            f0 = np.concatenate([self.pitch(load_audio(p, FRONTEND_RATE).numpy())
                                 for p in self.voices[voice].references[:self.reference_clips]])
            self._medians[voice] = float(np.median(f0[f0 > 0])) if (f0 > 0).any() else math.nan
        return self._medians[voice]

    def clip(self, path: Path, voice: Voice) -> SourceClip:
        from wavegrad.audio import load_audio

        if path not in self._clips:
            audio16k = load_audio(path, FRONTEND_RATE).numpy()
            audio, vocoded = self.vocode(path)
            text, f0 = self.transcripts.get(transcript_key(path)), self.pitch(audio16k)
            f0_scores = self.f0_scores({s: self.vocoded_shift(audio16k, f0, audio, s) if s else vocoded
                                        for s in SHIFTS}, audio)
            self._clips[path] = SourceClip(path, voice, audio16k, audio, vocoded, f0, text,
                                           self.vocoded_cers(audio, vocoded, text), f0_scores)
        return self._clips[path]

    def cer_clip(self, path: Path) -> CerClip:
        from wavegrad.audio import load_audio

        if path not in self._cer_clips:
            text = self.transcripts[transcript_key(path)]
            audio16k = load_audio(path, FRONTEND_RATE).numpy()
            audio, vocoded = self.vocode(path)
            self._cer_clips[path] = CerClip(path, path.parent.name, audio16k, self.pitch(audio16k), text,
                                            self.vocoded_cers(audio, vocoded, text))
        return self._cer_clips[path]

    def cer_clips(self, target: str) -> list[CerClip]:
        """The --cer-sources clips of another person than `target`'s."""
        return [self.cer_clip(path) for path in self.cer_sources if person(path.parent.name) != person(target)]

    def cer(self, audio: np.ndarray, text: str | None) -> float:
        """Character error rate of the recogniser on `audio` (vocoder rate) against `text`; NaN without text."""
        return math.nan if text is None else measures.character_error_rate(measures.transcribe(audio, self.rate),
                                                                            text)

    def pairs(self, target: str) -> list[SourceClip]:
        """The source clips of every voice of another person than `target`'s."""
        person = self.voices[target].person
        return [self.clip(path, voice) for voice in self.voices.values() if voice.person != person
                for path in voice.sources]

    def similarities(self, audio: np.ndarray, target: str, source: str) -> dict[str, float]:
        embedding = self.embed(audio)
        (target_raw, target_vocoded), (source_raw, source_vocoded) = self.centroids(target), self.centroids(source)
        return {"sim_target": cosine(embedding, target_vocoded), "sim_source": cosine(embedding, source_vocoded),
                "sim_target_raw": cosine(embedding, target_raw), "sim_source_raw": cosine(embedding, source_raw)}


def baseline_rows(bench: Bench, target: str) -> list[dict]:
    """The vocoded source clips scored as if they were conversions into `target` (at +12 semitones: moved by
    WORLD, then vocoded), a row per seed: its CER is the clip's vocoded from that seed."""
    return [{"system": NO_CONVERSION, "target": target, "source": clip.voice.name, "clip": clip.path.stem,
             "seed": seed, **bench.similarities(clip.vocoded, target, clip.voice.name),
             "cer": clip.vocoded_cer[seed], "cer_vocoded_source": clip.vocoded_cer[seed], **clip.f0_scores}
            for seed in bench.seeds for clip in bench.pairs(target)] + [
        {"system": NO_CONVERSION, "target": target, "source": clip.voice, "clip": clip.path.stem, "seed": seed,
         "cer": clip.vocoded_cer[seed], "cer_vocoded_source": clip.vocoded_cer[seed]}
        for seed in bench.seeds for clip in bench.cer_clips(target)]


def ceiling_rows(bench: Bench, target: str) -> list[dict]:
    """The target's own held-out clips, vocoded (seed 0), scored against the target and each voice paired with it;
    rows without a seed, which belong to every seed."""
    voice = bench.voices[target]
    own = [bench.clip(path, voice) for path in voice.sources]
    return [{"system": TARGET_SPEECH, "target": target, "source": source, "clip": clip.path.stem,
             **bench.similarities(clip.vocoded, target, source)}
            for source in dict.fromkeys(c.voice.name for c in bench.pairs(target)) for clip in own]


def load_system(system: System, bench: Bench, index: bool = True) -> VoiceConverter:
    """The converter of `system` with the bench's vocoder and schedule, and the added_*.index beside a voice
    model unless `index` is False; refuses a voice model given several targets."""
    from wavegrad.assets import resolve_asset

    from .convert import load_voice_converter

    model = resolve_asset(system.model, "converter")
    converter = load_voice_converter(model, bench.vocoder_spec, bench.schedule_spec, bench.f0_method, device="cpu")
    if converter.voices:  # a multi-voice base
        unknown = [target for target in system.targets if target not in converter.voices]
        if unknown:
            raise WaveGradError(f"{system.model}: knows the voices {', '.join(converter.voices)}, not "
                                f"{', '.join(unknown)}; give system {system.name!r} targets among them")
    elif converter.model.config.use_speaker and len(system.targets) != 1:
        raise WaveGradError(f"{system.model}: a voice model converts into its own voice only; give one target for "
                            f"system {system.name!r}, or use a model trained with --zero-shot")
    elif converter.model.config.use_speaker and index:  # a voice model; a zero-shot one matches frames instead
        found = index_beside(model)
        if found is not None:
            converter.index = load_index(found, converter.encoder)
    return converter


def system_rows(bench: Bench, system: System, converter: VoiceConverter, out: Path,
                options: ConvertOptions | None = None) -> list[dict]:
    """Every conversion of `system` scored once per seed of the bench, with `options` but the transposition and
    the seed (a voice model's index, when loaded, at its index rate; default ConvertOptions()); "rtf" is the
    conversions' compute seconds per source second."""
    from wavegrad.audio import save_audio

    options = options or ConvertOptions()
    zero_shot = not converter.model.config.use_speaker

    def convert_and_save(audio16k: np.ndarray, f0: np.ndarray, target: str, name: str, seed: int,
                         shifts: Iterable[int]) -> tuple[float, dict[str, np.ndarray]]:
        """The automatic transposition into `target` and the clip converted with it ("auto") and at each of `shifts`
        ("+12") from noise of `seed`, each saved as audio/<system>/<target>/seed<seed>/<name>_<key>.wav."""
        shift, outputs = semitones_between(f0, bench.median_f0(target)), {}
        for key, semitones in (("auto", shift), *((f"{s:+d}", s) for s in shifts)):
            outputs[key], _ = converter.convert(audio16k, dataclasses.replace(options, f0_up_key=semitones, seed=seed))
            save_audio(out / "audio" / system.name / target / f"seed{seed}" / f"{name}_{key}.wav", outputs[key],
                       bench.rate)
        return shift, outputs

    rows = []
    for target in system.targets:
        if converter.voices:  # a multi-voice base: the target's own speaker row
            options = dataclasses.replace(options, speaker_id=converter.voices.index(target))
        if zero_shot:
            converter.references = pool_of_files(bench.voices[target].references, converter.encoder, None,
                                                 content_rate_mels(converter.vocoder.config.data_config))
        for seed in bench.seeds:
            seeded = f", seed {seed}" if len(bench.seeds) > 1 else ""
            for clip in tqdm(bench.pairs(target), desc=f"{system.name} -> {target}{seeded}", unit="clip"):
                spent = sum(converter.timings.values())
                name = f"{clip.voice.name}_{clip.path.stem}"
                shift, outputs = convert_and_save(clip.audio16k, clip.f0, target, name, seed, SHIFTS)
                spent = sum(converter.timings.values()) - spent
                rows.append({"system": system.name, "target": target, "source": clip.voice.name,
                             "clip": clip.path.stem, "seed": seed, "shift": shift,
                             **bench.similarities(outputs["auto"], target, clip.voice.name),
                             "cer": bench.cer(outputs["auto"], clip.text), "cer_vocoded_source": clip.vocoded_cer[seed],
                             **bench.f0_scores({s: outputs[f"{s:+d}"] for s in SHIFTS}, clip.audio),
                             "rtf": spent / (len(outputs) * len(clip.audio16k) / FRONTEND_RATE)})
            for clip in tqdm(bench.cer_clips(target), desc=f"{system.name} -> {target}, CER{seeded}", unit="clip"):
                shift, outputs = convert_and_save(clip.audio16k, clip.f0, target, f"{clip.voice}_{clip.path.stem}",
                                                  seed, ())
                rows.append({"system": system.name, "target": target, "source": clip.voice, "clip": clip.path.stem,
                             "seed": seed, "shift": shift, "cer": bench.cer(outputs["auto"], clip.text),
                             "cer_vocoded_source": clip.vocoded_cer[seed]})
    return rows


def _mean(rows: list[dict], key: str) -> float:
    values = [row[key] for row in rows if key in row and not math.isnan(row[key])]
    return float(np.mean(values)) if values else math.nan


def _distinct(rows: list[dict], has: Callable[[dict], bool]) -> int:
    """How many (target, source, clip) of `rows` satisfy `has(row)`, whatever their seeds."""
    return len({(row["target"], row["source"], row["clip"]) for row in rows if has(row)})


def _summary(rows: list[dict]) -> dict:
    """The means of one group of rows (every seed's rows pooled)."""
    cer, cer_vocoded = _mean(rows, "cer"), _mean(rows, "cer_vocoded_source")
    return {
        "pairs": _distinct(rows, lambda row: "sim_target" in row),
        "cer_clips": _distinct(rows, lambda row: not math.isnan(row.get("cer", math.nan))),
        "sim_target": _mean(rows, "sim_target"), "sim_source": _mean(rows, "sim_source"),
        "margin": _mean(rows, "sim_target") - _mean(rows, "sim_source"),
        "margin_raw": _mean(rows, "sim_target_raw") - _mean(rows, "sim_source_raw"),
        "cer": cer, "cer_ratio": cer / cer_vocoded if cer_vocoded > 0 else math.nan,
        **{column: _mean(rows, column) for column in F0_COLUMNS},
        "rtf": _mean(rows, "rtf"),
    }


def _spread(values: list[float]) -> float:
    """Standard deviation (ddof 1) of the per-seed `values`; NaN from fewer than two."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def summarise(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the table of the README: means per system and target, then per system over all its pairs, every seed
    pooled, with the spread of the seeds' margins and CER ratios; the same means per seed). Rows without a seed
    (the target's own speech) belong to every seed."""
    table, by_seed = [], []
    seeds = list(dict.fromkeys(row["seed"] for row in rows if "seed" in row))
    for system in dict.fromkeys(row["system"] for row in rows):
        mine = [row for row in rows if row["system"] == system]
        for target in [*dict.fromkeys(row["target"] for row in mine), "all"]:
            group = [row for row in mine if target in ("all", row["target"])]
            per_seed = [{"system": system, "target": target, "seed": seed,
                         **_summary([row for row in group if row.get("seed", seed) == seed])} for seed in seeds]
            by_seed += per_seed
            table.append({"system": system, "target": target, **_summary(group), "seeds": len(seeds),
                          **{f"{key}_sd": _spread([row[key] for row in per_seed]) for key in ("margin", "cer_ratio")}})
    return table, by_seed


def evaluate(systems: list[System], bench: Bench, out: Path, index: bool = True,
             options: ConvertOptions | None = None) -> list[dict]:
    """Score every system, the unconverted baseline and the ceiling; write the tables, return the summary rows."""
    from wavegrad.metrics import write_report

    unknown = sorted({t for s in systems for t in s.targets} - set(bench.voices))
    if unknown:
        raise WaveGradError(f"unknown target voice {', '.join(unknown)}; the held-out lists have "
                            f"{', '.join(bench.voices)}")
    retrieval = index and (options or ConvertOptions()).index_rate > 0  # at rate 0 an index would go unused
    converters = [load_system(system, bench, retrieval) for system in systems]
    rows = []
    for target in dict.fromkeys(t for s in systems for t in s.targets):
        rows += baseline_rows(bench, target) + ceiling_rows(bench, target)
    for system, converter in zip(systems, converters, strict=True):
        rows += system_rows(bench, system, converter, out, options)
    title = (f"Conversion on held-out pairs (vocoder {bench.vocoder_spec}, schedule {bench.schedule_spec}; "
             f"similarities against vocoded references; F0 tracked by {bench.f0_measure})")
    table, by_seed = summarise(rows)
    write_report(table, out / "evaluation", title)
    write_report(by_seed, out / "evaluation_by_seed", title + ": each seed of the vocoder's noise")
    write_report(rows, out / "pairs", title + ": every conversion")
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wavegrad.paths import logs_root

    from .pitch import METHODS, add_method_argument

    parser.add_argument("--system", nargs=3, action="append", required=True, metavar=("NAME", "MODEL", "TARGETS"),
                        help="a row group: its name, a conversion model (file or shipped name) and the target "
                             "voices, comma-separated (one for a voice model, the base's own voices for G_base); "
                             "repeatable")
    parser.add_argument("--held-out", type=Path, nargs="+", default=HELD_OUT_LISTS, metavar="FILELIST",
                        help="filelists of clips in no training list, <voice>/<clip> (default: the bundled "
                             "filelists/test.txt and heldout_ru.txt)")
    parser.add_argument("--references", type=Path, default=REFERENCE_LIST, metavar="FILELIST",
                        help="each voice's reference clips, for its centroids, median f0 and zero-shot pool; a "
                             "voice not listed uses its held-out clips beyond the sources (default: the bundled "
                             "filelists/train.txt)")
    parser.add_argument("--transcripts", type=Path, default=TRANSCRIPTS,
                        help="csv file,text of the source clips scored by CER (default: the bundled English ones)")
    parser.add_argument("--clips-per-voice", type=int, default=2, help="source clips per voice")
    parser.add_argument("--cer-sources", type=Path, metavar="FILELIST",
                        help="more held-out clips with transcripts, <voice>/<clip>, converted into each target at the "
                             "automatic transposition and scored by CER alone (e.g. data/voices_full/cer_en_long.txt, "
                             "which no training list names, or cer_en.txt, which base_train.txt leaves out, with "
                             "--transcripts data/voices_full/transcripts.csv, from data/get_full_voices.sh)")
    parser.add_argument("--cer-clips", type=int,
                        help="how many of the --cer-sources clips, evenly spread over the list (default: all)")
    parser.add_argument("--reference-clips", type=int, default=8,
                        help="reference clips per voice for the centroids and the median f0")
    parser.add_argument("--vocoder-checkpoint", type=Path, default=Path(DEFAULT_VOCODER),
                        help="WaveGrad checkpoint or shipped name (default: %(default)s)")
    parser.add_argument("--schedule", type=Path, default=Path(DEFAULT_SCHEDULE),
                        help="noise schedule file or shipped name (default: %(default)s)")
    parser.add_argument("--no-index", action="store_true",
                        help="leave out the retrieval index of a voice model's experiment folder (used by default, "
                             "at --index-rate, as `voiceconv convert` does)")
    parser.add_argument("--index-rate", type=float, default=ConvertOptions.index_rate,
                        help="share of retrieved features, zero-shot of the matched reference frames (default: "
                             "%(default)s, as `voiceconv convert`)")
    parser.add_argument("--envelope-rate", type=float, default=ConvertOptions.envelope_rate,
                        help="zero-shot systems: share of the spectral envelope taken from the matched reference "
                             "frames (default: %(default)s, as `voiceconv convert`)")
    parser.add_argument("--match-k", type=int, default=ConvertOptions.match_k,
                        help="zero-shot systems: reference frames averaged per source frame (default: %(default)s, "
                             "as `voiceconv convert`)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[ConvertOptions.seed], metavar="SEED",
                        help="seeds of the vocoder's sampling noise: every conversion, and each vocoded source scored "
                             "by CER, is rendered once per seed and the table gives their means and spread (default: "
                             "%(default)s; another seed alone moves the CER ratio by ~0.6)")
    add_method_argument(parser)
    parser.add_argument("--f0-measure", choices=METHODS, default=F0_MEASURE, metavar="METHOD",
                        help="pitch tracker of the F0 correlations, one of the --f0-method choices (default: "
                             "%(default)s; harvest errs by an octave about twice as often on speech of known f0)")
    parser.add_argument("--out", type=Path, default=logs_root() / "evaluation",
                        help="folder for the tables and clips (default: %(default)s under the run root)")


def main(args: argparse.Namespace) -> int:
    from wavegrad.device import set_cpu_threads
    from wavegrad.filelist import read_filelist, spread

    set_cpu_threads()
    start = time.perf_counter()
    for listing in [*args.held_out, args.references]:
        if not listing.is_file():
            raise WaveGradError(f"{listing}: filelist not found; pass --held-out and --references (an installed "
                                "package bundles no voices)")
    voices = split_voices(args.held_out, args.references, args.clips_per_voice)
    systems = [System(name, Path(model), [t.strip() for t in targets.split(",") if t.strip()])
               for name, model, targets in args.system]
    cer_sources = read_filelist(args.cer_sources) if args.cer_sources else []
    if args.cer_clips is not None:
        if args.cer_clips < 1:
            raise WaveGradError(f"--cer-clips {args.cer_clips}: give at least 1, or leave it out to score the whole "
                                "--cer-sources list")
        cer_sources = spread(cer_sources, args.cer_clips)
    bench = Bench(voices, args.vocoder_checkpoint, args.schedule, args.f0_method, read_transcripts(args.transcripts),
                  args.reference_clips, cer_sources, args.f0_measure, args.seeds)
    evaluate(systems, bench, args.out, index=not args.no_index,
             options=ConvertOptions(index_rate=args.index_rate, envelope_rate=args.envelope_rate,
                                    match_k=args.match_k))
    print((args.out / "evaluation.md").read_text())
    print(f"evaluated in {(time.perf_counter() - start) / 60:.1f} min; tables and clips in {args.out}")
    return 0
