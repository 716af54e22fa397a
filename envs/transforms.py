"""Small rigid-transform helpers shared by the arms, cameras and tasks (numpy only)."""

from __future__ import annotations

import numpy as np


def make_pose(rotation: np.ndarray, position: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = position
    return pose


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion in PyBullet's (x, y, z, w) order."""
    x, y, z, w = quat
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix (Shepperd's method, stable everywhere)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        quat = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        quat = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        quat = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        quat = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    quat = np.asarray(quat)
    return quat / np.linalg.norm(quat)


def matrix_to_rpy(rotation: np.ndarray) -> np.ndarray:
    """URDF roll-pitch-yaw (R = Rz(yaw) Ry(pitch) Rx(roll)), with roll = 0 at gimbal lock."""
    m = rotation
    pitch = np.arctan2(-m[2, 0], np.hypot(m[0, 0], m[1, 0]))
    if np.hypot(m[0, 0], m[1, 0]) < 1e-9:
        return np.array([0.0, pitch, np.arctan2(-m[0, 1], m[1, 1])])
    return np.array([np.arctan2(m[2, 1], m[2, 2]), pitch, np.arctan2(m[1, 0], m[0, 0])])


def rot6d(rotation: np.ndarray) -> np.ndarray:
    """Continuous 6-D rotation representation: the first two columns of the matrix."""
    return rotation[:, :2].T.reshape(6)


def look_at_base(rcm: np.ndarray, aim: np.ndarray) -> np.ndarray:
    """Pose of a dVRK RCM frame at ``rcm`` whose zero-joint shaft (-z) points at ``aim``.

    The outer-yaw axis (-y of the RCM frame) is kept as close to world up as possible.
    """
    shaft = aim - rcm
    shaft = shaft / np.linalg.norm(shaft)
    up = np.array([0.0, 0.0, 1.0])
    y_axis = -(up - np.dot(up, shaft) * shaft)
    y_axis /= np.linalg.norm(y_axis)
    z_axis = -shaft
    x_axis = np.cross(y_axis, z_axis)
    return make_pose(np.column_stack([x_axis, y_axis, z_axis]), rcm)


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis times angle (radians) of a rotation matrix (the matrix logarithm)."""
    angle = np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))
    skew = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    if angle < 1e-9:
        return skew / 2.0
    if np.pi - angle < 1e-6:  # half turn: the axis is the column of R + I with the largest norm
        columns = rotation + np.eye(3)
        axis = columns[:, np.argmax(np.linalg.norm(columns, axis=0))]
        return angle * axis / np.linalg.norm(axis)
    return angle * skew / (2.0 * np.sin(angle))


def rotation_from_vector(vector: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-times-angle vector (Rodrigues' formula)."""
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = np.asarray(vector) / angle
    skew = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def scale_motion(motion: np.ndarray, fraction: float) -> np.ndarray:
    """The rigid motion ``fraction`` of the way along ``motion`` (4x4) from the identity."""
    return make_pose(rotation_from_vector(fraction * rotation_vector(motion[:3, :3])), fraction * motion[:3, 3])
