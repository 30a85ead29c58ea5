"""End-to-end demo on the bundled voices: vocoder, schedule search, rendering, voice conversion, evaluation.

Each step skips what is already done, so a killed demo resumes where it stopped. Outputs go to
logs/<exp>/ (work files, git-ignored) and logs/<exp>/samples/ (wavs, pictures, report tables);
--refresh-samples then copies those over the curated ones in generated_samples/.
Run: python runs/demo.py [--retrain-vocoder] [--refresh-samples]   (see --help for the sizes of each step)
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from tqdm import tqdm  # noqa: E402

import wavegrad
from voiceconv.base import bundled_voices
from wavegrad.audio import pad_to_hop
from wavegrad.device import set_cpu_threads
from wavegrad.filelist import read_filelist
from wavegrad.inference import copy_synthesis
from wavegrad.metrics import vocoder_metrics, write_report
from wavegrad.paths import logs_root
from wavegrad.plotting import plot_mels
from wavegrad.schedule import fibonacci_betas, linear_betas

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / logs_root()  # the steps run in REPO
CURATED = REPO / "generated_samples"  # tracked; refreshed only with --refresh-samples
PRETRAINED = REPO / "pretrained" / "small_16k.pt"
SHIPPED_SCHEDULES = REPO / "schedules"  # searched for the shipped vocoder
SOURCE_CLIPS = ["en_allison/conf-getpin.flac", "en_allison/priv-recordintro.flac"]
TARGET_SPEAKER, SEMITONE_SHIFTS = "fr_june", (0, 12)
UNSEEN_SPEAKER = "ru_voice"  # in no training list: the zero-shot row for a voice the base never heard
EVALUATION_AUDIO = Path("conversion_eval") / "audio"  # under the samples folder; not copied by --refresh-samples


def run(step: str, *command: str) -> None:
    """Run one package command, echoing it; a failure stops the demo with that command's status."""
    print(f"\n== {step}: {' '.join(command)}", flush=True)
    status = subprocess.call([sys.executable, "-m", *command], cwd=REPO)
    if status != 0:
        sys.exit(f"demo step '{step}' failed with status {status}; re-run the demo to resume")


