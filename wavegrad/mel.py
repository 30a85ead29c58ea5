"""Audio files to log-mel files (`wavegrad mel -c CONFIG_OR_CHECKPOINT -i AUDIO... -o DIR`), with a
`mels.txt` list ready for `wavegrad inference -m`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .atomic import atomic_write
from .audio import audio_files, load_audio, mel_spectrogram, pad_to_hop
from .checkpoint import read_checkpoint
from .config import DataConfig, config_from_dict, load_config
from .errors import CheckpointError, WaveGradError
from .filelist import read_filelist

CHECKPOINT_SUFFIXES = {".pt", ".pth", ".ckpt"}
LIST_NAME = "mels.txt"


def data_config_of(source: str | Path) -> DataConfig:
    """The audio settings of a YAML/JSON config, or of a self-describing checkpoint (.pt)."""
    source = Path(source)
    if source.suffix.lower() not in CHECKPOINT_SUFFIXES:
        return load_config(source).data_config
    payload = read_checkpoint(source)
    if "config" not in payload:
        raise CheckpointError(f"{source}: carries no config (a reference-format checkpoint); "
                              "pass the config it was trained with instead (-c configs/default.json)")
    return config_from_dict(payload["config"], f"{source} (stored config)").data_config


def audio_mel(path: str | Path, data: DataConfig) -> torch.Tensor:
    """Log10 mel [n_mels, frames] of an audio file, resampled to data.sample_rate and zero-padded to
    whole hops (frames * hop == samples), as the vocoder's training and copy synthesis compute it."""
    return mel_spectrogram(pad_to_hop(load_audio(path, data.sample_rate), data.hop_length), data)


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; a folder gives its audio files (by suffix, sorted)."""
    files = []
    for item in inputs:
        if item.is_dir():
            files += audio_files(item)
        else:
            files.append(item)
    return files


def write_mels(paths: list[Path], data: DataConfig, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Write `out_dir/<stem>.pt` for each audio file; returns (written files, error lines). A bad file, or
    a second file with the same stem, is reported and skipped."""
    written, errors, sources = [], [], {}
    for path in paths:
        target = out_dir / f"{path.stem}.pt"
        if target in sources:
            errors.append(f"{path}: same name as {sources[target]}, both would write {target}; rename one")
            continue
        try:
            mel = audio_mel(path, data)
        except WaveGradError as exc:
            errors.append(str(exc))
            continue
        with atomic_write(target) as tmp:
            torch.save(mel, tmp)
        sources[target] = path
        written.append(target)
    return written, errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True,
                        help="vocoder config (YAML/JSON) or checkpoint (.pt) whose audio settings to use")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("-i", "--input", nargs="+", type=Path, help="audio files or folders of them")
    inputs.add_argument("-f", "--filelist", type=Path, help="text file, one audio path per line")
    parser.add_argument("-o", "--out-dir", required=True, type=Path,
                        help=f"folder for <name>.pt mels [n_mels, frames] and {LIST_NAME}")


def main(args: argparse.Namespace) -> int:
    """Compute every mel; returns 2 when any file failed, else 0."""
    data = data_config_of(args.config)
    paths = read_filelist(args.filelist) if args.filelist else expand_inputs(args.input)
    if not paths:
        raise WaveGradError(f"no audio files in {', '.join(map(str, args.input))}; pass files or a folder of them")
    written, errors = write_mels(paths, data, args.out_dir)
    for line in errors:
        print(f"error: {line}")
    if written:
        listing = args.out_dir / LIST_NAME
        listing.write_text("".join(f"{p.name}\n" for p in written))
        print(f"wrote {len(written)} mel(s) [{data.n_mels}, frames] at {data.sample_rate} Hz / hop "
              f"{data.hop_length} to {args.out_dir}; render them with: wavegrad inference -ch CHECKPOINT "
              f"-ns SCHEDULE -m {listing}")
    return 2 if errors else 0
