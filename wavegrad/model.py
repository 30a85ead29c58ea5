"""The WaveGrad network (Chen et al. 2020, "base" model): predicts the noise in a noisy waveform.

Inside the network, activations are [B, C, 1, T] tensors in channels-last layout, so that oneDNN
convolutions need no layout conversions (about 15% faster on CPU); parameters keep the shapes of
1-D convolutions, so checkpoints do not depend on this.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .prior import EnergyPrior

LEAKY_SLOPE = 0.2
NOISE_LEVEL_SCALE = 5000.0


class Conv(nn.Conv1d):
    """Same-length 1-D convolution with orthogonal weight init (as the reference), applied to
    [B, C, 1, T] channels-last activations."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                         dilation=dilation)
        nn.init.orthogonal_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size[0] == 1:  # one GEMM over channels (PyTorch's 1x1 conv path is slow on CPU)
            return F.linear(x.permute(0, 2, 3, 1), self.weight[:, :, 0], self.bias).permute(0, 3, 1, 2)
        return F.conv2d(x, self.weight[:, :, None], self.bias, padding=(0, self.padding[0]),
                        dilation=(1, self.dilation[0]))


def _resize(x: torch.Tensor, length: int) -> torch.Tensor:
    """Linear interpolation in time of [B, C, 1, T] to [B, C, 1, length] (the height of 1 is kept exactly)."""
    return F.interpolate(x, size=(1, length), mode="bilinear", align_corners=False)


def _modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(scale * x + shift) in one fused multiply-add."""
    return F.leaky_relu_(torch.addcmul(shift, scale, x), LEAKY_SLOPE)


class NoiseLevelEncoding(nn.Module):
    """Encodes the continuous noise level sqrt(alpha_bar) [B] as an additive term [B, C, 1, 1 or T].

    "sinusoidal" (the paper): channel pair i gets sin/cos of 5000 * level * 1e-4 ** (i / (C/2)).
    "ivanvovk" (the reference implementation): level + a sinusoidal encoding of the time position
    (at the block's sample spacing `stride`) divided by 5000.
    """

    def __init__(self, channels: int, kind: str, stride: int):
        super().__init__()
        self.channels, self.kind, self.stride = channels, kind, stride
        half = channels // 2
        self.register_buffer("frequencies", 1e-4 ** (torch.arange(half).float() / half), persistent=False)

    def forward(self, noise_level: torch.Tensor, length: int) -> torch.Tensor:
        if self.kind == "sinusoidal":
            arg = NOISE_LEVEL_SCALE * noise_level[:, None] * self.frequencies[None]
            return torch.cat([arg.sin(), arg.cos()], dim=1)[..., None, None]
        position = torch.arange(length, device=noise_level.device, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, self.channels, 2, device=noise_level.device).float()
                        * (-math.log(10000.0) / self.channels))
        arg = position * div * self.stride
        table = torch.stack([arg.sin(), arg.cos()], dim=-1).reshape(length, self.channels).t()
        return noise_level[:, None, None, None] + table[None, :, None] / NOISE_LEVEL_SCALE


class FiLM(nn.Module):
    """Feature-wise linear modulation: downsampling-branch features + noise level -> (scale, shift)."""

    def __init__(self, in_channels: int, out_channels: int, encoding: str, stride: int):
        super().__init__()
        self.input_conv = Conv(in_channels, in_channels, 3)
        self.encoding = NoiseLevelEncoding(in_channels, encoding, stride)
        self.output_conv = Conv(in_channels, 2 * out_channels, 3)  # scale and shift in one conv

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu_(self.input_conv(x), LEAKY_SLOPE) + self.encoding(noise_level, x.shape[-1])
        scale, shift = self.output_conv(h).chunk(2, dim=1)
        return scale, shift


class UBlock(nn.Module):
    """Upsampling block: [B, in, 1, T] -> [B, out, 1, T * factor], modulated by FiLM (scale, shift)."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, dilations: list[int]):
        super().__init__()
        self.factor = factor
        self.convs = nn.ModuleList(
            [Conv(in_channels, out_channels, 3, dilations[0])]
            + [Conv(out_channels, out_channels, 3, d) for d in dilations[1:]]
        )
        self.residual = Conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1] * self.factor
        h = self.convs[0](_resize(F.leaky_relu(x, LEAKY_SLOPE), length))
        h = self.convs[1](_modulate(h, scale, shift)).add_(_resize(self.residual(x), length))
        h2 = self.convs[2](_modulate(h, scale, shift))
        return h + self.convs[3](_modulate(h2, scale, shift))


