"""Mel targets by wavegrad's MelSpectrogram with the bound vocoder audio config, and RVC's training filelist."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import torch

from wavegrad.atomic import atomic_write
from wavegrad.audio import MelSpectrogram, load_audio
from wavegrad.errors import AudioError, ConfigError

from .batch import BatchReport, Job, run_batch, save_npy
from .config import Experiment, ExperimentConfig
from .perturb import pitch_shifted, semitone_list


class MelWorker:
    """Worker: one 0_gt_wavs segment -> 4_mel/<stem>.npy, log10 mel [n_mels, samples // hop] float32; a job whose
    data is a tuple of semitones writes the mels of the pitch-shifted segment, one per shift."""

    def __init__(self, exp: Experiment, config: ExperimentConfig):
        self.exp, self.audio = exp, config.audio
        self.mel = MelSpectrogram(config.audio)

    @torch.inference_mode()
    def __call__(self, job: Job) -> None:
        path = self.exp.gt_wav(job.name)
        audio = load_audio(path, self.audio.sample_rate, resample_to_rate=False)
        if len(audio) < max(self.audio.hop_length, self.audio.n_fft // 2 + 1):
            raise AudioError(f"{path}: shorter than one mel frame; delete it and run preprocess again")
        versions = [audio] if job.data is None else [
            torch.from_numpy(a) for a in pitch_shifted(audio.numpy(), np.load(self.exp.f0_hz(job.name)), job.data,
                                                       self.audio.sample_rate)]
        for output, version in zip(job.outputs, versions, strict=True):
            save_npy(output, self.mel(version).numpy().astype(np.float32))


def mel_targets(exp: Experiment, config: ExperimentConfig, processes: int = 1, progress: bool = True,
                pitch_shifts: tuple[int, ...] = ()) -> BatchReport:
    """Mel target of every 0_gt_wavs segment, or with `pitch_shifts` those of the segment resynthesised that many
    semitones higher or lower (`perturb.pitch_shifted`, from its 2b-f0nsf pitch); resumable."""
    stems = sorted(p.stem for p in exp.gt_dir.glob("*.wav"))
    if pitch_shifts and config.f0_method is None:
        raise ConfigError(f"{exp.root}: pitch-shifted targets need the pitch; run `voiceconv f0 --exp {exp.name}`")
    jobs = [Job(stem, tuple(exp.mel(stem, s) for s in pitch_shifts or (0,)), pitch_shifts or None) for stem in stems]
    step = f"mel targets ({semitone_list(pitch_shifts)} semitones)" if pitch_shifts else "mel targets"
    return run_batch(step, jobs, functools.partial(MelWorker, exp, config), processes, progress)


@dataclasses.dataclass(frozen=True)
class FilelistEntry:
    """One training item; the mel target is `Experiment.mel(stem)`, f0 paths are None without pitch."""

    gt_wav: Path
    feature: Path
    f0_coarse: Path | None
    f0_hz: Path | None
    speaker_id: int

    @property
    def stem(self) -> str:
        return self.gt_wav.stem

    def line(self) -> str:
        paths = [self.gt_wav, self.feature] + ([self.f0_coarse, self.f0_hz] if self.f0_coarse else [])
        return "|".join([str(p) for p in paths] + [str(self.speaker_id)])


def speaker_of(stem: str) -> int:
    """Segments are named `<speaker_id>_<file rank>_<segment>`."""
    return int(stem.split("_", 1)[0])


def write_filelist(exp: Experiment, config: ExperimentConfig) -> list[FilelistEntry]:
    """Write filelist.txt (absolute paths, RVC's columns) for the stems present in every required folder:
    gt wav, mel, features, and pitch when an f0 method was run. Returns the entries."""
    if config.feature_dim is None:
        raise ConfigError(f"{exp.root}: no content features yet; run `voiceconv features --exp {exp.name}` first")
    pitch = config.f0_method is not None
    entries = []
    for stem in exp.stems():
        entry = FilelistEntry(exp.gt_wav(stem).resolve(), exp.feature(stem, config.feature_dim).resolve(),
                              exp.f0_coarse(stem).resolve() if pitch else None,
                              exp.f0_hz(stem).resolve() if pitch else None, speaker_of(stem))
        needed = [entry.gt_wav, entry.feature, exp.mel(stem)] + ([entry.f0_coarse, entry.f0_hz] if pitch else [])
        if all(p.is_file() for p in needed):
            entries.append(entry)
    with atomic_write(exp.filelist) as tmp:
        tmp.write_text("".join(e.line() + "\n" for e in entries))
    return entries


def read_filelist(path: str | Path) -> list[FilelistEntry]:
    """Parse a filelist written by `write_filelist` (5 fields with pitch, 3 without)."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split("|")
        if len(fields) not in (3, 5):
            raise ConfigError(f"{path}:{number}: expected 3 or 5 '|'-separated fields, got {len(fields)}; "
                              "rewrite it with `voiceconv features`")
        f0 = [Path(f) for f in fields[2:4]] if len(fields) == 5 else [None, None]
        entries.append(FilelistEntry(Path(fields[0]), Path(fields[1]), f0[0], f0[1], int(fields[-1])))
    return entries
