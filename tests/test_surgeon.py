"""Surgeon tools: trajectory readers, metrics against hand-computed values, assistance, replay,
and ``surgisim assess`` end to end, its report opened in a real headless browser."""

import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest

from conftest import alias_bomb, dvrk_measured_cp, dvrk_tool_file
from surgisim.envs.tasks.navigate_anatomy import CONTACT_TOLERANCE
from surgisim.envs.transforms import make_pose, rotation_from_vector
from surgisim.surgeon import metrics
from surgisim.surgeon.assist import Fixture, Guide, SharedControl, Shield, Tremor, nearest_on_path, parse_assists
from surgisim.surgeon.readers import (
    read_bag,
    read_csv,
    read_jigsaws,
    read_trajectory,
    read_waypoints,
    write_csv,
    write_waypoints,
)
from surgisim.surgeon.replay import replay, rollout
from surgisim.surgeon.trajectory import ArmPath, Trajectory

SAMPLES = Path(str(files("surgisim.assets"))) / "trajectories"
NAVIGATE = "surgisim/NavigateAnatomy-v0"
CLI = [sys.executable, "-m", "surgisim.agents.cli", "assess"]


def _trajectory(count=50, arms=("psm1",)):
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.01, 0.03, count))
    paths = {}
    for arm in arms:
        rotations = np.array([rotation_from_vector(v) for v in rng.normal(0, 1, (count, 3))])
        paths[arm] = ArmPath(rng.uniform(-0.05, 0.05, (count, 3)), rotations, rng.uniform(-0.3, 1.2, count))
    return Trajectory(times, paths, "base", "synthetic")


