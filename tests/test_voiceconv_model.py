"""The conversion model: frame-rate alignment, variants by config, discriminator, training and exact resume."""

from __future__ import annotations

import shutil

import pytest
import torch

from voiceconv.checkpoint import load_converter, read
from voiceconv.data import ExperimentDataset, bucket_batches
from voiceconv.model import (
    Converter,
    Discriminator,
    count_parameters,
    normalise_per_utterance,
    preset,
    resample_frames,
)
from voiceconv.train import TrainOptions, train
from wavegrad.checkpoint import newest_checkpoint, numbered_checkpoints, prune_checkpoints
from wavegrad.errors import CheckpointError

from .vc_fixtures import FEATURE_DIM, TINY_CONFIG, make_experiment, tiny_audio, tiny_model_config


def test_resample_frames_follows_time() -> None:
    ramp = torch.arange(50, dtype=torch.float64)[None, :, None]  # value = frame index at 50 fps
    out = resample_frames(ramp, 50, 160 / 3, 40)
    centres = torch.arange(40, dtype=torch.float64) / (160 / 3)  # seconds
    assert torch.allclose(out[0, :, 0], (centres * 50).clamp(0, 49), atol=1e-9)
    assert out[0, 16, 0] == 15  # 0.3 s: mel frame 16 at 16000/300 fps = content frame 15 at 50 fps
    pitch = torch.tensor([[0.0, 100.0, 0.0, 200.0]])[..., None]
    assert set(resample_frames(pitch, 100, 300, 12, "nearest").flatten().tolist()) <= {0.0, 100.0, 200.0}


@pytest.mark.parametrize("use_pitch", [True, False])
def test_shapes_and_variants(use_pitch: bool) -> None:
    config = tiny_model_config(use_pitch=use_pitch)
    model = Converter(config)
    content, f0 = torch.randn(2, 50, FEATURE_DIM), torch.full((2, 100), 150.0)
    coarse = torch.full((2, 100), 60)
    mel = model(content, coarse if use_pitch else None, f0 if use_pitch else None, torch.tensor([0, 1]), 53)
    assert mel.shape == (2, tiny_audio().n_mels, 53)
    assert hasattr(model, "coarse") == use_pitch
    assert model.coarse.num_embeddings == 256 if use_pitch else True


def test_presets_are_rvc_sized_and_scale() -> None:
    base = preset("base")
    assert (base.hidden, base.filter, base.heads, base.layers, base.kernel) == (192, 768, 2, 6, 3)
    assert count_parameters(Converter(preset("large"))) > 4 * count_parameters(Converter(base))


def test_discriminator_outputs() -> None:
    disc = Discriminator(tiny_model_config(discriminator=True))
    adversarial, speaker = disc(torch.randn(3, 80, 64))
    assert adversarial.shape[0] == 3 and adversarial.dim() == 2 and speaker.shape == (3, 4)


def test_bucketing_groups_similar_lengths() -> None:
    lengths = [10, 500, 12, 480, 11, 490]
    groups = bucket_batches(lengths, 3, torch.Generator().manual_seed(0))
    assert sorted(sorted(lengths[i] for i in g) for g in groups) == [[10, 11, 12], [480, 490, 500]]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    return root, make_experiment(root, clips=6)


def _train(root, filelist, epochs: int, discriminator: bool = False, keep: int = 0, content_norm: bool = False,
           **kwargs):
    dataset = ExperimentDataset(filelist, filelist.parent / "4_mel", use_pitch=True)
    options = TrainOptions(total_epoch=epochs, save_every_epoch=2, batch_size=4, lr=2e-3, log_interval=1,
                           keep_checkpoints=keep)
    config = tiny_model_config(discriminator=discriminator, content_norm=content_norm)
    return train(root, dataset, config, tiny_audio().audio_dict(),
                 {"encoder": "toy", "dim": FEATURE_DIM}, options, **kwargs)


