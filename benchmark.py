"""Benchmarks and the reference's entry points: real-time factor, Fibonacci schedules, grid search.

    python benchmark.py rtf [-c configs/default.json] [--iters 6 25 50] [--batch 1 4]
    python benchmark.py search-throughput -ch CHECKPOINT --clips filelists/test.txt [--jobs 2]
    python benchmark.py search-quality -ch CHECKPOINT --clips filelists/test.txt [--budget 60]
    python benchmark.py vocoder-eval -ch CHECKPOINT -ns schedules/6iters.pt schedules/50iters.pt [--out report]
                                     [--pitch-up 12]
    python benchmark.py curve [--add STEP REPORT.json]   # the shipped vocoder's held-out curve: csv -> png
    python benchmark.py pitch-trackers [--trackers harvest fcpe] [--clips filelists/test.txt] [--n-clips 18]
    python benchmark.py ablation [--steps 500] [--out logs/ablation]
    python benchmark.py recipe-cost [--precisions fp32 bf16]
    python benchmark.py converter-cost [--precisions fp32 bf16]
    python benchmark.py timbre-swap -m MODEL --exp EXP [--items 48]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from wavegrad import Config, WaveGrad, load_audio, load_config, load_model, synthesize
from wavegrad import search as wg_search
from wavegrad.atomic import atomic_write
from wavegrad.audio import MelSpectrogram, griffin_lim, mel_spectrogram, pad_to_hop
from wavegrad.checkpoint import read_checkpoint
from wavegrad.config import DEFAULT_BETAS_RANGE
from wavegrad.device import autocast_dtype
from wavegrad.filelist import read_filelist
from wavegrad.metrics import (
    contour_errors,
    f0_track,
    log_f0_correlation,
    mel_l1,
    pesq_stoi,
    vocoder_metrics,
    voiced_kept,
    write_report,
)
from wavegrad.paths import LOGS_HELP, logs_root
from wavegrad.schedule import fibonacci_betas, linear_betas, load_schedule, save_schedule
from wavegrad.scoring import Clips, distance, prepare_clips, render, score_schedules
from wavegrad.train import apply_overrides
from wavegrad.train import benchmark as train_benchmark
from wavegrad.trainer import checkpoints

REPO = Path(__file__).resolve().parent
CPU_PRECISIONS = ("fp32", "bf16")  # the autocast precisions a CPU can time (fp16 needs CUDA)


def fibonacci(b1: float = 1e-6, b2: float = 9e-6, n_iter: int = 25) -> list[float]:
    """The reference's Fibonacci initialisation [b1, b2, b1 + b2, ...] (n_iter betas)."""
    return fibonacci_betas(b1, b2, n_iter).tolist()


def generate_betas_grid(n_iter: int, betas_range: tuple[float, float] = DEFAULT_BETAS_RANGE,
                        max_size: int | None = 9 ** 5) -> torch.Tensor:
    """The reference's grid, [min(9**n_iter, max_size), n_iter]; see `wavegrad.search.generate_betas_grid`."""
    return wg_search.generate_betas_grid(n_iter, betas_range, max_size)


def iters_schedule_grid_search(model: WaveGrad, clips_filelist: str | Path, n_iter: int = 6,
                               betas_range: tuple[float, float] = DEFAULT_BETAS_RANGE, max_size: int | None = 9 ** 5,
                               refine_budget: int = 0, path_to_store_schedule: str | Path | None = None,
                               n_jobs: int = 1, backend: str = "loky", verbose: bool = True
                               ) -> tuple[torch.Tensor, dict[tuple[float, ...], float]]:
    """Grid search (plus optional refinement) as in the reference: returns (best betas [n_iter],
    {betas: score}); with `path_to_store_schedule` saves the betas and resumable stats beside them."""
    clips = prepare_clips(read_filelist(clips_filelist), model.config.data_config, n_iter)
    stats_path = Path(path_to_store_schedule).with_suffix(".stats.jsonl") if path_to_store_schedule else None
    evaluate = wg_search.Evaluator(model, clips, jobs=n_jobs, backend=backend, stats_path=stats_path,
                                   verbose=verbose)
    grid_size = None if max_size is None else max_size + 1  # the reference's grid points, plus the linear schedule
    result = wg_search.search(evaluate, n_iter, betas_range, grid_size, refine_budget)
    if path_to_store_schedule:
        save_schedule(result.betas, path_to_store_schedule)
    return result.betas, result.scores


def compute_rtf(sample: torch.Tensor, generation_time: float, sample_rate: int = 22050) -> float:
    """Seconds of compute per second of audio for `sample` [..., T] made in `generation_time` s."""
    return float(generation_time * sample_rate / sample.shape[-1])


def estimate_average_rtf_on_filelist(filelist_path: str | Path, model: WaveGrad, schedule: torch.Tensor,
                                     verbose: bool = True) -> dict:
    """Render each audio file's mel with `schedule`: {'rtfs', 'average', 'std'}."""
    data = model.config.data_config
    mel_fn = MelSpectrogram(data)
    rtfs = []
    for path in tqdm(read_filelist(filelist_path), disable=not verbose, unit="file"):
        mel = mel_fn(pad_to_hop(load_audio(path, data.sample_rate), data.hop_length))
        start = time.perf_counter()
        audio = synthesize(model, mel, schedule)
        rtfs.append(compute_rtf(audio, time.perf_counter() - start, data.sample_rate))
    stats = {"rtfs": rtfs, "average": float(np.mean(rtfs)), "std": float(np.std(rtfs))}
    if verbose:
        print(f"average rtf {stats['average']:.3f} ± {stats['std']:.3f} over {len(rtfs)} files")
    return stats


