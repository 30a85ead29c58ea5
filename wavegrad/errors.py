"""Exception types for user mistakes; the CLIs print their message and exit with status 2."""


class WaveGradError(Exception):
    """A user-facing error: the message names the file and the fix."""


class ConfigError(WaveGradError):
    """A config file is missing, malformed or inconsistent."""


class AudioError(WaveGradError):
    """An audio or mel file is unreadable, empty, or of the wrong rate or shape."""


class CheckpointError(WaveGradError):
    """A checkpoint is missing, unreadable, foreign, or does not match its config."""


class ScheduleError(WaveGradError):
    """A noise schedule is malformed (not 1-D, empty, non-finite, or beta outside (0, 1))."""
