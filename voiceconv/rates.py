"""The front end's fixed rates: 16 kHz audio in; pitch and content frame rates follow from their hops."""

from __future__ import annotations

FRONTEND_RATE = 16000  # Hz: 1_16k_wavs, the pitch and content-encoder input, conversion's working rate
PITCH_HOP = 160  # samples per pitch frame (10 ms)
CONTENT_HOP = 320  # samples per content frame (HuBERT's conv stride; 2 Whisper mel hops of 160)
PITCH_FRAME_RATE = FRONTEND_RATE / PITCH_HOP  # 100.0 pitch frames per second
CONTENT_FRAME_RATE = FRONTEND_RATE / CONTENT_HOP  # 50.0 content frames per second
