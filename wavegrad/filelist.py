"""Filelists: text files with one path per line (the reference's `path|...` lines too)."""

from __future__ import annotations

from pathlib import Path

from .config import read_text
from .errors import WaveGradError


def read_filelist(path: str | Path) -> list[Path]:
    """Non-empty lines of a filelist, the first '|'-field of each. A relative path resolves against
    the list's folder, or, when nothing is there, against the current directory."""
    path = Path(path)
    fix = "pass a text file with one path per line"
    if not path.is_file():
        raise WaveGradError(f"{path}: filelist not found; {fix}")
    entries = []
    for line in read_text(path, "filelist", fix, WaveGradError).splitlines():
        item = line.split("|")[0].strip()
        if item:
            entry = Path(item)
            if not entry.is_absolute() and (path.parent / entry).exists():
                entry = path.parent / entry
            entries.append(entry)
    if not entries:
        raise WaveGradError(f"{path}: filelist is empty; add one path per line")
    return entries
