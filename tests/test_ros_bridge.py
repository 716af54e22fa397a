"""ROS 2 bridge: wire format, transports, QoS, shield, twin and runner, recorder."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import alias_bomb, dvrk_measured_cp, dvrk_tool_file
from surgisim.envs import SurgicalEnv
from surgisim.envs.tasks import REGISTRY
from surgisim.envs.transforms import make_pose, quat_to_matrix, rotation_from_vector, rotation_vector
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge import wire
from surgisim.ros_bridge.dds import DdsTransport, discovery_config, ros_domain_id
from surgisim.ros_bridge.endpoints import QOS_COMMAND, QOS_DEFAULT, QOS_LATCHED, QoS
from surgisim.ros_bridge.profiles import ARM_NAMESPACES, PSM_JOINT_NAMES, DvrkProfile, Ros2ControlProfile
from surgisim.ros_bridge.runner import PolicyRunner
from surgisim.ros_bridge.shield import SafetyShield, ShieldLimits, load_limits
from surgisim.ros_bridge.transport import InProcessBus, InProcessTransport, make_transport
from surgisim.ros_bridge.twin import SimTwin
from surgisim.ros_bridge.world import CAMERA, GOAL

REACH = "surgisim/NeedleReach-v0"
SAMPLES = {
    msg.POSE_STAMPED: msg.pose_stamped(
        make_pose(rotation_from_vector(np.array([0.1, -0.2, 0.3])), [0.01, -0.02, -0.1]), 1234.5678, "PSM1_base"
    ),
    msg.JOINT_STATE: msg.joint_state(list(PSM_JOINT_NAMES), np.linspace(-0.5, 0.5, 6), 3.25, np.ones(6)),
    msg.OPERATING_STATE: msg.operating_state("ENABLED", True, 1.0, is_busy=True),
    msg.STRING_STAMPED: msg.string_stamped("home", 2.0),
    msg.EMPTY: msg.empty(),
    msg.IMAGE: msg.image(np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8), 4.0),
    msg.COMPRESSED_IMAGE: msg.compressed_image(np.random.default_rng(1).integers(0, 256, (6, 5, 3), np.uint8), 4.0),
    msg.FLOAT64_MULTI_ARRAY: msg.float64_multi_array(np.arange(4.0)),
    msg.JOINT_TRAJECTORY: msg.joint_trajectory(list(PSM_JOINT_NAMES), np.zeros(6), 5.0, 0.01),
    msg.PARTICIPANT_ENTITIES_INFO: msg.participant_entities_info(bytes(range(16)), [("/", "n", [bytes(16)], [])]),
    "geometry_msgs/msg/TwistStamped": msg.message_class("geometry_msgs/msg/TwistStamped")(
        msg.header(6.0),
        msg.message_class("geometry_msgs/msg/Twist")(
            msg.message_class("geometry_msgs/msg/Vector3")(1.0, 2.0, 3.0),
            msg.message_class("geometry_msgs/msg/Vector3")(-1.0, 0.5, 0.0),
        ),
    ),
}


@pytest.fixture
def loopback(monkeypatch):
    """Discovery pinned to this machine; each test picks its own domain id."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)


# -- wire -------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", list(SAMPLES))
def test_dds_bytes_equal_rosbags_cdr(type_name):
    message = SAMPLES[type_name]
    sample = wire.to_idl(message, type_name)
    data = sample.serialize()
    assert data == msg.encode(message, type_name)
    assert data[:4] == b"\x00\x01\x00\x00"  # plain CDR, little endian
    back = wire.from_idl(type(sample).deserialize(data), type_name)
    assert msg.encode(back, type_name) == data


def test_ros_names_map_to_dds_names():
    assert wire.dds_topic("/PSM1/servo_cp") == "rt/PSM1/servo_cp"
    assert wire.dds_type_name(msg.POSE_STAMPED) == "geometry_msgs::msg::dds_::PoseStamped_"
    assert wire.idl_type(msg.OPERATING_STATE).__idl_typename__ == "crtk_msgs::msg::dds_::OperatingState_"
    with pytest.raises(ValueError, match="absolute"):
        wire.dds_topic("PSM1/servo_cp")


def test_message_readers_refuse_bad_values():
    bad = msg.pose_stamped(np.eye(4), 0.0)
    bad.pose.position.x = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        msg.pose_matrix(bad)
    zero = msg.pose_stamped(np.eye(4), 0.0)
    zero.pose.orientation.w = 0.0
    with pytest.raises(ValueError, match="zero quaternion"):
        msg.pose_matrix(zero)
    np.testing.assert_allclose(msg.pose_matrix(SAMPLES[msg.POSE_STAMPED]), msg.pose_matrix(
        msg.decode(msg.encode(SAMPLES[msg.POSE_STAMPED], msg.POSE_STAMPED), msg.POSE_STAMPED)))  # fmt: skip
    assert msg.stamp_seconds(SAMPLES[msg.POSE_STAMPED]) == pytest.approx(1234.5678, abs=1e-9)


# -- discovery settings, as rmw_cyclonedds reads them ----------------------------------------


@pytest.mark.parametrize(
    ("variables", "contains", "absent"),
    [({}, [], ["AllowMulticast"]),
     ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}, ["<AllowMulticast>false", '<Peer address="localhost"/>'], []),
     ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_STATIC_PEERS": "10.0.0.2;robot.local"},
      ['<Peer address="10.0.0.2"/>', '<Peer address="robot.local"/>'], ["AllowMulticast", "localhost"]),
     ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF", "ROS_STATIC_PEERS": "10.0.0.2"},
      ["<AllowMulticast>false", "<Tag>ros_discovery_off_"], ["10.0.0.2"]),
     ({"ROS_LOCALHOST_ONLY": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_STATIC_PEERS": "10.0.0.2"},
      ['<Peer address="localhost"/>'], ["10.0.0.2"]),
     ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "ROS_STATIC_PEERS": "10.0.0.2"}, [], ["Peer"])],
)  # fmt: skip
def test_discovery_follows_the_ros_variables(monkeypatch, variables, contains, absent):
    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "CYCLONEDDS_URI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = discovery_config()
    assert all(text in config for text in contains) and not any(text in config for text in absent)


def test_user_cyclonedds_uri_comes_last_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("CYCLONEDDS_URI", "file:///etc/my_cyclone.xml")
    assert discovery_config().endswith(",file:///etc/my_cyclone.xml")
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "EVERYWHERE")
    with pytest.warns(UserWarning, match="EVERYWHERE"):
        assert '<Peer address="localhost"/>' in discovery_config()
    monkeypatch.setenv("ROS_DOMAIN_ID", "seven")
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID"):
        ros_domain_id()
    monkeypatch.setenv("ROS_DOMAIN_ID", "7")
    assert ros_domain_id() == 7


# -- QoS and transports over real DDS -------------------------------------------------------------


