"""The sample trajectories shipped in ``surgisim/assets/trajectories`` (a maintainer's script:
``python scripts/make_trajectory_samples.py``), in NavigateAnatomy's episode of seed 0:

- ``navigate_expert_like``: the scripted expert's path at half its speed (as a surgeon moves,
  about 25 mm/s), with a physiological tremor (9 Hz, 0.3 mm) and a 1 s hesitation before the
  final insertion;
- ``navigate_novice``: straight from the start to the target at the same pace, through the organ
  that lies across that line, with the same tremor.

Each as a CSV (world frame, mm), a JIGSAWS file (the endoscope's frame, 30 Hz) and a rosbag2 bag
of the dVRK's topics (``/PSM1/measured_cp`` on the jaw pivot and ``jaw/measured_js``, 100 Hz),
and as hand-drawn waypoints (the expert-like's through the expert's path every 0.6 s, at half
speed). And, for NeedleInsert (seed 0), ``needle_insert_tremor`` (CSV): the scripted expert's
bite at half its speed with a 0.5 mm tremor, which tears tissue.
Generated, so that they can be remade when the scene changes; seeded, so that they come out the
same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np

from surgisim.envs.tools import default_tool
from surgisim.surgeon.readers import write_csv, write_jigsaws, write_waypoints
from surgisim.surgeon.replay import rollout
from surgisim.surgeon.trajectory import ArmPath, Trajectory

TASK, SEED = "surgisim/NavigateAnatomy-v0", 0
RATE = 100.0  # Hz
TREMOR_HZ, TREMOR_M = 9.0, 0.0003
PACE = 0.025  # m/s
FOLDER = Path(__file__).resolve().parent.parent / "assets" / "trajectories"


def _tremor(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tremor: a 9 Hz oscillation of slowly wandering direction, 0.3 mm in amplitude."""
    directions = rng.normal(size=(len(times) // 50 + 2, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    smooth = np.array([np.interp(times, np.arange(len(directions)) * 0.5, directions[:, axis]) for axis in range(3)]).T
    return TREMOR_M * np.sin(2 * np.pi * TREMOR_HZ * times)[:, None] * smooth


def _paced(points: np.ndarray, rotations: np.ndarray, pause_at: float | None = None) -> Trajectory:
    """A path through ``points`` at ``PACE`` with a minimum-jerk start and stop, and a 1 s pause
    at the fraction ``pause_at`` of its length, sampled at ``RATE``."""
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    duration = lengths[-1] / PACE
    times = np.arange(0.0, duration + 1.0 + 1e-9, 1.0 / RATE)
    s = np.clip(times / duration, 0.0, 1.0)
    if pause_at is not None:  # the clock stands still for a second at the pause
        stop = pause_at * duration
        s = np.where(times < stop, times, np.where(times < stop + 1.0, stop, times - 1.0)) / duration
        s = np.clip(s, 0.0, 1.0)
    else:
        times = times[times <= duration + 1e-9]
        s = times / duration
    progress = (10 * s**3 - 15 * s**4 + 6 * s**5) * lengths[-1]
    positions = np.array([np.interp(progress, lengths, points[:, axis]) for axis in range(3)]).T
    index = np.clip(np.searchsorted(lengths, progress, side="right") - 1, 0, len(rotations) - 1)
    return Trajectory(times, {"psm1": ArmPath(positions, rotations[index], np.zeros(len(times)))}, "world")


def expert_like() -> Trajectory:
    reference = rollout(TASK, "expert", SEED).arms["psm1"]
    path = _paced(reference.positions, reference.rotations, pause_at=0.6)
    path.arms["psm1"].positions += _tremor(path.times, np.random.default_rng(1))
    return path


def novice() -> Trajectory:
    env = gym.make(TASK)
    try:
        env.reset(seed=SEED)
        model = env.unwrapped
        start, goal = model.scene.psm.tip_pose(), model.task.target.position.copy()
    finally:
        env.close()
    path = _paced(np.stack([start[:3, 3], goal]), np.stack([start[:3, :3]] * 2))
    path.arms["psm1"].positions += _tremor(path.times, np.random.default_rng(2))
    return path


def needle_insert_tremor() -> Trajectory:
    reference = rollout("surgisim/NeedleInsert-v0", "expert", SEED)
    slow = Trajectory(reference.times * 2, reference.arms, "world")
    times = np.arange(0.0, slow.duration + 1e-9, 1.0 / RATE)
    path = slow.resampled(times)
    path.arms["psm1"].positions += _tremor(times, np.random.default_rng(3)) * (0.0005 / TREMOR_M)
    return path


def _in_frame(trajectory: Trajectory, pose: np.ndarray, frame: str) -> Trajectory:
    """The world-frame trajectory expressed in the frame whose world pose is ``pose``."""
    arm = trajectory.arms["psm1"]
    positions = (arm.positions - pose[:3, 3]) @ pose[:3, :3]
    rotations = pose[:3, :3].T @ arm.rotations
    return Trajectory(trajectory.times, {"psm1": ArmPath(positions, rotations, arm.jaws)}, frame)


def write_bag(trajectory: Trajectory, path: Path) -> None:
    """A rosbag2 bag (MCAP) of ``/PSM1/measured_cp`` (the jaw pivot, base frame) and
    ``/PSM1/jaw/measured_js``, as a dVRK records them; ``trajectory`` in the base frame."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from surgisim.ros_bridge import messages as msg

    tool, arm = default_tool(), trajectory.arms["psm1"]
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    try:
        cp = writer.add_connection("/PSM1/measured_cp", msg.POSE_STAMPED, typestore=msg.TYPESTORE)
        jaw = writer.add_connection("/PSM1/jaw/measured_js", msg.JOINT_STATE, typestore=msg.TYPESTORE)
        for time, position, rotation, angle in zip(trajectory.times, arm.positions, arm.rotations, arm.jaws,
                                                   strict=True):  # fmt: skip
            tip = np.eye(4)
            tip[:3, :3], tip[:3, 3] = rotation, position
            stamp = 1_700_000_000.0 + time
            nanoseconds = round(stamp * 1e9)
            writer.write(cp, nanoseconds, msg.encode(msg.pose_stamped(tool.cp_from_tip(tip), stamp, "PSM1_base"),
                                                     msg.POSE_STAMPED))  # fmt: skip
            writer.write(jaw, nanoseconds, msg.encode(msg.joint_state(["jaw"], [angle], stamp), msg.JOINT_STATE))
    finally:
        writer.close()


def main() -> None:
    env = gym.make(TASK)
    try:
        env.reset(seed=SEED)
        model = env.unwrapped
        camera, base = model.scene.camera_pose(), model.scene.psm.base
    finally:
        env.close()
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, trajectory in (("navigate_expert_like", expert_like()), ("navigate_novice", novice())):
        write_csv(trajectory, FOLDER / f"{name}.csv")
        write_jigsaws(_in_frame(trajectory, camera, "camera"), FOLDER / f"{name}.txt")
        bag = FOLDER / f"{name}_bag"
        shutil.rmtree(bag, ignore_errors=True)
        write_bag(_in_frame(trajectory, base, "base"), bag)
        print(f"{name}: {trajectory.duration:.1f} s")
    write_csv(needle_insert_tremor(), FOLDER / "needle_insert_tremor.csv")
    expert = rollout(TASK, "expert", SEED)
    keys = [*range(0, len(expert.times) - 1, 6), len(expert.times) - 1]  # every 0.6 s of the expert's path
    write_waypoints(FOLDER / "navigate_expert_like_waypoints.yaml", [
        {"time": round(float(expert.times[k]) * 2, 2), "position": np.round(expert.arms["psm1"].positions[k] * 1000,
                                                                            2).tolist(), "jaw": 0.0} for k in keys
    ])  # fmt: skip
    start, goal = novice().arms["psm1"].positions[[0, -1]] * 1000
    write_waypoints(FOLDER / "navigate_novice_waypoints.yaml", [
        {"time": 0.0, "position": np.round(start, 2).tolist(), "jaw": 0.0},
        {"time": 4.0, "position": np.round((start + goal) / 2 + [0.0, 0.0, 3.0], 2).tolist(), "jaw": 0.0},
        {"time": 6.0, "position": np.round(goal, 2).tolist(), "jaw": 0.0},
    ])  # fmt: skip


if __name__ == "__main__":
    main()
