"""`wavegrad export -ch CHECKPOINT -o FILE`: a training checkpoint's config, weights and EMA, without the
optimizer state: what is shipped and what `wavegrad train --init-from` starts a new run from."""

from __future__ import annotations

import argparse
from pathlib import Path

from .checkpoint import read_checkpoint, save_checkpoint
from .errors import CheckpointError

EXPORTED_KEYS = ("config", "model", "ema", "step", "epoch", "cpu_seconds")


def export_vocoder(checkpoint: str | Path, out: str | Path) -> dict:
    """Write `out` with the checkpoint's EXPORTED_KEYS (those present); returns what was written."""
    payload = read_checkpoint(checkpoint)
    if "config" not in payload:
        raise CheckpointError(f"{checkpoint}: not a checkpoint of this package (no config); nothing to export")
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise CheckpointError(f"{out}: would overwrite the checkpoint it is exported from; choose another -o")
    exported = {key: payload[key] for key in EXPORTED_KEYS if key in payload}
    save_checkpoint(exported, out)
    return exported


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-ch", "--checkpoint", required=True, help="logs/<exp>/checkpoint_<step>.pt")
    parser.add_argument("-o", "--out", required=True, type=Path, help="file to write, e.g. pretrained/small_16k.pt")


def main(args: argparse.Namespace) -> int:
    exported = export_vocoder(args.checkpoint, args.out)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MB): step {exported.get('step')}, "
          f"{'with' if 'ema' in exported else 'no'} EMA weights")
    return 0
