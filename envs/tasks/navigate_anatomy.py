"""NavigateAnatomy: reach a target among vessels and organs without touching them."""

from __future__ import annotations

from typing import Any

import numpy as np

from surgisim.envs.camera import SegLabel
from surgisim.envs.kinematics import rot_z
from surgisim.envs.scene import Scene
from surgisim.envs.tasks.base import Expert
from surgisim.envs.tasks.inputs import Goal, Layout
from surgisim.envs.tasks.needle_reach import NeedleReach
from surgisim.envs.transforms import matrix_to_quat

VESSEL_RADII = (0.004, 0.0035, 0.003)
VESSEL_LENGTH = 0.09
VESSEL_RGBA = ((0.55, 0.05, 0.08, 1.0), (0.2, 0.2, 0.6, 1.0), (0.6, 0.1, 0.1, 1.0))
ORGAN_HALF_AXES = ((0.018, 0.012, 0.014), (0.014, 0.012, 0.008))
ORGAN_RGBA = ((0.55, 0.3, 0.2, 1.0), (0.75, 0.65, 0.3, 1.0))
CLEARANCE = 0.003  # planned paths keep this far (m) from anatomy
SAFE_RADIUS = 0.04  # with the tip this close to the RCM, the instrument is above all anatomy
BLOCKER = 3  # index of the largest organ in the anatomy list
CONTACT_TOLERANCE = 0.0005  # m: how far into anatomy a stopped instrument may rest
ANATOMY_STIFFNESS = 300.0  # N/m: a soft organ's resistance to indentation, for the reported force


