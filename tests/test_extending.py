"""The seams for new work: a task is its file plus one registry line, an arm is a robot class, a
robot input is a class plus one row in the bridge's table, an assistance mode is a registered
class and a metric one ``Metric``; none touches the env class, the runner, the twin or the surgeon
pipeline. The task, arm, robot input, assistance mode and metric here live only in this test."""

import json
from dataclasses import dataclass
from importlib.resources import files

import gymnasium
import numpy as np
import pytest

from surgisim.envs import SurgicalEnv
from surgisim.envs.camera import SegLabel
from surgisim.envs.robots import PSM
from surgisim.envs.scene import PSM2_RCM, PSM_AIM
from surgisim.envs.tasks import REGISTRY, Registered
from surgisim.envs.tasks.base import Expert, Task
from surgisim.envs.tasks.inputs import Layout, RobotInput
from surgisim.envs.tasks.markers import GoalMarker
from surgisim.envs.tasks.needle_reach import NeedleReach, NeedleReachExpert
from surgisim.envs.transforms import look_at_base
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge import world
from surgisim.ros_bridge.endpoints import QOS_SENSOR, Topic
from surgisim.ros_bridge.profiles import DvrkProfile
from surgisim.ros_bridge.runner import PolicyRunner
from surgisim.ros_bridge.shield import SafetyShield
from surgisim.ros_bridge.transport import InProcessBus, InProcessTransport
from surgisim.ros_bridge.twin import SimTwin
from surgisim.surgeon import assessment, assist, metrics
from surgisim.surgeon.readers import read_trajectory


class SlowPSM(PSM):
    """A PSM whose joints move half as far per step."""

    joint_step = PSM.joint_step / 2


class SlowReach(Task):
    """Bring a slow PSM's tip to a target."""

    arms = ("slow",)

    def build(self, scene):
        self.arm = scene.add_arm(SlowPSM, "slow", look_at_base(PSM2_RCM, PSM_AIM), SegLabel.INSTRUMENT)
        self.target = GoalMarker(scene)

    def reset(self, scene, rng):
        self.target.place(rng.uniform([-0.03, -0.03, 0.02], [0.03, 0.03, 0.04]))

    def achieved_goal(self, scene):
        return self.arm.tip_pose()[:3, 3]

    def desired_goal(self, scene):
        return self.target.position.copy()


class SlowReachExpert(Expert):
    def __call__(self, observation):
        return self.env.action_toward(observation["desired_goal"])


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, "SlowReach", Registered(SlowReach, SlowReachExpert))


@pytest.mark.parametrize("control", ["cartesian", "joint"])
def test_a_new_task_with_a_new_arm_runs_with_its_expert(registered, control):
    env = SurgicalEnv(task="SlowReach", control=control)
    assert env.action_space.shape == ((5 if control == "cartesian" else 7),)  # a PSM's: motion, roll or joints, jaw
    expert = REGISTRY["SlowReach"].expert(env)
    observation, info = env.reset(seed=0)
    for _ in range(SlowReach.max_episode_steps):
        observation, _, terminated, _, info = env.step(expert(observation))
        if terminated:
            break
    assert info["is_success"]
    env.close()


def test_the_joint_controller_takes_the_arms_own_step(registered):
    env = SurgicalEnv(task="SlowReach", control="joint")
    env.reset(seed=0)
    arm = env.unwrapped.task.arm
    before = arm.q.copy()
    env.step(np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0]))
    np.testing.assert_allclose(np.abs(arm.q - before), PSM.joint_step / 2, atol=1e-12)
    env.close()


def test_a_goal_position_is_set_through_the_task():
    env = SurgicalEnv(task="NeedleReach")
    env.reset(seed=0)
    env.set_goal([0.01, -0.02, 0.03])
    np.testing.assert_allclose(env.observe()["desired_goal"], [0.01, -0.02, 0.03], atol=1e-7)
    for bad in ([0.0, 0.0], [np.nan, 0.0, 0.0]):
        with pytest.raises(ValueError, match="3 finite numbers"):
            env.set_goal(bad)
    np.testing.assert_allclose(env.observe()["desired_goal"], [0.01, -0.02, 0.03], atol=1e-7)
    env.close()
    tracking = SurgicalEnv(task="EndoscopeTrack")
    tracking.reset(seed=0)
    with pytest.raises(ValueError, match="goal is not a position"):
        tracking.set_goal([0.0, 0.0, 0.05])
    tracking.close()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_layout_carries_an_episodes_scenery_to_another_episode(name):
    """What a robot's scene file holds: ``layout()`` of one episode, put into an env on another
    seed, gives the same task features; a wrong layout changes nothing."""
    entry = REGISTRY[name]
    assert all(issubclass(item, RobotInput) and item.description for item in entry.task.robot_inputs)
    assert (Layout in entry.task.robot_inputs) == bool(entry.task.layout_keys)
    source, target = SurgicalEnv(task=name), SurgicalEnv(task=name)
    source.reset(seed=1)
    target.reset(seed=2)
    layout = source.layout()
    assert set(layout) == set(entry.task.layout_keys)
    before = target.layout()
    with pytest.raises(ValueError, match="layout"):
        target.set_layout({**layout, "unknown": 1.0})
    assert target.layout() == before
    target.set_layout(layout)
    assert target.layout() == layout
    if name == "NavigateAnatomy":  # the anatomy is its observation's task part
        np.testing.assert_array_equal(source.observe()["observation"][10:], target.observe()["observation"][10:])
    elif layout:  # the marks are the goal
        np.testing.assert_array_equal(source.observe()["desired_goal"], target.observe()["desired_goal"])
    source.close()
    target.close()


