"""One PyBullet physics client per environment, with bodies looked up by name.

Nothing here calls module-level ``pybullet.*`` functions that act on a shared connection, so any
number of environments can live in one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from surgisim.envs.appearance import Light

RENDERERS = ("tiny", "egl")


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[list[str]]:
    """Send C-level prints to stderr, so that stdout stays clean (e.g. for ``--json`` output).
    They go through a file, so the yielded list holds their text once the block has ended."""
    sys.stdout.flush()
    saved, printed = os.dup(1), []
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            yield printed
        finally:
            # C stdio buffers output to a file: flush it while it still goes there.
            ctypes.CDLL(None).fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            printed.append(sink.read().decode(errors="replace"))
            sys.stderr.write(printed[0])


# OpenGL drivers that draw on the CPU (Mesa's), as the EGL plugin names them.
SOFTWARE_GL = re.compile(r"llvmpipe|softpipe|swrast|lavapipe|software", re.IGNORECASE)


def software_gl(plugin_output: str) -> str | None:
    """The renderer the EGL plugin reported (its ``Renderer = ...`` line) if it is software GL."""
    found = re.search(r"Renderer\s*=\s*(.+)", plugin_output)
    return found.group(1).strip() if found and SOFTWARE_GL.search(found.group(1)) else None


def asset_path(name: str) -> str:
    """Absolute path of a file in the installed ``surgisim.assets`` package."""
    return str(Path(str(files("surgisim.assets"))) / name)


class Sim:
    """A PyBullet world in DIRECT mode: loading, posing, contact queries and rendering."""

    def __init__(self, renderer: str = "tiny") -> None:
        with _stdout_to_stderr():  # PyBullet prints "argv[0]=" on connecting
            self.client = BulletClient(connection_mode=pybullet.DIRECT)
        self.client.setGravity(0.0, 0.0, -9.81)
        self.bodies: dict[str, int] = {}
        self.textures: dict[str, int] = {}  # file -> PyBullet texture id, loaded once
        self.renderer = self._select_renderer(renderer)

    def _select_renderer(self, renderer: str) -> str:
        if renderer == "tiny":
            return "tiny"
        spec = importlib.util.find_spec("eglRenderer")  # the plugin ships as a module in the pybullet wheel
        egl_plugin = spec.origin if spec else None
        if egl_plugin:
            with _stdout_to_stderr() as printed:  # the plugin reports its GL driver on stdout
                loaded = self.client.loadPlugin(egl_plugin, "_eglRendererPlugin") >= 0
            if loaded:
                driver = software_gl(printed[0])
                if driver:
                    warnings.warn(f"renderer='egl' found no GPU: OpenGL runs in software here ({driver}), 4-6x "
                                  "slower than the default TinyRenderer at 84x84 (measured on a 2-core CPU); "
                                  "use renderer='tiny' unless there is a GPU", stacklevel=3)  # fmt: skip
                return "egl"
        warnings.warn("EGL rendering is not available here; falling back to TinyRenderer.", stacklevel=3)
        return "tiny"

    def load_urdf(self, name: str, filename: str, position: np.ndarray, orientation: np.ndarray) -> int:
        body = self.client.loadURDF(
            asset_path(filename),
            basePosition=position.tolist(),
            baseOrientation=orientation.tolist(),
            useFixedBase=True,
        )
        self.bodies[name] = body
        return body

    def create_body(
        self,
        name: str,
        visual: tuple[str, dict] | None,
        collision: tuple[str, dict] | None,
        rgba: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    ) -> int:
        """A single-link body from primitive shapes, e.g. ``visual=("box", {"halfExtents": ...})``.

        Shape kinds are ``box``, ``sphere``, ``cylinder`` and ``mesh`` (a file in ``assets/meshes``).
        """
        visual_id = self._shape(self.client.createVisualShape, visual, rgba) if visual else -1
        collision_id = self._shape(self.client.createCollisionShape, collision, None) if collision else -1
        body = self.client.createMultiBody(
            baseMass=0.0, baseCollisionShapeIndex=collision_id, baseVisualShapeIndex=visual_id
        )
        self.bodies[name] = body
        return body

    def _shape(self, create, spec: tuple[str, dict], rgba: tuple[float, ...] | None) -> int:
        kind, params = spec
        shape_types = {
            "box": pybullet.GEOM_BOX,
            "sphere": pybullet.GEOM_SPHERE,
            "cylinder": pybullet.GEOM_CYLINDER,
            "mesh": pybullet.GEOM_MESH,
        }
        params = dict(params)
        if kind == "mesh":
            params["fileName"] = asset_path(f"meshes/{params['fileName']}")
        if rgba is not None:
            params["rgbaColor"] = list(rgba)
        return create(shape_types[kind], **params)

    def create_compound_body(
        self,
        name: str,
        half_extents: list[list[float]],
        positions: np.ndarray,
        orientations: list[np.ndarray],
        rgba: tuple[float, float, float, float],
        mass: float,
        friction: tuple[float, float, float],
    ) -> int:
        """A free rigid body made of boxes (their half extents, positions and (x, y, z, w)
        orientations in the body frame), with its mass (kg) and lateral, rolling and spinning
        friction."""
        count = len(half_extents)
        frames = {"halfExtents": half_extents}
        visual = self.client.createVisualShapeArray(
            shapeTypes=[pybullet.GEOM_BOX] * count, visualFramePositions=positions.tolist(),
            visualFrameOrientations=[q.tolist() for q in orientations], rgbaColors=[list(rgba)] * count, **frames,
        )  # fmt: skip
        collision = self.client.createCollisionShapeArray(
            shapeTypes=[pybullet.GEOM_BOX] * count, collisionFramePositions=positions.tolist(),
            collisionFrameOrientations=[q.tolist() for q in orientations], **frames,
        )  # fmt: skip
        body = self.client.createMultiBody(baseMass=mass, baseCollisionShapeIndex=collision,
                                           baseVisualShapeIndex=visual)  # fmt: skip
        lateral, rolling, spinning = friction
        self.client.changeDynamics(body, -1, lateralFriction=lateral, rollingFriction=rolling,
                                   spinningFriction=spinning)  # fmt: skip
        self.bodies[name] = body
        return body

    def set_look(self, name: str, texture: str | None = None, rgba: tuple[float, ...] | None = None,
                 link: int = -1) -> None:  # fmt: skip
        """Put the image file ``texture`` on a body's link (it multiplies the colour) and/or set its colour."""
        options: dict = {}
        if texture is not None:
            if texture not in self.textures:
                self.textures[texture] = self.client.loadTexture(texture)
            options["textureUniqueId"] = self.textures[texture]
        if rgba is not None:
            options["rgbaColor"] = list(rgba)
        self.client.changeVisualShape(self.bodies[name], link, **options)

    def set_collisions(self, name: str, enabled: bool) -> None:
        """Take a body (all its links) out of physics contacts, or put it back; contact queries
        such as ``in_contact`` still see it."""
        body = self.bodies[name]
        group, mask = (1, -1) if enabled else (0, 0)
        for link in range(-1, self.client.getNumJoints(body)):
            self.client.setCollisionFilterGroupMask(body, link, group, mask)

    def detect_collisions(self) -> None:
        """Run collision detection once, without stepping."""
        self.client.performCollisionDetection()

    def step(self) -> None:
        """One physics step (1/240 s)."""
        self.client.stepSimulation()

    def set_base_velocity(self, name: str, linear: np.ndarray, angular: np.ndarray) -> None:
        self.client.resetBaseVelocity(self.bodies[name], list(map(float, linear)), list(map(float, angular)))

    def base_velocity(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Linear (m/s) and angular (rad/s) velocity of a body."""
        linear, angular = self.client.getBaseVelocity(self.bodies[name])
        return np.array(linear), np.array(angular)

    def set_base_pose(self, name: str, position: np.ndarray, orientation: np.ndarray) -> None:
        self.client.resetBasePositionAndOrientation(self.bodies[name], position.tolist(), orientation.tolist())

    def base_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        position, orientation = self.client.getBasePositionAndOrientation(self.bodies[name])
        return np.array(position), np.array(orientation)

    def joint_indices(self, name: str) -> dict[str, int]:
        body = self.bodies[name]
        return {self.client.getJointInfo(body, i)[1].decode(): i for i in range(self.client.getNumJoints(body))}

    def link_indices(self, name: str) -> dict[str, int]:
        body = self.bodies[name]
        return {self.client.getJointInfo(body, i)[12].decode(): i for i in range(self.client.getNumJoints(body))}

    def set_joint_positions(self, name: str, indices: list[int], values: np.ndarray) -> None:
        body = self.bodies[name]
        for index, value in zip(indices, values, strict=True):
            self.client.resetJointState(body, index, float(value))

    def joint_positions(self, name: str, indices: list[int]) -> np.ndarray:
        return np.array([state[0] for state in self.client.getJointStates(self.bodies[name], indices)])

    def link_pose(self, name: str, link: int) -> tuple[np.ndarray, np.ndarray]:
        """World position and (x, y, z, w) orientation of a link's URDF frame."""
        state = self.client.getLinkState(self.bodies[name], link, computeForwardKinematics=True)
        return np.array(state[4]), np.array(state[5])

    def in_contact(self, name_a: str, name_b: str, margin: float = 0.0) -> bool:
        """Whether two bodies touch (or come within ``margin`` metres)."""
        points = self.client.getClosestPoints(self.bodies[name_a], self.bodies[name_b], margin)
        return len(points) > 0

    def closest_points(self, name_a: str, name_b: str, margin: float) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Where two bodies come within ``margin`` metres: (distance, negative when they
        interpenetrate; the point on ``b``; ``b``'s surface normal there, pointing towards ``a``)."""
        points = self.client.getClosestPoints(self.bodies[name_a], self.bodies[name_b], margin)
        return [(float(p[8]), np.array(p[6]), np.array(p[7])) for p in points]

    @staticmethod
    def projection_matrix(fov_deg: float, near: float, far: float) -> list[float]:
        """OpenGL projection of a square image with a vertical field of view (degrees)."""
        return list(pybullet.computeProjectionMatrixFOV(fov_deg, 1.0, near, far))

    @staticmethod
    def view_matrix(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> list[float]:
        """OpenGL view of a camera at ``eye`` looking at ``target``."""
        return list(pybullet.computeViewMatrix(eye.tolist(), target.tolist(), up.tolist()))

    def render(
        self, view: list[float], projection: list[float], width: int, height: int, segmentation: bool,
        light: Light | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
        """RGB (uint8, H x W x 3), the raw depth buffer (float, H x W) and body-id segmentation."""
        flags = 0 if segmentation else pybullet.ER_NO_SEGMENTATION_MASK
        renderer = pybullet.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else pybullet.ER_TINY_RENDERER
        light = light or Light()
        _, _, rgba, depth, seg = self.client.getCameraImage(
            width, height, view, projection, shadow=0, flags=flags, renderer=renderer,
            lightDirection=list(light.direction), lightColor=list(light.color), lightAmbientCoeff=light.ambient,
            lightDiffuseCoeff=light.diffuse, lightSpecularCoeff=light.specular,
        )  # fmt: skip
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]
        depth = np.asarray(depth, dtype=np.float32).reshape(height, width)
        seg_ids = np.asarray(seg, dtype=np.int32).reshape(height, width) if segmentation else None
        return rgb, depth, seg_ids

    @property
    def closed(self) -> bool:
        return self.client is None

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None
