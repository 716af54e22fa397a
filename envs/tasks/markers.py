"""Visual markers that tasks place in the scene: goal spheres, entry and exit marks, lesions."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.camera import SegLabel
from surgisim.envs.scene import Scene

TARGET_RADIUS = 0.004
TARGET_RGBA = (0.1, 0.85, 0.2, 1.0)
NO_ROTATION = np.array([0.0, 0.0, 0.0, 1.0])


def add_target_marker(scene: Scene, name: str, scale: tuple[float, float, float], rgba: tuple[float, ...]) -> int:
    """A visual-only marker (no collision), labelled TARGET in segmentation."""
    body = scene.sim.create_body(
        name, visual=("mesh", {"fileName": "icosphere.obj", "meshScale": list(scale)}), collision=None, rgba=rgba
    )
    scene.camera.set_label(body, SegLabel.TARGET)
    return body


class GoalMarker:
    """A goal point, shown as a green sphere of 4 mm radius."""

    def __init__(self, scene: Scene, name: str = "target") -> None:
        self.scene, self.name = scene, name
        add_target_marker(scene, name, (TARGET_RADIUS,) * 3, TARGET_RGBA)
        self.position = np.zeros(3)

    def place(self, position: np.ndarray) -> None:
        self.position = np.array(position, dtype=np.float64)
        self.scene.sim.set_base_pose(self.name, self.position, NO_ROTATION)


class MarkedGoal:
    """For a task whose goal is a point an operator chooses, shown by ``self.target`` (a
    ``GoalMarker`` its ``build`` makes): the goal is set there and kept in the episode's state.
    List it before the task's base class (``class NeedleReach(MarkedGoal, Task)``)."""

    target: GoalMarker

    def set_goal(self, scene: Scene, position: np.ndarray) -> None:
        self.target.place(position)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "goal": self.target.position.copy()}

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self.target.place(state["goal"])


DAMAGE_RGBA = (0.32, 0.03, 0.04, 1.0)  # bruised, bleeding tissue
DAMAGE_MARK_RADIUS = 0.0012  # m: a 1 mm needle's puncture, slightly bruised around
DAMAGE_MARK_SPACING = 0.0015  # m between the marks of a drag, so that they join into a smear
DAMAGE_MARKS = 40  # at most this many marks an episode (60 mm of drag); later damage adds none
DAMAGE_MARK_HEIGHT = 0.0007  # m: over the tissue's entry and exit marks (0.6 mm high), as blood would be
HIDDEN = np.array([0.0, 0.0, -1.0])  # below the tissue bed, out of every view


class DamageMarks:
    """Punctures and drag marks on the tissue surface: flat dark-red discs where the needle went
    in and out and along the way the holes were dragged, labelled DAMAGE in segmentation."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        shape = {"fileName": "prism8.obj", "meshScale": [DAMAGE_MARK_RADIUS, DAMAGE_MARK_RADIUS, 0.0002]}
        for i in range(DAMAGE_MARKS):
            body = scene.sim.create_body(f"damage{i}", visual=("mesh", shape), collision=None, rgba=DAMAGE_RGBA)
            scene.camera.set_label(body, SegLabel.DAMAGE)
        self.points: list[np.ndarray] = []

    def reset(self) -> None:
        self.set_points([])

    def add(self, point: np.ndarray) -> None:
        """Mark the tissue surface under ``point``, unless a mark is already there (or none are left)."""
        spot = np.array([point[0], point[1], DAMAGE_MARK_HEIGHT])
        near = any(np.linalg.norm(spot - mark) < DAMAGE_MARK_SPACING for mark in self.points)
        if not near and len(self.points) < DAMAGE_MARKS:
            self.scene.sim.set_base_pose(f"damage{len(self.points)}", spot, NO_ROTATION)
            self.points.append(spot)

    def set_points(self, points: list) -> None:
        self.points = []
        for i in range(DAMAGE_MARKS):
            self.scene.sim.set_base_pose(f"damage{i}", HIDDEN, NO_ROTATION)
        for point in points:
            self.add(np.asarray(point, dtype=np.float64))
