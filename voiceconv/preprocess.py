"""RVC step 2a: high-pass, silence slicing, 3.7 s segments, normalisation -> 0_gt_wavs (vocoder rate) and 1_16k_wavs."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
from scipy import signal

from wavegrad.atomic import atomic_write
from wavegrad.audio import audio_files, read_audio, resample, save_audio
from wavegrad.device import cpu_threads
from wavegrad.errors import AudioError, ConfigError

from .batch import BatchReport, Job, run_batch
from .config import (
    DEFAULT_VOCODER,
    Experiment,
    ExperimentConfig,
    PreprocessSettings,
    Source,
    add_experiment_arguments,
    bind_experiment,
)
from .rates import FRONTEND_RATE


def highpass(audio: np.ndarray, sample_rate: int, s: PreprocessSettings) -> np.ndarray:
    """Causal Butterworth high-pass (order 5, 48 Hz by default) of audio [samples] at `sample_rate` Hz ->
    [samples] float32: the one input filter of preprocessing (as RVC's training) and of conversion."""
    b, a = signal.butter(s.highpass_order, s.highpass_hz, btype="high", fs=sample_rate)
    return signal.lfilter(b, a, audio).astype(np.float32)


def _rms(audio: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """RMS per frame of `frame` samples every `hop`, centred (zero padding): [1 + samples // hop]."""
    padded = np.pad(audio, (frame // 2, frame // 2))
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop]
    return np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=-1))


def slice_silences(audio: np.ndarray, sample_rate: int, s: PreprocessSettings) -> list[tuple[int, int]]:
    """RVC's slicer: (start, end) sample ranges of the clips left after cutting long silences.

    A silence (RMS below `threshold_db`) is cut when it lasts at least `min_interval_ms` and the
    current clip is at least `min_length_ms` long; up to `max_sil_kept_ms` of it stays at each edge.
    """
    hop = round(sample_rate * s.hop_ms / 1000)
    interval = sample_rate * s.min_interval_ms / 1000
    win = min(round(interval), 4 * hop)
    threshold = 10 ** (s.threshold_db / 20)
    min_length = round(sample_rate * s.min_length_ms / 1000 / hop)
    min_interval = round(interval / hop)
    max_kept = round(sample_rate * s.max_sil_kept_ms / 1000 / hop)
    if (len(audio) + hop - 1) // hop <= min_length:
        return [(0, len(audio))]
    rms = _rms(audio, win, hop)
    tags: list[tuple[int, int]] = []
    silence_start, clip_start = None, 0
    for i, value in enumerate(rms):
        if value < threshold:
            silence_start = i if silence_start is None else silence_start
            continue
        if silence_start is None:
            continue
        leading = silence_start == 0 and i > max_kept
        middle = i - silence_start >= min_interval and i - clip_start >= min_length
        if not leading and not middle:
            silence_start = None
            continue
        if i - silence_start <= max_kept:  # short silence: one cut at its quietest frame
            pos = int(rms[silence_start:i + 1].argmin()) + silence_start
            tags.append((0, pos) if silence_start == 0 else (pos, pos))
            clip_start, silence_start = pos, None
            continue
        left = int(rms[silence_start:silence_start + max_kept + 1].argmin()) + silence_start
        right = int(rms[i - max_kept:i + 1].argmin()) + i - max_kept
        if i - silence_start <= 2 * max_kept:  # medium: cut around the quietest frame near the middle
            pos = int(rms[i - max_kept:silence_start + max_kept + 1].argmin()) + i - max_kept
            tags.append((0, right) if silence_start == 0 else (min(left, pos), max(right, pos)))
            clip_start = right if silence_start == 0 else max(right, pos)
        else:  # long: keep max_kept at both edges
            tags.append((0, right) if silence_start == 0 else (left, right))
            clip_start = right
        silence_start = None
    total = len(rms)
    if silence_start is not None and total - silence_start >= min_interval:
        end = min(total, silence_start + max_kept)
        tags.append((int(rms[silence_start:end + 1].argmin()) + silence_start, total + 1))
    if not tags:
        return [(0, len(audio))]
    bounds = [(0, tags[0][0])] if tags[0][0] > 0 else []
    bounds += [(a[1], b[0]) for a, b in zip(tags, tags[1:], strict=False)]
    if tags[-1][1] < total:
        bounds.append((tags[-1][1], total))
    return [(a * hop, min(len(audio), b * hop)) for a, b in bounds]


def segment_bounds(length: int, sample_rate: int, s: PreprocessSettings) -> list[tuple[int, int]]:
    """RVC's segmenting of one slice of `length` samples: `segment_s` pieces every `segment_s - overlap_s`,
    the remainder (at most segment_s + overlap_s) as the last piece."""
    step, size = int(sample_rate * (s.segment_s - s.overlap_s)), int(sample_rate * s.segment_s)
    tail = (s.segment_s + s.overlap_s) * sample_rate
    bounds, start = [], 0
    while length - start > tail:
        bounds.append((start, start + size))
        start += step
    bounds.append((start, length))
    return bounds


def normalize(segment: np.ndarray, s: PreprocessSettings) -> np.ndarray | None:
    """y = x / max|x| * peak * alpha + (1 - alpha) * x; None for silent segments or peaks above `max_peak`."""
    top = float(np.abs(segment).max(initial=0.0))
    if top == 0.0 or top > s.max_peak:
        return None
    return (segment / top * (s.peak * s.alpha) + (1 - s.alpha) * segment).astype(np.float32)


def split_audio(audio: np.ndarray, sample_rate: int, s: PreprocessSettings) -> list[np.ndarray]:
    """High-pass, slice, segment and normalise audio [samples] at `sample_rate`: the kept segments, in order."""
    audio = highpass(audio, sample_rate, s)
    min_len = sample_rate * s.min_segment_ms / 1000
    segments = []
    for start, end in slice_silences(audio, sample_rate, s):
        for a, b in segment_bounds(end - start, sample_rate, s):
            piece = normalize(audio[start + a:start + b], s)
            if piece is not None and len(piece) >= min_len:
                segments.append(piece)
    return segments


class Preprocessor:
    """Worker: one input file -> its segments in 0_gt_wavs and 1_16k_wavs, then its manifest."""

    def __init__(self, exp: Experiment, config: ExperimentConfig):
        self.exp, self.config = exp, config

    def __call__(self, job: Job) -> None:
        path, speaker_id, idx0 = job.data
        rate = self.config.audio.sample_rate
        audio, native = read_audio(path, rate)
        if audio.size == 0:
            raise AudioError(f"{path}: audio file is empty; remove it from the input folder")
        if not np.all(np.isfinite(audio)):
            raise AudioError(f"{path}: audio contains NaN or infinite samples; re-export the file")
        segments = split_audio(resample(audio, native, rate), rate, self.config.preprocess)
        if not segments:
            raise AudioError(f"{path}: too short or silent, no segment of at least "
                             f"{self.config.preprocess.min_segment_ms} ms; remove it or record more")
        stems = []
        for idx1, segment in enumerate(segments):
            stem = f"{speaker_id}_{idx0}_{idx1}"
            save_audio(self.exp.gt_wav(stem), segment, rate)
            save_audio(self.exp.wav16k(stem), resample(segment, rate, FRONTEND_RATE), FRONTEND_RATE)
            stems.append(stem)
        with atomic_write(job.outputs[0]) as tmp:
            tmp.write_text(json.dumps({"input": str(path), "segments": stems}))


def input_files(folder: Path) -> list[Path]:
    """Audio entries of `folder` (not recursive), sorted by name."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: input folder not found; pass --input a folder of audio files")
    return audio_files(folder)


def _complete(exp: Experiment, manifest: Path) -> bool:
    """A manifest counts only while every segment it lists is still present in both folders."""
    try:
        stems = json.loads(manifest.read_text())["segments"]
    except (OSError, ValueError, KeyError):
        return False
    return all(exp.gt_wav(s).is_file() and exp.wav16k(s).is_file() for s in stems)


def preprocess(exp: Experiment, config: ExperimentConfig, folder: Path, speaker_id: int = 0,
               processes: int = 1, progress: bool = True) -> BatchReport:
    """Segment every audio file of `folder` into the experiment as speaker `speaker_id`; resumable."""
    folder = Path(folder).resolve()
    source = Source(str(folder), speaker_id)
    if source not in config.sources:
        if any(s.speaker_id == speaker_id for s in config.sources):
            other = next(s.input for s in config.sources if s.speaker_id == speaker_id)
            raise ConfigError(f"{folder}: speaker id {speaker_id} already belongs to {other} in experiment "
                              f"'{exp.name}'; give each input folder its own --speaker-id")
        config.sources.append(source)
        exp.save_config(config)
    jobs = []
    for idx0, path in enumerate(input_files(folder)):
        manifest = exp.manifest(speaker_id, idx0)
        if manifest.exists() and not _complete(exp, manifest):
            manifest.unlink()  # some segments were deleted: redo this file
        jobs.append(Job(str(path), (manifest,), (path, speaker_id, idx0)))
    return run_batch("preprocess", jobs, functools.partial(Preprocessor, exp, config), processes, progress)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    add_experiment_arguments(parser)
    parser.add_argument("--processes", type=int, default=cpu_threads(),
                        help="worker processes (default: OMP_NUM_THREADS, else every core)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--input", required=True, action="append", type=Path,
                        help="folder of a speaker's recordings (repeat with --speaker-id for several speakers)")
    parser.add_argument("--speaker-id", type=int, action="append", help="speaker id per --input (default 0, 1, ...)")
    parser.add_argument("--vocoder-config", help="WaveGrad config whose audio settings the experiment binds to "
                        f"(a file or a shipped name; default {DEFAULT_VOCODER}; fixed once the experiment exists)")


def sources(args: argparse.Namespace) -> list[tuple[Path, int]]:
    """(input folder, speaker id) pairs from --input/--speaker-id, checked before anything is written."""
    ids = args.speaker_id or list(range(len(args.input)))
    if len(ids) != len(args.input):
        raise ConfigError(f"{len(args.input)} --input folders but {len(ids)} --speaker-id values; give one per folder")
    for folder in args.input:
        input_files(folder)
    return list(zip(args.input, ids, strict=True))


def run(args: argparse.Namespace) -> list[BatchReport]:
    exp = Experiment.at(args.exp, args.logs_dir)
    pairs = sources(args)
    config = bind_experiment(exp, args.vocoder_config)
    return [preprocess(exp, config, folder, sid, args.processes) for folder, sid in pairs]


def main(args: argparse.Namespace) -> int:
    for report in run(args):
        print(report.summary())
    return 0
