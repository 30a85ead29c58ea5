"""The energy prior (PriorGrad) and the EMA of the weights: maths, training, resume, export and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wavegrad.audio import MelSpectrogram, load_audio
from wavegrad.checkpoint import load_model, read_checkpoint, save_checkpoint
from wavegrad.config import load_config
from wavegrad.diffusion import sample, training_loss
from wavegrad.ema import EMA
from wavegrad.errors import WaveGradError
from wavegrad.inference import synthesize
from wavegrad.model import WaveGrad
from wavegrad.prior import STD_FLOOR, EnergyPrior, frame_energy
from wavegrad.schedule import linear_betas
from wavegrad.train import train
from wavegrad.trainer import checkpoints

from .conftest import FEMALE_CLIP, REPO
from .test_train import make_config, parameters


def energy_model(config, low: float = 0.05, high: float = 50.0) -> WaveGrad:
    config.model_config.prior = "energy"
    model = WaveGrad(config)
    model.prior.set_range(low, high)
    return model


def test_prior_std_shape_floor_and_upsampling(tiny_config, real_clip):
    mel = MelSpectrogram(tiny_config.data_config)(real_clip.expand(2, -1))  # [2, 80, 64]
    energy = frame_energy(mel)
    low, high = energy.min().item(), energy.quantile(0.5).item()
    prior = EnergyPrior(300)
    prior.set_range(low, high)
    std = prior(mel)
    assert std.shape == (2, real_clip.numel())
    frames = std.reshape(2, -1, 300)
    assert torch.equal(frames, frames[..., :1].expand_as(frames))  # constant over each hop
    expected = ((energy.clamp(max=high) - low) / (high - low)).clamp(min=STD_FLOOR)
    torch.testing.assert_close(frames[..., 0], expected)
    assert std.min() == pytest.approx(STD_FLOOR) and std.max() == pytest.approx(1.0)  # floor, and E clamped at E_max
    quiet = torch.full_like(mel, -5.0)  # floored silence
    assert torch.all(prior(quiet) == STD_FLOOR)


def test_unfitted_prior_refuses_to_sample(tiny_config, real_clip):
    tiny_config.model_config.prior = "energy"
    model = WaveGrad(tiny_config).eval()
    mel = MelSpectrogram(tiny_config.data_config)(real_clip[:3000])
    with pytest.raises(WaveGradError, match="no E_min/E_max"):
        synthesize(model, mel, linear_betas(2))


def test_training_noise_variance_follows_the_prior(tiny_config, real_clip):
    """With a network that predicts 0, the weighted L1 loss is E|eps| = sqrt(2/pi) whatever sigma is, and
    the noise in the network's input has the prior's per-frame std."""
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, mels, noisy, level):
            seen["noise"] = (noisy - level[:, None] * audio) / (1 - level[:, None] ** 2).sqrt()
            return torch.zeros_like(noisy)

    audio = real_clip[:9000].expand(64, -1).contiguous()
    mels = MelSpectrogram(tiny_config.data_config)(audio)
    model = energy_model(tiny_config, frame_energy(mels).min().item(), frame_energy(mels).max().item())
    std = model.prior_std(mels)
    loss = training_loss(Recorder(), mels, audio, linear_betas(1000), torch.Generator().manual_seed(0), std)
    assert loss.item() == pytest.approx((2 / torch.pi) ** 0.5, rel=0.02)
    per_frame = seen["noise"].reshape(64, -1, 300).std(dim=(0, 2))
    torch.testing.assert_close(per_frame, std[0].reshape(-1, 300)[:, 0], rtol=0.08, atol=0.0)
    assert std.min() < 0.5 * std.max()  # the clip really has loud and quiet frames


def test_unit_prior_equals_the_standard_loss_and_sampling(tiny_config, real_clip):
    torch.manual_seed(0)
    model = WaveGrad(tiny_config).eval()
    audio = real_clip[:3600].expand(2, -1).contiguous()
    mels = MelSpectrogram(tiny_config.data_config)(audio)
    betas = linear_betas(1000)
    standard = training_loss(model, mels, audio, betas, torch.Generator().manual_seed(3))
    unit = training_loss(model, mels, audio, betas, torch.Generator().manual_seed(3), torch.ones_like(audio))
    assert torch.equal(standard, unit)

    class UnitPrior(WaveGrad):
        def prior_std(self, mels):
            return torch.ones(mels.shape[0], mels.shape[-1] * self.hop_length)

    unit_model = UnitPrior(tiny_config).eval()
    unit_model.load_state_dict(model.state_dict())
    schedule = linear_betas(4, (1e-4, 0.05))
    a = sample(model, mels, schedule, generator=torch.Generator().manual_seed(5))
    b = sample(unit_model, mels, schedule, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_sampling_starts_from_the_prior(tiny_config, real_clip):
    """With one step and no clipping, y0 = (y - sqrt(1 - abar) eps_hat) / sqrt(abar): recover the start noise."""
    model = energy_model(tiny_config).eval()
    mels = MelSpectrogram(tiny_config.data_config)(real_clip[:6000])[None]
    z = torch.randn(1, 1, 6000, generator=torch.Generator().manual_seed(0))
    betas = torch.tensor([0.5], dtype=torch.float64)
    y0 = sample(model, mels, betas, clip=False, noise=z)
    with torch.no_grad():
        start = model.prior_std(mels) * z[0]
        eps = model(mels, start, torch.tensor([0.5 ** 0.5]))
    torch.testing.assert_close(y0, (start - 0.5 ** 0.5 * eps) / 0.5 ** 0.5, rtol=1e-4, atol=1e-5)


def test_tiny_model_with_the_prior_lowers_its_loss(tiny_config, real_clip):
    torch.manual_seed(0)
    audio = real_clip[:3600].expand(4, -1).contiguous()
    mels = MelSpectrogram(tiny_config.data_config)(audio)
    model = energy_model(tiny_config, frame_energy(mels).min().item(), frame_energy(mels).max().item())
    std, betas = model.prior_std(mels), linear_betas(1000)

    def held_out_loss() -> float:
        with torch.no_grad():
            return training_loss(model, mels, audio, betas, torch.Generator().manual_seed(123), std).item()

    before = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(60):
        optimizer.zero_grad()
        training_loss(model, mels, audio, betas, std=std).backward()
        optimizer.step()
    assert held_out_loss() < 0.75 * before


def test_ema_update_maths():
    network = torch.nn.Linear(2, 1)
    ema = EMA(network, decay=0.9)
    start = ema.network.weight.clone()
    assert ema.rate() == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)
    with torch.no_grad():
        network.weight.add_(1.0)
    ema.update(network)
    torch.testing.assert_close(ema.network.weight, start + 0.9)  # 0.1 * old + 0.9 * new
    ema.updates = 1000
    before = ema.network.weight.clone()
    ema.update(network)
    torch.testing.assert_close(ema.network.weight, 0.9 * before + 0.1 * network.weight)
    assert not any(p.requires_grad for p in ema.network.parameters())


def test_training_with_prior_and_ema_resumes_exactly_and_renders_the_ema(tmp_path: Path):
    extra = dict(max_steps=4, test_interval=100, ema_decay=0.99)
    straight_cfg = load_config(make_config(tmp_path / "a", 12, **extra))
    straight_cfg.model_config.prior = "energy"
    straight = train(straight_cfg, tmp_path / "a/run")
    assert straight.network.prior.fitted and straight.ema.updates == 4

    config = load_config(make_config(tmp_path / "b", 12, **{**extra, "max_steps": 2}, checkpoint_interval=1))
    config.model_config.prior = "energy"
    train(config, tmp_path / "b/run")
    config.training_config.max_steps = 4
    resumed = train(config, tmp_path / "b/run", resume=True)
    for a, b in zip(parameters(straight.ema.network), parameters(resumed.ema.network), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(straight.network.prior.energy_range, resumed.network.prior.energy_range)
    assert resumed.cpu_seconds > 0

    path = checkpoints(tmp_path / "b/run")[-1]
    payload = read_checkpoint(path)
    assert payload["ema"]["updates"] == 4 and "prior.energy_range" in payload["ema"]["model"]
    rendered, trained = load_model(path, device="cpu"), load_model(path, device="cpu", ema=False)
    for a, b in zip(parameters(rendered), parameters(resumed.ema.network), strict=True):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(parameters(rendered), parameters(trained), strict=True))


def test_init_from_weights_starts_a_new_run(tmp_path: Path, tiny_checkpoint: Path):
    """A standard-prior file starts an energy-prior run with EMA: its weights are the start, the prior's range
    is measured on the training clips, and the step counter continues from the file's."""
    config = load_config(make_config(tmp_path, 8, max_steps=8, test_interval=100, ema_decay=0.999))
    config.model_config.prior = "energy"
    start = load_model(tiny_checkpoint, device="cpu")
    payload = read_checkpoint(tiny_checkpoint)
    save_checkpoint({**payload, "step": 7}, tmp_path / "weights.pt")
    trainer = train(config, tmp_path / "run", init_from=tmp_path / "weights.pt", device="cpu")
    assert trainer.step == 8 and trainer.network.prior.fitted
    moved = [(a - b).abs().max().item() for a, b in zip(parameters(trainer.network), parameters(start), strict=True)]
    assert 0 < max(moved) < 0.05  # one Adam step away from the file's weights


