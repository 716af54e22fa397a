"""NeedleReach: bring the PSM tool tip to a target point above the tissue."""

from __future__ import annotations

import numpy as np

from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Expert, Task
from surgisim.envs.tasks.markers import GoalMarker, MarkedGoal


class NeedleReach(MarkedGoal, Task):
    """Bring the PSM tool tip to a target point above the tissue (SurRoL's NeedleReach).

    ## Description
    A target (green sphere, 4 mm radius) is drawn uniformly in a 8 x 8 x 4 cm box 1-5 cm above
    the tissue; the tip starts at a random point of the same box with the wrist straight.

    ## Action space
    PSM actions (see ``SurgicalEnv``): 5-D cartesian or 7-D joint. The tip is kept inside the
    workspace box x, y in [-5, 5] cm, z in [0.3, 6] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 | tip position (m), tip rotation (6-D), jaw angle (rad) |
    | achieved_goal | 3 | tip position (m, world) |
    | desired_goal | 3 | target position (m, world) |

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``), the PSM's reported
    tip and jaw (``state``, 10) and the target (``goal``, 3).

    ## Rewards
    Sparse: -1 per step until the tip is within 5 mm of the target, then 0. Dense: minus the
    distance in metres.

    ## Episode end
    Terminates on success; truncated after 50 steps.

    ## Version history
    v0: first release. Since 2026-11-29 the scene is textured (images only).
    """

    max_episode_steps = 50
    goal_tolerance = 0.005
    goal_box = (np.array([-0.04, -0.04, 0.01]), np.array([0.04, 0.04, 0.05]))

    def build(self, scene: Scene) -> None:
        self.target = GoalMarker(scene)

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        start = rng.uniform(*self.goal_box)
        scene.psm.set_joints(scene.psm_home(start))
        self.target.place(rng.uniform(*self.goal_box))

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        return scene.psm.tip_pose()[:3, 3]

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return self.target.position.copy()


class NeedleReachExpert(Expert):
    """Straight line to the target."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.env.action_toward(observation["desired_goal"])
