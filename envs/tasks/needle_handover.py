"""NeedleHandover: pass the needle from PSM1 to PSM2, then bring it to a goal position."""

from __future__ import annotations

import numpy as np

from surgisim.envs.kinematics import JAW_LIMITS, rot_z
from surgisim.envs.needle import NEEDLE_ARC
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Expert
from surgisim.envs.tasks.inputs import Goal, Needle
from surgisim.envs.tasks.markers import GoalMarker, MarkedGoal
from surgisim.envs.tasks.needle_task import OPEN_JAW, NeedleTask, grasp_from_above, jaws_down_pose
from surgisim.envs.transforms import make_pose

WRONG_HOLDER = 0.1  # metres added to the goal distance for each hold that is not as asked


class NeedleHandover(MarkedGoal, NeedleTask):
    """Pass the needle from PSM1 to PSM2, then bring it to a goal position.

    ## Description
    Two PSMs: PSM1 (right) holds the 1/2-circle needle (radius 12 mm) a third of the way from
    its tail, jaws pointing down, 2.5-3.5 cm above the tissue with the needle's plane
    horizontal; its tip end points towards PSM2 (left, heading within 30 degrees). PSM2 starts
    3-5 cm above the tissue on its side, jaws down and closed, at a seeded heading. Grasps are
    earned (``surgisim.envs.grasp``); while both hold the needle it follows PSM1. The goal: PSM2
    alone holds the needle, with the needle's midpoint within 5 mm of a goal 3-5 cm above the
    tissue on PSM2's side.

    ## Action space
    Both PSMs, PSM1's action then PSM2's (see ``SurgicalEnv``): 10-D cartesian or 14-D joint.
    Workspace for both tips: x, y in [-5, 5] cm, z in [0, 7] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 + 10 + 11 | PSM1 state, PSM2 state, arc centre, needle rotation (6-D), held by PSM1, by PSM2 |
    | achieved_goal | 5 | needle midpoint (3), held by PSM1, held by PSM2 |
    | desired_goal | 5 | goal position (3), 0, 1 |

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``), both PSMs' reported
    tips and jaws (``state``, 20) and the goal (``goal``, 3); the needle only in the image.

    ## Rewards
    The goal distance is the midpoint-to-goal distance plus 0.1 m for each hold that differs
    from the goal's. Sparse: -1 per step until that is under 5 mm, then 0. Dense: minus it.

    ## Episode end
    Terminates on success; truncated after 100 steps.

    ## Version history
    v0: first release. Since 2026-11-29 PSM2 has its own segmentation label (8) and the scene
    is textured, with visible damage marks; the state observation is unchanged.
    """

    max_episode_steps = 100
    robot_inputs = (Goal, Needle)
    arms = ("psm1", "psm2")
    workspace = ((-0.05, -0.05, 0.0), (0.05, 0.05, 0.07))
    goal_box = (np.array([0.01, -0.02, 0.03]), np.array([0.03, 0.02, 0.05]))

    def build(self, scene: Scene) -> None:
        scene.add_second_psm()
        super().build(scene)
        self.target = GoalMarker(scene)

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        heading = rng.uniform(-np.pi / 6, np.pi / 6) - 0.8 * np.pi  # points at 0.75 pi of the arc face +x
        centre = np.array([*rng.uniform([-0.015, -0.01], [0.0, 0.01]), rng.uniform(0.025, 0.035)])
        needle = make_pose(rot_z(heading), centre)
        self.reset_needle(scene, needle, held=True)
        psm2 = scene.arms["psm2"]
        start = rng.uniform([0.02, -0.02, 0.04], [0.04, 0.02, 0.05])
        psm2.set_joints(psm2.ik(jaws_down_pose(start, rng.uniform(0, 2 * np.pi))))
        self.previous_jaws = [grasp.psm.jaw for grasp in self.grasps]
        self.target.place(rng.uniform(*self.goal_box))

    def observation(self, scene: Scene) -> np.ndarray:
        return self.needle_observation()

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        return np.concatenate([self.needle.midpoint(), [float(grasp.held) for grasp in self.grasps]])

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return np.concatenate([self.target.position, [0.0, 1.0]])

    def distance(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        achieved, desired = np.asarray(achieved_goal), np.asarray(desired_goal)
        position = np.linalg.norm(achieved[..., :3] - desired[..., :3], axis=-1)
        return position + WRONG_HOLDER * np.abs(achieved[..., 3:] - desired[..., 3:]).sum(axis=-1)


class NeedleHandoverExpert(Expert):
    """PSM1 holds still while PSM2 takes the needle near its tip end; PSM1 then lets go and
    backs off while PSM2 carries the needle's midpoint to the goal."""

    receive_angle = 0.75 * NEEDLE_ARC

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        env = self.env
        psm1, psm2 = env.arms
        held1, held2 = (grasp.held for grasp in env.task.grasps)
        if not held2:
            first = env.action_toward(psm1.tip_pose()[:3, 3], jaw=JAW_LIMITS[0], arm=0)
            return np.concatenate([first, grasp_from_above(env, 1, self.receive_angle)])
        second_stays = env.action_toward(psm2.tip_pose()[:3, 3], jaw=JAW_LIMITS[0], arm=1)
        if held1:
            return np.concatenate([env.action_toward(psm1.tip_pose()[:3, 3], jaw=OPEN_JAW, arm=0), second_stays])
        back_off = env.action_toward(psm1.tip_pose()[:3, 3] + np.array([-0.005, 0.0, 0.005]), jaw=OPEN_JAW, arm=0)
        carry = psm2.tip_pose()[:3, 3] + observation["desired_goal"][:3] - observation["achieved_goal"][:3]
        return np.concatenate([back_off, env.action_toward(carry, jaw=JAW_LIMITS[0], arm=1)])
