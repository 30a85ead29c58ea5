"""HuBERT / ContentVec (base, post-norm) without fairseq or transformers: the network and two checkpoint formats.

Loads RVC's `hubert_base.pt` (fairseq format; ContentVec) or a Hugging Face HubertModel directory into one
module whose layer outputs match fairseq's `extract_features(output_layer=n)`.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wavegrad.errors import CheckpointError

STANDARD_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2  # 320-sample stride: 50 frames/s at 16 kHz


@dataclasses.dataclass
class HubertDims:
    """Sizes of a HuBERT-base-style encoder; `final_dim` = 0 when the checkpoint has no final_proj."""

    conv: list[tuple[int, int, int]]  # (channels, kernel, stride) per feature-extractor layer
    embed_dim: int = 768
    ffn_dim: int = 3072
    heads: int = 12
    layers: int = 12
    pos_kernel: int = 128
    pos_groups: int = 16
    final_dim: int = 256
    normalize: bool = False  # layer-normalise the waveform first (fairseq task.normalize)


class _Layer(nn.Module):
    """Post-norm transformer layer: x + attn -> LN -> x + ffn -> LN."""

    def __init__(self, d: HubertDims):
        super().__init__()
        self.heads = d.heads
        self.q, self.k, self.v, self.out = (nn.Linear(d.embed_dim, d.embed_dim) for _ in range(4))
        self.attn_norm = nn.LayerNorm(d.embed_dim)
        self.fc1, self.fc2 = nn.Linear(d.embed_dim, d.ffn_dim), nn.Linear(d.ffn_dim, d.embed_dim)
        self.final_norm = nn.LayerNorm(d.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, c // self.heads).transpose(1, 2) for proj in (self.q, self.k, self.v))
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, c)
        x = self.attn_norm(x + self.out(attn))
        return self.final_norm(x + self.fc2(F.gelu(self.fc1(x))))


class HubertEncoder(nn.Module):
    """Waveform [B, samples] at 16 kHz -> hidden states [B, frames, embed_dim] after `output_layer` layers,
    50 frames/s, optionally through final_proj ([B, frames, final_dim])."""

    def __init__(self, dims: HubertDims):
        super().__init__()
        self.dims = dims
        chans = [1] + [c for c, _, _ in dims.conv]
        self.convs = nn.ModuleList(nn.Conv1d(chans[i], c, k, s, bias=False) for i, (c, k, s) in enumerate(dims.conv))
        self.conv0_norm = nn.GroupNorm(chans[1], chans[1])
        self.feature_norm = nn.LayerNorm(chans[-1])
        self.feature_proj = nn.Linear(chans[-1], dims.embed_dim)
        self.pos_conv = nn.Conv1d(dims.embed_dim, dims.embed_dim, dims.pos_kernel, padding=dims.pos_kernel // 2,
                                  groups=dims.pos_groups)
        self.encoder_norm = nn.LayerNorm(dims.embed_dim)
        self.layers = nn.ModuleList(_Layer(dims) for _ in range(dims.layers))
        self.final_proj = nn.Linear(dims.embed_dim, dims.final_dim) if dims.final_dim else None

    def forward(self, audio: torch.Tensor, output_layer: int | None = None, project: bool = False) -> torch.Tensor:
        if self.dims.normalize:
            audio = F.layer_norm(audio, audio.shape[-1:])
        x = audio[:, None]
        for i, conv in enumerate(self.convs):
            x = conv(x)
            x = F.gelu(self.conv0_norm(x) if i == 0 else x)
        x = self.feature_proj(self.feature_norm(x.transpose(1, 2)))
        pos = self.pos_conv(x.transpose(1, 2))
        pos = pos[..., :-1] if self.dims.pos_kernel % 2 == 0 else pos
        x = self.encoder_norm(x + F.gelu(pos).transpose(1, 2))
        for layer in self.layers[:output_layer or len(self.layers)]:
            x = layer(x)
        if project:
            if self.final_proj is None:
                raise CheckpointError("this checkpoint has no final_proj, which v1 (256-d) needs; use --version v2")
            x = self.final_proj(x)
        return x


_ATTN = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "out": "out_proj"}
# Our module name -> the checkpoint's, per format ("{i}" is the conv index).
_NAMES = {
    "fairseq": {"conv": "feature_extractor.conv_layers.{i}.0", "conv0_norm": "feature_extractor.conv_layers.0.2",
                "pos_conv": "encoder.pos_conv.0", "feature_norm": "layer_norm", "feature_proj": "post_extract_proj",
                "encoder_norm": "encoder.layer_norm", "final_proj": "final_proj",
                "layer": {**{k: f"self_attn.{v}" for k, v in _ATTN.items()}, "attn_norm": "self_attn_layer_norm",
                          "fc1": "fc1", "fc2": "fc2", "final_norm": "final_layer_norm"}},
    "huggingface": {"conv": "feature_extractor.conv_layers.{i}.conv",
                    "conv0_norm": "feature_extractor.conv_layers.0.layer_norm",
                    "pos_conv": "encoder.pos_conv_embed.conv",
                    "feature_norm": "feature_projection.layer_norm", "feature_proj": "feature_projection.projection",
                    "encoder_norm": "encoder.layer_norm", "final_proj": "final_proj",
                    "layer": {**{k: f"attention.{v}" for k, v in _ATTN.items()}, "attn_norm": "layer_norm",
                              "fc1": "feed_forward.intermediate_dense", "fc2": "feed_forward.output_dense",
                              "final_norm": "final_layer_norm"}},
}


def _names(fmt: str, d: HubertDims) -> dict[str, str]:
    """Our parameter name -> the checkpoint's, for format 'fairseq' or 'huggingface' (pos_conv.weight aside)."""
    table, wb = _NAMES[fmt], ("weight", "bias")
    names = {f"convs.{i}.weight": table["conv"].format(i=i) + ".weight" for i in range(len(d.conv))}
    modules = ["conv0_norm", "feature_norm", "feature_proj", "encoder_norm"] + (["final_proj"] if d.final_dim else [])
    names |= {f"{m}.{p}": f"{table[m]}.{p}" for m in modules for p in wb}
    names["pos_conv.bias"] = table["pos_conv"] + ".bias"
    for i in range(d.layers):
        names |= {f"layers.{i}.{o}.{p}": f"encoder.layers.{i}.{t}.{p}" for o, t in table["layer"].items() for p in wb}
    return names


