"""Trajectories in: a CSV, a JIGSAWS kinematics file, a rosbag2 recording of CRTK topics, hand-drawn
waypoints, or a policy's rollout. Each reader returns a ``Trajectory`` (``surgisim.surgeon.trajectory``)
or raises a ``ValueError`` that names the file and the line, topic or field at fault; the CSV, JIGSAWS
and waypoint formats have writers too (the sample trajectories are made with them).

CSV (``.csv``): optional ``# key: value`` lines first (``frame: world|base|camera``, ``units:
m|mm``; defaults world and m), then a header and one row per sample. Columns: ``time`` (s), and per
arm (``psm1_``, ``psm2_``) ``x, y, z`` (in ``units``), the orientation as ``qx, qy, qz, qw`` or
``r11 ... r33`` (row by row), and optionally ``jaw`` (rad; 0 when absent).

JIGSAWS (``.txt``): 76 numbers per line at 30 Hz, for the master left, master right, slave left
and slave right manipulators in turn: tip position (3, m), rotation matrix (9, row by row), linear
velocity (3), angular velocity (3), gripper angle (1, rad). The slave (patient-side) columns drive
the PSMs: slave right (columns 58-76) is ``psm1``, slave left (39-57) ``psm2``. Poses are read in
the endoscope's frame.

Bag (a rosbag2 folder or ``.mcap``): ``/PSM1/measured_cp`` (or ``measured_js``, through the tool's
forward kinematics) and ``/PSM1/jaw/measured_js``; ``/PSM2/...`` for ``psm2``; times from the
header stamps. ``measured_cp`` is the dVRK's jaw pivot: the reader moves it to the jaw tips.

Waypoints (``.yaml``): ``frame``, ``units``, ``interpolation: linear|minimum_jerk`` and ``waypoints``,
a list of ``{time: s, position: [x, y, z], jaw: rad, rotation: [rx, ry, rz]}`` (rotation as a
rotation vector, optional), for ``arm`` (default ``psm1``); sampled at 100 Hz.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from surgisim.envs.documents import excerpt, read_yaml
from surgisim.envs.tools import DEFAULT_TOOL, load_tool
from surgisim.envs.transforms import matrix_to_quat, quat_to_matrix, rotation_from_vector, rotation_vector
from surgisim.surgeon.trajectory import ARMS, FRAMES, ArmPath, Trajectory

UNITS = {"m": 1.0, "mm": 0.001}
JIGSAWS_RATE = 30.0  # Hz
JIGSAWS_COLUMNS = 76
JIGSAWS_SLAVES = {"psm1": 57, "psm2": 38}  # first (0-based) column of slave right and slave left
WAYPOINT_RATE = 100.0  # Hz: fine enough for a tremor filter's 6-12 Hz band
BAG_ARMS = {"psm1": "/PSM1", "psm2": "/PSM2"}


# -- CSV ----------------------------------------------------------------------------------------


def read_csv(path: Path) -> Trajectory:
    path = Path(path)
    meta, header, rows = {}, None, []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the CSV ({error})") from None
    for number, line in enumerate(lines, start=1):
        if header is None and line.startswith("#"):
            key, _, value = line[1:].partition(":")
            if value:
                meta[key.strip()] = value.strip()
            continue
        if not line.strip():
            continue
        fields = next(csv.reader([line]))
        if header is None:
            header = [name.strip() for name in fields]
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}, line {number}: {len(fields)} columns, the header has {len(header)} "
                             "(a truncated or malformed row)")  # fmt: skip
        rows.append(_numbers(fields, path, number))
    if header is None or not rows:
        raise ValueError(f"{path}: no header and samples; see surgisim.surgeon.readers for the columns")
    frame, scale = _frame_and_units(meta, path)
    data = np.array(rows)
    column = {name: index for index, name in enumerate(header)}
    if "time" not in column:
        raise ValueError(f"{path}: no 'time' column (the header is {', '.join(header)})")
    arms = {}
    for arm in ARMS:
        if f"{arm}_x" not in column:
            continue
        arms[arm] = _csv_arm(data, column, arm, scale, path)
    if not arms:
        raise ValueError(f"{path}: no arm columns; expected psm1_x, psm1_y, psm1_z, ... (or psm2_...)")
    return Trajectory(data[:, column["time"]], arms, frame, str(path))


def _numbers(fields: list[str], path: Path, line: int) -> list[float]:
    """A row's fields as numbers, or a ``ValueError`` naming the file, the line and the field."""
    numbers = []
    for value in fields:
        try:
            numbers.append(float(value))
        except ValueError:
            raise ValueError(f"{path}, line {line}: {excerpt(value)} is not a number") from None
    return numbers


