"""Conversion (`voiceconv convert`): RVC's inference pipeline with the model's mel rendered by WaveGrad."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import signal

from wavegrad.audio import audio_files
from wavegrad.inference import synthesize
from wavegrad.model import WaveGrad

from .config import DEFAULT_SCHEDULE, DEFAULT_VOCODER, PreprocessSettings
from .envelope import harmonic_quefrency, transplant_envelope
from .index import blend, index_beside, retrieve
from .knn import K, ReferencePool, knn_match, semitones_between
from .model import Converter, resample_frames
from .pitch import add_method_argument, coarse_pitch
from .preprocess import highpass
from .rates import CONTENT_FRAME_RATE, CONTENT_HOP, FRONTEND_RATE, PITCH_FRAME_RATE, PITCH_HOP

if TYPE_CHECKING:
    from .content import ContentEncoder

PitchFn = Callable[[np.ndarray], np.ndarray]  # audio [samples] at 16 kHz -> f0 Hz [samples // 160]


@dataclasses.dataclass
class ConvertOptions:
    """RVC's inference options; x_* are seconds (RVC's fp32 values: 1/6/38/41; with fp16 3/10/60/65).
    f0_up_key: semitones; None moves the source's median f0 to the target references' (zero-shot), else 0.
    index_rate: the share of the content features taken from the index (a voice model) or, zero-shot, from the
    matched reference frames (kNN-VC takes all: 1).
    k: neighbours of the index retrieval (RVC's 8); match_k: of zero-shot frame matching (kNN-VC's 4).
    envelope_rate: zero-shot, the share of the spectral envelope (`envelope.transplant_envelope`) moved from the
    converter's mel to that of the matched reference frames. seed: of the vocoder's sampling noise, so the same
    input gives the same output."""

    f0_up_key: float | None = 0.0
    f0_file: Path | None = None
    filter_radius: int = 3
    index_rate: float = 0.5  # RVC's is 0.75: here that doubled the CER of 0.5 at no gain in similarity (README)
    protect: float = 0.33
    speaker_id: int = 0
    rms_mix_rate: float = 0.25
    k: int = 8
    match_k: int = K
    envelope_rate: float = 0.75
    x_pad: float = 1.0
    x_query: float = 6.0
    x_center: float = 38.0
    x_max: float = 41.0
    seed: int = 0


def shift_f0(f0: np.ndarray, semitones: float) -> np.ndarray:
    """Transpose f0 [frames] Hz by `semitones` (factor 2^(k/12)); unvoiced frames stay 0."""
    return (f0 * 2 ** (semitones / 12)).astype(np.float32)


def read_f0_file(path: Path) -> np.ndarray:
    """Lines `time_s,f0_Hz` -> rows [n, 2]."""
    return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)


def apply_f0_file(f0: np.ndarray, table: np.ndarray, start_frame: int) -> np.ndarray:
    """Overwrite f0 [frames] from frame `start_frame` on with the table interpolated to 100 fps (absolute Hz)."""
    times = np.arange(int(round(table[:, 0].max() * PITCH_FRAME_RATE)) + 1) / PITCH_FRAME_RATE
    curve = np.interp(times, table[:, 0], table[:, 1])
    f0 = f0.copy()
    end = min(len(f0), start_frame + len(curve))
    f0[start_frame:end] = curve[:end - start_frame]
    return f0


def protect_features(feats: np.ndarray, original: np.ndarray, f0: np.ndarray, protect: float) -> np.ndarray:
    """Keep `protect` of the retrieved features where unvoiced (f0 < 1), all of them where voiced:
    feats/original [T, D], f0 [T] at the features' rate. protect >= 0.5 turns it off (RVC)."""
    if protect >= 0.5:
        return feats
    mask = np.where(f0 > 0, 1.0, protect).astype(np.float32)[:, None]
    return mask * feats + (1 - mask) * original


