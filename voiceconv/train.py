"""Training the conversion model (`voiceconv train --exp NAME`): L1 mel loss (+ adversarial and speaker
classification), AdamW, per-epoch exponential decay, G_/D_ checkpoints, automatic resume, TensorBoard."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wavegrad import distributed
from wavegrad.checkpoint import newest_checkpoint, prune_checkpoints, save_checkpoint
from wavegrad.config import PRECISIONS
from wavegrad.device import NonFiniteSteps, autocast, autocast_dtype
from wavegrad.errors import CheckpointError, WaveGradError

from . import knn
from .base import BASE_NAMES, adapted_base, fitting_base
from .checkpoint import LATEST_STEP, check_vocoder, checkpoint_path, export_model, read
from .config import add_experiment_arguments, open_experiment
from .data import ExperimentDataset, batches
from .model import PRESETS, Converter, ConverterConfig, Discriminator, preset
from .perturb import PITCH_SHIFTS, VOICE_RATIOS, semitone_list

FILM_TUNE_LAST = 1  # --tune-last when fine-tuning from a base with speaker projections (README "Where the words go")


@dataclasses.dataclass
class TrainOptions:
    """RVC's training knobs (section 4 of the notes); c_mel weighs the L1 mel loss against the GAN terms.
    keep_checkpoints: how many of the newest G_/D_<step>.pt to keep at each save (0: all);
    progress: a bar with the epoch, the mel loss and the time left (rank 0);
    keep_base_speakers: a pretrained G keeps its speaker rows (a base trained further on its own voices);
    tune_last: train only the speaker rows (with their projections into every layer, `speaker_film`), the last
    `tune_last` encoder layers and the output layer, so that
    the base's content path (what reads the words) stays as it was; None trains every weight."""

    total_epoch: int = 20
    save_every_epoch: int = 5
    batch_size: int = 4
    latest_only: bool = False
    keep_checkpoints: int = 0
    save_small_every: bool = False
    lr: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    lr_decay: float = 0.999875
    c_mel: float = 45.0
    c_cls: float = 1.0
    seed: int = 1234
    log_interval: int = 200
    precision: str = "auto"
    max_nonfinite_steps: int = 100
    progress: bool = True
    keep_base_speakers: bool = False
    tune_last: int | None = None


@dataclasses.dataclass
class Networks:
    """A trainable network with its optimizer, per-epoch LR schedule and checkpoint kind ("G" or "D")."""

    kind: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ExponentialLR

    @classmethod
    def create(cls, kind: str, model: nn.Module, options: TrainOptions) -> Networks:
        optimizer = torch.optim.AdamW(model.parameters(), options.lr, betas=options.betas, eps=options.eps)
        return cls(kind, model, optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, options.lr_decay))

    def payload(self, scaler: torch.amp.GradScaler, step: int, epoch: int, extra: dict[str, Any]) -> dict[str, Any]:
        return {"kind": self.kind, "model": distributed.unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": scaler.state_dict(),
                "lr_scheduler": self.scheduler.state_dict(), "step": step, "epoch": epoch, **extra}

    def restore(self, payload: dict[str, Any], path: Path, full: bool) -> None:
        """Load weights (and with `full` the optimizer and LR state) from a checkpoint payload."""
        try:
            self.model.load_state_dict({k: v.float() for k, v in payload["model"].items()})
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit this model ({str(exc)[:160]}); use a "
                                  "checkpoint made with the same preset, pitch setting and feature size") from exc
        if full:
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scheduler.load_state_dict(payload["lr_scheduler"])


def freeze_content_path(model: Converter, tune_last: int) -> None:
    """Leave trainable only the speaker rows (and their projections into every layer), the last `tune_last`
    encoder layers and the output layer."""
    if not 0 <= tune_last <= len(model.layers):
        raise WaveGradError(f"--tune-last {tune_last}: the model has {len(model.layers)} encoder layers; "
                            f"give 0 to {len(model.layers)}")
    kept = [model.out, *model.layers[len(model.layers) - tune_last:]]
    if model.config.use_speaker:
        kept += [model.speaker, *(layer.film for layer in model.layers if layer.film is not None)]
    model.requires_grad_(False)
    for module in kept:
        module.requires_grad_(True)