def _spin_until(transports, condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        for transport in transports:
            transport.spin_once(0.01)
    return condition()


def test_best_effort_publisher_does_not_reach_a_reliable_command_subscriber(loopback):
    robot, policy = DdsTransport(domain_id=61), DdsTransport(domain_id=61)
    received = []
    robot.subscribe("/PSM1/servo_cp", msg.POSE_STAMPED, received.append, QOS_COMMAND)
    best_effort = policy.publisher("/PSM1/servo_cp", msg.POSE_STAMPED, QoS(reliable=False, depth=1))
    assert not policy.wait_for_match("/PSM1/servo_cp", timeout=1.0)
    for _ in range(5):
        best_effort(SAMPLES[msg.POSE_STAMPED])
    assert not _spin_until([robot], lambda: received, timeout=0.5)
    reliable = policy.publisher("/PSM1/servo_cp", msg.POSE_STAMPED, QOS_COMMAND)
    assert policy.wait_for_match("/PSM1/servo_cp")
    reliable(SAMPLES[msg.POSE_STAMPED])
    assert _spin_until([robot], lambda: received)
    assert msg.encode(received[0], msg.POSE_STAMPED) == msg.encode(SAMPLES[msg.POSE_STAMPED], msg.POSE_STAMPED)


def test_latched_operating_state_reaches_a_late_subscriber(loopback):
    robot, policy = DdsTransport(domain_id=62), DdsTransport(domain_id=62)
    robot.publisher("/PSM1/operating_state", msg.OPERATING_STATE, QOS_LATCHED)(msg.operating_state("ENABLED", True, 1))
    states = []
    policy.subscribe("/PSM1/operating_state", msg.OPERATING_STATE, states.append, QOS_LATCHED)
    assert _spin_until([policy], lambda: states)
    assert states[0].state == "ENABLED" and states[0].is_homed


def test_in_process_transport_follows_the_dds_qos_rules():
    bus = InProcessBus()
    robot, policy = InProcessTransport(bus), InProcessTransport(bus)
    robot.publisher("/PSM1/operating_state", msg.OPERATING_STATE, QOS_LATCHED)(msg.operating_state("ENABLED", True, 1))
    latched, volatile = [], []
    policy.subscribe("/PSM1/operating_state", msg.OPERATING_STATE, latched.append, QOS_LATCHED)
    policy.subscribe("/PSM1/operating_state", msg.OPERATING_STATE, volatile.append, QoS())
    policy.spin_once()
    assert len(latched) == 1 and not volatile  # only a transient-local reader gets the history
    robot.subscribe("/PSM1/servo_cp", msg.POSE_STAMPED, print, QOS_COMMAND)
    policy.publisher("/PSM1/servo_cp", msg.POSE_STAMPED, QoS(reliable=False, depth=1))
    assert not policy.wait_for_match("/PSM1/servo_cp") and not robot.wait_for_match("/PSM1/servo_cp")
    policy.publisher("/PSM1/servo_cp", msg.POSE_STAMPED, QOS_COMMAND)
    assert policy.wait_for_match("/PSM1/servo_cp") and robot.wait_for_match("/PSM1/servo_cp")
    policy.close()
    assert not robot.wait_for_match("/PSM1/servo_cp")


def test_transports_refuse_a_second_type_on_a_topic():
    transport = InProcessTransport(InProcessBus())
    transport.publisher("/PSM1/hold", msg.EMPTY)
    with pytest.raises(ValueError, match="carries std_msgs/msg/Empty"):
        transport.subscribe("/PSM1/hold", msg.POSE_STAMPED, print)
    with pytest.raises(ValueError, match="unknown transport"):
        make_transport("zeromq")


# -- the rclpy path, with a stand-in for rclpy (it needs a ROS 2 installation) --------------------


def test_rclpy_transport_sends_and_receives_cdr(monkeypatch, request):
    published, subscriptions, arrived, acknowledged = [], [], [], []

    class Node:
        def create_publisher(self, ros_type, topic, qos):
            return types.SimpleNamespace(
                publish=published.append,
                get_subscription_count=lambda: 1,
                wait_for_all_acked=lambda timeout: acknowledged.append(timeout) or True,
            )

        def create_subscription(self, ros_type, topic, callback, qos, raw=False):
            assert raw  # the bridge takes serialized messages
            subscriptions.append(callback)
            return types.SimpleNamespace(get_publisher_count=lambda: 1)

        def destroy_node(self):
            pass

    qos_module = types.SimpleNamespace(
        QoSProfile=lambda **kwargs: kwargs,
        HistoryPolicy=types.SimpleNamespace(KEEP_LAST="keep_last"),
        ReliabilityPolicy=types.SimpleNamespace(RELIABLE="reliable", BEST_EFFORT="best_effort"),
        DurabilityPolicy=types.SimpleNamespace(TRANSIENT_LOCAL="transient_local", VOLATILE="volatile"),
    )

    def spin_once(node, timeout_sec):  # the executor runs the callbacks of what has arrived
        while arrived:
            subscriptions[0](arrived.pop(0))

    rclpy = types.SimpleNamespace(ok=lambda: True, init=lambda: None, create_node=lambda name: Node(),
                                  spin_once=spin_once, qos=qos_module)  # fmt: skip
    utilities = types.SimpleNamespace(get_message=lambda name: name)
    monkeypatch.setitem(sys.modules, "rclpy", rclpy)
    monkeypatch.setitem(sys.modules, "rclpy.qos", qos_module)
    monkeypatch.setitem(sys.modules, "rclpy.duration", types.SimpleNamespace(Duration=lambda nanoseconds: nanoseconds))
    monkeypatch.setitem(sys.modules, "rosidl_runtime_py", types.SimpleNamespace(utilities=utilities))
    monkeypatch.setitem(sys.modules, "rosidl_runtime_py.utilities", utilities)
    module = "surgisim.ros_bridge.rclpy_transport"  # imported afresh on the stand-in rclpy, forgotten after
    monkeypatch.delitem(sys.modules, module, raising=False)
    request.addfinalizer(lambda: sys.modules.pop(module, None))

    transport = make_transport("auto")  # rclpy imports, so it is chosen
    assert type(transport).__name__ == "RclpyTransport"
    transport.publisher("/PSM1/servo_cp", msg.POSE_STAMPED, QOS_COMMAND)(SAMPLES[msg.POSE_STAMPED])
    assert published == [msg.encode(SAMPLES[msg.POSE_STAMPED], msg.POSE_STAMPED)]
    received = []
    transport.subscribe("/PSM1/measured_js", msg.JOINT_STATE, received.append)
    assert transport.spin_once() == 0
    arrived.extend([msg.encode(SAMPLES[msg.JOINT_STATE], msg.JOINT_STATE)] * 2)
    assert transport.spin_once() == 2  # what it delivered, as the other transports say
    np.testing.assert_array_equal(received[0].position, SAMPLES[msg.JOINT_STATE].position)
    assert transport.wait_for_match("/PSM1/servo_cp", timeout=0.1)
    assert transport.wait_for_acks("/PSM1/servo_cp", 0.1) and 0 < acknowledged[0] <= 100_000_000  # ns


# -- shield ---------------------------------------------------------------------------------------


def _joint_state(positions, stamp, names=PSM_JOINT_NAMES):
    message = msg.joint_state(list(names), np.zeros(len(positions)), stamp)
    message.position = np.asarray(positions, dtype=np.float64)
    return message


def _ready_shield(**limits):
    shield = SafetyShield(ShieldLimits(**limits), joint_schemes=(PSM_JOINT_NAMES,))
    shield.accept_operating_state(msg.operating_state("ENABLED", True, 0.0))
    assert shield.accept_joint_state(_joint_state(np.zeros(6), 1.0), now=0.0)
    return shield


def test_shield_rejects_unsound_joint_states_and_counts_them():
    shield = _ready_shield()
    assert not shield.accept_joint_state(_joint_state([np.nan, 0, 0, 0, 0, 0], 2.0), now=0.0)
    assert not shield.accept_joint_state(_joint_state(np.zeros(5), 2.0, PSM_JOINT_NAMES[:5]), now=0.0)
    assert not shield.accept_joint_state(_joint_state(np.zeros(6), 2.0, ["a", "b", "c", "d", "e", "f"]), now=0.0)
    assert not shield.accept_joint_state(_joint_state(np.ones(6), 0.5), now=0.0)  # older than the last
    assert not shield.accept_operating_state(msg.operating_state("SLEEPY", True, 0.0))
    assert sum(shield.counts.values()) == 5 and np.all(shield.joints == 0)  # the last good state stays


def decide(shield, measured, target, jaw, now):
    """What the runner does each tick: ready, and only then limit."""
    refusal = shield.ready(now)
    return refusal if refusal is not None else shield.limit(measured, target, jaw)


def test_shield_clips_steps_and_refuses_outside_the_workspace():
    shield = _ready_shield(max_speed=0.2, max_angular_speed=2.5)  # at the default 100 Hz: 2 mm, 0.025 rad a tick
    measured = make_pose(np.eye(3), [0.0, 0.0, -0.1])
    far = make_pose(rotation_from_vector(np.array([0.0, 0.0, 1.0])), [0.0, 0.03, -0.1])
    decision = decide(shield, measured, far, 0.5, now=0.05)
    assert np.linalg.norm(decision.pose[:3, 3] - measured[:3, 3]) == pytest.approx(0.002)
    assert np.linalg.norm(msg_rotation(measured, decision.pose)) == pytest.approx(0.025)
    assert decision.clipped == ["speed", "angular speed"] and shield.counts.total() == 0
    outside = _ready_shield(box_high=(0.1, 0.1, -0.15))
    assert decide(outside, measured, measured, 0.0, now=0.05).pose is None
    assert outside.counts["set-point: outside the workspace box"] == 1
    stale = decide(shield, measured, measured, 0.0, now=1.0)
    assert stale.pose is None and stale.hold
    shield.accept_operating_state(msg.operating_state("FAULT", True, 2.0))
    fault = decide(shield, measured, measured, 0.0, now=0.05)
    assert fault.pose is None and fault.hold


def msg_rotation(a, b):
    from surgisim.envs.transforms import rotation_vector

    return rotation_vector(a[:3, :3].T @ b[:3, :3])


numbers = st.floats(allow_nan=True, allow_infinity=True, width=64)
messages = st.one_of(
    st.tuples(st.just("js"), st.lists(numbers, min_size=0, max_size=8), st.floats(-1, 20), st.booleans()),
    st.tuples(st.just("op"), st.sampled_from(["ENABLED", "DISABLED", "FAULT", "PAUSED", "???"]), st.booleans()),
    st.tuples(st.just("jaw"), st.lists(numbers, min_size=0, max_size=2)),
    st.tuples(st.just("cmd"), st.lists(numbers, min_size=7, max_size=7), st.floats(0, 30)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=30))
def test_fuzzed_messages_never_produce_a_command_outside_the_limits(events):
    limits = ShieldLimits()
    shield = SafetyShield(limits, joint_schemes=(PSM_JOINT_NAMES,))
    from surgisim.envs.tools import default_tool

    for event in events:
        if event[0] == "js":
            names = PSM_JOINT_NAMES if event[3] else tuple(f"j{i}" for i in range(len(event[1])))
            shield.accept_joint_state(_joint_state(event[1], event[2], names[: len(event[1])]), now=event[2])
        elif event[0] == "op":
            shield.accept_operating_state(msg.operating_state(event[1], event[2], 0.0))
        elif event[0] == "jaw":
            message = msg.joint_state(["jaw"], np.zeros(0), 0.0)
            message.position = np.asarray(event[1], dtype=np.float64)
            shield.accept_jaw_state(message)
        else:
            values, now = np.asarray(event[1]), event[2]
            measured = default_tool().tip(shield.joints) if shield.joints is not None else np.eye(4)
            target = make_pose(rotation_from_vector(np.nan_to_num(values[3:6]) % 7), values[:3])
            decision = decide(shield, measured, target, values[6], now)
            if decision.pose is None:
                continue
            assert shield.state == "ENABLED" and shield.homed
            assert now - shield.last_state_time <= limits.state_timeout
            position = decision.pose[:3, 3]
            assert np.all(np.isfinite(decision.pose)) and np.isfinite(decision.jaw)
            assert np.all(position >= limits.box_low) and np.all(position <= limits.box_high)
            assert limits.insertion[0] <= np.linalg.norm(position) <= limits.insertion[1]
            assert np.linalg.norm(position - measured[:3, 3]) <= limits.max_speed * shield.period + 1e-9
            assert (
                np.linalg.norm(msg_rotation(measured, decision.pose)) <= limits.max_angular_speed * shield.period + 1e-6
            )


# -- twin and runner -----------------------------------------------------------------------------


def _pair(policy="pretrained", dry_run=False, command="servo_cp"):
    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), REACH, DvrkProfile(), seed=3)
    runner = PolicyRunner(InProcessTransport(bus), REACH, policy, DvrkProfile(command=command), SafetyShield(),
                          dry_run=dry_run)  # fmt: skip
    spy = InProcessTransport(bus)
    seen = {"servo_cp": 0, "servo_jp": 0, "hold": 0, "preview": 0}
    spy.subscribe("/PSM1/servo_cp", msg.POSE_STAMPED, lambda m: seen.__setitem__("servo_cp", seen["servo_cp"] + 1))
    spy.subscribe("/PSM1/servo_jp", msg.JOINT_STATE, lambda m: seen.__setitem__("servo_jp", seen["servo_jp"] + 1))
    spy.subscribe("/PSM1/hold", msg.EMPTY, lambda m: seen.__setitem__("hold", seen["hold"] + 1))
    spy.subscribe("/PSM1/preview/servo_cp", msg.POSE_STAMPED,
                  lambda m: seen.__setitem__("preview", seen["preview"] + 1))  # fmt: skip
    return twin, runner, spy, seen


