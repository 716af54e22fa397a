"""The operating scene shared by every task: a tissue bed, a PSM (or two) and the endoscope (ECM)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from surgisim.envs.appearance import Light, colour_and_gain, texture_file
from surgisim.envs.camera import CAMERA_FOV_DEG, Camera, SegLabel, turned_towards
from surgisim.envs.kinematics import shaft_angles
from surgisim.envs.robots import ECM, PSM, Arm
from surgisim.envs.sim import Sim
from surgisim.envs.tools import Tool, default_tool
from surgisim.envs.transforms import look_at_base
from surgisim.envs.urdf_builder import TISSUE_HALF_SIZE

TISSUE = "tissue"  # the tissue bed's body
TISSUE_HALF_EXTENTS = np.array([TISSUE_HALF_SIZE, TISSUE_HALF_SIZE, 0.005])  # a tissue bed whose top face is z = 0
PSM_RCM = np.array([-0.07, 0.05, 0.10])  # where the instrument passes the body wall
PSM_AIM = np.array([0.0, 0.0, 0.02])
PSM2_RCM = np.array([0.07, 0.05, 0.10])  # the second instrument, mirrored (the surgeon's left hand)
ECM_RCM = np.array([0.0, 0.07, 0.16])
ECM_AIM = np.array([0.0, -0.01, 0.0])
ECM_HOME_DISTANCE = 0.13  # camera to the aim point
ArmType = TypeVar("ArmType", bound=Arm)


@dataclass
class Look:
    """How the scene looks in one episode: the tissue texture's number, a colour gain (RGB) on
    tissue, organs and vessels, the light, the camera's field of view and the camera's pose on the
    endoscope's tip (4x4; an unmodelled mount)."""

    tissue_texture: int = 0
    tint: np.ndarray = field(default_factory=lambda: np.ones(3))
    light: Light = field(default_factory=Light)
    fov_deg: float = CAMERA_FOV_DEG
    camera_jitter: np.ndarray = field(default_factory=lambda: np.eye(4))


