"""Results over seeds, as deep-RL evaluation should report them (Agarwal et al. 2021, ``rliable``):
the interquartile mean (the mean of the middle half of the runs: robust to a few outliers, less
noisy than the median) with a 95 % percentile-bootstrap confidence interval over the runs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def iqm(values: np.ndarray) -> float:
    """The mean after dropping the lowest and highest quarter of the runs (rounded down), as
    ``rliable`` computes it (``scipy.stats.trim_mean`` with 0.25)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) == 0:
        return float("nan")
    cut = int(0.25 * len(ordered))
    return float(ordered[cut : len(ordered) - cut].mean())


def bootstrap_ci(values: np.ndarray, statistic: Callable[[np.ndarray], float] = iqm, confidence: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """The percentile-bootstrap interval of ``statistic`` over the runs (seeded: the same values
    give the same interval)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(resamples)]
    low, high = np.percentile(draws, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(low), float(high)
