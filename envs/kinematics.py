"""dVRK kinematics: the PSM's arm joints and the ECM in modified Denavit-Hartenberg form (the PSM's
tool joints, FK and closed-form IK are in ``surgisim.envs.tools``).

Conventions follow the dVRK's published kinematics (see the table in ``shared/DESIGN.md``). Frame 0
is the remote centre of motion (RCM); link ``i`` sits at ``T_{i-1,i} = Rx(alpha) Tx(a) Rz(theta) Tz(d)``.
All lengths are in metres and angles in radians.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PI = np.pi


@dataclass(frozen=True)
class DHRow:
    """One modified-DH row. ``joint_type`` is ``"R"`` (theta = q + offset) or ``"P"`` (d = q + offset)."""

    name: str
    joint_type: str
    alpha: float
    a: float
    theta: float
    d: float
    lower: float
    upper: float


# The PSM's own three joints; the tool's three (roll, wrist pitch, wrist yaw) come from its
# definition file (``surgisim.envs.tools``).
PSM_ARM_DH: tuple[DHRow, ...] = (
    DHRow("outer_yaw", "R", PI / 2, 0.0, PI / 2, 0.0, np.deg2rad(-91), np.deg2rad(91)),
    DHRow("outer_pitch", "R", -PI / 2, 0.0, -PI / 2, 0.0, np.deg2rad(-53), np.deg2rad(53)),
    DHRow("outer_insertion", "P", PI / 2, 0.0, 0.0, -0.4318, 0.0, 0.24),
)
ECM_DH: tuple[DHRow, ...] = (
    DHRow("outer_yaw", "R", PI / 2, 0.0, PI / 2, 0.0, np.deg2rad(-90), np.deg2rad(90)),
    DHRow("outer_pitch", "R", -PI / 2, 0.0, -PI / 2, 0.0, np.deg2rad(-45), np.deg2rad(66.4)),
    DHRow("outer_insertion", "P", PI / 2, 0.0, 0.0, -0.3822, 0.0, 0.254),
    DHRow("outer_roll", "R", 0.0, 0.0, 0.0, 0.3829, np.deg2rad(-90), np.deg2rad(90)),
)
# The jaw angles the env's actions span (a tool's own limits may be wider; see its file).
JAW_LIMITS = (np.deg2rad(-20.0), np.deg2rad(80.0))
# Each jaw finger rotates about the wrist-yaw axis (z6) and extends along y6 just past the jaw tips.
JAW_LENGTH = 0.0105
JAW_HALF_WIDTH = 0.0015  # along z6
ECM_TIP_OFFSET = ECM_DH[2].d + ECM_DH[3].d
# Camera frame (OpenCV axes: x right, y down, z forward) on the ECM tip: turned so that, at zero
# roll, the image's "up" points away from the endoscope port, as on a surgeon's console.
ECM_CAMERA_MOUNT = np.array([[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

ECM_LOWER = np.array([r.lower for r in ECM_DH])
ECM_UPPER = np.array([r.upper for r in ECM_DH])


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def dh_transform(row: DHRow, q: float) -> np.ndarray:
    """Homogeneous transform from link ``i-1`` to link ``i`` at joint value ``q``."""
    theta = row.theta + (q if row.joint_type == "R" else 0.0)
    d = row.d + (q if row.joint_type == "P" else 0.0)
    ca, sa = np.cos(row.alpha), np.sin(row.alpha)
    ct, st = np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, row.a],
            [st * ca, ct * ca, -sa, -sa * d],
            [st * sa, ct * sa, ca, ca * d],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def forward_kinematics(rows: tuple[DHRow, ...], q: np.ndarray) -> list[np.ndarray]:
    """Transforms of every link frame in the RCM frame, ``[T_01, T_02, ...]``."""
    frames, transform = [], np.eye(4)
    for row, value in zip(rows, q, strict=True):
        transform = transform @ dh_transform(row, float(value))
        frames.append(transform)
    return frames


def ecm_fk(q: np.ndarray) -> np.ndarray:
    """ECM camera pose (4x4) in the RCM frame for the four joints ``q``."""
    return forward_kinematics(ECM_DH, q)[-1] @ ECM_CAMERA_MOUNT


def shaft_angles(direction: np.ndarray) -> tuple[float, float]:
    """Outer yaw and pitch that point the shaft (z of link 3) along the unit ``direction``.

    With the dVRK rows, ``z3 = (sin q1 cos q2, -sin q2, -cos q1 cos q2)`` in the RCM frame.
    """
    x, y, z = direction
    q2 = float(np.arcsin(np.clip(-y, -1.0, 1.0)))
    q1 = float(np.arctan2(x, -z))
    return q1, q2


def ecm_ik(tip_position: np.ndarray, roll: float) -> np.ndarray:
    """ECM joints that put the camera at ``tip_position`` (RCM frame) with tool roll ``roll``."""
    distance = float(np.linalg.norm(tip_position))
    q1, q2 = shaft_angles(tip_position / distance)
    return np.array([q1, q2, distance - ECM_TIP_OFFSET, roll])


def wrap_angle(angle: float) -> float:
    return float((angle + PI) % (2 * PI) - PI)
