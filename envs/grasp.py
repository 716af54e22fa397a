"""A grasp that must be earned: the needle attaches only when the jaws close around it.

When the jaw angle crosses below ``GRASP_CLOSED`` during a step, the needle is grasped if part of
its wire lay between the two fingers at the opening they had before the step (inside the wedge
they sweep, not merely touching one). From then on it follows the jaw rigidly with the grasp
offset it was taken with, so where and at what angle it is held persists; it comes free when
the jaw opens past ``GRASP_CLOSED``.
"""

from __future__ import annotations

import numpy as np

from surgisim.envs.kinematics import JAW_HALF_WIDTH, JAW_LENGTH
from surgisim.envs.needle import NEEDLE_WIRE_RADIUS, Needle, arc_angles
from surgisim.envs.robots import PSM

GRASP_CLOSED = np.deg2rad(10.0)  # jaw angles at or below this count as closed
CHECK_POINTS = arc_angles(48)  # about 0.8 mm apart along the wire


class Grasp:
    """Attachment of one needle to one PSM's jaws."""

    def __init__(self, psm: PSM, needle: Needle) -> None:
        self.psm, self.needle = psm, needle
        self.tip_to_yaw_frame = np.linalg.inv(psm.tool.tip_offset)
        self.held = False
        self.offset = np.eye(4)  # needle pose in the tool-tip frame while held

    def reset(self) -> None:
        self.held = False

    def update(self, previous_jaw: float) -> None:
        """Apply this step's jaw motion: release, follow, or try to grasp."""
        if self.held:
            if self.psm.jaw > GRASP_CLOSED:
                self.held = False
            else:
                self.needle.set_pose(self.psm.tip_pose() @ self.offset)
        elif self.psm.jaw <= GRASP_CLOSED < previous_jaw and self.between_jaws(previous_jaw):
            self.attach()

    def attach(self) -> None:
        """Hold the needle where it now is relative to the jaws."""
        self.held = True
        self.offset = np.linalg.inv(self.psm.tip_pose()) @ self.needle.pose()

    def between_jaws(self, opening: float) -> bool:
        """Whether some of the wire lies inside the wedge between fingers opened to ``opening``."""
        yaw_frame = self.psm.tip_pose() @ self.tip_to_yaw_frame
        local = (self.needle.points(CHECK_POINTS) - yaw_frame[:3, 3]) @ yaw_frame[:3, :3]
        x, y, z = local.T
        reach = np.hypot(x, y)
        angle = np.arctan2(-x, y)  # from the jaw's centre line towards the left finger
        clearance = np.arcsin(np.clip(NEEDLE_WIRE_RADIUS / np.maximum(reach, 1e-9), 0.0, 1.0))
        inside = (
            (reach >= 0.002)
            & (reach <= JAW_LENGTH - NEEDLE_WIRE_RADIUS)
            & (np.abs(z) <= JAW_HALF_WIDTH)
            & (np.abs(angle) <= opening / 2 - clearance)
        )
        return bool(inside.any())
