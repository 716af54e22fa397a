"""NeedlePick: grasp the curved needle lying on the tissue and lift it to a goal position."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.grasp import Grasp
from surgisim.envs.needle import NEEDLE_ARC, Needle, lying_pose
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Task, info_values
from surgisim.envs.tasks.needle_reach import TARGET_RADIUS, TARGET_RGBA, add_target_marker
from surgisim.envs.transforms import make_pose

PHYSICS_SUBSTEPS = 24  # one env step is 0.1 s of PyBullet time at 240 Hz
REST_SPEED = 1e-3  # m/s (and rad/s): below this a dropped needle has come to rest


class NeedlePick(Task):
    """Grasp the curved needle lying on the tissue and lift it to a goal position.

    ## Description
    A 1/2-circle needle (radius 12 mm, 1 mm wire, 37.7 mm long) lies flat on the tissue at a
    seeded position and heading. The PSM starts 3-5 cm above the tissue with its jaws pointing
    down, closed, at a seeded heading. The grasp must be earned (``surgisim.envs.grasp``): the
    needle attaches only if the jaws close with its wire between them, and is then held rigidly
    where it was taken until the jaws open. A free needle is a PyBullet rigid body (it falls and
    rests on the tissue). The goal (green sphere) is where the needle's midpoint should go,
    3-5 cm above the tissue.

    ## Action space
    PSM actions (see ``SurgicalEnv``); the roll turns the jaws about their own axis. The tip is
    kept inside x, y in [-5, 5] cm, z in [0, 7] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 + 10 | PSM state, then needle midpoint (3), needle rotation (6-D), held (1) |
    | achieved_goal | 3 | needle midpoint (m) |
    | desired_goal | 3 | goal position (m) |

    ## Rewards
    Sparse: -1 per step until the needle midpoint is within 5 mm of the goal, then 0. Dense,
    staged: minus the needle-goal distance (m), and while the needle is not held also minus
    0.05 and minus the tip-to-needle distance (``info["reach_m"]``), so that reaching, grasping
    and lifting each pay.

    ## Info
    Also ``held`` (the needle is in the jaws) and ``reach_m`` (tip to nearest wire point).

    ## Episode end
    Terminates on success; truncated after 80 steps.

    ## Version history
    v0: first release.
    """

    max_episode_steps = 80
    workspace = ((-0.05, -0.05, 0.0), (0.05, 0.05, 0.07))
    goal_box = (np.array([-0.03, -0.03, 0.03]), np.array([0.03, 0.03, 0.05]))

    def build(self, scene: Scene) -> None:
        add_target_marker(scene, "target", (TARGET_RADIUS,) * 3, TARGET_RGBA)
        self.needle = Needle(scene.sim, scene.camera)
        self.grasp = Grasp(scene.psm, self.needle)
        self.goal = np.zeros(3)
        self.previous_jaw = 0.0
        self.falling = False  # physics runs only while a released needle has not come to rest

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        self.grasp.reset()
        self.falling = False
        self.needle.set_pose(lying_pose(rng.uniform(-0.02, 0.02, 2), rng.uniform(0, 2 * np.pi)))
        start = rng.uniform([-0.03, -0.03, 0.03], [0.03, 0.03, 0.05])
        scene.psm.set_joints(scene.psm.ik(jaws_down_pose(start, rng.uniform(0, 2 * np.pi))))
        self.previous_jaw = scene.psm.jaw
        self._place_goal(scene, rng.uniform(*self.goal_box))

    def _place_goal(self, scene: Scene, goal: np.ndarray) -> None:
        self.goal = np.asarray(goal, dtype=np.float64)
        scene.sim.set_base_pose("target", self.goal, np.array([0.0, 0.0, 0.0, 1.0]))

    def step_world(self, scene: Scene) -> None:
        was_held = self.grasp.held
        self.grasp.update(self.previous_jaw)
        self.previous_jaw = scene.psm.jaw
        self.falling = not self.grasp.held and (self.falling or was_held)
        if self.falling:
            scene.step_physics(PHYSICS_SUBSTEPS)
            self.falling = bool(np.abs(self.needle.velocity()).max() > REST_SPEED)

    def observation(self, scene: Scene) -> np.ndarray:
        pose = self.needle.pose()
        return np.concatenate([self.needle.midpoint(), pose[:3, :2].T.reshape(6), [float(self.grasp.held)]])

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        return self.needle.midpoint()

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return self.goal.copy()

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        wire = self.needle.points(np.linspace(0.0, NEEDLE_ARC, 24))
        reach = float(np.min(np.linalg.norm(wire - scene.psm.tip_pose()[:3, 3], axis=1)))
        return {"held": self.grasp.held, "reach_m": reach}

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any, reward_type: str
    ) -> np.ndarray:
        reward = super().compute_reward(achieved_goal, desired_goal, info, reward_type)
        if reward_type == "dense":
            shape = np.shape(reward)
            not_held = 1.0 - info_values(info, "held", shape)
            reward = reward - not_held * (0.05 + info_values(info, "reach_m", shape))
        return reward

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "goal": self.goal.copy(),
            "needle_pose": self.needle.pose(),
            "needle_velocity": self.needle.velocity(),
            "falling": self.falling,
            "held": self.grasp.held,
            "grasp_offset": self.grasp.offset.copy(),
            "previous_jaw": self.previous_jaw,
        }

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self._place_goal(scene, state["goal"])
        self.needle.set_pose(np.array(state["needle_pose"]), np.array(state["needle_velocity"]))
        self.falling = bool(state["falling"])
        self.grasp.held, self.grasp.offset = bool(state["held"]), np.array(state["grasp_offset"])
        self.previous_jaw = float(state["previous_jaw"])


def jaws_down_pose(tip: np.ndarray, heading: float) -> np.ndarray:
    """Tool-tip pose at ``tip`` with the jaws pointing straight down, their x axis at ``heading``."""
    c, s = np.cos(heading), np.sin(heading)
    rotation = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
    return make_pose(rotation, tip)
