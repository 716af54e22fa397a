"""The endoscope camera: pinhole model on the ECM tip, depth encoding and segmentation labels.

Camera frame (OpenCV convention): x to the image right, y down, z along the viewing direction.
It is the ECM's ``camera_link`` frame, so the image follows the endoscope as it moves and rolls.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from surgisim.envs.appearance import Light, pinhole_matrix
from surgisim.envs.sim import Sim
from surgisim.envs.transforms import rotation_from_vector


class SegLabel(IntEnum):
    """Labels in the ``"seg"`` image (uint8). Values 10-255 are free for future object classes."""

    BACKGROUND = 0
    TISSUE = 1
    INSTRUMENT = 2  # PSM1's shaft, wrist and jaws (the only instrument of one-handed tasks)
    TARGET = 3  # goal markers and lesions
    ANATOMY = 4  # vessels and organs to avoid
    NEEDLE = 5
    THREAD = 6
    ENDOSCOPE = 7
    INSTRUMENT_PSM2 = 8  # PSM2's shaft, wrist and jaws
    DAMAGE = 9  # punctures and drag marks on the tissue


CAMERA_NEAR = 0.01  # metres; the depth image spans [CAMERA_NEAR, CAMERA_FAR]
CAMERA_FAR = 0.30
CAMERA_FOV_DEG = 70.0  # vertical field of view, typical of a laparoscope


def depth_to_metres(depth: np.ndarray, near: float = CAMERA_NEAR, far: float = CAMERA_FAR) -> np.ndarray:
    """Convert the uint8 ``"depth"`` image back to metric depth along the optical axis.

    0 maps to ``near`` and 255 to ``far`` (linearly), so one step is (far - near) / 255 ≈ 1.1 mm.
    Anything beyond ``far`` reads as ``far``.
    """
    return near + depth.astype(np.float32) / 255.0 * (far - near)


def encode_depth(depth_buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Linearise OpenGL's depth buffer and scale it to uint8 over [near, far]."""
    metres = far * near / (far - (far - near) * depth_buffer)
    scaled = np.rint((metres - near) / (far - near) * 255.0)
    return np.clip(scaled, 0, 255).astype(np.uint8)


@dataclass
class Camera:
    """Renders the view from a camera pose (4x4, world frame, OpenCV axes)."""

    sim: Sim
    fov_deg: float = CAMERA_FOV_DEG
    near: float = CAMERA_NEAR
    far: float = CAMERA_FAR

    def __post_init__(self) -> None:
        self.set_fov(self.fov_deg)
        self.labels = np.zeros(1, dtype=np.uint8)  # body id + 1 -> label

    def set_fov(self, fov_deg: float) -> None:
        """The vertical field of view (degrees) of the images and of ``intrinsics``."""
        self.fov_deg = float(fov_deg)
        self.projection = self.sim.projection_matrix(self.fov_deg, self.near, self.far)

    def set_label(self, body: int, label: SegLabel) -> None:
        if body + 1 >= len(self.labels):
            self.labels = np.pad(self.labels, (0, body + 2 - len(self.labels)))
        self.labels[body + 1] = label

    def render(self, pose: np.ndarray, size: int, depth: bool, seg: bool, light: Light | None = None,
               zoom: float = 1.0) -> dict[str, np.ndarray]:  # fmt: skip
        """``{"rgb": (H, W, 3)}`` plus ``"depth"`` and ``"seg"`` (H, W, 1) when asked, all uint8;
        ``zoom``: with the field of view narrowed that many times (``magnified_fov``)."""
        eye = pose[:3, 3]
        forward, down = pose[:3, 2], pose[:3, 1]
        view = self.sim.view_matrix(eye, eye + forward, -down)
        projection = self.projection if zoom == 1.0 else self.sim.projection_matrix(
            magnified_fov(self.fov_deg, zoom), self.near, self.far)  # fmt: skip
        rgb, depth_buffer, seg_ids = self.sim.render(view, projection, size, size, seg, light)
        images = {"rgb": rgb}
        if depth:
            images["depth"] = encode_depth(depth_buffer, self.near, self.far)[..., None]
        if seg:
            # Background pixels carry id -1; ids past the table (created later) read as background.
            index = np.clip(seg_ids + 1, 0, len(self.labels) - 1)
            images["seg"] = np.where(seg_ids + 1 < len(self.labels), self.labels[index], 0)[..., None].astype(np.uint8)
        return images

    def intrinsics(self, size: int) -> np.ndarray:
        """The 3x3 pinhole matrix of a ``size`` x ``size`` image, in OpenCV's (and ROS
        ``camera_info``'s) convention: pixel (column c, row r) centred at (c, r). TinyRenderer
        samples that pixel at the point (c, size - 1 - r) of OpenGL's bottom-up image, so the
        optical axis meets the image at column size/2, row size/2 - 1 (``tests/test_envs.py``
        checks it against the renderer's own segmentation)."""
        return pinhole_matrix(size, self.fov_deg)

    def project(self, pose: np.ndarray, point_world: np.ndarray, size: int) -> tuple[np.ndarray, float]:
        """Pixel (column, row) of a world point and its depth along the optical axis."""
        point = pose[:3, :3].T @ (point_world - pose[:3, 3])
        pixel = self.intrinsics(size) @ (point / point[2])
        return pixel[:2], float(point[2])


def magnified_fov(fov_deg: float, zoom: float) -> float:
    """The field of view (degrees) of a camera's image magnified ``zoom`` times about its centre."""
    return float(np.rad2deg(2 * np.arctan(np.tan(np.deg2rad(fov_deg) / 2) / zoom)))


def turned_towards(direction: np.ndarray) -> np.ndarray:
    """The rotation (3x3, columns: the turned camera's axes in the camera's frame) that brings the
    optical axis onto ``direction`` by the shortest turn."""
    axis_z = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    axis = np.cross([0.0, 0.0, 1.0], axis_z)
    sine = float(np.linalg.norm(axis))
    if sine < 1e-12:
        return np.eye(3)
    return rotation_from_vector(axis / sine * np.arctan2(sine, axis_z[2]))


def magnified(image: np.ndarray, intrinsics: np.ndarray, direction: np.ndarray, zoom: float, size: int,
              fov_deg: float) -> np.ndarray:  # fmt: skip
    """The ``size`` x ``size`` view of a camera turned towards ``direction`` (its frame) with a
    ``zoom`` times narrower field of view, resampled from ``image`` (a pinhole image of
    ``intrinsics`` and vertical field of view ``fov_deg``): on a robot, what the env renders for
    ``tip_rgb``, cut from a finer camera image (best ``zoom`` times ``size`` wide: one of its
    pixels to one of the view's)."""
    turned = pinhole_matrix(size, magnified_fov(fov_deg, zoom))
    # A pixel of the turned view is the ray K_t^-1 p in its frame, R K_t^-1 p in the camera's.
    homography = np.asarray(intrinsics, dtype=np.float64) @ turned_towards(direction) @ np.linalg.inv(turned)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpPerspective(np.ascontiguousarray(image), homography, (size, size), flags=flags,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
