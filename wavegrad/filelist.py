"""Filelists: text files with one path per line (the reference's `path|...` lines too)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from .config import read_text
from .errors import WaveGradError
from .paths import beside

T = TypeVar("T")


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


def spread(items: Sequence[T], n: int) -> list[T]:
    """`n` items evenly spread over `items` (item round(i * len / n)), in order; all of them when n >= len."""
    n = min(n, len(items))
    return [items[round(i * len(items) / n)] for i in range(n)]
