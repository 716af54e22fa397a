"""Robot profiles: which topics, types and QoS a robot speaks, and how the runner talks to it.

``dvrk``: CRTK topics under an arm namespace (``/PSM1/``), as the dVRK 2.x publishes them. The
robot publishes ``measured_js``, ``measured_cp``, ``jaw/measured_js`` and a latched
``operating_state``; it obeys ``servo_cp`` or ``servo_jp``, ``jaw/servo_jp``, ``state_command``
and ``hold``. Command topics are reliable with depth 1, as the dVRK subscribes to them.

``ros2_control``: ``/joint_states`` in; a ``joint_trajectory_controller``'s
``/<controller>/joint_trajectory`` or a ``forward_command_controller``'s
``/<controller>/commands`` out. It has no operating state: the shield then requires only fresh
joint states.

A profile owns everything that differs between robots: ``listen`` subscribes to an arm's state
(joints, and where the robot has them its pose and operating state) and ``link`` makes the
``ArmLink`` that sends set-points, holds and asks for state changes. A new robot is a profile
class here and an entry in ``PROFILES``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from surgisim.envs.kinematics import ECM_DH, PSM_ARM_DH
from surgisim.envs.robots import Arm
from surgisim.envs.tools import TOOL_JOINTS
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import (
    QOS_COMMAND,
    QOS_DEFAULT,
    QOS_LATCHED,
    QOS_SENSOR,
    Callback,
    QoS,
    Topic,
    Transport,
    publisher,
    subscribe,
)
from surgisim.ros_bridge.shield import SafetyShield

LOG = logging.getLogger("surgisim.ros")
PSM_JOINT_NAMES = (*(row.name for row in PSM_ARM_DH), *TOOL_JOINTS)  # outer_yaw ... outer_wrist_yaw
# The PSM's joint names as a dVRK publishes them: up to release 2.2 with "outer_", from 2.3 without.
DVRK_JOINT_NAMES = {"2.2": PSM_JOINT_NAMES, "2.3": tuple(name.removeprefix("outer_") for name in PSM_JOINT_NAMES)}
JAW_JOINT_NAMES = ("jaw",)
# The ECM's, by the same rule.
DVRK_ECM_JOINT_NAMES = {
    "2.2": tuple(row.name for row in ECM_DH),
    "2.3": tuple(row.name.removeprefix("outer_") for row in ECM_DH),
}
# The dVRK's names of the arms a task drives.
ARM_NAMESPACES = {"psm1": "/PSM1", "psm2": "/PSM2", "ecm": "/ECM"}
ACK_WAIT = 0.1  # s: the longest a hold waits for the commands before it to be acknowledged


def dvrk_joint_names(arm: str) -> dict[str, tuple[str, ...]]:
    """The joint names of a task's arm (``psm1``, ``psm2``, ``ecm``) by dVRK version."""
    return DVRK_ECM_JOINT_NAMES if arm == "ecm" else DVRK_JOINT_NAMES


class ArmLink(Protocol):
    """How the runner commands one arm of a robot."""

    command_topic: Topic

    def send(self, pose: np.ndarray, jaw: float | None, stamp: float) -> None:
        """Publish a set-point: the tool's base-frame pose (the dVRK's ``servo_cp`` convention) and jaw."""

    def hold(self) -> None:
        """Stop the arm where it is."""

    def request(self, command: str) -> None:
        """Ask for an operating-state change (enable, home, ...)."""


