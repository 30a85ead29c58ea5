"""Pitch-shifted copies of a vocoder's training clips, so that it renders the pitches conversions ask of it.

A vocoder trained on speech at 100-250 Hz loses the contour of a voice moved an octave up (`--f0-up-key 12`).
`voiceconv pitch-copies FILELIST --out DIR` resynthesises every clip by WORLD a few semitones higher
(`perturb.pitch_shifted_clip`: formants kept), writes DIR/<clip's folder name>/<stem>_pitch<+N>.flac at the clip's
own rate, and DIR/<FILELIST's name>: the originals (`--originals N` times each, so that more of a batch is speech
as recorded) and their copies, for `wavegrad train --set training_config.train_filelist_path=DIR/<name>`."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from wavegrad.atomic import atomic_write
from wavegrad.audio import read_audio, save_audio
from wavegrad.device import cpu_threads
from wavegrad.errors import ConfigError
from wavegrad.filelist import read_filelist

from .batch import BatchReport, Job, run_batch
from .perturb import pitch_shifted_clip, semitone_list
from .pitch import METHODS, pitch_estimator

VOCODER_SHIFTS = (6, 12)  # default semitones of the copies: half an octave and an octave up


def copy_path(out: Path, clip: Path, semitones: int) -> Path:
    """Where the copy of `clip` moved `semitones` goes: out/<clip's folder name>/<stem>_pitch<+N>.flac."""
    return out / clip.parent.name / f"{clip.stem}_pitch{semitones:+d}.flac"


class CopyWorker:
    """Worker: one clip -> its copies, one per semitone shift of `job.data`, at the clip's own rate."""

    def __init__(self, f0_method: str):
        self.pitch = pitch_estimator(f0_method)

    def __call__(self, job: Job) -> None:
        audio, rate = read_audio(job.name)
        for output, copy in zip(job.outputs, pitch_shifted_clip(audio, rate, job.data, self.pitch), strict=True):
            save_audio(output, copy, rate)


def pitch_copies(filelist: Path, out: Path, semitones: tuple[int, ...] = VOCODER_SHIFTS, f0_method: str = "harvest",
                 processes: int = 1, progress: bool = True, originals: int = 1) -> tuple[Path, BatchReport]:
    """Write the copies of every clip of `filelist` (resumable: existing copies are kept) and the filelist
    out/<filelist's name> of the originals, each listed `originals` times, and of the copies of `semitones` that
    exist, paths relative to `out`."""
    if not semitones or 0 in semitones:
        raise ConfigError(f"--semitones {semitone_list(semitones)}: give nonzero shifts, e.g. 6,12")
    if originals < 1:
        raise ConfigError(f"--originals {originals}: list each original at least once")
    listing = out / filelist.name
    if listing.resolve() == filelist.resolve():
        raise ConfigError(f"{filelist}: --out would overwrite this filelist; choose another folder")
    clips = read_filelist(filelist)
    jobs = [Job(str(clip), tuple(copy_path(out, clip, s) for s in semitones), semitones) for clip in clips]
    report = run_batch(f"pitch copies ({semitone_list(semitones)} semitones)", jobs,
                       functools.partial(CopyWorker, f0_method), processes, progress)
    rows = [os.path.relpath(clip, out) for clip in clips] * originals
    rows += [os.path.relpath(path, out) for job in jobs for path in job.outputs if path.is_file()]
    with atomic_write(listing) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    return listing, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filelist", type=Path, help="the vocoder's training filelist, e.g. data/voices_full/train.txt")
    parser.add_argument("--out", type=Path, required=True, help="folder of the copies and the new filelist")
    parser.add_argument("--semitones", default=",".join(str(s) for s in VOCODER_SHIFTS),
                        help=f"comma-separated shifts (default {semitone_list(VOCODER_SHIFTS)})")
    parser.add_argument("--originals", type=int, default=1,
                        help="list each original this many times (default 1), for more speech as recorded per batch")
    parser.add_argument("--f0-method", default="harvest", choices=METHODS, help="pitch estimator (default harvest)")
    parser.add_argument("--processes", type=int, default=cpu_threads(),
                        help="worker processes (default: OMP_NUM_THREADS, else every core)")


def main(args: argparse.Namespace) -> int:
    try:
        semitones = tuple(int(s) for s in args.semitones.split(","))
    except ValueError:
        raise ConfigError(f"--semitones {args.semitones!r}: give whole semitones separated by commas, "
                          "e.g. 6,12") from None
    listing, report = pitch_copies(args.filelist, args.out, semitones, args.f0_method, args.processes,
                                   originals=args.originals)
    print(report.summary())
    print(f"wrote {listing}: train the vocoder with --set training_config.train_filelist_path={listing}")
    return 0
