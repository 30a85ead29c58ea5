"""Schedule maths and schedule files."""

import argparse
import inspect
import math

import numpy as np
import pytest
import torch

from wavegrad import search
from wavegrad.config import DEFAULT_BETAS_RANGE, NoiseScheduleConfig
from wavegrad.errors import ScheduleError
from wavegrad.schedule import (
    fibonacci_betas,
    linear_betas,
    load_schedule,
    noise_level_bounds,
    noise_levels,
    posterior_coefficients,
    repeat_betas,
    save_schedule,
)


def test_noise_levels_decrease_strictly_from_one():
    levels = noise_levels(linear_betas(1000))
    assert (levels[1:] < levels[:-1]).all()
    assert levels[0] == pytest.approx(math.sqrt(1 - 1e-6))
    bounds = noise_level_bounds(linear_betas(6))
    assert bounds[0] == 1 and bounds.shape == (7,)


def test_posterior_coefficients_match_the_direct_formula():
    betas = [1e-6, 1.89e-5, 1e-4, 1e-3, 1.11e-2, 6e-2]
    coef = posterior_coefficients(torch.tensor(betas, dtype=torch.float64))
    abar, abar_prev = 1.0, 1.0
    for t, beta in enumerate(betas):
        abar_prev, abar = abar, abar * (1 - beta)
        assert coef["c1"][t].item() == pytest.approx(beta * math.sqrt(abar_prev) / (1 - abar), rel=1e-9)
        assert coef["c2"][t].item() == pytest.approx((1 - abar_prev) * math.sqrt(1 - beta) / (1 - abar), rel=1e-9)
        variance = max(beta * (1 - abar_prev) / (1 - abar), 1e-20)
        assert coef["log_var"][t].item() == pytest.approx(math.log(variance), rel=1e-9)
        assert coef["level"][t].item() == pytest.approx(math.sqrt(abar), rel=1e-12)
    assert coef["c2"][0].item() == 0.0  # the first step returns the clean estimate


def test_batched_coefficients_equal_per_schedule():
    a, b = linear_betas(6), fibonacci_betas(1e-6, 9e-6, 6)
    batched = posterior_coefficients(torch.stack([a, b]))
    for name, value in posterior_coefficients(b).items():
        torch.testing.assert_close(batched[name][1], value)


def test_fibonacci_and_repeat():
    assert fibonacci_betas(1e-6, 9e-6, 5).tolist() == pytest.approx([1e-6, 9e-6, 1e-5, 1.9e-5, 2.9e-5])
    assert repeat_betas(torch.tensor([0.1, 0.2]), 3).tolist() == pytest.approx([0.1] * 3 + [0.2] * 3)
    assert linear_betas(3, (0.1, 0.3)).tolist() == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("suffix", [".pt", ".npy"])
def test_schedule_files_round_trip(tmp_path, suffix):
    betas = fibonacci_betas(n_iter=25)
    save_schedule(betas, tmp_path / f"s{suffix}")
    torch.testing.assert_close(load_schedule(tmp_path / f"s{suffix}"), betas.float().double())


@pytest.mark.parametrize(
    "value, message",
    [
        (torch.zeros(0), "non-empty 1-D"),
        (torch.full((2, 3), 0.1), "1-D tensor"),
        (torch.tensor([0.1, float("nan")]), "NaN or infinite"),
        (torch.tensor([0.1, 1.0]), r"must lie in \(0, 1\)"),
        (torch.tensor([0.0, 0.1]), r"must lie in \(0, 1\)"),
        ({"betas": 1}, "expected a tensor"),
    ],
)
def test_bad_schedule_files_are_refused(tmp_path, value, message):
    path = tmp_path / "bad.pt"
    torch.save(value, path)
    with pytest.raises(ScheduleError, match=f"bad.pt.*{message}|{message}"):
        load_schedule(path)


def test_unreadable_and_missing_schedules(tmp_path):
    with pytest.raises(ScheduleError, match="schedule file not found"):
        load_schedule(tmp_path / "none.pt")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ScheduleError, match="junk.npy: cannot read schedule"):
        load_schedule(tmp_path / "junk.npy")
    np.save(tmp_path / "ok.npy", np.array([1e-4, 1e-2]))
    assert load_schedule(tmp_path / "ok.npy").shape == (2,)


def test_the_default_betas_range_is_one_constant():
    assert DEFAULT_BETAS_RANGE == (1e-6, 0.01) and NoiseScheduleConfig().betas_range is DEFAULT_BETAS_RANGE
    for function in (linear_betas, search.generate_betas_grid, search.search):
        assert inspect.signature(function).parameters["betas_range"].default is DEFAULT_BETAS_RANGE, function
    parser = argparse.ArgumentParser()
    search.add_arguments(parser)
    assert parser.get_default("betas_range") is DEFAULT_BETAS_RANGE