@dataclass(frozen=True)
class DvrkProfile:
    """CRTK topics of one dVRK arm."""

    namespace: str = "/PSM1"
    command: str = "servo_cp"  # or "servo_jp"
    name: ClassVar[str] = "dvrk"
    has_operating_state: ClassVar[bool] = True  # enable and home mean something; the shield waits for them
    reports_pose: ClassVar[bool] = True  # measured_cp: the runner checks its kinematics against it first
    drives: ClassVar[str] = "any of a task's arms, each in its namespace (/PSM1, /PSM2, /ECM)"

    def __post_init__(self) -> None:
        if not self.namespace.startswith("/") or self.namespace.endswith("/"):
            raise ValueError(f"namespace {self.namespace!r} must look like /PSM1")
        if self.command not in ("servo_cp", "servo_jp"):
            raise ValueError(f"command {self.command!r} is not supported; use servo_cp or servo_jp")

    @property
    def base_frame(self) -> str:
        """The frame of poses on the wire: ``PSM1_base``, the arm's base (its RCM)."""
        return f"{self.namespace[1:]}_base"

    def _topic(self, name: str, type_name: str, qos: QoS) -> Topic:
        return Topic(f"{self.namespace}/{name}", type_name, qos)

    @property
    def measured_js(self) -> Topic:
        return self._topic("measured_js", msg.JOINT_STATE, QOS_DEFAULT)

    @property
    def measured_cp(self) -> Topic:
        return self._topic("measured_cp", msg.POSE_STAMPED, QOS_DEFAULT)

    @property
    def jaw_measured_js(self) -> Topic:
        return self._topic("jaw/measured_js", msg.JOINT_STATE, QOS_DEFAULT)

    @property
    def operating_state(self) -> Topic:
        return self._topic("operating_state", msg.OPERATING_STATE, QOS_LATCHED)

    @property
    def state_command(self) -> Topic:
        return self._topic("state_command", msg.STRING_STAMPED, QOS_DEFAULT)

    @property
    def servo_cp(self) -> Topic:
        return self._topic("servo_cp", msg.POSE_STAMPED, QOS_COMMAND)

    @property
    def servo_jp(self) -> Topic:
        return self._topic("servo_jp", msg.JOINT_STATE, QOS_COMMAND)

    @property
    def jaw_servo_jp(self) -> Topic:
        return self._topic("jaw/servo_jp", msg.JOINT_STATE, QOS_COMMAND)

    @property
    def hold(self) -> Topic:
        return self._topic("hold", msg.EMPTY, QOS_COMMAND)

    @property
    def state_topic(self) -> Topic:
        """Where the arm's joints come from."""
        return self.measured_js

    def preview(self, topic: Topic) -> Topic:
        """Where a dry run publishes ``topic`` instead: ``/PSM1/preview/servo_cp``."""
        return Topic(f"{self.namespace}/preview/{topic.name.removeprefix(self.namespace + '/')}", topic.type_name,
                     topic.qos)  # fmt: skip

    def can_drive(self, arms: tuple[str, ...]) -> bool:
        return True

    def for_arm(self, arm: str) -> DvrkProfile:
        """The same profile for another arm of the task (NeedleHandover's PSM2), by the dVRK's name."""
        return DvrkProfile(ARM_NAMESPACES[arm], self.command)

    def listen(self, transport: Transport, arm: Arm, shield: SafetyShield, on_joints: Callback,
               on_measured_cp: Callback) -> None:  # fmt: skip
        """Subscribe to the arm's joints, pose, operating state and (with a jaw) jaw."""
        subscribe(transport, self.measured_js, on_joints)
        subscribe(transport, self.measured_cp, on_measured_cp)
        subscribe(transport, self.operating_state, shield.accept_operating_state)
        if arm.has_jaw:
            subscribe(transport, self.jaw_measured_js, shield.accept_jaw_state)

    def link(self, transport: Transport, arm: Arm, shield: SafetyShield, dry_run: bool, period: float) -> DvrkLink:
        return DvrkLink(self, transport, arm, shield, dry_run)


class DvrkLink:
    """One dVRK arm commanded: ``servo_cp`` (a base-frame pose on the jaw pivot) or ``servo_jp``
    (joints, in the names the arm uses), ``jaw/servo_jp``, CRTK state commands and ``hold``."""

    def __init__(self, profile: DvrkProfile, transport: Transport, arm: Arm, shield: SafetyShield,
                 dry_run: bool) -> None:  # fmt: skip
        self.profile, self.transport, self.arm, self.shield = profile, transport, arm, shield
        command = profile.servo_cp if profile.command == "servo_cp" else profile.servo_jp
        self.command_topic = profile.preview(command) if dry_run else command
        self.publish_command = publisher(transport, self.command_topic)
        self.jaw_topic = (profile.preview(profile.jaw_servo_jp) if dry_run else profile.jaw_servo_jp) if arm.has_jaw \
            else None  # fmt: skip
        self.publish_jaw = publisher(transport, self.jaw_topic) if self.jaw_topic else None
        self.publish_hold = publisher(transport, profile.hold)
        self.publish_state_command = publisher(transport, profile.state_command)

    def send(self, pose: np.ndarray, jaw: float | None, stamp: float) -> None:
        if self.profile.command == "servo_cp":
            self.publish_command(msg.pose_stamped(pose, stamp, self.profile.base_frame))
        else:  # in the names the arm uses
            names = self.shield.names or dvrk_joint_names(self.arm.name)["2.2"]
            self.publish_command(msg.joint_state(list(names), self.arm.joints_from_cp(pose, self.shield.joints), stamp))
        if self.publish_jaw is not None and jaw is not None:
            self.publish_jaw(msg.joint_state(list(JAW_JOINT_NAMES), [jaw], stamp))

    def hold(self) -> None:
        """CRTK ``hold``. DDS orders messages per writer only, so it waits (up to ``ACK_WAIT``)
        until the arm has every command sent before it: none can arrive after it."""
        for topic in [self.command_topic, *([self.jaw_topic] if self.jaw_topic else [])]:
            if not self.transport.wait_for_acks(topic.name, ACK_WAIT):
                LOG.warning("runner: %s not acknowledged within %.1f s before the hold", topic.name, ACK_WAIT)
        self.publish_hold(msg.empty())

    def request(self, command: str) -> None:
        self.publish_state_command(msg.string_stamped(command, time.time()))