def test_a_twin_with_kinematic_errors_reports_its_joints_model_not_where_the_tip_is():
    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), REACH, DvrkProfile(), seed=3, randomize="kinematics")
    spy, seen = InProcessTransport(bus), {}
    spy.subscribe("/PSM1/measured_cp", msg.POSE_STAMPED, lambda m: seen.__setitem__("cp", msg.pose_matrix(m)))
    spy.subscribe("/PSM1/measured_js", msg.JOINT_STATE, lambda m: seen.__setitem__("js", np.array(m.position)))
    twin.tick()
    spy.spin_once()
    tool = twin.arm.tool
    # What a dVRK computes from its encoders (the dVRK's own FK, conftest) ...
    assert np.allclose(seen["cp"], dvrk_measured_cp(dvrk_tool_file(tool.name), seen["js"]), atol=5e-5)
    # ... while the instrument is elsewhere, by the millimetres of an uncalibrated arm.
    reported_tip = twin.arm.base @ seen["cp"] @ twin.arm.cp_to_tip
    assert 0.0005 < np.linalg.norm(reported_tip[:3, 3] - twin.arm.tip_pose()[:3, 3]) < 0.01
    twin.close()


@pytest.mark.parametrize("command", ["servo_cp", "servo_jp"])
def test_runner_completes_needle_reach_on_the_twin_and_nothing_moves_while_disabled(command):
    twin, runner, spy, seen = _pair(command=command)
    for _ in range(10):
        twin.tick()
        runner.tick()
    spy.spin_once()
    assert seen[command] == 0 and runner.shield.counts["robot not enabled and homed"] == 10
    runner.request("enable")
    runner.request("home")
    positions = []
    for step in range(600):  # noqa: B007  (the step count is checked after the loop)
        info = twin.tick()
        positions.append(twin.arm.tool.cp(twin.arm.q)[:3, 3])
        if info["is_success"]:
            break
        runner.tick()
        spy.spin_once()  # each command as it comes (the spy keeps the ROS 2 default depth of 10)
    assert info["is_success"] and seen[command] == runner.sent == step
    # A tick (10 ms) sends a tenth of a policy step (the env's 0.1 s): at most 0.05 m/s, as trained.
    assert np.max(np.linalg.norm(np.diff(positions, axis=0), axis=1)) <= 0.05 * 0.01 + 1e-9
    twin.close()
    runner.close()


def test_stale_state_stops_commands_and_sends_hold():
    twin, runner, spy, seen = _pair()
    runner.request("enable")
    runner.request("home")
    twin.tick()
    assert runner.tick() == "sent"
    runner.shield.last_state_time -= 1.0  # the arm has gone quiet for a second
    assert runner.tick() == "stale joint state"
    assert runner.tick() == "stale joint state"
    spy.spin_once()
    assert seen["hold"] == 1 and seen["servo_cp"] == 1  # one hold per stop, nothing more sent
    twin.close()
    runner.close()


