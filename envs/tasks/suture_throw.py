"""SutureThrow: pick the needle, drive it through the marks, regrasp its tip, pull the thread through."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.controllers import MAX_ROLL
from surgisim.envs.kinematics import JAW_LIMITS, PSM_ARM_DH, forward_kinematics
from surgisim.envs.needle import NEEDLE_ARC, lying_pose
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Expert
from surgisim.envs.tasks.needle_insert import (
    START_BEFORE_ENTRY,
    UNFINISHED,
    NeedleInsert,
    entry_angle,
    needle_pose_for_bite,
)
from surgisim.envs.tasks.needle_task import (
    GRASP_ANGLE,
    OPEN_JAW,
    ROLL_MARGIN,
    drive_along_arc,
    grasp_from_above,
    jaws_across_wire,
    jaws_down_pose,
)
from surgisim.envs.thread import Thread
from surgisim.envs.tissue import rot_about_z
from surgisim.envs.transforms import rotation_vector

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

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``) and both PSMs'
    reported tips and jaws (``state``, 20); needle, marks and thread only in the image.

    ## Rewards
    The goal distance is the larger hole-to-mark distance plus the thread still to draw (m),
    plus 0.1 m while no thread is drawn through (against a goal that asks for thread: a goal that
    HER relabels from a stage before the exit asks for none). Sparse: -1 per step until that is
    under 3 mm, then 0.
    Dense: minus it. Both subtract 0.1 per mm of tissue damage in the step.

    ## Info
    As NeedleInsert, plus ``thread_through_mm``. Over 10 mm of damage fails the episode.

    ## Episode end
    Terminates on success; truncated after 400 steps.

    ## Version history
    v0: first release. Since 2026-11-29 the scene is textured, the marks are 6 mm across (were 3)
    and damage is visible; the state observation is unchanged.
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
        # Unfinished only against a goal that asks for thread: a goal relabelled by HER from what was
        # achieved before the exit (no thread) is then reached where it was achieved.
        unfinished = (achieved[..., 6] <= 0.0) & (desired[..., 6] > 0.0)
        return np.maximum(entry, exit_) + to_draw + UNFINISHED * unfinished

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        return {**super().extra_info(scene), "thread_through_mm": self.drawn_through() * 1000.0}

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "thread": self.thread.get_state()}

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self.thread.set_state(state["thread"])


class SutureThrowExpert(Expert):
    """Pick the needle, turn it upright over the bite, drive it through, let go, regrasp it by
    the tip where it came out, drive it on until it is free, then draw the thread. Each phase
    returns an action, or None when it is done and the next phase takes over."""

    phases = ("pick", "carry", "descend", "drive", "release", "regrasp", "pull", "draw")
    drive_step = 0.08  # radians of arc per step
    regrasp_angle = 0.9 * NEEDLE_ARC
    hover = 0.015

    def reset(self) -> None:
        self.phase = "pick"
        self.plan: tuple[float, float] | None = None  # way across the wire and tool roll, per grasp

    def _plan_grasp(self, needle_pose: np.ndarray, angle: float) -> tuple[float, float]:
        """The way across the wire (1 or -1, see ``jaws_across_wire``) and the tool-roll joint
        value for holding ``needle_pose`` at ``angle`` that leave the roll joint the most room
        for driving the needle on along its arc."""
        psm = self.env.arms[0]
        best = (-np.inf, 1.0, 0.0)
        for way in (1.0, -1.0):
            grasp = jaws_across_wire(angle)
            grasp[:3, :2] *= way
            now = psm.ik(needle_pose @ grasp)
            later = psm.ik(needle_pose @ rot_about_z(0.2) @ grasp, q_ref=now)
            for roll in now[3] + 2 * np.pi * np.arange(-1, 2):
                if psm.lower[3] + ROLL_MARGIN <= roll <= psm.upper[3] - ROLL_MARGIN:
                    room = psm.upper[3] - roll if later[3] > now[3] else roll - psm.lower[3]
                    best = max(best, (room, way, roll))
        return best[1], best[2]

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        while True:
            action = getattr(self, f"_{self.phase}")()
            if action is not None:
                return action
            self.phase = self.phases[self.phases.index(self.phase) + 1]

    @property
    def _needle_and_tip(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Needle pose, tool-tip pose, and the tip in the needle frame as last grasped."""
        task = self.env.task
        return task.needle.pose(), self.env.arms[0].tip_pose(), np.linalg.inv(task.grasp.offset)

    def _pick(self) -> np.ndarray | None:
        task = self.env.task
        if task.grasp.held:
            return None
        if self.plan is None:
            # Grasp so that, once turned upright over the bite, the roll joint can drive the needle.
            self.plan = self._plan_grasp(self._upright(), GRASP_ANGLE)
        return grasp_from_above(self.env, 0, GRASP_ANGLE, way=self.plan[0])

    def _upright(self) -> np.ndarray:
        """The needle's pose at the start of the bite."""
        marks = self.env.task.marks
        return needle_pose_for_bite(*marks, entry_angle(*marks) - START_BEFORE_ENTRY)

    def _bite_start(self, raised: float) -> np.ndarray | None:
        _, tip, tip_in_needle = self._needle_and_tip
        start = self._upright() @ tip_in_needle
        start[2, 3] += raised
        return None if _reached(tip, start) else self._toward_pose(start, JAW_LIMITS[0], self.plan[1])

    def _carry(self) -> np.ndarray | None:
        return self._bite_start(self.hover)

    def _descend(self) -> np.ndarray | None:
        return self._bite_start(0.0)

    def _drive(self) -> np.ndarray | None:
        task = self.env.task
        regrasp_point = task.needle.points(np.array([self.regrasp_angle]))[0]
        if task.tissue.exit is not None and regrasp_point[2] >= 0.003:  # the tip end is well out
            return None
        return self._turn_needle()

    def _release(self) -> np.ndarray | None:
        needle, tip, tip_in_needle = self._needle_and_tip
        backed_off = np.linalg.norm(tip[:3, 3] - (needle @ tip_in_needle)[:3, 3]) >= self.hover - 1e-4
        if backed_off and not self.env.task.grasp.held:
            self.plan = None  # the regrasp makes its own
            return None
        return self.env.action_toward(tip[:3, 3] - self.hover * tip[:3, 2], jaw=OPEN_JAW)

    def _regrasp(self) -> np.ndarray | None:
        if self.env.task.grasp.held:
            return None
        needle, tip, _ = self._needle_and_tip
        if self.plan is None:
            self.plan = self._plan_grasp(needle, self.regrasp_angle)
        target = needle @ jaws_across_wire(self.regrasp_angle)
        target[:3, :2] *= self.plan[0]
        if _reached(tip, target):
            return self.env.action_toward(target[:3, 3], jaw=JAW_LIMITS[0])
        hover = target.copy()
        hover[:3, 3] -= self.hover * target[:3, 2]  # behind the wire, along the jaws
        on_axis = np.linalg.norm(np.cross(tip[:3, 3] - target[:3, 3], target[:3, 2])) < 3e-4
        goal = target if on_axis and _reached(tip, hover, 1.0, np.inf) else hover
        return self._toward_pose(goal, OPEN_JAW, self.plan[1])

    def _pull(self) -> np.ndarray | None:
        needle, _, _ = self._needle_and_tip
        return self._turn_needle() if self.env.task.tissue.holds(needle) else None

    def _draw(self) -> np.ndarray:
        marks, tip = self.env.task.marks, self.env.arms[0].tip_pose()
        away = (marks[1] - marks[0]) / np.linalg.norm(marks[1] - marks[0]) + np.array([0.0, 0.0, 1.0])
        return self.env.action_toward(tip[:3, 3] + 0.005 * away / np.linalg.norm(away), jaw=JAW_LIMITS[0])

    def _turn_needle(self) -> np.ndarray:
        return drive_along_arc(self.env, self.drive_step)

    def _toward_pose(self, target: np.ndarray, jaw: float, roll_joint: float) -> np.ndarray:
        """Move and turn towards ``target``, reaching it with the tool-roll joint at ``roll_joint``:
        while that is more than a quarter turn away, roll about the shaft towards it (perhaps the long
        way round, which a shortest rotation would not take)."""
        psm = self.env.arms[0]
        tip = psm.tip_pose()
        if abs(roll_joint - psm.q[3]) > 0.5 * np.pi:
            shaft = psm.base[:3, :3] @ forward_kinematics(PSM_ARM_DH, psm.q[:3])[-1][:3, 2]  # the roll joint's axis
            turn = np.sign(roll_joint - psm.q[3]) * MAX_ROLL * shaft
        else:
            turn = rotation_vector(target[:3, :3] @ tip[:3, :3].T)
        return self.env.action_toward(target[:3, 3], jaw=jaw, rotation=turn)


def _reached(pose: np.ndarray, target: np.ndarray, degrees: float = 1.0, metres: float = 3e-4) -> bool:
    angle = np.linalg.norm(rotation_vector(target[:3, :3] @ pose[:3, :3].T))
    return bool(np.linalg.norm(pose[:3, 3] - target[:3, 3]) < metres and angle < np.deg2rad(degrees))