@dataclass(frozen=True)
class Ros2ControlProfile:
    """ros2_control topics: joint states in, a trajectory or forward command out."""

    controller: str = "/arm_controller"
    command: str = "joint_trajectory"  # or "commands"
    name: ClassVar[str] = "ros2_control"
    has_operating_state: ClassVar[bool] = False
    reports_pose: ClassVar[bool] = False
    drives: ClassVar[str] = "one PSM"  # one controller, the PSM's joints

    def __post_init__(self) -> None:
        if self.command not in ("joint_trajectory", "commands"):
            raise ValueError(f"command {self.command!r} is not supported; use joint_trajectory or commands")

    @property
    def joint_states(self) -> Topic:
        return Topic("/joint_states", msg.JOINT_STATE, QOS_SENSOR)

    @property
    def state_topic(self) -> Topic:
        return self.joint_states

    @property
    def command_topic(self) -> Topic:
        type_name = msg.JOINT_TRAJECTORY if self.command == "joint_trajectory" else msg.FLOAT64_MULTI_ARRAY
        return Topic(f"{self.controller}/{self.command}", type_name, QOS_COMMAND)

    def preview(self, topic: Topic) -> Topic:
        return Topic(f"{self.controller}/preview/{self.command}", topic.type_name, topic.qos)

    def can_drive(self, arms: tuple[str, ...]) -> bool:
        return arms == ("psm1",)

    def for_arm(self, arm: str) -> Ros2ControlProfile:
        raise ValueError(f"the ros2_control profile drives one PSM, not {arm}")

    def listen(self, transport: Transport, arm: Arm, shield: SafetyShield, on_joints: Callback,
               on_measured_cp: Callback) -> None:  # fmt: skip
        subscribe(transport, self.joint_states, on_joints)

    def link(self, transport: Transport, arm: Arm, shield: SafetyShield, dry_run: bool,
             period: float) -> Ros2ControlLink:  # fmt: skip
        return Ros2ControlLink(self, transport, arm, shield, dry_run, period)


class Ros2ControlLink:
    """One ros2_control arm commanded: joints as a one-point trajectory due one ``period`` later,
    or a forward command; holding sends the measured joints."""

    def __init__(self, profile: Ros2ControlProfile, transport: Transport, arm: Arm, shield: SafetyShield,
                 dry_run: bool, period: float) -> None:  # fmt: skip
        self.profile, self.arm, self.shield, self.period = profile, arm, shield, period
        self.command_topic = profile.preview(profile.command_topic) if dry_run else profile.command_topic
        self.publish_command = publisher(transport, self.command_topic)

    def send(self, pose: np.ndarray, jaw: float | None, stamp: float) -> None:
        self._send_joints(self.arm.joints_from_cp(pose, self.shield.joints), stamp)

    def _send_joints(self, joints: np.ndarray, stamp: float) -> None:
        if self.profile.command == "joint_trajectory":
            self.publish_command(msg.joint_trajectory(list(PSM_JOINT_NAMES), joints, stamp, self.period))
        else:
            self.publish_command(msg.float64_multi_array(joints))

    def hold(self) -> None:
        if self.shield.joints is not None:
            self._send_joints(self.shield.joints, time.time())

    def request(self, command: str) -> None:
        raise ValueError(f"{command}: a ros2_control arm has no operating state to change")


Profile = DvrkProfile | Ros2ControlProfile
# name -> the profile made from the command line's namespace and command (None: the profile's default)
PROFILES: dict[str, Callable[[str | None, str | None], Profile]] = {
    "dvrk": lambda namespace, command: DvrkProfile(namespace or "/PSM1", command or "servo_cp"),
    "ros2_control": lambda namespace, command: Ros2ControlProfile(
        "/arm_controller" if namespace in (None, "/PSM1") else namespace, command or "joint_trajectory"
    ),
}


def make_profile(kind: str, namespace: str | None = "/PSM1", command: str | None = None) -> Profile:
    """``dvrk`` (``namespace`` is the arm, e.g. ``/PSM1``) or ``ros2_control`` (``namespace`` is
    the controller, e.g. ``/arm_controller``)."""
    if kind not in PROFILES:
        raise ValueError(f"unknown robot profile {kind!r}; use {' or '.join(PROFILES)}")
    return PROFILES[kind](namespace, command)