def test_dry_run_publishes_to_preview_only_and_goal_is_required():
    twin, runner, spy, seen = _pair(dry_run=True)
    runner.request("enable")
    runner.request("home")
    for _ in range(5):
        twin.tick()
        runner.tick()
    spy.spin_once()
    assert seen["preview"] == 5 and seen["servo_cp"] == 0
    for task, why in (("NeedleHandover", "drives psm1, psm2; the ros2_control profile drives one PSM"),
                      ("EndoscopeTrack", "drives ecm; the ros2_control profile drives one PSM")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            PolicyRunner(InProcessTransport(InProcessBus()), f"surgisim/{task}-v0", "expert", Ros2ControlProfile(),
                         SafetyShield(requires_operating_state=False))  # fmt: skip
    assert GOAL.name == "/surgisim/goal"


# NavigateAnatomy's expert swings with the jaw tips 4 cm from the RCM (measured_cp 29.8 mm), inside
# the default shield's 30 mm: a lab would allow it in a limits file, as here.
DEPLOYED = {"NeedlePick": {}, "NeedleInsert": {}, "SutureThrow": {}, "NavigateAnatomy": {"insertion": (0.025, 0.2)},
            "NeedleHandover": {}, "EndoscopeTrack": {}}  # fmt: skip


@pytest.mark.parametrize("task", list(DEPLOYED))
def test_every_one_arm_task_is_deployable_against_the_twin_from_its_topics(task):
    """The twin publishes what a lab's tracker and scene file would give (needle pose, scene); the
    runner's model takes nothing else from the twin, and the scripted expert on it succeeds."""
    env_id, bus = f"surgisim/{task}-v0", InProcessBus()
    profile = DvrkProfile(ARM_NAMESPACES[REGISTRY[task].task.arms[0]])  # /ECM for EndoscopeTrack
    twin = SimTwin(InProcessTransport(bus), env_id, profile, seed=5)
    runner = PolicyRunner(InProcessTransport(bus), env_id, "expert", profile,
                          SafetyShield(ShieldLimits(**DEPLOYED[task])), period=0.1)  # fmt: skip
    runner.request("enable")
    twin.tick()
    runner.request("home")
    for _ in range(twin.model.task.max_episode_steps):
        info = twin.tick()
        if info["is_success"]:
            break
        runner.tick()
        if task == "EndoscopeTrack":  # in real time: the runner takes the lesion's speed from the stamps
            time.sleep(0.1)
    assert info["is_success"], (task, info["distance_mm"], dict(runner.shield.counts))
    assert runner.sent > 0 and not runner.shield.counts
    runner.close()
    twin.close()


def test_the_shipped_endoscope_policy_tracks_the_lesion_it_hears_of_on_the_ecm():
    """EndoscopeTrack on the robot: the ECM's own topics, and the lesion's position from a topic;
    its velocity the runner estimates from the stamps, as the policy sees it in the env."""
    env_id, bus, profile = "surgisim/EndoscopeTrack-v0", InProcessBus(), DvrkProfile("/ECM")
    twin = SimTwin(InProcessTransport(bus), env_id, profile, seed=8)
    runner = PolicyRunner(InProcessTransport(bus), env_id, "pretrained", profile, SafetyShield(), period=0.1)
    runner.request("enable")
    twin.tick()
    runner.request("home")
    for tick in range(15):
        info = twin.tick()
        assert runner.tick() == "sent"
        if tick >= 2:  # with a control period of history, the lesion is what the env would show
            features = twin.model.observe()["observation"][-6:] - runner.model.observe()["observation"][-6:]
            # The velocity comes from stamps 0.1 s apart: on a busy machine they jitter by several ms,
            # which moves a step's 1.5 mm by up to 0.2 mm.
            assert np.abs(features[:3]).max() < 1e-6 and np.abs(features[3:]).max() < 2.5e-4
        time.sleep(0.1)
    assert info["is_success"] and info["distance_mm"] < 5.0
    runner.close()
    twin.close()


def test_a_scene_file_gives_the_runner_the_layout_and_a_wrong_one_is_named(tmp_path):
    twin_env = SurgicalEnv("NeedleInsert")
    twin_env.reset(seed=2)
    scene = tmp_path / "scene.yaml"
    scene.write_text(yaml.safe_dump({"task": "NeedleInsert", "frame": "world", "layout": twin_env.layout()}))
    runner = PolicyRunner(InProcessTransport(InProcessBus()), "surgisim/NeedleInsert-v0", "expert", DvrkProfile(),
                          SafetyShield(), scene_file=scene)  # fmt: skip
    assert np.array_equal(runner.model.task.marks, twin_env.task.marks)
    runner.close()
    bad = {"marks": [[0.0, 0.0, float("nan")], [0.01, 0.0, 0.0]]}
    far = {"marks": [[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]]}  # marks a kilometre apart
    for task, layout, problem in (("NeedlePick", {}, "is for task 'NeedlePick'"),
                                  ("NeedleInsert", bad, "not (2, 3) finite numbers"),
                                  ("NeedleInsert", {}, "missing: marks"),
                                  ("NeedleInsert", far, "outside the task's workspace")):  # fmt: skip
        scene.write_text(yaml.safe_dump({"task": task, "frame": "world", "layout": layout}))
        with pytest.raises(ValueError, match=re.escape(f"{scene}: ") + ".*" + re.escape(problem)):
            PolicyRunner(InProcessTransport(InProcessBus()), "surgisim/NeedleInsert-v0", "expert", DvrkProfile(),
                         SafetyShield(), scene_file=scene)  # fmt: skip
    scene.write_text(alias_bomb())  # 1 GB of memory once read without limits
    with pytest.raises(ValueError, match="over 100000 values once its aliases are expanded") as error:
        PolicyRunner(InProcessTransport(InProcessBus()), "surgisim/NeedleInsert-v0", "expert", DvrkProfile(),
                     SafetyShield(), scene_file=scene)  # fmt: skip
    assert len(str(error.value)) < 300
    twin_env.close()


def test_runner_drives_a_ros2_control_arm_with_joint_trajectories():
    bus = InProcessBus()
    arm = InProcessTransport(bus)  # plays the ros2_control side: joint states out, trajectories in
    profile = Ros2ControlProfile("/arm_controller", "joint_trajectory")
    runner = PolicyRunner(InProcessTransport(bus), REACH, "expert", profile,
                          SafetyShield(requires_operating_state=False), period=0.02)  # fmt: skip
    trajectories = []
    arm.subscribe("/arm_controller/joint_trajectory", msg.JOINT_TRAJECTORY, trajectories.append, QOS_COMMAND)
    publish_state = arm.publisher("/joint_states", msg.JOINT_STATE)
    goal = arm.publisher(GOAL.name, GOAL.type_name, GOAL.qos)
    start = runner.model.scene.psm_home(np.array([0.0, 0.0, 0.03]))
    # /joint_states lists other joints too, in another order; the runner picks the arm's.
    names = ["jaw", *reversed(PSM_JOINT_NAMES)]
    publish_state(_joint_state([0.1, *reversed(start)], 1.0, names))
    target = runner.arm.base_inv @ np.array([0.01, 0.0, 0.03, 1.0])
    goal(msg.pose_stamped(make_pose(np.eye(3), target[:3]), 1.0))
    assert runner.tick() == "sent"
    arm.spin_once()
    (point,) = trajectories[0].points
    assert list(trajectories[0].joint_names) == list(PSM_JOINT_NAMES)
    assert point.time_from_start.nanosec == 20_000_000 and not np.allclose(point.positions, start)
    runner.shield.last_state_time -= 1.0  # silence: hold in place, at the measured joints
    assert runner.tick() == "stale joint state"
    arm.spin_once()
    np.testing.assert_allclose(trajectories[-1].points[0].positions, start, atol=1e-9)


class CameraPolicy:
    """A policy that takes the camera's 40 px images (``obs_mode``), keeps what it is given and holds still."""

    def __init__(self, obs_mode="rgb", shapes=None, tip_zoom=None):
        self.env_kwargs = {"obs_mode": obs_mode, "image_size": 40, **({"tip_zoom": tip_zoom} if tip_zoom else {})}
        if shapes is not None:
            self.observation_shapes = shapes
        self.seen = []

    def reset(self):
        pass

    def __call__(self, observation):
        self.seen.append(observation)
        return np.zeros(5, dtype=np.float32)


def _camera_pair(policy, fov_deg=None, camera_size=40):
    """A NeedleReach twin with its camera (of ``fov_deg`` if given) and a runner of ``policy``,
    enabled, homed and after one twin tick."""
    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), REACH, DvrkProfile(), seed=1, camera=True, image_size=camera_size)
    if fov_deg is not None:
        twin.model.scene.camera.fov_deg = fov_deg
    runner = PolicyRunner(InProcessTransport(bus), REACH, policy, DvrkProfile(), SafetyShield())
    runner.request("enable")
    runner.request("home")
    twin.tick()
    return twin, runner


def test_runner_feeds_camera_images_to_a_pixel_policy():
    policy = CameraPolicy()
    twin, runner = _camera_pair(policy)
    assert runner.tick() == "sent"
    np.testing.assert_array_equal(policy.seen[0]["rgb"], twin.model.observe()["rgb"])
    with pytest.raises(ValueError, match="depth images"):
        PolicyRunner(InProcessTransport(InProcessBus()), REACH, CameraPolicy("rgbd"), DvrkProfile(), SafetyShield())
    # A camera of another field of view: the images have the right size, and nothing is sent.
    twin, runner = _camera_pair(CameraPolicy(), fov_deg=50.0)
    assert "fx 42.9, fy 42.9" in runner.tick() and "fx = fy 28.6" in runner.start_error and runner.sent == 0


def test_runner_gives_a_vision_policy_what_a_robot_has_from_the_camera_and_the_joints():
    """A policy of obs_mode "robot" gets the camera topic's image, the arm's state from its measured
    joints and the operator's goal: what the twin's env gives in the robot mode, nothing else."""
    policy = CameraPolicy("robot", {"rgb": (40, 40, 3), "state": (10,), "goal": (3,)})
    twin, runner = _camera_pair(policy)
    assert runner.tick() == "sent"
    robot = SurgicalEnv(task="NeedleReach", obs_mode="robot", image_size=40)
    robot.reset(seed=1)
    expected = robot.observe()
    seen = policy.seen[0]
    assert set(seen) == {"rgb", "state", "goal"}
    np.testing.assert_array_equal(seen["rgb"], twin.model.observe()["rgb"])
    for key in ("state", "goal"):
        np.testing.assert_allclose(seen[key], expected[key], atol=1e-6)
    robot.close()
    runner.close()
    twin.close()


def test_runner_cuts_a_vision_policys_tip_view_from_a_finer_camera():
    """A policy that sees the tip view (tip_zoom 4) of 40 px images takes a 160 px camera: the
    runner shrinks it for ``rgb`` and cuts the magnified view around the arm's reported tip, as
    the env renders them; a camera of the policy's own size is refused with the size to give."""
    shapes = {"rgb": (40, 40, 3), "state": (10,), "goal": (3,), "tip_rgb": (40, 40, 3)}
    policy = CameraPolicy("robot", shapes, tip_zoom=4.0)
    twin, runner = _camera_pair(policy, camera_size=160)
    assert runner.tick() == "sent"
    robot = SurgicalEnv(task="NeedleReach", obs_mode="robot", image_size=40, tip_zoom=4)
    robot.reset(seed=1)
    expected, seen = robot.observe(), policy.seen[0]
    assert set(seen) == set(shapes)
    for key in ("rgb", "tip_rgb"):  # shrunk or cut from 160 px against rendered at 40 px
        assert np.abs(seen[key].astype(int) - expected[key]).mean() < 6, key
    robot.close()
    twin, small = _camera_pair(CameraPolicy("robot", shapes, tip_zoom=4.0), camera_size=40)
    assert "160x160 or a larger multiple of 40 (for its 4x tip view)" in small.tick() and small.sent == 0
    for each in (runner, small, twin):
        each.close()


