"""The shipped configs, vocoder, noise schedules and conversion base, found by name wherever the package is
installed.

A wheel carries them as package data (`wavegrad/assets/`, copied there by setup.py); an editable
install or a checkout finds them in the repository's `configs/`, `pretrained/` and `schedules/`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FOLDERS = {"config": ("configs", (".yaml", ".json")), "vocoder": ("pretrained", (".pt",)),
           "schedule": ("schedules", (".pt",)), "converter": ("pretrained/voiceconv", (".pt",))}


def assets_root() -> Path:
    """The folder holding configs/, pretrained/ and schedules/: package data, else the source checkout."""
    packaged = Path(str(resources.files("wavegrad") / "assets"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent


def shipped(kind: str) -> dict[str, Path]:
    """Name -> file of each shipped asset of `kind` ("config", "vocoder", "schedule" or "converter": the
    voice-conversion base of `voiceconv pretrain`)."""
    folder, suffixes = FOLDERS[kind]
    files = sorted((assets_root() / folder).glob("*"))
    return {path.stem: path for path in files if path.suffix in suffixes and path.is_file()}


def resolve_asset(spec: str | Path, kind: str) -> Path:
    """`spec` as a path when something is there, else the shipped asset of that name (e.g. "small_16k",
    "6iters"); a name that is neither comes back unchanged, for the loader's "not found" message."""
    path = Path(spec)
    if path.exists():
        return path
    return shipped(kind).get(str(spec), path)


def shipped_names(kind: str) -> str:
    """"a, b, c": the shipped names of `kind`, for error messages and --help."""
    return ", ".join(shipped(kind)) or "none"