def test_export_keeps_weights_and_ema_but_not_the_optimizer(tmp_path: Path):
    from wavegrad.__main__ import main

    config = load_config(make_config(tmp_path, 8, max_steps=2, test_interval=100, ema_decay=0.9))
    train(config, tmp_path / "run")
    path = checkpoints(tmp_path / "run")[-1]
    assert main(["export", "-ch", str(path), "-o", str(tmp_path / "vocoder.pt")]) == 0
    exported = read_checkpoint(tmp_path / "vocoder.pt")
    assert set(exported) == {"config", "model", "ema", "step", "epoch", "cpu_seconds"}
    rendered = load_model(tmp_path / "vocoder.pt", device="cpu")
    for a, b in zip(parameters(rendered), parameters(load_model(path, device="cpu")), strict=True):
        assert torch.equal(a, b)
    assert main(["export", "-ch", str(path), "-o", str(path)]) == 2  # never overwrites its input


def test_reference_recipe_is_unchanged(tiny_config, real_clip):
    """Standard prior, no EMA, no auxiliary loss by default; a seeded model's loss and rendering equal the
    values the code gave before the prior existed (commit 28b57c9), and the reference config keeps them."""
    reference = load_config(REPO / "configs" / "default.json")
    assert reference.model_config.prior == "standard" and reference.training_config.ema_decay == 0
    assert reference.training_config.mrstft_loss_weight == 0
    torch.manual_seed(0)
    model = WaveGrad(tiny_config).eval()
    assert model.prior is None and not any(k.startswith("prior") for k in model.state_dict())
    audio = load_audio(FEMALE_CLIP, 16000)[8000:8000 + 3600]
    mel = MelSpectrogram(tiny_config.data_config)(audio)
    with torch.no_grad():
        loss = training_loss(model, mel[None], audio[None], linear_betas(1000), torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(4.703022, abs=1e-5)
    wave = synthesize(model, mel, linear_betas(6, (1e-4, 0.05)), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(wave[1000:1004], torch.tensor([-0.864153, -0.996198, -0.742914, -1.0]),
                               rtol=0, atol=1e-5)


def test_prior_applies_to_batched_schedules_and_search_scoring(tiny_config, real_clip):
    from wavegrad.scoring import prepare_clips, render

    model = energy_model(tiny_config).eval()
    mel = MelSpectrogram(tiny_config.data_config)(real_clip[:6000])
    a, b = linear_betas(4, (1e-4, 0.05)), linear_betas(4, (1e-3, 0.2))
    noise = torch.randn(4, 1, 6000)
    together = sample(model, mel.expand(2, -1, -1), torch.stack([a, b]), noise=noise)
    alone = torch.cat([sample(model, mel[None], s, noise=noise) for s in (a, b)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    clips = prepare_clips([FEMALE_CLIP], tiny_config.data_config, 4, seconds=0.4, n_clips=1)
    scored = render(model, clips, a[None])
    model.prior = None  # the same weights under N(0, I) render something else
    assert not torch.allclose(scored, render(model, clips, a[None]))


def test_shipped_vocoder_starts_an_energy_prior_run(tmp_path: Path):
    """The shipped file (whatever recipe it was trained with) starts a new run of the small config's network."""
    shipped = read_checkpoint(REPO / "pretrained" / "small_16k.pt")
    config = load_config(REPO / "configs" / "small_16k.yaml")
    config.model_config.prior = "energy"
    clips = sorted((REPO / "data" / "voices" / "it_carlo").glob("*.flac"))[:2]
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in clips))
    t = config.training_config
    t.train_filelist_path = t.test_filelist_path = str(tmp_path / "train.txt")
    t.batch_size, t.segment_length, t.max_steps, t.test_interval = 2, 3600, shipped["step"] + 1, 1000
    t.ema_decay = 0.999
    trainer = train(config, tmp_path / "run", init_from=REPO / "pretrained" / "small_16k.pt", device="cpu")
    assert trainer.step == shipped["step"] + 1 and trainer.network.prior.fitted and trainer.ema is not None


def test_training_stops_at_its_cpu_time_budget_across_a_resume(tmp_path: Path):
    config = load_config(make_config(tmp_path, 8, test_interval=100, max_cpu_seconds=1.0, checkpoint_interval=1))
    first = train(config, tmp_path / "run")
    assert 1.0 <= first.cpu_seconds < 4 and first.step > 1
    again = train(config, tmp_path / "run", resume=True)  # the budget is spent: no further step
    assert again.step == first.step and again.cpu_seconds == pytest.approx(first.cpu_seconds)
