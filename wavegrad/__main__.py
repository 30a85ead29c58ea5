"""Command line: `wavegrad <command> ...`; each command's module parses its own flags and runs."""

from __future__ import annotations

import sys

from .cli import run_cli

COMMANDS = {
    "mel": ("wavegrad.mel", "audio files to log-mel files (and a mels.txt for `wavegrad inference -m`)"),
    "inference": ("wavegrad.inference", "render mel files to wavs with a noise schedule"),
    "train": ("wavegrad.train", "train a WaveGrad vocoder (alone or under torchrun)"),
    "resample": ("wavegrad.data", "resample a corpus to the config's sample rate"),
    "search": ("wavegrad.search", "search a few-iteration noise schedule on held-out clips"),
    "export": ("wavegrad.export", "a checkpoint's config, weights and EMA without the optimizer (to ship)"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("wavegrad", "WaveGrad diffusion vocoder", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
