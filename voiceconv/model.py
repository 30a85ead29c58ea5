"""The conversion model: content features + pitch + speaker -> log10 mels in the vocoder's mel space."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .rates import CONTENT_FRAME_RATE, PITCH_FRAME_RATE

F0_MEAN_LOG = math.log(200.0)  # centre of log-f0 in Hz, so the continuous pitch input is near 0


@dataclasses.dataclass
class ConverterConfig:
    """Sizes and switches of the conversion model; presets are instances, not subclasses.

    The defaults are RVC's encoder sizes (hidden 192, filter 768, 2 heads, 6 layers, kernel 3).
    `frame_rate` is the vocoder's mel frame rate, sample_rate / hop_length (frames per second).
    """

    content_dim: int = 768
    n_mels: int = 80
    frame_rate: float = 16000 / 300
    use_pitch: bool = True
    use_speaker: bool = True  # False: speaker-agnostic, for zero-shot conversion of kNN-matched content
    content_norm: bool = False  # standardise each content dimension over the utterance (removes its offset)
    matched_mel: bool = False  # zero-shot: the input also carries the log10 mels of the matched reference frames
    speaker_film: bool = False  # the speaker row also scales and shifts both norms of every layer (AdaSpeech)
    n_speakers: int = 109
    hidden: int = 192
    filter: int = 768
    heads: int = 2
    layers: int = 6
    kernel: int = 3
    dropout: float = 0.0
    discriminator: bool = False
    disc_channels: int = 32

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConverterConfig:
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden=32, filter=64, heads=2, layers=2, disc_channels=8),
    "base": {},  # RVC's sizes
    "large": dict(hidden=384, filter=1536, heads=4, layers=12, disc_channels=64),
}


def preset(name: str, **overrides: Any) -> ConverterConfig:
    """A ConverterConfig from a named size preset (tiny, base, large) plus field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return ConverterConfig(**{**PRESETS[name], **overrides})


def resample_frames(x: torch.Tensor, src_rate: float, dst_rate: float, n_frames: int,
                    mode: str = "linear") -> torch.Tensor:
    """Resample frames [B, T, C] at `src_rate` fps to [B, n_frames, C] at `dst_rate` fps by time.

    Frame i is centred at i / rate (as the centred STFT of the mel, pyworld's f0 and the encoders'
    strided frames), so output frame j reads the source at j * src_rate / dst_rate; the source is
    held at its edges. "linear" for features, "nearest" for pitch (keeps 0 = unvoiced).
    """
    pos = torch.arange(n_frames, device=x.device, dtype=torch.float64) * (src_rate / dst_rate)
    pos = pos.clamp(0, x.shape[1] - 1)
    if mode == "nearest":
        return x[:, pos.round().long()]
    low = pos.floor().long()
    high = (low + 1).clamp(max=x.shape[1] - 1)
    frac = (pos - low).to(x.dtype)[None, :, None]
    return x[:, low] * (1 - frac) + x[:, high] * frac