def _pos_conv_weight(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """The positional conv's weight, undoing weight norm (dim 2) in its old or parametrized form."""
    if prefix + "weight" in state:
        return state[prefix + "weight"]
    g = state.get(prefix + "weight_g", state.get(prefix + "parametrizations.weight.original0"))
    v = state.get(prefix + "weight_v", state.get(prefix + "parametrizations.weight.original1"))
    if g is None or v is None:
        raise KeyError(prefix + "weight")
    return v * (g / v.norm(dim=(0, 1), keepdim=True))


def _build(dims: HubertDims, state: dict[str, torch.Tensor], fmt: str, source: Path) -> HubertEncoder:
    """The encoder holding the checkpoint's tensors (as float32; built on the meta device, so no second copy)."""
    with torch.device("meta"):
        model = HubertEncoder(dims)
    try:
        ours = {k: state[v] for k, v in _names(fmt, dims).items()}
        ours["pos_conv.weight"] = _pos_conv_weight(state, _NAMES[fmt]["pos_conv"] + ".")
        model.load_state_dict({k: v.float() for k, v in ours.items()}, assign=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: not a HuBERT-base/ContentVec checkpoint ({str(exc)[:200]}); "
                              "pass RVC's hubert_base.pt or a transformers HubertModel folder") from exc
    return model.eval()


class _LenientUnpickler(pickle.Unpickler):
    """Reads fairseq checkpoints without fairseq: classes of absent modules become empty placeholders."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (types.SimpleNamespace,), {"__setstate__": lambda self, s: self.__dict__.update(
                s if isinstance(s, dict) else {})})


_lenient_pickle = types.SimpleNamespace(Unpickler=_LenientUnpickler, load=pickle.load, __name__="lenient_pickle")


def _get(cfg: Any, key: str, default: Any) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)
    return default if value is None else value


def load_fairseq(path: Path) -> HubertEncoder:
    """A fairseq HuBERT/ContentVec `.pt` (as RVC's hubert_base.pt): {'model': state_dict, 'cfg' or 'args': ...}."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_lenient_pickle)
        state = ckpt["model"]
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable fairseq checkpoint ({exc.__class__.__name__}: {exc}); "
                              "pass RVC's hubert_base.pt") from exc
    cfg = ckpt.get("cfg") or {}
    model_cfg = _get(cfg, "model", None) or ckpt.get("args") or {}
    task_cfg = _get(cfg, "task", None) or ckpt.get("args") or {}
    if _get(model_cfg, "layer_norm_first", False) or _get(model_cfg, "extractor_mode", "default") != "default":
        raise CheckpointError(f"{path}: a pre-norm (HuBERT-large style) checkpoint; only base/ContentVec is supported")
    try:
        conv_spec = _get(model_cfg, "conv_feature_layers", None)
        conv = eval(conv_spec, {"__builtins__": {}}) if isinstance(conv_spec, str) else STANDARD_CONV  # noqa: S307
        layers = 1 + max(int(m[1]) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
        embed = state["post_extract_proj.weight"].shape[0]
        dims = HubertDims(
            conv=[tuple(c) for c in conv], embed_dim=embed, ffn_dim=state["encoder.layers.0.fc1.weight"].shape[0],
            heads=_get(model_cfg, "encoder_attention_heads", embed // 64), layers=layers,
            pos_kernel=_get(model_cfg, "conv_pos", 128), pos_groups=_get(model_cfg, "conv_pos_groups", 16),
            final_dim=state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 0,
            normalize=bool(_get(task_cfg, "normalize", False)))
    except (KeyError, ValueError, TypeError, SyntaxError) as exc:
        raise CheckpointError(f"{path}: not a HuBERT-base/ContentVec checkpoint ({exc.__class__.__name__}: {exc}); "
                              "pass RVC's hubert_base.pt") from exc
    return _build(dims, state, "fairseq", path)


def load_huggingface(folder: Path) -> HubertEncoder:
    """A transformers HubertModel folder (config.json + model.safetensors or pytorch_model.bin)."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
        if (folder / "model.safetensors").is_file():
            from safetensors.torch import load_file

            state = load_file(str(folder / "model.safetensors"))
        else:
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{folder}: not a readable Hugging Face HuBERT folder ({exc}); it needs config.json "
                              "and model.safetensors or pytorch_model.bin") from exc
    state = {k.removeprefix("hubert."): v for k, v in state.items()}
    if cfg.get("do_stable_layer_norm") or cfg.get("feat_extract_norm", "group") != "group":
        raise CheckpointError(f"{folder}: a pre-norm (HuBERT-large style) model; only base/ContentVec is supported")
    dims = HubertDims(
        conv=list(zip(cfg["conv_dim"], cfg["conv_kernel"], cfg["conv_stride"], strict=True)),
        embed_dim=cfg["hidden_size"],
        ffn_dim=cfg["intermediate_size"], heads=cfg["num_attention_heads"], layers=cfg["num_hidden_layers"],
        pos_kernel=cfg["num_conv_pos_embeddings"], pos_groups=cfg["num_conv_pos_embedding_groups"],
        final_dim=state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 0)
    return _build(dims, state, "huggingface", folder)


def load_hubert(path: str | Path) -> HubertEncoder:
    """A HuBERT/ContentVec from a local fairseq `.pt` file or a Hugging Face folder; never downloads."""
    path = Path(path)
    if path.is_dir():
        return load_huggingface(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: HuBERT checkpoint not found; pass --checkpoint a local hubert_base.pt "
                              "or a Hugging Face HubertModel folder")
    return load_fairseq(path)
