"""Shared parts of the suturing tasks: one needle, a gated grasp by the PSM, and the tissue; and
what their experts share (jaws-down poses, grasping from above, driving the needle along its arc)."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.envs.grasp import GRASP_CLOSED, Grasp
from surgisim.envs.kinematics import JAW_LIMITS, rot_z
from surgisim.envs.needle import NEEDLE_ARC, NEEDLE_RADIUS, NEEDLE_WIRE_RADIUS, Needle
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import ExpertEnv, Task
from surgisim.envs.tasks.markers import DamageMarks
from surgisim.envs.tissue import Tissue, rot_about_z
from surgisim.envs.transforms import make_pose, rot6d

PHYSICS_SUBSTEPS = round(CONTROL_PERIOD * 240)  # PyBullet steps at 240 Hz in one env step
REST_SPEED = 1e-3  # m/s (and rad/s): below this a dropped needle has come to rest
GRASP_ANGLE = 0.3 * NEEDLE_ARC  # where the experts hold the needle, measured from the tail
OPEN_JAW = np.deg2rad(60.0)
ROLL_MARGIN = 0.25  # radians the experts keep from the tool-roll joint's limits when planning grasps


def jaws_across_wire(angle: float = GRASP_ANGLE) -> np.ndarray:
    """Tool-tip pose in the needle frame for the standard grasp at arc ``angle``: the jaws along
    the needle's axis (-z), closing across the wire, with the wire 9.7 mm along the 10.5 mm jaws."""
    point = np.array([np.cos(angle), np.sin(angle), 0.0]) * NEEDLE_RADIUS
    z_axis = np.array([0.0, 0.0, -1.0])
    x_axis = np.array([-np.sin(angle), np.cos(angle), 0.0])  # along the wire
    return make_pose(np.column_stack([x_axis, np.cross(z_axis, x_axis), z_axis]), point + NEEDLE_WIRE_RADIUS * z_axis)


class NeedleTask(Task):
    """A task with a needle: grasps, free fall (PyBullet) and tissue interaction, stepped together.

    Each step: each PSM's grasp reacts to its jaw; if the wire is in the tissue, the needle's
    commanded motion is resisted (``surgisim.envs.tissue``) and a held needle holds the arm back
    with it; otherwise a released needle falls under physics until it rests. Damage (mm) is the
    step's cost. When two PSMs hold the needle, it follows the one that took it first, and the
    other's hold is where the needle then is (the needle does not jump when the first lets go).
    """

    damage_limit_mm: float = float("inf")  # more damage than this fails the episode

    def build(self, scene: Scene) -> None:
        self.needle = Needle(scene.sim, scene.camera)
        self.grasps = [Grasp(psm, self.needle) for psm in scene.psms()]
        self.grasp = self.grasps[0]  # PSM1's
        self.holders: list[int] = []  # indices of the grasps that hold the needle, earliest first
        self.tissue = Tissue()
        self.damage_marks = DamageMarks(scene)
        self.previous_jaws = [0.0] * len(self.grasps)
        self.falling = False  # physics runs only while a released needle has not come to rest

    def reset_needle(self, scene: Scene, pose: np.ndarray, held: bool) -> None:
        """Place the needle; if ``held``, in PSM1's jaws (closed) with the standard grasp."""
        for grasp in self.grasps:
            grasp.reset()
        self.holders = []
        self.tissue.reset()
        self.damage_marks.reset()
        self.falling = False
        self.needle.set_pose(pose)
        if held:
            scene.psm.set_joints(scene.psm.ik(pose @ jaws_across_wire()))
            scene.psm.set_jaw(0.0)
            self.grasp.attach()
            self.holders = [0]
        self.previous_jaws = [grasp.psm.jaw for grasp in self.grasps]

    def step_world(self, scene: Scene) -> None:
        before = self.needle.pose()
        was_held = bool(self.holders)
        for grasp, previous_jaw in zip(self.grasps, self.previous_jaws, strict=True):
            grasp.update(previous_jaw)
        self.previous_jaws = [grasp.psm.jaw for grasp in self.grasps]
        self._follow_first_holder()
        if self.tissue.holds(before):
            resisted = self.tissue.resist(before, self.needle.pose())
            self.needle.set_pose(resisted)
            if self.holders:
                lead = self.grasps[self.holders[0]]
                lead.psm.set_joints(lead.psm.ik(resisted @ np.linalg.inv(lead.offset)))
                self._follow_first_holder()
            self.falling = False
        else:
            self.falling = not self.holders and (self.falling or was_held)
            if self.falling:
                self.needle.forget_contacts()  # so that a restored (unpickled) env steps the same
                scene.step_physics(PHYSICS_SUBSTEPS)
                self.needle.settle()
                self.falling = bool(np.abs(self.needle.velocity()).max() > REST_SPEED)
        holes = (self.tissue.entry, self.tissue.exit)
        self.tissue.update(before, self.needle.pose())
        for hole_before, hole in zip(holes, (self.tissue.entry, self.tissue.exit), strict=True):
            if hole is not None and (hole_before is None or not np.array_equal(hole, hole_before)):
                self.damage_marks.add(hole)  # a puncture, or a hole dragged through the tissue
        self.failed = self.failed or self.tissue.damage_mm > self.damage_limit_mm

    def _follow_first_holder(self) -> None:
        held = [i for i, grasp in enumerate(self.grasps) if grasp.held]
        self.holders = [i for i in self.holders if i in held] + [i for i in held if i not in self.holders]
        if not self.holders:
            return
        lead = self.grasps[self.holders[0]]
        self.needle.set_pose(lead.psm.tip_pose() @ lead.offset)
        for index in self.holders[1:]:
            other = self.grasps[index]
            other.attach()

    def needle_pose(self) -> np.ndarray:
        """The needle's world pose (4x4), its arc's centre at the origin (``surgisim.envs.needle``)."""
        return self.needle.pose()

    def track_needle(self, pose: np.ndarray) -> None:
        """Put the needle where a robot's tracker sees it (world pose); the jaws that hold it keep
        holding it there."""
        self.needle.set_pose(pose)
        for grasp in self.grasps:
            if grasp.held:
                grasp.attach()

    def needle_observation(self) -> np.ndarray:
        """Arc centre (3), needle rotation as 6-D (6), then whether each PSM holds it (1 each)."""
        pose = self.needle.pose()
        return np.concatenate([pose[:3, 3], rot6d(pose[:3, :3]), [float(grasp.held) for grasp in self.grasps]])

    def cost(self, scene: Scene) -> float:
        return self.tissue.step_damage_mm

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        wire = self.needle.points(np.linspace(0.0, NEEDLE_ARC, 24))
        reach = float(np.min(np.linalg.norm(wire - scene.psm.tip_pose()[:3, 3], axis=1)))
        return {"held": bool(self.holders), "reach_m": reach, "damage_mm": self.tissue.damage_mm}

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "needle": self.needle.state(),
            "falling": self.falling,
            "held": [grasp.held for grasp in self.grasps],
            "grasp_offsets": [grasp.offset.copy() for grasp in self.grasps],
            "holders": list(self.holders),
            "previous_jaws": list(self.previous_jaws),
            "tissue": self.tissue.get_state(),
            "damage_marks": [point.copy() for point in self.damage_marks.points],
        }

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self.needle.set_state(np.array(state["needle"]))
        self.falling = bool(state["falling"])
        for grasp, held, offset in zip(self.grasps, state["held"], state["grasp_offsets"], strict=True):
            grasp.held, grasp.offset = bool(held), np.array(offset)
        self.holders = [int(i) for i in state["holders"]]
        self.previous_jaws = [float(jaw) for jaw in state["previous_jaws"]]
        self.tissue.set_state(state["tissue"])
        self.damage_marks.set_points(state["damage_marks"])


