"""RVC-style voice conversion front end whose output is a mel spectrogram that WaveGrad renders."""

__version__ = "0.1.0"