def vocoder_checkpoint(args: argparse.Namespace, logs: Path) -> Path:
    """The shipped small vocoder, or one trained here for `--vocoder-steps` steps."""
    if PRETRAINED.is_file() and not args.retrain_vocoder:
        print(f"using the shipped vocoder {PRETRAINED.relative_to(REPO)} (--retrain-vocoder trains one here)")
        return PRETRAINED
    exp = f"{args.exp}/vocoder"
    run("train the vocoder", "wavegrad", "train", "-c", str(args.config), "--exp", exp, "--resume",
        "--set", f"training_config.max_steps={args.vocoder_steps}", "--set", "training_config.batch_size=4")
    return max((LOGS / exp).glob("checkpoint_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


class Pictures:
    """Figures saved as <samples>/<name>.png and shown in TensorBoard (logs/<exp>/) under the same name."""

    def __init__(self, samples: Path, logs: Path):
        self.samples, self.writer = samples, SummaryWriter(str(logs))

    def save(self, figure: plt.Figure, name: str) -> None:
        """Write and log `figure`, then close it."""
        (self.samples / name).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(self.samples / f"{name}.png")
        self.writer.add_figure(name, figure)


def search_schedule(args: argparse.Namespace, checkpoint: Path, logs: Path) -> Path:
    out = logs / "schedules" / "6iters.pt"
    if not out.is_file():
        run("search a 6-iteration schedule", "wavegrad", "search", "-ch", str(checkpoint), "-n", "6",
            "--clips", str(REPO / "filelists" / "test.txt"), "--jobs", "2", "--grid-size", str(args.grid_size),
            "--budget", str(args.search_budget), "--out", str(out), "-v", "yes")
    return out


def long_schedules(checkpoint: Path) -> dict[int, tuple[str, torch.Tensor]]:
    """25 and 50 iterations: the shipped searched schedules with the shipped vocoder, else Fibonacci and linear."""
    shipped = {n: SHIPPED_SCHEDULES / f"{n}iters.pt" for n in (25, 50)}
    if checkpoint == PRETRAINED and all(path.is_file() for path in shipped.values()):
        return {n: (str(path.relative_to(REPO)), wavegrad.load_schedule(path)) for n, path in shipped.items()}
    return {25: ("Fibonacci", fibonacci_betas(1e-6, 9e-6, 25)), 50: ("linear", linear_betas(50))}


def render_held_out(model: wavegrad.WaveGrad, schedules: dict[int, torch.Tensor], pictures: Pictures
                    ) -> tuple[list[dict], dict[int, float]]:
    """Copy synthesis of held-out clips at each schedule length; returns metric rows and mean RTFs."""
    data = model.config.data_config
    clips = read_filelist(REPO / "filelists" / "test.txt")[::6][:3]
    rows, rtfs, out = [], {n: [] for n in schedules}, pictures.samples / "vocoder"
    for clip in tqdm(clips, desc="rendering held-out clips", unit="clip"):
        generated = {}
        for n, betas in schedules.items():
            audio, generated[n], seconds = copy_synthesis(model, clip, betas)  # seeded noise
            rtfs[n].append(seconds / (audio.numel() / data.sample_rate))
            wavegrad.save_audio(out / f"{clip.stem}_{n}iters.wav", generated[n], data.sample_rate)
            rows.append({"clip": clip.stem, "iterations": n, **vocoder_metrics(generated[n], audio, data)})
        mels = {"ground truth": wavegrad.mel_spectrogram(audio, data)}
        mels.update({f"{n} iterations": wavegrad.mel_spectrogram(g, data) for n, g in generated.items()})
        pictures.save(plot_mels(mels), f"vocoder/{clip.stem}_mels")
    return rows, {n: float(np.mean(v)) for n, v in rtfs.items()}


def plot_rtf(rtfs: dict[int, float]) -> plt.Figure:
    """Real-time factor (compute s / audio s) against the number of iterations."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(list(rtfs), list(rtfs.values()), "o-")
    ax.set(xlabel="iterations", ylabel="real-time factor", title="Sampling cost on this machine")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def with_means(rows: list[dict], by: str) -> list[dict]:
    """The rows, then a "mean" row per value of `by` over the clips (NaN left out): the README's figures."""
    means = []
    for value in dict.fromkeys(row[by] for row in rows):
        group = [row for row in rows if row[by] == value]
        mean = {"clip": "mean", by: value}
        for key in (k for k, v in group[0].items() if isinstance(v, float)):
            finite = [row[key] for row in group if not math.isnan(row[key])]
            mean[key] = float(np.mean(finite)) if finite else math.nan
        means.append(mean)
    return rows + means


def train_conversion(args: argparse.Namespace) -> Path:
    """`voiceconv one-click` for the target voice (by default its training clips, so that its held-out clips stay
    unheard), on voice-perturbed content as the shipped base was trained; only the newest G_/D_ checkpoint stays
    unless --keep-checkpoints."""
    exp = f"{args.exp}_vc_{TARGET_SPEAKER}"
    recordings = args.vc_input or next(f for f in bundled_voices(LOGS / exp) if f.name == TARGET_SPEAKER)
    run("prepare, train and index the conversion model", "voiceconv", "one-click", "--exp", exp,
        "--input", str(recordings), "--vocoder-config", str(args.config), "--f0-method", args.f0_method,
        "--total-epoch", str(args.vc_epochs), "--batch-size", "8", "--preset", args.vc_preset,
        "--perturbed", "--perturbed-content",
        "--keep-checkpoints", "0" if args.keep_checkpoints else "1")
    return LOGS / exp


def convert_samples(args, checkpoint: Path, schedule: Path, vc_exp: Path, pictures: Pictures) -> None:
    """Listening samples: the English source clips converted into the target voice at each shift, with pictures
    of the source, vocoded source and converted mels."""
    voices = REPO / "data" / "voices"
    model = vc_exp / f"{vc_exp.name}.pt"
    index = next(vc_exp.glob("added_IVF*.index"), None)
    vocoder = wavegrad.load_model(checkpoint, device="cpu")
    data, out = vocoder.config.data_config, pictures.samples / "conversion"
    for clip in SOURCE_CLIPS:
        clean = pad_to_hop(wavegrad.load_audio(voices / clip, data.sample_rate), data.hop_length)
        mel = wavegrad.mel_spectrogram(clean, data)
        mels = {"source": mel, "vocoded source": wavegrad.mel_spectrogram(
            wavegrad.synthesize(vocoder, mel, schedule, generator=torch.Generator().manual_seed(0)), data)}
        for shift in SEMITONE_SHIFTS:
            target = out / f"{Path(clip).stem}_to_{TARGET_SPEAKER}_{shift:+d}.wav"
            command = ["voiceconv", "convert", "--model", str(model), "--input", str(voices / clip),
                       "--output", str(target), "--vocoder-checkpoint", str(checkpoint), "--schedule", str(schedule),
                       "--f0-up-key", str(shift), "--f0-method", args.f0_method]  # seeded noise
            run(f"convert {clip} ({shift:+d} semitones)", *command, *(["--index", str(index)] if index else []))
            mels[f"converted {shift:+d}"] = wavegrad.mel_spectrogram(wavegrad.load_audio(target, data.sample_rate),
                                                                     data)
        pictures.save(plot_mels(mels), f"conversion/{Path(clip).stem}_mels")


def evaluate_conversion(args, checkpoint: Path, schedule: Path, vc_exp: Path) -> Path:
    """`voiceconv evaluate` on held-out pairs: the demo's fine-tuned voice, and the shipped zero-shot model into
    that voice and into one the base never heard; returns the table's markdown file."""
    out = args.samples / EVALUATION_AUDIO.parent
    run("evaluate conversion on held-out pairs", "voiceconv", "evaluate",
        "--system", "fine-tuned", str(vc_exp / f"{vc_exp.name}.pt"), TARGET_SPEAKER,
        "--system", "zero-shot", "zeroshot", f"{TARGET_SPEAKER},{UNSEEN_SPEAKER}",
        "--clips-per-voice", str(args.eval_clips), "--reference-clips", "4", "--vocoder-checkpoint", str(checkpoint),
        "--schedule", str(schedule), "--f0-method", args.f0_method, "--out", str(out))
    return out / "evaluation.md"


def refresh_samples(samples: Path, curated: Path = CURATED) -> None:
    """Copy the run's samples over the curated ones (same relative paths; their README stays), all but the
    evaluation's converted clips (EVALUATION_AUDIO: dozens of files, which stay in the run's folder)."""
    if samples.resolve() == curated.resolve():
        return
    for path in sorted(p for p in samples.rglob("*") if p.is_file()):
        if EVALUATION_AUDIO in path.relative_to(samples).parents:
            continue
        target = curated / path.relative_to(samples)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    print(f"refreshed {curated.relative_to(REPO) if curated.is_relative_to(REPO) else curated} from {samples}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", default="demo", help="work files go to logs/<exp>/")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "small_16k.yaml", help="vocoder config")
    parser.add_argument("--retrain-vocoder", action="store_true",
                        help="train a vocoder here instead of the shipped one")
    parser.add_argument("--vocoder-steps", type=int, default=600)
    parser.add_argument("--grid-size", type=int, default=64)
    parser.add_argument("--search-budget", type=int, default=60)
    parser.add_argument("--vc-epochs", type=int, default=20)
    parser.add_argument("--vc-preset", default="base", help="conversion model size preset")
    parser.add_argument("--vc-input", type=Path, help=f"recordings of the target voice (default: the bundled "
                        f"{TARGET_SPEAKER}'s training clips, filelists/train.txt)")
    parser.add_argument("--eval-clips", type=int, default=1, help="held-out source clips per voice in the evaluation")
    parser.add_argument("--f0-method", default="harvest", help="pitch method for preparation and conversion")
    parser.add_argument("--samples", type=Path, help="output folder (default: logs/<exp>/samples, git-ignored)")
    parser.add_argument("--refresh-samples", action="store_true",
                        help=f"at the end, copy the outputs over the curated ones in {CURATED.name}/")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep every G_/D_ checkpoint of the conversion run (default: the newest only)")
    args = parser.parse_args(argv)
    set_cpu_threads()
    start, logs = time.perf_counter(), LOGS / args.exp
    args.samples = args.samples or logs / "samples"

    checkpoint = vocoder_checkpoint(args, logs)
    schedule = search_schedule(args, checkpoint, logs)
    pictures = Pictures(args.samples, logs)
    pictures.writer.add_image("schedule/6iters", plt.imread(schedule.with_suffix(".png")), dataformats="HWC")
    model = wavegrad.load_model(checkpoint, device="cpu")
    named = {6: ("searched by the demo", wavegrad.load_schedule(schedule)), **long_schedules(checkpoint)}
    print("\n== render held-out clips with 6, 25 and 50 iterations", flush=True)
    vocoder_rows, rtfs = render_held_out(model, {n: betas for n, (_, betas) in named.items()}, pictures)
    write_report(with_means(vocoder_rows, "iterations"), args.samples / "vocoder_report",
                 "Vocoder: copy synthesis of held-out clips; schedules: "
                 + ", ".join(f"{n} iterations {name}" for n, (name, _) in named.items()))
    pictures.save(plot_rtf(rtfs), "rtf_vs_iterations")

    vc_exp = train_conversion(args)
    convert_samples(args, checkpoint, schedule, vc_exp, pictures)
    reports = {"vocoder_report": args.samples / "vocoder_report.md",
               "conversion_evaluation": evaluate_conversion(args, checkpoint, schedule, vc_exp)}
    for name, report in reports.items():
        pictures.writer.add_text(name, report.read_text())
    pictures.writer.close()

    for report in reports.values():
        print("\n" + report.read_text())
    if args.refresh_samples:
        refresh_samples(args.samples)
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min; outputs in {args.samples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
