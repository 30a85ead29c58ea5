"""Training: overfitting one clip, NaN steps skipped, exact resume, 2-process DDP, runs/train.sh + TensorBoard."""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from voiceconv import preprocess
from wavegrad import device, metrics
from wavegrad.checkpoint import load_model, read_checkpoint
from wavegrad.config import Config, load_config
from wavegrad.data import SegmentDataset
from wavegrad.diffusion import training_loss
from wavegrad.distributed import ProcessInfo
from wavegrad.errors import CheckpointError, WaveGradError
from wavegrad.model import WaveGrad
from wavegrad.train import apply_overrides, train
from wavegrad.trainer import Trainer, checkpoints

REPO = Path(__file__).resolve().parent.parent
CLIPS = sorted((REPO / "data" / "voices" / "en_allison").glob("*.flac"))
CPU = ProcessInfo(0, 0, 1, torch.device("cpu"))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared machine threads thrash."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_config(tmp_path: Path, n_train: int = 8, **training: object) -> Path:
    """configs/tiny.yaml training on `n_train` real clips, logging into tmp_path/run."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in CLIPS[:n_train]))
    (tmp_path / "test.txt").write_text(f"{CLIPS[-1]}\n")
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["training_config"].update(logdir=str(tmp_path / "run"), train_filelist_path=str(tmp_path / "train.txt"),
                                   test_filelist_path=str(tmp_path / "test.txt"), log_interval=1, **training)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_overfits_one_real_clip() -> None:
    """100 steps on random windows of one clip: the loss ends below half of the 0.80 that a network
    predicting no noise scores (E|eps|), and below a fifth of where it starts."""
    config = load_config(REPO / "configs" / "tiny.yaml")
    config.training_config.lr = 3e-3
    trainer = Trainer(config, CPU)
    dataset = SegmentDataset([CLIPS[5]] * 4, 16000, config.training_config.segment_length)
    losses = []
    for step in range(100):
        dataset.set_epoch(step)
        losses.append(trainer.train_step(torch.stack([dataset[i] for i in range(4)]))[0])
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert last < 0.4 and last < first / 5, (first, last)


def test_non_finite_step_is_skipped_without_touching_weights() -> None:
    config = load_config(REPO / "configs" / "tiny.yaml")
    config.training_config.max_nonfinite_steps = 3
    trainer = Trainer(config, CPU)
    audio = SegmentDataset(CLIPS[:4], 16000, 3600)
    batch = torch.stack([audio[i] for i in range(4)])
    assert not trainer.train_step(batch)[2]
    weights, adam = parameters(trainer.network), trainer.optimizer.state_dict()
    poisoned = batch.clone()
    poisoned[0, 100] = float("nan")
    for expected in (1, 2):
        loss, _, skipped = trainer.train_step(poisoned)
        assert skipped and loss != loss and trainer.nonfinite.total == expected
        assert all(torch.equal(a, b) for a, b in zip(weights, parameters(trainer.network), strict=True))
        for key, state in trainer.optimizer.state_dict()["state"].items():
            assert torch.equal(state["exp_avg"], adam["state"][key]["exp_avg"]) and state["step"] == 1
    with pytest.raises(WaveGradError, match="3 steps in a row had a non-finite loss"):
        trainer.train_step(poisoned)


def test_warmup_scales_adams_first_updates_and_leaves_the_schedule() -> None:
    """Adam's first update moves each weight by lr (its moments are one gradient); with a 4-update
    warm-up it moves by lr / 4, the next LR is lr * 2 / 4, and the scheduler's LR stays lr."""
    config = load_config(REPO / "configs" / "tiny.yaml")
    batch = torch.stack([SegmentDataset(CLIPS[:2], 16000, 3600)[i] for i in range(2)])
    moves = {}
    for warmup in (0, 4):
        config.training_config.warmup_steps = warmup
        trainer = Trainer(config, CPU)
        before = parameters(trainer.network)
        trainer.train_step(batch)
        after = parameters(trainer.network)
        moves[warmup] = max((a - b).abs().max().item() for a, b in zip(before, after, strict=True))
        assert trainer.optimizer.param_groups[0]["lr"] == config.training_config.lr
    assert trainer.lr == pytest.approx(config.training_config.lr / 2)
    assert moves[0] == pytest.approx(config.training_config.lr, rel=1e-3)
    assert moves[4] == pytest.approx(config.training_config.lr / 4, rel=1e-3)


