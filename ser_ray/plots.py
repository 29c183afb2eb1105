"""Figures shared by training outputs and reports (matplotlib only, written as PNG)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_confusion(matrix: Sequence[Sequence[int]] | np.ndarray, label_names: Sequence[str],
                   path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (recall per true class), counts in each cell."""
    counts = np.asarray(matrix, dtype=float)
    support = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    size = 1.2 + 0.9 * len(label_names)
    figure, axes = plt.subplots(figsize=(size + 1.2, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), value in np.ndenumerate(normalised):
        axes.text(column, row, f"{value:.2f}\n({int(counts[row, column])})", ha="center",
                  va="center", fontsize=8, color="white" if value > 0.6 else "black")
    axes.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    axes.set_yticks(range(len(label_names)), label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(textwrap.fill(title, 60), fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="recall")
    return _save(figure, path)


def plot_learning_curves(epochs: np.ndarray, series: dict[str, tuple[np.ndarray, np.ndarray]],
                         path: Path, title: str, ylabel: str) -> Path:
    """One line per series: mean per epoch with a ± sd band (over folds, or folds × seeds)."""
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for name, (mean, sd) in series.items():
        axes.plot(epochs, mean, marker="o", markersize=3, label=name)
        axes.fill_between(epochs, mean - sd, mean + sd, alpha=0.2)
    _label(axes, "epoch", ylabel, title)
    return _save(figure, path)


def plot_factorial_lines(mean: Sequence[Sequence[float]] | np.ndarray,
                         sd: Sequence[Sequence[float]] | np.ndarray, line_names: Sequence[str],
                         x_levels: Sequence[str], path: Path, title: str, xlabel: str,
                         ylabel: str) -> Path:
    """One line per row of `mean` (e.g. channel scale) over `x_levels` (e.g. STFT version),
    with ± sd error bars: the form of the eca_cnn paper's Fig. 6."""
    means, sds = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(sd, dtype=float))
    positions = np.arange(len(x_levels))
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for name, line_mean, line_sd in zip(line_names, means, sds):
        axes.errorbar(positions, line_mean, yerr=line_sd, marker="o", markersize=3,
                      capsize=2, label=name)
    axes.set_xticks(positions, x_levels)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(textwrap.fill(title, 60), fontsize=10)
    axes.grid(alpha=0.3)
    if len(line_names) > 1:
        axes.legend(fontsize=8)
    return _save(figure, path)


def plot_optimisation_history(trial_numbers: np.ndarray, values: np.ndarray,
                              finished: np.ndarray, best_so_far: np.ndarray, path: Path,
                              title: str, ylabel: str) -> Path:
    """Each trial's objective (finished: dots, pruned or failed: crosses) and the best so far."""
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    axes.scatter(trial_numbers[finished], values[finished], s=14, label="finished trial")
    if (~finished).any():
        axes.scatter(trial_numbers[~finished], values[~finished], s=14, marker="x",
                     color="grey", label="pruned / failed trial")
    axes.step(trial_numbers, best_so_far, where="post", color="C3", label="best so far")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    _label(axes, "trial", ylabel, title)
    return _save(figure, path)


def plot_progress(curves: dict[str, tuple[np.ndarray, np.ndarray, bool]],
                  best_so_far: np.ndarray, path: Path, title: str, ylabel: str) -> Path:
    """Left: each configuration's fold-mean objective per epoch (finished: solid, stopped or
    failed: dashed grey). Right: the best configuration so far, in the order they ended."""
    figure, (per_epoch, best) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    for index, (name, (epochs, values, finished)) in enumerate(curves.items()):
        style = {"lw": 1.2, "color": f"C{index % 10}", "label": name} if finished else \
            {"lw": 0.8, "ls": "--", "color": "grey"}
        per_epoch.plot(epochs, values, **style)
    per_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    per_epoch.set_xlabel("epoch")
    per_epoch.set_ylabel(ylabel)
    per_epoch.set_title("every configuration", fontsize=9)
    if 0 < sum(finished for *_, finished in curves.values()) <= 8:
        per_epoch.legend(fontsize=6)
    ended = np.arange(1, len(best_so_far) + 1)
    best.step(ended, best_so_far, where="post", color="C3")
    best.xaxis.set_major_locator(MaxNLocator(integer=True))
    best.set_xlabel("configurations ended")
    best.set_title("best so far", fontsize=9)
    for axes in (per_epoch, best):
        axes.grid(alpha=0.3)
    figure.suptitle(textwrap.fill(title, 80), fontsize=10)
    return _save(figure, path)


def plot_deltas(names: Sequence[str], deltas: np.ndarray, ci_low: np.ndarray,
                ci_high: np.ndarray, path: Path, title: str, xlabel: str) -> Path:
    """Forest plot: each variant's mean paired difference from the baseline with its 95 % CI."""
    positions = np.arange(len(names))[::-1]
    errors = np.nan_to_num(np.vstack([deltas - ci_low, ci_high - deltas]))
    figure, axes = plt.subplots(figsize=(6.4, 1.2 + 0.4 * len(names)))
    axes.errorbar(deltas, positions, xerr=errors, fmt="o", capsize=3)
    axes.axvline(0.0, color="grey", linewidth=1)
    axes.set_yticks(positions, names)
    axes.set_xlabel(xlabel)
    axes.set_title(textwrap.fill(title, 60), fontsize=10)
    axes.grid(alpha=0.3, axis="x")
    return _save(figure, path)


def _label(axes: plt.Axes, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, a wrapped title, a light grid and the legend of a line or dot plot."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(textwrap.fill(title, 60), fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
