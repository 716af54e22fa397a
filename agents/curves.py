"""A run's evaluations (``eval.csv``) and the success curves drawn from them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from surgisim.agents.stats import bootstrap_ci, iqm
from surgisim.envs.documents import shorten
from surgisim.envs.files import atomic_write


def read_evaluations(eval_csv: Path) -> list[list[str]]:
    """A run's ``eval.csv``: its header, then one row per evaluation whose step count and success
    rate are numbers; a ``ValueError`` naming the file otherwise (and ``[]`` where there is none)."""
    if not eval_csv.exists():
        return []
    try:
        with eval_csv.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows or rows[0][:2] != ["timesteps", "success_rate"]:
            raise ValueError("its header is not timesteps, success_rate, ...")
        for row in rows[1:]:
            if len(row) != len(rows[0]):
                raise ValueError(f"a row of {len(row)} values under {len(rows[0])} columns")
            int(row[0]), float(row[1])
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        raise ValueError(f"{eval_csv}: not a run's evaluations ({shorten(str(error))})") from None
    return rows


def plot_success(eval_csv: Path, path: Path, title: str) -> None:
    """A PNG of success rate over env steps from a run's ``eval.csv``."""
    import matplotlib  # the rl extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_evaluations(eval_csv)[1:]
    steps = [int(row[0]) for row in rows]
    success = [float(row[1]) for row in rows]
    figure, axes = plt.subplots(figsize=(5, 3.2), dpi=100)
    axes.plot(steps, success, marker="o")
    axes.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title=title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], path: Path, title: str) -> None:
    """A PNG of success over env steps, per label: the interquartile mean over the runs (each a
    list of (steps, success) evaluations) with its 95 % bootstrap band, at the steps all share."""
    import matplotlib  # the rl extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6), dpi=100)
    for label, runs in curves.items():
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(step for step, _ in run) for run in runs)))
        values = np.array([[dict(run)[step] for step in steps] for run in runs])  # runs x steps
        centre = [iqm(column) for column in values.T]
        bands = np.array([bootstrap_ci(column) for column in values.T])
        axes.plot(steps, centre, marker="o", label=f"{label} ({len(runs)} seeds)")
        if len(runs) > 1:
            axes.fill_between(steps, bands[:, 0], bands[:, 1], alpha=0.2)
    axes.set(xlabel="env steps", ylabel="success rate (IQM, 95% CI)", ylim=(-0.02, 1.02), title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)
