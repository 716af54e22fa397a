"""NeedlePick: grasp the curved needle lying on the tissue and lift it to a goal position."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.kinematics import JAW_LIMITS
from surgisim.envs.needle import lying_pose
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Expert, info_values
from surgisim.envs.tasks.inputs import Goal, Needle
from surgisim.envs.tasks.markers import GoalMarker, MarkedGoal
from surgisim.envs.tasks.needle_task import (
    GRASP_ANGLE,
    NeedleTask,
    funnel_grasp,
    grasp_from_above,
    jaws_down_pose,
    nearest_wire_angle,
)


class NeedlePick(MarkedGoal, NeedleTask):
    """Grasp the curved needle lying on the tissue and lift it to a goal position.

    ## Description
    A 1/2-circle needle (radius 12 mm, 1 mm wire, 37.7 mm long) lies flat on the tissue at a
    seeded position and heading. The PSM starts 3-5 cm above the tissue with its jaws pointing
    down, closed, at a seeded heading. The grasp must be earned (``surgisim.envs.grasp``): the
    needle attaches only if the jaws close with its wire between them, and is then held rigidly
    where it was taken until the jaws open. A free needle is a PyBullet rigid body (it falls and
    rests on the tissue); stabbing it into the tissue is resisted (``surgisim.envs.tissue``).
    The goal (green sphere) is where the needle's midpoint should go, 3-5 cm above the tissue.

    ## Action space
    PSM actions (see ``SurgicalEnv``); the roll turns the jaws about their own axis. The tip is
    kept inside x, y in [-5, 5] cm, z in [0, 7] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 + 10 | PSM state, then arc centre (3), needle rotation (6-D), held (1) |
    | achieved_goal | 3 | needle midpoint (m) |
    | desired_goal | 3 | goal position (m) |

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``), the PSM's reported
    tip and jaw (``state``, 10) and the goal (``goal``, 3); the needle only in the image.

    ## Rewards
    Sparse: -1 per step until the needle midpoint is within 5 mm of the goal, then 0. Dense,
    staged: minus the needle-goal distance (m), and while the needle is not held also minus
    0.05 and minus the tip-to-needle distance (``info["reach_m"]``), so that reaching, grasping
    and lifting each pay.

    ## Info
    Also ``held`` (the needle is in the jaws), ``reach_m`` (tip to nearest wire point) and
    ``damage_mm`` (tissue damage so far); ``cost`` is the step's damage in mm.

    ## Episode end
    Terminates on success; truncated after 80 steps.

    ## Version history
    v0: first release. Since 2026-11-29 the scene is textured, with visible damage marks (images only).
    """

    max_episode_steps = 80
    robot_inputs = (Goal, Needle)
    workspace = ((-0.05, -0.05, 0.0), (0.05, 0.05, 0.07))
    goal_box = (np.array([-0.03, -0.03, 0.03]), np.array([0.03, 0.03, 0.05]))

    def build(self, scene: Scene) -> None:
        super().build(scene)
        self.target = GoalMarker(scene)

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        self.reset_needle(scene, lying_pose(rng.uniform(-0.02, 0.02, 2), rng.uniform(0, 2 * np.pi)), held=False)
        start = rng.uniform([-0.03, -0.03, 0.03], [0.03, 0.03, 0.05])
        scene.psm.set_joints(scene.psm.ik(jaws_down_pose(start, rng.uniform(0, 2 * np.pi))))
        self.target.place(rng.uniform(*self.goal_box))

    def observation(self, scene: Scene) -> np.ndarray:
        return self.needle_observation()

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        return self.needle.midpoint()

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return self.target.position.copy()

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any, reward_type: str
    ) -> np.ndarray:
        reward = super().compute_reward(achieved_goal, desired_goal, info, reward_type)
        if reward_type == "dense":
            shape = np.shape(reward)
            not_held = 1.0 - info_values(info, "held", shape)
            reward = reward - not_held * (0.05 + info_values(info, "reach_m", shape))
        return reward


class NeedlePickExpert(Expert):
    """Take the needle a third of the way from its tail (``grasp_from_above``), then carry its
    midpoint to the goal. For a student: take it where it lies nearest below the jaws, as they
    are, with ``funnel_grasp``."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.env.task.grasp.held:
            carry = self.env.arms[0].tip_pose()[:3, 3] + observation["desired_goal"] - observation["achieved_goal"]
            return self.env.action_toward(carry, jaw=JAW_LIMITS[0])
        if self.for_student:
            return funnel_grasp(self.env, 0, nearest_wire_angle(self.env, 0))
        return grasp_from_above(self.env, 0, GRASP_ANGLE)
