"""Conversion-model files: self-describing G_/D_ training checkpoints, resume lookup, the small exported model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from wavegrad.assets import resolve_asset
from wavegrad.checkpoint import read_checkpoint, save_checkpoint
from wavegrad.device import resolve_device
from wavegrad.errors import CheckpointError

from .model import Converter, ConverterConfig

LATEST_STEP = 2333333  # RVC's step number for "latest only" checkpoints, overwritten each save
MODEL_KIND = "voiceconv-model"


def checkpoint_path(root: Path, kind: str, step: int) -> Path:
    """`root/G_<step>.pt` or `root/D_<step>.pt`."""
    return root / f"{kind}_{step}.pt"


def read(path: Path, kind: str | None = None) -> dict[str, Any]:
    """A voiceconv checkpoint on CPU, with errors that name the file; `kind` checks its "kind" entry."""
    payload = read_checkpoint(path, "voiceconv", "converter")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {payload.get('kind', 'foreign')!r} file, expected {kind!r}; "
                              "pass the right file")
    return payload


def export_model(model: Converter, path: Path, audio: dict[str, Any], content: dict[str, Any],
                 info: dict[str, Any]) -> None:
    """Write the small inference model atomically: fp16 weights, model config, the bound vocoder audio
    config (`DataConfig.audio_dict()`), the content encoder (name, dim, version) and `info` (epoch, step...)."""
    save_checkpoint({
        "kind": MODEL_KIND, "config": model.config.to_dict(), "audio": audio, "content": content,
        "info": info, "model": {k: v.detach().half().cpu() for k, v in model.state_dict().items()},
    }, path)


def load_converter(path: str | Path, device: str | torch.device | None = None
                   ) -> tuple[Converter, dict[str, Any]]:
    """Rebuild a Converter (eval, float32) from an exported model, a G_<step>.pt or a shipped name ("zeroshot");
    returns (model, payload)."""
    payload = read(resolve_asset(path, "converter"))
    if payload.get("kind") not in (MODEL_KIND, "G"):
        raise CheckpointError(f"{path}: not a conversion model (kind {payload.get('kind')!r}); pass the "
                              "exported logs/<exp>/<exp>.pt or a G_<step>.pt")
    model = Converter(ConverterConfig.from_dict(payload["config"]))
    try:
        model.load_state_dict({k: v.float() for k, v in payload["model"].items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored config ({str(exc)[:160]})") from exc
    return model.to(resolve_device(device)).eval(), payload


def check_vocoder(vocoder_audio: dict[str, Any], model_audio: dict[str, Any], vocoder_path: str | Path,
                  model_path: str | Path) -> None:
    """Refuse a vocoder whose audio config (DataConfig.audio_dict()) differs from the model's, naming both."""
    if vocoder_audio != model_audio:
        keys = sorted(k for k in set(vocoder_audio) | set(model_audio) if vocoder_audio.get(k) != model_audio.get(k))
        diff = ", ".join(f"{k}: {vocoder_audio.get(k)} vs {model_audio.get(k)}" for k in keys)
        raise CheckpointError(f"vocoder {vocoder_path} and conversion model {model_path} have different audio "
                              f"configs ({diff}); use a vocoder trained with the experiment's vocoder config")
