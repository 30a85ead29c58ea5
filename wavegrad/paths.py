"""Where files are looked for and written: paths named inside a file, and the run root (`logs/`)."""

from __future__ import annotations

import os
from pathlib import Path

LOGS_ENV = "WAVEGRAD_LOGS"


def beside(entry: str | Path, named_in: str | Path) -> Path:
    """A path written inside the file `named_in` (a config, a filelist): a relative one resolves against
    that file's folder, or, when nothing is there, against the current directory (as the reference's
    `configs/default.json` expects when run from its checkout)."""
    entry = Path(entry)
    if entry.is_absolute():
        return entry
    candidate = Path(named_in).parent / entry
    return candidate if candidate.exists() else entry


def logs_root() -> Path:
    """The folder holding run folders (`<root>/<exp>`): $WAVEGRAD_LOGS, else `logs` in the current directory."""
    return Path(os.environ.get(LOGS_ENV) or "logs")


LOGS_HELP = f"folder holding run folders (default: ${LOGS_ENV}, else ./logs)"