def test_resume_repeats_an_uninterrupted_run(tmp_path: Path) -> None:
    """12 clips, batch 4: 3 steps per epoch. 2 steps, kill, resume for 2 more (across the epoch end,
    where the LR decays, and the end of a 3-update warm-up) == 4 steps straight."""
    straight = train(load_config(make_config(tmp_path / "a", 12, max_steps=4, test_interval=100, warmup_steps=3)),
                     tmp_path / "a/run")
    config = make_config(tmp_path / "b", 12, max_steps=2, test_interval=100, checkpoint_interval=1,
                         keep_checkpoints=1, warmup_steps=3)
    train(load_config(config), tmp_path / "b/run")
    assert [p.name for p in checkpoints(tmp_path / "b/run")] == ["checkpoint_2.pt"]
    cfg = load_config(config)
    cfg.training_config.max_steps = 4
    resumed = train(cfg, tmp_path / "b/run", resume=True)
    assert resumed.step == 4 and resumed.epoch == 1 and resumed.lr == pytest.approx(1e-3 * 0.9)
    for a, b in zip(parameters(straight.network), parameters(resumed.network), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    payload = read_checkpoint(tmp_path / "b/run/checkpoint_4.pt")
    assert {"config", "model", "optimizer", "scaler", "lr_scheduler", "step", "epoch", "rng"} <= set(payload)
    assert load_model(tmp_path / "b/run/checkpoint_4.pt", device="cpu").config.training_config.max_steps == 4
    assert load_config(tmp_path / "b/run/config.yaml").training_config.max_steps == 4
    other = load_config(config)
    other.model_config.upsampling_preconv_out_channels = 16
    with pytest.raises(CheckpointError, match="checkpoint_4.pt: its model_config differs"):
        train(other, tmp_path / "b/run", resume=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, config: Config, logdir: Path, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = train(config, logdir, device="cpu")
    torch.save(trainer.network.state_dict(), logdir.parent / f"rank{rank}.pt")


def test_two_process_ddp_matches_the_expected_data_split(tmp_path: Path) -> None:
    """2 gloo processes, batch 2 each, 8 clips: both ranks end with the same weights, and they equal one
    process applying the mean gradient of rank r's batches (every 2nd index of the epoch's shuffle)."""
    config = load_config(make_config(tmp_path, 8, batch_size=2, max_steps=3, test_interval=100))
    mp.spawn(_ddp_worker, args=(config, tmp_path / "run", _free_port()), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])

    t = config.training_config
    expected = Trainer(config, CPU)
    dataset = SegmentDataset(CLIPS[:8], 16000, t.segment_length, t.seed)
    for step, (epoch, batch) in enumerate([(0, 0), (0, 1), (1, 0)]):
        if step == 2:
            expected.end_epoch()
        dataset.set_epoch(epoch)
        order = torch.randperm(8, generator=torch.Generator().manual_seed(t.seed + epoch)).tolist()
        loss = 0.0
        for rank in range(2):
            audio = torch.stack([dataset[i] for i in order[rank::2][2 * batch:2 * batch + 2]])
            generator = torch.Generator().manual_seed(hash((t.seed, rank, step)) & 0x7FFFFFFFFFFFFFFF)
            loss = loss + training_loss(expected.network, expected.mel(audio), audio, expected.betas, generator) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(expected.network.parameters(), t.grad_clip_threshold)
        expected.optimizer.step()
        expected.optimizer.zero_grad()
    for key, value in expected.network.state_dict().items():
        torch.testing.assert_close(ranks[0][key], value, rtol=0, atol=1e-4)


def test_train_sh_writes_tensorboard_scalars(tmp_path: Path) -> None:
    config = make_config(tmp_path, 8, max_steps=3)
    env = dict(os.environ, CONFIG=str(config), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               MASTER_PORT=str(_free_port()))
    result = subprocess.run(["sh", "runs/train.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/grad_norm", "train/lr", "train/skipped_steps", "train/samples_per_s",
            "test/loss", "test/mel_l1", "test/wav_l1", "test/rtf"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert "test/audio_0/generated" in tags["audio"] and "test/mel_0" in tags["images"]
    assert (tmp_path / "run" / "checkpoint_3.pt").is_file()


def test_set_overrides_are_typed_and_validated() -> None:
    config = load_config(REPO / "configs" / "tiny.yaml")
    changed = apply_overrides(config, ["training_config.max_steps=7", "training_config.lr=5e-4"])
    assert changed.training_config.max_steps == 7 and changed.training_config.lr == 5e-4
    with pytest.raises(WaveGradError, match="existing key"):
        apply_overrides(config, ["training_config.max_step=7"])
    with pytest.raises(WaveGradError, match="segment_length 1000 is not a multiple of hop_length 300"):
        apply_overrides(config, ["training_config.segment_length=1000"])


def test_set_filelist_resolves_against_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "clips.txt").write_text("a.flac\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "configs" / "tiny.yaml")
    config = apply_overrides(config, ["training_config.train_filelist_path=clips.txt"])
    assert config.training_config.train_filelist_path == str(tmp_path.resolve() / "clips.txt")


def test_trainer_leaves_the_global_rng_and_draws_weights_from_the_seed() -> None:
    config = load_config(REPO / "configs" / "tiny.yaml")
    torch.manual_seed(12345)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    trainer = Trainer(config, CPU)
    assert torch.equal(torch.get_rng_state(), states[0]) and (np.random.get_state()[1] == states[1]).all()
    assert random.getstate() == states[2]
    torch.manual_seed(config.training_config.seed)  # how the weights were drawn before: unchanged
    expected = WaveGrad(config)
    assert all(torch.equal(a, b) for a, b in zip(parameters(trainer.network), expected.parameters(), strict=True))
    config.training_config.seed += 1
    assert not torch.equal(parameters(Trainer(config, CPU).network)[0], parameters(trainer.network)[0])


def test_evaluate_reports_the_one_log_mel_l1(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(REPO / "configs" / "tiny.yaml")
    trainer = Trainer(config, CPU)
    monkeypatch.setattr(metrics, "mel_l1", lambda a, b: torch.tensor(7.0))
    segments = torch.stack([SegmentDataset(CLIPS[:1], 16000, config.training_config.segment_length)[0]])
    scalars, _ = trainer.evaluate(segments, [SegmentDataset(CLIPS[:1], 16000, 1200)[0]])
    assert scalars["test/mel_l1"] == 7.0


def test_distributed_session_tears_down_when_training_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both training loops run inside distributed.session: its process group goes, also on an error."""
    from wavegrad import distributed

    calls = []
    monkeypatch.setattr(distributed, "cleanup", lambda: calls.append("cleanup"))
    with pytest.raises(WaveGradError), distributed.session("cpu") as info:
        assert info.world_size == 1
        raise WaveGradError("boom")
    assert calls == ["cleanup"]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "native_cpu_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert device.autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    assert any("emulated" in str(w.message) for w in caught) == (not native)


@pytest.mark.parametrize("cap, expected", [("1", 1), ("3", 3), (None, None), ("", None)])
def test_cpu_threads_follow_omp_num_threads(cap: str | None, expected: int | None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """OMP_NUM_THREADS caps the threads of every CLI (train, inference, search, convert, evaluate) and the
    default count of preprocessing processes; unset or empty, they use every core the process may run on."""
    if cap is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", cap)
    cores = len(os.sched_getaffinity(0))
    assert device.cpu_threads() == (expected or cores)
    device.set_cpu_threads()
    assert torch.get_num_threads() == (expected or cores)
    parser = argparse.ArgumentParser()
    preprocess.add_common_arguments(parser)
    assert parser.get_default("processes") == (expected or cores)
