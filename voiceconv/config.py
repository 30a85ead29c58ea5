"""The experiment folder `<logs>/<exp>/`: every path in one object, and the recorded choices (bound vocoder audio)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from wavegrad.atomic import atomic_write
from wavegrad.config import DataConfig, load_config
from wavegrad.errors import ConfigError
from wavegrad.paths import LOGS_HELP, logs_root

CONFIG_NAME = "experiment.yaml"
DEFAULT_VOCODER = "small_16k"  # the shipped vocoder: its config (bound by default) and its weights share the name
DEFAULT_SCHEDULE = "6iters"  # the shipped schedule searched for it
CHECKOUT = Path(__file__).resolve().parent.parent  # a source checkout: bundled voices, filelists (not in a wheel)


def perturbed_features(path: Path) -> Path:
    """The perturbed twin of a content-feature folder or file: 3_feature<D>[/<stem>.npy] ->
    3_feature<D>_perturbed[/<stem>.npy]."""
    if path.suffix == ".npy":
        return perturbed_features(path.parent) / path.name
    return path.with_name(f"{path.name}_perturbed")


def pitch_shifted_mels(mel_dir: Path, semitones: int) -> Path:
    """The folder of the mel targets of segments resynthesised `semitones` away: 4_mel -> 4_mel_pitch<+-N>."""
    return mel_dir.with_name(f"{mel_dir.name}_pitch{semitones:+d}") if semitones else mel_dir


@dataclasses.dataclass
class PreprocessSettings:
    """RVC's preprocessing numbers (reference notes, section 1); times in ms or s as named."""

    highpass_hz: float = 48.0
    highpass_order: int = 5
    threshold_db: float = -42.0
    min_length_ms: int = 1500
    min_interval_ms: int = 400
    hop_ms: int = 15
    max_sil_kept_ms: int = 500
    segment_s: float = 3.7
    overlap_s: float = 0.3
    peak: float = 0.9
    alpha: float = 0.75
    max_peak: float = 2.5  # segments louder than this are dropped
    min_segment_ms: int = 300  # shorter segments are dropped; a file left with none is reported too short


@dataclasses.dataclass
class Source:
    """One input folder and the speaker id its segments get."""

    input: str
    speaker_id: int


