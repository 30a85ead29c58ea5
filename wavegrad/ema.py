"""An exponential moving average of a network's weights, kept beside the trained ones and used for rendering."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema <- d * ema + (1 - d) * weights after each optimiser step, with d = min(decay, (1 + n) / (10 + n))
    at the n-th update: the warm-up keeps the first, poor weights from lingering in the average.

    Buffers (the prior's energy range) are copied, not averaged. `network` is the averaged copy, in eval mode.
    """

    def __init__(self, network: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.network = copy.deepcopy(network).eval().requires_grad_(False)

    def rate(self) -> float:
        """The decay d of the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        weight = 1 - self.rate()
        torch._foreach_lerp_(list(self.network.parameters()), [p.detach() for p in network.parameters()], weight)
        for mine, theirs in zip(self.network.buffers(), network.buffers(), strict=True):
            mine.copy_(theirs)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.network.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore the averaged weights and update count (the decay comes from the current config)."""
        self.network.load_state_dict(state["model"])
        self.updates = state["updates"]
