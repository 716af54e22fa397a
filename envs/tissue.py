"""Needle-tissue interaction: punctures, resistance to sideways motion, and tissue damage.

The tissue surface is the plane z = 0. When the needle tip crosses it downwards, an entry hole
is made there; when it crosses back up, an exit hole. While the wire passes through a hole the
needle moves freely only along its own arc (a rotation about its axis through the arc centre,
which keeps the wire in the same holes). Any other part of a commanded motion is resisted: only
``1 - RESISTANCE`` of it happens, and the holes are dragged along with the wire.

Damage (mm) is the total distance the holes have been dragged: zero for a needle driven exactly
along its arc, growing with every sideways sweep, twist or pull through the tissue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.kinematics import rot_z
from surgisim.envs.needle import NEEDLE_ARC, NEEDLE_RADIUS
from surgisim.envs.transforms import make_pose, scale_motion

RESISTANCE = 0.8  # fraction of off-arc needle motion that the tissue stops
NUMERICAL_DRAG_MM = 1e-4  # hole movements below this are rounding, not damage


def rot_about_z(angle: float) -> np.ndarray:
    return make_pose(rot_z(angle), np.zeros(3))


def on_circle(needle_pose: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The point of the needle's circle (world frame) nearest to ``point``."""
    local = needle_pose[:3, :3].T @ (point - needle_pose[:3, 3])
    local[2] = 0.0
    local *= NEEDLE_RADIUS / max(float(np.linalg.norm(local)), 1e-12)
    return needle_pose[:3, :3] @ local + needle_pose[:3, 3]


def wire_through(needle_pose: np.ndarray, hole: np.ndarray) -> bool:
    """Whether the needle's wire (not just its circle) passes the hole."""
    local = needle_pose[:3, :3].T @ (hole - needle_pose[:3, 3])
    return 0.0 <= np.arctan2(local[1], local[0]) % (2 * np.pi) <= NEEDLE_ARC


class Tissue:
    """Holes made by one needle in the tissue surface, and the damage done to them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.entry: np.ndarray | None = None
        self.exit: np.ndarray | None = None
        self.damage_mm = 0.0
        self.step_damage_mm = 0.0

    def holds(self, needle_pose: np.ndarray) -> bool:
        """Whether the wire passes through a hole (so the tissue holds the needle)."""
        return any(wire_through(needle_pose, hole) for hole in (self.entry, self.exit) if hole is not None)

    def resist(self, before: np.ndarray, commanded: np.ndarray) -> np.ndarray:
        """The needle pose the tissue lets a commanded move from ``before`` reach."""
        if not self.holds(before):
            return commanded
        motion = np.linalg.inv(before) @ commanded  # in the needle frame
        along_arc = float(np.arctan2(motion[1, 0] - motion[0, 1], motion[0, 0] + motion[1, 1]))
        off_arc = rot_about_z(-along_arc) @ motion
        return before @ rot_about_z(along_arc) @ scale_motion(off_arc, 1.0 - RESISTANCE)

    def update(self, before: np.ndarray, after: np.ndarray) -> None:
        """Record punctures made by the tip and drag the holes with the wire; add up damage."""
        self.step_damage_mm = 0.0
        for name in ("entry", "exit"):
            hole = getattr(self, name)
            if hole is not None and wire_through(before, hole):
                moved = on_circle(after, hole)
                drag_mm = float(np.linalg.norm(moved - hole)) * 1000.0
                if drag_mm > NUMERICAL_DRAG_MM:
                    self.step_damage_mm += drag_mm
                    setattr(self, name, moved)
        self.damage_mm += self.step_damage_mm
        tip_before, tip_after = tip_position(before), tip_position(after)
        if self.entry is None and tip_before[2] >= 0.0 > tip_after[2]:
            self.entry = on_circle(after, _crossing(tip_before, tip_after))
        elif self.entry is not None and self.exit is None and tip_before[2] < 0.0 <= tip_after[2]:
            self.exit = on_circle(after, _crossing(tip_before, tip_after))

    def get_state(self) -> dict[str, Any]:
        return {"entry": self.entry, "exit": self.exit, "damage_mm": self.damage_mm, "step": self.step_damage_mm}

    def set_state(self, state: dict[str, Any]) -> None:
        self.entry = None if state["entry"] is None else np.array(state["entry"])
        self.exit = None if state["exit"] is None else np.array(state["exit"])
        self.damage_mm, self.step_damage_mm = float(state["damage_mm"]), float(state["step"])


def tip_position(needle_pose: np.ndarray) -> np.ndarray:
    local = NEEDLE_RADIUS * np.array([np.cos(NEEDLE_ARC), np.sin(NEEDLE_ARC), 0.0])
    return needle_pose[:3, :3] @ local + needle_pose[:3, 3]


def _crossing(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Where the segment between two points on either side of z = 0 crosses it."""
    fraction = start[2] / (start[2] - end[2])
    return start + fraction * (end - start)