class Scene:
    """Builds the bodies once; tasks add theirs in ``Task.build`` and move them on reset."""

    def __init__(self, renderer: str = "tiny", tool: Tool | None = None) -> None:
        self.sim = Sim(renderer)
        self.tool = tool or default_tool()  # every PSM's instrument
        self.camera = Camera(self.sim)
        surface = {"fileName": "tissue.obj", "visualFramePosition": [0.0, 0.0, TISSUE_HALF_EXTENTS[2]]}
        tissue = self.sim.create_body(
            TISSUE, visual=("mesh", surface), collision=("box", {"halfExtents": TISSUE_HALF_EXTENTS.tolist()})
        )
        self.look = Look()
        self.textured: dict[str, tuple[str, tuple[float, ...]]] = {}  # body -> (texture kind, colour)
        self.add_textured("tissue", "tissue", (1.0, 1.0, 1.0, 1.0))
        self.sim.set_base_pose("tissue", np.array([0.0, 0.0, -TISSUE_HALF_EXTENTS[2]]), np.array([0, 0, 0, 1.0]))
        self.camera.set_label(tissue, SegLabel.TISSUE)
        self.arms: dict[str, Arm] = {}
        self.psm = self.add_arm(PSM, "psm1", look_at_base(PSM_RCM, PSM_AIM), SegLabel.INSTRUMENT, tool=self.tool)
        self.ecm = self.add_arm(ECM, "ecm", look_at_base(ECM_RCM, ECM_AIM), SegLabel.ENDOSCOPE)
        direction = (ECM_AIM - ECM_RCM) / np.linalg.norm(ECM_AIM - ECM_RCM)
        self.ecm.move_tip(ECM_AIM - ECM_HOME_DISTANCE * direction, np.zeros(3))
        self.ecm.home = self.ecm.q.copy()

    def add_textured(self, name: str, kind: str, rgba: tuple[float, ...]) -> None:
        """Give body ``name`` the scene's texture of ``kind`` (``appearance.KINDS``) tinted by ``rgba``;
        ``set_look`` changes them all."""
        self.textured[name] = (kind, rgba)
        self._apply_texture(name)

    def _apply_texture(self, name: str) -> None:
        kind, rgba = self.textured[name]
        seed = self.look.tissue_texture if kind == "tissue" else 0
        colour, gain = colour_and_gain(np.asarray(rgba) * np.append(self.look.tint, 1.0))
        self.sim.set_look(name, texture_file(kind, seed, gain), tuple(colour))

    def set_look(self, look: Look) -> None:
        """Change how the scene looks (textures, colours, light, the camera's optics)."""
        self.look = look
        for name in self.textured:
            self._apply_texture(name)
        self.camera.set_fov(look.fov_deg)

    def add_arm(self, kind: type[ArmType], name: str, base: np.ndarray, label: SegLabel, **options: Any) -> ArmType:
        """Add an arm of ``kind`` (made with ``options``) with its RCM frame at ``base``; a PSM's home
        has its tip 3 cm above the tissue centre, wrist straight. Tasks call it from ``build``."""
        arm = kind(self.sim, name, base, **options)
        self.camera.set_label(arm.body, label)
        self.arms[name] = arm
        if isinstance(arm, PSM):
            arm.home = self.psm_home(np.array([0.0, 0.0, 0.03]), arm)
        return arm

    def add_second_psm(self) -> PSM:
        """Add PSM2 (for two-handed tasks); call once, from a task's ``build``."""
        return self.add_arm(PSM, "psm2", look_at_base(PSM2_RCM, PSM_AIM), SegLabel.INSTRUMENT_PSM2, tool=self.tool)

    def psms(self) -> list[PSM]:
        return [arm for arm in self.arms.values() if isinstance(arm, PSM)]

    def psm_home(self, tip: np.ndarray, psm: PSM | None = None) -> np.ndarray:
        """Joints of ``psm`` (PSM1 by default) with the tip at ``tip`` and the wrist straight."""
        psm = psm or self.psm
        direction = tip - psm.rcm()
        local = psm.base_inv[:3, :3] @ direction
        q1, q2 = shaft_angles(local / np.linalg.norm(local))
        return np.array([q1, q2, np.linalg.norm(direction) - psm.tool.straight_tip_offset, 0.0, 0.0, 0.0])

    def step_physics(self, substeps: int) -> None:
        """Advance free bodies (e.g. a dropped needle) and hold the kinematic arms at their set-points."""
        for _ in range(substeps):
            self.sim.step()
        for arm in self.arms.values():
            arm.set_joints(arm.q)

    def camera_pose(self) -> np.ndarray:
        """Where the endoscope's camera really is: the ECM's tip, moved by ``look.camera_jitter``
        (a mount the model does not know of). Images and the task's camera frame follow it."""
        return self.ecm.tip_pose() @ self.look.camera_jitter

    def render(self, size: int, depth: bool = False, seg: bool = False) -> dict[str, np.ndarray]:
        """The endoscope's view, lit by ``look.light``."""
        return self.camera.render(self.camera_pose(), size, depth, seg, self.look.light)

    def render_magnified(self, size: int, direction: np.ndarray, zoom: float) -> np.ndarray:
        """The endoscope's RGB view turned towards ``direction`` (the camera's frame) and magnified
        ``zoom`` times (``camera.magnified`` cuts the same view from a finer image)."""
        pose = self.camera_pose()
        pose[:3, :3] = pose[:3, :3] @ turned_towards(direction)
        return self.camera.render(pose, size, False, False, self.look.light, zoom=zoom)["rgb"]

    def close(self) -> None:
        self.sim.close()


class Endoscope:
    """What the endoscope sees, for the tools above the env (surgeon replays, the ROS 2 bridge)."""

    def __init__(self, scene: Scene) -> None:
        self._scene = scene

    def pose(self) -> np.ndarray:
        """The camera's world pose (4x4; it looks along its z axis)."""
        return self._scene.camera_pose()

    def intrinsics(self, size: int) -> np.ndarray:
        """The pinhole matrix of a ``size`` x ``size`` image (OpenCV's convention)."""
        return self._scene.camera.intrinsics(size)

    @property
    def fov_deg(self) -> float:
        return self._scene.camera.fov_deg

    def sees(self, point: np.ndarray) -> bool:
        """Whether a world point lies in the image, in front of the lens."""
        camera = self._scene.camera
        pixel, depth = camera.project(self.pose(), point, 100)
        return depth > camera.near and bool(np.all((pixel >= 0) & (pixel <= 99)))

    def image(self, size: int) -> np.ndarray:
        """An RGB image (size, size, 3) of the scene as it is."""
        return self._scene.render(size)["rgb"]