def test_compressed_images_decode_as_image_transport_writes_them():
    """image_transport's compressed plugin: OpenCV's JPEG or PNG of the BGR image, its format
    "<encoding>; <codec> compressed bgr8"; a depth or mono image, or data that is no image, is refused."""
    import cv2

    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[:16, :, 0], rgb[16:, :24, 1], rgb[16:, 24:, 2] = 200, 150, 250  # red top, green and blue below
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    make = msg.message_class(msg.COMPRESSED_IMAGE)
    jpeg = make(msg.header(1.0), "rgb8; jpeg compressed bgr8", cv2.imencode(".jpg", bgr)[1].reshape(-1))
    error = np.abs(msg.compressed_image_array(jpeg).astype(int) - rgb)  # lossy at the colour edges
    assert error.mean() < 6 and error[4:12, 4:20].max() < 12 and error[20:28, 30:44].max() < 12
    png = make(msg.header(1.0), "bgr8; png compressed bgr8", cv2.imencode(".png", bgr)[1].reshape(-1))
    np.testing.assert_array_equal(msg.compressed_image_array(png), rgb)
    np.testing.assert_array_equal(msg.compressed_image_array(msg.compressed_image(rgb, 1.0)), rgb)
    depth = make(msg.header(1.0), "16UC1; compressedDepth png", png.data)
    mono = make(msg.header(1.0), "mono8; png compressed mono8", cv2.imencode(".png", rgb[..., 0])[1].reshape(-1))
    garbage = make(msg.header(1.0), "rgb8; jpeg compressed bgr8", np.arange(50, dtype=np.uint8))
    for message, problem in ((depth, "not supported"), (mono, "colour image"), (garbage, "undecodable")):
        with pytest.raises(ValueError, match=problem):
            msg.compressed_image_array(message)


def test_a_vision_policy_runs_from_the_compressed_image_without_a_needle_tracker():
    """A vision policy finds the needle in the image: its runner waits only for the operator's goal,
    takes image_transport's compressed image when no raw one comes, and says the goal distance is
    unknown rather than computing one from a needle nobody tracked. A state policy waits for the tracker."""
    pick = "surgisim/NeedlePick-v0"
    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), pick, DvrkProfile(), seed=2, camera=True, image_size=40)
    twin.inputs = [robot_input for robot_input in twin.inputs if robot_input.name != "needle"]  # no tracker
    twin.publish[CAMERA.name] = lambda message: None  # only the compressed transport
    policy = CameraPolicy("robot", {"rgb": (40, 40, 3), "state": (10,), "goal": (3,)})
    runner = PolicyRunner(InProcessTransport(bus), pick, policy, DvrkProfile(), SafetyShield())
    state_runner = PolicyRunner(InProcessTransport(bus), pick, CameraPolicy("state"), DvrkProfile(), SafetyShield())
    for each in (runner, state_runner):
        each.request("enable")
        each.request("home")
    twin.tick()
    assert runner.tick() == "sent"
    np.testing.assert_array_equal(policy.seen[0]["rgb"], twin.model.observe()["rgb"])
    assert runner.progress["distance_mm"] is None and "no needle received" in runner.progress["unknown"]
    assert state_runner.tick() == "waiting for the needle's pose on /surgisim/needle/measured_cp"
    for each in (runner, state_runner, twin):
        each.close()


def test_profiles_name_the_crtk_and_ros2_control_topics():
    profile = DvrkProfile("/PSM2", "servo_jp")
    assert profile.servo_jp.name == "/PSM2/servo_jp" and profile.servo_jp.qos == QOS_COMMAND
    assert profile.operating_state.qos.transient_local and profile.jaw_servo_jp.name == "/PSM2/jaw/servo_jp"
    control = Ros2ControlProfile("/arm_controller", "commands")
    assert control.command_topic.name == "/arm_controller/commands"
    assert control.command_topic.type_name == msg.FLOAT64_MULTI_ARRAY and not control.has_operating_state
    with pytest.raises(ValueError, match="servo_cp or servo_jp"):
        DvrkProfile(command="move_cp")


# -- separate processes over DDS, recorder, CLI --------------------------------------------------


def _ros_env(domain):
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("CYCLONEDDS_URI", None)
    return env


