"""RVC step 2b, pitch: f0 at 16 kHz with hop 160 (100 frames/s) by pm/harvest/dio/crepe/fcpe; coarse 1..255."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import io
import sys
import types
from collections.abc import Callable

import numpy as np
import torch

from wavegrad.audio import read_audio
from wavegrad.errors import AudioError, ConfigError

from .batch import BatchReport, Job, run_batch, save_npy
from .config import Experiment, ExperimentConfig
from .preprocess import add_common_arguments
from .rates import FRONTEND_RATE, PITCH_HOP

F0_MIN, F0_MAX = 50.0, 1100.0
MEL_MIN, MEL_MAX = 1127 * np.log(1 + F0_MIN / 700), 1127 * np.log(1 + F0_MAX / 700)
METHODS = ("pm", "harvest", "dio", "crepe", "crepe-tiny", "fcpe")  # crepe = torchcrepe "full", as RVC
PitchFn = Callable[[np.ndarray], np.ndarray]


def coarse_pitch(f0: np.ndarray) -> np.ndarray:
    """RVC's quantisation: f0 in Hz [frames] -> int64 in 1..255 on the mel scale; unvoiced (0 Hz) -> 1."""
    mel = 1127 * np.log(1 + np.asarray(f0, dtype=np.float64) / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - MEL_MIN) * 254 / (MEL_MAX - MEL_MIN) + 1
    mel[~voiced] = 1
    return np.rint(np.clip(mel, 1, 255)).astype(np.int64)