class DBlock(nn.Module):
    """Downsampling block: [B, in, 1, T] -> [B, out, 1, T // factor]."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, dilations: list[int]):
        super().__init__()
        self.factor = factor
        self.convs = nn.ModuleList(
            [Conv(in_channels if i == 0 else out_channels, out_channels, 3, d) for i, d in enumerate(dilations)]
        )
        self.residual = Conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1] // self.factor
        h = _resize(x, length)
        for conv in self.convs:
            h = conv(F.leaky_relu(h, LEAKY_SLOPE))
        # 1x1 conv and time resizing commute; resizing first runs the conv at the lower rate.
        return h.add_(self.residual(_resize(x, length)))


class WaveGrad(nn.Module):
    """WaveGrad noise predictor.

    forward(mels [B, n_mels, frames] log10 mel, noisy [B, frames * hop] waveform,
    noise_level [B] sqrt(alpha_bar)) -> predicted noise [B, frames * hop].
    `prior` is None for the standard N(0, I) prior, else the EnergyPrior giving the noise std.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config  # the whole config, so that a model knows its audio settings and recipe
        model, n_mels = config.model_config, config.data_config.n_mels
        self.hop_length = math.prod(model.factors)
        self.prior = EnergyPrior(self.hop_length) if model.prior == "energy" else None
        self.mel_conv = Conv(n_mels, model.upsampling_preconv_out_channels, 3)
        up_in = [model.upsampling_preconv_out_channels] + model.upsampling_out_channels[:-1]
        self.ublocks = nn.ModuleList(
            UBlock(i, o, f, d)
            for i, o, f, d in zip(up_in, model.upsampling_out_channels, model.factors, model.upsampling_dilations,
                                  strict=True)
        )
        self.out_conv = Conv(model.upsampling_out_channels[-1], 1, 3)

        down_factors = model.factors[1:][::-1]
        self.wav_conv = Conv(1, model.downsampling_preconv_out_channels, 5)
        down_in = [model.downsampling_preconv_out_channels] + model.downsampling_out_channels[:-1]
        self.dblocks = nn.ModuleList(
            DBlock(i, o, f, d)
            for i, o, f, d in zip(down_in, model.downsampling_out_channels, down_factors, model.downsampling_dilations,
                                  strict=True)
        )
        film_in = [model.downsampling_preconv_out_channels] + model.downsampling_out_channels
        film_out = model.upsampling_out_channels[::-1]
        strides = [math.prod(down_factors[:i]) for i in range(len(film_in))]
        self.films = nn.ModuleList(
            FiLM(i, o, model.noise_level_encoding, s) for i, o, s in zip(film_in, film_out, strides, strict=True)
        )

    def prior_std(self, mels: torch.Tensor) -> torch.Tensor | None:
        """Noise std [B, frames * hop] of the prior for mels [B, n_mels, frames]; None for N(0, I)."""
        return None if self.prior is None else self.prior(mels)

    def forward(self, mels: torch.Tensor, noisy: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        h = self.wav_conv(noisy[:, None, None])
        modulations = [self.films[0](h, noise_level)]
        for dblock, film in zip(self.dblocks, self.films[1:], strict=True):
            h = dblock(h)
            modulations.append(film(h, noise_level))

        h = self.mel_conv(mels[:, :, None].contiguous(memory_format=torch.channels_last))
        for ublock, (scale, shift) in zip(self.ublocks, reversed(modulations), strict=True):
            h = ublock(h, scale, shift)
        return self.out_conv(h)[:, 0, 0]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
