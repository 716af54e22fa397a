"""NeedleInsert: drive the held needle into the tissue at the entry mark and out at the exit mark."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.kinematics import JAW_LIMITS
from surgisim.envs.needle import NEEDLE_ARC, NEEDLE_RADIUS
from surgisim.envs.scene import PSM_AIM, PSM_RCM, Scene
from surgisim.envs.tasks.base import Expert
from surgisim.envs.tasks.inputs import Layout, Needle
from surgisim.envs.tasks.markers import add_target_marker
from surgisim.envs.tasks.needle_task import NeedleTask, drive_along_arc
from surgisim.envs.tissue import tip_position
from surgisim.envs.transforms import make_pose

MARK_HALF_AXES = (0.003, 0.003, 0.0003)  # 6 mm across: 3 pixels of an 84² image at the home view
ENTRY_RGBA, EXIT_RGBA = (0.1, 0.8, 0.2, 1.0), (0.1, 0.4, 0.95, 1.0)
START_BEFORE_ENTRY = 0.15  # rad of arc between the tip and the entry mark at the ideal start
UNFINISHED = 0.1  # metres added to the goal distance until the tip has come out


def needle_pose_for_bite(entry: np.ndarray, exit_: np.ndarray, tip_angle: float) -> np.ndarray:
    """Needle pose whose arc passes through both marks (its plane vertical), with the tip at
    ``tip_angle`` on the circle, measured in that plane from the entry-to-exit direction
    towards up. The tip meets the entry mark at the angle returned by ``entry_angle``."""
    along = (exit_ - entry) / np.linalg.norm(exit_ - entry)
    up = np.array([0.0, 0.0, 1.0])
    half = np.linalg.norm(exit_ - entry) / 2
    centre = (entry + exit_) / 2 + np.sqrt(NEEDLE_RADIUS**2 - half**2) * up
    tail_angle = tip_angle - NEEDLE_ARC
    x_axis = np.cos(tail_angle) * along + np.sin(tail_angle) * up
    z_axis = np.cross(along, up)
    return make_pose(np.column_stack([x_axis, np.cross(z_axis, x_axis), z_axis]), centre)


def entry_angle(entry: np.ndarray, exit_: np.ndarray) -> float:
    half = np.linalg.norm(exit_ - entry) / 2
    return float(np.arctan2(-np.sqrt(NEEDLE_RADIUS**2 - half**2), -half))


class NeedleInsert(NeedleTask):
    """Drive the held needle in at the entry mark and out at the exit mark, without tearing tissue.

    ## Description
    The PSM holds the 1/2-circle needle (radius 12 mm) a third of the way from its tail, jaws
    along the needle's axis. An entry mark (green) and an exit mark (blue) lie 14-18 mm apart
    on the tissue at a seeded place and heading (within 20 degrees of square to the instrument).
    The needle starts with its plane through both marks, its tip 0-0.3 rad of arc short of the
    entry point, raised by up to 4 mm and shifted by up to 3 mm. Driving the needle along its own
    arc (rolling the jaws about their axis while the tip circles the arc centre) takes it in at
    the entry mark and out at the exit mark, a bite about 3 mm deep. Once the tip is in, the
    tissue resists other motion and is damaged by it (``surgisim.envs.tissue``).

    ## Action space
    PSM actions (see ``SurgicalEnv``). Workspace: x, y in [-6, 6] cm, z in [-1, 7] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 + 13 | PSM state; arc centre, needle rotation (6-D), held, entered, exited, damage (mm) |
    | achieved_goal | 7 | entry hole (3), exit hole (3), exited (1); the tip stands in for a hole not yet made |
    | desired_goal | 7 | entry mark (3), exit mark (3), 1 |

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``) and the PSM's
    reported tip and jaw (``state``, 10); the needle and the marks only in the image.

    ## Rewards
    The goal distance is the larger of the two hole-to-mark distances, plus 0.1 m until the tip
    has come out. Sparse: -1 per step until that is under 3 mm, then 0. Dense: minus that
    distance (m). Both subtract 0.1 per mm of tissue damage in the step (``info["cost"]``).

    ## Info
    Also ``entry_error_mm`` and ``exit_error_mm`` (hole or tip to mark), ``damage_mm`` (total
    hole drag so far; over 5 mm fails the episode), ``held`` and ``reach_m``.

    ## Episode end
    Terminates on success; truncated after 60 steps.

    ## Version history
    v0: first release. Since 2026-11-29 the scene is textured, the marks are 6 mm across (were 3)
    and punctures and drags leave visible damage marks; the state observation is unchanged.
    """

    max_episode_steps = 60
    robot_inputs = (Layout, Needle)
    layout_keys = ("marks",)
    goal_tolerance = 0.003
    cost_weight = 0.1
    damage_limit_mm = 5.0
    workspace = ((-0.06, -0.06, -0.01), (0.06, 0.06, 0.07))

    def build(self, scene: Scene) -> None:
        super().build(scene)
        add_target_marker(scene, "entry_mark", MARK_HALF_AXES, ENTRY_RGBA)
        add_target_marker(scene, "exit_mark", MARK_HALF_AXES, EXIT_RGBA)
        self.marks = np.zeros((2, 3))

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        self.sample_marks(scene, rng, middle=np.array([*rng.uniform(-0.015, 0.015, 2), 0.0]))
        tip_angle = entry_angle(*self.marks) - START_BEFORE_ENTRY - rng.uniform(0.0, 0.3)
        pose = needle_pose_for_bite(*self.marks, tip_angle)
        pose[:3, 3] += np.array([*rng.uniform(-0.003, 0.003, 2), rng.uniform(0.0, 0.004)])
        self.reset_needle(scene, pose, held=True)

    def sample_marks(self, scene: Scene, rng: np.random.Generator, middle: np.ndarray) -> None:
        """Entry and exit marks 14-18 mm apart around ``middle``, square to the PSM's shaft (+-20 deg)."""
        shaft = (PSM_AIM - PSM_RCM)[:2]
        heading = np.arctan2(-shaft[0], shaft[1]) + rng.uniform(-0.35, 0.35)
        along = np.array([np.cos(heading), np.sin(heading), 0.0])
        half = rng.uniform(0.007, 0.009)
        self._place_marks(scene, np.stack([middle - half * along, middle + half * along]))

    def _place_marks(self, scene: Scene, marks: np.ndarray) -> None:
        self.marks = np.array(marks, dtype=np.float64)
        for name, mark in zip(("entry_mark", "exit_mark"), self.marks, strict=True):
            scene.sim.set_base_pose(name, mark + np.array([0, 0, MARK_HALF_AXES[2]]), np.array([0, 0, 0, 1.0]))

    def observation(self, scene: Scene) -> np.ndarray:
        made = [float(self.tissue.entry is not None), float(self.tissue.exit is not None)]
        return np.concatenate([self.needle_observation(), made, [self.tissue.damage_mm]])

    def achieved_goal(self, scene: Scene) -> np.ndarray:
        tip = tip_position(self.needle.pose())
        entry = tip if self.tissue.entry is None else self.tissue.entry
        exit_ = tip if self.tissue.exit is None else self.tissue.exit
        return np.concatenate([entry, exit_, [float(self.tissue.exit is not None)]])

    def desired_goal(self, scene: Scene) -> np.ndarray:
        return np.concatenate([self.marks.reshape(6), [1.0]])

    def distance(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        achieved, desired = np.asarray(achieved_goal), np.asarray(desired_goal)
        entry = np.linalg.norm(achieved[..., 0:3] - desired[..., 0:3], axis=-1)
        exit_ = np.linalg.norm(achieved[..., 3:6] - desired[..., 3:6], axis=-1)
        return np.maximum(entry, exit_) + UNFINISHED * np.abs(achieved[..., 6] - desired[..., 6])

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        achieved = self.achieved_goal(scene)
        errors = np.linalg.norm(achieved[:6].reshape(2, 3) - self.marks, axis=1) * 1000.0
        return {**super().extra_info(scene), "entry_error_mm": float(errors[0]), "exit_error_mm": float(errors[1])}

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "marks": self.marks.copy()}

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self._place_marks(scene, state["marks"])


class NeedleInsertExpert(Expert):
    """Bring the needle to the ideal bite pose (plane through both marks, tip just short of the
    entry), then drive it along its own arc until the tip comes out."""

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