def cut_points(audio: np.ndarray, o: ConvertOptions) -> list[int]:
    """RVC's cuts for audio longer than x_max: near each multiple of x_center, the quietest point
    (minimum 160-sample moving sum of |x| within +-x_query), floored to a multiple of 160."""
    if len(audio) <= o.x_max * FRONTEND_RATE:
        return []
    padded = np.pad(audio, (PITCH_HOP // 2, PITCH_HOP // 2), mode="reflect")
    moving = np.convolve(np.abs(padded), np.ones(PITCH_HOP), mode="valid")[:len(audio)]
    query, centre = int(o.x_query * FRONTEND_RATE), int(o.x_center * FRONTEND_RATE)
    points = []
    for t in range(centre, len(audio), centre):
        low = max(t - query, 0)
        points.append((low + int(np.argmin(moving[low:t + query]))) // PITCH_HOP * PITCH_HOP)
    return sorted(set(p for p in points if 0 < p < len(audio)))


def rms_mix(source: np.ndarray, output: np.ndarray, out_rate: int, rate: float) -> np.ndarray:
    """RVC's loudness mix: out *= rms_in^(1 - rate) * max(rms_out, 1e-6)^(rate - 1), with RMS over
    1 s frames (0.5 s hop) interpolated to the output length. source at 16 kHz, output at `out_rate`."""
    import librosa

    def envelope(x: np.ndarray, sr: int) -> torch.Tensor:
        rms = librosa.feature.rms(y=x, frame_length=sr // 2 * 2, hop_length=sr // 2)
        return torch.nn.functional.interpolate(torch.from_numpy(rms).float()[None], size=len(output),
                                               mode="linear")[0, 0]

    gain = envelope(source, FRONTEND_RATE).pow(1 - rate) * envelope(output, out_rate).clamp_min(1e-6).pow(rate - 1)
    return output * gain.numpy()


class VoiceConverter:
    """A trained conversion model plus its pitch method, content encoder, optional index and vocoder.
    `references`: zero-shot, content is replaced by its kNN match in this pool of the target voice (the
    model must be speaker-agnostic). `settings`: the input high-pass (default: preprocessing's, so the input
    is filtered as the training data). `voices`: a multi-voice base's voice names, by speaker id."""

    def __init__(self, model: Converter, vocoder: WaveGrad, betas: torch.Tensor, encoder: ContentEncoder,
                 pitch: PitchFn | None, index: tuple[object, np.ndarray] | None = None,
                 smooth_pitch: bool = False, settings: PreprocessSettings | None = None,
                 references: ReferencePool | None = None, voices: tuple[str, ...] = ()):
        if references is not None and model.config.use_speaker:
            raise ValueError("zero-shot conversion needs a speaker-agnostic model (`voiceconv train --zero-shot`)")
        self.model, self.vocoder, self.betas, self.encoder, self.pitch = model, vocoder, betas, encoder, pitch
        self.index, self.smooth_pitch, self.references, self.voices = index, smooth_pitch, references, voices
        self.settings = settings or PreprocessSettings()
        audio = vocoder.config.data_config
        self.sample_rate, self.hop = audio.sample_rate, audio.hop_length
        self.timings: dict[str, float] = defaultdict(float)

    def _timed(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.timings[stage] += time.perf_counter() - start
        return result

    def f0(self, padded: np.ndarray, o: ConvertOptions, pad_frames: int) -> np.ndarray:
        """f0 Hz [frames] of the padded 16 kHz signal: estimated, filtered, transposed, then the f0 file."""
        f0 = self._timed("pitch", self.pitch, padded)
        if self.smooth_pitch and o.filter_radius > 2:
            f0 = signal.medfilt(f0, 3)  # RVC applies kernel 3 to harvest whatever the radius
        f0 = shift_f0(f0, self.semitones(f0, o))
        if o.f0_file is not None:
            f0 = apply_f0_file(f0, read_f0_file(o.f0_file), pad_frames)
        return f0.astype(np.float32)

    def semitones(self, f0: np.ndarray, o: ConvertOptions) -> float:
        """The transposition: o.f0_up_key, or (None) the one that moves f0's median to the references'."""
        if o.f0_up_key is not None:
            return o.f0_up_key
        if self.references is None or self.references.median_f0 is None:
            return 0.0
        return semitones_between(f0, self.references.median_f0)

    def mel(self, chunk: np.ndarray, f0: np.ndarray | None, frames: int, o: ConvertOptions) -> torch.Tensor:
        """Log10 mel [n_mels, frames] for a 16 kHz chunk [samples] with f0 [samples // 160] (None: no pitch)."""
        feats = self._timed("content", self.encoder, chunk).astype(np.float32)
        original, d = feats, feats.shape[1]
        matched_mels = None  # [T, n_mels] of the matched reference frames, when the pool keeps mels
        if self.references is not None:
            matched = self._timed("matching", knn_match, self.encoder.match_keys(feats), self.references.keys,
                                  o.match_k, values=self.references.values)
            feats = matched if self.model.config.matched_mel else matched[:, :d]
            feats[:, :d] = blend(original, feats[:, :d], o.index_rate)
            matched_mels = matched[:, d:] if self.references.mels is not None else None
        elif self.index is not None and o.index_rate > 0:
            keys = self.encoder.match_keys(feats)
            retrieved = self._timed("retrieval", retrieve, *self.index, keys, o.k)
            feats = blend(feats, feats + retrieved - keys, o.index_rate)  # the neighbours' keys at this frame's place
        use_pitch = self.model.config.use_pitch
        if use_pitch:
            per_frame = f0[::CONTENT_HOP // PITCH_HOP]  # one pitch value per content frame
            voiced = np.pad(per_frame, (0, max(0, len(feats) - len(per_frame))))[:len(feats)]
            feats[:, :d] = protect_features(feats[:, :d], original, voiced, o.protect)  # content only, not mels
        device = next(self.model.parameters()).device
        f0_t = torch.from_numpy(f0)[None].to(device) if use_pitch else None
        coarse = torch.from_numpy(coarse_pitch(f0))[None].to(device) if use_pitch else None
        with torch.inference_mode():
            mel = self._timed("model", self.model, torch.from_numpy(feats)[None].to(device), coarse, f0_t,
                              torch.tensor([o.speaker_id], device=device), frames)[0]
        if matched_mels is not None and o.envelope_rate > 0:
            mel = self.envelope(mel, matched_mels, f0, o.envelope_rate)
        return mel

    def envelope(self, mel: torch.Tensor, matched_mels: np.ndarray, f0: np.ndarray | None, rate: float) -> torch.Tensor:
        """The model's log mel [n_mels, frames] with `rate` of the envelope of the matched reference frames'
        mels [T, n_mels] at 50 fps, cut below the harmonics of f0 [T'] Hz at 100 fps (None: no pitch)."""
        frames, frame_rate, data = mel.shape[1], self.sample_rate / self.hop, self.vocoder.config.data_config
        target = resample_frames(torch.from_numpy(matched_mels)[None], CONTENT_FRAME_RATE, frame_rate, frames)[0]
        limit = None
        if f0 is not None:
            pitch = resample_frames(torch.from_numpy(f0)[None, :, None], PITCH_FRAME_RATE, frame_rate, frames,
                                    "nearest")[0, :, 0].double()
            limit = torch.where(pitch > 0, harmonic_quefrency(pitch.clamp_min(1.0), data.n_mels, data.f_min,
                                                              data.f_max), math.inf)
        return transplant_envelope(mel, target.T.to(mel), rate, limit=limit)

    def convert(self, audio: np.ndarray, o: ConvertOptions) -> tuple[np.ndarray, list[torch.Tensor]]:
        """16 kHz audio [samples] -> (waveform [round(samples * sr / FRONTEND_RATE)] at the vocoder rate,
        the mel of each chunk's kept part). Long inputs are cut at quiet points and converted piecewise."""
        audio = highpass(audio / max(1.0, np.abs(audio).max() / 0.95), FRONTEND_RATE, self.settings)
        ratio, pad = self.sample_rate / FRONTEND_RATE, int(o.x_pad * FRONTEND_RATE)
        padded = np.pad(audio, (pad, pad), mode="reflect")
        f0 = self.f0(padded, o, pad // PITCH_HOP) if self.model.config.use_pitch else None
        bounds = [0, *cut_points(audio, o), len(audio)]
        pieces, mels, generator = [], [], torch.Generator().manual_seed(o.seed)
        for s, t in zip(bounds[:-1], bounds[1:], strict=True):
            chunk = padded[s:t + 2 * pad]  # original [s - pad, t + pad)
            frames = math.ceil(len(chunk) * ratio / self.hop)
            mel = self.mel(chunk, None if f0 is None else f0[s // PITCH_HOP:(t + 2 * pad) // PITCH_HOP], frames, o)
            rendered = self._timed("vocoder", synthesize, self.vocoder, mel, self.betas, generator=generator)
            rendered = rendered.cpu().numpy()
            start, keep = round(pad * ratio), round(t * ratio) - round(s * ratio)
            pieces.append(rendered[start:start + keep])
            mels.append(mel[:, round(start / self.hop):round((start + keep) / self.hop)].cpu())
        out = np.concatenate(pieces)
        if o.rms_mix_rate != 1:
            out = rms_mix(audio, out, self.sample_rate, o.rms_mix_rate)
        peak = np.abs(out).max()
        return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32), mels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    o = ConvertOptions()
    parser.add_argument("--model", required=True, type=Path, help="exported model logs/<exp>/<exp>.pt (or G_<step>.pt)")
    parser.add_argument("--input", required=True, type=Path, help="audio file, or a folder of them")
    parser.add_argument("--output", type=Path, help="wav file, or folder for a folder input "
                        "(default: <input>_converted.wav / <input>_converted/)")
    parser.add_argument("--vocoder-checkpoint", type=Path, default=Path(DEFAULT_VOCODER),
                        help="WaveGrad checkpoint or exported file, or a shipped vocoder (default: %(default)s)")
    parser.add_argument("--schedule", type=Path, default=Path(DEFAULT_SCHEDULE),
                        help="noise schedule: betas .pt/.npy, or a shipped name (default: %(default)s)")
    parser.add_argument("--index", type=Path, help="retrieval index (default: the added_IVF*.index of the experiment "
                        "folder holding --model, when there is one)")
    parser.add_argument("--target-refs", type=Path, metavar="DIR",
                        help="zero-shot: a folder of the target voice's recordings (30 s or more), matched frame by "
                             "frame (kNN-VC); needs a model trained with --zero-shot")
    parser.add_argument("--match-k", type=int, default=o.match_k, help="neighbours averaged per frame (zero-shot)")
    parser.add_argument("--envelope-rate", type=float,
                        help=f"zero-shot: share of the spectral envelope taken from the matched reference frames "
                             f"(0..1, default {o.envelope_rate}; the pitch and loudness stay the converter's)")
    add_method_argument(parser)
    parser.add_argument("--f0-up-key", type=float, help="transpose, semitones (default 0; with --target-refs: "
                        "from the source's median f0 to the references')")
    parser.add_argument("--f0-file", type=Path, help="lines time_s,f0_Hz replacing the estimated pitch")
    parser.add_argument("--filter-radius", type=int, default=o.filter_radius, help=">2: median-filter harvest f0")
    parser.add_argument("--index-rate", type=float, default=o.index_rate,
                        help="share of retrieved features (with --target-refs: of the matched reference frames)")
    parser.add_argument("--protect", type=float, default=o.protect, help="unvoiced feature protection (0.5 = off)")
    parser.add_argument("--speaker-id", type=int, default=o.speaker_id)
    parser.add_argument("--rms-mix-rate", type=float, default=o.rms_mix_rate, help="1 = keep the output loudness")
    parser.add_argument("--encoder-checkpoint", type=Path, help="content encoder weights (default: as in training)")
    for name in ("x_pad", "x_query", "x_center", "x_max"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(o, name), help="seconds")
    parser.add_argument("--seed", type=int, default=o.seed, help="seed of the vocoder's sampling noise")
    parser.add_argument("--save-mel", action="store_true", help="also write <output>.npy mels for wavegrad inference")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")


def _inputs_outputs(source: Path, output: Path | None) -> list[tuple[Path, Path]]:
    if source.is_dir():
        out_dir = output or source.with_name(f"{source.name}_converted")
        return [(p, out_dir / f"{p.stem}.wav") for p in audio_files(source)]
    return [(source, output or source.with_name(f"{source.stem}_converted.wav"))]


def load_voice_converter(model_path: str | Path, vocoder: str | Path = DEFAULT_VOCODER,
                         schedule: str | Path = DEFAULT_SCHEDULE, f0_method: str = "harvest",
                         index: str | Path | None = None, target_refs: str | Path | None = None,
                         encoder_checkpoint: str | Path | None = None, device: str | None = None) -> VoiceConverter:
    """A VoiceConverter from files, as `voiceconv convert` builds it: the conversion model, the vocoder (a file
    or a shipped name) and schedule, the content encoder it was trained with, the pitch method, and either a
    retrieval index or (zero-shot) a folder of the target's recordings; mismatches give one-line errors."""
    from wavegrad.checkpoint import load_model
    from wavegrad.errors import WaveGradError
    from wavegrad.schedule import load_schedule

    from .checkpoint import check_vocoder, load_converter
    from .content import load_encoder
    from .index import load_index
    from .knn import content_rate_mels, reference_pool
    from .pitch import pitch_estimator

    if target_refs is not None and index is not None:
        raise WaveGradError("--index and --target-refs exclude each other: zero-shot matching replaces retrieval")
    model, payload = load_converter(model_path, device)
    if target_refs is not None and model.config.use_speaker:
        raise WaveGradError(f"{model_path}: has speaker embeddings, but --target-refs needs a speaker-agnostic "
                            "model; train one with `voiceconv train --zero-shot`")
    vocoder_model = load_model(vocoder, device=device)
    check_vocoder(vocoder_model.config.data_config.audio_dict(), payload["audio"], vocoder, model_path)
    info = payload["content"]
    encoder = load_encoder(info["encoder"], encoder_checkpoint or info.get("checkpoint"), info.get("version") or "v2")
    if encoder.dim != model.config.content_dim:
        raise WaveGradError(f"{model_path}: expects {model.config.content_dim}-d content features, but the "
                            f"{info['encoder']} encoder gives {encoder.dim}-d; pass the encoder it was trained with")
    pitch = pitch_estimator(f0_method, str(next(model.parameters()).device)) if model.config.use_pitch else None
    references = None
    if target_refs is not None:
        references = reference_pool(target_refs, encoder, pitch, content_rate_mels(vocoder_model.config.data_config))
    return VoiceConverter(model, vocoder_model, load_schedule(schedule), encoder, pitch,
                          None if index is None else load_index(index, encoder), smooth_pitch=f0_method == "harvest",
                          references=references, voices=tuple(payload.get("voices", ())))


def retrieval_index(args: argparse.Namespace) -> Path | None:
    """--index, else (RVC's default) the index of the experiment folder holding --model; None with --index-rate 0
    or --target-refs."""
    if args.index_rate <= 0 or args.target_refs is not None:
        return None
    if args.index is None and args.model.is_file():
        return index_beside(args.model)
    return args.index


def main(args: argparse.Namespace) -> int:
    from wavegrad.audio import load_audio, save_audio
    from wavegrad.device import set_cpu_threads
    from wavegrad.errors import WaveGradError

    set_cpu_threads()
    if args.envelope_rate is not None and (args.target_refs is None or not 0 <= args.envelope_rate <= 1):
        raise WaveGradError(f"--envelope-rate {args.envelope_rate}: give a share from 0 to 1, with --target-refs "
                            "(the envelope comes from the target's reference frames)")
    if args.envelope_rate is None:
        args.envelope_rate = ConvertOptions.envelope_rate
    converter = load_voice_converter(args.model, args.vocoder_checkpoint, args.schedule, args.f0_method,
                                     retrieval_index(args), args.target_refs, args.encoder_checkpoint, args.device)
    model = converter.model
    options = ConvertOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ConvertOptions)
                                if f.name != "k"})
    if not 0 <= options.speaker_id < model.config.n_speakers:
        raise WaveGradError(f"{args.model}: --speaker-id {options.speaker_id} is out of range; the model has "
                            f"speakers 0..{model.config.n_speakers - 1}")
    failed, seconds = [], 0.0
    for source, target in _inputs_outputs(args.input, args.output):
        try:
            audio = load_audio(source, FRONTEND_RATE).numpy()
            out, mels = converter.convert(audio, options)
        except WaveGradError as exc:
            failed.append(str(exc))
            continue
        seconds += len(audio) / FRONTEND_RATE
        save_audio(target, out, converter.sample_rate)
        if args.save_mel:
            np.save(target.with_suffix(".npy"), torch.cat(mels, dim=1).numpy())
        print(f"wrote {target} ({len(out) / converter.sample_rate:.2f} s)")
    if seconds:
        stages = ", ".join(f"{k} {v / seconds:.3f}" for k, v in converter.timings.items())
        print(f"real-time factor per stage over {seconds:.1f} s of input: {stages}; "
              f"total {sum(converter.timings.values()) / seconds:.3f}")
    for line in failed:
        print(f"error: {line}")
    return 2 if failed else 0
