"""Filelists: text files with one path per line (the reference's `path|...` lines too)."""

from __future__ import annotations

from pathlib import Path

from .config import read_text
from .errors import WaveGradError
from .paths import beside


def read_filelist(path: str | Path) -> list[Path]:
    """Non-empty lines of a filelist, the first '|'-field of each, resolved by `paths.beside`."""
    path = Path(path)
    fix = "pass a text file with one path per line"
    if not path.is_file():
        raise WaveGradError(f"{path}: filelist not found; {fix}")
    entries = []
    for line in read_text(path, "filelist", fix, WaveGradError).splitlines():
        item = line.split("|")[0].strip()
        if item:
            entries.append(beside(item, path))
    if not entries:
        raise WaveGradError(f"{path}: filelist is empty; add one path per line")
    return entries