def jaws_down_pose(tip: np.ndarray, heading: float) -> np.ndarray:
    """Tool-tip pose at ``tip`` with the jaws pointing straight down, their x axis at ``heading``."""
    c, s = np.cos(heading), np.sin(heading)
    rotation = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
    return make_pose(rotation, tip)


def grasp_from_above(
    env: ExpertEnv, arm: int, angle: float, hover: float = 0.015, way: float | None = None
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


def funnel_grasp(env: ExpertEnv, arm: int, angle: float, hover: float = 0.015, near: float = 0.001,
                 slope: float = 1.5, close_height: float = 0.003, lift: float = 0.004) -> np.ndarray:  # fmt: skip
    """Action for PSM number ``arm`` (jaws pointing down, at the heading they have) to take the
    needle at arc ``angle`` in a way a student that sees only images can copy. Open jaws come down
    a cone over that point (its height ``slope`` times the distance across beyond ``near``, at most
    ``hover``) and close once ``close_height`` above the wire's underside; jaws that closed on
    nothing rise ``lift`` and open. Jaws opened 60 degrees take a wire some millimetres off their
    centre line, at any angle to them, so no turn is needed. Every rule is one a student can
    follow from what it sees: the cone's height changes smoothly with where the wire is (a
    funnel whose sides jumped left students hovering at the jump); whether to close depends on
    the height and the jaw alone; whether a grasp missed is decided ``lift`` above the tissue,
    where a held needle visibly rises with the jaws."""
    grasp_tip = env.task.needle.points(np.array([angle]))[0] - np.array([0.0, 0.0, NEEDLE_WIRE_RADIUS])
    tip = env.arms[arm].tip_pose()[:3, 3]
    offset = tip - grasp_tip
    if env.arms[arm].jaw <= GRASP_CLOSED:  # closed on nothing
        if offset[2] < lift:
            return env.action_toward(np.array([tip[0], tip[1], grasp_tip[2] + lift]), jaw=JAW_LIMITS[0], arm=arm)
        return env.action_toward(tip, jaw=OPEN_JAW, arm=arm)
    if offset[2] < close_height:
        return env.action_toward(grasp_tip, jaw=JAW_LIMITS[0], arm=arm)
    height = min(hover, slope * max(float(np.linalg.norm(offset[:2])) - near, 0.0))
    return env.action_toward(grasp_tip + np.array([0.0, 0.0, height]), jaw=OPEN_JAW, arm=arm)


GRASPABLE_ARC = np.linspace(0.15 * NEEDLE_ARC, 0.85 * NEEDLE_ARC, 97)  # the wire, less 15 % at each end


def nearest_wire_angle(env: ExpertEnv, arm: int) -> float:
    """The arc angle of the wire point nearest, seen from above, to PSM number ``arm``'s tip
    (except its ends): where jaws coming down take it. A student sees that point beside its jaws;
    a fixed point such as the middle may lie under them, found only by reasoning about the whole
    arc."""
    points = env.task.needle.points(GRASPABLE_ARC)[:, :2]
    tip = env.arms[arm].tip_pose()[:2, 3]
    return float(GRASPABLE_ARC[np.argmin(np.linalg.norm(points - tip, axis=1))])


def drive_along_arc(env: ExpertEnv, angle: float) -> np.ndarray:
    """Action that turns the needle held by PSM1 by ``angle`` about its own axis, so that it moves
    along its arc (through the tissue without damage)."""
    needle = env.task.needle.pose()
    driven = needle @ rot_about_z(angle) @ np.linalg.inv(env.task.grasp.offset)
    return env.action_toward(driven[:3, 3], jaw=JAW_LIMITS[0], rotation=angle * needle[:3, 2])
