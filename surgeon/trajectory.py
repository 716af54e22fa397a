"""A surgeon's trajectory: the one model every reader produces and the replay takes.

A ``Trajectory`` is samples at increasing times (s, from 0) of the instrument tip of one or two
PSMs (``psm1``: the surgeon's right hand, ``psm2``: the left): position (m), orientation (3x3
rotation matrix, its z axis along the jaws) and jaw angle (rad). The tip is the **jaw tips**, the
point the tasks score (a dVRK's ``measured_cp`` is the jaw pivot, 10.2 mm behind; the bag reader
converts). ``frame`` says what the poses are in:

- ``world``: the task's table frame (z up, the tissue surface at z = 0), as ``SurgicalEnv`` uses;
- ``base``: the arm's base frame (its remote centre of motion), as a dVRK reports poses;
- ``camera``: the endoscope's frame (OpenCV axes: x right, y down, z forward), as a surgeon sees
  the motion on the console.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgisim.envs.transforms import rotation_from_vector, rotation_vector

FRAMES = ("world", "base", "camera")
ARMS = ("psm1", "psm2")
MAX_DURATION_S = 3600.0  # an hour: longer than any motion replayed here, short enough to resample in memory


@dataclass
class ArmPath:
    """One arm's samples: positions (N, 3) in m, rotations (N, 3, 3), jaw angles (N,) in rad."""

    positions: np.ndarray
    rotations: np.ndarray
    jaws: np.ndarray

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.jaws = np.asarray(self.jaws, dtype=np.float64)


@dataclass
class Trajectory:
    """Samples of one or two arms' tips over time (see the module docstring)."""

    times: np.ndarray
    arms: dict[str, ArmPath]
    frame: str = "world"
    source: str = ""  # where it came from, for messages and the report
    notes: list[str] = field(default_factory=list)  # what a reader assumed or changed

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        where = self.source or "trajectory"
        if self.frame not in FRAMES:
            raise ValueError(f"{where}: frame {self.frame!r} is not one of {', '.join(FRAMES)}")
        if not self.arms or set(self.arms) - set(ARMS):
            raise ValueError(f"{where}: arms {sorted(self.arms)}; use psm1 and/or psm2")
        count = len(self.times)
        if count < 2:
            raise ValueError(f"{where}: {count} sample(s); a trajectory needs at least 2")
        if not np.all(np.isfinite(self.times)) or np.any(np.diff(self.times) <= 0):
            bad = int(np.argmax(~(np.diff(self.times) > 0))) + 1 if np.all(np.isfinite(self.times)) else 0
            raise ValueError(f"{where}: times must be finite and increasing (sample {bad}: {self.times[bad]!r})")
        self.times = self.times - self.times[0]
        if self.times[-1] > MAX_DURATION_S:
            raise ValueError(f"{where}: lasts {self.times[-1]:.4g} s; a replay takes at most {MAX_DURATION_S:.0f} s "
                             "(are the times in seconds?)")  # fmt: skip
        for name, path in self.arms.items():
            shapes = (path.positions.shape, path.rotations.shape, path.jaws.shape)
            if shapes != ((count, 3), (count, 3, 3), (count,)):
                raise ValueError(f"{where}: {name} has shapes {shapes}, expected {count} positions, rotations, jaws")
            for what, values in (("position", path.positions), ("rotation", path.rotations), ("jaw", path.jaws)):
                rows = np.flatnonzero(~np.all(np.isfinite(values.reshape(count, -1)), axis=1))
                if rows.size:
                    raise ValueError(f"{where}: {name} {what} is not finite at sample {rows[0]} (t = "
                                     f"{self.times[rows[0]]:.3f} s)")  # fmt: skip
            error = np.abs(path.rotations @ np.swapaxes(path.rotations, 1, 2) - np.eye(3)).max(axis=(1, 2))
            if np.any(error > 1e-2) or np.any(np.linalg.det(path.rotations) < 0):
                sample = int(np.argmax(error > 1e-2)) if np.any(error > 1e-2) else 0
                raise ValueError(f"{where}: {name} rotation at sample {sample} is not a rotation matrix")
            path.rotations = _orthonormal(path.rotations)

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def resampled(self, times: np.ndarray) -> Trajectory:
        """The trajectory at ``times`` (s; clamped to its span): positions and jaws linearly,
        rotations along the shortest arc between neighbouring samples."""
        times = np.clip(np.asarray(times, dtype=np.float64), 0.0, self.duration)
        index = np.clip(np.searchsorted(self.times, times, side="right") - 1, 0, len(self.times) - 2)
        weight = (times - self.times[index]) / (self.times[index + 1] - self.times[index])
        arms = {}
        for name, path in self.arms.items():
            positions = path.positions[index] + weight[:, None] * (path.positions[index + 1] - path.positions[index])
            jaws = path.jaws[index] + weight * (path.jaws[index + 1] - path.jaws[index])
            rotations = np.array([
                start @ rotation_from_vector(w * rotation_vector(start.T @ end))
                for start, end, w in zip(path.rotations[index], path.rotations[index + 1], weight, strict=True)
            ])  # fmt: skip
            arms[name] = ArmPath(positions, rotations, jaws)
        return Trajectory(times, arms, self.frame, self.source, list(self.notes))


def _orthonormal(rotations: np.ndarray) -> np.ndarray:
    """The nearest rotation matrices (files round their entries)."""
    u, _, vt = np.linalg.svd(rotations)
    return u @ vt
