"""The dVRK arms in the simulator: a PSM (instrument) and an ECM (endoscope).

Both are driven kinematically, as a stiff position-controlled arm is: a commanded joint vector is
clipped to the joint limits and applied directly. Poses come from the DH model, which the
simulated links match exactly (``tests/test_kinematics.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgisim.envs.kinematics import (
    ECM_CAMERA_MOUNT,
    ECM_DH,
    ECM_LOWER,
    ECM_UPPER,
    JAW_LIMITS,
    ecm_fk,
    ecm_ik,
    forward_kinematics,
)
from surgisim.envs.sim import Sim
from surgisim.envs.tools import Tool, default_tool
from surgisim.envs.transforms import make_pose, matrix_to_quat, quat_to_matrix, rot6d, rotation_from_vector
from surgisim.envs.urdf_builder import psm_urdf


@dataclass
class ArmError:
    """How an arm really differs from its kinematic model: offsets added to the joints (rad; m
    for the insertion), a gain error of the wrist's joints (4 and 5) and the true base frame
    relative to the modelled one (4x4)."""

    joint_offset: np.ndarray
    wrist_coupling: float = 0.0
    base: np.ndarray = field(default_factory=lambda: np.eye(4))

    def true_joints(self, q: np.ndarray) -> np.ndarray:
        """Where joints that report ``q`` really are."""
        true = q + self.joint_offset
        true[4:6] += self.wrist_coupling * q[4:6]
        return true

    def reported_joints(self, true: np.ndarray) -> np.ndarray:
        """What joints that really are at ``true`` report (the inverse of ``true_joints``)."""
        q = true - self.joint_offset
        q[4:6] /= 1.0 + self.wrist_coupling
        return q


class Arm:
    """Common parts: a URDF body whose base frame is the RCM, posed in the world by ``base``.

    What a controller may do with it (``surgisim.envs.controllers``): change each joint by up to
    ``joint_step`` per step, turn the tip by any rotation (``full_wrist``) or only roll it, and set
    a jaw (``has_jaw``). ``home`` is where ``reset`` puts it.
    """

    urdf: str
    lower: np.ndarray
    upper: np.ndarray
    joint_step: np.ndarray
    full_wrist: bool = False
    has_jaw: bool = False

    def __init__(self, sim: Sim, name: str, base: np.ndarray, joint_names: list[str], tip_link: str) -> None:
        self.sim, self.name, self.base = sim, name, base
        self.base_inv = np.linalg.inv(base)
        self.body = sim.load_urdf(name, self.urdf, base[:3, 3], matrix_to_quat(base[:3, :3]))
        indices = sim.joint_indices(name)
        self.joint_ids = [indices[joint] for joint in joint_names]
        self.tip_link = sim.link_indices(name)[tip_link]
        self.q = np.zeros(len(joint_names))
        self.home = self.q.copy()
        self._tip: np.ndarray | None = None  # tip pose of self.q, computed once per set_joints
        self._model_tip: np.ndarray | None = None
        self.error: ArmError | None = None  # how the arm really differs from its model (randomisation)
        # Whether the PyBullet body follows the joints; a kinematic model of a real arm (the ROS 2
        # runner's) turns it off: it needs the poses, not the body, and saves the calls.
        self.in_sim = True
        sim.set_collisions(name, False)  # kinematic: no physics contacts (contact queries still see it)
        self.set_error(None)  # the base posed as set_state poses it, so that a restored env matches to the bit

    def reset(self) -> None:
        """Back to ``home``."""
        self.set_joints(self.home)

    def set_jaw(self, angle: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no jaw")

    def set_joints(self, q: np.ndarray) -> None:
        self.q = np.clip(np.asarray(q, dtype=np.float64), self.lower, self.upper)
        self._tip = self._model_tip = None
        if self.in_sim:
            self.sim.set_joint_positions(self.name, self.joint_ids, self.true_joints())

    def set_error(self, error: ArmError | None) -> None:
        """Make the real arm differ from its kinematic model by ``error`` (None: not at all). ``q``
        stays what the joints report; the body, ``tip_pose`` and all the world sees move."""
        self.error = error
        base = self.base if error is None else self.base @ error.base
        if self.in_sim:
            self.sim.set_base_pose(self.name, base[:3, 3], matrix_to_quat(base[:3, :3]))
        self.set_joints(self.q)

    def true_joints(self) -> np.ndarray:
        """Where the joints really are: ``q`` unless the arm has a kinematic ``error``."""
        return self.q if self.error is None else self.error.true_joints(self.q)

    def tip_pose(self) -> np.ndarray:
        """World pose (4x4) of the tool tip or camera: where it really is (the DH model, of the
        true joints and base when the arm has a kinematic ``error``)."""
        if self._tip is None:
            if self.error is None:
                self._tip = self.model_tip_pose()
            else:
                self._tip = self.base @ self.error.base @ self.local_tip_pose(self.true_joints())
        return self._tip.copy()

    def model_tip_pose(self) -> np.ndarray:
        """World pose (4x4) of the tip as the arm's kinematic model puts it from the joints it
        reports: what a robot knows, and what controllers and observations use. It is
        ``tip_pose`` unless the arm has a kinematic ``error``."""
        if self._model_tip is None:
            self._model_tip = self.base @ self.local_tip_pose(self.q)
        return self._model_tip.copy()

    def sim_tip_pose(self) -> np.ndarray:
        """World pose (4x4) of the tip frame as PyBullet computes it from the URDF."""
        position, orientation = self.sim.link_pose(self.name, self.tip_link)
        return make_pose(quat_to_matrix(orientation), position)

    def local_tip_pose(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def joints_toward(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def move_tip(self, position: np.ndarray, rotation: np.ndarray) -> None:
        """Move the tip to a world position and turn it by a world-frame rotation vector about
        itself (joint limits apply)."""
        self.set_joints(self.joints_toward(position, rotation))

    def rcm(self) -> np.ndarray:
        return self.base[:3, 3]

    # -- the pose a dVRK reports (``measured_cp``: its base frame) --------------------------------

    cp_to_tip: np.ndarray  # the tip (jaw tips, camera) in the frame a dVRK reports

    def cp_of(self, q: np.ndarray) -> np.ndarray:
        """``measured_cp`` as a dVRK reports it for joints ``q``."""
        raise NotImplementedError

    def joints_from_cp(self, cp: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
        """Joints for a ``servo_cp`` pose (inverse kinematics; rolls nearest ``q_ref``; no limits)."""
        raise NotImplementedError

    def cp(self) -> np.ndarray:
        """``measured_cp`` of the joints now, from the cached tip pose."""
        return self.cp_from_tip(self.model_tip_pose())

    def cp_from_tip(self, tip: np.ndarray) -> np.ndarray:
        """The ``measured_cp`` pose of a world tip pose."""
        return self.base_inv @ tip @ np.linalg.inv(self.cp_to_tip)

    def tip_from_cp(self, cp: np.ndarray) -> np.ndarray:
        """The world tip pose of a ``measured_cp`` pose."""
        return self.base @ cp @ self.cp_to_tip


class PSM(Arm):
    """Patient-side manipulator: six joints (yaw, pitch, insertion, roll, wrist pitch, wrist yaw) and a
    jaw, with a tool (``surgisim.envs.tools``; default the Large Needle Driver 400006). Its tip is the
    jaw tips; ``tool.cp`` gives the pose a dVRK reports."""

    joint_step = np.array([0.05, 0.05, 0.005, 0.05, 0.05, 0.05])  # rad, and m for the insertion
    full_wrist = has_jaw = True

    def __init__(self, sim: Sim, name: str, base: np.ndarray, tool: Tool | None = None) -> None:
        self.tool = tool or default_tool()
        self.urdf, self.lower, self.upper = psm_urdf(self.tool), self.tool.lower, self.tool.upper
        self.cp_to_tip = self.tool.tip_from_cp(np.eye(4))  # the dVRK reports the jaw pivot
        # The jaw takes the env's range, within what the tool allows.
        self.jaw_limits = (max(JAW_LIMITS[0], self.tool.jaw_limits[0]), min(JAW_LIMITS[1], self.tool.jaw_limits[1]))
        super().__init__(sim, name, base, [row.name for row in self.tool.dh], "tool_tip")
        indices = sim.joint_indices(name)
        self.jaw_ids = [indices["jaw_left"], indices["jaw_right"]]
        self.jaw = 0.0

    def local_tip_pose(self, q: np.ndarray) -> np.ndarray:
        return self.tool.tip(q)

    def cp_of(self, q: np.ndarray) -> np.ndarray:
        return self.tool.cp(q)

    def joints_from_cp(self, cp: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
        return self.tool.ik(cp @ self.cp_to_tip, q_ref=q_ref)

    def reset(self) -> None:
        """Back to ``home``, jaws closed."""
        super().reset()
        self.set_jaw(0.0)

    def set_jaw(self, angle: float) -> None:
        self.jaw = float(np.clip(angle, *self.jaw_limits))
        if self.in_sim:
            self.sim.set_joint_positions(self.name, self.jaw_ids, np.array([self.jaw / 2, -self.jaw / 2]))

    def ik(self, tip_pose_world: np.ndarray, q_ref: np.ndarray | None = None) -> np.ndarray:
        """Joints (as reported) that put the real tool tip at a world pose: the inverse of
        ``tip_pose``. The tool roll is the one nearest ``q_ref`` (default: now)."""
        q_ref = self.q if q_ref is None else q_ref
        if self.error is None:
            return self.model_ik(tip_pose_world, q_ref)
        local = np.linalg.inv(self.base @ self.error.base) @ tip_pose_world
        return self.error.reported_joints(self.tool.ik(local, q_ref=self.error.true_joints(q_ref)))

    def model_ik(self, tip_pose_world: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
        """Joints for a world tip pose by the arm's kinematic model (the inverse of ``model_tip_pose``)."""
        return self.tool.ik(self.base_inv @ tip_pose_world, q_ref=q_ref)

    def joints_toward(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Joints with the model's tip at a world position, turned by a world-frame rotation vector."""
        target = self.model_tip_pose()
        target[:3, :3] = rotation_from_vector(rotation) @ target[:3, :3]
        target[:3, 3] = position
        return self.model_ik(target, self.q)

    def state(self) -> np.ndarray:
        """Tip position (3), tip rotation as 6-D (6), jaw angle (1), as the arm reports them."""
        pose = self.model_tip_pose()
        return np.concatenate([pose[:3, 3], rot6d(pose[:3, :3]), [self.jaw]])


class ECM(Arm):
    """Endoscope camera manipulator: yaw, pitch, insertion and roll; the camera looks along the shaft."""

    urdf = "ecm.urdf"
    lower, upper = ECM_LOWER, ECM_UPPER
    joint_step = np.array([0.05, 0.05, 0.005, 0.05])  # rad, and m for the insertion

    cp_to_tip = ECM_CAMERA_MOUNT  # measured_cp is the last DH frame (a straight scope's tip)

    def __init__(self, sim: Sim, name: str, base: np.ndarray) -> None:
        super().__init__(sim, name, base, [row.name for row in ECM_DH], "camera_link")

    def local_tip_pose(self, q: np.ndarray) -> np.ndarray:
        return ecm_fk(q)

    def cp_of(self, q: np.ndarray) -> np.ndarray:
        return forward_kinematics(ECM_DH, q)[-1]

    def joints_from_cp(self, cp: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
        """The position fixes yaw, pitch and insertion; the roll is the angle of the pose's x axis
        about the shaft in the third link's frame (the roll row has no twist or offset)."""
        q = ecm_ik(cp[:3, 3], 0.0)
        x_in_3 = forward_kinematics(ECM_DH[:3], q[:3])[-1][:3, :3].T @ cp[:3, 0]
        roll = float(np.arctan2(x_in_3[1], x_in_3[0]))
        q[3] = roll + 2 * np.pi * np.round((q_ref[3] - roll) / (2 * np.pi))
        return q

    def ik(self, camera_position_world: np.ndarray, roll: float) -> np.ndarray:
        local = self.base_inv[:3, :3] @ camera_position_world + self.base_inv[:3, 3]
        return ecm_ik(local, roll)

    def joints_toward(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Joints with the camera at a world position, looking along the shaft line: of a rotation,
        only the roll about the optical axis applies."""
        return self.ik(position, self.q[3] + float(np.dot(rotation, self.model_tip_pose()[:3, 2])))

    def state(self) -> np.ndarray:
        """Camera position (3) and rotation as 6-D (6), as the arm reports them."""
        pose = self.model_tip_pose()
        return np.concatenate([pose[:3, 3], rot6d(pose[:3, :3])])
