"""Replay a trajectory in a task scene, with or without assistance, and record what happened.

1. **Register** it to the scene: by default relative to its first pose (the motion from its
   first sample is applied from where the task starts the arm; a ``camera``-frame motion is
   turned into the world as the endoscope sees it, a ``base``-frame one as the arm's base lies), or
   absolutely (its frame's poses placed in the world, then an optional 4x4 ``transform``), with
   a ``scale`` for a recording made at another size.
2. **Resample** it to 100 Hz, apply the signal assistance (scale, tremor), take it at the env's
   control steps (0.1 s), apply the per-step assistance (fixture, guide, policy, shield).
3. **Move** each arm there as the env moves a robot's set-point (``SurgicalEnv.move_to``: inverse
   kinematics around the RCM, joint limits) and advance the task's world (anatomy that stops the
   instrument, needle, tissue, thread) as ``step`` does; a set-point the arm misses by more than
   1 mm is unreachable, reported by time.
4. **Record** per step: the commanded and reached tip, the jaw, each assistance's correction,
   contacts of the instrument with anatomy and the tissue bed (PyBullet closest points, with
   their depth), whether the tip is in the endoscope's view, damage, goal distance and success,
   and the endoscope frame when a video is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from surgisim.agents.evaluate import make_policy
from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.surgeon.assist import Assist
from surgisim.surgeon.trajectory import ArmPath, Trajectory

FINE_RATE = 100.0  # Hz: the signal assistance works at this rate (a tremor is 8-12 Hz)
UNREACHABLE = 0.001  # m: a set-point the arm misses by more than this is unreachable
CLEARANCE_RANGE = 0.03  # m: clearances beyond this are recorded as this


@dataclass
class Registration:
    """How a trajectory is placed in the scene (see the module docstring)."""

    mode: str = "relative"  # or "absolute"
    transform: np.ndarray | None = None  # 4x4, applied after the frame's pose (absolute only)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("relative", "absolute"):
            raise ValueError(f"registration {self.mode!r}: use relative or absolute")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"registration scale {self.scale!r} must be a positive number")


@dataclass
class Replay:
    """What happened, step by step (arrays over the steps, positions in m in the world)."""

    task: str
    times: np.ndarray
    commanded: dict[str, np.ndarray]  # the set-points after assistance (N, 3) per arm
    reached: dict[str, np.ndarray]  # the tip after inverse kinematics and joint limits
    corrections: dict[str, np.ndarray]  # per assistance, the largest correction over the arms (m)
    # deepest penetration into anatomy or the tissue bed (m, 0: none); where anatomy stopped the
    # instrument, how deep the set-point went (the task's ``contact_depth_mm``)
    contact_depth: np.ndarray
    contact_points: list[np.ndarray]  # where (world), per step (empty: none)
    clearance: np.ndarray  # the instrument's distance to organs and vessels (to the tissue bed without them), m;
    # negative: interpenetration; at most CLEARANCE_RANGE
    in_view: np.ndarray
    distance_mm: np.ndarray
    success: np.ndarray
    damage_mm: np.ndarray
    info: list[dict[str, Any]]
    camera: list[np.ndarray]  # the camera pose per step
    frames: list[np.ndarray] = field(default_factory=list)
    unreachable: list[tuple[float, float, float]] = field(default_factory=list)  # (start s, end s, worst m)
    notes: list[str] = field(default_factory=list)  # what reading and registering assumed or left out


def register(trajectory: Trajectory, env: Any, registration: Registration) -> Trajectory:
    """The trajectory of the arms ``env``'s task drives, in the scene's world frame (see the module
    docstring); ``env`` reset. The others are left out with a note."""
    by_name = {arm.name: arm for arm in env.arms}
    driven = list(by_name)
    if not set(trajectory.arms) & set(driven):
        raise ValueError(f"{trajectory.source}: it moves {', '.join(trajectory.arms)}; {env.task_name} drives "
                         f"{', '.join(driven)}")  # fmt: skip
    arms, notes = {}, list(trajectory.notes)
    for name, path in trajectory.arms.items():
        if name not in driven:
            notes.append(f"{name} is not replayed: {env.task_name} drives {', '.join(driven)}")
            continue
        arm = by_name[name]
        frame = {"world": np.eye(4), "base": arm.base, "camera": env.endoscope.pose()}[trajectory.frame]
        turn = frame[:3, :3]
        if registration.mode == "relative":
            start = arm.tip_pose()
            positions = start[:3, 3] + registration.scale * (path.positions - path.positions[0]) @ turn.T
            rotations = turn @ path.rotations @ path.rotations[0].T @ turn.T @ start[:3, :3]
        else:
            placed = (registration.transform if registration.transform is not None else np.eye(4)) @ frame
            positions = registration.scale * path.positions @ placed[:3, :3].T + placed[:3, 3]
            rotations = placed[:3, :3] @ path.rotations
        arms[name] = ArmPath(positions, rotations, path.jaws)
    return Trajectory(trajectory.times, arms, "world", trajectory.source, notes)


def replay(env: Any, trajectory: Trajectory, assists: list[Assist], seed: int = 0,
           registration: Registration | None = None, video_size: int = 0) -> Replay:  # fmt: skip
    """Replay ``trajectory`` in ``env`` (a surgisim env, reset here with ``seed``) with
    ``assists`` (prepared, e.g. from ``parse_assists``) in order; ``video_size`` > 0 keeps the
    endoscope frames."""
    model = env.unwrapped
    model.reset(seed=seed)
    world = register(trajectory, model, registration or Registration())
    fine_times = np.arange(0.0, world.duration + 1e-9, 1.0 / FINE_RATE)
    fine = world.resampled(fine_times)
    steps = np.arange(0.0, world.duration + 1e-9, CONTROL_PERIOD)
    at_steps = np.clip(np.round(steps * FINE_RATE).astype(int), 0, len(fine_times) - 1)
    driven = [arm.name for arm in model.arms if arm.name in fine.arms]
    signal = {name: fine.arms[name].positions.copy() for name in driven}
    corrections = {assist.name: np.zeros(len(steps)) for assist in assists}
    for assist in assists:
        if assist.on_signal:
            for arm in driven:
                before = signal[arm][at_steps]
                signal[arm] = assist.filter(fine_times, signal[arm])
                moved = np.linalg.norm(signal[arm][at_steps] - before, axis=1)
                corrections[assist.name] = np.maximum(corrections[assist.name], moved)
    record = _Recorder(model, driven, len(steps), video_size)
    for step, index in enumerate(at_steps):
        set_points = []
        for arm in model.arms:
            if arm.name in driven:
                pose = np.eye(4)
                pose[:3, :3], pose[:3, 3] = fine.arms[arm.name].rotations[index], signal[arm.name][index]
                set_points.append((pose, float(fine.arms[arm.name].jaws[index])))
            else:  # an arm the trajectory does not drive stays where it is
                set_points.append((arm.tip_pose(), getattr(arm, "jaw", 0.0)))
        for assist in assists:
            if not assist.on_signal:
                before = [pose[:3, 3].copy() for pose, _ in set_points]
                set_points = assist.step(model, set_points)
                moved = max(float(np.linalg.norm(p[:3, 3] - b)) for (p, _), b in zip(set_points, before, strict=True))
                corrections[assist.name][step] = max(corrections[assist.name][step], moved)
        _, info = model.move_to(set_points)
        record.step(step, steps[step], set_points, info)
    return Replay(model.task_name, steps, record.commanded, record.reached, corrections,
                  record.depth, record.points, record.clearance, record.in_view, record.distance, record.success,
                  record.damage, record.infos, record.cameras, record.frames, record.unreachable(),
                  world.notes)  # fmt: skip


class _Recorder:
    """Fills a ``Replay``'s arrays, one step at a time."""

    def __init__(self, model: Any, driven: list[str], count: int, video_size: int) -> None:
        self.model, self.driven, self.video_size = model, driven, video_size
        self.commanded = {name: np.zeros((count, 3)) for name in driven}
        self.reached = {name: np.zeros((count, 3)) for name in driven}
        self.depth, self.in_view = np.zeros(count), np.zeros(count, dtype=bool)
        self.clearance = np.full(count, CLEARANCE_RANGE)
        self.distance, self.damage = np.zeros(count), np.zeros(count)
        self.success = np.zeros(count, dtype=bool)
        self.points: list[np.ndarray] = []
        self.infos: list[dict[str, Any]] = []
        self.cameras: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []
        self.times = np.zeros(count)
        self.arms = {arm.name: arm for arm in model.arms}
        self.bed_only = not model.task.obstacles()  # then the clearance is to the tissue bed

    def step(self, step: int, time: float, set_points: list, info: dict[str, Any]) -> None:
        model = self.model
        self.times[step] = time
        for arm, (pose, _) in zip(model.arms, set_points, strict=True):
            if arm.name in self.driven:
                self.commanded[arm.name][step] = pose[:3, 3]
                self.reached[arm.name][step] = arm.tip_pose()[:3, 3]
        touching = [point for name in self.driven for point in model.clearances(0.0, name, tissue=True)]
        deepest = max([0.0, *(-distance for distance, _, _ in touching)])
        self.depth[step] = max(deepest, float(info.get("contact_depth_mm", 0.0)) / 1000.0)
        nearby = [point for name in self.driven
                  for point in model.clearances(CLEARANCE_RANGE, name, tissue=self.bed_only)]  # fmt: skip
        self.clearance[step] = min((distance for distance, _, _ in nearby), default=CLEARANCE_RANGE)
        self.points.append(np.array([point for _, point, _ in touching]).reshape(-1, 3))
        self.cameras.append(model.endoscope.pose())
        self.in_view[step] = model.endoscope.sees(self.arms[self.driven[0]].tip_pose()[:3, 3])
        self.distance[step], self.success[step] = info["distance_mm"], info["is_success"]
        self.damage[step] = float(info.get("damage_mm", 0.0))
        self.infos.append(info)
        if self.video_size:
            self.frames.append(model.endoscope.image(self.video_size))

    def unreachable(self) -> list[tuple[float, float, float]]:
        """Spans of steps (start s, end s, worst miss m) where an arm missed its set-point."""
        miss = np.max([np.linalg.norm(self.reached[n] - self.commanded[n], axis=1) for n in self.driven], axis=0)
        spans, start = [], None
        for step, bad in enumerate(np.append(miss > UNREACHABLE, False)):
            if bad and start is None:
                start = step
            elif not bad and start is not None:
                spans.append((float(self.times[start]), float(self.times[step - 1]), float(miss[start:step].max())))
                start = None
        return spans