def test_the_shipped_vision_policy_reaches_from_the_twins_camera_over_dds():
    """The vision NeedleReach policy, in its own process, sees the twin's camera over DDS (the
    image, its camera info) and the arm's joints, and reaches the goal; the summary says what the
    image and the policy cost a tick."""
    env = _ros_env(68)
    cli = [sys.executable, "-m", "surgisim.agents.cli", "ros"]
    twin = subprocess.Popen([*cli, "twin", "NeedleReach", "--seed", "5", "--camera", "--image-size", "64",
                             "--until-success", "--duration", "60", "--transport", "dds"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    runner = subprocess.run([*cli, "run", "NeedleReach", "--policy", "vision", "--enable", "--until-success",
                             "--duration", "60", "--transport", "dds"], env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    twin_out, twin_err = twin.communicate(timeout=60)
    assert runner.returncode == 0, runner.stderr
    summary = json.loads(runner.stdout.strip().splitlines()[-1])
    assert summary["is_success"] and json.loads(twin_out.strip().splitlines()[-1])["is_success"], twin_err
    assert summary["image_ms_median"] > 0 and summary["policy_ms_median"] > 0


def test_twin_and_runner_in_separate_processes_complete_needle_reach_over_dds(tmp_path):
    env = _ros_env(63)
    cli = [sys.executable, "-m", "surgisim.agents.cli", "ros"]
    pipes = {"env": env, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    twin = subprocess.Popen([*cli, "twin", "NeedleReach", "--seed", "3", "--until-success", "--duration", "60",
                             "--transport", "dds"], **pipes)  # fmt: skip
    recorder = subprocess.Popen([*cli, "record", str(tmp_path / "session"), "--duration", "20", "--transport", "dds"],
                                **pipes)  # fmt: skip
    runner = subprocess.run([*cli, "run", "NeedleReach", "--enable", "--until-success", "--duration", "60",
                             "--transport", "dds"], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    twin_out, twin_err = twin.communicate(timeout=60)
    assert runner.returncode == 0, runner.stderr
    assert twin.returncode == 0, twin_err
    summary, result = json.loads(runner.stdout.strip().splitlines()[-1]), json.loads(twin_out.strip().splitlines()[-1])
    assert result["is_success"] and summary["sent"] > 0
    assert summary["policy_ms_median"] > 0 and summary["image_ms_median"] is None  # a state policy: no image
    recorder.send_signal(2)  # Ctrl-C: the bag is finished and moved into place
    recorded = json.loads(recorder.communicate(timeout=60)[0].strip().splitlines()[-1])
    assert recorded["messages"]["/PSM1/servo_cp"] > 0 and recorded["messages"]["/PSM1/measured_js"] > 0

    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "session"]) as reader:
        types_by_topic = {connection.topic: connection.msgtype for connection in reader.connections}
        assert types_by_topic["/PSM1/servo_cp"] == msg.POSE_STAMPED
        assert types_by_topic["/PSM1/operating_state"] == msg.OPERATING_STATE
        commands = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                    if c.topic == "/PSM1/servo_cp"]  # fmt: skip
    assert len(commands) == recorded["messages"]["/PSM1/servo_cp"]
    assert all(np.isfinite(msg.pose_matrix(command)).all() for command in commands)


def test_bad_shield_limits_file_is_named(tmp_path):
    limits = tmp_path / "limits.yaml"
    limits.write_text("max_speed: 0.004\nmax_translation: 3\n")
    result = subprocess.run([sys.executable, "-m", "surgisim.agents.cli", "ros", "run", "--limits", str(limits),
                             "--duration", "1"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and str(limits) in result.stderr and "max_translation" in result.stderr


@pytest.mark.parametrize("rate", ["0", "1e-9", "1e6", "nan"])
def test_a_rate_outside_1_to_1000_hz_is_refused(rate):
    for command in ("run", "twin"):
        result = subprocess.run([sys.executable, "-m", "surgisim.agents.cli", "ros", command, "--rate", rate],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 2 and f"must be from 1 to 1000 Hz, got {rate}" in result.stderr


@pytest.mark.parametrize("stop", ["duration", "SIGINT", "SIGTERM"])
def test_the_runner_stops_at_its_deadline_and_on_signals_and_sends_hold(loopback, monkeypatch, stop):
    domain = {"duration": 64, "SIGINT": 65, "SIGTERM": 66}[stop]
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    listener = DdsTransport()  # plays the arm: counts the holds it is sent
    holds = []
    listener.subscribe("/PSM1/hold", msg.EMPTY, holds.append, DvrkProfile().hold.qos)
    command = [sys.executable, "-m", "surgisim.agents.cli", "ros", "run", "NeedleReach", "--dry-run", "--rate", "1",
               "--transport", "dds", *(["--duration", "3"] if stop == "duration" else [])]  # fmt: skip
    runner = subprocess.Popen(command, env=_ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.wait_for_match("/PSM1/hold", timeout=60), "the runner never started"
        if stop != "duration":
            time.sleep(1.5)  # a tick or two
            runner.send_signal(getattr(signal, stop))
        out, err = runner.communicate(timeout=10)  # at 1 Hz a tick waits a second; stopping must not
    finally:
        runner.kill()
    assert runner.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["refused"]["no joint states received"] == summary["ticks"] >= 1  # no arm: nothing sent
    deadline = time.monotonic() + 5
    while not holds and time.monotonic() < deadline:
        listener.spin_once(0.05)
    assert len(holds) == 1  # on the way out
    listener.close()


def test_the_runner_refuses_another_tasks_policy():
    endoscope = str(files("surgisim.assets") / "policies" / "EndoscopeTrack-v0.onnx")
    with pytest.raises(ValueError, match="trained on surgisim/EndoscopeTrack-v0, not surgisim/NeedleReach-v0"):
        PolicyRunner(InProcessTransport(InProcessBus()), REACH, endoscope, DvrkProfile(), SafetyShield())


# The limits that keep a real PSM safe whatever a file asks for, as docs/deployment.md states them:
# the box within 0.3 m of the RCM, insertion within 0.25 m, at most 0.2 m/s, 3 rad/s and 5 rad/s of
# jaw, a watchdog of at most 1 s.
SAFE = {"box_low": 0.3, "box_high": 0.3, "insertion": 0.25, "max_speed": 0.2, "max_angular_speed": 3.0,
        "max_jaw_speed": 5.0, "state_timeout": 1.0}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [("max_speed: true\n", "max_speed must hold finite numbers"),
     ("max_speed: 0.04\nmax_speed: 0.02\n", "'max_speed' appears twice"),
     ("max_speed: 1.0e6\n", "max_speed = 1000000.0 lies outside 0.0 to 0.2 m/s"),
     ("insertion: [0.03, 0.1, 0.2]\n", "insertion must be a list of 2 numbers"),
     ("box_low: [-0.1, -0.1]\n", "box_low must be a list of 3 numbers"),
     ("state_timeout: .nan\n", "state_timeout must hold finite numbers"),
     ("max_angular_speed: '0.1'\n", "max_angular_speed must hold finite numbers"),
     ("box_low: [0.1, 0.1, -0.02]\nbox_high: [0.1, 0.2, -0.01]\n", "must lie below box_high"),
     ("- max_speed\n", "expected a mapping"),
     ("max_speed: [0.003\n", "not valid shield limits")],
)  # fmt: skip
def test_bad_limits_files_are_refused_naming_the_file_and_the_limit(tmp_path, text, message):
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_limits(path)
    assert str(path) in str(error.value)


def test_limits_files_take_numbers_in_any_yaml_notation(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("max_speed: 3e-2\nmax_angular_speed: 1E-1\nbox_low: [-5e-2, -0.05, -1.6e-1]\n")
    limits = load_limits(path)
    assert limits.max_speed == 0.03 and limits.max_angular_speed == 0.1 and limits.box_low == (-0.05, -0.05, -0.16)


LIMIT_VALUES = st.one_of(
    st.floats(0, 0.02), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**9), 10**9), st.booleans(),
    st.none(), st.text(max_size=4), st.lists(st.floats(-0.5, 0.5), max_size=4),
    st.lists(st.one_of(st.booleans(), st.text(max_size=2), st.floats(), st.none()), max_size=4),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    values=st.dictionaries(st.sampled_from([*SAFE, "max_speed", "box"]), LIMIT_VALUES, max_size=7),
    duplicate=st.booleans(),
)
def test_fuzzed_limits_files_give_safe_limits_or_an_error_naming_the_file(values, duplicate):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "limits.yaml"
        text = yaml.safe_dump(values, width=1000)
        path.write_text(text + (text.splitlines()[0] + "\n" if duplicate and values else ""))
        try:
            limits = load_limits(path)
        except ValueError as error:
            assert str(path) in str(error)
            return
    assert not duplicate or not values
    for name, bound in SAFE.items():
        value = np.array(getattr(limits, name), dtype=float)
        assert np.all(np.isfinite(value)) and np.all(np.abs(value) <= bound), name
    assert all(type(number) is float for number in [*limits.box_low, *limits.box_high, *limits.insertion])
    assert np.all(np.array(limits.box_low) < np.array(limits.box_high))
    assert 0 <= limits.insertion[0] < limits.insertion[1]
    assert min(limits.max_speed, limits.max_angular_speed, limits.max_jaw_speed, limits.state_timeout) > 0


def test_what_a_killed_recorder_left_is_removed_by_the_next(tmp_path):
    from surgisim.ros_bridge.recorder import Recorder

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".session.surgisim-{dead.pid}-k1ll3d"  # as a SIGKILLed recording leaves it
    (stale / "session").mkdir(parents=True)
    recorder = Recorder(InProcessTransport(InProcessBus()), [DvrkProfile().hold], tmp_path / "session")
    assert recorder.close() == tmp_path / "session"
    assert os.listdir(tmp_path) == ["session"]


def test_record_refuses_a_bag_path_it_cannot_write(tmp_path):
    (tmp_path / "notes.txt").write_text("keep")
    result = subprocess.run([sys.executable, "-m", "surgisim.agents.cli", "ros", "record", "notes.txt/bag",
                             "--duration", "1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "cannot write the bag" in result.stderr and "Traceback" not in result.stderr


# -- against a dVRK-like CRTK arm written for the test -------------------------------------------


# The PSM's joint names as dVRK releases publish them.
DVRK_NAMES = {"2.2": ("outer_yaw", "outer_pitch", "outer_insertion", "outer_roll", "outer_wrist_pitch",
                      "outer_wrist_yaw"),
              "2.3": ("yaw", "pitch", "insertion", "roll", "wrist_pitch", "wrist_yaw")}  # fmt: skip


class CrtkArm:
    """A PSM as a dVRK 2.x presents itself on CRTK topics, written from the dVRK's conventions
    (topic names, joint names per release, measured_cp = FK(q) @ tooltip_offset from its tool
    file, reliable depth-1 command readers, latched operating_state), not from surgisim's profile
    or twin code. It follows servo_cp by a numerical IK of its own FK."""

    def __init__(self, bus, q, version="2.3", tool="LARGE_NEEDLE_DRIVER_400006", reports_jaw_tips=False):
        self.transport = InProcessTransport(bus)
        self.tool, self.names, self.q = dvrk_tool_file(tool), list(DVRK_NAMES[version]), np.array(q, dtype=float)
        self.reports_jaw_tips, self.commands, self.clock = reports_jaw_tips, [], 100.0
        reliable_one = QoS(reliable=True, depth=1)
        self.measured_js = self.transport.publisher("/PSM1/measured_js", msg.JOINT_STATE)
        self.measured_cp = self.transport.publisher("/PSM1/measured_cp", msg.POSE_STAMPED)
        self.jaw_js = self.transport.publisher("/PSM1/jaw/measured_js", msg.JOINT_STATE)
        latched = self.transport.publisher("/PSM1/operating_state", msg.OPERATING_STATE,
                                           QoS(reliable=True, depth=1, transient_local=True))  # fmt: skip
        latched(msg.operating_state("ENABLED", True, self.clock))
        self.transport.subscribe("/PSM1/servo_cp", msg.POSE_STAMPED, self._servo_cp, reliable_one)
        self.transport.subscribe("/PSM1/hold", msg.EMPTY, lambda m: self.commands.append("hold"), reliable_one)

    def cp(self, q=None):
        pose = dvrk_measured_cp(self.tool, self.q if q is None else q)
        if self.reports_jaw_tips:  # a wrong convention: the jaw tips 10.2 mm along the jaws
            pose[:3, 3] += 0.0102 * pose[:3, 2]
        return pose

    def jaw_tips(self):
        pose = dvrk_measured_cp(self.tool, self.q)
        return pose[:3, 3] + 0.0102 * pose[:3, 2]

    def _servo_cp(self, message):
        target = msg.pose_matrix(message)
        self.commands.append("servo_cp")
        q = self.q.copy()
        for _ in range(20):  # Gauss-Newton on position and rotation vector
            error = self._error(q, target)
            if np.linalg.norm(error) < 1e-10:
                break
            jacobian = np.column_stack([(self._error(q + step, target) - error) / 1e-7
                                        for step in np.eye(6) * 1e-7])  # fmt: skip
            q = q - np.linalg.lstsq(jacobian, error, rcond=None)[0]
        self.q = q

    def _error(self, q, target):
        pose = dvrk_measured_cp(self.tool, q)
        return np.concatenate([pose[:3, 3] - target[:3, 3], rotation_vector(target[:3, :3].T @ pose[:3, :3])])

    def tick(self):
        self.transport.spin_once()
        self.clock += 0.01
        self.measured_js(msg.joint_state(self.names, self.q, self.clock))
        self.measured_cp(msg.pose_stamped(self.cp(), self.clock, "PSM1_base"))
        self.jaw_js(msg.joint_state(["jaw"], [0.0], self.clock))


def _runner_against(arm_options, tool="LARGE_NEEDLE_DRIVER_400006", shield=None, stall_seconds=5.0,
                    command="servo_cp"):  # fmt: skip
    bus = InProcessBus()
    runner = PolicyRunner(InProcessTransport(bus), REACH, "pretrained", DvrkProfile(command=command),
                          shield or SafetyShield(),
                          tool=tool, stall_seconds=stall_seconds)  # fmt: skip
    psm = runner.model.scene.psm
    arm = CrtkArm(bus, psm.home, **arm_options)
    goal_world = np.array([0.02, -0.015, 0.035])
    goal = InProcessTransport(bus).publisher("/surgisim/goal", msg.POSE_STAMPED, QOS_LATCHED)
    goal(msg.pose_stamped(make_pose(np.eye(3), (psm.base_inv @ np.append(goal_world, 1))[:3]), 0.0, "PSM1_base"))
    return runner, arm, psm.base_inv @ np.append(goal_world, 1)


@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_the_shipped_policy_reaches_the_goal_on_a_dvrk_through_servo_cp(version):
    runner, arm, goal = _runner_against({"version": version})
    positions = []
    for _ in range(400):
        arm.tick()
        positions.append(arm.cp()[:3, 3])
        if runner.tick() != "sent" and runner.progress["is_success"]:
            break
    arm.tick()
    assert runner.sent > 0 and runner.shield.names == DVRK_NAMES[version]
    assert np.linalg.norm(arm.jaw_tips() - goal[:3]) < 0.005  # the jaw tips, as trained, within 5 mm
    # Never faster than the default limit and the trained speed: 0.05 m/s, 0.5 mm a 10 ms tick.
    assert np.max(np.linalg.norm(np.diff(positions, axis=0), axis=1)) <= 0.0005 + 1e-6
    runner.close()


@pytest.mark.parametrize("command", ["servo_cp", "servo_jp"])
def test_a_tick_is_one_forward_kinematics_at_most_one_inverse_and_no_pybullet(monkeypatch, command):
    from surgisim.envs import kinematics, sim, tools

    runner, arm, _ = _runner_against({}, command=command)
    for _ in range(3):
        arm.tick()
        runner.tick()
    calls = {"fk": 0, "ik": 0, "pybullet": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    def arm_fk(dh, q):  # of the whole arm; the IK computes the first three joints' frame itself
        calls["fk"] += len(dh) == len(PSM_JOINT_NAMES)
        return kinematics.forward_kinematics(dh, q)

    monkeypatch.setattr(tools, "forward_kinematics", arm_fk)
    monkeypatch.setattr(tools.Tool, "ik", counted("ik", tools.Tool.ik))
    monkeypatch.setattr(sim.Sim, "set_joint_positions", counted("pybullet", sim.Sim.set_joint_positions))
    ticks = 20
    for _ in range(ticks):
        arm.tick()
        assert runner.tick() == "sent"
    assert calls == {"fk": ticks, "ik": ticks if command == "servo_jp" else 0, "pybullet": 0}
    runner.close()


def test_a_stall_is_reported_with_what_the_shield_did(caplog):
    # A box whose top lies below the arm's start: every set-point is refused, nothing gets closer.
    shield = SafetyShield(ShieldLimits(box_high=(0.1, 0.1, -0.19)))
    runner, arm, _ = _runner_against({}, shield=shield, stall_seconds=0.2)
    caplog.set_level("INFO", logger="surgisim.ros")
    deadline = time.monotonic() + 5
    while not runner.stall and time.monotonic() < deadline:
        arm.tick()
        runner.tick()
        time.sleep(0.005)
    assert "no progress for" in runner.stall and "outside the workspace box" in runner.stall
    refusals = [record for record in caplog.records if record.getMessage().startswith("refused: set-point: outside")]
    assert len(refusals) == 1  # logged when the reason changed, not every tick
    runner.close()


@pytest.mark.parametrize(
    ("arm_options", "runner_tool", "cause"),
    [({"tool": "LARGE_NEEDLE_DRIVER_420006"}, "LARGE_NEEDLE_DRIVER_400006", "check --tool"),
     ({"reports_jaw_tips": True}, "LARGE_NEEDLE_DRIVER_400006", "reports the jaw tips")],
)  # fmt: skip
def test_a_mismatch_of_joints_and_measured_cp_stops_the_runner_before_any_command(arm_options, runner_tool, cause):
    runner, arm, _ = _runner_against(arm_options, runner_tool)
    for _ in range(5):
        arm.tick()
        runner.tick()
    assert cause in runner.start_error and "nothing was sent" in runner.start_error
    assert runner.sent == 0 and "servo_cp" not in arm.commands
    runner.close()


@pytest.mark.parametrize(
    ("task", "policy", "domain"), [("NeedleInsert", "expert", 69), ("EndoscopeTrack", "pretrained", 70)]
)
def test_other_tasks_run_over_dds_from_the_twins_topics(task, policy, domain):
    """NeedleInsert: the scene and needle topics; EndoscopeTrack: the ECM's own namespace (the
    default for that task) and the lesion topic, with the shipped policy."""
    env = _ros_env(domain)
    cli = [sys.executable, "-m", "surgisim.agents.cli", "ros"]
    twin = subprocess.Popen([*cli, "twin", task, "--seed", "4", "--until-success", "--duration", "90",
                             "--rate", "40", "--transport", "dds"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        runner = subprocess.run([*cli, "run", task, "--policy", policy, "--enable", "--until-success",
                                 "--duration", "60", "--rate", "20", "--transport", "dds"], env=env,
                                capture_output=True, text=True, timeout=150)  # fmt: skip
        twin_out, twin_err = twin.communicate(timeout=60)
    finally:
        twin.kill()
    assert runner.returncode == 0, f"runner: {runner.stderr}\ntwin: {twin_err}"
    assert json.loads(twin_out.strip().splitlines()[-1])["is_success"], twin_err


def test_the_runner_says_when_it_may_not_raise_its_priority(monkeypatch, caplog):
    from surgisim.ros_bridge import cli

    def refused(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(cli.os, "setpriority", refused)
    assert cli._raise_priority() == "normal"
    assert "grant CAP_SYS_NICE" in caplog.text and "normal priority (Operation not permitted)" in caplog.text


def test_until_success_exits_1_on_a_stall_with_its_reason(tmp_path):
    env = _ros_env(67)
    cli = [sys.executable, "-m", "surgisim.agents.cli", "ros"]
    limits = tmp_path / "limits.yaml"
    limits.write_text("box_high: [0.1, 0.1, -0.19]\n")  # below where the arm starts: nothing may leave
    twin = subprocess.Popen([*cli, "twin", "NeedleReach", "--duration", "30", "--transport", "dds"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        runner = subprocess.run([*cli, "run", "NeedleReach", "--enable", "--until-success", "--duration", "20",
                                 "--stall-seconds", "1", "--limits", str(limits), "--transport", "dds"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        twin.kill()
    assert runner.returncode == 1, runner.stderr
    summary = json.loads(runner.stdout.strip().splitlines()[-1])
    assert "outside the workspace box" in summary["stalled"] and not summary["is_success"]
    assert "did not succeed: no progress for" in runner.stderr


class RecordingTransport(InProcessTransport):
    """The in-process transport, noting the order of publications and acknowledgement waits."""

    def __init__(self, bus, log):
        super().__init__(bus)
        self.log = log

    def publisher(self, topic, type_name, qos=QOS_DEFAULT):
        publish = super().publisher(topic, type_name, qos)
        return lambda message: (self.log.append(("publish", topic)), publish(message))

    def wait_for_acks(self, topic, timeout):
        self.log.append(("acknowledged", topic))
        return True


def test_the_hold_waits_until_every_command_before_it_is_acknowledged():
    log = []
    runner = PolicyRunner(RecordingTransport(InProcessBus(), log), REACH, "pretrained", DvrkProfile(), SafetyShield())
    runner.arms[0].send(make_pose(np.eye(3), [0.0, 0.0, -0.1]), 0.0)
    runner.hold()
    assert log == [("publish", "/PSM1/servo_cp"), ("publish", "/PSM1/jaw/servo_jp"),
                   ("acknowledged", "/PSM1/servo_cp"), ("acknowledged", "/PSM1/jaw/servo_jp"),
                   ("publish", "/PSM1/hold")]  # fmt: skip
    runner.close()


LISTENER = """
import sys, time
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.dds import DdsTransport
from surgisim.ros_bridge.endpoints import QOS_COMMAND
arm = DdsTransport()
arm.subscribe("/PSM1/servo_cp", msg.POSE_STAMPED, lambda m: None, QOS_COMMAND)
print("ready", flush=True)
while True:
    arm.spin_once(0.05)
"""


def test_dds_acknowledgements_wait_for_the_reader(loopback, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "68")
    listener = subprocess.Popen([sys.executable, "-c", LISTENER], env=_ros_env(68), stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        runner = DdsTransport()
        publish = runner.publisher("/PSM1/servo_cp", msg.POSE_STAMPED, QOS_COMMAND)
        assert runner.wait_for_match("/PSM1/servo_cp", timeout=30)
        publish(SAMPLES[msg.POSE_STAMPED])
        assert runner.wait_for_acks("/PSM1/servo_cp", 5.0)
        listener.send_signal(signal.SIGSTOP)  # a reader that cannot answer
        publish(SAMPLES[msg.POSE_STAMPED])
        assert not runner.wait_for_acks("/PSM1/servo_cp", 0.3)
        listener.send_signal(signal.SIGCONT)
        assert runner.wait_for_acks("/PSM1/servo_cp", 5.0)
        runner.close()
    finally:
        listener.kill()


def test_the_twin_is_a_ros_node_on_ros_discovery_info_with_its_real_endpoints(loopback):
    """What ``ros2 node list`` and ``ros2 topic info -v`` read: the types below are written from
    rmw_dds_common's .msg files (Jazzy: a 16-byte GID), not from the bridge's own code, and the
    announced GIDs must be the GUIDs DDS discovery itself reports for the twin's writers."""
    from dataclasses import dataclass

    import cyclonedds.idl.types as idl
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
    from cyclonedds.domain import Domain, DomainParticipant
    from cyclonedds.idl import IdlStruct
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    @dataclass
    class Gid(IdlStruct, typename="rmw_dds_common::msg::dds_::Gid_"):
        data: idl.array[idl.uint8, 16]

    @dataclass
    class NodeEntitiesInfo(IdlStruct, typename="rmw_dds_common::msg::dds_::NodeEntitiesInfo_"):
        node_namespace: idl.bounded_str[256]
        node_name: idl.bounded_str[256]
        reader_gid_seq: idl.sequence[Gid]
        writer_gid_seq: idl.sequence[Gid]

    @dataclass
    class ParticipantEntitiesInfo(IdlStruct, typename="rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_"):
        gid: Gid
        node_entities_info_seq: idl.sequence[NodeEntitiesInfo]

    domain = 71
    twin = subprocess.Popen([sys.executable, "-m", "surgisim.agents.cli", "ros", "twin", "--duration", "60",
                             "--transport", "dds"], env={**_ros_env(domain), "ROS_DISTRO": "jazzy"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    keep = Domain(domain, discovery_config())  # noqa: F841  (the domain's configuration lives as long as it)
    participant = DomainParticipant(domain)
    rmw_qos = Qos(Policy.Reliability.Reliable(0), Policy.Durability.TransientLocal, Policy.History.KeepLast(1))
    graph = DataReader(participant, Topic(participant, "ros_discovery_info", ParticipantEntitiesInfo), qos=rmw_qos)
    publications = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
    try:
        nodes, writers, deadline = {}, {}, time.monotonic() + 45

        def announced() -> bool:  # the node grows as it creates endpoints: wait for the whole of it
            return "surgisim_twin" in nodes and "rt/PSM1/measured_js" in writers and len(
                nodes["surgisim_twin"][1].reader_gid_seq) >= 7  # fmt: skip

        while time.monotonic() < deadline and not announced():
            for info in graph.take(N=16):
                for node in info.node_entities_info_seq:
                    nodes[node.node_name] = (bytes(info.gid.data), node)
            for publication in publications.take(N=64):
                writers[publication.topic_name] = publication
            time.sleep(0.05)
        participant_gid, node = nodes["surgisim_twin"]
        measured_js = writers["rt/PSM1/measured_js"]
        assert node.node_namespace == "/"
        assert measured_js.key.bytes in {bytes(gid.data) for gid in node.writer_gid_seq}
        assert participant_gid == measured_js.participant_key.bytes
        assert len(node.reader_gid_seq) == 7  # state_command, servo_cp, servo_jp, jaw/servo_jp, hold, goal, reset
    finally:
        twin.kill()


def test_the_twin_takes_a_goal_from_outside_and_starts_new_episodes_on_request():
    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), REACH, DvrkProfile(), seed=3)
    operator = InProcessTransport(bus)
    publish_goal = operator.publisher(GOAL.name, msg.POSE_STAMPED, QOS_LATCHED)
    reset = operator.publisher("/surgisim/reset", msg.STRING_STAMPED)
    goal_base = np.array([0.01, -0.02, -0.11])
    publish_goal(msg.pose_stamped(make_pose(np.eye(3), goal_base), 1.0, "PSM1_base"))
    twin.tick()
    world = (twin.arm.base @ np.append(goal_base, 1.0))[:3]
    np.testing.assert_allclose(twin.model.observe()["desired_goal"], world, atol=1e-6)
    runner = PolicyRunner(InProcessTransport(bus), REACH, "pretrained", DvrkProfile(), SafetyShield())
    runner.transport.spin_once()  # a runner that starts later gets the operator's goal, whoever latched it
    np.testing.assert_allclose(runner.inputs["goal"].value, world, atol=1e-6)
    reset(msg.string_stamped("5", 2.0))
    twin.tick()
    fresh = SurgicalEnv(task="NeedleReach")
    expected, _ = fresh.reset(seed=5)
    np.testing.assert_allclose(twin.model.observe()["desired_goal"], expected["desired_goal"], atol=1e-7)
    runner.transport.spin_once()
    np.testing.assert_allclose(runner.inputs["goal"].value, expected["desired_goal"], atol=1e-6)
    fresh.close()
    runner.close()
    twin.close()


def test_ros_goal_and_reset_commands_publish_without_ros2():
    env = _ros_env(69)
    cli = [sys.executable, "-m", "surgisim.agents.cli", "ros"]
    goal = subprocess.run([*cli, "goal", "0.01", "0.02", "-0.1", "--wait", "0.5", "--transport", "dds"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert goal.returncode == 0, goal.stderr
    assert json.loads(goal.stdout.strip().splitlines()[-1]) == {"topic": "/surgisim/goal", "readers": "none yet",
                                                                 "goal_m": [0.01, 0.02, -0.1]}  # fmt: skip
    bad = subprocess.run([*cli, "goal", "0.01", "nan", "-0.1", "--transport", "dds"], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "must be a finite number" in bad.stderr and "Traceback" not in bad.stderr
    reset = subprocess.run([*cli, "reset", "--seed", "-2"], env=env, capture_output=True, text=True, timeout=120)
    assert reset.returncode == 2 and "a seed is an integer from 0" in reset.stderr
    for words in (["0", "0"], ["0", "0", "-inf"], ["0", "0", "0", "--namespace", "1/PSM"]):  # were TypeErrors
        bad = subprocess.run([*cli, "goal", *words], env=env, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and "error:" in bad.stderr, bad.stderr


def test_a_namespace_is_taken_with_or_without_its_slashes():
    from surgisim.agents.cli import build_parser

    for given_name in ("PSM2", "/PSM2", "PSM2/"):
        arguments = build_parser().parse_args(["ros", "goal", "0", "0", "-0.1", "--namespace", given_name])
        assert arguments.namespace == "/PSM2" and (arguments.x, arguments.y, arguments.z) == (0.0, 0.0, -0.1)
        assert DvrkProfile(arguments.namespace).base_frame == "PSM2_base"  # not "SM2_base"


def test_record_takes_the_topics_asked_for(tmp_path):
    env = _ros_env(70)
    cli = [sys.executable, "-m", "surgisim.agents.cli", "ros", "record"]
    unknown = subprocess.run([*cli, str(tmp_path / "a"), "--topics", "/PSM9/nothing", "--duration", "0.5"], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert unknown.returncode == 2 and "cannot record /PSM9/nothing" in unknown.stderr
    topics = ["--topics", "/PSM1/servo_cp", "/PSM1/hold"]
    chosen = subprocess.run([*cli, str(tmp_path / "b"), *topics, "--duration", "0.5", "--transport", "dds"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert chosen.returncode == 0, chosen.stderr
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "b"]) as reader:
        assert {connection.topic for connection in reader.connections} == {"/PSM1/servo_cp", "/PSM1/hold"}


def test_the_twin_shows_its_arm_in_rviz_terms(tmp_path):
    import yourdfpy

    bus = InProcessBus()
    twin = SimTwin(InProcessTransport(bus), REACH, DvrkProfile(), seed=2, tool="LARGE_NEEDLE_DRIVER_420006")
    viewer, frames, description = InProcessTransport(bus), {}, []
    viewer.subscribe(
        "/tf",
        msg.TF_MESSAGE,
        lambda m: frames.update({t.child_frame_id: (t.header.frame_id, t.transform) for t in m.transforms}),
        QoS(reliable=True, depth=100),
    )
    viewer.subscribe("/robot_description", msg.STRING, lambda m: description.append(m.data), QOS_LATCHED)
    twin.arm.set_joints(np.array([0.2, -0.1, 0.12, 0.5, 0.3, -0.4]))
    twin.arm.set_jaw(0.6)
    twin.tick()
    viewer.spin_once()
    (tmp_path / "psm.urdf").write_text(description[-1])
    robot = yourdfpy.URDF.load(str(tmp_path / "psm.urdf"), build_scene_graph=False, load_meshes=False)
    assert set(robot.link_map) | {"PSM1_base"} == set(frames) | {"rcm", "PSM1_base"}

    def in_base(frame):  # chain the published transforms up to the arm's base frame
        pose = np.eye(4)
        while frame != "PSM1_base":
            parent, transform = frames[frame]
            t, r = transform.translation, transform.rotation
            step = make_pose(quat_to_matrix(np.array([r.x, r.y, r.z, r.w])), np.array([t.x, t.y, t.z]))
            pose, frame = step @ pose, parent
        return pose

    # Every link where PyBullet, loading the same URDF, puts it; the tip where the tool's FK does.
    for link in ("insertion_link", "wrist_yaw_link", "jaw_left_link", "tool_tip"):
        position, orientation = twin.model.scene.sim.link_pose("psm1", twin.model.scene.sim.link_indices("psm1")[link])
        simulated = twin.arm.base_inv @ make_pose(quat_to_matrix(orientation), position)
        np.testing.assert_allclose(in_base(link), simulated, atol=1e-5)
    np.testing.assert_allclose(in_base("tool_tip"), twin.arm.tool.tip(twin.arm.q), atol=1e-9)
    twin.close()
