"""The CUDA paths: fp16 training steps with a GradScaler, DDP (one nccl process), rendering on the GPU.

Skipped without CUDA; `runs/gpu_check.sh` runs them on a lent GPU machine.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

from wavegrad.audio import MelSpectrogram
from wavegrad.config import Config
from wavegrad.data import SegmentDataset
from wavegrad.distributed import ProcessInfo
from wavegrad.inference import synthesize
from wavegrad.model import WaveGrad
from wavegrad.schedule import linear_betas
from wavegrad.trainer import Trainer

from .conftest import VOICES

pytestmark = pytest.mark.requires_cuda
CUDA = ProcessInfo(0, 0, 1, torch.device("cuda", 0))


def _batch(config: Config) -> torch.Tensor:
    clips = sorted((VOICES / "en_allison").glob("*.flac"))[:4]
    data = SegmentDataset(clips, config.data_config.sample_rate, config.training_config.segment_length)
    return torch.stack([data[i] for i in range(len(clips))])


@pytest.mark.parametrize("prior", ["standard", "energy"])
def test_fp16_steps_with_grad_scaler(tiny_config: Config, prior: str) -> None:
    tiny_config.model_config.prior = prior
    tiny_config.training_config.ema_decay = 0.99
    trainer = Trainer(tiny_config, CUDA)
    assert trainer.dtype == torch.float16 and trainer.scaler.is_enabled()
    batch = _batch(tiny_config)
    if prior == "energy":
        trainer.fit_prior(sorted((VOICES / "en_allison").glob("*.flac"))[:4])
    losses = [trainer.train_step(batch)[0] for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])
    assert next(trainer.ema.network.parameters()).is_cuda


def test_ddp_in_one_nccl_process(tiny_config: Config) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        trainer = Trainer(tiny_config, CUDA)
        assert isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
        loss, grad_norm, skipped = trainer.train_step(_batch(tiny_config))
        assert not skipped and loss == loss and grad_norm > 0
    finally:
        dist.destroy_process_group()


def test_rendering_on_cuda_matches_cpu(tiny_config: Config, real_clip: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = WaveGrad(tiny_config).eval()
    mel = MelSpectrogram(tiny_config.data_config)(real_clip[:6000])
    noise = torch.randn(6, 1, 6000)
    betas = linear_betas(6, (1e-4, 0.05))
    on_cpu = synthesize(model, mel, betas, noise=noise)
    on_gpu = synthesize(model.cuda(), mel, betas, noise=noise)
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-3, atol=1e-3)