@dataclasses.dataclass
class ExperimentConfig:
    """What an experiment was made with; written to `<exp>/experiment.yaml` and checked on every step."""

    name: str
    vocoder_config: str  # the file the audio config was bound from (informative)
    audio: DataConfig  # the bound vocoder audio config: mel targets and 0_gt_wavs follow it
    preprocess: PreprocessSettings = dataclasses.field(default_factory=PreprocessSettings)
    sources: list[Source] = dataclasses.field(default_factory=list)
    f0_method: str | None = None
    encoder: str | None = None  # "whisper" or "hubert"
    encoder_version: str | None = None  # "v1"/"v2" for hubert, the model name for whisper
    encoder_checkpoint: str | None = None
    feature_dim: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> ExperimentConfig:
        try:
            data = dict(data)
            data["audio"] = DataConfig(**data["audio"])
            data["preprocess"] = PreprocessSettings(**data.get("preprocess", {}))
            data["sources"] = [Source(**s) for s in data.get("sources", [])]
            return cls(**data)
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"{source}: malformed experiment config ({exc}); "
                              "delete it and run preprocess again") from exc


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Paths of one experiment (RVC's layout plus the mel targets).

    0_gt_wavs/<stem>.wav           float32 segment at the vocoder's sample rate
    1_16k_wavs/<stem>.wav          the same segment at 16 kHz
    2a_f0/<stem>.wav.npy           coarse pitch, int 1..255, 100 frames/s
    2b-f0nsf/<stem>.wav.npy        f0 in Hz (0 = unvoiced), float32, 100 frames/s
    3_feature<D>/<stem>.npy        content features [frames, D] float32, 50 frames/s
    4_mel/<stem>.npy               log10 mel target [n_mels, samples // hop] by wavegrad's MelSpectrogram
    4_mel_pitch<+-N>/<stem>.npy    the same, of the segment resynthesised N semitones higher or lower (optional)
    filelist.txt                   RVC lines `gt.wav|feat.npy|2a.npy|2b.npy|spk` (`gt.wav|feat.npy|spk` without pitch)
    experiment.yaml                ExperimentConfig
    manifests/<spk>_<idx0>.json    segments written per input file (preprocess resumes by these)
    """

    root: Path

    @classmethod
    def at(cls, name: str, logs_dir: str | Path | None = None) -> Experiment:
        """The experiment `name` under `logs_dir` (default: `wavegrad.paths.logs_root()`)."""
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"experiment name {name!r} must be a plain folder name, e.g. 'my_voice'")
        return cls(Path(logs_dir or logs_root()) / name)

    @property
    def name(self) -> str:
        return self.root.name

    gt_dir = property(lambda self: self.root / "0_gt_wavs")
    wav16k_dir = property(lambda self: self.root / "1_16k_wavs")
    f0_coarse_dir = property(lambda self: self.root / "2a_f0")
    f0_hz_dir = property(lambda self: self.root / "2b-f0nsf")
    mel_dir = property(lambda self: self.root / "4_mel")
    manifest_dir = property(lambda self: self.root / "manifests")
    filelist = property(lambda self: self.root / "filelist.txt")
    config_file = property(lambda self: self.root / CONFIG_NAME)

    def feature_dir(self, dim: int, perturbed: bool = False) -> Path:
        """3_feature<D>, or with `perturbed` the features of the voice-perturbed segments (`voiceconv.perturb`)."""
        folder = self.root / f"3_feature{dim}"
        return perturbed_features(folder) if perturbed else folder

    def gt_wav(self, stem: str) -> Path:
        return self.gt_dir / f"{stem}.wav"

    def wav16k(self, stem: str) -> Path:
        return self.wav16k_dir / f"{stem}.wav"

    def f0_coarse(self, stem: str) -> Path:
        return self.f0_coarse_dir / f"{stem}.wav.npy"

    def f0_hz(self, stem: str) -> Path:
        return self.f0_hz_dir / f"{stem}.wav.npy"

    def feature(self, stem: str, dim: int, perturbed: bool = False) -> Path:
        return self.feature_dir(dim, perturbed) / f"{stem}.npy"

    def mel(self, stem: str, semitones: int = 0) -> Path:
        """The mel target, or with `semitones` that of the segment resynthesised with its pitch moved."""
        return pitch_shifted_mels(self.mel_dir, semitones) / f"{stem}.npy"

    def manifest(self, speaker_id: int, idx0: int) -> Path:
        return self.manifest_dir / f"{speaker_id}_{idx0}.json"

    def stems(self) -> list[str]:
        """Segment names present in 1_16k_wavs, sorted."""
        return sorted(p.stem for p in self.wav16k_dir.glob("*.wav")) if self.wav16k_dir.is_dir() else []

    def load_config(self) -> ExperimentConfig:
        if not self.config_file.is_file():
            raise ConfigError(f"{self.config_file}: no experiment here; "
                              f"run `voiceconv preprocess --exp {self.name}` first")
        data = yaml.safe_load(self.config_file.read_text())
        return ExperimentConfig.from_dict(data, str(self.config_file))

    def save_config(self, config: ExperimentConfig) -> None:
        """Write experiment.yaml atomically."""
        with atomic_write(self.config_file) as tmp:
            tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def bind_experiment(exp: Experiment, vocoder_config: str | Path | None,
                    default_vocoder_config: str | Path = DEFAULT_VOCODER) -> ExperimentConfig:
    """The experiment's config, created on first use with the vocoder config's audio settings.

    An existing experiment keeps its binding; a `vocoder_config` whose audio config differs is refused.
    """
    if exp.config_file.is_file():
        config = exp.load_config()
        if vocoder_config is not None:
            audio = load_config(vocoder_config).data_config
            if audio.audio_dict() != config.audio.audio_dict():
                raise ConfigError(
                    f"{vocoder_config}: audio config {audio.audio_dict()} differs from the one experiment "
                    f"'{exp.name}' is bound to ({config.vocoder_config}: {config.audio.audio_dict()}); "
                    "use a new --exp or the same vocoder config")
        return config
    path = Path(vocoder_config or default_vocoder_config)
    config = ExperimentConfig(name=exp.name, vocoder_config=str(path), audio=load_config(path).data_config)
    exp.save_config(config)
    return config


def add_experiment_arguments(parser: argparse.ArgumentParser, default_exp: str | None = None) -> None:
    """--exp (required unless `default_exp`) and --logs-dir, for every command that works in an experiment folder."""
    parser.add_argument("--exp", required=default_exp is None, default=default_exp,
                        help="experiment name: the folder <logs-dir>/<exp>" + (f" (default {default_exp})"
                                                                                if default_exp else ""))
    parser.add_argument("--logs-dir", type=Path, default=logs_root(), help=LOGS_HELP)


def open_experiment(name: str, logs_dir: str | Path | None = None) -> tuple[Experiment, ExperimentConfig]:
    """An existing experiment and its recorded config (refused when it was never preprocessed)."""
    exp = Experiment.at(name, logs_dir)
    return exp, exp.load_config()
