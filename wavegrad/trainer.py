"""One training process's state: network, Adam, LR scheduler, GradScaler, counters; step, save, evaluate."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from . import distributed, metrics
from .audio import MelSpectrogram, pad_to_hop
from .checkpoint import numbered_checkpoints, prune_checkpoints, save_checkpoint
from .config import Config, config_from_dict
from .device import NonFiniteSteps, autocast, autocast_dtype
from .diffusion import sample, training_loss
from .ema import EMA
from .errors import CheckpointError
from .model import WaveGrad
from .prior import measure_energy_range
from .schedule import linear_betas

SEED_MASK = 0x7FFFFFFFFFFFFFFF
CHECKPOINT_PREFIX = "checkpoint"  # a run's checkpoints are logdir/checkpoint_<step>.pt


def checkpoints(logdir: Path) -> list[Path]:
    """`logdir/checkpoint_<step>.pt` files, oldest step first."""
    return numbered_checkpoints(logdir, CHECKPOINT_PREFIX)


def initial_network(config: Config) -> WaveGrad:
    """A new network whose weights depend on training_config.seed alone (identical on every rank), drawn
    from a forked RNG: the process's global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(config.training_config.seed)
        return WaveGrad(config)


class Trainer:
    """One process's network, Adam, LR scheduler and GradScaler, with the step/epoch/skip counters.

    Training noise for step s on rank r comes from a generator seeded by (seed, r, s), and data
    windows from (seed, epoch, index), so a resumed run repeats an uninterrupted one exactly.
    """

    def __init__(self, config: Config, info: distributed.ProcessInfo):
        t = config.training_config
        self.config, self.info, self.device = config, info, info.device
        self.dtype = autocast_dtype(self.device, t.precision, t.use_fp16)
        self.network = initial_network(config).to(self.device)
        self.model = distributed.wrap(self.network, info)
        self.mel = MelSpectrogram(config.data_config).to(self.device)
        self.betas = linear_betas(t.training_noise_schedule.n_iter, t.training_noise_schedule.betas_range)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=t.lr, betas=t.adam_betas)
        if t.lr_scheduler == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, t.scheduler_step_size, t.scheduler_gamma)
        else:
            self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, t.scheduler_gamma)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.ema = EMA(self.network, t.ema_decay) if t.ema_decay else None
        self.step = self.epoch = self.batch_in_epoch = 0
        self.nonfinite = NonFiniteSteps(t.max_nonfinite_steps)
        self.cpu_seconds = 0.0  # training CPU time of this process over the whole run, resumes included

    @property
    def rendering_network(self) -> WaveGrad:
        """The weights used for evaluation and export: the EMA when kept, else the trained ones."""
        return self.network if self.ema is None else self.ema.network

    def fit_prior(self, paths: list[Path]) -> None:
        """Measure the energy prior's E_min/E_max on the training clips (no-op for the standard prior)."""
        if self.network.prior is not None:
            self.network.prior.set_range(*measure_energy_range(paths, self.config.data_config))
            if self.ema is not None:
                self.ema.network.prior.set_range(*self.network.prior.energy_range.tolist())

    def _loss(self, model: torch.nn.Module, audio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training loss on audio [B, T]; mels and the prior in fp32 (power spectra overflow fp16)."""
        with torch.no_grad():
            mels = self.mel(audio)
            std = self.network.prior_std(mels)
        with autocast(self.device, self.dtype):
            return training_loss(model, mels, audio, self.betas, generator, std,
                                 self.config.training_config.mrstft_loss_weight)

    def train_step(self, audio: torch.Tensor) -> tuple[float, float, bool]:
        """One optimiser step on audio [B, segment_length]: (loss, grad norm before clipping, skipped).

        A non-finite loss or gradient leaves weights, Adam moments and LR untouched; after
        `max_nonfinite_steps` such steps in a row training stops with a WaveGradError.
        """
        t = self.config.training_config
        audio = audio.to(self.device, non_blocking=True)
        generator = torch.Generator().manual_seed(hash((t.seed, self.info.rank, self.step)) & SEED_MASK)
        self.model.train()
        loss = self._loss(self.model, audio, generator)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), t.grad_clip_threshold)
        finite = bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm))
        if finite:
            self._warmed_up_step()
            if self.ema is not None:
                self.ema.update(self.network)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.batch_in_epoch += 1
        self.nonfinite.record(finite, f"training stopped at step {self.step}",
                              f"lr {self.lr:.3g}, precision {self.dtype or 'fp32'}: lower training_config.lr (5e-4 is "
                              "safer), keep grad_clip_threshold, or use precision fp32, then resume with --resume")
        return loss.item(), grad_norm.item(), not finite

    def _warmed_up_step(self) -> None:
        """One Adam update at `lr`: the scheduler's LR times the warm-up factor, which the scheduler never sees."""
        scheduled, factor = [group["lr"] for group in self.optimizer.param_groups], self.warmup_factor
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
        self.scaler.step(self.optimizer)
        for group, lr in zip(self.optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr

    @property
    def warmup_factor(self) -> float:
        """(n + 1) / warmup_steps for Adam's n-th update while n < warmup_steps, then 1.

        A fresh Adam's first updates move every weight by about lr whatever the gradient's noise; the ramp
        keeps them small while its moments settle. n is Adam's own count (kept in its state), so a resumed
        run goes on with the ramp where it stopped."""
        warmup = self.config.training_config.warmup_steps
        state = self.optimizer.state.get(self.optimizer.param_groups[0]["params"][0], {})
        return min(1.0, (int(state.get("step", 0)) + 1) / warmup) if warmup else 1.0

    @property
    def lr(self) -> float:
        """The LR of the next update (warm-up included)."""
        return self.optimizer.param_groups[0]["lr"] * self.warmup_factor

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
        payload = {"config": self.config.to_dict(), "model": self.network.state_dict(),
                   "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                   "lr_scheduler": self.scheduler.state_dict(), "step": self.step, "epoch": self.epoch,
                   "batch_in_epoch": self.batch_in_epoch, "skipped_steps": self.nonfinite.total,
                   "cpu_seconds": self.cpu_seconds, "rng": rng}
        if self.ema is not None:
            payload["ema"] = self.ema.state_dict()
        return payload

    def load_state_dict(self, payload: dict, source: str) -> None:
        """Restore a checkpoint written by `state_dict`, refusing one of another model or mel config."""
        missing = {"config", "optimizer", "lr_scheduler", "step", "rng"} - set(payload)
        if missing:
            raise CheckpointError(f"{source}: not a training checkpoint of this package (no {sorted(missing)}); "
                                  "move it out of the run dir or start a new --exp")
        self._check_same_network(payload, source, "resume with the config it was trained with, or start a new --exp")
        self.network.load_state_dict(payload["model"])
        if self.ema is not None:
            if "ema" in payload:
                self.ema.load_state_dict(payload["ema"])
            else:  # EMA switched on for a run that had none: start the average at the trained weights
                self.ema.network.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.scheduler.load_state_dict(payload["lr_scheduler"])
        self.step, self.epoch, self.batch_in_epoch = payload["step"], payload["epoch"], payload["batch_in_epoch"]
        self.nonfinite.total = payload["skipped_steps"]
        self.cpu_seconds = payload.get("cpu_seconds", 0.0)
        rng = payload["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def _check_same_network(self, payload: dict, source: str, fix: str, any_prior: bool = False) -> None:
        """Refuse a checkpoint whose model_config or data_config differs from ours (with `any_prior`, the
        prior may differ); older files, which lack newer keys, get their defaults."""
        stored = config_from_dict(payload["config"], source).to_dict()
        if any_prior:
            stored["model_config"]["prior"] = self.config.model_config.prior
        for part in ("model_config", "data_config"):
            if stored[part] != self.config.to_dict()[part]:
                raise CheckpointError(f"{source}: its {part} differs from the config's; {fix}")

    def init_from(self, payload: dict, source: str) -> None:
        """Start a new run from the weights (and EMA) of a checkpoint or exported vocoder: the step and
        epoch counters continue from it; Adam and the LR schedule start afresh at training_config.lr.

        The file may use another prior than the config (the energy prior's range is then measured anew)."""
        if "config" not in payload:
            raise CheckpointError(f"{source}: no config inside; start from a checkpoint or export of this package")
        self._check_same_network(payload, source, "start from weights of the same network and mel settings",
                                 any_prior=True)
        prior_keys = {"prior.energy_range"}
        targets = [(self.network, payload["model"])]
        if self.ema is not None:  # the file's EMA, or its weights when it has none
            targets.append((self.ema.network, payload.get("ema", {}).get("model", payload["model"])))
        for network, state in targets:
            result = network.load_state_dict(state, strict=False)
            if set(result.missing_keys) - prior_keys or set(result.unexpected_keys) - prior_keys:
                raise CheckpointError(f"{source}: weights do not fit the config ({result}); "
                                      "start from weights of the same network")
        if "ema" in payload and self.ema is not None:
            self.ema.updates = payload["ema"]["updates"]
        self.step, self.epoch = payload.get("step", 0), payload.get("epoch", 0)

    def save(self, logdir: Path) -> Path:
        """Write `logdir/checkpoint_<step>.pt` atomically and delete all but the newest `keep_checkpoints`."""
        path = logdir / f"{CHECKPOINT_PREFIX}_{self.step}.pt"
        save_checkpoint(self.state_dict(), path)
        prune_checkpoints(logdir, CHECKPOINT_PREFIX, max(1, self.config.training_config.keep_checkpoints))
        return path

    @torch.no_grad()
    def evaluate(self, segments: torch.Tensor, clips: list[torch.Tensor]) -> tuple[dict, list[dict]]:
        """Test loss on segments [N, segment_length], and generation of each clip [samples] from its mel
        with the test schedule: (scalars, per-clip {audio, generated, mel, generated_mel})."""
        t = self.config.training_config
        network = self.rendering_network.eval()
        generator = torch.Generator().manual_seed(t.seed)
        losses = []
        for batch in segments.split(t.batch_size):
            losses.append(self._loss(network, batch.to(self.device), generator).item())
        betas = linear_betas(t.test_noise_schedule.n_iter, t.test_noise_schedule.betas_range)
        results, rtfs, mel_l1, wav_l1 = [], [], [], []
        for clip in clips:
            audio = pad_to_hop(clip, self.config.data_config.hop_length).to(self.device)
            mel = self.mel(audio)
            start = time.perf_counter()
            generated = sample(network, mel[None], betas, generator=generator)[0]
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            rtfs.append((time.perf_counter() - start) * self.config.data_config.sample_rate / audio.numel())
            generated_mel = self.mel(generated)
            mel_l1.append(metrics.mel_l1(generated_mel, mel).item())
            wav_l1.append((generated - audio).abs().mean().item())
            results.append({"audio": audio.cpu(), "generated": generated.cpu(), "mel": mel.cpu(),
                            "generated_mel": generated_mel.cpu()})
        scalars = {"test/loss": float(np.mean(losses)), "test/mel_l1": float(np.mean(mel_l1)),
                   "test/wav_l1": float(np.mean(wav_l1)), "test/rtf": float(np.mean(rtfs))}
        return scalars, results
