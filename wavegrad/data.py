"""Training data: filelist checks, random fixed-length segments, batches per process, corpus resampling."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import Dataset, DistributedSampler
from tqdm import tqdm

from .atomic import atomic_write
from .audio import load_audio, resample, save_audio, wrong_rate_error
from .config import load_config
from .errors import AudioError, WaveGradError
from .filelist import read_filelist


def probe_audio(path: Path, sample_rate: int) -> int:
    """Length in samples of a readable, non-empty audio file at `sample_rate` Hz; AudioError otherwise.

    Reads the header only, so that a whole corpus is checked in seconds before training starts.
    """
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found; fix the path or remove it from the list")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: unreadable or corrupt audio ({exc}); replace or remove the file") from exc
    if info.frames == 0:
        raise AudioError(f"{path}: audio file is empty; remove it from the list")
    if info.samplerate != sample_rate:
        raise wrong_rate_error(path, info.samplerate, sample_rate)
    return info.frames


def check_filelist(filelist: str | Path, sample_rate: int) -> tuple[list[Path], list[str]]:
    """(usable audio paths, one error line per bad file) of a filelist.

    A list that is missing, empty, or has no usable file raises WaveGradError naming the list
    and the first problems, so a bad corpus stops the run before any worker starts.
    """
    paths, errors = [], []
    for path in read_filelist(filelist):
        try:
            probe_audio(path, sample_rate)
            paths.append(path)
        except AudioError as exc:
            errors.append(str(exc))
    if not paths:
        shown = "; ".join(errors[:3])
        raise WaveGradError(f"{filelist}: none of its {len(errors)} file(s) is usable ({shown})")
    return paths, errors


class SegmentDataset(Dataset):
    """Audio segments [segment_length] at the config's rate: a random window per clip and epoch,
    zero-padded at the end when the clip is shorter. Windows depend only on (seed, epoch, index),
    so runs are reproducible with any number of workers and resume exactly.

    Pitch-up augmentation: with probability `pitch_up_probability`, a segment is a longer window played
    faster, so that pitch and formants rise together by up to `pitch_up_semitones` (uniform in semitones),
    as a higher voice speaking: real waveforms of high voices for a vocoder trained on low ones."""

    def __init__(self, paths: list[Path], sample_rate: int, segment_length: int, seed: int = 0,
                 pitch_up_semitones: float = 0.0, pitch_up_probability: float = 0.0):
        self.paths, self.sample_rate, self.segment_length, self.seed = paths, sample_rate, segment_length, seed
        self.pitch_up_semitones, self.pitch_up_probability = pitch_up_semitones, pitch_up_probability
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows; call before building the epoch's DataLoader (workers copy the dataset)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        audio = load_audio(self.paths[index], self.sample_rate, resample_to_rate=False)
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFFFFFFFFFF)
        speed = 1.0
        if self.pitch_up_probability and float(torch.rand(1, generator=generator)) < self.pitch_up_probability:
            speed = 2 ** (float(torch.rand(1, generator=generator)) * self.pitch_up_semitones / 12)
        window = math.ceil(self.segment_length * speed)
        excess = audio.numel() - window
        if excess > 0:
            start = int(torch.randint(0, excess + 1, (1,), generator=generator))
            audio = audio[start:start + window]
        if speed != 1.0:  # played `speed` times faster: read at rate * speed, written at rate
            audio = torch.from_numpy(resample(audio.numpy(), self.sample_rate * speed, self.sample_rate))
        audio = audio[:self.segment_length]
        return torch.nn.functional.pad(audio, (0, self.segment_length - audio.numel()))


def epoch_batches(n_items: int, batch_size: int, epoch: int, seed: int, rank: int = 0,
                  world_size: int = 1) -> list[list[int]]:
    """This process's batches of dataset indices for one epoch: a DistributedSampler shuffle
    (seeded by seed + epoch, process `rank` takes every world_size-th index), cut into full batches."""
    if n_items < batch_size * world_size:
        raise WaveGradError(f"the training list has {n_items} usable clip(s), but one step needs batch_size "
                            f"{batch_size} x {world_size} process(es); add clips or lower training_config.batch_size")
    sampler = DistributedSampler(range(n_items), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    return [indices[i:i + batch_size] for i in range(0, len(indices) - batch_size + 1, batch_size)]


def resample_corpus(filelist: str | Path, out_dir: str | Path, sample_rate: int) -> tuple[Path, list[str]]:
    """Write every file of `filelist` as a `sample_rate` Hz float wav under `out_dir`, plus
    `out_dir/<list name>` naming them. Inputs are never modified; bad files are reported and skipped.
    Returns (the new filelist, error lines)."""
    out_dir = Path(out_dir)
    paths = read_filelist(filelist)
    common = Path(os.path.commonpath([p.resolve().parent for p in paths]))
    new_list = out_dir / Path(filelist).name
    if out_dir.resolve() == common or new_list.resolve() == Path(filelist).resolve():
        raise WaveGradError(f"{out_dir}: would overwrite the input corpus or its list; choose another --out-dir")
    written, errors = [], []
    for path in tqdm(paths, desc="resampling", unit="file"):
        try:
            audio = load_audio(path, sample_rate, resample_to_rate=True)
        except WaveGradError as exc:
            errors.append(str(exc))
            continue
        target = out_dir / path.resolve().relative_to(common).with_suffix(".wav")
        save_audio(target, audio, sample_rate)
        written.append(target.relative_to(out_dir).as_posix())
    with atomic_write(new_list) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in written))
    return new_list, errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="config whose data_config.sample_rate is the target")
    parser.add_argument("-i", "--filelist", required=True, help="text file, one audio path per line")
    parser.add_argument("-o", "--out-dir", required=True, type=Path, help="folder for the resampled wavs and list")


def main(args: argparse.Namespace) -> int:
    """`wavegrad resample`: returns 2 when any file failed, else 0."""
    rate = load_config(args.config).data_config.sample_rate
    new_list, errors = resample_corpus(args.filelist, args.out_dir, rate)
    for line in errors:
        print(f"error: {line}")
    print(f"wrote {new_list} ({rate} Hz); point training_config.train_filelist_path/test_filelist_path at it")
    return 2 if errors else 0
