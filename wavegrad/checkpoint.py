"""Self-describing checkpoints (atomic writes), the reference implementation's format, and load_model."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import torch

from .assets import resolve_asset, shipped_names
from .atomic import atomic_write
from .config import Config, config_from_dict
from .device import resolve_device
from .errors import CheckpointError
from .model import WaveGrad

# Reference (github.com/ivanvovk/WaveGrad) key patterns -> ours; "{}" parts carry over.
_REFERENCE_KEYS = [
    (r"ublock_preconv\.conv1d\.", "mel_conv."),
    (r"ublock_postconv\.conv1d\.", "out_conv."),
    (r"dblock_preconv\.conv1d\.", "wav_conv."),
    (r"ublocks\.(\d+)\.first_block_main_branch\.upsampling\.2\.conv1d\.", r"ublocks.\1.convs.0."),
    (r"ublocks\.(\d+)\.first_block_main_branch\.modulation\.convolution\.conv1d\.", r"ublocks.\1.convs.1."),
    (r"ublocks\.(\d+)\.second_block_main_branch\.modulation_(\d)\.convolution\.conv1d\.",
     lambda m: f"ublocks.{m[1]}.convs.{int(m[2]) + 2}."),
    (r"ublocks\.(\d+)\.first_block_residual_branch\.0\.conv1d\.", r"ublocks.\1.residual."),
    (r"dblocks\.(\d+)\.main_branch\.(\d)\.convolution\.conv1d\.", lambda m: f"dblocks.{m[1]}.convs.{int(m[2]) - 1}."),
    (r"dblocks\.(\d+)\.residual_branch\.0\.conv1d\.", r"dblocks.\1.residual."),
    (r"films\.(\d+)\.signal_conv\.0\.conv1d\.", r"films.\1.input_conv."),
]
_REFERENCE_FILM_OUT = re.compile(r"films\.(\d+)\.(scale|shift)_conv\.conv1d\.(weight|bias)")


def is_reference_state_dict(state: dict[str, Any]) -> bool:
    return any(k.startswith(("nn.", "module.nn.")) for k in state)


def has_position_tables(state: dict[str, Any]) -> bool:
    """Whether a reference state dict holds `positional_encoding.pe` tables: the reference before its
    commit 2ecf360 (2020-10-24), whose FiLMs add level + time-position encoding / 5000 ("ivanvovk")."""
    return any(k.endswith("positional_encoding.pe") for k in state)


def convert_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a reference implementation's state dict onto this package's WaveGrad keys.

    Schedule buffers (betas, posterior terms) and positional-encoding tables are dropped; the
    separate FiLM scale and shift convs are stacked into one output conv (scale first).
    """
    ours: dict[str, torch.Tensor] = {}
    film_parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if not key.startswith("nn.") or key.endswith("positional_encoding.pe"):
            continue
        key = key[3:]
        if match := _REFERENCE_FILM_OUT.fullmatch(key):
            film_parts.setdefault((match[1], match[3]), {})[match[2]] = value
            continue
        for pattern, replacement in _REFERENCE_KEYS:
            new, n = re.subn("^" + pattern, replacement, key)
            if n:
                ours[new] = value
                break
        else:
            raise CheckpointError(f"unexpected key {key!r} in a reference checkpoint")
    for (index, kind), parts in film_parts.items():
        ours[f"films.{index}.output_conv.{kind}"] = torch.cat([parts["scale"], parts["shift"]], dim=0)
    return ours


def numbered_checkpoints(folder: Path, prefix: str) -> list[Path]:
    """The `prefix`_<digits>.pt files in `folder`, oldest first (sorted by the number, as RVC does)."""
    name = re.compile(rf"{re.escape(prefix)}_(\d+)\.pt")
    found = [(int(m[1]), p) for p in folder.glob(f"{prefix}_*.pt") if (m := name.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def newest_checkpoint(folder: Path, prefix: str) -> Path | None:
    """The `prefix`_<digits>.pt with the highest number in `folder`, or None."""
    found = numbered_checkpoints(folder, prefix)
    return found[-1] if found else None


def prune_checkpoints(folder: Path, prefix: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` `prefix`_<digits>.pt in `folder` (keep < 1: delete none); returns them."""
    old = numbered_checkpoints(folder, prefix)[:-keep] if keep >= 1 else []
    for path in old:
        path.unlink()
    return old


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves a truncated checkpoint."""
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


WHAT_TO_PASS = {"vocoder": "the path of a checkpoint_<step>.pt file or a shipped vocoder",
                "converter": "an exported model logs/<exp>/<exp>.pt, a G_<step>.pt or a shipped model"}


def read_checkpoint(path: str | Path, what: str = "WaveGrad", kind: str = "vocoder") -> dict[str, Any]:
    """Load a checkpoint dict with a 'model' entry on CPU, from a file or the name of a shipped asset of `kind`
    ("vocoder": "small_16k"; "converter": "G_base"); clear errors name the file otherwise."""
    path = resolve_asset(path, kind)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass {WHAT_TO_PASS[kind]} ({shipped_names(kind)})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}); "
                              "the file is truncated or not a PyTorch checkpoint") from exc
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path}: not a {what} checkpoint (no 'model' entry)")
    return payload


def _describe_difference(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in keys[:4])


def load_model(checkpoint: str | Path, config: Config | str | Path | None = None,
               device: str | torch.device | None = None, ema: bool = True) -> WaveGrad:
    """Rebuild a WaveGrad network from a checkpoint or the shipped vocoder's name ("small_16k"), in eval
    mode on `device` (auto: CUDA if present).

    Our checkpoints carry their config; the reference implementation's (`{'model', 'optimizer',
    'iteration'}`) need `config`. A given config must agree with a self-describing checkpoint.
    Reference checkpoints use the config's noise_level_encoding ("sinusoidal", as the reference since
    its "fixed PE" commit, unless the config says "ivanvovk"); those with position tables use "ivanvovk".
    The caller's config object is not modified.
    ema: use the EMA weights when the checkpoint has them (False: the trained weights).
    The returned model's `.config` is the full Config.
    """
    from .config import load_config

    payload = read_checkpoint(checkpoint)
    if isinstance(config, (str, Path)):
        config = load_config(config)
    state = payload["ema"]["model"] if ema and "ema" in payload else payload["model"]
    if "config" in payload:
        stored = config_from_dict(payload["config"], f"{checkpoint} (stored config)")
        if config is not None:
            for part in ("model_config", "data_config"):
                given, saved = getattr(config, part).__dict__, getattr(stored, part).__dict__
                if given != saved:
                    raise CheckpointError(f"{checkpoint}: {part} of the given config differs from the "
                                          f"checkpoint's ({_describe_difference(given, saved)}); "
                                          "drop -c or pass the config it was trained with")
        config = stored
    elif is_reference_state_dict(state):
        if config is None:
            raise CheckpointError(f"{checkpoint}: a reference-implementation checkpoint carries no config; "
                                  "pass the config it was trained with (-c configs/default.json)")
        config = copy.deepcopy(config)
        if has_position_tables(state):
            config.model_config.noise_level_encoding = "ivanvovk"
        state = convert_reference_state_dict(state)
    else:
        raise CheckpointError(f"{checkpoint}: no config inside and not in the reference layout; "
                              "not a WaveGrad checkpoint")
    model = WaveGrad(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"{checkpoint}: weights do not fit the config ({first[:200]}); "
                              "pass the config it was trained with") from exc
    return model.to(resolve_device(device)).eval()
