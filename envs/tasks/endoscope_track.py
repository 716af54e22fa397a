"""EndoscopeTrack: steer the endoscope so that a moving lesion stays centred at a set distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Expert, Task
from surgisim.envs.tasks.inputs import Lesion
from surgisim.envs.tasks.markers import add_target_marker

LESION_HALF_AXES = (0.006, 0.006, 0.004)  # a raised dome, 12 mm across: tall enough to show in depth
LESION_CENTRE_Z = 0.00075  # the tracked point, 0.75 mm above the tissue
LESION_RGBA = (0.45, 0.1, 0.45, 1.0)
VIEW_DISTANCE = 0.08  # metres from the camera to the lesion, along the optical axis
START_VIEW_ANGLE_DEG = 25.0  # the lesion starts at most this far off the optical axis


class EndoscopeTrack(Task):
    """Steer the ECM so that a lesion marker moving over the tissue stays centred in the image.

    ## Description
    A lesion marker (purple, 12 mm across) glides over the tissue on a seeded Lissajous path
    (amplitudes 1-2.5 cm, at most 1.5 mm per step). The endoscope starts at its home pose moved
    by up to 2 cm in each axis, with the lesion in view (at most 25 degrees off the axis). The
    goal is the lesion on the optical axis, 8 cm in front of the camera.

    ## Action space
    ECM actions (see ``SurgicalEnv``): 4-D cartesian (camera translation and roll) or 4-D joint.
    The camera is kept inside x, y in [-10, 10] cm, z in [4, 20] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 9 + 6 | camera position and rotation (6-D), lesion position and velocity (world) |
    | achieved_goal | 3 | lesion position in the camera frame (m; x right, y down, z forward) |
    | desired_goal | 3 | (0, 0, 0.08) |

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``) and the ECM's
    reported camera pose (``state``, 9); the lesion only in the image.

    ## Rewards
    Sparse: -1 per step while the lesion is more than 5 mm from the goal point, else 0. Dense:
    minus that distance in metres.

    ## Episode end
    Never terminates (tracking goes on); truncated after 100 steps. ``is_success`` at the last
    step says whether the lesion is centred then.

    ## Version history
    v0: first release. Since 2026-11-29 the scene is textured and the lesion is a 4 mm dome
    (it was 1.5 mm high); the tracked point and the state observation are unchanged.
    """

    arms = ("ecm",)
    max_episode_steps = 100
    robot_inputs = (Lesion,)
    moves_by_itself = True
    terminate_on_success = False
    workspace = ((-0.10, -0.10, 0.04), (0.10, 0.10, 0.20))

    def build(self, scene: Scene) -> None:
        add_target_marker(scene, "lesion", LESION_HALF_AXES, LESION_RGBA)
        self.centre, self.amplitude = np.zeros(2), np.zeros(2)
        self.frequency, self.phase = np.zeros(2), np.zeros(2)
        self.time = 0
        self.tracked: tuple[np.ndarray, np.ndarray] | None = None  # a robot's lesion, see track_lesion

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        self.centre = rng.uniform(-0.01, 0.01, 2) + np.array([0.0, -0.01])
        self.amplitude = rng.uniform(0.01, 0.025, 2)
        self.frequency = rng.uniform(0.02, 0.06, 2)  # radians per step
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        self.time = 0
        self.tracked = None
        self._place_lesion(scene)
        home = scene.ecm.tip_pose()[:3, 3]
        while True:  # start off-centre, but with the lesion in view
            scene.ecm.move_tip(home + rng.uniform(-0.02, 0.02, 3), np.zeros(3))
            lesion = self.achieved_goal(scene)
            if np.linalg.norm(lesion[:2]) < np.tan(np.deg2rad(START_VIEW_ANGLE_DEG)) * lesion[2]:
                break
        scene.psm.set_joints(scene.psm_home(np.array([-0.035, 0.03, 0.04])))  # parked, in view

    def lesion_position(self, time: float) -> np.ndarray:
        xy = self.centre + self.amplitude * np.sin(self.frequency * time + self.phase)
        return np.array([xy[0], xy[1], LESION_CENTRE_Z])

    def _place_lesion(self, scene: Scene) -> None:
        scene.sim.set_base_pose("lesion", self.lesion_position(self.time), np.array([0.0, 0.0, 0.0, 1.0]))

    def step_world(self, scene: Scene) -> None:
        self.time += 1
        self._place_lesion(scene)

    def track_lesion(self, position: np.ndarray, displacement: np.ndarray) -> None:
        """Follow a lesion tracked on a robot instead of the seeded path: its world position and
        its displacement over the last control period (m); until the next reset."""
        self.tracked = (np.array(position, dtype=np.float64), np.array(displacement, dtype=np.float64))

    def lesion(self) -> np.ndarray:
        """Where the lesion is now (world, m): on its path, or where a robot's tracker saw it."""
        return self._lesion()[0].copy()

    def _lesion(self) -> tuple[np.ndarray, np.ndarray]:
        """The lesion's world position and its displacement over the last step."""
        if self.tracked is not None:
            return self.tracked
        position = self.lesion_position(self.time)
        return position, position - self.lesion_position(self.time - 1)

    def observation(self, scene: Scene) -> np.ndarray:
        return np.concatenate(self._lesion())

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        camera = scene.camera_pose()
        return camera[:3, :3].T @ (self._lesion()[0] - camera[:3, 3])

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return np.array([0.0, 0.0, VIEW_DISTANCE])

    def get_state(self) -> dict[str, Any]:
        numbers = {k: getattr(self, k).copy() for k in ("centre", "amplitude", "frequency", "phase")}
        return {**super().get_state(), **numbers, "time": self.time}

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        for key in ("centre", "amplitude", "frequency", "phase"):
            setattr(self, key, np.array(state[key]))
        self.time = int(state["time"])
        self._place_lesion(scene)


class EndoscopeTrackExpert(Expert):
    """Put the camera on the line from the RCM through where the lesion will be next step."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        features = observation["observation"][-6:].astype(np.float64)
        lesion_next = features[:3] + features[3:]
        rcm = self.env.scene.ecm.rcm()
        direction = (lesion_next - rcm) / np.linalg.norm(lesion_next - rcm)
        return self.env.action_toward(lesion_next - VIEW_DISTANCE * direction)