def _model(config: str | None, checkpoint: str | None) -> WaveGrad:
    """A checkpoint's model, or (speed does not depend on weights) a fresh one from `config` (default: the
    reference's configs/default.json)."""
    if checkpoint:
        return load_model(checkpoint, config, "cpu")
    config = config or str(Path(__file__).resolve().parent / "configs" / "default.json")
    return WaveGrad(load_config(config)).eval()


def gflop_per_audio_second(model: WaveGrad) -> float:
    """FLOPs (2 per multiply-add) of one network pass over 1 s of audio, in GFLOP."""
    data = model.config.data_config
    frames = data.sample_rate // data.hop_length
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, data.n_mels, frames), torch.zeros(1, frames * data.hop_length), torch.ones(1))
    return counter.get_total_flops() / 1e9 * data.sample_rate / (frames * data.hop_length)


def _time_synthesis(config: str, checkpoint: str | None, n_iter: int, batch: int, seconds: float,
                    repeats: int, threads: int | None) -> dict:
    """Runs in a fresh process so that its peak RSS is this measurement's alone."""
    if threads:
        torch.set_num_threads(threads)
    model = _model(config, checkpoint)
    data = model.config.data_config
    frames = int(seconds * data.sample_rate) // data.hop_length
    mel = torch.randn(batch, data.n_mels, frames, generator=torch.Generator().manual_seed(0)) - 3
    betas = linear_betas(n_iter)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    synthesize(model, mel[:, :, :8], betas)  # warm-up
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        synthesize(model, mel, betas)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    audio_seconds = batch * frames * data.hop_length / data.sample_rate
    elapsed = statistics.median(times)
    return {"rtf": elapsed / audio_seconds, "rtf_min": min(times) / audio_seconds,
            "cpu_rtf": statistics.median(cpu_times) / audio_seconds,
            "gflops": gflop_per_audio_second(model) * audio_seconds * n_iter / elapsed,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "base_mib": base_rss,
            "threads": torch.get_num_threads()}


def run_rtf(args: argparse.Namespace) -> None:
    """RTF = wall seconds per second of audio (median and best of the repeats); CPU s/s = process CPU
    seconds per audio second; GFLOP/s from the network's counted FLOPs at the median time."""
    print(f"{'iters':>5} {'batch':>5} {'RTF median':>10} {'RTF min':>8} {'CPU s/s':>8} {'GFLOP/s':>8} {'peak MiB':>9}")
    for n_iter in args.iters:
        for batch in args.batch:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                r = pool.submit(_time_synthesis, args.config, args.checkpoint, n_iter, batch, args.seconds,
                                args.repeats, args.threads).result()
            print(f"{n_iter:>5} {batch:>5} {r['rtf']:>10.3f} {r['rtf_min']:>8.3f} {r['cpu_rtf']:>8.3f} "
                  f"{r['gflops']:>8.1f} "
                  f"{r['peak_mib']:>9.0f} ({r['base_mib']:.0f} before synthesis, {r['threads']} threads)", flush=True)


def reference_style_scores(model: WaveGrad, clips: Clips, grid: torch.Tensor, n_jobs: int = 2) -> list[float]:
    """The reference's loop re-created: a thread pool maps candidates one at a time, each a fresh
    generation of the clips with its own random noise, scored by log-mel L1."""
    def score(betas: torch.Tensor) -> float:
        audio = synthesize(model, clips.mels, betas)
        return mel_l1(clips.mel_fn(audio), clips.mels).mean().item()

    with ThreadPool(processes=n_jobs) as pool:
        return list(tqdm(pool.imap(score, grid), total=len(grid), unit="cand", desc="reference loop"))


def run_search_throughput(args: argparse.Namespace) -> None:
    model = _model(args.config, args.checkpoint)
    clips = prepare_clips(read_filelist(args.clips), model.config.data_config, args.n_iter, args.seconds)
    grid = generate_betas_grid(args.n_iter, max_size=args.candidates)
    for round_ in range(args.rounds):  # alternate, since absolute times drift on shared cores
        start, cpu_start = time.perf_counter(), time.process_time()
        reference_style_scores(model, clips, grid, args.jobs)
        reference, reference_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        evaluate = wg_search.Evaluator(model, clips, jobs=args.jobs, backend=args.backend, batch_size=args.batch_size)
        if round_ == 0:  # start the workers (a one-off cost that a long search amortises)
            start = time.perf_counter()
            evaluate(torch.stack([linear_betas(args.n_iter), fibonacci_betas(n_iter=args.n_iter).clamp(max=0.9)]))
            print(f"worker start-up and first batch: {time.perf_counter() - start:.1f} s", flush=True)
            evaluate.cpu_seconds = 0.0
        start = time.perf_counter()
        evaluate(grid)
        ours = time.perf_counter() - start
        print(f"round {round_}: reference-style {len(grid) / reference:.3f} cand/s "
              f"({reference_cpu / len(grid):.1f} CPU s/cand); ours ({args.jobs} {args.backend} jobs, batches of "
              f"{args.batch_size}) {len(grid) / ours:.3f} cand/s ({evaluate.cpu_seconds / len(grid):.1f} CPU s/cand "
              f"in the workers): x{reference / ours:.2f} wall, x{reference_cpu / evaluate.cpu_seconds:.2f} CPU",
              flush=True)


