"""Scripted experts, one per task: proof that each task is solvable, and a source of demonstrations.

An expert is called with the observation dict and returns an action for the env it was made
for, in that env's control mode. Experts may read privileged simulator state (e.g. the RCM).
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

from surgisim.envs.controllers import MAX_ROLL
from surgisim.envs.core import SurgicalEnv
from surgisim.envs.kinematics import JAW_LIMITS, PSM_DH, forward_kinematics, rot_z
from surgisim.envs.needle import NEEDLE_ARC, NEEDLE_WIRE_RADIUS
from surgisim.envs.tasks.endoscope_track import VIEW_DISTANCE
from surgisim.envs.tasks.navigate_anatomy import SAFE_RADIUS
from surgisim.envs.tasks.needle_insert import START_BEFORE_ENTRY, entry_angle, needle_pose_for_bite
from surgisim.envs.tasks.needle_task import GRASP_ANGLE, jaws_across_wire
from surgisim.envs.tissue import rot_about_z
from surgisim.envs.transforms import rotation_vector

OPEN_JAW = np.deg2rad(60.0)
ROLL_MARGIN = 0.25  # radians the experts keep from the tool-roll joint's limits when planning grasps


class Expert:
    """Base class: ``reset()`` at each episode start, then ``expert(observation) -> action``."""

    task: ClassVar[str]

    def __init__(self, env: gym.Env) -> None:
        self.env: SurgicalEnv = env.unwrapped  # type: ignore[assignment]
        self.reset()

    def reset(self) -> None:
        """Forget anything kept from the previous episode."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class NeedleReachExpert(Expert):
    """Straight line to the target."""

    task = "NeedleReach"

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.env.action_toward(observation["desired_goal"])


class NavigateAnatomyExpert(Expert):
    """Retract towards the RCM, swing above the anatomy, then insert along the RCM-target line.

    The goal is placed so that this line is clear; near the RCM the instrument is above all
    anatomy, so the path never touches it.
    """

    task = "NavigateAnatomy"

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        rcm = self.env.scene.psm.rcm()
        tip, goal = observation["achieved_goal"].astype(np.float64), observation["desired_goal"].astype(np.float64)
        line = (goal - rcm) / np.linalg.norm(goal - rcm)
        offset = tip - rcm
        off_line = np.linalg.norm(offset - np.dot(offset, line) * line)
        if off_line < 0.001:
            return self.env.action_toward(goal)
        radius = np.linalg.norm(offset)
        if radius > SAFE_RADIUS + 0.001:
            return self.env.action_toward(rcm + SAFE_RADIUS * offset / radius)
        return self.env.action_toward(rcm + min(radius, SAFE_RADIUS) * line)


class EndoscopeTrackExpert(Expert):
    """Put the camera on the line from the RCM through where the lesion will be next step."""

    task = "EndoscopeTrack"

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        features = observation["observation"][-6:].astype(np.float64)
        lesion_next = features[:3] + features[3:]
        rcm = self.env.scene.ecm.rcm()
        direction = (lesion_next - rcm) / np.linalg.norm(lesion_next - rcm)
        return self.env.action_toward(lesion_next - VIEW_DISTANCE * direction)


def grasp_from_above(
    env: SurgicalEnv, arm: int, angle: float, hover: float = 0.015, way: float | None = None
) -> np.ndarray:
    """Action for PSM number ``arm`` (jaws pointing down) to take the needle at arc ``angle``: open
    and hover above that point with the jaws across the wire, descend until the wire sits near
    the jaw tips, then close. The jaws' x axis goes along the wire's tangent (``way`` = 1) or
    against it (-1); by default whichever is nearer."""
    needle = env.task.needle
    tip_pose = env.arms[arm].tip_pose()
    grasp_point = needle.points(np.array([angle]))[0]
    tangent = needle.pose()[:3, :3] @ np.array([-np.sin(angle), np.cos(angle), 0.0])
    x_axis = tip_pose[:3, 0]
    if way is None:
        way = 1.0 if np.dot(x_axis, tangent) >= 0 else -1.0
    tangent = way * tangent
    roll = float(np.arctan2(np.dot(np.cross(x_axis, tangent), tip_pose[:3, 2]), np.dot(x_axis, tangent)))
    psm = env.arms[arm]
    rolled = tip_pose.copy()
    rolled[:3, :3] = tip_pose[:3, :3] @ rot_z(roll)
    if not psm.lower[3] + ROLL_MARGIN < psm.ik(rolled)[3] < psm.upper[3] - ROLL_MARGIN:
        roll -= np.sign(roll) * 2 * np.pi  # the short way would run into the tool-roll limit
    # The tool tip sits 0.5 mm below the wire's centre: the wire lies 9.7 mm along the 10.5 mm jaws.
    grasp_tip = grasp_point - np.array([0.0, 0.0, NEEDLE_WIRE_RADIUS])
    offset = tip_pose[:3, 3] - grasp_tip
    aligned = np.linalg.norm(offset[:2]) < 0.001 and abs(roll) < np.deg2rad(3)
    if aligned and offset[2] < 0.0003:
        return env.action_toward(grasp_tip, jaw=JAW_LIMITS[0], arm=arm)
    target = grasp_tip if aligned else grasp_tip + np.array([0.0, 0.0, hover])
    return env.action_toward(target, jaw=OPEN_JAW, roll=roll, arm=arm)


