"""Diagnostic pictures as PNG files, readable offline (no CDN, unlike `dvc plots show`)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def learning_curves(histories: Sequence[Mapping[str, Sequence[float]]], title: str, path: Path) -> None:
    """Train (solid) and validation (dashed) loss per epoch of every run, overlaid."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, hist in enumerate(histories):
        colour = f"C{i % 10}"
        epochs = np.arange(1, len(hist["loss"]) + 1)
        ax.plot(epochs, hist["loss"], color=colour, lw=1.2, label=f"run {i} train")
        if "val_loss" in hist:
            ax.plot(epochs, hist["val_loss"], color=colour, lw=1.2, ls="--", label=f"run {i} validation")
    # A log scale separates small losses best, but a likelihood loss can go negative.
    positive = all(min(h.get(k, [1.0]) or [1.0]) > 0 for h in histories for k in ("loss", "val_loss"))
    ax.set(xlabel="epoch", ylabel="loss", title=title, yscale="log" if positive else "linear")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def score_boxplot(scores: Mapping[str, Sequence[float]], title: str, ylabel: str, path: Path) -> None:
    """Box-and-whisker plot of score distributions, one box per configuration, runs as dots."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(scores) + 2), 4.2))
    names = list(scores)
    ax.boxplot([list(scores[n]) for n in names], tick_labels=names, showmeans=True)
    for i, name in enumerate(names, start=1):
        values = np.asarray(scores[name], dtype=float)
        ax.scatter(np.full(values.size, i) + np.linspace(-0.08, 0.08, values.size), values, s=12, alpha=0.7)
    ax.set(title=title, ylabel=ylabel)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def rectangles(shapes: np.ndarray, title: str, path: Path, limit: int = 16) -> None:
    """A grid of generated shapes (closed polygons through their four points)."""
    plt = _pyplot()
    shown = np.asarray(shapes)[:limit]
    cols = 4
    rows = int(np.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for ax, shape in zip(axes.flat, shown):
        closed = np.vstack([shape, shape[:1]])
        ax.plot(closed[:, 0], closed[:, 1], marker="o", ms=3)
        ax.set(xlim=(-0.1, 1.1), ylim=(-0.1, 1.1), aspect="equal", xticks=[], yticks=[])
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle(title)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fixed creation date keeps the PNG bytes identical across rebuilds.
    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
