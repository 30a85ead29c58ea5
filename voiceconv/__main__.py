"""Command line: `voiceconv <command> ...`; each command's module parses its own flags and runs."""

from __future__ import annotations

import sys

from wavegrad.cli import run_cli

COMMANDS: dict[str, tuple[str, str]] = {
    "preprocess": ("voiceconv.preprocess", "slice and segment a speaker's recordings into an experiment (RVC 2a)"),
    "f0": ("voiceconv.pitch", "pitch of every segment: 2a_f0 (coarse) and 2b-f0nsf (Hz) (RVC 2b)"),
    "features": ("voiceconv.content", "content features, mel targets and the training filelist"),
    "prepare": ("voiceconv.prepare", "preprocess, f0, features and mel targets in one go"),
    "train": ("voiceconv.train", "train the conversion model (content + pitch + speaker -> vocoder mels)"),
    "index": ("voiceconv.index", "faiss retrieval index of the training content features"),
    "convert": ("voiceconv.convert", "convert recordings into the trained voice, rendered by WaveGrad"),
    "evaluate": ("voiceconv.evaluate", "conversion measured on held-out pairs of voices: similarity, CER, F0, RTF"),
    "one-click": ("voiceconv.oneclick", "prepare -> train -> index in one go"),
    "pitch-copies": ("voiceconv.pitch_copies", "pitch-shifted copies of a vocoder's training clips + filelist"),
    "pretrain": ("voiceconv.base", "the base model on many voices (RVC's pretrained G/D) that train fine-tunes"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("voiceconv", "RVC-style voice conversion to WaveGrad mels", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
