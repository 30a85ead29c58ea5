"""Rendering mels to waveforms: the `synthesize` API and `wavegrad inference -c -ch -ns -m`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .audio import load_audio, mel_spectrogram, pad_to_hop, save_audio
from .checkpoint import load_model
from .device import set_cpu_threads
from .diffusion import sample
from .errors import AudioError, WaveGradError
from .filelist import read_filelist
from .model import WaveGrad
from .schedule import load_schedule, validate_betas


def synthesize(model: WaveGrad, mel: torch.Tensor, schedule: torch.Tensor | str | Path, *, clip: bool = True,
               noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Render log10 mels to waveforms in [-1, 1] at the model's sample rate.

    mel: [n_mels, frames] -> [frames * hop], or [B, n_mels, frames] -> [B, frames * hop].
    schedule: betas [n_iter] (or [B, n_iter], one per batch element), a .pt/.npy path or a shipped name.
    noise / generator: see `wavegrad.diffusion.sample`.
    """
    betas = load_schedule(schedule) if isinstance(schedule, (str, Path)) else validate_betas(schedule)
    device = next(model.parameters()).device
    batched = mel.dim() == 3
    mels = (mel if batched else mel[None]).to(device=device, dtype=torch.float32)
    audio = sample(model, mels, betas, clip=clip, noise=noise, generator=generator)
    return audio if batched else audio[0]


def copy_synthesis(model: WaveGrad, path: str | Path, betas: torch.Tensor, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A real clip rendered from its own mel, at the model's rate: (real audio [T] padded to whole hops,
    generated audio [T], seconds the rendering took)."""
    data = model.config.data_config
    audio = pad_to_hop(load_audio(path, data.sample_rate), data.hop_length)
    start = time.perf_counter()
    generated = synthesize(model, mel_spectrogram(audio, data), betas, generator=torch.Generator().manual_seed(seed))
    return audio, generated, time.perf_counter() - start


def load_mel(path: str | Path, n_mels: int) -> torch.Tensor:
    """Read a mel [n_mels, frames] from a `.pt` or `.npy` file, checking its shape."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: mel file not found; check the filelist")
    try:
        mel = torch.from_numpy(np.load(path)) if path.suffix == ".npy" else torch.load(
            path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AudioError(f"{path}: unreadable mel file ({exc.__class__.__name__}); "
                         "save a [n_mels, frames] tensor with torch.save or numpy.save") from exc
    mel = torch.as_tensor(mel).float()
    if mel.dim() == 3 and mel.shape[0] == 1:  # [1, n_mels, frames], as saved from a batch
        mel = mel[0]
    if mel.dim() != 2 or mel.shape[0] != n_mels or mel.shape[1] == 0:
        raise AudioError(f"{path}: mel has shape {tuple(mel.shape)}, expected [{n_mels}, frames] "
                         "for this model's config; compute it with the model's data_config")
    if not torch.isfinite(mel).all():
        raise AudioError(f"{path}: mel contains NaN or infinite values; recompute it (silence must be floored)")
    return mel


def render_filelist(model: WaveGrad, mel_paths: list[Path], betas: torch.Tensor, out_dir: Path | None = None,
                    verbose: bool = True) -> tuple[list[Path], list[float], list[str]]:
    """Render each mel file to `predicted_<name>.wav` (beside the mel, or in `out_dir`).

    Returns (written wavs, real-time factors, error lines); a bad file is reported and skipped.
    """
    config = model.config
    written, rtfs, errors = [], [], []
    for mel_path in tqdm(mel_paths, desc="rendering", unit="mel", disable=not verbose):
        try:
            mel = load_mel(mel_path, config.data_config.n_mels)
        except WaveGradError as exc:
            errors.append(str(exc))
            continue
        start = time.perf_counter()
        audio = synthesize(model, mel, betas)
        if audio.is_cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        rtfs.append(elapsed / (audio.numel() / config.data_config.sample_rate))
        target = (out_dir or mel_path.parent) / f"predicted_{mel_path.stem}.wav"
        save_audio(target, audio, config.data_config.sample_rate)
        written.append(target)
    return written, rtfs, errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="config file (needed for reference-format checkpoints)")
    parser.add_argument("-ch", "--checkpoint", required=True,
                        help="checkpoint_<step>.pt, an exported file, or a shipped vocoder (small_16k)")
    parser.add_argument("-ns", "--noise-schedule", required=True,
                        help="betas file (.pt/.npy) or a shipped name (6iters)")
    parser.add_argument("-m", "--mel-filelist", required=True, help="text file, one mel path per line")
    parser.add_argument("-v", "--verbose", choices=["yes", "no"], default="yes")
    parser.add_argument("--out-dir", type=Path, help="write wavs here instead of beside each mel")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")


def main(args: argparse.Namespace) -> int:
    """Render every mel in the filelist; returns 2 when any file failed, else 0."""
    set_cpu_threads()
    verbose = args.verbose == "yes"
    model = load_model(args.checkpoint, args.config, args.device)
    betas = load_schedule(args.noise_schedule)
    mel_paths = read_filelist(args.mel_filelist)
    written, rtfs, errors = render_filelist(model, mel_paths, betas, args.out_dir, verbose)
    for line in errors:
        print(f"error: {line}")
    if rtfs:
        print(f"rendered {len(written)} file(s) with {len(betas)} iterations; "
              f"real-time factor {np.mean(rtfs):.3f} ± {np.std(rtfs):.3f}")
    return 2 if errors else 0
