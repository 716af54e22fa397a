"""Files that runs and commands leave behind, written atomically: videos, plots, checkpoints."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def free_path(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``... if it exists: earlier files are kept."""
    candidate, index = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{index}{path.suffix}")
        index += 1
    return candidate


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` via a temporary file beside it, then rename: a failure leaves no partial
    file, and a reader never sees a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it normal permissions
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_video(frames: list[np.ndarray], path: Path, fps: int) -> None:
    """An MP4 of RGB frames."""
    import imageio.v2 as imageio

    atomic_write(path, lambda temporary: imageio.mimwrite(temporary, frames, fps=fps, macro_block_size=1))


def plot_success(eval_csv: Path, path: Path, title: str) -> None:
    """A PNG of success rate over env steps from a run's ``eval.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with eval_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(row["timesteps"]) for row in rows]
    success = [float(row["success_rate"]) for row in rows]
    figure, axes = plt.subplots(figsize=(5, 3.2), dpi=100)
    axes.plot(steps, success, marker="o")
    axes.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title=title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)