class NeedlePickExpert(Expert):
    """Take the needle a third of the way from its tail (``grasp_from_above``), then carry its
    midpoint to the goal."""

    task = "NeedlePick"

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.env.task.grasp.held:
            carry = self.env.arms[0].tip_pose()[:3, 3] + observation["desired_goal"] - observation["achieved_goal"]
            return self.env.action_toward(carry, jaw=JAW_LIMITS[0])
        return grasp_from_above(self.env, 0, GRASP_ANGLE)


class NeedleHandoverExpert(Expert):
    """PSM1 holds still while PSM2 takes the needle near its tip end; PSM1 then lets go and
    backs off while PSM2 carries the needle's midpoint to the goal."""

    task = "NeedleHandover"
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


def drive_along_arc(env: SurgicalEnv, angle: float) -> np.ndarray:
    """Action that turns the needle held by PSM1 by ``angle`` about its own axis, so that it moves
    along its arc (through the tissue without damage)."""
    needle = env.task.needle.pose()
    driven = needle @ rot_about_z(angle) @ np.linalg.inv(env.task.grasp.offset)
    return env.action_toward(driven[:3, 3], jaw=JAW_LIMITS[0], rotation=angle * needle[:3, 2])


class NeedleInsertExpert(Expert):
    """Bring the needle to the ideal bite pose (plane through both marks, tip just short of the
    entry), then drive it along its own arc until the tip comes out."""

    task = "NeedleInsert"
    drive_step = 0.08  # radians of arc per step

    def reset(self) -> None:
        self.driving = False

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        task = self.env.task
        needle = task.needle.pose()
        if not self.driving:
            ideal = needle_pose_for_bite(*task.marks, entry_angle(*task.marks) - START_BEFORE_ENTRY)
            cross = np.dot(np.cross(needle[:3, 0], ideal[:3, 0]), needle[:3, 2])
            turn = float(np.arctan2(cross, np.dot(needle[:3, 0], ideal[:3, 0])))  # about the needle's axis
            if np.linalg.norm(ideal[:3, 3] - needle[:3, 3]) > 3e-4 or abs(turn) > np.deg2rad(1.0):
                target = (ideal @ np.linalg.inv(task.grasp.offset))[:3, 3]
                return self.env.action_toward(target, jaw=JAW_LIMITS[0], rotation=turn * needle[:3, 2])
            self.driving = True
        return drive_along_arc(self.env, self.drive_step)


class SutureThrowExpert(Expert):
    """Pick the needle, turn it upright over the bite, drive it through, let go, regrasp it by
    the tip where it came out, drive it on until it is free, then draw the thread. Each phase
    returns an action, or None when it is done and the next phase takes over."""

    task = "SutureThrow"
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
            shaft = psm.base[:3, :3] @ forward_kinematics(PSM_DH[:3], psm.q[:3])[-1][:3, 2]  # the roll joint's axis
            turn = np.sign(roll_joint - psm.q[3]) * MAX_ROLL * shaft
        else:
            turn = rotation_vector(target[:3, :3] @ tip[:3, :3].T)
        return self.env.action_toward(target[:3, 3], jaw=jaw, rotation=turn)


def _reached(pose: np.ndarray, target: np.ndarray, degrees: float = 1.0, metres: float = 3e-4) -> bool:
    angle = np.linalg.norm(rotation_vector(target[:3, :3] @ pose[:3, :3].T))
    return bool(np.linalg.norm(pose[:3, 3] - target[:3, 3]) < metres and angle < np.deg2rad(degrees))


EXPERTS: dict[str, type[Expert]] = {
    cls.task: cls
    for cls in (
        NeedleReachExpert,
        NavigateAnatomyExpert,
        EndoscopeTrackExpert,
        NeedlePickExpert,
        NeedleInsertExpert,
        NeedleHandoverExpert,
        SutureThrowExpert,
    )
}


def make_expert(env: gym.Env) -> Expert:
    """The scripted expert for ``env``'s task."""
    task = type(env.unwrapped.task).__name__
    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task!r}; experts exist for {', '.join(EXPERTS)}")
    return EXPERTS[task](env)
