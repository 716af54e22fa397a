"""Scripted experts, one per task: proof that each task is solvable, and a source of demonstrations.

An expert is called with the observation dict and returns an action for the env it was made
for, in that env's control mode. Experts may read privileged simulator state (e.g. the RCM).
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

from surgisim.envs.core import SurgicalEnv
from surgisim.envs.kinematics import JAW_LIMITS
from surgisim.envs.needle import NEEDLE_ARC, NEEDLE_WIRE_RADIUS
from surgisim.envs.tasks.endoscope_track import VIEW_DISTANCE
from surgisim.envs.tasks.navigate_anatomy import SAFE_RADIUS
from surgisim.envs.tasks.needle_insert import START_BEFORE_ENTRY, entry_angle, needle_pose_for_bite
from surgisim.envs.tasks.needle_task import GRASP_ANGLE
from surgisim.envs.tissue import rot_about_z

OPEN_JAW = np.deg2rad(60.0)


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


def grasp_from_above(env: SurgicalEnv, arm: int, angle: float, hover: float = 0.015) -> np.ndarray:
    """Action for PSM number ``arm`` (jaws pointing down) to take the needle at arc ``angle``: open
    and hover above that point with the jaws across the wire, descend until the wire sits near
    the jaw tips, then close."""
    needle = env.task.needle
    tip_pose = env.arms[arm].tip_pose()
    grasp_point = needle.points(np.array([angle]))[0]
    tangent = needle.pose()[:3, :3] @ np.array([-np.sin(angle), np.cos(angle), 0.0])
    x_axis = tip_pose[:3, 0]
    if np.dot(x_axis, tangent) < 0:
        tangent = -tangent  # either direction across the wire will do; take the nearer
    roll = float(np.arctan2(np.dot(np.cross(x_axis, tangent), tip_pose[:3, 2]), np.dot(x_axis, tangent)))
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
        tip_in_needle = np.linalg.inv(task.grasp.offset)
        # Rolling the jaws by r turns the needle about its own axis by r * (z_tip . z_needle).
        roll_sign = float(np.sign(np.dot((needle @ tip_in_needle)[:3, 2], needle[:3, 2])))
        if not self.driving:
            ideal = needle_pose_for_bite(*task.marks, entry_angle(*task.marks) - START_BEFORE_ENTRY)
            turn = float(np.arctan2(np.dot(np.cross(needle[:3, 0], ideal[:3, 0]), needle[:3, 2]),
                                    np.dot(needle[:3, 0], ideal[:3, 0])))  # fmt: skip
            if np.linalg.norm(ideal[:3, 3] - needle[:3, 3]) > 3e-4 or abs(turn) > np.deg2rad(1.0):
                target = (ideal @ tip_in_needle)[:3, 3]
                return self.env.action_toward(target, jaw=JAW_LIMITS[0], roll=roll_sign * turn)
            self.driving = True
        driven = needle @ rot_about_z(self.drive_step) @ tip_in_needle
        return self.env.action_toward(driven[:3, 3], jaw=JAW_LIMITS[0], roll=roll_sign * self.drive_step)


EXPERTS: dict[str, type[Expert]] = {
    cls.task: cls
    for cls in (
        NeedleReachExpert,
        NavigateAnatomyExpert,
        EndoscopeTrackExpert,
        NeedlePickExpert,
        NeedleInsertExpert,
        NeedleHandoverExpert,
    )
}


def make_expert(env: gym.Env) -> Expert:
    """The scripted expert for ``env``'s task."""
    task = type(env.unwrapped.task).__name__
    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task!r}; experts exist for {', '.join(EXPERTS)}")
    return EXPERTS[task](env)
