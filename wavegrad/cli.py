"""Shared command-line dispatch: subcommands from modules, user errors as one line and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import WaveGradError


def run_cli(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None) -> int:
    """`commands` maps a name to (module, help); each module has add_arguments(parser) and
    main(args) -> exit status. A WaveGradError prints its message and returns 2. `--version` prints
    the package version (wavegrad.__version__, shared by both commands)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in commands.items():
        modules[name] = importlib.import_module(module_name)
        modules[name].add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    try:
        return modules[args.command].main(args) or 0
    except WaveGradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
