"""Command line: `voiceconv <command> ...`; each command's module parses its own flags and runs."""

from __future__ import annotations

import sys

from wavegrad.cli import run_cli

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("voiceconv.train", "train the conversion model (content + pitch + speaker -> vocoder mels)"),
    "index": ("voiceconv.index", "faiss retrieval index of the training content features"),
    "convert": ("voiceconv.convert", "convert recordings into the trained voice, rendered by WaveGrad"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("voiceconv", "RVC-style voice conversion to WaveGrad mels", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