def rollout(env_id: str, policy: str | Any, seed: int = 0, tool: str | None = None) -> Trajectory:
    """The tip path of a policy's episode (``expert``, ``pretrained``, a file) in the world frame:
    the reference a replay is compared with."""
    env = gym.make(env_id, **({"tool": tool} if tool else {}))
    try:
        model = env.unwrapped
        agent = make_policy(policy, env)
        observation, _ = env.reset(seed=seed)
        agent.reset()
        arms = [arm for arm in model.arms if arm.has_jaw]
        if not arms:
            raise ValueError(f"{env_id}: its task drives no PSM; there is no instrument path to compare with")
        samples: list[list[tuple[np.ndarray, float]]] = [[(arm.tip_pose(), arm.jaw) for arm in arms]]
        for _ in range(env.spec.max_episode_steps):
            observation, _, terminated, truncated, _ = env.step(agent(observation))
            samples.append([(arm.tip_pose(), arm.jaw) for arm in arms])
            if terminated or truncated:
                break
    finally:
        env.close()
    paths = {}
    for index, arm in enumerate(arms):
        poses = np.array([sample[index][0] for sample in samples])
        paths[arm.name] = ArmPath(poses[:, :3, 3], poses[:, :3, :3], np.array([sample[index][1] for sample in samples]))
    return Trajectory(np.arange(len(samples)) * CONTROL_PERIOD, paths, "world", f"{policy} policy, seed {seed}")
