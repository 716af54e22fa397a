"""SutureThrow: pick the needle, drive it through the marks, regrasp its tip, pull the thread through."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.needle import lying_pose
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.needle_insert import UNFINISHED, NeedleInsert
from surgisim.envs.tasks.needle_pick import jaws_down_pose
from surgisim.envs.thread import Thread

PULL_LENGTH = 0.03  # metres of thread to draw through the exit hole


class SutureThrow(NeedleInsert):
    """One suture throw: pick the needle, drive it in at the entry and out at the exit mark,
    regrasp it where it comes out, pull it through and draw 3 cm of thread after it.

    ## Description
    The needle (1/2 circle, radius 12 mm) lies flat on the tissue 2.5-3.5 cm from the middle of
    the entry (green) and exit (blue) marks, towards the PSM, with 8.4 cm of thread (24 links)
    tied to its tail. The PSM starts 3-5 cm above the tissue, jaws down and closed. Grasps are
    earned (``surgisim.envs.grasp``) and the tissue resists and records damage as in
    NeedleInsert (``surgisim.envs.tissue``); the thread follows the needle through the holes
    (``surgisim.envs.thread``). Turning the needle from lying flat to a vertical bite needs the
    wrist's full rotation, so cartesian actions here carry a rotation vector.

    ## Action space
    Cartesian (7): tip translation (3, up to 5 mm), rotation vector in the action frame (3, up
    to 0.1 rad), jaw. Joint (7) as for every PSM task. Workspace: x, y in [-6, 6] cm, z in
    [-1, 7] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 + 14 | PSM state; as NeedleInsert, then the thread drawn through the exit (m) |
    | achieved_goal | 7 | entry hole (3), exit hole (3), thread drawn through the exit (m) |
    | desired_goal | 7 | entry mark (3), exit mark (3), 0.03 |

    ## Rewards
    The goal distance is the larger hole-to-mark distance plus the thread still to draw (m),
    plus 0.1 m until the exit is made. Sparse: -1 per step until that is under 3 mm, then 0.
    Dense: minus it. Both subtract 0.1 per mm of tissue damage in the step.

    ## Info
    As NeedleInsert, plus ``thread_through_mm``. Over 10 mm of damage fails the episode.

    ## Episode end
    Terminates on success; truncated after 400 steps.

    ## Version history
    v0: first release.
    """

    max_episode_steps = 400
    damage_limit_mm = 10.0
    wrist = "full"

    def build(self, scene: Scene) -> None:
        super().build(scene)
        self.thread = Thread(scene.sim, scene.camera)

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        middle = np.array([*rng.uniform(-0.01, 0.01, 2), 0.0])
        self.sample_marks(scene, rng, middle)
        towards_psm = np.array([-0.8, 0.6, 0.0]) + np.array([*rng.uniform(-0.3, 0.3, 2), 0.0])
        towards_psm /= np.linalg.norm(towards_psm)
        centre = middle + rng.uniform(0.025, 0.035) * towards_psm
        self.reset_needle(scene, lying_pose(centre[:2], rng.uniform(0, 2 * np.pi)), held=False)
        start = rng.uniform([-0.04, 0.0, 0.03], [-0.01, 0.03, 0.05])
        scene.psm.set_joints(scene.psm.ik(jaws_down_pose(start, rng.uniform(0, 2 * np.pi))))
        self.previous_jaws = [scene.psm.jaw]
        tail = self.needle.points(np.array([0.0]))[0]
        self.thread.lay_out(tail, tail - self.needle.pose()[:3, 3])

    def step_world(self, scene: Scene) -> None:
        tail_before = self.needle.points(np.array([0.0]))[0]
        super().step_world(scene)
        tail = self.needle.points(np.array([0.0]))[0]
        for hole, crossing_down in ((self.tissue.entry, True), (self.tissue.exit, False)):
            crossed = tail_before[2] >= 0.0 > tail[2] if crossing_down else tail_before[2] < 0.0 <= tail[2]
            if hole is not None and crossed and np.linalg.norm(tail[:2] - hole[:2]) < 0.004:
                self.thread.pass_through(hole, tail)
        self.thread.step(tail)

    def drawn_through(self) -> float:
        """Thread (m) drawn through the exit hole."""
        return self.thread.through if len(self.thread.holes) == 2 else 0.0

    def observation(self, scene: Scene) -> np.ndarray:
        return np.concatenate([super().observation(scene), [self.drawn_through()]])

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        return np.concatenate([super().achieved_goal(scene)[:6], [self.drawn_through()]])

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return np.concatenate([self.marks.reshape(6), [PULL_LENGTH]])

    def distance(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        achieved, desired = np.asarray(achieved_goal), np.asarray(desired_goal)
        entry = np.linalg.norm(achieved[..., 0:3] - desired[..., 0:3], axis=-1)
        exit_ = np.linalg.norm(achieved[..., 3:6] - desired[..., 3:6], axis=-1)
        to_draw = np.maximum(desired[..., 6] - achieved[..., 6], 0.0)
        return np.maximum(entry, exit_) + to_draw + UNFINISHED * (achieved[..., 6] <= 0.0)

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        return {**super().extra_info(scene), "thread_through_mm": self.drawn_through() * 1000.0}

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "thread": self.thread.get_state()}

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self.thread.set_state(state["thread"])