# -- readers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("units", ["m", "mm"])
def test_a_csv_round_trips_and_reads_rotation_matrices_too(tmp_path, units):
    original = _trajectory(arms=("psm1", "psm2"))
    write_csv(original, tmp_path / "t.csv", units=units)
    back = read_csv(tmp_path / "t.csv")
    assert back.frame == "base" and set(back.arms) == {"psm1", "psm2"}
    np.testing.assert_allclose(back.times, original.times - original.times[0], atol=1e-8)
    for arm in original.arms:
        np.testing.assert_allclose(back.arms[arm].positions, original.arms[arm].positions, atol=1e-9)
        np.testing.assert_allclose(back.arms[arm].rotations, original.arms[arm].rotations, atol=1e-7)
        np.testing.assert_allclose(back.arms[arm].jaws, original.arms[arm].jaws, atol=1e-8)
    # The other orientation columns, written here by hand: r11..r33 row by row.
    path = original.arms["psm1"]
    rows = ["time,psm1_x,psm1_y,psm1_z," + ",".join(f"psm1_r{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3))]
    rows += [",".join(map(str, [t, *p, *r.reshape(9)])) for t, p, r in zip(original.times, path.positions,
                                                                             path.rotations, strict=True)]  # fmt: skip
    (tmp_path / "matrix.csv").write_text("\n".join(rows))
    matrix = read_csv(tmp_path / "matrix.csv")
    assert matrix.frame == "world"  # the default
    np.testing.assert_allclose(matrix.arms["psm1"].rotations, path.rotations, atol=1e-9)
    np.testing.assert_array_equal(matrix.arms["psm1"].jaws, 0.0)


def test_a_jigsaws_file_from_another_writer_gives_the_slave_columns():
    """76 columns written with numpy from the dataset's layout: the slave right block (58-76) is
    psm1 and slave left (39-57) psm2; the masters (1-38) are not read."""
    count, rng = 40, np.random.default_rng(3)
    data = rng.uniform(-1, 1, (count, 76))  # masters and velocities: anything
    expected = {}
    for arm, first in (("psm2", 38), ("psm1", 57)):
        positions = rng.uniform(-0.05, 0.05, (count, 3))
        rotations = np.array([rotation_from_vector(v) for v in rng.normal(0, 1, (count, 3))])
        gripper = rng.uniform(0, 1.2, count)
        data[:, first : first + 3], data[:, first + 3 : first + 12] = positions, rotations.reshape(count, 9)
        data[:, first + 18] = gripper
        expected[arm] = (positions, rotations, gripper)
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "Suturing_B001.txt"
    np.savetxt(path, data, fmt="%.8e", delimiter="    ")
    trajectory = read_jigsaws(path)
    assert trajectory.frame == "camera"
    np.testing.assert_allclose(trajectory.times, np.arange(count) / 30.0)
    for arm, (positions, rotations, gripper) in expected.items():
        np.testing.assert_allclose(trajectory.arms[arm].positions, positions, atol=1e-9)
        np.testing.assert_allclose(trajectory.arms[arm].rotations, rotations, atol=1e-7)
        np.testing.assert_allclose(trajectory.arms[arm].jaws, gripper, atol=1e-9)


def _write_crtk_bag(path, with_cp=True):
    """A bag written with rosbags' own writer and message classes, as a dVRK recording is."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    Pose, PoseStamped = store.types["geometry_msgs/msg/Pose"], store.types["geometry_msgs/msg/PoseStamped"]
    Point, Quaternion = store.types["geometry_msgs/msg/Point"], store.types["geometry_msgs/msg/Quaternion"]
    JointState = store.types["sensor_msgs/msg/JointState"]
    tool = dvrk_tool_file("LARGE_NEEDLE_DRIVER_400006")
    joints = [np.array([0.1 * np.sin(k / 10), -0.2 + 0.01 * k, 0.12 + 0.001 * k, 0.3, 0.2, -0.1]) for k in range(30)]
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    cp = writer.add_connection("/PSM1/measured_cp", PoseStamped.__msgtype__, typestore=store)
    js = writer.add_connection("/PSM1/measured_js", JointState.__msgtype__, typestore=store)
    jaw = writer.add_connection("/PSM1/jaw/measured_js", JointState.__msgtype__, typestore=store)
    poses = []
    for k, q in enumerate(joints):
        stamp = 100.0 + 0.01 * k
        header = Header(Time(int(stamp), round((stamp % 1) * 1e9)), "PSM1_base")
        pose = dvrk_measured_cp(tool, q)
        poses.append(pose)
        w = np.sqrt(max(1e-12, 1 + np.trace(pose[:3, :3]))) / 2
        x = (pose[2, 1] - pose[1, 2]) / (4 * w)
        y = (pose[0, 2] - pose[2, 0]) / (4 * w)
        z = (pose[1, 0] - pose[0, 1]) / (4 * w)
        ns = int(stamp * 1e9)
        if with_cp:
            message = PoseStamped(header, Pose(Point(*pose[:3, 3]), Quaternion(x, y, z, w)))
            writer.write(cp, ns, store.serialize_cdr(message, PoseStamped.__msgtype__))
        names = ["yaw", "pitch", "insertion", "roll", "wrist_pitch", "wrist_yaw"]
        empty = np.zeros(0)
        writer.write(js, ns, store.serialize_cdr(JointState(header, names, q, empty, empty), JointState.__msgtype__))
        writer.write(jaw, ns, store.serialize_cdr(JointState(header, ["jaw"], np.array([0.02 * k]), empty, empty),
                                                  JointState.__msgtype__))  # fmt: skip
    writer.close()
    return np.array(poses)


@pytest.mark.parametrize("with_cp", [True, False])
def test_a_bag_of_crtk_topics_from_rosbags_gives_the_jaw_tips(tmp_path, with_cp):
    """measured_cp (or, without it, the tool's forward kinematics of measured_js) is the jaw
    pivot; the trajectory is the jaw tips, 10.2 mm along the jaws (the frame's z axis)."""
    poses = _write_crtk_bag(tmp_path / "session", with_cp)
    trajectory = read_bag(tmp_path / "session")
    assert trajectory.frame == "base"
    np.testing.assert_allclose(trajectory.times, np.arange(30) * 0.01, atol=1e-6)
    tips = poses[:, :3, 3] + 0.0102 * poses[:, :3, 2]
    # 0.01 mm: forward kinematics reads the files' 1.5708 as pi/2 (surgisim.envs.tools)
    np.testing.assert_allclose(trajectory.arms["psm1"].positions, tips, atol=1e-5)
    np.testing.assert_allclose(trajectory.arms["psm1"].jaws, 0.02 * np.arange(30), atol=1e-9)


def test_waypoints_pass_through_their_points_at_rest(tmp_path):
    write_waypoints(tmp_path / "w.yaml", [{"time": 0, "position": [0, 0, 30]}, {"time": 2, "position": [20, 0, 30],
                    "jaw": 0.5}, {"time": 3, "position": [20, 10, 30]}])  # fmt: skip
    trajectory = read_waypoints(tmp_path / "w.yaml")
    path = trajectory.arms["psm1"].positions
    at = {t: round(t * 100) for t in (0, 2, 3)}
    np.testing.assert_allclose(path[at[2]], [0.02, 0.0, 0.03], atol=1e-9)
    np.testing.assert_allclose(path[at[3]], [0.02, 0.01, 0.03], atol=1e-9)
    speed = metrics.speeds(trajectory.times, path)
    assert speed[at[2]] < 1e-3 and speed[at[0]] < 1e-3  # minimum jerk: at rest at each waypoint
    assert speed[at[2] // 2] == pytest.approx(1.875 * 0.02 / 2, rel=0.01)  # its peak, mid-segment
    np.testing.assert_allclose(trajectory.arms["psm1"].jaws[at[2]], 0.5)


HEADER = "time,psm1_x,psm1_y,psm1_z,psm1_qx,psm1_qy,psm1_qz,psm1_qw\n"
BAD_FILES = {
    "cut.csv": (HEADER + "0,0,0,0,0,0,0,1\n0.1,0,0", "line 3: 3 columns, the header has 8"),
    "word.csv": (HEADER + "0,0,0,zero,0,0,0,1\n", "line 2: 'zero' is not a number"),
    "turn.csv": ("time,psm1_x,psm1_y,psm1_z\n0,0,0,0\n1,0,0,0\n", "psm1 has no orientation"),
    "back.csv": (HEADER + "1,0,0,0,0,0,0,1\n0,0,0,0,0,0,0,1\n", "increasing"),
    "short.txt": (" ".join(["0"] * 75) + "\n", "line 1: 75 numbers; JIGSAWS kinematics have 76"),
    "w.yaml": ("waypoints: [{time: 0}]\n", "waypoint 0: needs 'time' and 'position'"),
    "data.json": ("{}", "cannot tell the format"),
    "eon.yaml": (
        "waypoints: [{time: 0, position: [0, 0, 0]}, {time: 1.0e9, position: [0, 0, 1]}]\n",
        "lasts 1e+09 s; a replay takes at most 3600 s",
    ),  # was a 745 GiB allocation
    "bomb.yaml": (alias_bomb(), "over 100000 values once its aliases are expanded"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_file_that_cannot_be_read_is_named_with_the_line_and_what_is_wrong(tmp_path, name):
    text, problem = BAD_FILES[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=re.escape(problem)) as error:
        read_trajectory(tmp_path / name)
    assert str(tmp_path / name) in str(error.value)


def test_a_bag_without_the_arm_topics_names_what_it_has(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    writer = Writer(tmp_path / "other", version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
    writer.write(connection, 1, store.serialize_cdr(store.types["std_msgs/msg/String"]("hi"), "std_msgs/msg/String"))
    writer.close()
    with pytest.raises(ValueError, match=r"none of /PSM1/measured_cp or /PSM1/measured_js.*its topics: /chatter"):
        read_trajectory(tmp_path / "other")


# -- metrics ------------------------------------------------------------------------------------


def _minimum_jerk(rate=1000.0, duration=1.0, distance=0.05):
    times = np.arange(0.0, duration + 1e-12, 1.0 / rate)
    s = times / duration
    x = distance * (10 * s**3 - 15 * s**4 + 6 * s**5)
    return times, np.stack([x, 0.5 * x, 0 * x], axis=1)


def test_path_metrics_of_a_straight_line():
    _, positions = _minimum_jerk()
    assert metrics.path_length(positions) == pytest.approx(0.05 * np.sqrt(1.25), rel=1e-9)
    assert metrics.economy_of_motion(positions) == pytest.approx(1.0, rel=1e-9)
    detour = np.vstack([positions, positions[-1] + [0, 0, 0.01], positions[-1]])
    assert metrics.economy_of_motion(detour) == pytest.approx(1 + 0.02 / (0.05 * np.sqrt(1.25)), rel=1e-6)


def test_smoothness_of_a_minimum_jerk_reach_is_the_published_value():
    """Minimum jerk: LDLJ = -ln(720 / 1.875^2) = -5.32 (Hogan & Sternad 2009's dimensionless jerk with
    the peak speed); SPARC = -1.40 (Balasubramanian et al. 2015)."""
    times, positions = _minimum_jerk()
    assert metrics.ldlj(times, positions) == pytest.approx(-np.log(720 / 1.875**2), abs=0.02)
    assert metrics.sparc(times, positions) == pytest.approx(-1.40, abs=0.01)
    shaky = positions + 0.0005 * np.sin(2 * np.pi * 9 * times)[:, None]
    assert metrics.ldlj(times, shaky) < metrics.ldlj(times, positions) - 2
    assert metrics.sparc(times, shaky) < metrics.sparc(times, positions) - 0.5


def test_movements_count_the_bumps_of_speed_and_idle_time_the_stops():
    times = np.arange(0.0, 8.0, 0.01)
    bumps = sum(0.02 * np.exp(-(((times - centre) / 0.15) ** 2)) for centre in (1.0, 2.5, 4.0, 5.0))
    x = np.cumsum(bumps) * 0.01
    positions = np.stack([x, 0 * x, 0 * x], axis=1)
    assert metrics.movements(times, positions) == 4
    assert metrics.idle_time(times, positions) == pytest.approx(8.0 - 4 * 0.45, abs=0.15)
    one = np.cumsum(0.02 * np.exp(-(((times - 3.0) / 0.4) ** 2))) * 0.01
    assert metrics.movements(times, np.stack([one, 0 * one, 0 * one], axis=1)) == 1


def test_deviation_from_a_reference_by_hand():
    path = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    reference = np.array([[0.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    # Frechet: the middle point is sqrt(2) from both reference points. DTW matches (0,0), (1,0),
    # (2,1): distances 1, sqrt(2), 1.
    assert metrics.frechet(path, reference) == pytest.approx(np.sqrt(2))
    assert metrics.dtw(path, reference) == pytest.approx((2 + np.sqrt(2)) / 3)
    assert metrics.frechet(path, path) == 0.0 and metrics.dtw(path, path) == 0.0


# -- assistance and replay --------------------------------------------------------------------


def test_the_tremor_filter_passes_motion_and_cuts_a_9_hz_tremor_as_a_butterworth_does():
    times = np.arange(0.0, 4.0, 0.01)
    tremor = 0.0003 * np.sin(2 * np.pi * 9.0 * times)
    filtered = Tremor().filter(times, np.stack([tremor, 0 * tremor, 0 * tremor], axis=1))[:, 0]
    gain = np.abs(filtered[200:]).max() / 0.0003
    assert gain == pytest.approx(1 / np.sqrt(1 + (9.0 / 6.0) ** 4), abs=0.05)  # |H| of a 2nd-order Butterworth
    slow = np.stack([0.01 * times, 0 * times, 0 * times], axis=1)
    lag = np.abs(Tremor().filter(times, slow) - slow)[100:, 0].max()
    assert lag == pytest.approx(0.01 * np.sqrt(2) / (2 * np.pi * 6.0), rel=0.1)  # its delay at 0 Hz: sqrt(2)/w_c


def test_assistance_is_parsed_with_its_settings_and_bad_ones_are_named():
    assists = parse_assists("fixture:margin=0.005,tremor:cutoff_hz=5;order=3,none")
    assert [assist.name for assist in assists] == ["fixture", "tremor"]
    assert assists[0].margin == 0.005 and assists[1].order == 3 and isinstance(assists[1].order, int)
    assert [assist.describe() for assist in assists] == ["fixture:margin=0.005", "tremor:cutoff_hz=5;order=3"]
    bad = {"wobble": "unknown assistance 'wobble'", "fixture:depth=1": "unknown setting 'depth'",
           "scale:factor=x": "is not a number", "guide:strength=-1": "finite number from 0"}  # fmt: skip
    for text, problem in bad.items():
        with pytest.raises(ValueError, match=problem):
            parse_assists(text)


@pytest.fixture(scope="module")
def novice():
    return read_trajectory(SAMPLES / "navigate_novice.csv")


def test_the_fixture_keeps_a_novice_off_the_organ_within_its_margin(novice):
    env = gym.make(NAVIGATE)
    unassisted = replay(env, novice, [])
    fixture = Fixture(margin=0.003)
    assisted = replay(env, novice, [fixture])
    env.close()
    touching = [len(points) > 0 for points in unassisted.contact_points]
    assert any(touching) and unassisted.contact_depth.max() > 0.005  # set-points deep in the organ
    # ... which stopped the instrument at its surface (the set-points were out of reach there)
    assert -CONTACT_TOLERANCE - 1e-4 < unassisted.clearance.min() < 0.0 and unassisted.unreachable
    assert assisted.clearance.min() > 0.0
    assert not any(len(points) for points in assisted.contact_points) and assisted.contact_depth.max() == 0.0
    deviation = np.linalg.norm(assisted.reached["psm1"] - unassisted.commanded["psm1"], axis=1)
    assert deviation.max() <= unassisted.contact_depth.max() + fixture.margin + 0.002
    assert deviation[~np.array(touching)].max() < deviation.max()  # it moved where the novice hit


def test_guide_shared_control_and_the_shield_each_do_what_they_say(novice):
    env = gym.make(NAVIGATE)
    reference = rollout(NAVIGATE, "expert").arms["psm1"].positions
    plain = replay(env, novice, [])
    guided = replay(env, novice, [Guide(strength=0.8, reference=reference)])

    def off_path(path):  # mean distance to the nearest point of the reference's path
        return np.mean([np.linalg.norm(nearest_on_path(reference, point) - point) for point in path])

    assert off_path(guided.reached["psm1"]) < 0.3 * off_path(plain.reached["psm1"])  # pulled 80 % of the way
    from surgisim.agents.evaluate import make_policy

    shared = replay(env, novice, [SharedControl(weight=1.0, policy=make_policy("expert", env))])
    # At weight 1 the arm follows the expert alone: step by step the expert's own rollout.
    np.testing.assert_allclose(shared.reached["psm1"], reference[1 : len(shared.times) + 1], atol=1e-6)
    assert not any(len(points) for points in shared.contact_points)
    shielded = replay(env, read_trajectory(SAMPLES / "navigate_expert_like.csv"), [Shield()])
    steps = np.linalg.norm(np.diff(shielded.commanded["psm1"], axis=0), axis=1)
    assert steps.max() <= 0.05 * 0.1 + 1e-6  # the shield's 0.05 m/s over each 0.1 s step
    assert shielded.corrections["shield"].max() > 0
    env.close()


def test_the_tremor_filter_cuts_the_tissue_damage_a_tremor_does_in_needle_insert():
    env = gym.make("surgisim/NeedleInsert-v0")
    shaky = read_trajectory(SAMPLES / "needle_insert_tremor.csv")
    plain, filtered = replay(env, shaky, []), replay(env, shaky, [Tremor()])
    env.close()
    assert plain.damage_mm[-1] > 0.8 and filtered.damage_mm[-1] < 0.6 * plain.damage_mm[-1]
    assert plain.success.any() and filtered.success.any()


def test_every_sample_format_replays_to_the_same_path():
    env = gym.make(NAVIGATE)
    paths = {name: replay(env, read_trajectory(SAMPLES / name), []).reached["psm1"]
             for name in ("navigate_novice.csv", "navigate_novice.txt", "navigate_novice_bag")}  # fmt: skip
    env.close()
    csv_path = paths.pop("navigate_novice.csv")
    for path in paths.values():
        np.testing.assert_allclose(path, csv_path, atol=2e-4)


def test_registration_places_the_motion_relative_or_absolute_with_a_transform():
    from surgisim.surgeon.replay import Registration, register

    env = gym.make(NAVIGATE)
    model = env.unwrapped
    model.reset(seed=0)
    start = model.scene.psm.tip_pose()
    times = [0.0, 1.0]
    turn = rotation_from_vector(np.array([0.0, 0.0, np.pi / 2]))
    moved = Trajectory(times, {"psm1": ArmPath([[0.1, 0.2, 0.3], [0.11, 0.2, 0.3]], [np.eye(3), turn], [0, 0])})
    relative = register(moved, model, Registration()).arms["psm1"]
    np.testing.assert_allclose(relative.positions, [start[:3, 3], start[:3, 3] + [0.01, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(relative.rotations[1], turn @ start[:3, :3], atol=1e-12)  # the turn, in the world
    shifted = make_pose(np.eye(3), [0.0, 0.0, -0.25])
    absolute = register(moved, model, Registration("absolute", shifted, scale=0.5)).arms["psm1"]
    np.testing.assert_allclose(absolute.positions, [[0.05, 0.1, -0.1], [0.055, 0.1, -0.1]], atol=1e-12)
    camera = model.scene.camera_pose()
    seen = Trajectory(times, {"psm1": ArmPath([[0, 0, 0], [0.01, 0, 0]], [np.eye(3)] * 2, [0, 0])}, "camera")
    step = np.diff(register(seen, model, Registration()).arms["psm1"].positions, axis=0)[0]
    np.testing.assert_allclose(step, 0.01 * camera[:3, 0], atol=1e-12)  # right in the image is the camera's x
    env.close()


def test_a_task_that_moves_no_instrument_is_refused(novice):
    env = gym.make("surgisim/EndoscopeTrack-v0")
    with pytest.raises(ValueError, match="it moves psm1; EndoscopeTrack drives ecm"):
        replay(env, novice, [])
    env.close()


# -- surgisim assess ------------------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the report is checked in headless Chromium: install it (the README's test command does)")
    return found


def _browse(page: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=8000", *options, page.as_uri()], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_assess_writes_a_report_a_browser_shows_whole_without_errors(tmp_path):
    out = tmp_path / "novice"
    result = subprocess.run([*CLI, str(SAMPLES / "navigate_novice.csv"), "--task", "NavigateAnatomy", "--out",
                             str(out), "--video-size", "96"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(entry.name for entry in out.iterdir()) == [
        "assisted.webm", "metrics.csv", "metrics.json", "reference.webm", "report.html", "unassisted.webm"]  # fmt: skip
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["unassisted"]["contacts"] >= 1 and summary["metrics"]["assisted"]["contacts"] == 0
    assert set(summary["interventions"]) == {"fixture", "tremor"}
    assert len((out / "metrics.csv").read_text().splitlines()) == len(metrics.METRICS) + 1
    # The harness sees a console error when there is one...
    (tmp_path / "broken.html").write_text("<script>console.error('broken page')</script>")
    assert _console(_browse(tmp_path / "broken.html", "--dump-dom").stderr)
    # ...and the report has none; every metric row, the plots, and three videos the browser decoded.
    page = _browse(out / "report.html", "--dump-dom")
    assert page.returncode == 0 and not _console(page.stderr), _console(page.stderr)
    dom = page.stdout
    assert len(re.findall(r'<tr data-metric="', dom)) == len(metrics.METRICS)
    assert dom.count("<svg") >= 5 and all(f'id="plot-{key}"' in dom for key in ("speed", "clearance", "correction"))
    assert len(re.findall(r'<video id="video-\w+"[^>]*data-loaded="yes"', dom)) == 3
    shot = tmp_path / "report.png"
    _browse(out / "report.html", f"--screenshot={shot}", "--window-size=1200,2400")
    image = imageio.imread(shot)
    assert image.shape[:2] == (2400, 1200) and image[:, :, :3].std() > 10  # a page drawn, not a blank one


def test_assess_refuses_bad_input_and_leaves_nothing_half_written(tmp_path):
    def assess(*arguments):
        return subprocess.run([*CLI, *map(str, arguments), "--video-size", "0"], capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    (tmp_path / "cut.csv").write_text("time,psm1_x,psm1_y,psm1_z,psm1_qx,psm1_qy,psm1_qz,psm1_qw\n0,0,0,0,0,0,0,1\n1,0")
    far = tmp_path / "far.csv"
    write_csv(Trajectory([0.0, 1.0], {"psm1": ArmPath([[1.0, 1.0, 1.0]] * 2, [np.eye(3)] * 2, [0.0, 0.0])}), far)
    cases = [
        (("cut.csv", "--task", "NavigateAnatomy"), "line 3: 2 columns, the header has 8"),
        (("cut.csv", "--task", "Nowhere"), "unknown environment 'Nowhere'"),
        ((far, "--task", "NavigateAnatomy", "--register", "absolute"), "no part of it is reachable"),
        ((SAMPLES / "navigate_novice.csv", "--task", "NavigateAnatomy", "--assist", "wobble"), "unknown assistance"),
    ]
    for arguments, problem in cases:
        result = assess(*(tmp_path / a if a == "cut.csv" else a for a in arguments), "--out", tmp_path / "out")
        assert result.returncode == 2 and problem in result.stderr, result.stderr
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a surgeon's notes")
    result = assess(SAMPLES / "navigate_novice.csv", "--task", "NavigateAnatomy", "--out", mine, "--force")
    assert result.returncode == 2 and "only a report surgisim assess wrote" in result.stderr
    assert (mine / "notes.txt").read_text() == "a surgeon's notes"
    report = tmp_path / "report"
    assert assess(SAMPLES / "navigate_novice_bag", "--task", "NavigateAnatomy", "--out", report).returncode == 0
    result = assess(SAMPLES / "navigate_novice_waypoints.yaml", "--task", "NavigateAnatomy", "--out", report)
    assert result.returncode == 2 and "give --force" in result.stderr
    assert assess(SAMPLES / "navigate_novice_waypoints.yaml", "--task", "NavigateAnatomy", "--out", report,
                  "--force").returncode == 0  # fmt: skip
    assert json.loads((report / "metrics.json").read_text())["trajectory"].endswith("waypoints.yaml")