class NavigateAnatomy(NeedleReach):
    """Reach a target among anatomy without touching it; contact is a failure with a safety cost.

    ## Description
    Three vessels (cylinders, 6-8 mm thick, 9 cm long) and two organs (ellipsoids up to 3.6 x
    2.4 x 2.8 cm) lie on the tissue at seeded random positions and headings. The tip starts 2-3.5
    cm above the tissue (wrist straight) and the target (green sphere) 0.5-2 cm above it, at
    least 4.5 cm apart, with the larger organ across the straight path between them. The
    target is placed so that the instrument can reach it without contact along a path that
    first retracts towards the RCM, swings above the anatomy and then inserts. Contact of any
    part of the instrument with anatomy costs 1 per step (``info["cost"]``) and makes the
    episode a failure (``is_success`` stays False). Anatomy is solid: a motion that would take
    the instrument into it stops where the instrument meets its surface (within 0.5 mm), and
    ``info`` reports how deep the commanded motion would have gone (``contact_depth_mm``) and the
    force an organ of 300 N/m stiffness would push back with (``contact_force_n``).

    ## Action space
    PSM actions (see ``SurgicalEnv``). Workspace: x, y in [-8, 8] cm, z in [0.3, 9] cm.

    ## Observation space
    | key | size | content |
    |---|---|---|
    | observation | 10 + 35 | PSM state, then per anatomy item (5) its position (3) and 4 shape numbers |
    | achieved_goal | 3 | tip position (m) |
    | desired_goal | 3 | target position (m) |

    What a robot has (``obs_mode="robot"``): the endoscope image (``rgb``), the PSM's reported
    tip and jaw (``state``, 10) and the goal (``goal``, 3); the organs and vessels only in the
    image.

    ## Rewards
    As NeedleReach, minus 10 per step in contact with anatomy (``cost_weight``). Heavier than a
    step's delay: with a weight of 1, SAC learnt to cut through the organ, a few contact steps
    being cheaper than the detour.

    ## Episode end
    Terminates on reaching the target; truncated after 100 steps.

    ## Version history
    v0: first release. Since 2026-11-29 anatomy stops the instrument (before, contact was only
    counted) and the scene is textured; the shipped policy scores the same (0.95, contact 0.05).
    """

    max_episode_steps = 100
    robot_inputs = (Goal, Layout)
    layout_keys = ("anatomy_poses",)
    cost_weight = 10.0
    workspace = ((-0.08, -0.08, 0.003), (0.08, 0.08, 0.09))
    goal_box = (np.array([-0.04, -0.04, 0.005]), np.array([0.04, 0.04, 0.02]))
    start_box = (np.array([-0.04, -0.04, 0.02]), np.array([0.04, 0.04, 0.035]))

    def build(self, scene: Scene) -> None:
        super().build(scene)
        self.anatomy: list[str] = []
        self.shape_features: list[np.ndarray] = []
        for i, (radius, rgba) in enumerate(zip(VESSEL_RADII, VESSEL_RGBA, strict=True)):
            name = f"vessel{i}"
            scene.sim.create_body(
                name,
                visual=("mesh", {"fileName": "prism8.obj", "meshScale": [radius, radius, VESSEL_LENGTH]}),
                collision=("cylinder", {"radius": radius, "height": VESSEL_LENGTH}),
            )
            scene.add_textured(name, "vessel", rgba)
            self.anatomy.append(name)
            self.shape_features.append(np.array([radius, radius, VESSEL_LENGTH / 2, 0.0]))
        for i, (axes, rgba) in enumerate(zip(ORGAN_HALF_AXES, ORGAN_RGBA, strict=True)):
            name = f"organ{i}"
            mesh = {"fileName": "icosphere.obj", "meshScale": list(axes)}
            scene.sim.create_body(name, visual=("mesh", mesh), collision=("mesh", mesh))
            scene.add_textured(name, "organ", rgba)
            self.anatomy.append(name)
            self.shape_features.append(np.array([*axes, 1.0]))
        for name in self.anatomy:
            scene.camera.set_label(scene.sim.bodies[name], SegLabel.ANATOMY)
        self.anatomy_poses = np.zeros((len(self.anatomy), 4))  # x, y, z, heading
        self.touching = False
        self.contact_depth = 0.0  # m, how far the last commanded motion went into anatomy
        self.free_joints = scene.psm.q.copy()  # the PSM's last joints outside anatomy

    def reset(self, scene: Scene, rng: np.random.Generator) -> None:
        # Rejection sampling: the largest organ sits between start and target, across the straight
        # path, so going straight collides; the approach from above must stay clear.
        while True:
            start_tip, goal = rng.uniform(*self.start_box), rng.uniform(*self.goal_box)
            xy = rng.uniform(-0.05, 0.05, (len(self.anatomy), 2))
            headings = rng.uniform(0, np.pi, len(self.anatomy))
            path = goal[:2] - start_tip[:2]
            xy[BLOCKER] = (start_tip[:2] + goal[:2]) / 2 + rng.uniform(-0.005, 0.005, 2)
            headings[BLOCKER] = np.arctan2(path[1], path[0]) + np.pi / 2
            if np.linalg.norm(path) < 0.045:
                continue
            self._place_anatomy(scene, xy, headings)
            start = scene.psm_home(start_tip)
            scene.psm.set_joints(start)
            clear = self._clear(scene) and self._path_clear(scene, goal)
            scene.psm.set_joints(start)
            if clear:
                self.target.place(goal)
                self.touching, self.contact_depth, self.free_joints = False, 0.0, start.copy()
                return

    def _place_anatomy(self, scene: Scene, xy: np.ndarray, headings: np.ndarray) -> None:
        for i in range(len(self.anatomy)):
            is_organ = self.shape_features[i][3] > 0
            height = self.shape_features[i][2] if is_organ else self.shape_features[i][0]
            self.anatomy_poses[i] = [xy[i, 0], xy[i, 1], height, headings[i]]
        self._apply_anatomy_poses(scene)

    def _apply_anatomy_poses(self, scene: Scene) -> None:
        for i, name in enumerate(self.anatomy):
            x, y, z, heading = self.anatomy_poses[i]
            yaw = rot_z(heading)
            lie_down = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # cylinder axis along x
            rotation = yaw if self.shape_features[i][3] > 0 else yaw @ lie_down
            scene.sim.set_base_pose(name, np.array([x, y, z]), matrix_to_quat(rotation))

    def _clear(self, scene: Scene, margin: float = CLEARANCE) -> bool:
        return not any(scene.sim.in_contact(scene.psm.name, name, margin) for name in self.anatomy)

    def _path_clear(self, scene: Scene, goal: np.ndarray) -> bool:
        """Whether the instrument, keeping its start orientation, clears anatomy along the final
        insertion from ``SAFE_RADIUS`` to ``goal`` (the approach the scripted expert uses)."""
        rcm = scene.psm.rcm()
        direction = (goal - rcm) / np.linalg.norm(goal - rcm)
        pose = scene.psm.tip_pose()
        for radius in np.linspace(np.linalg.norm(goal - rcm), SAFE_RADIUS, 8):
            pose[:3, 3] = rcm + radius * direction
            scene.psm.set_joints(scene.psm.ik(pose))
            if not np.allclose(scene.psm.tip_pose()[:3, 3], pose[:3, 3], atol=1e-4) or not self._clear(scene):
                return False
        return True

    def obstacles(self) -> list[str]:
        return list(self.anatomy)

    def observation(self, scene: Scene) -> np.ndarray:
        pairs = zip(self.anatomy_poses, self.shape_features, strict=True)
        return np.concatenate([np.concatenate([pose[:3], shape]) for pose, shape in pairs])

    def _depth(self, scene: Scene) -> float:
        """How far (m) the instrument is inside the anatomy (0 when it is not)."""
        points = [point for name in self.anatomy for point in scene.sim.closest_points(scene.psm.name, name, 0.0)]
        return max((-distance for distance, _, _ in points), default=0.0)

    def step_world(self, scene: Scene) -> None:
        """Stop the instrument at the anatomy's surface: of the motion from the last joints that
        were outside it, keep the largest part (by bisection) that stays within ``CONTACT_TOLERANCE``."""
        psm = scene.psm
        self.contact_depth = self._depth(scene)
        if self.contact_depth > CONTACT_TOLERANCE:
            commanded, free, reach = psm.q.copy(), self.free_joints, 0.0
            step = 0.5
            for _ in range(10):
                psm.set_joints(free + (reach + step) * (commanded - free))
                if self._depth(scene) <= CONTACT_TOLERANCE:
                    reach += step
                step /= 2
            psm.set_joints(free + reach * (commanded - free))
        self.free_joints = psm.q.copy()
        self.touching = not self._clear(scene, margin=0.0)
        self.failed = self.failed or self.touching

    def cost(self, scene: Scene) -> float:
        return float(self.touching)

    def extra_info(self, scene: Scene) -> dict[str, Any]:
        depth_mm = self.contact_depth * 1000.0
        return {"contact_depth_mm": depth_mm, "contact_force_n": ANATOMY_STIFFNESS * self.contact_depth}

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "anatomy_poses": self.anatomy_poses.copy(), "touching": self.touching,
                "contact_depth": self.contact_depth, "free_joints": self.free_joints.copy()}  # fmt: skip

    def set_state(self, scene: Scene, state: dict[str, Any]) -> None:
        super().set_state(scene, state)
        self.anatomy_poses = np.array(state["anatomy_poses"])
        self.touching = bool(state["touching"])
        self.contact_depth, self.free_joints = float(state["contact_depth"]), np.array(state["free_joints"])
        self._apply_anatomy_poses(scene)


class NavigateAnatomyExpert(Expert):
    """Retract towards the RCM, swing above the anatomy, then insert along the RCM-target line.

    The goal is placed so that this line is clear; near the RCM the instrument is above all
    anatomy, so the path never touches it.
    """

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        rcm = self.env.scene.psm.rcm()
        tip, goal = observation["achieved_goal"].astype(np.float64), observation["desired_goal"].astype(np.float64)
        line = (goal - rcm) / np.linalg.norm(goal - rcm)
        offset = tip - rcm
        off_line = np.linalg.norm(offset - np.dot(offset, line) * line)
        if off_line < 0.001:
            return self.env.action_toward(goal)
        radius = np.linalg.norm(offset)
        if radius > SAFE_RADIUS + 0.001:
            return self.env.action_toward(rcm + SAFE_RADIUS * offset / radius)
        return self.env.action_toward(rcm + min(radius, SAFE_RADIUS) * line)
