"""Clinical and motion metrics of a replay, each defined in ``METRICS`` with its source.

The motion metrics take any sampled path (times in s, positions in m), so that they can be
checked against hand-computed values (``tests/test_surgeon.py``); ``assess`` applies them to a
replay's reached tip path and adds the task's own outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

IDLE_SPEED = 0.002  # m/s: below this the instrument is idle
MOVEMENT_SPEED = 0.005  # m/s: a movement's peak speed is at least this (and a fifth of the fastest)
SPARC_CUTOFF = 10.0  # Hz, and the amplitude threshold 0.05: Balasubramanian et al. (2015)
DP_POINTS = 400  # paths are subsampled to at most this many points for DTW and Frechet


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "lower", "higher" or "true"
    definition: str
    source: str


METRICS = [
    Metric("success", "Success", "", "true", "the task's own success criterion was met at some step",
           "the task's env card"),
    Metric("completion_time_s", "Completion time", "s", "lower",
           "time until the first success, or the whole trajectory without one", "Reiley et al. 2011, Surg Endosc"),
    Metric("path_length_mm", "Path length", "mm", "lower", "sum of the distances between successive tip positions",
           "Reiley et al. 2011"),
    Metric("economy_of_motion", "Economy of motion", "", "lower",
           "path length over the straight-line distance from the first to the last position (1 is a straight "
           "line)", "Datta et al. 2001, J Am Coll Surg"),
    Metric("movements", "Number of movements", "", "lower",
           "peaks of the tip speed above 5 mm/s and a fifth of the fastest, with a prominence of a fifth of "
           "the fastest", "Judkins et al. 2009 (movement units)"),
    Metric("idle_time_s", "Idle time", "s", "lower", "time with the tip slower than 2 mm/s", "Judkins et al. 2009"),
    Metric("mean_speed_mm_s", "Mean speed", "mm/s", "higher", "path length over duration", "Reiley et al. 2011"),
    Metric("ldlj", "Smoothness (LDLJ)", "", "higher",
           "log dimensionless jerk, -ln(T^3 / v_peak^2 * integral of |jerk|^2 dt); -5.32 for a minimum-jerk "
           "reach", "Hogan & Sternad 2009; Balasubramanian et al. 2015, J NeuroEng Rehabil"),
    Metric("sparc", "Smoothness (SPARC)", "", "higher",
           "spectral arc length of the speed profile (cut-off 10 Hz, threshold 0.05); -1.40 for a minimum-jerk "
           "reach", "Balasubramanian et al. 2015"),
    Metric("out_of_view_s", "Out of view", "s", "lower", "time with the instrument tip outside the endoscope image",
           "surgisim: projection with the endoscope's intrinsics"),
    Metric("contacts", "Contacts with anatomy", "", "lower",
           "separate episodes of the instrument touching an organ, a vessel or the tissue bed", "PyBullet closest "
           "points"),
    Metric("contact_time_s", "Contact time", "s", "lower", "time in contact", "PyBullet closest points"),
    Metric("deepest_penetration_mm", "Deepest penetration", "mm", "lower",
           "the largest interpenetration of instrument and anatomy", "PyBullet closest points (negative distance)"),
    Metric("tissue_damage_mm", "Tissue damage", "mm", "lower",
           "length of tissue cut by the needle moving off its own arc (NeedleInsert, SutureThrow)",
           "surgisim.envs.tissue"),
    Metric("entry_error_mm", "Entry error", "mm", "lower", "distance of the needle's entry from the entry mark",
           "surgisim NeedleInsert"),
    Metric("exit_error_mm", "Exit error", "mm", "lower", "distance of the needle's exit from the exit mark",
           "surgisim NeedleInsert"),
    Metric("dtw_mm", "Deviation from the reference (DTW)", "mm", "lower",
           "mean distance between matched points of the tip path and the reference's under dynamic time warping",
           "Sakoe & Chiba 1978"),
    Metric("frechet_mm", "Deviation from the reference (Frechet)", "mm", "lower",
           "discrete Frechet distance between the tip path and the reference's", "Eiter & Mannila 1994"),
]  # fmt: skip
BY_KEY = {metric.key: metric for metric in METRICS}


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


def assess(replay: Any, reference: np.ndarray | None = None) -> dict[str, Any]:
    """Every metric of ``METRICS`` for a replay (the first replayed arm's reached tip path);
    the reference path (m, world) gives the deviations, ``None`` leaves them out."""
    times, arm = replay.times, next(iter(replay.reached))
    positions = replay.reached[arm]
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    touching = np.array([len(points) > 0 for points in replay.contact_points])
    succeeded = np.flatnonzero(replay.success)
    last = replay.info[-1] if replay.info else {}
    values: dict[str, Any] = {
        "success": bool(succeeded.size),
        "completion_time_s": float(times[succeeded[0]] if succeeded.size else times[-1] + step),
        "path_length_mm": path_length(positions) * 1000,
        "economy_of_motion": economy_of_motion(positions),
        "movements": movements(times, positions),
        "idle_time_s": idle_time(times, positions),
        "mean_speed_mm_s": path_length(positions) * 1000 / max(times[-1] - times[0], 1e-9),
        "ldlj": ldlj(times, positions),
        "sparc": sparc(times, positions),
        "out_of_view_s": float(np.count_nonzero(~replay.in_view) * step),
        "contacts": _episodes(touching),
        "contact_time_s": float(np.count_nonzero(touching) * step),
        "deepest_penetration_mm": float(replay.contact_depth.max(initial=0.0) * 1000),
        "tissue_damage_mm": float(replay.damage_mm[-1]) if len(replay.damage_mm) else 0.0,
        "entry_error_mm": last.get("entry_error_mm"),
        "exit_error_mm": last.get("exit_error_mm"),
        "dtw_mm": dtw(positions, reference) * 1000 if reference is not None else None,
        "frechet_mm": frechet(positions, reference) * 1000 if reference is not None else None,
    }
    return {key: (None if isinstance(v, float) and not np.isfinite(v) else v) for key, v in values.items()}


def traffic_light(key: str, value: Any, reference: Any) -> str:
    """``green``, ``amber`` or ``red`` for a value beside the reference's (the expert's):
    within 10 % (or 1 unit) of it or better is green, within 50 % (or 5 units) amber. Contacts
    and penetration are red when any; success is green or red; deviations are judged in mm."""
    metric = BY_KEY[key]
    if value is None:
        return "none"
    if metric.better == "true":
        return "green" if value else "red"
    if key in ("contacts", "contact_time_s", "deepest_penetration_mm"):
        return "green" if value == 0 else "red"
    if key in ("dtw_mm", "frechet_mm"):
        return "green" if value <= 5 else "amber" if value <= 15 else "red"
    if reference is None:
        return "none"
    worse = value - reference if metric.better == "lower" else reference - value
    scale = abs(reference)
    if worse <= max(0.1 * scale, 1.0):
        return "green"
    return "amber" if worse <= max(0.5 * scale, 5.0) else "red"
