"""Atomic file writes: write a temporary file beside the target, then rename it over the target."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .errors import WaveGradError


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (parent folders created); when the block succeeds it
    replaces `path`, so a kill never leaves a truncated file; when it fails it is removed.
    A folder that cannot be created raises WaveGradError naming it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WaveGradError(f"{path.parent}: cannot create this folder ({exc.strerror}); "
                            "choose a folder that can be written") from exc
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
