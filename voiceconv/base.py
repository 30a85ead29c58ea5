"""The pretrained base (RVC's pretrained G/D): `voiceconv pretrain` trains one conversion model on many
voices, each its own speaker id, and exports `G_base.pt`/`D_base.pt`; `voiceconv train` fine-tunes from
the shipped base when it fits the experiment, the new voice starting from a fresh speaker row."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from wavegrad.assets import shipped
from wavegrad.checkpoint import newest_checkpoint, save_checkpoint
from wavegrad.config import PRECISIONS
from wavegrad.errors import WaveGradError
from wavegrad.filelist import read_filelist

from .checkpoint import read
from .config import CHECKOUT, add_experiment_arguments
from .model import ConverterConfig
from .perturb import semitone_list

BASE_NAMES = {"G": "G_base", "D": "D_base"}
KEPT = ("kind", "config", "audio", "content", "speakers", "voices", "step", "epoch", "mel_loss_per_epoch")
# What a base must share with the model it initialises (the speaker count, the speaker input and the
# discriminator may differ).
MATCHED_FIELDS = ("content_dim", "n_mels", "frame_rate", "use_pitch", "hidden", "filter", "heads", "layers", "kernel")


def export_base(run: Path, out: Path, voices: list[str]) -> list[Path]:
    """The newest G_/D_ checkpoints of a pretraining run as `out/G_base.pt`, `out/D_base.pt`: fp16 weights,
    config, audio, content encoder, speaker count and the voice names; no optimizer."""
    written = []
    for kind, name in BASE_NAMES.items():
        newest = newest_checkpoint(run, kind)
        if newest is None:
            continue
        payload = read(newest, kind)
        base = {key: payload[key] for key in KEPT if key in payload} | {"voices": voices}
        base["model"] = {k: v.half() for k, v in payload["model"].items()}
        save_checkpoint(base, out / f"{name}.pt")
        written.append(out / f"{name}.pt")
    if not written:
        raise WaveGradError(f"{run}: no G_/D_ checkpoints to export; run the pretraining first")
    return written


def adapted_base(payload: dict[str, Any], config: ConverterConfig, keep_speakers: bool = False) -> dict[str, Any]:
    """A base G payload fitted to a model `config`. Its speaker table starts every row at the mean of the
    base's trained voices: the voice being fine-tuned gets a new row, not one of the base's voices. With
    `keep_speakers` (a base trained further on its own voices) the table stays as it is. For a
    speaker-agnostic model (zero-shot) the table, with its projections into the layers, is dropped. A
    `matched_mel` or `speaker_film` model the base lacks gets its timbre input or its layers' speaker
    projections at zero, so it starts by rendering as the base."""
    state = dict(payload["model"])
    trained = payload.get("speakers")
    if not config.use_speaker:  # the speaker table and its projections into the layers
        state = {k: v for k, v in state.items() if k != "speaker.weight" and ".film." not in k}
    elif "speaker.weight" in state and trained and not keep_speakers:
        table = state["speaker.weight"].float()
        state["speaker.weight"] = table[:trained].mean(dim=0, keepdim=True).expand_as(table).clone()
    if config.matched_mel and "timbre.weight" not in state:
        state["timbre.weight"] = torch.zeros(config.hidden, config.n_mels)
        state["timbre.bias"] = torch.zeros(config.hidden)
    if config.speaker_film and config.use_speaker and "layers.0.film.weight" not in state:
        for i in range(config.layers):
            state[f"layers.{i}.film.weight"] = torch.zeros(4 * config.hidden, config.hidden)
            state[f"layers.{i}.film.bias"] = torch.zeros(4 * config.hidden)
    return {**payload, "model": state}


def fitting_base(config: dict[str, Any], audio: dict[str, Any], content_dim: int) -> tuple[Path | None, str]:
    """The shipped base G that fits a model `config` (ConverterConfig dict) on `audio` with `content_dim`-d
    features, or None, with the reason in words."""
    path = shipped("converter").get(BASE_NAMES["G"])
    if path is None:
        return None, "no base is shipped"
    base = read(path, "G")
    differs = [k for k in MATCHED_FIELDS if base["config"].get(k) != config.get(k)]
    if base["audio"] != audio:
        differs.append("vocoder audio config")
    if base["content"].get("dim") != content_dim:
        differs.append("content features")
    if differs:
        return None, f"the shipped base {path.name} differs in {', '.join(differs)}"
    return path, f"fine-tuning from the shipped base {path.name} ({len(base.get('voices', []))} voices)"


def linked_voices(run: Path, clips: list[Path]) -> list[Path]:
    """One folder of links per voice under `run/sources/`, named as the clips' parent folders, holding
    exactly those `clips` (links of clips since left out of the list are removed); the folders, sorted."""
    wanted: dict[Path, set[str]] = {}
    for clip in clips:
        folder = run / "sources" / clip.parent.name
        wanted.setdefault(folder, set()).add(clip.name)
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / clip.name
        if link.is_symlink():
            link.unlink()
        link.symlink_to(clip.resolve())
    for folder, names in wanted.items():
        for stale in (p for p in folder.iterdir() if p.is_symlink() and p.name not in names):
            stale.unlink()
    return sorted(wanted)


def bundled_voices(run: Path) -> list[Path]:
    """The bundled voices of a checkout, limited to the vocoder's training clips (filelists/train.txt), so
    that the held-out clips stay unheard (`linked_voices`). [] in an installed wheel, which bundles no audio."""
    listing = CHECKOUT / "filelists" / "train.txt"
    return linked_voices(run, read_filelist(listing)) if listing.is_file() else []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_experiment_arguments(parser, default_exp="vc_base")
    voices = parser.add_mutually_exclusive_group()
    voices.add_argument("--input", action="append", type=Path, metavar="DIR",
                        help="a voice folder, repeatable; each gets its own speaker id (default: the training clips of "
                             "every bundled voice)")
    voices.add_argument("--filelist", type=Path, help="the clips to train on, one voice per parent folder (e.g. "
                        "data/voices_full/base_train.txt from data/get_full_voices.sh); clips left out stay unheard")
    parser.add_argument("--out", type=Path, help="folder for G_base.pt and D_base.pt (default: the run folder)")
    parser.add_argument("--f0-method", default="harvest", help="pitch method of the preparation")
    parser.add_argument("--preset", default="base", help="model size")
    parser.add_argument("--total-epoch", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pitch-shifted", action="store_true",
                        help=f"also train on every segment resynthesised {semitone_list()} semitones away "
                             "(see `voiceconv train --pitch-shifted`)")
    parser.add_argument("--perturbed-content", action="store_true",
                        help="train on the content of voice-perturbed segments, so that the speaker rows carry the "
                             "voice (see `voiceconv train --perturbed-content`)")
    parser.add_argument("--speaker-film", action="store_true",
                        help="the speaker rows also condition every layer (see `voiceconv train --speaker-film`)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="see `voiceconv train --precision`")
    parser.add_argument("--init-from", type=Path, metavar="G_BASE",
                        help="train further from this base (its G_base.pt; D_base.pt beside it too) instead of from "
                             "scratch, keeping its voices' speaker rows: the --input folders must be its voices, in "
                             "its order (more clips of them, or more epochs)")


def continued_base(path: Path, voices: list[str]) -> list[str]:
    """The `voiceconv train` arguments that start a pretraining run from the base G file `path` (and the D
    file beside it, when there is one) with its speaker rows, after checking that it was trained on `voices`."""
    trained = read(path, "G").get("voices", [])
    if trained != voices:
        raise WaveGradError(f"{path}: was trained on the voices {', '.join(trained) or 'none named'}, not "
                            f"{', '.join(voices)}; give --input folders with its voices' names, in its order")
    disc = path.with_name(f"{BASE_NAMES['D']}.pt")
    return ["--pretrained-g", str(path), *(["--pretrained-d", str(disc)] * disc.is_file()), "--keep-base-speakers"]


def main(args: argparse.Namespace) -> int:
    """Prepare every voice with its own speaker id, train with the discriminator from scratch (or further from
    --init-from), export the base."""
    from . import oneclick

    run = Path(args.logs_dir) / args.exp
    voices = args.input or (linked_voices(run, read_filelist(args.filelist)) if args.filelist else bundled_voices(run))
    if not voices:
        raise WaveGradError("no voices to pretrain on: pass --input DIR for each voice (a checkout bundles "
                            "data/voices/)")
    argv = ["--exp", args.exp, "--logs-dir", str(args.logs_dir), "--f0-method", args.f0_method, "--preset",
            args.preset, "--total-epoch", str(args.total_epoch), "--batch-size", str(args.batch_size),
            "--discriminator", "--keep-checkpoints", "1", "--precision", args.precision,
            *(["--pitch-shifted"] * args.pitch_shifted), *(["--speaker-film"] * args.speaker_film),
            *(["--perturbed", "--perturbed-content"] * args.perturbed_content),
            *(continued_base(args.init_from, [folder.name for folder in voices]) if args.init_from else
              ["--from-scratch"])]
    for speaker, folder in enumerate(voices):
        argv += ["--input", str(folder), "--speaker-id", str(speaker)]
    parser = argparse.ArgumentParser()
    oneclick.add_arguments(parser)
    status = oneclick.main(parser.parse_args(argv))
    if status:
        return status
    for path in export_base(run, args.out or run, [folder.name for folder in voices]):
        print(f"wrote {path}")
    return 0