def held_out_quality(model: WaveGrad, clips: Clips, betas: torch.Tensor) -> dict[str, float]:
    """Mean log-mel L1, and PESQ (wide-band) and STOI where installed, of `clips` rendered once with
    `betas` [n_iter] and their noise."""
    audio = render(model, clips, betas[None])
    rate = model.config.data_config.sample_rate
    scores = [pesq_stoi(g.numpy(), r.numpy(), rate) for g, r in zip(audio, clips.audio, strict=True)]
    mel_l1 = distance(audio, clips.audio, clips.mels, clips.mel_fn).mean()
    return {"log-mel L1": float(mel_l1), **{name: float(np.mean([s[name] for s in scores])) for name in scores[0]}}


def run_search_quality(args: argparse.Namespace) -> None:
    """Equal budgets: the best of a grid subsample vs a small grid plus refinement, judged on other clips."""
    model = _model(args.config, args.checkpoint)
    paths = read_filelist(args.clips)
    data = model.config.data_config
    search_clips = prepare_clips(paths[::2], data, args.n_iter, args.seconds, args.n_clips, seed=0)
    held_out = prepare_clips(paths[1::2], data, args.n_iter, args.held_out_seconds, args.n_held_out, seed=1)
    evaluate = wg_search.Evaluator(model, search_clips, jobs=args.jobs, backend=args.backend)
    grid_only = wg_search.search(evaluate, args.n_iter, grid_size=args.budget, refine_budget=0)
    start_size = max(1, args.budget // 4)
    refined = wg_search.search(evaluate, args.n_iter, grid_size=start_size + 1,
                               refine_budget=args.budget - start_size - 1)
    candidates = {"linear": linear_betas(args.n_iter), f"grid of {args.budget}": grid_only.betas,
                  f"grid of {start_size} + refinement": refined.betas}
    if args.big_grid:
        candidates[f"grid of {args.big_grid}"] = wg_search.search(evaluate, args.n_iter, grid_size=args.big_grid,
                                                                  refine_budget=0).betas
    if args.n_iter >= 3:
        candidates["fibonacci"] = fibonacci_betas(n_iter=args.n_iter).clamp(max=0.9)
    for name, betas in candidates.items():
        searched = score_schedules(model, search_clips, betas[None])[0]
        held_out_scores = ", ".join(f"{k} {v:.4f}" for k, v in held_out_quality(model, held_out, betas).items())
        print(f"{name:>32}: log-mel L1 search clips {searched:.4f}; held-out clips {held_out_scores}  "
              f"betas {[float(f'{b:.3g}') for b in betas]}", flush=True)


VOCODER_METRICS = ("log_mel_l1", "mr_stft", "pesq_wb", "stoi", "vuv_error", "f0_rmse_hz", "f0_gross_error",
                   "f0_corr", "f0_corr_recorded")


def vocoder_renderer(model: WaveGrad, betas: torch.Tensor, seed: int = 0):  # noqa: ANN201
    """mel [n_mels, F] -> audio [F * hop] with `betas` and seeded noise (every clip gets the same draws)."""
    return lambda mel: synthesize(model, mel, betas, generator=torch.Generator().manual_seed(seed))


def world_pitch_up(audio: torch.Tensor, semitones: float, sample_rate: int) -> torch.Tensor:
    """audio [samples] moved `semitones` up by WORLD with its formants kept (harvest f0), the same length:
    speech as a conversion at `--f0-up-key` renders it."""
    from voiceconv.perturb import pitch_shifted_clip
    from voiceconv.pitch import pitch_estimator

    return torch.from_numpy(pitch_shifted_clip(audio.numpy(), sample_rate, (semitones,),
                                               pitch_estimator("harvest"))[0]).float()


HeldOutClip = tuple[Path, torch.Tensor, torch.Tensor]  # (path, audio to render, the clip as recorded)


def held_out_clips(paths: list[Path], data_config, pitch_up: float = 0.0) -> list[HeldOutClip]:
    """(path, audio, recorded) of each clip, both [samples] padded to whole hops: `audio` is the clip as recorded,
    or with `pitch_up`, moved up that many semitones by `world_pitch_up`."""
    clips = []
    for path in tqdm(paths, desc="loading", unit="clip", leave=False):
        recorded = pad_to_hop(load_audio(path, data_config.sample_rate), data_config.hop_length)
        moved = world_pitch_up(recorded, pitch_up, data_config.sample_rate) if pitch_up else recorded
        clips.append((path, moved, recorded))
    return clips


def held_out_rows(render_mel, clips: list[HeldOutClip], data_config) -> list[dict]:
    """Every vocoder metric of each `held_out_clips` clip rendered from its own mel by `render_mel(mel [n_mels, F])
    -> audio [F * hop]`, with the clip's voice (its folder); for a moved clip also `f0_corr_recorded`, the
    rendering's F0 correlation with the contour as recorded (what a conversion at `--f0-up-key` is scored by)."""
    rows = []
    for path, audio, recorded in tqdm(clips, desc="scoring", unit="clip", leave=False):
        generated = render_mel(mel_spectrogram(audio, data_config))
        row = {"voice": path.parent.name, **vocoder_metrics(generated, audio, data_config)}
        if audio is not recorded:
            f0_generated, f0_recorded = (f0_track(a.numpy(), data_config.sample_rate) for a in (generated, recorded))
            row["f0_corr_recorded"] = log_f0_correlation(f0_generated, f0_recorded)
        rows.append(row)
    return rows


def _mean_of_defined(values: list[float]) -> float:
    """Mean of the values that are not NaN (F0 RMSE is NaN for a clip with no frame voiced in both), else NaN."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def schedule_from_spec(spec: str) -> torch.Tensor:
    """Betas from a schedule file, or `linear:N` (N betas over the training range)."""
    if spec.startswith("linear:"):
        return linear_betas(int(spec.removeprefix("linear:")))
    return load_schedule(spec)


def schedule_labels(specs: list[str]) -> list[str]:
    """Report labels of schedule specs: the file name, or the whole spec where two share a name."""
    names = [Path(spec).name for spec in specs]
    return [name if names.count(name) == 1 else spec for name, spec in zip(names, specs, strict=True)]


def run_vocoder_eval(args: argparse.Namespace) -> None:
    """Copy synthesis of held-out clips with each schedule (and Griffin-Lim from the same mels): every vocoder
    metric per clip, and means per voice first, as a markdown and JSON report."""
    model = _model(args.config, args.checkpoint)
    data = model.config.data_config
    renderers = {label: vocoder_renderer(model, schedule_from_spec(spec))
                 for label, spec in zip(schedule_labels(args.schedules), args.schedules, strict=True)}
    if args.griffin_lim:
        renderers["Griffin-Lim (64 iterations)"] = lambda mel: griffin_lim(mel, data)
    paths = [path for filelist in args.clips for path in read_filelist(filelist)[: args.n_clips]]
    clips = held_out_clips(paths, data, args.pitch_up)
    clip_rows, means = [], []
    for name, render_mel in renderers.items():
        rows = [{"schedule": name, "clip": path.stem, **row}
                for path, row in zip(paths, held_out_rows(render_mel, clips, data), strict=True)]
        clip_rows += rows
        for voice in dict.fromkeys(row["voice"] for row in rows):
            chosen = [row for row in rows if row["voice"] == voice]
            means.append({"schedule": name, "clip": f"mean of {len(chosen)}", "voice": voice,
                          **{m: _mean_of_defined([row[m] for row in chosen]) for m in VOCODER_METRICS
                             if m in chosen[0]}})
    moved = f", clips moved up {args.pitch_up:g} semitones by WORLD" if args.pitch_up else ""
    write_report(means + clip_rows, args.out, f"Vocoder copy synthesis: {args.checkpoint}{moved}")
    print(args.out.with_suffix(".md").read_text())


TRACKER_METRICS = ("f0_corr", "f0_gross_error", "voiced_kept", "vuv_error", "f0_rmse_hz")


def known_contour_rows(path: Path, trackers: dict, semitones: list[float]) -> list[dict]:
    """Pitch trackers on speech of known f0: the clip (16 kHz) resynthesised by WORLD at its own harvest contour
    moved by each of `semitones`, whose f0 is then exactly that contour. Per shift and tracker (name -> f0 per
    10 ms frame of 16 kHz audio), `contour_errors` against it and `voiced_kept`, the share of its voiced frames
    that the tracker calls voiced."""
    from voiceconv.perturb import pitch_shifted
    from voiceconv.pitch import pitch_estimator
    from voiceconv.rates import FRONTEND_RATE

    audio = load_audio(path, FRONTEND_RATE).numpy()
    contour = pitch_estimator("harvest")(audio)
    rows = []
    for shift in semitones:
        truth, known = contour * 2 ** (shift / 12), pitch_shifted(audio, contour, (shift,), FRONTEND_RATE)[0]
        for name, track in trackers.items():
            estimate = track(known)
            rows.append({"tracker": name, "semitones": shift, "clip": path.stem, "voice": path.parent.name,
                         **contour_errors(estimate, truth), "voiced_kept": voiced_kept(estimate, truth)})
    return rows


def run_pitch_trackers(args: argparse.Namespace) -> None:
    """Each tracker against the known contours of `known_contour_rows`: means per shift and tracker, then a row
    per clip, as a markdown and JSON report."""
    from voiceconv.pitch import pitch_estimator

    trackers = {name: pitch_estimator(name) for name in args.trackers}
    paths = [path for filelist in args.clips for path in read_filelist(filelist)[: args.n_clips]]
    rows = [row for path in tqdm(paths, desc="known contours", unit="clip")
            for row in known_contour_rows(path, trackers, args.semitones)]
    means = [{"tracker": name, "semitones": shift, "clip": f"mean of {len(chosen)}",
              **{m: _mean_of_defined([row[m] for row in chosen]) for m in TRACKER_METRICS}}
             for shift in args.semitones for name in args.trackers
             if (chosen := [row for row in rows if row["tracker"] == name and row["semitones"] == shift])]
    write_report(means + rows, args.out, "Pitch trackers on WORLD resyntheses of held-out clips at their harvest "
                 "contour, moved by each shift: the truth is the contour given to WORLD")
    print(args.out.with_suffix(".md").read_text())


CURVE_COLUMNS = ("step", "schedule", "voices", "pesq_wb", "stoi")
CURVE_TARGETS = {"pesq_wb": 2.0, "stoi": 0.94}  # issue 11's targets at 6 iterations
CURVE_TITLES = {"pesq_wb": "PESQ-wb", "stoi": "STOI"}


def curve_points(step: int, report: Path, unseen: set[str]) -> list[dict]:
    """Points of the held-out curve from a `vocoder-eval` JSON report: per schedule, PESQ-wb and STOI averaged
    over the per-voice means of the training voices, and of the `unseen` voices."""
    try:
        rows = json.loads(report.read_text())["rows"]
        means = [row for row in rows if row["clip"].startswith("mean of")]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{report}: not a vocoder-eval report ({exc.__class__.__name__}); make one with "
              "`python benchmark.py vocoder-eval ... --out REPORT`", file=sys.stderr)
        raise SystemExit(2) from None
    points = []
    for schedule in dict.fromkeys(row["schedule"] for row in means):
        chosen = [row for row in means if row["schedule"] == schedule]
        points += [{"step": step, "schedule": schedule, "voices": group["voices"].split()[0],
                    **{m: round(group[m], 3) for m in CURVE_TARGETS}}
                   for group in summarise(schedule, chosen, unseen, {})]
    return points


def plot_curve(points: list[dict], path: Path) -> None:
    """PESQ-wb and STOI against training steps: a colour per schedule, solid for the training voices and dashed
    for the unseen ones, and the targets."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    colours = {schedule: f"C{i}" for i, schedule in enumerate(dict.fromkeys(p["schedule"] for p in points))}
    for ax, metric in zip(figure.subplots(1, 2), CURVE_TARGETS, strict=True):
        for schedule, voices in dict.fromkeys((p["schedule"], p["voices"]) for p in points):
            line = sorted((int(p["step"]), float(p[metric])) for p in points
                          if (p["schedule"], p["voices"]) == (schedule, voices))
            ax.plot(*zip(*line, strict=True), "o-" if voices == "training" else "s--", color=colours[schedule],
                    label=f"{schedule}, {voices} voices")
        ax.axhline(CURVE_TARGETS[metric], color="grey", linestyle=":", label="target")
        ax.set(title=f"held-out {CURVE_TITLES[metric]}", xlabel="training steps")
        ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def run_curve(args: argparse.Namespace) -> None:
    """Append a vocoder-eval report's points to the curve's CSV (none of whose step and schedule is there yet),
    then plot it."""
    points = []
    if args.csv.exists():
        with args.csv.open(newline="") as f:
            points = list(csv.DictReader(f))
    if args.add:
        if not args.add[0].isdigit():
            print(f"--add {args.add[0]} {args.add[1]}: give the training step first, e.g. --add 15000 report.json",
                  file=sys.stderr)
            raise SystemExit(2)
        step, report = int(args.add[0]), Path(args.add[1])
        new = curve_points(step, report, set(args.unseen))
        known = {(int(p["step"]), p["schedule"]) for p in points}
        clash = next((p["schedule"] for p in new if (step, p["schedule"]) in known), None)
        if clash:
            print(f"{args.csv}: step {step} of {clash} is already on the curve; remove its rows to replace them",
                  file=sys.stderr)
            raise SystemExit(2)
        points += new
        with atomic_write(args.csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, CURVE_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(sorted(points, key=lambda p: int(p["step"])))
    plot_curve(points, args.png)
    print(f"{len(points)} points -> {args.png}")


# Ablation runs: every recipe setting is given, whatever the base config's defaults. "+ prior" and
# "+ prior + EMA" are the trained and the EMA weights of one run (EMA does not change the training
# trajectory, it only adds its update's CPU time).
_RECIPE = ("model_config.prior={}", "training_config.ema_decay={}", "training_config.mrstft_loss_weight={}")
ABLATION_RUNS = {name: [key.format(value) for key, value in zip(_RECIPE, values, strict=True)]
                 for name, values in (("reference", ("standard", 0, 0)), ("prior_ema", ("energy", 0.999, 0)),
                                      ("prior_ema_mrstft", ("energy", 0.999, 0.1)))}
ABLATION_ROWS = [("reference recipe", "reference", False), ("+ energy prior", "prior_ema", False),
                 ("+ prior + EMA", "prior_ema", True), ("+ prior + EMA + MR-STFT loss", "prior_ema_mrstft", True)]


def train_steps(config: str, logdir: Path, overrides: list[str], steps: int, threads: int) -> dict:
    """Train (or resume) a run in a child process up to `steps` steps; returns its newest checkpoint."""
    sets = [*overrides, f"training_config.logdir={logdir}", f"training_config.max_steps={steps}",
            "training_config.num_workers=0", "training_config.test_interval=25",
            "training_config.checkpoint_interval=100"]
    command = [sys.executable, "-m", "wavegrad", "train", "-c", config, "--resume"]
    for item in sets:
        command += ["--set", item]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return read_checkpoint(checkpoints(logdir)[-1])


def recipe_costs(config: Config, repeats: int, runs: dict[str, list[str]] = ABLATION_RUNS) -> dict[str, float]:
    """Median CPU seconds per training step of each run (name -> config overrides; by default each ablation
    recipe), timed alternately in this process on the same random batch (so that load on the machine affects
    every run alike), on one thread (so that no OpenMP spin-waiting is counted)."""
    torch.set_num_threads(1)
    t = config.training_config
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, overrides in runs.items():
            timing = train_benchmark(apply_overrides(config, overrides), t.batch_size, t.segment_length, 1, "cpu")
            seconds[name].append(timing["cpu_s_per_step"])
    return {name: statistics.median(values) for name, values in seconds.items()}


def ablation_steps(args: argparse.Namespace, config: Config) -> tuple[dict[str, int], dict[str, float]]:
    """Steps of each recipe for one CPU-time budget: the reference recipe's `--steps`, scaled by its cost per
    step over each recipe's. The costs are measured side by side once and kept in <out>/costs.json, so that a
    rerun trains to the same counts. (A run's own CPU clock is no fair budget on a shared machine: OpenMP
    threads that wait for a preempted sibling spin, and it counts that.)"""
    path = args.out / "costs.json"
    if path.is_file():
        costs = json.loads(path.read_text())
    else:
        print(f"timing a training step of each recipe, {args.cost_repeats} times, alternating", flush=True)
        costs = recipe_costs(config, args.cost_repeats)
        torch.set_num_threads(args.threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(costs, indent=2))
    return {name: round(args.steps * costs["reference"] / costs[name]) for name in ABLATION_RUNS}, costs


def summarise(label: str, rows: list[dict], unseen: set[str], extra: dict) -> list[dict]:
    """Mean metrics of the rows over the training voices and over the unseen voices: two table rows."""
    table = []
    for group, keep in (("training voices", lambda v: v not in unseen), ("unseen voice", lambda v: v in unseen)):
        chosen = [r for r in rows if keep(r["voice"])]
        if chosen:
            table.append({"recipe": label, "voices": group, "clips": len(chosen), **extra,
                          **{m: _mean_of_defined([r[m] for r in chosen]) for m in VOCODER_METRICS if m in chosen[0]}})
    return table


def run_ablation(args: argparse.Namespace) -> None:
    """Each recipe trained from scratch for the same CPU time, then a 6-iteration schedule searched for
    each model on 2 held-out clips, and every metric on other held-out clips (training voices and an
    unseen voice), beside Griffin-Lim from the same mels."""
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    steps, costs = ablation_steps(args, config)
    runs = {name: train_steps(args.config, args.out / name, ABLATION_RUNS[name], steps[name], args.threads)
            for name in args.runs}
    data = config.data_config
    test_paths = read_filelist(args.clips)
    unseen_paths = read_filelist(args.unseen)[: args.n_unseen]
    eval_paths = test_paths[1::2][: args.n_held_out] + unseen_paths
    search_clips = prepare_clips(test_paths[::2], data, args.n_iter, seconds=1.0, n_clips=2, seed=0)
    unseen = {p.parent.name for p in unseen_paths}
    eval_clips = held_out_clips(eval_paths, data)
    table = summarise("Griffin-Lim (64 iterations)", held_out_rows(
        lambda mel: griffin_lim(mel, data), eval_clips, data), unseen, {})
    for label, run, ema in ABLATION_ROWS:
        if run not in runs:
            continue
        payload = runs[run]
        model = load_model(checkpoints(args.out / run)[-1], device="cpu", ema=ema)
        evaluate = wg_search.Evaluator(model, search_clips, verbose=False)
        betas = wg_search.search(evaluate, args.n_iter, grid_size=args.grid_size, refine_budget=args.budget).betas
        rows = held_out_rows(vocoder_renderer(model, betas), eval_clips, data)
        extra = {"steps": payload["step"], "CPU s/step": costs[run], "CPU s": payload["step"] * costs[run]}
        table += summarise(label, rows, unseen, extra)
        print(f"{label}: {payload['step']} steps ({payload['cpu_seconds']:.0f} CPU s on its own clock); "
              f"6-iteration schedule {[float(f'{b:.3g}') for b in betas]}", flush=True)
    budget = args.steps * costs["reference"]
    write_report(table, args.out / "ablation", f"Equal-compute ablation: {budget:.0f} training CPU s per recipe "
                 f"({args.steps} steps of the reference recipe), {args.n_iter} iterations")
    print((args.out / "ablation.md").read_text())


def print_costs(costs: dict[str, float], repeats: int) -> None:
    """One line per run: its median CPU seconds per step and its ratio to the first run's."""
    first = next(iter(costs))
    for name, cost in costs.items():
        print(f"{name}: {cost:.3f} CPU s per step (median of {repeats}), x{cost / costs[first]:.3f} {first}")


def run_recipe_cost(args: argparse.Namespace) -> None:
    """CPU seconds per training step of each ablation recipe, or of the config's own recipe at each of
    `--precisions`, alternating in one process (same random batch)."""
    runs = ({p: [f"training_config.precision={p}"] for p in args.precisions} if args.precisions else ABLATION_RUNS)
    print_costs(recipe_costs(load_config(args.config), args.repeats, runs), args.repeats)


def run_converter_cost(args: argparse.Namespace) -> None:
    """CPU seconds per training step (mel loss, no discriminator) of a conversion model on one random batch at
    each autocast precision, alternating in one process, on one thread."""
    from voiceconv.model import Converter, preset
    from voiceconv.rates import CONTENT_HOP, FRONTEND_RATE, PITCH_HOP
    from voiceconv.train import Networks, TrainOptions, training_step

    torch.set_num_threads(1)
    config, options, g = preset(args.preset), TrainOptions(), torch.Generator().manual_seed(0)
    samples = round(args.seconds * FRONTEND_RATE)
    frames, pitch_frames = samples // CONTENT_HOP, samples // PITCH_HOP
    batch = {"content": torch.randn(args.batch_size, frames, config.content_dim, generator=g),
             "coarse": torch.randint(1, 256, (args.batch_size, pitch_frames), generator=g),
             "f0": 100 + 200 * torch.rand(args.batch_size, pitch_frames, generator=g),
             "speaker": torch.zeros(args.batch_size, dtype=torch.long),
             "mel": torch.randn(args.batch_size, config.n_mels, round(args.seconds * config.frame_rate), generator=g)}
    nets = [Networks.create("G", Converter(config), options)]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    seconds: dict[str, list[float]] = {p: [] for p in args.precisions}
    for repeat in range(args.repeats + 1):  # round 0 warms up
        for precision in args.precisions:
            start = time.process_time()
            training_step(nets, nets[0].model, None, batch, scaler, autocast_dtype(torch.device("cpu"), precision),
                          options)
            if repeat:
                seconds[precision].append(time.process_time() - start)
    print_costs({p: statistics.median(v) for p, v in seconds.items()}, args.repeats)


def timbre_swap(model: torch.nn.Module, dataset, voices: int, items: int, seed: int = 0) -> list[list[float]]:
    """Mean L1 (log10 mel) of a matched-mel model over `items` segments drawn (seed) from each of the `voices`
    copies of a virtual-voice dataset, given each copy's matched mels in turn: [target voice][mels' voice].
    The content, pitch and target of the segment stay its own."""
    import torch.nn.functional as F

    n, d = len(dataset) // voices, model.config.content_dim
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:items].tolist()
    table = [[0.0] * voices for _ in range(voices)]
    with torch.no_grad():
        for target in range(voices):
            for donor in range(voices):
                losses = []
                for i in chosen:
                    item, other = dataset[target * n + i], dataset[donor * n + i]
                    content = torch.cat([item.content[:, :d], other.content[:, d:]], 1)[None]
                    mel = model(content, item.coarse[None], item.f0[None], torch.zeros(1, dtype=torch.long),
                                item.mel.shape[1])
                    losses.append(F.l1_loss(mel[0], item.mel).item())
                table[target][donor] = float(np.mean(losses))
    return table


def run_timbre_swap(args: argparse.Namespace) -> None:
    """Does a zero-shot `--matched-mel` model take the timbre from its matched mels? Its loss on the segments of
    each voice of a prepared experiment with virtual voices, given the matched mels of each voice."""
    from voiceconv import knn
    from voiceconv.checkpoint import load_converter
    from voiceconv.config import open_experiment
    from voiceconv.content import experiment_encoder
    from voiceconv.data import ExperimentDataset
    from voiceconv.perturb import VOICE_RATIOS

    model, _ = load_converter(args.model, "cpu")
    if not model.config.matched_mel:
        print(f"{args.model}: not a --matched-mel model; train one with `voiceconv train --zero-shot --matched-mel`",
              file=sys.stderr)
        raise SystemExit(2)
    exp, config = open_experiment(args.exp, args.logs_dir)
    dataset = ExperimentDataset(exp.filelist, exp.mel_dir, True, prematch_k=knn.K, matched_mels=config.audio,
                                voice_ratios=VOICE_RATIOS, match_keys=experiment_encoder(config).match_keys)
    names = ["original", *(f"x{r:g}" for r in VOICE_RATIOS)]
    table = timbre_swap(model, dataset, len(names), args.items, args.seed)
    print("| target voice | " + " | ".join(f"mels of {name}" for name in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for name, row in zip(names, table, strict=True):
        print(f"| {name} | " + " | ".join(f"{value:.3f}" for value in row) + " |")


def main(argv: list[str] | None = None) -> None:
    from voiceconv.pitch import METHODS as PITCH_METHODS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rtf = commands.add_parser("rtf", help="real-time factor, GFLOP/s and peak memory of synthesize")
    rtf.add_argument("--iters", type=int, nargs="+", default=[6, 25, 50])
    rtf.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    rtf.add_argument("--seconds", type=float, default=2.0, help="audio per batch element")
    rtf.add_argument("--repeats", type=int, default=3)
    rtf.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    rtf.set_defaults(run=run_rtf)
    for name, run, help_text in (("search-throughput", run_search_throughput, "candidates/s vs the reference loop"),
                                 ("search-quality", run_search_quality, "refined vs grid-only at equal budget")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--clips", default="filelists/test.txt")
        sub.add_argument("-n", "--n-iter", type=int, default=6)
        sub.add_argument("--seconds", type=float, default=1.0)
        sub.add_argument("--jobs", type=int, default=2)
        sub.add_argument("--backend", default="loky")
        sub.set_defaults(run=run)
    commands.choices["search-throughput"].add_argument("--candidates", type=int, default=16)
    commands.choices["search-throughput"].add_argument("--batch-size", type=int, default=4)
    commands.choices["search-throughput"].add_argument("--rounds", type=int, default=1)
    commands.choices["search-quality"].add_argument("--budget", type=int, default=60)
    commands.choices["search-quality"].add_argument("--n-clips", type=int, default=2)
    commands.choices["search-quality"].add_argument("--big-grid", type=int, default=0,
                                                    help="also the best of a grid this large (0: skip)")
    commands.choices["search-quality"].add_argument("--n-held-out", type=int, default=4)
    commands.choices["search-quality"].add_argument("--held-out-seconds", type=float, default=3.0,
                                                    help="length of each held-out clip (PESQ wants seconds)")
    for sub in commands.choices.values():
        sub.add_argument("-c", "--config", default=None, help="network config (default: configs/default.json; "
                         "with -ch only needed for reference-format checkpoints)")
        sub.add_argument("-ch", "--checkpoint", default=None, help="default: untrained weights (speed only)")
    evaluation = commands.add_parser("vocoder-eval", help="log-mel L1, MR-STFT, F0, V/UV, PESQ and STOI of copy "
                                     "synthesis with each schedule")
    evaluation.add_argument("-ch", "--checkpoint", required=True)
    evaluation.add_argument("-c", "--config", default=None, help="only for reference-format checkpoints")
    evaluation.add_argument("-ns", "--schedules", nargs="+", required=True,
                            help="schedule files (e.g. schedules/6iters.pt) or linear:N")
    evaluation.add_argument("--clips", nargs="+", default=[str(REPO / "filelists" / "test.txt")],
                            help="filelists of held-out clips (e.g. also filelists/heldout_ru.txt, an unseen voice)")
    evaluation.add_argument("--n-clips", type=int, default=3, help="the first this many clips of each list")
    evaluation.add_argument("--griffin-lim", action="store_true", help="also Griffin-Lim from the same mels")
    evaluation.add_argument("--pitch-up", type=float, default=0.0, metavar="SEMITONES",
                            help="first move each clip up by WORLD (formants kept), as conversions at --f0-up-key do")
    evaluation.add_argument("--out", type=Path, default=Path("vocoder_eval"), help="writes <out>.md and <out>.json")
    evaluation.set_defaults(run=run_vocoder_eval)
    trackers = commands.add_parser("pitch-trackers", help="F0 correlation, gross error and voicing of pitch trackers "
                                   "on speech of known f0 (WORLD resyntheses of held-out clips)")
    trackers.add_argument("--trackers", nargs="+", default=["harvest", "fcpe"], choices=PITCH_METHODS,
                          metavar="METHOD", help=f"any of {', '.join(PITCH_METHODS)} (default: %(default)s)")
    trackers.add_argument("--clips", nargs="+", default=[str(REPO / "filelists" / "test.txt")], help="filelists")
    trackers.add_argument("--n-clips", type=int, default=18, help="the first this many clips of each list")
    trackers.add_argument("--semitones", type=float, nargs="+", default=[0.0, 12.0],
                          help="shifts of the known contour (default: %(default)s)")
    trackers.add_argument("--out", type=Path, default=Path("pitch_trackers"), help="writes <out>.md and <out>.json")
    trackers.set_defaults(run=run_pitch_trackers)
    curve = commands.add_parser("curve", help="the shipped vocoder's held-out curve: add a report's points, plot")
    curve.add_argument("--add", nargs=2, metavar=("STEP", "REPORT"), help="a vocoder-eval JSON report of the "
                       "checkpoint at STEP training steps")
    curve.add_argument("--unseen", nargs="+", default=["ru_voice"], help="voices outside training")
    curve.add_argument("--csv", type=Path, default=REPO / "pretrained" / "curve.csv")
    curve.add_argument("--png", type=Path, default=REPO / "pretrained" / "curve.png")
    curve.set_defaults(run=run_curve)
    ablation = commands.add_parser("ablation", help="train each recipe for the same CPU time and score it")
    ablation.add_argument("-c", "--config", default=str(REPO / "configs" / "small_16k.yaml"))
    ablation.add_argument("--runs", nargs="+", default=list(ABLATION_RUNS), choices=list(ABLATION_RUNS))
    ablation.add_argument("--steps", type=int, default=500, help="training steps of the reference recipe; the "
                          "others get the same CPU time (their steps scaled by the measured cost per step)")
    ablation.add_argument("--cost-repeats", type=int, default=3, help="alternating timings per recipe")
    ablation.add_argument("--threads", type=int, default=2, help="CPU threads for training and scoring")
    ablation.add_argument("--out", type=Path, default=logs_root() / "ablation", help="run folders and the report")
    ablation.add_argument("--clips", default=str(REPO / "filelists" / "test.txt"),
                          help="held-out clips of the training voices (even ones: search; odd ones: scoring)")
    ablation.add_argument("--unseen", default=str(REPO / "filelists" / "heldout_ru.txt"),
                          help="clips of a voice outside training")
    ablation.add_argument("--n-held-out", type=int, default=None, help="scoring clips of the training voices "
                          "(default: every odd one of --clips)")
    ablation.add_argument("--n-unseen", type=int, default=6, help="scoring clips of the unseen voice")
    ablation.add_argument("-n", "--n-iter", type=int, default=6)
    ablation.add_argument("--grid-size", type=int, default=30)
    ablation.add_argument("--budget", type=int, default=40, help="refinement evaluations per schedule search")
    ablation.set_defaults(run=run_ablation)
    cost = commands.add_parser("recipe-cost", help="CPU time per training step of each ablation recipe or precision")
    cost.add_argument("-c", "--config", default=str(REPO / "configs" / "small_16k.yaml"))
    cost.add_argument("--repeats", type=int, default=4)
    cost.add_argument("--precisions", nargs="+", choices=CPU_PRECISIONS,
                      help="time the config's own recipe at these autocast precisions instead of the ablation recipes")
    cost.set_defaults(run=run_recipe_cost)
    converter = commands.add_parser("converter-cost", help="CPU time per conversion-model training step per precision")
    converter.add_argument("--preset", default="base")
    converter.add_argument("--batch-size", type=int, default=8)
    converter.add_argument("--seconds", type=float, default=4.0, help="segment length")
    converter.add_argument("--precisions", nargs="+", choices=CPU_PRECISIONS, default=list(CPU_PRECISIONS))
    converter.add_argument("--repeats", type=int, default=5)
    converter.set_defaults(run=run_converter_cost)
    swap = commands.add_parser("timbre-swap", help="L1 of a --matched-mel model given another voice's matched mels")
    swap.add_argument("-m", "--model", required=True, help="a zero-shot --matched-mel model (export or G_<step>.pt)")
    swap.add_argument("--exp", required=True, help="a prepared experiment (pitch, features, mel targets)")
    swap.add_argument("--logs-dir", default=None, help=LOGS_HELP)
    swap.add_argument("--items", type=int, default=48, help="segments per voice")
    swap.add_argument("--seed", type=int, default=0)
    swap.set_defaults(run=run_timbre_swap)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