def check_same_config(payload: dict[str, Any], config: ConverterConfig, path: Path) -> None:
    """Refuse to resume a checkpoint trained with other model switches (e.g. --zero-shot, --content-norm)."""
    stored = ConverterConfig.from_dict(payload["config"]).to_dict() if "config" in payload else config.to_dict()
    differs = [f"{k} {stored[k]} (now {v})" for k, v in config.to_dict().items() if stored.get(k) != v]
    if differs:
        raise CheckpointError(f"{path}: was trained with {', '.join(differs)}; resume with the same flags, "
                              "or train into a new --exp")


def training_step(nets: list[Networks], generator: nn.Module, disc: nn.Module | None,
                  batch: dict[str, torch.Tensor], scaler: torch.amp.GradScaler, dtype: torch.dtype | None,
                  options: TrainOptions) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
    """One optimisation step: discriminator first (LSGAN + speaker class on real mels), then the
    generator (c_mel * L1 mel + LSGAN + speaker class on its mels). Returns (losses, predicted mels),
    or None when a loss was not finite (the step is skipped)."""
    device, target, speaker = batch["mel"].device, batch["mel"], batch["speaker"]
    with autocast(device, dtype):
        predicted = generator(batch["content"], batch.get("coarse"), batch.get("f0"), speaker, target.shape[-1])
        losses = {"mel": F.l1_loss(predicted.float(), target)}
        if disc is not None:
            (real_adv, real_cls), (fake_adv, _) = disc(target), disc(predicted.detach())
            losses["d"] = ((1 - real_adv.float()).square().mean() + fake_adv.float().square().mean()
                           + options.c_cls * F.cross_entropy(real_cls.float(), speaker))
    if not all(torch.isfinite(v) for v in losses.values()):
        return None
    if disc is not None:
        nets[1].optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["d"]).backward()
        scaler.step(nets[1].optimizer)
        with autocast(device, dtype):  # the bare discriminator: its DDP wrapper must not await gradients here
            gen_adv, gen_cls = nets[1].model(predicted)
            losses["adv"] = (1 - gen_adv.float()).square().mean() + options.c_cls * F.cross_entropy(
                gen_cls.float(), speaker)
    loss_g = options.c_mel * losses["mel"] + losses.get("adv", 0.0)
    nets[0].optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward(inputs=[p for p in generator.parameters() if p.requires_grad])
    scaler.step(nets[0].optimizer)
    scaler.update()
    return losses, predicted


def _log_examples(writer: Any, step: int, predicted: torch.Tensor, target: torch.Tensor,
                  frame_rate: float, vocoder: nn.Module | None) -> None:
    """Mel images (and, with a vocoder, the rendered audio) of the first batch element."""
    from wavegrad.plotting import plot_mels

    writer.add_figure("mel", plot_mels({"predicted": predicted, "target": target}, 1 / frame_rate), step)
    if vocoder is not None:
        from wavegrad.inference import synthesize
        from wavegrad.schedule import linear_betas

        schedule = vocoder.config.training_config.test_noise_schedule
        audio = synthesize(vocoder, predicted.float(), linear_betas(schedule.n_iter, schedule.betas_range))
        writer.add_audio("converted", audio.cpu()[None], step, sample_rate=vocoder.config.data_config.sample_rate)


def _save(root: Path, nets: list[Networks], scaler: torch.amp.GradScaler, step: int, epoch: int,
          extra: dict[str, Any], options: TrainOptions) -> Path:
    """Write G_ (and D_) of this step (or RVC's fixed "latest" number), then prune to the newest
    `options.keep_checkpoints`; returns the G_ path."""
    number = LATEST_STEP if options.latest_only else step
    for net in nets:
        save_checkpoint(net.payload(scaler, step, epoch, extra), checkpoint_path(root, net.kind, number))
        prune_checkpoints(root, net.kind, options.keep_checkpoints)
    return checkpoint_path(root, "G", number)