def test_training_lowers_mel_loss_and_resume_is_exact(experiment, tmp_path) -> None:
    source, filelist = experiment
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir(), resumed.mkdir()
    _train(straight, filelist, 4)
    history = read(newest_checkpoint(straight, "G"), "G")["mel_loss_per_epoch"]
    assert len(history) == 4 and history[-1] < 0.9 * history[0]

    _train(resumed, filelist, 2)
    assert read(newest_checkpoint(resumed, "G"), "G")["epoch"] == 2
    final = _train(resumed, filelist, 4)  # resumes from G_<step> of epoch 2
    a, b = read(newest_checkpoint(straight, "G")), read(newest_checkpoint(resumed, "G"))
    assert a["step"] == b["step"] and a["mel_loss_per_epoch"] == b["mel_loss_per_epoch"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    model, payload = load_converter(final)
    assert payload["audio"] == tiny_audio().audio_dict() and payload["info"]["epoch"] == 4
    assert not model.training and all(torch.allclose(v, a["model"][k].half().float())
                                       for k, v in model.state_dict().items())

    fresh = tmp_path / "fresh"  # pretrained G initialises a new run (weights only, a fresh speaker row)
    fresh.mkdir()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    start = _train(fresh, filelist, 0, pretrained_g=newest_checkpoint(straight, "G"))
    assert torch.equal(torch.get_rng_state(), state)  # the library draws initial weights from a forked RNG
    started = load_converter(start)[0].state_dict()
    assert all(torch.equal(v, a["model"][k].half().float()) for k, v in started.items() if k != "speaker.weight")
    new_row = a["model"]["speaker.weight"][0].half().float()  # every row starts at the mean of the trained one
    assert torch.equal(started["speaker.weight"], new_row.expand_as(started["speaker.weight"]))


def test_content_norm_takes_out_each_utterances_offset_and_scale(experiment, tmp_path) -> None:
    torch.manual_seed(0)
    content = torch.randn(2, 40, FEATURE_DIM) * 3 + 5
    normed = normalise_per_utterance(content)
    assert torch.allclose(normed.mean(dim=1), torch.zeros(2, FEATURE_DIM), atol=1e-5)
    assert torch.allclose(normed.std(dim=1, unbiased=False), torch.ones(2, FEATURE_DIM), atol=1e-4)
    f0 = torch.full((2, 80), 180.0)
    coarse, speaker = torch.full((2, 80), 100), torch.zeros(2, dtype=torch.long)
    shifted = 2 * content + torch.randn(1, 1, FEATURE_DIM)  # another "voice": an offset and a gain per utterance
    for norm in (True, False):
        model = Converter(tiny_model_config(content_norm=norm)).eval()
        same = torch.allclose(model(content, coarse, f0, speaker, 64), model(shifted, coarse, f0, speaker, 64),
                              atol=1e-4)
        assert same == norm
    _, filelist = experiment
    _train(tmp_path, filelist, 2, content_norm=True)
    with pytest.raises(CheckpointError, match="was trained with content_norm True \\(now False\\); resume with the"):
        _train(tmp_path, filelist, 4)  # resuming without the switch would silently change the model


def test_adversarial_training_writes_g_d_and_tensorboard(experiment, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from wavegrad.config import load_config
    from wavegrad.model import WaveGrad

    _, filelist = experiment
    vocoder = WaveGrad(load_config(TINY_CONFIG)).eval()
    vocoder.config.training_config.test_noise_schedule.n_iter = 2
    _train(tmp_path, filelist, 2, discriminator=True, vocoder=vocoder)
    d = read(newest_checkpoint(tmp_path, "D"), "D")
    assert d["epoch"] == 2 and any(k.startswith("classifier") for k in d["model"])
    events = EventAccumulator(str(tmp_path), size_guidance={"audio": 0, "images": 0}).Reload()
    assert {"loss/mel", "loss/d", "loss/adv", "loss/mel_epoch"} <= set(events.Tags()["scalars"])
    assert events.Tags()["audio"] == ["converted"] and events.Tags()["images"] == ["mel"]
    shutil.rmtree(tmp_path)


def test_keep_checkpoints_leaves_the_newest_and_progress_shows_epochs_and_loss(experiment, tmp_path, capsys) -> None:
    _, filelist = experiment
    _train(tmp_path, filelist, 4, discriminator=True, keep=1)  # saves at epochs 2 and 4
    captured = capsys.readouterr()
    steps = read(newest_checkpoint(tmp_path, "G"), "G")["step"]
    assert sorted(p.name for p in tmp_path.glob("[GD]_*.pt")) == [f"D_{steps}.pt", f"G_{steps}.pt"]
    assert "train epoch 4/4" in captured.err and "mel_loss=" in captured.err and "<" in captured.err  # time left
    assert "epoch 2/4: mel loss" in captured.out and "epoch 4/4: mel loss" in captured.out


def test_prune_checkpoints_sorts_by_step_number(tmp_path) -> None:
    for step in (9, 10, 100, 2333333):
        (tmp_path / f"G_{step}.pt").write_bytes(b"")
    (tmp_path / "G_latest.pt").write_bytes(b"")  # not a numbered checkpoint: never touched
    assert [p.name for p in prune_checkpoints(tmp_path, "G", 2)] == ["G_9.pt", "G_10.pt"]
    assert [p.name for p in numbered_checkpoints(tmp_path, "G")] == ["G_100.pt", "G_2333333.pt"]
    assert prune_checkpoints(tmp_path, "G", 0) == [] and (tmp_path / "G_latest.pt").is_file()


def test_each_rate_has_one_name_and_frame_rates_follow_from_the_hops() -> None:
    """16 kHz is FRONTEND_RATE alone (no module writes the number again); 50 and 100 frames/s are derived."""
    import re
    from pathlib import Path

    from voiceconv import rates

    assert rates.FRONTEND_RATE == 16000
    assert rates.CONTENT_FRAME_RATE == rates.FRONTEND_RATE / rates.CONTENT_HOP == 50.0
    assert rates.PITCH_FRAME_RATE == rates.FRONTEND_RATE / rates.PITCH_HOP == 100.0
    package = Path(rates.__file__).parent
    for path in package.glob("*.py"):
        code = path.read_text()
        if path.name not in ("rates.py", "measures.py"):  # measures: the evaluator models' own 16 kHz
            # (16000 / 300: the default vocoder's mel frame rate, a fact of the vocoder's config)
            assert not re.search(r"\b(CONTENT_RATE|F0_RATE|RATE|HOP|FRAME)\b|\b16_?000\b(?! / 300)", code), path.name
