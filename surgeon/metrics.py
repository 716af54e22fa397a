"""Clinical and motion metrics of a replay. Each ``Metric`` in ``METRICS`` carries its definition
and source, how it is computed from a replay and how it is judged against the reference's value.

The motion metrics take any sampled path (times in s, positions in m), so that they can be
checked against hand-computed values (``tests/test_surgeon.py``); ``measure`` applies every metric
to a replay (its first arm's reached tip path, and the task's own outcomes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

IDLE_SPEED = 0.002  # m/s: below this the instrument is idle
MOVEMENT_SPEED = 0.005  # m/s: a movement's peak speed is at least this (and a fifth of the fastest)
SPARC_CUTOFF = 10.0  # Hz, and the amplitude threshold 0.05: Balasubramanian et al. (2015)
DP_POINTS = 400  # paths are subsampled to at most this many points for DTW and Frechet


def speeds(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Speed (m/s) at each sample (central differences)."""
    return np.linalg.norm(np.gradient(positions, times, axis=0), axis=1)


def path_length(positions: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def economy_of_motion(positions: np.ndarray) -> float:
    straight = float(np.linalg.norm(positions[-1] - positions[0]))
    return path_length(positions) / straight if straight > 1e-9 else float("inf")


def movements(times: np.ndarray, positions: np.ndarray) -> int:
    from scipy.signal import find_peaks  # the surgeon extra

    speed = speeds(times, positions)
    fastest = float(speed.max(initial=0.0))
    if fastest < MOVEMENT_SPEED:
        return 0
    padded = np.concatenate([[0.0], speed, [0.0]])  # a movement at either end counts too
    peaks, _ = find_peaks(padded, height=max(MOVEMENT_SPEED, fastest / 5), prominence=fastest / 5)
    return len(peaks)


def idle_time(times: np.ndarray, positions: np.ndarray) -> float:
    step = np.gradient(times)
    return float(step[speeds(times, positions) < IDLE_SPEED].sum())


def ldlj(times: np.ndarray, positions: np.ndarray) -> float:
    """Log dimensionless jerk with the peak speed (Balasubramanian et al. 2015, LDLJ-V)."""
    velocity = np.gradient(positions, times, axis=0)
    jerk = np.gradient(np.gradient(velocity, times, axis=0), times, axis=0)
    duration, peak = float(times[-1] - times[0]), float(np.linalg.norm(velocity, axis=1).max())
    if peak <= 0:
        return float("nan")
    return float(-np.log(duration**3 / peak**2 * np.trapezoid(np.sum(jerk**2, axis=1), times)))


def sparc(times: np.ndarray, positions: np.ndarray, padding: int = 4, threshold: float = 0.05) -> float:
    """Spectral arc length of the speed profile (Balasubramanian et al. 2015, their reference
    algorithm; the cut-off is at most half the sample rate)."""
    speed = speeds(times, positions)
    rate = 1.0 / float(np.median(np.diff(times)))
    if speed.max(initial=0.0) <= 0:
        return float("nan")
    count = int(2 ** (np.ceil(np.log2(len(speed))) + padding))
    frequency = np.arange(count) * rate / count
    magnitude = np.abs(np.fft.fft(speed, count))
    magnitude /= magnitude.max()
    keep = frequency <= min(SPARC_CUTOFF, rate / 2)
    frequency, magnitude = frequency[keep], magnitude[keep]
    above = np.flatnonzero(magnitude >= threshold)
    frequency, magnitude = frequency[above[0] : above[-1] + 1], magnitude[above[0] : above[-1] + 1]
    if len(frequency) < 2:
        return 0.0
    span = frequency[-1] - frequency[0]
    return float(-np.sum(np.sqrt((np.diff(frequency) / span) ** 2 + np.diff(magnitude) ** 2)))


def _subsample(path: np.ndarray) -> np.ndarray:
    return path[np.linspace(0, len(path) - 1, min(len(path), DP_POINTS)).round().astype(int)]


def dtw(path: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance (m) between the points that dynamic time warping matches."""
    a, b = _subsample(path), _subsample(reference)
    distance = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    cost = np.full((len(a) + 1, len(b) + 1), np.inf)
    count = np.zeros((len(a) + 1, len(b) + 1))
    cost[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            moves = ((cost[i - 1, j - 1], count[i - 1, j - 1]), (cost[i - 1, j], count[i - 1, j]),
                     (cost[i, j - 1], count[i, j - 1]))  # fmt: skip
            best, steps = min(moves)
            cost[i, j], count[i, j] = best + distance[i - 1, j - 1], steps + 1
    return float(cost[-1, -1] / count[-1, -1])


def frechet(path: np.ndarray, reference: np.ndarray) -> float:
    """Discrete Frechet distance (m): the shortest leash for walking both paths forwards."""
    a, b = _subsample(path), _subsample(reference)
    distance = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    leash = np.full_like(distance, np.inf)
    for i in range(len(a)):
        for j in range(len(b)):
            before = 0.0 if i == j == 0 else min(
                leash[i - 1, j] if i else np.inf, leash[i, j - 1] if j else np.inf,
                leash[i - 1, j - 1] if i and j else np.inf)  # fmt: skip
            leash[i, j] = max(before, distance[i, j])
    return float(leash[-1, -1])


def _episodes(flags: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate([[False], flags]).astype(int)) == 1))


class Measured:
    """What the metrics read of one replay: its times (s), the first replayed arm's reached tip
    path (m, world), the control step, the steps in contact, and the reference path (or None)."""

    def __init__(self, replay: Any, reference: np.ndarray | None) -> None:
        self.replay, self.reference = replay, reference
        self.times = replay.times
        self.positions = replay.reached[next(iter(replay.reached))]
        self.step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        self.touching = np.array([len(points) > 0 for points in replay.contact_points])
        self.succeeded = np.flatnonzero(replay.success)
        self.last = replay.info[-1] if replay.info else {}


def relative(value: Any, reference: Any, better: str) -> str:
    """Beside the reference's value: within 10 % (or 1 unit) of it or better is green, within
    50 % (or 5 units) amber, else red; none without a reference."""
    if reference is None:
        return "none"
    worse = value - reference if better == "lower" else reference - value
    scale = abs(reference)
    if worse <= max(0.1 * scale, 1.0):
        return "green"
    return "amber" if worse <= max(0.5 * scale, 5.0) else "red"


def true_is_green(value: Any, reference: Any, better: str) -> str:
    return "green" if value else "red"


def zero_is_green(value: Any, reference: Any, better: str) -> str:
    """Any contact is red, whatever the reference did."""
    return "green" if value == 0 else "red"


def deviation(value: Any, reference: Any, better: str) -> str:
    """A deviation from the reference path: green to 5 mm, amber to 15 mm."""
    return "green" if value <= 5 else "amber" if value <= 15 else "red"


@dataclass(frozen=True)
class Metric:
    """One metric: its key in the results, label and unit, which way is better ("lower",
    "higher" or "true"), definition and source, its computation from a replay (``None`` where it
    does not apply) and its judge (a traffic light beside the reference's value)."""

    key: str
    label: str
    unit: str
    better: str
    definition: str
    source: str
    compute: Callable[[Measured], Any]
    judge: Callable[[Any, Any, str], str] = relative

    def light(self, value: Any, reference: Any) -> str:
        """``green``, ``amber``, ``red``, or ``none`` without a value."""
        return "none" if value is None else self.judge(value, reference, self.better)


def _completion_time(m: Measured) -> float:
    return float(m.times[m.succeeded[0]] if m.succeeded.size else m.times[-1] + m.step)


def _reference(distance: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[Measured], float | None]:
    return lambda m: None if m.reference is None else distance(m.positions, m.reference) * 1000


METRICS = [
    Metric("success", "Success", "", "true", "the task's own success criterion was met at some step",
           "the task's env card", lambda m: bool(m.succeeded.size), true_is_green),
    Metric("completion_time_s", "Completion time", "s", "lower",
           "time until the first success, or the whole trajectory without one", "Reiley et al. 2011, Surg Endosc",
           _completion_time),
    Metric("path_length_mm", "Path length", "mm", "lower", "sum of the distances between successive tip positions",
           "Reiley et al. 2011", lambda m: path_length(m.positions) * 1000),
    Metric("economy_of_motion", "Economy of motion", "", "lower",
           "path length over the straight-line distance from the first to the last position (1 is a straight "
           "line)", "Datta et al. 2001, J Am Coll Surg", lambda m: economy_of_motion(m.positions)),
    Metric("movements", "Number of movements", "", "lower",
           "peaks of the tip speed above 5 mm/s and a fifth of the fastest, with a prominence of a fifth of "
           "the fastest", "Judkins et al. 2009 (movement units)", lambda m: movements(m.times, m.positions)),
    Metric("idle_time_s", "Idle time", "s", "lower", "time with the tip slower than 2 mm/s", "Judkins et al. 2009",
           lambda m: idle_time(m.times, m.positions)),
    Metric("mean_speed_mm_s", "Mean speed", "mm/s", "higher", "path length over duration", "Reiley et al. 2011",
           lambda m: path_length(m.positions) * 1000 / max(m.times[-1] - m.times[0], 1e-9)),
    Metric("ldlj", "Smoothness (LDLJ)", "", "higher",
           "log dimensionless jerk, -ln(T^3 / v_peak^2 * integral of |jerk|^2 dt); -5.32 for a minimum-jerk "
           "reach", "Hogan & Sternad 2009; Balasubramanian et al. 2015, J NeuroEng Rehabil",
           lambda m: ldlj(m.times, m.positions)),
    Metric("sparc", "Smoothness (SPARC)", "", "higher",
           "spectral arc length of the speed profile (cut-off 10 Hz, threshold 0.05); -1.40 for a minimum-jerk "
           "reach", "Balasubramanian et al. 2015", lambda m: sparc(m.times, m.positions)),
    Metric("out_of_view_s", "Out of view", "s", "lower", "time with the instrument tip outside the endoscope image",
           "surgisim: projection with the endoscope's intrinsics",
           lambda m: float(np.count_nonzero(~m.replay.in_view) * m.step)),
    Metric("contacts", "Contacts with anatomy", "", "lower",
           "separate episodes of the instrument touching an organ, a vessel or the tissue bed", "PyBullet closest "
           "points", lambda m: _episodes(m.touching), zero_is_green),
    Metric("contact_time_s", "Contact time", "s", "lower", "time in contact", "PyBullet closest points",
           lambda m: float(np.count_nonzero(m.touching) * m.step), zero_is_green),
    Metric("deepest_penetration_mm", "Deepest penetration", "mm", "lower",
           "the largest interpenetration of instrument and anatomy", "PyBullet closest points (negative distance)",
           lambda m: float(m.replay.contact_depth.max(initial=0.0) * 1000), zero_is_green),
    Metric("tissue_damage_mm", "Tissue damage", "mm", "lower",
           "length of tissue cut by the needle moving off its own arc (NeedleInsert, SutureThrow)",
           "surgisim.envs.tissue", lambda m: float(m.replay.damage_mm[-1]) if len(m.replay.damage_mm) else 0.0),
    Metric("entry_error_mm", "Entry error", "mm", "lower", "distance of the needle's entry from the entry mark",
           "surgisim NeedleInsert", lambda m: m.last.get("entry_error_mm")),
    Metric("exit_error_mm", "Exit error", "mm", "lower", "distance of the needle's exit from the exit mark",
           "surgisim NeedleInsert", lambda m: m.last.get("exit_error_mm")),
    Metric("dtw_mm", "Deviation from the reference (DTW)", "mm", "lower",
           "mean distance between matched points of the tip path and the reference's under dynamic time warping",
           "Sakoe & Chiba 1978", _reference(dtw), deviation),
    Metric("frechet_mm", "Deviation from the reference (Frechet)", "mm", "lower",
           "discrete Frechet distance between the tip path and the reference's", "Eiter & Mannila 1994",
           _reference(frechet), deviation),
]  # fmt: skip


def measure(replay: Any, reference: np.ndarray | None = None, metrics: list[Metric] | None = None) -> dict[str, Any]:
    """Every metric (``METRICS`` by default) of a replay, by key; the reference path (m, world)
    gives the deviations, ``None`` leaves them out. A value that is not finite is ``None``."""
    measured = Measured(replay, reference)
    values = {metric.key: metric.compute(measured) for metric in (METRICS if metrics is None else metrics)}
    return {key: (None if isinstance(v, float) and not np.isfinite(v) else v) for key, v in values.items()}