def _frame_and_units(meta: dict[str, Any], path: Path) -> tuple[str, float]:
    frame, units = str(meta.get("frame", "world")), str(meta.get("units", "m"))
    if frame not in FRAMES:
        raise ValueError(f"{path}: frame {excerpt(frame)}; use {', '.join(FRAMES)}")
    if units not in UNITS:
        raise ValueError(f"{path}: units {excerpt(units)}; use m or mm")
    return frame, UNITS[units]


def _csv_arm(data: np.ndarray, column: dict[str, int], arm: str, scale: float, path: Path) -> ArmPath:
    def take(names: list[str]) -> np.ndarray:
        missing = [f"{arm}_{name}" for name in names if f"{arm}_{name}" not in column]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)}")
        return data[:, [column[f"{arm}_{name}"] for name in names]]

    positions = take(["x", "y", "z"]) * scale
    if f"{arm}_qw" in column:
        quats = take(["qx", "qy", "qz", "qw"])
        norms = np.linalg.norm(quats, axis=1)
        if np.any(~(norms > 1e-6)):
            raise ValueError(f"{path}: {arm} quaternion of zero length at data row {int(np.argmax(~(norms > 1e-6)))}")
        rotations = np.array([quat_to_matrix(q / n) for q, n in zip(quats, norms, strict=True)])
    elif f"{arm}_r11" in column:
        rotations = take([f"r{i}{j}" for i in range(1, 4) for j in range(1, 4)]).reshape(-1, 3, 3)
    else:
        raise ValueError(f"{path}: {arm} has no orientation: give {arm}_qx..{arm}_qw or {arm}_r11..{arm}_r33")
    jaws = data[:, column[f"{arm}_jaw"]] if f"{arm}_jaw" in column else np.zeros(len(data))
    return ArmPath(positions, rotations, jaws)


def write_csv(trajectory: Trajectory, path: Path, units: str = "mm") -> None:
    """The trajectory as a CSV this module reads (quaternions; ``units`` for positions)."""
    header = ["time"]
    for arm in trajectory.arms:
        header += [f"{arm}_{name}" for name in ("x", "y", "z", "qx", "qy", "qz", "qw", "jaw")]
    lines = [f"# frame: {trajectory.frame}", f"# units: {units}", ",".join(header)]
    for index, time in enumerate(trajectory.times):
        values = [time]
        for arm in trajectory.arms.values():
            values += [*(arm.positions[index] / UNITS[units]), *matrix_to_quat(arm.rotations[index]), arm.jaws[index]]
        lines.append(",".join(f"{value:.9g}" for value in values))
    Path(path).write_text("\n".join(lines) + "\n")


# -- JIGSAWS -------------------------------------------------------------------------------------


