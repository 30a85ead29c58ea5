"""Training data: the experiment filelist read into aligned items, length buckets and collated batches."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from wavegrad.config import DataConfig
from wavegrad.errors import WaveGradError

if TYPE_CHECKING:
    from .knn import MatchKeys


@dataclasses.dataclass
class Item:
    """One training segment: content [Tc, D] at 50 fps, coarse/f0 [Tp] at 100 fps (None without pitch),
    target mel [n_mels, frames] at the vocoder frame rate, speaker id."""

    content: torch.Tensor
    coarse: torch.Tensor | None
    f0: torch.Tensor | None
    mel: torch.Tensor
    speaker: int
    name: str


class ExperimentDataset(torch.utils.data.Dataset):
    """Items of an experiment filelist, loaded once and kept in memory (segments are <= 4 s).

    Rows are read by `targets.read_filelist` (RVC's columns); the mel target of a row is
    `<mel_dir>/<stem>.npy`. Files whose mel is shorter than `min_frames` are dropped, as RVC drops short items.
    `prematch_k` > 0 replaces each item's content by its kNN match among its speaker's other items
    (`knn.prematch`, the frames compared by `match_keys`, the encoder's `ContentEncoder.match_keys`), the inputs
    of a speaker-agnostic model for zero-shot conversion; item i then reads
    `match_shares[i % len(match_shares)]` of its match blended with the rest of its own content (`index.blend`,
    as conversion blends the source's content into the matches at its index rate). Given `matched_mels` (the
    targets' mel settings), each matched frame is followed by the mean mel of its matches (`Converter`'s
    matched_mel), and each of `voice_ratios` adds a virtual voice: a copy of every item as a new speaker, its mel
    and f0 scaled in frequency by the ratio (`perturb.warp_mel`) and its content unchanged, so that only the
    matched mels tell the voices apart. `perturbed` reads the content of the voice-perturbed segments instead
    (`voiceconv features --perturbed`). Each of `pitch_shifts` (semitones) adds a copy of every original item: the
    same content, its f0 moved that far, and the mel target of the segment resynthesised at that pitch
    (`<mel_dir>_pitch<N>/<stem>.npy`, from `voiceconv features --pitch-shifted`).
    """

    def __init__(self, filelist: Path, mel_dir: Path, use_pitch: bool, min_frames: int = 8, prematch_k: int = 0,
                 perturbed: bool = False, pitch_shifts: tuple[int, ...] = (), matched_mels: DataConfig | None = None,
                 voice_ratios: tuple[float, ...] = (), match_shares: tuple[float, ...] = (1.0,),
                 match_keys: MatchKeys | None = None):
        from .config import perturbed_features
        from .targets import read_filelist

        if not Path(filelist).is_file():
            raise WaveGradError(f"{filelist}: filelist not found; run `voiceconv prepare` for this experiment")
        self.items: list[Item] = []
        for row in read_filelist(filelist):
            if use_pitch and row.f0_hz is None:
                raise WaveGradError(f"{filelist}: has no pitch columns; train with --no-pitch or run `voiceconv f0`")
            feature = perturbed_features(Path(row.feature)) if perturbed else row.feature
            if not Path(feature).is_file():
                raise WaveGradError(f"{feature}: no perturbed content features; run `voiceconv features --perturbed` "
                                    "for this experiment")
            item = Item(
                content=torch.from_numpy(np.load(feature).astype(np.float32)),
                coarse=torch.from_numpy(np.load(row.f0_coarse).astype(np.int64)) if use_pitch else None,
                f0=torch.from_numpy(np.load(row.f0_hz).astype(np.float32)) if use_pitch else None,
                mel=torch.from_numpy(np.load(Path(mel_dir) / f"{row.stem}.npy").astype(np.float32)),
                speaker=row.speaker_id, name=row.stem)
            if item.mel.shape[1] >= min_frames and torch.isfinite(item.content).all():
                self.items.append(item)
        if not self.items:
            raise WaveGradError(f"{filelist}: no usable items (all shorter than {min_frames} mel frames)")
        if matched_mels is not None and not prematch_k:
            raise WaveGradError("matched mels come with kNN prematching: train with --zero-shot")
        if voice_ratios and matched_mels is None:
            raise WaveGradError("virtual voices differ only in their matched mels: train with --matched-mel")
        if not match_shares or not all(0.0 <= share <= 1.0 for share in match_shares):
            raise WaveGradError(f"match shares {match_shares}: give one or more shares between 0 and 1")
        if match_shares != (1.0,) and not prematch_k:
            raise WaveGradError("match shares blend kNN-prematched content: train with --zero-shot")
        if pitch_shifts and not use_pitch:
            raise WaveGradError(f"{filelist}: pitch-shifted targets need a pitch-conditioned model; drop --no-pitch")
        originals, voices = list(self.items), self.speakers
        self.items += [_warped(item, ratio, matched_mels, (i + 1) * voices)
                       for i, ratio in enumerate(voice_ratios) for item in originals]
        if prematch_k:
            self._prematch(prematch_k, matched_mels, match_shares, match_keys)
        self.items += [self._shifted(item, Path(mel_dir), s) for s in pitch_shifts for item in originals]

    def _prematch(self, k: int, matched_mels: DataConfig | None, shares: tuple[float, ...],
                  keys: MatchKeys | None) -> None:
        """Replace every item's content by its kNN match among its speaker's other items, blended with its own
        by the item's share in turn of `shares`, followed by the mean mel of the matches when `matched_mels` (the
        targets' mel settings) is given."""
        from .index import blend
        from .knn import mel_at_content_rate, prematch

        contents = [item.content.numpy() for item in self.items]
        values = None if matched_mels is None else [
            np.concatenate([c, mel_at_content_rate(item.mel, matched_mels.sample_rate / matched_mels.hop_length,
                                                   len(c))], axis=1)
            for c, item in zip(contents, self.items, strict=True)]
        matched = prematch(contents, [item.speaker for item in self.items], k, values, keys)
        for i, (item, own, content) in enumerate(zip(self.items, contents, matched, strict=True)):
            d = own.shape[1]
            content[:, :d] = blend(own, content[:, :d], shares[i % len(shares)])
            item.content = torch.from_numpy(content)

    @staticmethod
    def _shifted(item: Item, mel_dir: Path, semitones: int) -> Item:
        """`item` with its f0 moved by `semitones` and the mel target of its pitch-shifted resynthesis."""
        from .config import pitch_shifted_mels
        from .pitch import coarse_pitch

        path = pitch_shifted_mels(mel_dir, semitones) / f"{item.name}.npy"
        if not path.is_file():
            raise WaveGradError(f"{path}: no pitch-shifted mel target; run `voiceconv features --pitch-shifted` "
                                "for this experiment")
        f0 = item.f0 * 2 ** (semitones / 12)
        return Item(item.content, torch.from_numpy(coarse_pitch(f0.numpy())), f0,
                    torch.from_numpy(np.load(path).astype(np.float32)), item.speaker, f"{item.name}{semitones:+d}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    @property
    def speakers(self) -> int:
        return max(item.speaker for item in self.items) + 1


def _warped(item: Item, ratio: float, audio: DataConfig, speaker_offset: int) -> Item:
    """`item` as a virtual voice: mel and f0 scaled in frequency by `ratio`, speaker id moved by `speaker_offset`."""
    from .perturb import warp_mel
    from .pitch import coarse_pitch

    f0 = None if item.f0 is None else item.f0 * ratio
    coarse = None if f0 is None else torch.from_numpy(coarse_pitch(f0.numpy()))
    return Item(item.content, coarse, f0, warp_mel(item.mel, ratio, audio), item.speaker + speaker_offset,
                f"{item.name}x{ratio:g}")


def bucket_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Index batches of similar length: sort by length, cut into batches, shuffle the batch order.

    Ties and the batch order are randomised by `generator`, so an epoch is reproducible from its seed.
    """
    jitter = torch.rand(len(lengths), generator=generator).tolist()
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], jitter[i]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _pad_to(x: torch.Tensor, length: int, edge: bool) -> torch.Tensor:
    """Pad the first axis to `length`, repeating the last row (edge) or with zeros."""
    missing = length - x.shape[0]
    if missing <= 0:
        return x[:length]
    tail = x[-1:].expand(missing, *x.shape[1:]) if edge else x.new_zeros(missing, *x.shape[1:])
    return torch.cat([x, tail])


def collate(items: list[Item]) -> dict[str, torch.Tensor]:
    """Batch items, cropping every mel to the shortest in the batch (all streams start at time 0).

    Content is edge-padded and pitch zero-padded to the longest (the model resamples by time).
    Returns content [B, Tc, D], coarse/f0 [B, Tp] (absent without pitch), mel [B, n_mels, L], speaker [B].
    """
    frames = min(item.mel.shape[1] for item in items)
    tc = max(item.content.shape[0] for item in items)
    batch = {
        "content": torch.stack([_pad_to(item.content, tc, edge=True) for item in items]),
        "mel": torch.stack([item.mel[:, :frames] for item in items]),
        "speaker": torch.tensor([item.speaker for item in items]),
    }
    if items[0].f0 is not None:
        tp = max(item.f0.shape[0] for item in items)
        batch["coarse"] = torch.stack([_pad_to(item.coarse, tp, edge=False) for item in items])
        batch["f0"] = torch.stack([_pad_to(item.f0, tp, edge=False) for item in items])
    return batch


def batches(dataset: ExperimentDataset, batch_size: int, epoch_seed: int, rank: int = 0,
            world: int = 1) -> list[dict[str, torch.Tensor]]:
    """The epoch's batches (bucketed, seeded by `epoch_seed`); rank r of `world` takes every world-th,
    and every rank gets the same number of batches (DDP steps in lockstep), so a remainder is dropped."""
    generator = torch.Generator().manual_seed(epoch_seed)
    order = bucket_batches([item.mel.shape[1] for item in dataset.items], batch_size, generator)
    if len(order) < world:
        raise WaveGradError(f"{len(order)} batches cannot feed {world} processes; lower --batch-size or use fewer GPUs")
    order = order[:len(order) // world * world]
    return [collate([dataset[i] for i in group]) for group in order[rank::world]]
