"""Typed configuration: dataclasses loaded from YAML or JSON (the reference's default.json loads unchanged)."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from .assets import resolve_asset, shipped_names
from .errors import ConfigError, WaveGradError
from .paths import beside

PRIORS = ("standard", "energy")  # see wavegrad.prior
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip container; a legacy (pickle) torch.save
DEFAULT_BETAS_RANGE = (1e-6, 0.01)  # the reference's: linear training/test schedules and the search grid
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # training autocast choices (`device.autocast_dtype`)


@dataclasses.dataclass
class NoiseScheduleConfig:
    """A linear schedule: `n_iter` betas from `betas_range[0]` to `betas_range[1]`."""

    n_iter: int = 1000
    betas_range: tuple[float, float] = DEFAULT_BETAS_RANGE


@dataclasses.dataclass
class ModelConfig:
    """Network sizes; defaults are WaveGrad base (15,810,401 parameters with 80 mels)."""

    factors: list[int] = dataclasses.field(default_factory=lambda: [5, 5, 3, 2, 2])
    upsampling_preconv_out_channels: int = 768
    upsampling_out_channels: list[int] = dataclasses.field(default_factory=lambda: [512, 512, 256, 128, 128])
    upsampling_dilations: list[list[int]] = dataclasses.field(
        default_factory=lambda: [[1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 4, 8], [1, 2, 4, 8], [1, 2, 4, 8]]
    )
    downsampling_preconv_out_channels: int = 32
    downsampling_out_channels: list[int] = dataclasses.field(default_factory=lambda: [128, 128, 256, 512])
    downsampling_dilations: list[list[int]] = dataclasses.field(
        default_factory=lambda: [[1, 2, 4], [1, 2, 4], [1, 2, 4], [1, 2, 4]]
    )
    # "sinusoidal": the paper's embedding of the noise level over channels, and the reference implementation's
    # since its commit "fixed PE" (911ddd2, 2020-11-20); "ivanvovk": the reference's before its commit 2ecf360
    # (2020-10-24): level + time-position encoding / 5000.
    noise_level_encoding: str = "sinusoidal"
    # "standard": N(0, I) noise (the reference); "energy": PriorGrad's per-frame std from the mel's energy.
    prior: str = "standard"


@dataclasses.dataclass
class DataConfig:
    """Audio and mel settings: the mel contract shared with the voice-conversion front end."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 300
    f_min: float = 80.0
    f_max: float = 8000.0
    n_mels: int = 80
    mel_floor: float = 1e-5  # power floor before log10, so digital silence is -5, not -inf

    def audio_dict(self) -> dict[str, Any]:
        """The fields that define the mel; two models are mel-compatible when these are equal."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrainingConfig:
    """The training recipe; defaults follow the reference implementation."""

    logdir: str = "logs/default"
    continue_training: bool = False
    train_filelist_path: str = "filelists/train.txt"
    test_filelist_path: str = "filelists/test.txt"
    batch_size: int = 96
    segment_length: int = 7200
    lr: float = 1e-3
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip_threshold: float = 1.0
    warmup_steps: int = 0  # LR ramps linearly up over Adam's first this many updates (e.g. 500 for --init-from runs)
    lr_scheduler: str = "step"  # "step" (StepLR) or "exponential"
    scheduler_step_size: int = 1
    scheduler_gamma: float = 0.9
    n_epoch: int = 100000000
    max_steps: int = 0  # 0 = no step limit
    max_cpu_seconds: float = 0.0  # 0 = no limit; training CPU time of the process, carried across resumes
    n_samples_to_test: int = 4
    test_interval: int = 1  # epochs between evaluations
    checkpoint_interval: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 5
    log_interval: int = 10
    use_fp16: bool = True
    precision: str = "auto"  # one of PRECISIONS: "auto" is fp16 on CUDA when use_fp16, else fp32
    max_nonfinite_steps: int = 100  # consecutive skipped steps before training stops
    num_workers: int = 2
    seed: int = 1234
    ema_decay: float = 0.0  # 0 = no EMA; else an EMA of the weights (e.g. 0.999) is kept and used for rendering
    mrstft_loss_weight: float = 0.0  # FreGrad's auxiliary multi-resolution STFT loss on the noise (e.g. 0.1)
    pitch_up_semitones: float = 0.0  # segments sped up by 0 to this many semitones (data.SegmentDataset)
    pitch_up_probability: float = 0.0  # share of the training segments sped up; 0 = no augmentation
    training_noise_schedule: NoiseScheduleConfig = dataclasses.field(default_factory=NoiseScheduleConfig)
    test_noise_schedule: NoiseScheduleConfig = dataclasses.field(
        default_factory=lambda: NoiseScheduleConfig(n_iter=50)
    )


@dataclasses.dataclass
class DistConfig:
    """The reference's `dist_config` section, accepted and not used: torchrun (runs/train.sh) sets
    MASTER_ADDR/MASTER_PORT. (The reference's own default port, "600010", is not a valid TCP port.)"""

    MASTER_ADDR: str = "localhost"
    MASTER_PORT: str = "29500"


@dataclasses.dataclass
class Config:
    """The whole config, in the reference's layout (model_config, data_config, training_config, dist_config)."""

    model_config: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data_config: DataConfig = dataclasses.field(default_factory=DataConfig)
    training_config: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    dist_config: DistConfig = dataclasses.field(default_factory=DistConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


class _Loader(yaml.SafeLoader):
    """YAML loader that reads JSON-style floats such as 1e-6 as numbers (PyYAML reads them as strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.\d[\d_]*(?:[eE][-+]?\d+)?)$"),
    list("-+0123456789."),
)


def _plain(value: Any) -> Any:
    """Tuples become lists so that YAML/JSON dumps stay plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str, source: str) -> Any:
    """Build dataclass `cls` from a mapping, refusing unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} in '{where}'; valid keys are {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value, f"{where}.{name}", source)
        elif hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif hint is str and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # MASTER_PORT: 29500
        elif typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            value = tuple(float(v) for v in value)
        expected = typing.get_origin(hint) or hint
        if not isinstance(value, expected):
            raise ConfigError(f"{source}: '{where}.{name}' must be of type {hint}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build and validate a Config from a (possibly partial) nested mapping."""
    data = dict(data or {})
    model = dict(data.get("model_config", {}))
    model.pop("noise_schedule", None)  # some reference versions copy the training schedule here
    data["model_config"] = model
    config = _build(Config, data, "config", source)
    validate(config, source)
    return config


def read_text(path: Path, what: str, fix: str, error: type[WaveGradError] = ConfigError) -> str:
    """The UTF-8 text of a `what` file; `error` ("{path}: ...; {fix}") when it is unreadable or binary."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror}); {fix}") from exc
    if raw.startswith(CHECKPOINT_MAGIC):
        raise error(f"{path}: looks like a PyTorch checkpoint, not a {what}; {fix}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (binary data at byte {exc.start}), not a {what}; {fix}") from exc


def load_config(path: str | Path) -> Config:
    """Read a YAML or JSON config file, or a shipped one by name ("small_16k"), into a validated Config.

    Its filelist paths resolve against the config's folder (see `paths.beside`).
    """
    path = resolve_asset(path, "config")
    text = read_text(path, "config", f"pass a YAML/JSON config or a shipped name ({shipped_names('config')})")
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON ({exc.__class__.__name__}); fix the syntax") from exc
    return absolute_filelists(config_from_dict(data, str(path)), path)


def absolute_filelists(config: Config, named_in: str | Path) -> Config:
    """`config` with its existing filelist paths made absolute, relative ones resolved by `paths.beside`
    against the file `named_in`, so that a run's saved config works from any folder."""
    t = config.training_config
    for key in ("train_filelist_path", "test_filelist_path"):
        found = beside(getattr(t, key), named_in)
        if found.exists():
            setattr(t, key, str(found.resolve()))
    return config


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _check(condition: bool, source: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{source}: {message}")


def validate(config: Config, source: str = "<config>") -> None:
    """Refuse inconsistent configs before anything is built; the message says which numbers disagree."""
    m, d, t = config.model_config, config.data_config, config.training_config
    product = math.prod(m.factors)
    _check(
        product == d.hop_length,
        source,
        f"the upsampling factors {m.factors} multiply to {product}, but hop_length is {d.hop_length}; "
        "they must be equal",
    )
    _check(
        len(m.upsampling_out_channels) == len(m.factors) == len(m.upsampling_dilations),
        source,
        f"factors ({len(m.factors)}), upsampling_out_channels ({len(m.upsampling_out_channels)}) and "
        f"upsampling_dilations ({len(m.upsampling_dilations)}) must have the same length",
    )
    _check(
        len(m.downsampling_out_channels) == len(m.factors) - 1 == len(m.downsampling_dilations),
        source,
        f"downsampling_out_channels ({len(m.downsampling_out_channels)}) and downsampling_dilations "
        f"({len(m.downsampling_dilations)}) must have one entry fewer than factors ({len(m.factors)})",
    )
    _check(
        all(len(dil) == 4 for dil in m.upsampling_dilations),
        source,
        f"each upsampling_dilations entry needs 4 dilations, got {m.upsampling_dilations}",
    )
    _check(m.noise_level_encoding in ("sinusoidal", "ivanvovk"), source,
           f"noise_level_encoding must be 'sinusoidal' or 'ivanvovk', got {m.noise_level_encoding!r}")
    _check(m.prior in PRIORS, source, f"prior must be one of {list(PRIORS)}, got {m.prior!r}")
    _check(0 <= t.ema_decay < 1, source, f"ema_decay must be in [0, 1), got {t.ema_decay}")
    _check(t.mrstft_loss_weight >= 0, source, f"mrstft_loss_weight must be >= 0, got {t.mrstft_loss_weight}")
    _check(0 <= t.pitch_up_semitones <= 24, source,
           f"pitch_up_semitones must be in [0, 24], got {t.pitch_up_semitones}")
    _check(0 <= t.pitch_up_probability <= 1, source,
           f"pitch_up_probability must be in [0, 1], got {t.pitch_up_probability}")
    _check(d.win_length <= d.n_fft, source, f"win_length {d.win_length} exceeds n_fft {d.n_fft}")
    _check(
        0 <= d.f_min < d.f_max <= d.sample_rate / 2,
        source,
        f"need 0 <= f_min ({d.f_min}) < f_max ({d.f_max}) <= sample_rate/2 ({d.sample_rate / 2})",
    )
    _check(d.mel_floor > 0, source, f"mel_floor must be > 0, got {d.mel_floor}")
    _check(
        t.segment_length % d.hop_length == 0,
        source,
        f"segment_length {t.segment_length} is not a multiple of hop_length {d.hop_length}",
    )
    _check(t.warmup_steps >= 0, source, f"warmup_steps must be >= 0, got {t.warmup_steps}")
    _check(t.lr_scheduler in ("step", "exponential"), source,
           f"lr_scheduler must be 'step' or 'exponential', got {t.lr_scheduler!r}")
    _check(t.precision in PRECISIONS, source, f"precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    for name in ("training_noise_schedule", "test_noise_schedule"):
        sched = getattr(t, name)
        lo, hi = sched.betas_range
        _check(sched.n_iter >= 1, source, f"{name}.n_iter must be >= 1, got {sched.n_iter}")
        _check(0 < lo <= hi < 1, source, f"{name}.betas_range must satisfy 0 < low <= high < 1, got {[lo, hi]}")
