"""WaveGrad diffusion vocoder: mel spectrogram -> waveform, with any noise schedule."""

from .audio import MelSpectrogram, load_audio, mel_spectrogram, save_audio
from .checkpoint import load_model, save_checkpoint
from .config import Config, load_config
from .errors import AudioError, CheckpointError, ConfigError, ScheduleError, WaveGradError
from .inference import synthesize
from .model import WaveGrad
from .schedule import fibonacci_betas, linear_betas, load_schedule, save_schedule

__version__ = "0.1.0"

__all__ = [
    "AudioError", "CheckpointError", "Config", "ConfigError", "MelSpectrogram", "ScheduleError", "WaveGrad",
    "WaveGradError", "fibonacci_betas", "linear_betas", "load_audio", "load_config", "load_model",
    "load_schedule", "mel_spectrogram", "save_audio", "save_checkpoint", "save_schedule", "synthesize",
]
