"""Figures for TensorBoard and notebooks (matplotlib's object API: no pyplot state, no display needed)."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure


def plot_mels(mels: dict[str, torch.Tensor], hop_seconds: float | None = None) -> Figure:
    """One panel per log10 mel [n_mels, frames], stacked with a shared colour scale; titles are the keys.

    hop_seconds: frame spacing in seconds for the time axis (frames when None).
    """
    arrays = {title: mel.detach().float().cpu().numpy() for title, mel in mels.items()}
    low = min(a.min() for a in arrays.values())
    high = max(a.max() for a in arrays.values())
    figure = Figure(figsize=(8, 2.2 * len(arrays)), layout="constrained")
    axes = figure.subplots(len(arrays), 1, squeeze=False)[:, 0]
    for ax, (title, array) in zip(axes, arrays.items(), strict=True):
        extent = None
        if hop_seconds is not None:
            extent = (0, array.shape[1] * hop_seconds, 0, array.shape[0])
        image = ax.imshow(array, origin="lower", aspect="auto", interpolation="none", vmin=low, vmax=high,
                          extent=extent)
        ax.set_title(title)
        ax.set_ylabel("mel bin")
        figure.colorbar(image, ax=ax, label="log10 power")
    axes[-1].set_xlabel("seconds" if hop_seconds is not None else "frame")
    return figure
