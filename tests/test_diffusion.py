"""Sampling with per-element schedules, and that the training loss can be driven down."""

import torch

from wavegrad.audio import MelSpectrogram
from wavegrad.diffusion import diffuse, sample, sample_noise_level, training_loss
from wavegrad.inference import synthesize
from wavegrad.model import WaveGrad
from wavegrad.schedule import fibonacci_betas, linear_betas, noise_level_bounds


def test_batched_sampling_with_two_schedules_equals_each_alone(tiny_config, real_clip):
    torch.manual_seed(0)
    model = WaveGrad(tiny_config).eval()
    mel = MelSpectrogram(tiny_config.data_config)(real_clip[:6000])
    a, b = linear_betas(6, (1e-4, 0.05)), fibonacci_betas(1e-4, 2e-4, 6)
    noise = torch.randn(6, 1, mel.shape[-1] * 300)
    together = sample(model, mel.expand(2, -1, -1), torch.stack([a, b]), noise=noise)
    alone = torch.cat([sample(model, mel[None], s, noise=noise) for s in (a, b)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together[0], together[1])  # the schedules really differ


def test_synthesize_shapes_and_clipping(tiny_config, real_clip):
    model = WaveGrad(tiny_config).eval()
    mel = MelSpectrogram(tiny_config.data_config)(real_clip[:3000])
    audio = synthesize(model, mel, linear_betas(3), generator=torch.Generator().manual_seed(1))
    assert audio.shape == (3000,) and torch.isfinite(audio).all()
    again = synthesize(model, mel, linear_betas(3), generator=torch.Generator().manual_seed(1))
    assert torch.equal(audio, again)
    assert synthesize(model, mel.expand(3, -1, -1), linear_betas(2)).shape == (3, 3000)


def test_noise_level_draws_lie_in_the_schedule_range():
    betas = linear_betas(50, (1e-4, 0.05))
    levels = sample_noise_level(betas, 10000, torch.Generator().manual_seed(0))
    bounds = noise_level_bounds(betas).float()
    assert levels.max() <= 1 and levels.min() >= bounds[-1]
    assert levels.std() > 0.1  # spread over the whole range, not one bin


def test_diffuse_keeps_unit_variance_for_unit_signals():
    clean, noise = torch.randn(4, 100000), torch.randn(4, 100000)
    noisy = diffuse(clean, torch.tensor([0.0, 0.3, 0.8, 1.0]), noise)
    assert torch.allclose(noisy.std(dim=1), torch.ones(4), atol=0.02)
    assert torch.equal(noisy[3], clean[3]) and torch.equal(noisy[0], noise[0])


def test_tiny_model_lowers_its_loss_on_one_clip(tiny_config, real_clip):
    torch.manual_seed(0)
    model = WaveGrad(tiny_config)
    audio = real_clip[:3600].expand(4, -1).contiguous()
    mels = MelSpectrogram(tiny_config.data_config)(audio)
    betas = linear_betas(1000)

    def held_out_loss() -> float:
        with torch.no_grad():
            return training_loss(model, mels, audio, betas, torch.Generator().manual_seed(123)).item()

    before = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(60):
        optimizer.zero_grad()
        training_loss(model, mels, audio, betas).backward()
        optimizer.step()
    after = held_out_loss()
    assert after < 0.75 * before, (before, after)
