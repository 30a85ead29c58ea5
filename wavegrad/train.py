"""WaveGrad training: `wavegrad train -c CONFIG [--exp NAME] [--resume]`, alone or under torchrun (DDP)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import re
import resource
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from . import distributed
from .audio import MelSpectrogram, load_audio, pad_to_hop
from .checkpoint import read_checkpoint, save_checkpoint
from .config import Config, config_from_dict, load_config, save_config
from .data import SegmentDataset, check_filelist, epoch_batches
from .device import autocast, autocast_dtype, resolve_device, set_cpu_threads
from .diffusion import sample, training_loss
from .errors import CheckpointError, WaveGradError
from .model import WaveGrad
from .plotting import plot_mels
from .schedule import linear_betas

SEED_MASK = 0x7FFFFFFFFFFFFFFF
CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)\.pt")


def checkpoints(logdir: Path) -> list[Path]:
    """`logdir/checkpoint_<step>.pt` files, oldest step first."""
    found = [(int(m[1]), p) for p in logdir.glob("checkpoint_*.pt") if (m := CHECKPOINT_NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


class Trainer:
    """One process's network, Adam, LR scheduler and GradScaler, with the step/epoch/skip counters.

    Training noise for step s on rank r comes from a generator seeded by (seed, r, s), and data
    windows from (seed, epoch, index), so a resumed run repeats an uninterrupted one exactly.
    """

    def __init__(self, config: Config, info: distributed.ProcessInfo):
        t = config.training_config
        self.config, self.info, self.device = config, info, info.device
        self.dtype = autocast_dtype(self.device, t.precision, t.use_fp16)
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.network = WaveGrad.from_config(config).to(self.device)
        self.model = distributed.wrap(self.network, info)
        self.mel = MelSpectrogram(config.data_config).to(self.device)
        self.betas = linear_betas(t.training_noise_schedule.n_iter, t.training_noise_schedule.betas_range)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=t.lr, betas=t.adam_betas)
        if t.lr_scheduler == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, t.scheduler_step_size, t.scheduler_gamma)
        else:
            self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, t.scheduler_gamma)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.step = self.epoch = self.batch_in_epoch = self.skipped = self.consecutive_skipped = 0

    def train_step(self, audio: torch.Tensor) -> tuple[float, float, bool]:
        """One optimiser step on audio [B, segment_length]: (loss, grad norm before clipping, skipped).

        A non-finite loss or gradient leaves weights, Adam moments and LR untouched; after
        `max_nonfinite_steps` such steps in a row training stops with a WaveGradError.
        """
        t = self.config.training_config
        audio = audio.to(self.device, non_blocking=True)
        generator = torch.Generator().manual_seed(hash((t.seed, self.info.rank, self.step)) & SEED_MASK)
        self.model.train()
        with torch.no_grad():
            mels = self.mel(audio)
        with autocast(self.device, self.dtype):
            loss = training_loss(self.model, mels, audio, self.betas, generator)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), t.grad_clip_threshold)
        finite = bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm))
        if finite:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.batch_in_epoch += 1
        self.consecutive_skipped = 0 if finite else self.consecutive_skipped + 1
        self.skipped += not finite
        if self.consecutive_skipped >= t.max_nonfinite_steps:
            raise WaveGradError(
                f"training stopped at step {self.step}: {self.consecutive_skipped} steps in a row had a non-finite "
                f"loss or gradient (lr {self.lr:.3g}, precision {self.dtype or 'fp32'}); lower training_config.lr "
                "(5e-4 is safer), keep grad_clip_threshold, or use precision fp32, then resume with --resume")
        return loss.item(), grad_norm.item(), not finite

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def end_epoch(self) -> None:
        """Advance the epoch counter and the LR scheduler (stepped per epoch, as the reference)."""
        self.epoch += 1
        self.batch_in_epoch = 0
        self.scheduler.step()

    def state_dict(self) -> dict:
        """The self-describing checkpoint payload (loadable with wavegrad.load_model alone)."""
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"config": self.config.to_dict(), "model": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "lr_scheduler": self.scheduler.state_dict(), "step": self.step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "skipped_steps": self.skipped, "rng": rng}

    def load_state_dict(self, payload: dict, source: str) -> None:
        """Restore a checkpoint written by `state_dict`, refusing one of another model or mel config."""
        for part in ("model_config", "data_config"):
            if payload["config"].get(part) != self.config.to_dict()[part]:
                raise CheckpointError(f"{source}: its {part} differs from the config's; resume with the config "
                                      "it was trained with, or start a new --exp")
        self.network.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.scheduler.load_state_dict(payload["lr_scheduler"])
        self.step, self.epoch, self.batch_in_epoch = payload["step"], payload["epoch"], payload["batch_in_epoch"]
        self.skipped = payload["skipped_steps"]
        rng = payload["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def save(self, logdir: Path) -> Path:
        """Write `logdir/checkpoint_<step>.pt` atomically and delete all but the newest `keep_checkpoints`."""
        path = logdir / f"checkpoint_{self.step}.pt"
        save_checkpoint(self.state_dict(), path)
        for old in checkpoints(logdir)[:-max(1, self.config.training_config.keep_checkpoints)]:
            old.unlink()
        return path

    @torch.no_grad()
    def evaluate(self, segments: torch.Tensor, clips: list[torch.Tensor]) -> tuple[dict, list[dict]]:
        """Test loss on segments [N, segment_length], and generation of each clip [samples] from its mel
        with the test schedule: (scalars, per-clip {audio, generated, mel, generated_mel})."""
        t = self.config.training_config
        self.network.eval()
        generator = torch.Generator().manual_seed(t.seed)
        losses = []
        for batch in segments.split(t.batch_size):
            batch = batch.to(self.device)
            with autocast(self.device, self.dtype):
                losses.append(training_loss(self.network, self.mel(batch), batch, self.betas, generator).item())
        betas = linear_betas(t.test_noise_schedule.n_iter, t.test_noise_schedule.betas_range)
        results, rtfs, mel_l1, wav_l1 = [], [], [], []
        for clip in clips:
            audio = pad_to_hop(clip, self.config.data_config.hop_length).to(self.device)
            mel = self.mel(audio)
            start = time.perf_counter()
            generated = sample(self.network, mel[None], betas, generator=generator)[0]
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            rtfs.append((time.perf_counter() - start) * self.config.data_config.sample_rate / audio.numel())
            generated_mel = self.mel(generated)
            mel_l1.append((generated_mel - mel).abs().mean().item())
            wav_l1.append((generated - audio).abs().mean().item())
            results.append({"audio": audio.cpu(), "generated": generated.cpu(), "mel": mel.cpu(),
                            "generated_mel": generated_mel.cpu()})
        scalars = {"test/loss": float(np.mean(losses)), "test/mel_l1": float(np.mean(mel_l1)),
                   "test/wav_l1": float(np.mean(wav_l1)), "test/rtf": float(np.mean(rtfs))}
        return scalars, results


def _log_evaluation(writer: SummaryWriter, trainer: Trainer, scalars: dict, results: list[dict]) -> None:
    rate, hop = trainer.config.data_config.sample_rate, trainer.config.data_config.hop_length
    for name, value in scalars.items():
        writer.add_scalar(name, value, trainer.step)
    for i, result in enumerate(results):
        writer.add_audio(f"test/audio_{i}/ground_truth", result["audio"][None], trainer.step, rate)
        writer.add_audio(f"test/audio_{i}/generated", result["generated"][None].clamp(-1, 1), trainer.step, rate)
        figure = plot_mels({"ground truth": result["mel"], "generated": result["generated_mel"]}, hop / rate)
        writer.add_figure(f"test/mel_{i}", figure, trainer.step)


def fit(trainer: Trainer, logdir: Path, train_paths: list[Path], test_paths: list[Path]) -> None:
    """Train until `max_steps` (when > 0) or `n_epoch` epochs, from the trainer's current position.

    Rank 0 alone writes TensorBoard scalars every `log_interval` steps, evaluates every `test_interval`
    epochs, and saves every `checkpoint_interval` steps and at the end.
    """
    config, info = trainer.config, trainer.info
    t, rate = config.training_config, config.data_config.sample_rate
    dataset = SegmentDataset(train_paths, rate, t.segment_length, t.seed)
    writer = progress = test_segments = None
    if info.is_main:
        writer = SummaryWriter(log_dir=str(logdir))
        progress = tqdm(total=t.max_steps or None, initial=trainer.step, unit="step", dynamic_ncols=True)
        test_set = SegmentDataset(test_paths, rate, t.segment_length, t.seed)
        test_segments = torch.stack([test_set[i] for i in range(len(test_set))])
        test_clips = [load_audio(p, rate, resample_to_rate=False) for p in test_paths[:t.n_samples_to_test]]

    def finished() -> bool:
        return trainer.epoch >= t.n_epoch or 0 < t.max_steps <= trainer.step

    window = {"loss": 0.0, "grad_norm": 0.0, "count": 0, "start": time.perf_counter()}
    saved_at = trainer.step
    try:
        while not finished():
            dataset.set_epoch(trainer.epoch)
            batches = epoch_batches(len(dataset), t.batch_size, trainer.epoch, t.seed, info.rank, info.world_size)
            loader = DataLoader(dataset, batch_sampler=batches[trainer.batch_in_epoch:], num_workers=t.num_workers,
                                pin_memory=info.device.type == "cuda")
            for audio in loader:
                loss, grad_norm, skipped = trainer.train_step(audio)
                if not skipped:
                    window["loss"] += loss
                    window["grad_norm"] += grad_norm
                    window["count"] += 1
                elif info.is_main:
                    progress.write(f"step {trainer.step}: non-finite loss or gradient, step skipped "
                                   f"({trainer.consecutive_skipped} in a row, {trainer.skipped} in all)")
                if trainer.step % t.log_interval == 0:
                    count = window["count"] or float("nan")  # NaN when every step of the window was skipped
                    scalars = {"train/loss": distributed.mean(window["loss"] / count, info.device),
                               "train/grad_norm": distributed.mean(window["grad_norm"] / count, info.device),
                               "train/lr": trainer.lr, "train/skipped_steps": trainer.skipped,
                               "train/samples_per_s": t.log_interval * t.batch_size * info.world_size
                               / (time.perf_counter() - window["start"])}
                    if info.is_main:
                        for name, value in scalars.items():
                            writer.add_scalar(name, value, trainer.step)
                        progress.set_postfix(loss=f"{scalars['train/loss']:.4f}", epoch=trainer.epoch)
                    window = {"loss": 0.0, "grad_norm": 0.0, "count": 0, "start": time.perf_counter()}
                if info.is_main:
                    progress.update(1)
                    if trainer.step % t.checkpoint_interval == 0:
                        trainer.save(logdir)
                        saved_at = trainer.step
                if finished():
                    break
            if trainer.batch_in_epoch < len(batches):
                continue  # stopped inside the epoch (step limit)
            if info.is_main and trainer.epoch % t.test_interval == 0:
                scalars, results = trainer.evaluate(test_segments, test_clips)
                _log_evaluation(writer, trainer, scalars, results)
                progress.write(f"epoch {trainer.epoch} step {trainer.step}: " +
                               ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
            distributed.barrier()
            trainer.end_epoch()
        if info.is_main and saved_at != trainer.step:
            trainer.save(logdir)
    finally:
        if info.is_main:
            progress.close()
            writer.close()


def train(config: Config, logdir: str | Path, resume: bool = False, device: str | None = None) -> Trainer:
    """Check the filelists, build (or resume) the trainer, write the resolved config into `logdir`,
    and train. Under torchrun each process runs this; it returns this process's trainer."""
    logdir = Path(logdir)
    info = distributed.init(device)
    try:
        rate = config.data_config.sample_rate
        train_paths, errors = check_filelist(config.training_config.train_filelist_path, rate)
        test_paths, test_errors = check_filelist(config.training_config.test_filelist_path, rate)
        trainer = Trainer(config, info)
        newest = checkpoints(logdir)[-1:] if resume or config.training_config.continue_training else []
        if newest:
            trainer.load_state_dict(read_checkpoint(newest[0]), str(newest[0]))
        if info.is_main:
            for line in errors + test_errors:
                print(f"warning: skipping {line}")
            print(f"{logdir}: {'resuming from ' + newest[0].name if newest else 'new run'}; "
                  f"{sum(p.numel() for p in trainer.network.parameters()):,} parameters, {len(train_paths)} "
                  f"training clips, {info.world_size} process(es) on {info.device}, autocast {trainer.dtype}")
            logdir.mkdir(parents=True, exist_ok=True)
            save_config(config, logdir / "config.yaml")
        fit(trainer, logdir, train_paths, test_paths)
        return trainer
    finally:
        distributed.cleanup()


