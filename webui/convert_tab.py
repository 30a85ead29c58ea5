"""Convert tab: a clip -> a trained voice, as `voiceconv convert` does it (same loaders, options and timings)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voiceconv.config import DEFAULT_SCHEDULE, DEFAULT_VOCODER
from voiceconv.convert import ConvertOptions, VoiceConverter, load_voice_converter
from voiceconv.rates import FRONTEND_RATE
from wavegrad.audio import load_audio, mel_spectrogram, resample, save_audio
from wavegrad.errors import AudioError, WaveGradError

from .catalog import save_settings, voice_index, voice_model
from .pictures import check_audible, mel_picture

OUTPUTS = "ui_outputs"  # <logs>/ui_outputs/<voice>/: every converted clip is kept


@dataclasses.dataclass
class Conversion:
    """One conversion: the wav written (at `sample_rate`), the mel picture (source over converted, RGB
    [H, W, 3]) and seconds per second of input for each stage (the CLI's real-time factors)."""

    wav: Path
    sample_rate: int
    audio: np.ndarray
    picture: np.ndarray
    rtf: dict[str, float]
    seconds: float


_converters: dict[tuple[Any, ...], VoiceConverter] = {}


def _stamp(path: Path | None) -> tuple[str, float] | None:
    return None if path is None else (str(path), path.stat().st_mtime if path.exists() else 0.0)


def build_converter(model_path: Path, vocoder: str, schedule: str, f0_method: str, index: Path | None,
                    target_refs: Path | None = None, device: str | None = None) -> VoiceConverter:
    """`voiceconv.convert.load_voice_converter`, cached by the files' paths and modification times (one voice
    in memory at a time)."""
    key = (_stamp(model_path), vocoder, schedule, f0_method, _stamp(index), _stamp(target_refs), device)
    if key not in _converters:
        _converters.clear()
        _converters[key] = load_voice_converter(model_path, vocoder, schedule, f0_method, index, target_refs,
                                                device=device)
    return _converters[key]


def convert(logs: Path, clip: str | Path | None, voice: str, f0_up_key: float = 0.0, f0_method: str = "harvest",
            index_rate: float = ConvertOptions.index_rate, protect: float = ConvertOptions.protect,
            rms_mix_rate: float = ConvertOptions.rms_mix_rate,
            vocoder: str = DEFAULT_VOCODER, schedule: str = DEFAULT_SCHEDULE, target_refs: str = "",
            auto_pitch: bool = True, envelope_rate: float = ConvertOptions.envelope_rate) -> Conversion:
    """Convert `clip` (any readable audio, resampled to 16 kHz) into `voice` (`<logs>/<voice>/<voice>.pt` and
    its index when present), or zero-shot into the voice of the recordings in the folder `target_refs` (with a
    voice trained with --zero-shot; `auto_pitch` moves the pitch into their range, `envelope_rate` is the share
    of their spectral envelope); writes
    `<logs>/ui_outputs/<voice>/<clip stem>_<time>.wav` at the vocoder's rate and remembers the settings in the
    voice's folder."""
    if not clip:
        raise AudioError("no clip: upload or record one first")
    if not voice:
        raise WaveGradError("no voice chosen: pick a trained voice (train one in the 'Train a voice' tab)")
    model_path = voice_model(logs, voice)
    audio = load_audio(clip, FRONTEND_RATE).numpy()
    check_audible(audio, Path(clip).name)
    refs = Path(target_refs.strip()) if target_refs and target_refs.strip() else None
    index = voice_index(logs, voice) if refs is None else None
    converter = build_converter(model_path, vocoder, schedule, f0_method, index, refs)
    key = None if refs is not None and auto_pitch else float(f0_up_key)
    options = ConvertOptions(f0_up_key=key, index_rate=float(index_rate), protect=float(protect),
                             rms_mix_rate=float(rms_mix_rate), envelope_rate=float(envelope_rate))
    converter.timings.clear()
    out, mels = converter.convert(audio, options)
    seconds = len(audio) / FRONTEND_RATE
    rtf = {stage: value / seconds for stage, value in converter.timings.items()}
    wav = logs / OUTPUTS / voice / f"{Path(clip).stem}_{time.strftime('%Y%m%d-%H%M%S')}.wav"
    save_audio(wav, out, converter.sample_rate)
    data = converter.vocoder.config.data_config
    source = mel_spectrogram(torch.from_numpy(resample(audio, FRONTEND_RATE, data.sample_rate)), data)
    picture = mel_picture({"source": source, f"converted to {voice}": torch.cat(mels, dim=1)},
                          data.hop_length / data.sample_rate)
    save_settings(logs, voice, {"f0_up_key": float(f0_up_key), "f0_method": f0_method, "index_rate": float(index_rate),
                                "protect": float(protect), "rms_mix_rate": float(rms_mix_rate), "vocoder": vocoder,
                                "schedule": schedule})
    return Conversion(wav, converter.sample_rate, out, picture, rtf, seconds)


def rtf_table(rtf: dict[str, float], seconds: float) -> str:
    """Markdown: seconds of compute per second of input for each stage, and the total."""
    rows = "\n".join(f"| {stage} | {value:.3f} |" for stage, value in rtf.items())
    return (f"Real-time factor per stage over {seconds:.1f} s of input\n\n| stage | RTF |\n|---|---|\n{rows}\n"
            f"| **total** | **{sum(rtf.values()):.3f}** |")
