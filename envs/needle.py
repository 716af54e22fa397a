"""A curved suture needle: a half-circle of wire, simulated as one rigid PyBullet body.

Needle frame: the origin is the centre of the arc, which lies in the x-y plane; the point at angle
phi is ``NEEDLE_RADIUS * (cos phi, sin phi, 0)``. The tail (where thread attaches) is at phi = 0
and the sharp tip at phi = pi; the needle's z axis is its axis of rotation when driven along
its own arc.
"""

from __future__ import annotations

import numpy as np

from surgisim.envs.camera import Camera, SegLabel
from surgisim.envs.kinematics import rot_z
from surgisim.envs.sim import Sim
from surgisim.envs.transforms import make_pose, matrix_to_quat, quat_to_matrix

NEEDLE_RADIUS = 0.012  # a 1/2-circle needle, 37.7 mm along the arc (like a CT-1 size)
NEEDLE_ARC = np.pi
NEEDLE_WIRE_RADIUS = 0.0005  # 1 mm wire
NEEDLE_MASS = 0.002  # kg
NEEDLE_SEGMENTS = 8  # straight segments make up the rendered and colliding arc
NEEDLE_RGBA = (0.85, 0.85, 0.9, 1.0)


def arc_angles(count: int) -> np.ndarray:
    return np.linspace(0.0, NEEDLE_ARC, count)


def arc_points(angles: np.ndarray) -> np.ndarray:
    """Points of the needle's centre line (N x 3, needle frame) at the given arc angles."""
    return NEEDLE_RADIUS * np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=-1)


class Needle:
    """The needle body: segment boxes for rendering and collision, posed as a whole."""

    def __init__(self, sim: Sim, camera: Camera, name: str = "needle") -> None:
        self.sim, self.name = sim, name
        ends = arc_points(arc_angles(NEEDLE_SEGMENTS + 1))
        centres = (ends[:-1] + ends[1:]) / 2
        directions = ends[1:] - ends[:-1]
        half_length = np.linalg.norm(directions[0]) / 2 + NEEDLE_WIRE_RADIUS
        orientations = [
            matrix_to_quat(_rotation_from_x(direction / np.linalg.norm(direction))) for direction in directions
        ]
        half_extents = [[half_length, NEEDLE_WIRE_RADIUS, NEEDLE_WIRE_RADIUS]] * NEEDLE_SEGMENTS
        self.body = sim.create_compound_body(name, half_extents, centres, orientations, NEEDLE_RGBA, NEEDLE_MASS,
                                             friction=(1.0, 0.001, 0.001))  # fmt: skip
        camera.set_label(self.body, SegLabel.NEEDLE)
        self.set_pose(np.eye(4))

    def pose(self) -> np.ndarray:
        position, orientation = self.sim.base_pose(self.name)
        return make_pose(quat_to_matrix(orientation), position)

    def set_pose(self, pose: np.ndarray, velocity: np.ndarray | None = None) -> None:
        """Place the needle at a world pose, at rest or with a (linear, angular) ``velocity`` (6,)."""
        velocity = np.zeros(6) if velocity is None else np.asarray(velocity, dtype=np.float64)
        self.set_state(np.concatenate([pose[:3, 3], matrix_to_quat(pose[:3, :3]), velocity]))

    def state(self) -> np.ndarray:
        """Position (3), orientation quaternion (4) and velocity (6) as last given to PyBullet
        (``set_state``, ``set_pose``, ``settle``), which ``set_state`` gives it again exactly."""
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        self._state = np.array(state, dtype=np.float64)
        self.sim.set_base_pose(self.name, self._state[:3], self._state[3:7])
        self.sim.set_base_velocity(self.name, self._state[7:10], self._state[10:13])

    def settle(self) -> None:
        """Take the state physics left as the needle's own. PyBullet rounds a pose it is given
        (reading it back may differ in the last bit), so a restored needle matches the one that
        fell only if both were given the same numbers."""
        position, orientation = self.sim.base_pose(self.name)
        self.set_state(np.concatenate([position, orientation, self.velocity()]))

    def forget_contacts(self) -> None:
        """Drop PyBullet's cached contacts (solver warm-start data) for the needle, which no saved
        state carries, by taking it out of collision detection for one pass."""
        self.sim.set_collisions(self.name, False)
        self.sim.detect_collisions()
        self.sim.set_collisions(self.name, True)

    def velocity(self) -> np.ndarray:
        """Linear (m/s) and angular (rad/s) velocity, stacked (6,)."""
        return np.concatenate(self.sim.base_velocity(self.name))

    def points(self, angles: np.ndarray) -> np.ndarray:
        """World positions of the centre line at the given arc angles."""
        pose = self.pose()
        return arc_points(angles) @ pose[:3, :3].T + pose[:3, 3]

    def midpoint(self) -> np.ndarray:
        return self.points(np.array([NEEDLE_ARC / 2]))[0]


def _rotation_from_x(direction: np.ndarray) -> np.ndarray:
    """A rotation whose x axis is ``direction`` (a unit vector in the x-y plane)."""
    z_axis = np.array([0.0, 0.0, 1.0])
    return np.column_stack([direction, np.cross(z_axis, direction), z_axis])


def lying_pose(centre_xy: np.ndarray, heading: float) -> np.ndarray:
    """The needle lying flat on the tissue (z = 0), arc centre at ``centre_xy``, turned by ``heading``."""
    return make_pose(rot_z(heading), np.array([centre_xy[0], centre_xy[1], NEEDLE_WIRE_RADIUS]))