def benchmark(config: Config, batch_size: int = 4, segment_length: int = 7200, steps: int = 3,
              device: str | None = None) -> dict[str, float]:
    """Time `steps` training steps (after one warm-up) on random audio [batch_size, segment_length]
    with the config's model and precision: seconds per step (wall and CPU), samples (segments) per
    second, and peak memory in MiB (CUDA: allocated by torch; CPU: the process's peak resident size)."""
    t = dataclasses.replace(config.training_config, batch_size=batch_size, segment_length=segment_length)
    trainer = Trainer(dataclasses.replace(config, training_config=t),
                      distributed.ProcessInfo(0, 0, 1, resolve_device(device)))
    audio = 0.5 * torch.randn(batch_size, segment_length, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    trainer.train_step(audio)
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(trainer.device)
        torch.cuda.reset_peak_memory_stats(trainer.device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.train_step(audio)
    if cuda:
        torch.cuda.synchronize(trainer.device)
    seconds, cpu_seconds = (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps
    peak = (torch.cuda.max_memory_allocated(trainer.device) if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    return {"s_per_step": seconds, "cpu_s_per_step": cpu_seconds, "samples_per_s": batch_size / seconds,
            "peak_mib": peak}


def apply_overrides(config: Config, items: list[str]) -> Config:
    """`section.key=value` items (values parsed as YAML) applied to a config, then validated again."""
    data = config.to_dict()
    for item in items:
        key, sep, value = item.partition("=")
        *sections, name = key.split(".")
        target = data
        for section in sections:
            target = target.get(section) if isinstance(target, dict) else None
        if not sep or not isinstance(target, dict) or name not in target:
            raise WaveGradError(f"--set {item}: expected SECTION.KEY=VALUE with an existing key, "
                                "e.g. training_config.max_steps=100")
        target[name] = yaml.safe_load(value)
    return config_from_dict(data, "--set")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="YAML/JSON config")
    parser.add_argument("--exp", help="run name: logs go to logs/<exp> (default: training_config.logdir)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run dir")
    parser.add_argument("--device", help="cpu or cuda (default: CUDA when present)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. training_config.checkpoint_interval=50 (repeatable)")
    parser.add_argument("--benchmark", type=int, metavar="STEPS",
                        help="only time STEPS training steps on random audio of batch --benchmark-batch and exit")
    parser.add_argument("--benchmark-batch", type=int, default=4, help="batch size for --benchmark (default 4)")


def main(args: argparse.Namespace) -> int:
    """`wavegrad train`; OMP_NUM_THREADS, when set, caps the CPU threads (torchrun sets it to 1)."""
    set_cpu_threads(int(os.environ["OMP_NUM_THREADS"]) if "OMP_NUM_THREADS" in os.environ else None)
    config = apply_overrides(load_config(args.config), args.set)
    t = config.training_config
    if args.benchmark:
        result = benchmark(config, args.benchmark_batch, t.segment_length, args.benchmark, args.device)
        print(f"training step, batch {args.benchmark_batch} x {t.segment_length} samples: "
              f"{result['s_per_step']:.3f} s ({result['cpu_s_per_step']:.2f} CPU s), "
              f"{result['samples_per_s']:.2f} samples/s, peak memory {result['peak_mib']:.0f} MiB")
        return 0
    if args.exp:
        t.logdir = str(Path("logs") / args.exp)
    train(config, t.logdir, args.resume, args.device)
    return 0
