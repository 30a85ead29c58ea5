"""Benchmarks and the reference's entry points: real-time factor, Fibonacci schedules, grid search.

    python benchmark.py rtf [-c configs/default.json] [--iters 6 25 50] [--batch 1 4]
    python benchmark.py search-throughput -ch CHECKPOINT --clips filelists/test.txt [--jobs 2]
    python benchmark.py search-quality -ch CHECKPOINT --clips filelists/test.txt [--budget 60]
    python benchmark.py vocoder-eval -ch CHECKPOINT -ns schedules/6iters.pt schedules/50iters.pt [--out report]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from wavegrad import WaveGrad, load_audio, load_config, load_model, synthesize
from wavegrad import search as wg_search
from wavegrad.audio import MelSpectrogram, pad_to_hop
from wavegrad.inference import read_filelist
from wavegrad.metrics import copy_synthesis, pesq_stoi, vocoder_metrics, write_report
from wavegrad.schedule import fibonacci_betas, linear_betas, load_schedule, save_schedule
from wavegrad.scoring import Clips, distance, prepare_clips, render, score_schedules


def fibonacci(b1: float = 1e-6, b2: float = 9e-6, n_iter: int = 25) -> list[float]:
    """The reference's Fibonacci initialisation [b1, b2, b1 + b2, ...] (n_iter betas)."""
    return fibonacci_betas(b1, b2, n_iter).tolist()


def generate_betas_grid(n_iter: int, betas_range: tuple[float, float] = (1e-6, 1e-2),
                        max_size: int | None = 9 ** 5) -> torch.Tensor:
    """The reference's grid, [min(9**n_iter, max_size), n_iter]; see `wavegrad.search.generate_betas_grid`."""
    return wg_search.generate_betas_grid(n_iter, betas_range, max_size)


def iters_schedule_grid_search(model: WaveGrad, clips_filelist: str | Path, n_iter: int = 6,
                               betas_range: tuple[float, float] = (1e-6, 1e-2), max_size: int | None = 9 ** 5,
                               refine_budget: int = 0, path_to_store_schedule: str | Path | None = None,
                               n_jobs: int = 1, backend: str = "loky", verbose: bool = True
                               ) -> tuple[torch.Tensor, dict[tuple[float, ...], float]]:
    """Grid search (plus optional refinement) as in the reference: returns (best betas [n_iter],
    {betas: score}); with `path_to_store_schedule` saves the betas and resumable stats beside them."""
    clips = prepare_clips(read_filelist(clips_filelist), model.config.data_config, n_iter)
    stats_path = Path(path_to_store_schedule).with_suffix(".stats.jsonl") if path_to_store_schedule else None
    evaluate = wg_search.Evaluator(model, clips, jobs=n_jobs, backend=backend, stats_path=stats_path,
                                   verbose=verbose)
    result = wg_search.search(evaluate, n_iter, betas_range, max_size, refine_budget)
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
    model = WaveGrad.from_config(load_config(config)).eval()
    model.config = load_config(config)
    return model


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
        return torch.nn.functional.l1_loss(clips.mel_fn(audio), clips.mels).item()

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
    grid_only = wg_search.search(evaluate, args.n_iter, grid_size=args.budget - 1, refine_budget=0)
    start_size = max(1, args.budget // 4)
    refined = wg_search.search(evaluate, args.n_iter, grid_size=start_size, refine_budget=args.budget - start_size - 1)
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


def run_vocoder_eval(args: argparse.Namespace) -> None:
    """Copy synthesis of held-out clips with each schedule; every vocoder metric, as a markdown and JSON report."""
    model = _model(args.config, args.checkpoint)
    schedules = {Path(path).name: load_schedule(path) for path in args.schedules}
    rows = []
    for clip in tqdm(read_filelist(args.clips)[: args.n_clips], desc="copy synthesis", unit="clip"):
        for name, betas in schedules.items():
            real, generated, _ = copy_synthesis(model, clip, betas)
            rows.append({"clip": clip.stem, "schedule": name,
                         **vocoder_metrics(generated, real, model.config.data_config)})
    write_report(rows, args.out, f"Vocoder copy synthesis: {args.checkpoint}")
    print(args.out.with_suffix(".md").read_text())


def main(argv: list[str] | None = None) -> None:
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
    evaluation.add_argument("-ns", "--schedules", nargs="+", required=True, help="schedule files, e.g. schedules/*.pt")
    evaluation.add_argument("--clips", default="filelists/test.txt")
    evaluation.add_argument("--n-clips", type=int, default=3, help="the first this many clips of the list")
    evaluation.add_argument("--out", type=Path, default=Path("vocoder_eval"), help="writes <out>.md and <out>.json")
    evaluation.set_defaults(run=run_vocoder_eval)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
