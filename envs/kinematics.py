"""dVRK kinematics: the PSM and ECM in modified Denavit-Hartenberg form, and a closed-form PSM IK.

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


PSM_DH: tuple[DHRow, ...] = (
    DHRow("outer_yaw", "R", PI / 2, 0.0, PI / 2, 0.0, np.deg2rad(-91), np.deg2rad(91)),
    DHRow("outer_pitch", "R", -PI / 2, 0.0, -PI / 2, 0.0, np.deg2rad(-53), np.deg2rad(53)),
    DHRow("outer_insertion", "P", PI / 2, 0.0, 0.0, -0.4318, 0.0, 0.24),
    DHRow("outer_roll", "R", 0.0, 0.0, 0.0, 0.4162, np.deg2rad(-260), np.deg2rad(260)),
    DHRow("outer_wrist_pitch", "R", -PI / 2, 0.0, -PI / 2, 0.0, np.deg2rad(-80), np.deg2rad(80)),
    DHRow("outer_wrist_yaw", "R", -PI / 2, 0.0091, -PI / 2, 0.0, np.deg2rad(-80), np.deg2rad(80)),
)
ECM_DH: tuple[DHRow, ...] = (
    DHRow("outer_yaw", "R", PI / 2, 0.0, PI / 2, 0.0, np.deg2rad(-90), np.deg2rad(90)),
    DHRow("outer_pitch", "R", -PI / 2, 0.0, -PI / 2, 0.0, np.deg2rad(-45), np.deg2rad(66.4)),
    DHRow("outer_insertion", "P", PI / 2, 0.0, 0.0, -0.3822, 0.0, 0.254),
    DHRow("outer_roll", "R", 0.0, 0.0, 0.0, 0.3829, np.deg2rad(-90), np.deg2rad(90)),
)
JAW_LIMITS = (np.deg2rad(-20.0), np.deg2rad(80.0))
# Each jaw finger rotates about the wrist-yaw axis (z6) and extends along y6 just past the tool tip.
JAW_LENGTH = 0.0105
JAW_HALF_WIDTH = 0.0015  # along z6

# Tool tip relative to the wrist-yaw frame (dVRK "tooltip-offset"): 10.2 mm along y6, z_tip along the jaws.
PSM_TIP_OFFSET = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0102], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
# Distance from the RCM to the wrist-pitch axis is q3 + this (frame 3 origin + d4).
PSM_WRIST_OFFSET = PSM_DH[2].d + PSM_DH[3].d
PSM_PITCH_TO_YAW = PSM_DH[5].a
# With the wrist straight, the tip lies on the shaft this far beyond q3 from the RCM.
PSM_STRAIGHT_TIP_OFFSET = PSM_WRIST_OFFSET + PSM_PITCH_TO_YAW + PSM_TIP_OFFSET[1, 3]
ECM_TIP_OFFSET = ECM_DH[2].d + ECM_DH[3].d
# Camera frame (OpenCV axes: x right, y down, z forward) on the ECM tip: turned so that, at zero
# roll, the image's "up" points away from the endoscope port, as on a surgeon's console.
ECM_CAMERA_MOUNT = np.array([[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

PSM_LOWER = np.array([r.lower for r in PSM_DH])
PSM_UPPER = np.array([r.upper for r in PSM_DH])
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


def psm_fk(q: np.ndarray) -> np.ndarray:
    """PSM tool-tip pose (4x4) in the RCM frame for the six arm joints ``q``."""
    return forward_kinematics(PSM_DH, q)[-1] @ PSM_TIP_OFFSET


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


def psm_ik(tip_pose: np.ndarray, q_ref: np.ndarray | None = None) -> np.ndarray:
    """Closed-form PSM inverse kinematics: six joint values that put the tool tip at ``tip_pose``.

    The wrist-yaw frame follows from the tip pose; the pitch-to-yaw link is perpendicular to the
    yaw axis and coplanar with the shaft, which fixes the wrist-pitch point on the shaft line
    through the RCM. Yaw, pitch and insertion follow from that point, the wrist angles from the
    remaining rotation. Of the tool-roll values equal modulo 2 pi, the one nearest ``q_ref[3]``
    (or zero) is returned. Joint limits are not applied here.
    """
    yaw_frame = tip_pose @ np.linalg.inv(PSM_TIP_OFFSET)
    p6, z6, x6 = yaw_frame[:3, 3], yaw_frame[:3, 2], yaw_frame[:3, 0]
    perpendicular = p6 - np.dot(p6, z6) * z6
    u = perpendicular / np.linalg.norm(perpendicular)  # x5: pitch point -> yaw point
    p4 = p6 - PSM_PITCH_TO_YAW * u
    distance = float(np.linalg.norm(p4))
    q1, q2 = shaft_angles(p4 / distance)
    q3 = distance - PSM_WRIST_OFFSET
    frame3 = forward_kinematics(PSM_DH[:3], np.array([q1, q2, q3]))[-1][:3, :3]
    z5 = np.cross(u, z6)
    z5_in_3 = frame3.T @ z5
    q4 = float(np.arctan2(-z5_in_3[0], z5_in_3[1]))
    if q_ref is not None:
        q4 += 2 * PI * np.round((q_ref[3] - q4) / (2 * PI))
    frame4 = frame3 @ rot_z(q4)
    x5_in_4 = frame4.T @ u
    q5 = float(np.arctan2(-x5_in_4[2], x5_in_4[0])) + PI / 2
    frame5 = frame4 @ rot_x(-PI / 2) @ rot_z(q5 - PI / 2)
    x6_in_5 = frame5.T @ x6
    q6 = float(np.arctan2(-x6_in_5[2], x6_in_5[0])) + PI / 2
    return np.array([q1, q2, q3, q4, wrap_angle(q5), wrap_angle(q6)])


def ecm_ik(tip_position: np.ndarray, roll: float) -> np.ndarray:
    """ECM joints that put the camera at ``tip_position`` (RCM frame) with tool roll ``roll``."""
    distance = float(np.linalg.norm(tip_position))
    q1, q2 = shaft_angles(tip_position / distance)
    return np.array([q1, q2, distance - ECM_TIP_OFFSET, roll])


def wrap_angle(angle: float) -> float:
    return float((angle + PI) % (2 * PI) - PI)
