"""Visual markers that tasks place in the scene: goal spheres, entry and exit marks, lesions."""

from __future__ import annotations

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