class Beacon(RobotInput):
    """A beacon that a tracker follows on the robot: where the tip must go."""

    name = "beacon"
    description = "the position (m) of a beacon, from a tracker"
    wanted = "the beacon's position"

    def sense(self, env):
        return env.task.beacon()

    def take(self, env, value, stamp):
        env.task.track_beacon(value)


class BeaconReach(NeedleReach):
    """Bring the tip to a beacon that a tracker follows."""

    robot_inputs = (Beacon,)

    def beacon(self):
        return self.target.position.copy()

    def track_beacon(self, position):
        self.target.place(position)


BEACON = Topic("/test/beacon/measured_cp", msg.POINT_STAMPED, QOS_SENSOR)


def test_a_new_robot_input_travels_from_the_twin_to_the_runner(monkeypatch):
    """The input class and one row of the bridge's table: the twin publishes the beacon as a
    tracker would, the runner waits for it, its model takes it, and the arm reaches it."""
    env_id = "surgisim/BeaconReach-v0"
    monkeypatch.setitem(REGISTRY, "BeaconReach", Registered(BeaconReach, NeedleReachExpert))
    spec = gymnasium.envs.registration.EnvSpec(env_id, "surgisim.envs.core:SurgicalEnv", max_episode_steps=50,
                                               kwargs={"task": "BeaconReach"})  # fmt: skip
    monkeypatch.setitem(gymnasium.registry, env_id, spec)
    monkeypatch.setitem(world.CHANNELS, "beacon", world.Channel(BEACON, world.encode_point, world.decode_point))
    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), env_id, DvrkProfile(), seed=4)
    runner = PolicyRunner(InProcessTransport(bus), env_id, "expert", DvrkProfile(), SafetyShield(), period=0.1)
    runner.request("enable")
    runner.transport.spin_once()
    runner.request("home")
    twin.transport.spin_once()
    runner.transport.spin_once()
    assert runner._waiting() == f"waiting for the beacon's position on {BEACON.name}"
    beacon = twin.model.task.beacon()
    assert np.linalg.norm(beacon - runner.model.task.beacon()) > 0.005  # seeds 4 and 0 put it apart
    for _ in range(BeaconReach.max_episode_steps):
        info = twin.tick()
        if info["is_success"]:
            break
        assert runner.tick() == "sent"
        np.testing.assert_allclose(runner.model.task.beacon(), beacon, atol=1e-9)
    assert info["is_success"], info["distance_mm"]
    runner.close()
    twin.close()


@dataclass
class Lift(assist.Assist):
    """Lifts every set-point by ``height`` (m)."""

    name = "lift"
    height: float = 0.004

    def step(self, env, set_points):
        lifted = []
        for pose, jaw in set_points:
            pose = pose.copy()
            pose[2, 3] += self.height
            lifted.append((pose, jaw))
        return lifted


HEIGHT = metrics.Metric("mean_height_mm", "Mean height", "mm", "higher", "mean height of the tip above the tissue",
                        "this test", lambda m: float(np.mean(m.positions[:, 2])) * 1000)  # fmt: skip


def test_a_new_assistance_mode_and_a_new_metric_run_through_the_surgeon_pipeline(monkeypatch, tmp_path):
    monkeypatch.setitem(assist.ASSISTS, "lift", Lift)
    assists = assist.parse_assists("lift:height=0.003")
    assert isinstance(assists[0], Lift) and assists[0].height == 0.003
    trajectory = read_trajectory(files("surgisim.assets") / "trajectories" / "navigate_expert_like.csv")
    options = assessment.Options(reference="none", video_size=0, metrics=[*metrics.METRICS, HEIGHT])
    result = assessment.assess(trajectory, "surgisim/NavigateAnatomy-v0", assists, options)
    heights = {variant: values["mean_height_mm"] for variant, values in result.summary["metrics"].items()}
    assert heights["assisted"] == pytest.approx(heights["unassisted"] + 3.0, abs=0.1)
    assert result.summary["interventions"]["lift"]["max_mm"] == pytest.approx(3.0, abs=1e-6)
    assessment.write_report(result, tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    row = next(row for row in written["scorecard"] if row["key"] == "mean_height_mm")
    assert row["definition"] == HEIGHT.definition and written["assist"] == "lift:height=0.003"
    assert 'data-metric="mean_height_mm"' in (tmp_path / "report.html").read_text()
    assert "mean_height_mm" in (tmp_path / "metrics.csv").read_text()


def test_every_metric_in_the_table_is_computed_and_judged_and_nothing_else():
    trajectory = read_trajectory(files("surgisim.assets") / "trajectories" / "navigate_expert_like.csv")
    result = assessment.assess(trajectory, "surgisim/NavigateAnatomy-v0", [assist.Tremor()],
                               assessment.Options(video_size=0))  # fmt: skip
    keys = [metric.key for metric in metrics.METRICS]
    assert len(set(keys)) == len(keys)
    for variant, values in result.summary["metrics"].items():
        assert list(values) == keys, variant
    assert [row["key"] for row in result.summary["scorecard"]] == keys
    for row in result.summary["scorecard"]:
        assert row["definition"] and row["source"]
        assert set(row["lights"]) == {"unassisted", "assisted"}
        assert set(row["lights"].values()) <= {"green", "amber", "red", "none"}
