"""WaveGrad training: `wavegrad train -c CONFIG [--exp NAME] [--resume]`, alone or under torchrun (DDP)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .audio import load_audio
from .checkpoint import read_checkpoint
from .config import Config, absolute_filelists, config_from_dict, load_config, save_config
from .data import SegmentDataset, check_filelist, epoch_batches
from .device import resolve_device, set_cpu_threads
from .errors import WaveGradError
from .paths import LOGS_HELP, logs_root
from .prior import frame_energy
from .trainer import Trainer, checkpoints

if TYPE_CHECKING:  # tensorboard and matplotlib load when training starts, not for `wavegrad --help`
    from torch.utils.tensorboard import SummaryWriter


def _log_evaluation(writer: SummaryWriter, trainer: Trainer, scalars: dict, results: list[dict]) -> None:
    from .plotting import plot_mels

    rate, hop = trainer.config.data_config.sample_rate, trainer.config.data_config.hop_length
    for name, value in scalars.items():
        writer.add_scalar(name, value, trainer.step)
    for i, result in enumerate(results):
        writer.add_audio(f"test/audio_{i}/ground_truth", result["audio"][None], trainer.step, rate)
        writer.add_audio(f"test/audio_{i}/generated", result["generated"][None].clamp(-1, 1), trainer.step, rate)
        figure = plot_mels({"ground truth": result["mel"], "generated": result["generated_mel"]}, hop / rate)
        writer.add_figure(f"test/mel_{i}", figure, trainer.step)


@dataclasses.dataclass
class _Window:
    """Sums over the steps since the last log line (loss and grad norm over finite steps only)."""

    loss: float = 0.0
    grad_norm: float = 0.0
    finite: int = 0
    steps: int = 0
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, loss: float, grad_norm: float, skipped: bool) -> None:
        self.steps += 1
        if not skipped:
            self.loss, self.grad_norm, self.finite = self.loss + loss, self.grad_norm + grad_norm, self.finite + 1

    def scalars(self, trainer: Trainer) -> dict[str, float]:
        """Means over all processes (a collective: every process calls it); NaN when all steps were skipped."""
        t, info = trainer.config.training_config, trainer.info
        finite = self.finite or float("nan")
        return {"train/loss": distributed.mean(self.loss / finite, info.device),
                "train/grad_norm": distributed.mean(self.grad_norm / finite, info.device),
                "train/lr": trainer.lr, "train/skipped_steps": trainer.nonfinite.total,
                "train/cpu_hours": trainer.cpu_seconds / 3600,
                "train/samples_per_s": self.steps * t.batch_size * info.world_size / (time.perf_counter() - self.start)}


def fit(trainer: Trainer, logdir: Path, train_paths: list[Path], test_paths: list[Path]) -> None:
    """Train until `max_steps` (when > 0) or `n_epoch` epochs, from the trainer's current position.

    Rank 0 alone writes TensorBoard scalars every `log_interval` steps, evaluates every `test_interval`
    epochs, and saves every `checkpoint_interval` steps and at the end.
    """
    config, info = trainer.config, trainer.info
    t, rate = config.training_config, config.data_config.sample_rate
    dataset = SegmentDataset(train_paths, rate, t.segment_length, t.seed, t.pitch_up_semitones, t.pitch_up_probability)
    writer = progress = test_segments = None
    test_clips: list[torch.Tensor] = []
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides what a killed run logged after the checkpoint we resume from
        writer = SummaryWriter(log_dir=str(logdir), purge_step=trainer.step or None)
        progress = tqdm(total=t.max_steps or None, initial=trainer.step, unit="step", dynamic_ncols=True)
        test_set = SegmentDataset(test_paths, rate, t.segment_length, t.seed)
        test_segments = torch.stack([test_set[i] for i in range(len(test_set))])
        test_clips = [load_audio(p, rate, resample_to_rate=False) for p in test_paths[:t.n_samples_to_test]]

    def finished() -> bool:
        return (trainer.epoch >= t.n_epoch or 0 < t.max_steps <= trainer.step
                or 0 < t.max_cpu_seconds <= trainer.cpu_seconds)

    window = _Window()
    saved_at = trainer.step
    clock = time.process_time()
    try:
        while not finished():
            dataset.set_epoch(trainer.epoch)
            batches = epoch_batches(len(dataset), t.batch_size, trainer.epoch, t.seed, info.rank, info.world_size)
            loader = DataLoader(dataset, batch_sampler=batches[trainer.batch_in_epoch:], num_workers=t.num_workers,
                                pin_memory=info.device.type == "cuda")
            for audio in loader:
                loss, grad_norm, skipped = trainer.train_step(audio)
                trainer.cpu_seconds += time.process_time() - clock  # data loading in this process included
                clock = time.process_time()
                window.add(loss, grad_norm, skipped)
                if skipped and info.is_main:
                    progress.write(f"step {trainer.step}: non-finite loss or gradient, step skipped "
                                   f"({trainer.nonfinite.in_a_row} in a row, {trainer.nonfinite.total} in all)")
                if trainer.step % t.log_interval == 0:
                    scalars = window.scalars(trainer)
                    if info.is_main:
                        for name, value in scalars.items():
                            writer.add_scalar(name, value, trainer.step)
                        progress.set_postfix(loss=f"{scalars['train/loss']:.4f}", epoch=trainer.epoch)
                    window = _Window()
                if info.is_main:
                    progress.update(1)
                    if trainer.step % t.checkpoint_interval == 0:
                        trainer.save(logdir)
                        saved_at = trainer.step
                if finished():
                    break
                clock = time.process_time()  # logging and saving are not training time
            if trainer.batch_in_epoch < len(batches):
                continue  # stopped inside the epoch (step or CPU-time limit)
            if info.is_main and trainer.epoch % t.test_interval == 0:
                scalars, results = trainer.evaluate(test_segments, test_clips)
                _log_evaluation(writer, trainer, scalars, results)
                progress.write(f"epoch {trainer.epoch} step {trainer.step}: " +
                               ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
            distributed.barrier()
            trainer.end_epoch()
            clock = time.process_time()
        if info.is_main and saved_at != trainer.step:
            trainer.save(logdir)
    finally:
        if info.is_main:
            progress.close()
            writer.close()


def train(config: Config, logdir: str | Path, resume: bool = False, device: str | None = None,
          init_from: str | Path | None = None) -> Trainer:
    """Check the filelists, build (or resume) the trainer, write the resolved config into `logdir`,
    and train. Under torchrun each process runs this; it returns this process's trainer.

    init_from: a checkpoint or exported vocoder whose weights (and EMA) start a new run; a run
    that already has checkpoints in `logdir` resumes from them instead (with `resume`)."""
    logdir = Path(logdir)
    with distributed.session(device) as info:
        rate = config.data_config.sample_rate
        train_paths, errors = check_filelist(config.training_config.train_filelist_path, rate)
        test_paths, test_errors = check_filelist(config.training_config.test_filelist_path, rate)
        trainer = Trainer(config, info)
        newest = checkpoints(logdir)[-1:] if resume or config.training_config.continue_training else []
        if newest:
            trainer.load_state_dict(read_checkpoint(newest[0]), str(newest[0]))
        elif init_from:
            trainer.init_from(read_checkpoint(init_from), str(init_from))
        if trainer.network.prior is not None and not trainer.network.prior.fitted:
            trainer.fit_prior(train_paths)
        if info.is_main:
            for line in errors + test_errors:
                print(f"warning: skipping {line}")
            start = (f"resuming from {newest[0].name}" if newest else
                     f"new run from the weights of {init_from} (step {trainer.step})" if init_from else "new run")
            print(f"{logdir}: {start}; "
                  f"{sum(p.numel() for p in trainer.network.parameters()):,} parameters, {len(train_paths)} "
                  f"training clips, {info.world_size} process(es) on {info.device}, autocast {trainer.dtype}")
            logdir.mkdir(parents=True, exist_ok=True)
            save_config(config, logdir / "config.yaml")
        fit(trainer, logdir, train_paths, test_paths)
        return trainer


def benchmark(config: Config, batch_size: int = 4, segment_length: int = 7200, steps: int = 3,
              device: str | None = None) -> dict[str, float]:
    """Time `steps` training steps (after one warm-up) on random audio [batch_size, segment_length]
    with the config's model and precision: seconds per step (wall and CPU), samples (segments) per
    second, and peak memory in MiB (CUDA: allocated by torch; CPU: the process's peak resident size)."""
    t = dataclasses.replace(config.training_config, batch_size=batch_size, segment_length=segment_length)
    trainer = Trainer(dataclasses.replace(config, training_config=t),
                      distributed.ProcessInfo(0, 0, 1, resolve_device(device)))
    audio = 0.5 * torch.randn(batch_size, segment_length, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    if trainer.network.prior is not None:  # the random audio's energy range, so that the prior is timed too
        energy = frame_energy(trainer.mel(audio))
        trainer.network.prior.set_range(energy.min().item(), energy.max().item())
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
    """`section.key=value` items (values parsed as JSON, else YAML) applied to a config, then validated again;
    a filelist path given here resolves against the current directory."""
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
        try:
            target[name] = json.loads(value)  # numbers such as 5e-4, true/false, lists
        except json.JSONDecodeError:
            target[name] = yaml.safe_load(value)  # bare words such as fp32
    return absolute_filelists(config_from_dict(data, "--set"), Path.cwd() / "--set")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="YAML/JSON config")
    parser.add_argument("--exp", help="run name: logs go to <logs-dir>/<exp> (default: training_config.logdir)")
    parser.add_argument("--logs-dir", type=Path, default=logs_root(), help=LOGS_HELP)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run dir")
    parser.add_argument("--init-from", metavar="FILE",
                        help="start a new run from the weights (+EMA) of a checkpoint or exported vocoder, e.g. "
                             "pretrained/small_16k.pt (ignored when --resume finds a checkpoint in the run dir)")
    parser.add_argument("--device", help="cpu or cuda (default: CUDA when present)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. training_config.checkpoint_interval=50 (repeatable)")
    parser.add_argument("--benchmark", type=int, metavar="STEPS",
                        help="only time STEPS training steps on random audio of batch --benchmark-batch and exit")
    parser.add_argument("--benchmark-batch", type=int, default=4, help="batch size for --benchmark (default 4)")


def main(args: argparse.Namespace) -> int:
    """`wavegrad train`; OMP_NUM_THREADS, when set, caps the CPU threads (torchrun sets it to 1)."""
    set_cpu_threads()
    config = apply_overrides(load_config(args.config), args.set)
    t = config.training_config
    if args.benchmark:
        result = benchmark(config, args.benchmark_batch, t.segment_length, args.benchmark, args.device)
        print(f"training step, batch {args.benchmark_batch} x {t.segment_length} samples: "
              f"{result['s_per_step']:.3f} s ({result['cpu_s_per_step']:.2f} CPU s), "
              f"{result['samples_per_s']:.2f} samples/s, peak memory {result['peak_mib']:.0f} MiB")
        return 0
    if args.exp:
        t.logdir = str(args.logs_dir / args.exp)
    torch.manual_seed(t.seed)  # this process's global RNG, for anything not given its own generator
    train(config, t.logdir, args.resume, args.device, args.init_from)
    return 0