def normalise_per_utterance(content: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """content [B, T, D] with each dimension of each utterance at mean 0 and standard deviation 1 over T:
    what is constant over an utterance, such as much of the speaker's voice, is taken out."""
    mean, std = content.mean(dim=1, keepdim=True), content.std(dim=1, keepdim=True, unbiased=False)
    return (content - mean) / (std + eps)


class EncoderLayer(nn.Module):
    """Post-norm transformer layer with a convolutional feed-forward (VITS/RVC style): [B, T, H]. With
    `speaker_film`, a speaker row [B, H] scales and shifts the output of both norms (conditional layer norm);
    the projection starts at zero, so that a layer loaded from a model without it renders as before."""

    def __init__(self, c: ConverterConfig):
        super().__init__()
        self.attention = nn.MultiheadAttention(c.hidden, c.heads, dropout=c.dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(c.hidden)
        self.conv1 = nn.Conv1d(c.hidden, c.filter, c.kernel, padding=c.kernel // 2)
        self.conv2 = nn.Conv1d(c.filter, c.hidden, c.kernel, padding=c.kernel // 2)
        self.norm2 = nn.LayerNorm(c.hidden)
        self.dropout = nn.Dropout(c.dropout)
        self.film = nn.Linear(c.hidden, 4 * c.hidden) if c.speaker_film and c.use_speaker else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        scale1, shift1, scale2, shift2 = (self.film(speaker)[:, None].chunk(4, -1) if self.film is not None
                                          else (0.0,) * 4)
        attended, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm1(x + self.dropout(attended)) * (1 + scale1) + shift1
        h = self.conv2(self.dropout(F.relu(self.conv1(x.transpose(1, 2))))).transpose(1, 2)
        return self.norm2(x + self.dropout(h)) * (1 + scale2) + shift2


class Converter(nn.Module):
    """content [B, Tc, D] at 50 fps, coarse pitch [B, Tp] (1..255) and f0 [B, Tp] Hz at 100 fps,
    speaker ids [B] (ignored when not `use_speaker`) -> log10 mel [B, n_mels, n_frames] at `frame_rate` fps.
    All streams start at time 0. With `matched_mel`, D = content_dim + n_mels: each content frame is followed
    by the log10 mel of the same matched reference frames (the target's timbre, `knn.ReferencePool.values`)."""

    def __init__(self, config: ConverterConfig):
        super().__init__()
        c = self.config = config
        self.content = nn.Linear(c.content_dim, c.hidden)
        if c.matched_mel:
            self.timbre = nn.Linear(c.n_mels, c.hidden)
            nn.init.zeros_(self.timbre.weight)  # starts silent: a model initialised from a base renders as the base
        if c.use_pitch:
            self.coarse = nn.Embedding(256, c.hidden)
            self.log_f0 = nn.Linear(2, c.hidden)  # (centred log f0, voiced flag)
        if c.use_speaker:
            self.speaker = nn.Embedding(c.n_speakers, c.hidden)
        self.position = nn.Conv1d(c.hidden, c.hidden, c.kernel, padding=c.kernel // 2, groups=c.hidden)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.layers))
        self.out = nn.Linear(c.hidden, c.n_mels)

    def forward(self, content: torch.Tensor, coarse: torch.Tensor | None, f0: torch.Tensor | None,
                speaker: torch.Tensor, n_frames: int) -> torch.Tensor:
        c = self.config
        if c.content_norm:  # the content part only: the matched mels carry the timbre
            words, timbre = content[..., :c.content_dim], content[..., c.content_dim:]
            content = torch.cat([normalise_per_utterance(words), timbre], -1)
        frames = resample_frames(content, CONTENT_FRAME_RATE, c.frame_rate, n_frames)
        x = self.content(frames[..., :c.content_dim])
        if c.matched_mel:
            x = x + self.timbre(frames[..., c.content_dim:])
        if c.use_pitch:
            if coarse is None or f0 is None:
                raise ValueError("this model uses pitch: pass coarse pitch and f0")
            coarse = resample_frames(coarse[..., None], PITCH_FRAME_RATE, c.frame_rate, n_frames, "nearest")[..., 0]
            f0 = resample_frames(f0[..., None].float(), PITCH_FRAME_RATE, c.frame_rate, n_frames, "nearest")[..., 0]
            voiced = (f0 > 0).to(x.dtype)
            log_f0 = (f0.clamp_min(1.0).log() - F0_MEAN_LOG) * voiced
            x = x + self.coarse(coarse.long().clamp(0, 255)) + self.log_f0(torch.stack([log_f0, voiced], -1))
        x = x * math.sqrt(c.hidden)
        row = self.speaker(speaker) if c.use_speaker else None
        if row is not None:
            x = x + row[:, None]
        x = F.leaky_relu(x, 0.1)
        x = x + self.position(x.transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x, row)
        return self.out(x).transpose(1, 2)


class Discriminator(nn.Module):
    """Patch discriminator on mels [B, n_mels, T]: strided 2-D convs with LeakyReLU 0.2.

    Returns (adversarial logits per patch [B, P], speaker-class logits [B, n_speakers]).
    """

    def __init__(self, config: ConverterConfig):
        super().__init__()
        ch = config.disc_channels
        widths = [1, ch, ch * 2, ch * 4, ch * 4]
        self.body = nn.Sequential(*[
            module for i in range(4) for module in (
                nn.Conv2d(widths[i], widths[i + 1], 4 if i < 3 else 3, stride=2 if i < 3 else 1, padding=1),
                nn.LeakyReLU(0.2))
        ])
        self.adversarial = nn.Conv2d(widths[-1], 1, 3, padding=1)
        self.classifier = nn.Linear(widths[-1], config.n_speakers)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(mel[:, None])
        return self.adversarial(h).flatten(1), self.classifier(h.mean(dim=(2, 3)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
