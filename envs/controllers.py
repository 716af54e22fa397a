"""Per-arm controllers: how a driven arm's slice of the action moves it, and the way back.

The env gives each driven arm a controller for its control mode: a motion part (cartesian, with a
roll or a full wrist rotation, or joint) and a jaw part where the arm has a jaw. A controller owns
its action ``size``, ``apply(action)`` (an action in [-1, 1] to a set-point, as ``step`` does)
and ``action_toward(...)`` (the action that moves the arm towards a pose, for scripted experts).
The arm says what it allows (``joint_step``, ``full_wrist``, ``has_jaw``), so a new arm type is a
robot class in ``robots.py``; one that moves differently brings its own motion class here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from surgisim.envs.kinematics import JAW_LIMITS
from surgisim.envs.robots import Arm
from surgisim.envs.transforms import make_pose, rotation_from_vector

CONTROL_PERIOD = 0.1  # s of the world's time per env step: a 5 mm step is 0.05 m/s
MAX_TRANSLATION = 0.005  # metres per step
MAX_ROLL = 0.1  # radians per step
Frame = Callable[[], np.ndarray]  # the rotation of the action frame now (camera or world)


class CartesianMotion:
    """Tip translation (x, y, z) of up to ``MAX_TRANSLATION`` in the action frame, then a roll about
    the tip's own axis (1 number) or a rotation vector in the action frame (3), up to ``MAX_ROLL``.
    The tip stays in the task's workspace box. Motion is of the arm's model tip (``model_tip_pose``),
    as a robot's controller moves it."""

    def __init__(self, arm: Arm, rotation_size: int, frame: Frame, workspace: tuple[tuple[float, ...], ...]) -> None:
        self.arm, self.rotation_size, self.frame, self.workspace = arm, rotation_size, frame, workspace
        self.size = 3 + rotation_size

    def apply(self, action: np.ndarray) -> None:
        self.arm.move_tip(*self._motion(action))

    def _motion(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The world tip position and the world rotation vector (to turn the tip by) of an action."""
        translation = self.frame() @ (action[:3] * MAX_TRANSLATION)
        model = self.arm.model_tip_pose()[:3, 3]
        # The box bounds where the tip really is (the same place unless the arm has a kinematic error).
        error = model - self.arm.tip_pose()[:3, 3]
        target = np.clip(model + translation - error, *self.workspace) + error
        if self.rotation_size == 1:
            rotation = action[3] * MAX_ROLL * self.arm.model_tip_pose()[:3, 2]
        else:
            rotation = self.frame() @ (action[3:6] * MAX_ROLL)
        return target, rotation

    def set_point(self, action: np.ndarray) -> np.ndarray:
        """The world tip pose the action asks for (no inverse kinematics: joint limits are the arm's)."""
        position, rotation = self._motion(action)
        return make_pose(rotation_from_vector(rotation) @ self.arm.model_tip_pose()[:3, :3], position)

    def toward(self, delta: np.ndarray, turn: np.ndarray) -> np.ndarray:
        """The motion part of the action for a world translation and rotation vector of one step."""
        frame = self.frame()
        if self.rotation_size == 3:
            turn_part = frame.T @ turn / MAX_ROLL
        else:
            turn_part = [float(np.dot(turn, self.arm.model_tip_pose()[:3, 2])) / MAX_ROLL]
        return np.concatenate([frame.T @ delta / MAX_TRANSLATION, turn_part])


class JointMotion:
    """A change of each joint of up to the arm's ``joint_step``."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.size = len(arm.q)

    def apply(self, action: np.ndarray) -> None:
        self.arm.set_joints(self.arm.q + self.arm.joint_step * action)

    def set_point(self, action: np.ndarray) -> np.ndarray:
        """The world tip pose of the joints the action asks for (within the joint limits)."""
        q = np.clip(self.arm.q + self.arm.joint_step * action, self.arm.lower, self.arm.upper)
        return self.arm.base @ self.arm.local_tip_pose(q)

    def toward(self, delta: np.ndarray, turn: np.ndarray) -> np.ndarray:
        arm = self.arm
        target = arm.joints_toward(arm.model_tip_pose()[:3, 3] + delta, turn)
        motion = (np.clip(target, arm.lower, arm.upper) - arm.q) / arm.joint_step
        return motion / max(1.0, float(np.abs(motion).max()))


class Jaw:
    """The jaw angle: -1 is the lower jaw limit, 1 the upper (-20 and 80 degrees)."""

    size = 1

    def __init__(self, arm: Arm) -> None:
        self.arm = arm

    def apply(self, value: float) -> None:
        self.arm.set_jaw(self.set_point(value))

    @staticmethod
    def set_point(value: float) -> float:
        low, high = JAW_LIMITS
        return float(low + (value + 1.0) / 2.0 * (high - low))

    @staticmethod
    def toward(angle: float) -> list[float]:
        low, high = JAW_LIMITS
        return [2.0 * (angle - low) / (high - low) - 1.0]


class Controller:
    """One driven arm's part of the action: its motion, then its jaw (if it has one)."""

    def __init__(self, arm: Arm, motion: CartesianMotion | JointMotion, jaw: Jaw | None) -> None:
        self.arm, self.motion, self.jaw = arm, motion, jaw
        self.size = motion.size + (jaw.size if jaw else 0)

    def apply(self, action: np.ndarray, motion_scale: float = 1.0) -> None:
        """Move the arm by its (validated, clipped) slice of the action, its motion scaled by
        ``motion_scale`` (a control period longer or shorter than nominal)."""
        self.motion.apply(action[: self.motion.size] * motion_scale)
        if self.jaw:
            self.jaw.apply(action[-1])

    def hold(self) -> np.ndarray:
        """The action slice that keeps the arm where it is, jaw included."""
        jaw = self.jaw.toward(self.arm.jaw) if self.jaw else []
        return np.concatenate([np.zeros(self.motion.size), jaw])

    def set_point(self, action: np.ndarray) -> tuple[np.ndarray, float | None]:
        """The world tip pose and the jaw angle (None without a jaw) that ``apply`` would move the
        arm to, without moving it: the ROS 2 bridge turns a policy's action into a set-point so."""
        pose = self.motion.set_point(action[: self.motion.size])
        return pose, self.jaw.set_point(action[-1]) if self.jaw else None

    def action_toward(
        self, position: np.ndarray, jaw: float = 0.0, roll: float = 0.0, rotation: np.ndarray | None = None
    ) -> np.ndarray:
        """The action slice that moves the tip in a straight line towards a world ``position`` and
        turns it by ``roll`` radians about its axis, or by the world ``rotation`` vector (at most
        one step's worth of each), setting the jaw to ``jaw`` radians. The step is measured from
        where the tip really is (``tip_pose``; privileged when the arm has a kinematic error)."""
        tip = self.arm.tip_pose()
        delta = np.asarray(position, dtype=np.float64) - tip[:3, 3]
        delta *= min(1.0, MAX_TRANSLATION / max(float(np.linalg.norm(delta)), 1e-12))
        turn = roll * tip[:3, 2] if rotation is None else np.array(rotation, dtype=np.float64)
        turn *= min(1.0, MAX_ROLL / max(float(np.linalg.norm(turn)), 1e-12))
        if self.arm.error is not None:  # the same motion of the model tip, which the controller moves
            to_model = self.arm.model_tip_pose()[:3, :3] @ tip[:3, :3].T
            delta, turn = to_model @ delta, to_model @ turn
        motion = self.motion.toward(delta, turn)
        if self.jaw:
            motion = np.concatenate([motion, self.jaw.toward(jaw)])
        return np.clip(motion, -1.0, 1.0).astype(np.float32)


def make_controller(
    arm: Arm, control: str, wrist: str, frame: Frame, workspace: tuple[tuple[float, ...], ...]
) -> Controller:
    """The controller of ``arm`` for a control mode (``"cartesian"`` or ``"joint"``) and a task's
    wrist (``"roll"`` or ``"full"``; an arm without a full wrist rolls)."""
    if control == "joint":
        motion: CartesianMotion | JointMotion = JointMotion(arm)
    else:
        motion = CartesianMotion(arm, 3 if wrist == "full" and arm.full_wrist else 1, frame, workspace)
    return Controller(arm, motion, Jaw(arm) if arm.has_jaw else None)
