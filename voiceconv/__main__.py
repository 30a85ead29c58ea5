"""Command line: `voiceconv <command> ...`; each command's module parses its own flags and runs."""

from __future__ import annotations

import sys

from wavegrad.cli import run_cli

COMMANDS: dict[str, tuple[str, str]] = {}


def main(argv: list[str] | None = None) -> int:
    return run_cli("voiceconv", "RVC-style voice conversion to WaveGrad mels", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