def train(root: Path, dataset: ExperimentDataset, config: ConverterConfig, audio: dict[str, Any],
          content: dict[str, Any], options: TrainOptions, pretrained_g: Path | None = None,
          pretrained_d: Path | None = None, vocoder: nn.Module | None = None,
          device: str | None = None) -> Path | None:
    """Train in `root` (resuming from its newest G_/D_ checkpoints) to `options.total_epoch`, then export
    `root/<root.name>.pt`; returns that path (None on DDP ranks other than 0).
    `audio` is the bound vocoder's DataConfig.audio_dict()."""
    with distributed.session(device) as info:
        dtype = autocast_dtype(info.device, options.precision)
        with torch.random.fork_rng(devices=[]):  # initial weights from options.seed; the global RNG is left alone
            torch.manual_seed(options.seed)
            nets = [Networks.create("G", Converter(config).to(info.device), options)]
            if options.tune_last is not None:
                freeze_content_path(nets[0].model, options.tune_last)
            if config.discriminator:
                nets.append(Networks.create("D", Discriminator(config).to(info.device), options))
        scaler = torch.amp.GradScaler(info.device.type, enabled=dtype == torch.float16)
        extra = {"config": config.to_dict(), "audio": audio, "content": content, "speakers": dataset.speakers,
                 "options": dataclasses.asdict(options)}
        epoch, step, history = 0, 0, []
        newest = [newest_checkpoint(root, net.kind) for net in nets]
        if all(newest):
            for net, path in zip(nets, newest, strict=True):
                payload = read(path, net.kind)
                check_same_config(payload, config, path)
                net.restore(payload, path, full=True)
            scaler.load_state_dict(payload["scaler"])
            epoch, step, history = payload["epoch"], payload["step"], list(payload["mel_loss_per_epoch"])
        else:
            for net, path in zip(nets, (pretrained_g, pretrained_d), strict=False):
                if path is not None:
                    payload = read(Path(path), net.kind)
                    if net.kind == "G":
                        payload = adapted_base(payload, config, options.keep_base_speakers)
                    net.restore(payload, Path(path), full=False)
        generator = distributed.wrap(nets[0].model, info)
        disc = distributed.wrap(nets[1].model, info) if len(nets) == 2 else None
        writer = None
        if info.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(root))
        nonfinite = NonFiniteSteps(options.max_nonfinite_steps)
        bar = tqdm(desc="train", unit="step", initial=step, file=sys.stderr, dynamic_ncols=True,
                   disable=not (info.is_main and options.progress))
        while epoch < options.total_epoch:
            epoch, mel_sum, count = epoch + 1, 0.0, 0
            epoch_batches = batches(dataset, options.batch_size, options.seed + epoch, info.rank, info.world_size)
            bar.total = bar.n + len(epoch_batches) * (options.total_epoch - epoch + 1)  # steps left, as this epoch
            bar.set_description(f"train epoch {epoch}/{options.total_epoch}")
            for batch in epoch_batches:
                bar.update(1)
                result = training_step(nets, generator, disc, {k: v.to(info.device) for k, v in batch.items()},
                                       scaler, dtype, options)
                nonfinite.record(result is not None, str(root), "lower the learning rate or check the features for NaN")
                if result is None:
                    continue
                losses, predicted = result
                step, mel_sum, count = step + 1, mel_sum + losses["mel"].item(), count + 1
                if writer is not None and step % options.log_interval == 0:
                    for name, value in losses.items():
                        writer.add_scalar(f"loss/{name}", value.item(), step)
                    writer.add_scalar("lr", nets[0].scheduler.get_last_lr()[0], step)
            for net in nets:
                net.scheduler.step()
            history.append(distributed.mean(mel_sum / max(count, 1), info.device))
            bar.set_postfix(mel_loss=f"{history[-1]:.4f}")
            if writer is not None:
                writer.add_scalar("loss/mel_epoch", history[-1], step)
            if info.is_main and (epoch % options.save_every_epoch == 0 or epoch == options.total_epoch):
                saved = _save(root, nets, scaler, step, epoch, {**extra, "mel_loss_per_epoch": history}, options)
                if not bar.disable:
                    bar.write(f"epoch {epoch}/{options.total_epoch}: mel loss {history[-1]:.4f}, saved {saved.name}")
                if options.save_small_every:
                    export_model(nets[0].model, root / f"{root.name}_e{epoch}_s{step}.pt", audio, content,
                                 {"epoch": epoch, "step": step})
                if count:
                    _log_examples(writer, step, predicted[0].detach(), batch["mel"][0], config.frame_rate, vocoder)
            distributed.barrier()
        bar.close()
        final = root / f"{root.name}.pt"
        if info.is_main:
            export_model(distributed.unwrap(nets[0].model), final, audio, content, {"epoch": epoch, "step": step})
            writer.close()
    return final if info.is_main else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_experiment_arguments(parser)
    parser.add_argument("--pitch", action=argparse.BooleanOptionalAction, default=None,
                        help="pitch-conditioned model (default: when the experiment has pitch)")
    parser.add_argument("--pitch-shifted", action="store_true",  # one-click has it from `features`
                        help="add copies of every segment with the f0 input moved "
                             f"{semitone_list()} semitones and the mel of the segment "
                             "resynthesised there (`voiceconv features --pitch-shifted`): the voice learns to render "
                             "pitches it never reached, for --f0-up-key")
    add_training_arguments(parser)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags shared with `voiceconv one-click`."""
    parser.add_argument("--preset", default="base", choices=sorted(PRESETS), help="model size (base = RVC's)")
    parser.add_argument("--discriminator", action="store_true", help="adversarial + speaker-class losses")
    parser.add_argument("--zero-shot", action="store_true",
                        help="a speaker-agnostic model trained on kNN-prematched content, for "
                             "`voiceconv convert --target-refs` (kNN-VC)")
    parser.add_argument("--match-shares", type=float, nargs="+", default=[1.0], metavar="SHARE",
                        help="with --zero-shot: the share of each segment's content taken from its match, the rest "
                             "being its own, segment by segment in turn (default 1.0: kNN-VC's; conversion blends at "
                             "--index-rate, so `1.0 0.5` trains both)")
    parser.add_argument("--matched-mel", action="store_true",
                        help="with --zero-shot: the model also reads the mels of the matched reference frames, so the "
                             "target's timbre comes from its recordings")
    parser.add_argument("--virtual-voices", action="store_true",
                        help="with --matched-mel: add every voice again with its frequencies scaled by "
                             f"{' and '.join(map(str, VOICE_RATIOS))} as new voices, which differ only in their "
                             "matched mels, so that the model learns to take the timbre from them")
    parser.add_argument("--perturbed-content", action="store_true",
                        help="train on the content of voice-perturbed segments (`voiceconv features --perturbed`), "
                             "so that the content carries less of the speaker (NANSY/FreeVC)")
    parser.add_argument("--content-norm", action="store_true",
                        help="normalise the content features per utterance in the model (mean 0, std 1 per dimension)")
    parser.add_argument("--speaker-film", action=argparse.BooleanOptionalAction, default=None,
                        help="the speaker row also scales and shifts the norms of every encoder layer (conditional "
                             "layer norm, AdaSpeech), instead of entering once at the input (default: as the "
                             "checkpoint resumed or the base fine-tuned from; a base without it starts these "
                             "projections at zero)")
    parser.add_argument("--total-epoch", type=int, default=20)
    parser.add_argument("--save-every-epoch", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--latest-only", action="store_true", help="overwrite G_2333333.pt/D_2333333.pt")
    parser.add_argument("--keep-checkpoints", type=int, default=0, metavar="N",
                        help="keep only the newest N G_/D_<step>.pt at each save (default 0: keep all)")
    parser.add_argument("--save-small-every", action="store_true", help="export <exp>_e<epoch>_s<step>.pt at saves")
    parser.add_argument("--pretrained-g", type=Path, help="initial generator weights (when not resuming; "
                        "default: the shipped base when it fits, see `voiceconv pretrain`)")
    parser.add_argument("--pretrained-d", type=Path, help="initial discriminator weights (when not resuming; "
                        "default: the shipped base's with --discriminator)")
    parser.add_argument("--tune-last", type=int, metavar="N",
                        help="train only the speaker rows, the last N encoder layers and the output layer "
                             "(the base's content path, which reads the words, stays as it was; default: every "
                             f"weight, or {FILM_TUNE_LAST} from a base with speaker projections, --speaker-film; a "
                             "resumed run keeps its own)")
    parser.add_argument("--from-scratch", action="store_true", help="do not start from the shipped base")
    parser.add_argument("--keep-base-speakers", action="store_true",
                        help="keep --pretrained-g's speaker rows: the experiment's speaker ids are its voices "
                             "(`voiceconv pretrain --init-from`)")
    parser.add_argument("--vocoder-checkpoint", type=Path, help="render audio to TensorBoard with this vocoder")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="autocast (default auto: fp16 on CUDA, fp32 on CPU); bf16 about halves the CPU time of a "
                             "step on CPUs with native bf16 (AVX512-BF16 or AMX), and is slow on others")


def default_tune_last(start: dict[str, Any], resumed: bool, new_voice_on_film_base: bool) -> int | None:
    """--tune-last when not given: a resumed run's own (from its checkpoint `start`), FILM_TUNE_LAST for a new
    voice fine-tuned from a base with speaker projections (said once), else None (every weight)."""
    if resumed:
        return start.get("options", {}).get("tune_last")
    if new_voice_on_film_base:
        print(f"tuning the speaker rows, their projections and the last {FILM_TUNE_LAST} encoder layer of a base "
              "with speaker projections (--tune-last)")
        return FILM_TUNE_LAST
    return None


def main(args: argparse.Namespace) -> int:
    from wavegrad.checkpoint import load_model

    from .content import experiment_encoder

    exp, exp_config = open_experiment(args.exp, args.logs_dir)
    if exp_config.feature_dim is None:
        raise WaveGradError(f"{exp.config_file}: no content features yet; run `voiceconv features --exp {args.exp}`")
    pitch = getattr(args, "pitch", None)
    use_pitch = exp_config.f0_method is not None if pitch is None else pitch
    audio = exp_config.audio
    # prematching compares what conversion's matching will: the encoder's keys
    match_keys = experiment_encoder(exp_config).match_keys if args.zero_shot else None
    dataset = ExperimentDataset(exp.filelist, exp.mel_dir, use_pitch, prematch_k=knn.K if args.zero_shot else 0,
                                perturbed=args.perturbed_content,
                                pitch_shifts=PITCH_SHIFTS if args.pitch_shifted else (),
                                matched_mels=audio if args.matched_mel else None,
                                voice_ratios=VOICE_RATIOS if args.virtual_voices else (),
                                match_shares=tuple(args.match_shares), match_keys=match_keys)
    config = preset(args.preset, content_dim=exp_config.feature_dim, n_mels=audio.n_mels,
                    frame_rate=audio.sample_rate / audio.hop_length, use_pitch=use_pitch,
                    use_speaker=not args.zero_shot, n_speakers=max(109, dataset.speakers),
                    discriminator=args.discriminator, content_norm=args.content_norm,
                    matched_mel=args.matched_mel, speaker_film=bool(args.speaker_film))
    vocoder = None
    if args.vocoder_checkpoint is not None:
        vocoder = load_model(args.vocoder_checkpoint, device=args.device)
        check_vocoder(vocoder.config.data_config.audio_dict(), audio.audio_dict(), args.vocoder_checkpoint,
                      exp.config_file)
    content = {"encoder": exp_config.encoder, "version": exp_config.encoder_version,
               "checkpoint": exp_config.encoder_checkpoint, "dim": exp_config.feature_dim}
    pretrained_g, pretrained_d = args.pretrained_g, args.pretrained_d
    resumed = newest_checkpoint(exp.root, "G")
    if pretrained_g is None and not args.from_scratch and resumed is None:
        pretrained_g, reason = fitting_base(config.to_dict(), audio.audio_dict(), exp_config.feature_dim)
        print(reason if pretrained_g else f"training from scratch: {reason}")
        base_d = pretrained_g.with_name(f"{BASE_NAMES['D']}.pt") if pretrained_g is not None else None
        if args.discriminator and pretrained_d is None and base_d is not None and base_d.is_file():
            pretrained_d = base_d
    start = read(Path(resumed or pretrained_g), "G") if resumed or pretrained_g else {}
    start_film = config.use_speaker and bool(start.get("config", {}).get("speaker_film"))
    if args.speaker_film is None:
        config.speaker_film = start_film
    tune_last = args.tune_last
    if tune_last is None:
        tune_last = default_tune_last(start, resumed is not None,
                                      start_film and config.speaker_film and not args.keep_base_speakers)
    options = TrainOptions(total_epoch=args.total_epoch, save_every_epoch=args.save_every_epoch,
                           batch_size=args.batch_size, latest_only=args.latest_only,
                           keep_checkpoints=args.keep_checkpoints, save_small_every=args.save_small_every,
                           precision=args.precision, keep_base_speakers=args.keep_base_speakers,
                           tune_last=tune_last)
    torch.manual_seed(options.seed)  # this process's global RNG (dropout), as `wavegrad train` does
    final = train(exp.root, dataset, config, audio.audio_dict(), content, options, pretrained_g, pretrained_d,
                  vocoder, args.device)
    if final is not None:
        print(f"wrote {final}")
    return 0