def read_jigsaws(path: Path) -> Trajectory:
    path = Path(path)
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the JIGSAWS file ({error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != JIGSAWS_COLUMNS:
            raise ValueError(f"{path}, line {number}: {len(fields)} numbers; JIGSAWS kinematics have "
                             f"{JIGSAWS_COLUMNS} per line")  # fmt: skip
        rows.append(_numbers(fields, path, number))
    if len(rows) < 2:
        raise ValueError(f"{path}: {len(rows)} line(s) of kinematics; a trajectory needs at least 2")
    data = np.array(rows)
    arms = {}
    for arm, first in JIGSAWS_SLAVES.items():
        block = data[:, first : first + 19]
        arms[arm] = ArmPath(block[:, 0:3], block[:, 3:12].reshape(-1, 3, 3), block[:, 18])
    times = np.arange(len(data)) / JIGSAWS_RATE
    notes = ["JIGSAWS: slave right drives psm1, slave left psm2; poses in the endoscope's frame, 30 Hz"]
    return Trajectory(times, arms, "camera", str(path), notes)


def write_jigsaws(trajectory: Trajectory, path: Path) -> None:
    """The trajectory resampled to 30 Hz as a 76-column JIGSAWS file; the master columns repeat
    the slaves' (a simulated trajectory has no console), velocities by finite differences."""
    times = np.arange(0.0, trajectory.duration + 1e-9, 1.0 / JIGSAWS_RATE)
    sampled = trajectory.resampled(times)
    data = np.zeros((len(times), JIGSAWS_COLUMNS))
    for arm, first in JIGSAWS_SLAVES.items():
        path_ = sampled.arms.get(arm) or next(iter(sampled.arms.values()))
        velocity = np.gradient(path_.positions, times, axis=0)
        turns = np.array([rotation_vector(a.T @ b) for a, b in zip(path_.rotations[:-1], path_.rotations[1:],
                                                                     strict=True)])  # fmt: skip
        angular = np.vstack([turns, turns[-1:]]) * JIGSAWS_RATE
        block = np.hstack([path_.positions, path_.rotations.reshape(-1, 9), velocity, angular, path_.jaws[:, None]])
        data[:, first : first + 19] = block
        data[:, first - 38 : first - 19] = block  # the master of the same hand
    Path(path).write_text("\n".join("     ".join(f"{value:.6e}" for value in row) for row in data) + "\n")


# -- waypoints -----------------------------------------------------------------------------------


def read_waypoints(path: Path) -> Trajectory:
    path = Path(path)
    document = read_yaml(path, "waypoints")
    if not isinstance(document, dict) or not isinstance(document.get("waypoints"), list):
        raise ValueError(f"{path}: expected a mapping with a 'waypoints' list (and frame, units, interpolation)")
    frame, scale = _frame_and_units(document, path)
    arm = document.get("arm", "psm1")
    interpolation = document.get("interpolation", "minimum_jerk")
    if arm not in ARMS or interpolation not in ("linear", "minimum_jerk"):
        raise ValueError(f"{path}: arm {excerpt(arm)} (psm1 or psm2) and interpolation {excerpt(interpolation)} "
                         "(linear or minimum_jerk)")  # fmt: skip
    times, positions, rotations, jaws = [], [], [], []
    for index, point in enumerate(document["waypoints"]):
        where = f"{path}: waypoint {index}"
        if not isinstance(point, dict) or "time" not in point or "position" not in point:
            raise ValueError(f"{where}: needs 'time' and 'position' (and optionally 'jaw', 'rotation')")
        try:
            position = np.asarray(point["position"], dtype=np.float64) * scale
            rotation = np.asarray(point.get("rotation", [0.0, 0.0, 0.0]), dtype=np.float64)
            time, jaw = float(point["time"]), float(point.get("jaw", 0.0))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: time, position, jaw and rotation must be numbers") from None
        if position.shape != (3,) or rotation.shape != (3,):
            raise ValueError(f"{where}: position and rotation are 3 numbers each")
        times.append(time)
        positions.append(position)
        rotations.append(rotation_from_vector(rotation))
        jaws.append(jaw)
    coarse = Trajectory(times, {arm: ArmPath(positions, rotations, jaws)}, frame, str(path))
    fine = np.arange(0.0, coarse.duration + 1e-9, 1.0 / WAYPOINT_RATE)
    if interpolation == "minimum_jerk":
        fine = _minimum_jerk_times(coarse.times, fine)
    sampled = coarse.resampled(fine)
    return Trajectory(np.arange(len(fine)) / WAYPOINT_RATE, sampled.arms, frame, str(path))


def _minimum_jerk_times(knots: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Times warped so that linear interpolation between knots follows a minimum-jerk profile
    (10 s^3 - 15 s^4 + 6 s^5 of each segment's fraction s): at rest at every waypoint."""
    index = np.clip(np.searchsorted(knots, times, side="right") - 1, 0, len(knots) - 2)
    s = (times - knots[index]) / (knots[index + 1] - knots[index])
    return knots[index] + (10 * s**3 - 15 * s**4 + 6 * s**5) * (knots[index + 1] - knots[index])


def write_waypoints(path: Path, waypoints: list[dict[str, Any]], frame: str = "world", units: str = "mm",
                    interpolation: str = "minimum_jerk", arm: str = "psm1") -> None:  # fmt: skip
    document = {"frame": frame, "units": units, "interpolation": interpolation, "arm": arm, "waypoints": waypoints}
    Path(path).write_text(yaml.safe_dump(document, sort_keys=False))


# -- bags ----------------------------------------------------------------------------------------


def read_bag(path: Path, tool: str | None = None) -> Trajectory:
    """A rosbag2 recording (folder, or an ``.mcap`` file) of CRTK topics."""
    from rosbags.highlevel import AnyReader  # the ros extra

    path, instrument = Path(path), load_tool(tool or DEFAULT_TOOL)
    try:
        with AnyReader([path]) as reader:
            topics = {connection.topic: connection for connection in reader.connections}
            samples: dict[str, list[tuple[float, Any]]] = {name: [] for name in topics}
            for connection, timestamp, raw in reader.messages():
                message = reader.deserialize(raw, connection.msgtype)
                stamp = getattr(getattr(message, "header", None), "stamp", None)
                seconds = stamp.sec + stamp.nanosec * 1e-9 if stamp is not None and stamp.sec else timestamp * 1e-9
                samples[connection.topic].append((seconds, message))
    except Exception as error:  # rosbags raises its own types for unreadable bags
        if isinstance(error, ValueError) and str(path) in str(error):
            raise
        raise ValueError(f"{path}: cannot read the bag ({type(error).__name__}: {error})") from None
    arms, start = {}, None
    for arm, namespace in BAG_ARMS.items():
        poses = _bag_poses(samples, namespace, instrument)
        if poses is None:
            continue
        times, positions, rotations = poses
        jaw_samples = samples.get(f"{namespace}/jaw/measured_js", [])
        jaw_times = np.array([t for t, _ in jaw_samples])
        jaw_values = np.array([float(m.position[0]) for _, m in jaw_samples if len(m.position)])
        jaws = np.interp(times, jaw_times, jaw_values) if len(jaw_values) == len(jaw_times) > 0 else 0 * times
        arms[arm] = (times, ArmPath(positions, rotations, jaws))
        start = times[0] if start is None else min(start, times[0])
    if not arms:
        wanted = ", ".join(f"{ns}/measured_cp or {ns}/measured_js" for ns in BAG_ARMS.values())
        raise ValueError(f"{path}: the bag has none of {wanted}; its topics: {', '.join(sorted(samples)) or 'none'}")
    times = next(iter(arms.values()))[0]
    paths = {}
    for arm, (arm_times, path_) in arms.items():  # the first arm's clock for all
        single = Trajectory(arm_times - start, {arm: path_}, "base", str(path))
        paths[arm] = single.resampled(times - start).arms[arm]
    notes = [f"bag: measured_cp moved {instrument.jaw_tip * 1000:.1f} mm along the jaws to the jaw tips "
             f"({instrument.name})"]  # fmt: skip
    return Trajectory(times - start, paths, "base", str(path), notes)


def _bag_poses(samples: dict[str, list], namespace: str, tool: Any) -> tuple[np.ndarray, ...] | None:
    """Times, jaw-tip positions and rotations of one arm, from measured_cp or else measured_js."""
    from surgisim.ros_bridge.messages import pose_matrix  # the ros extra

    cp, js = samples.get(f"{namespace}/measured_cp", []), samples.get(f"{namespace}/measured_js", [])
    if cp:
        times, poses = np.array([t for t, _ in cp]), [pose_matrix(m) for _, m in cp]
    elif js:
        times = np.array([t for t, _ in js])
        poses = [tool.cp(np.asarray(m.position, dtype=np.float64)) for _, m in js]
    else:
        return None
    order = np.argsort(times, kind="stable")
    keep = order[np.concatenate([[True], np.diff(times[order]) > 0])]
    tips = [tool.tip_from_cp(poses[i]) for i in keep]
    return times[keep], np.array([tip[:3, 3] for tip in tips]), np.array([tip[:3, :3] for tip in tips])


# -- any ----------------------------------------------------------------------------------------


READERS = {"csv": read_csv, "jigsaws": read_jigsaws, "waypoints": read_waypoints, "bag": read_bag}


def detect_format(path: Path) -> str:
    """The reader a file needs, from its name: .csv, .txt (JIGSAWS), .yaml/.yml, a bag folder or .mcap."""
    path = Path(path)
    if path.is_dir() or path.suffix in (".mcap", ".db3"):
        return "bag"
    formats = {".csv": "csv", ".txt": "jigsaws", ".yaml": "waypoints", ".yml": "waypoints"}
    if path.suffix not in formats:
        raise ValueError(f"{path}: cannot tell the format from the name; give --format ({', '.join(READERS)})")
    return formats[path.suffix]


def read_trajectory(path: Path, fmt: str = "auto", tool: str | None = None) -> Trajectory:
    """Read a trajectory file (``fmt``: auto, csv, jigsaws, waypoints or bag)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise ValueError(f"unknown trajectory format {excerpt(fmt)}; use {', '.join(READERS)}")
    return read_bag(path, tool) if fmt == "bag" else READERS[fmt](path)