def _fit(f0: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad (symmetrically, as RVC pads pm) to `frames`, float32 with unvoiced = 0."""
    f0 = np.nan_to_num(np.asarray(f0, dtype=np.float32).reshape(-1))
    if len(f0) >= frames:
        return f0[:frames]
    left = (frames - len(f0)) // 2
    return np.pad(f0, (left, frames - len(f0) - left))


def _pm(audio: np.ndarray) -> np.ndarray:
    import parselmouth

    sound = parselmouth.Sound(audio.astype(np.float64), FRONTEND_RATE)
    pitch = sound.to_pitch_ac(time_step=PITCH_HOP / FRONTEND_RATE, voicing_threshold=0.6, pitch_floor=F0_MIN,
                              pitch_ceiling=F0_MAX)
    return pitch.selected_array["frequency"]


def _world(audio: np.ndarray, estimator: str) -> np.ndarray:
    import pyworld

    x = audio.astype(np.float64)
    f0, t = getattr(pyworld, estimator)(x, FRONTEND_RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX,
                                        frame_period=1000 * PITCH_HOP / FRONTEND_RATE)
    return pyworld.stonemask(x, f0, t, FRONTEND_RATE)


def import_without_torchaudio(module: str) -> types.ModuleType:
    """Import torchcrepe/torchfcpe where torchaudio is absent: they import it at module level but,
    at 16 kHz input, never call it. A stub stands in during the import only."""
    if module in sys.modules or importlib.util.find_spec("torchaudio") is not None:
        return importlib.import_module(module)
    stub, transforms = types.ModuleType("torchaudio"), types.ModuleType("torchaudio.transforms")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{module} asked for torchaudio, which is not installed; feed it 16 kHz audio")

    stub.load, transforms.Resample, stub.transforms = unavailable, unavailable, transforms
    sys.modules.update({"torchaudio": stub, "torchaudio.transforms": transforms})
    try:
        return importlib.import_module(module)
    finally:
        del sys.modules["torchaudio"], sys.modules["torchaudio.transforms"]


def _crepe(device: str, model: str) -> PitchFn:
    torchcrepe = import_without_torchaudio("torchcrepe")

    def estimate(audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(audio).float()[None].to(device)
        f0, periodicity = torchcrepe.predict(x, FRONTEND_RATE, PITCH_HOP, F0_MIN, F0_MAX, model, batch_size=512,
                                             device=device, return_periodicity=True)
        periodicity = torchcrepe.filter.median(periodicity, 3)
        f0 = torchcrepe.filter.mean(f0, 3)
        f0[periodicity < 0.1] = 0
        return f0[0].cpu().numpy()

    return estimate


def _fcpe(device: str) -> PitchFn:
    torchfcpe = import_without_torchaudio("torchfcpe")
    with contextlib.redirect_stdout(io.StringIO()):  # its loader prints INFO/WARN lines about its defaults
        model = torchfcpe.spawn_bundled_infer_model(device=device)

    def estimate(audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(audio).float()[None, :, None].to(device)
        with torch.no_grad():
            f0 = model.infer(x, sr=FRONTEND_RATE, decoder_mode="local_argmax", threshold=0.006, f0_min=F0_MIN,
                             f0_max=F0_MAX, interp_uv=False, output_interp_target_length=len(audio) // PITCH_HOP)
        return f0.reshape(-1).cpu().numpy()

    return estimate


def pitch_estimator(method: str, device: str = "cpu") -> PitchFn:
    """f0 estimator: audio [samples] at 16 kHz -> f0 in Hz [samples // 160] (10 ms frames, 0 = unvoiced).

    crepe and fcpe need their optional packages; a missing one raises ConfigError naming it.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown pitch method {method!r}; choose one of {', '.join(METHODS)}")
    builders: dict[str, Callable[[], PitchFn]] = {
        "pm": lambda: _pm, "harvest": lambda: functools.partial(_world, estimator="harvest"),
        "dio": lambda: functools.partial(_world, estimator="dio"),
        "crepe": lambda: _crepe(device, "full"), "crepe-tiny": lambda: _crepe(device, "tiny"),
        "fcpe": lambda: _fcpe(device),
    }
    try:
        raw = builders[method]()
    except ModuleNotFoundError as exc:
        raise ConfigError(f"pitch method {method!r} is unavailable: module {exc.name!r} is not installed; pip install "
                          f"it (torchcrepe/torchfcpe with --no-deps, never torchaudio) or pick pm/harvest/dio") from exc

    def estimate(audio: np.ndarray) -> np.ndarray:
        return _fit(raw(np.ascontiguousarray(audio, dtype=np.float32)), len(audio) // PITCH_HOP)

    return estimate


class PitchWorker:
    """Worker: one 1_16k_wavs segment -> 2a_f0 (coarse) and 2b-f0nsf (Hz)."""

    def __init__(self, exp: Experiment, method: str):
        self.exp, self.estimate = exp, pitch_estimator(method)

    def __call__(self, job: Job) -> None:
        audio, rate = read_audio(self.exp.wav16k(job.name))
        if rate != FRONTEND_RATE or audio.size < PITCH_HOP:
            raise AudioError(f"{self.exp.wav16k(job.name)}: needs at least {PITCH_HOP} samples at 16 kHz; "
                             "delete it and run preprocess again")
        f0 = self.estimate(audio)
        save_npy(self.exp.f0_hz(job.name), f0.astype(np.float32))
        save_npy(self.exp.f0_coarse(job.name), coarse_pitch(f0))


def extract_pitch(exp: Experiment, config: ExperimentConfig, method: str, processes: int = 1,
                  progress: bool = True) -> BatchReport:
    """Pitch of every segment with `method`; resumable. Switching method needs the old outputs deleted."""
    if config.f0_method not in (None, method) and any(exp.f0_hz_dir.glob("*.npy")):
        raise ConfigError(f"{exp.f0_hz_dir}: made with pitch method {config.f0_method!r}; delete "
                          f"{exp.f0_coarse_dir.name} and {exp.f0_hz_dir.name} to switch to {method!r}")
    pitch_estimator(method)  # refuse an unavailable method before starting workers
    config.f0_method = method
    exp.save_config(config)
    jobs = [Job(stem, (exp.f0_coarse(stem), exp.f0_hz(stem))) for stem in exp.stems()]
    return run_batch(f"f0 ({method})", jobs, functools.partial(PitchWorker, exp, method), processes, progress)


def add_method_argument(parser: argparse.ArgumentParser, extra_help: str = "") -> None:
    """`--f0-method` (old spelling `--method` still accepted), the same in f0, prepare, one-click and convert."""
    parser.add_argument("--f0-method", "--method", dest="f0_method", choices=METHODS, default="harvest",
                        metavar="METHOD", help=f"pitch estimator: {', '.join(METHODS)} (default harvest){extra_help}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_method_argument(parser)


def main(args: argparse.Namespace) -> int:
    exp = Experiment.at(args.exp, args.logs_dir)
    print(extract_pitch(exp, exp.load_config(), args.f0_method, args.processes).summary())
    return 0
