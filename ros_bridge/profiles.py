"""Robot profiles: which topics, types and QoS a robot speaks.

``dvrk``: CRTK topics under an arm namespace (``/PSM1/``), as the dVRK 2.x publishes them. The
robot publishes ``measured_js``, ``measured_cp``, ``jaw/measured_js`` and a latched
``operating_state``; it obeys ``servo_cp`` or ``servo_jp``, ``jaw/servo_jp``, ``state_command``
and ``hold``. Command topics are reliable with depth 1, as the dVRK subscribes to them.

``ros2_control``: ``/joint_states`` in; a ``joint_trajectory_controller``'s
``/<controller>/joint_trajectory`` or a ``forward_command_controller``'s
``/<controller>/commands`` out. It has no operating state: the shield then requires only fresh
joint states.
"""

from __future__ import annotations

from dataclasses import dataclass

from surgisim.envs.kinematics import ECM_DH, PSM_ARM_DH
from surgisim.envs.tools import TOOL_JOINTS
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import QOS_COMMAND, QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR, QoS

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


def dvrk_joint_names(arm: str) -> dict[str, tuple[str, ...]]:
    """The joint names of a task's arm (``psm1``, ``psm2``, ``ecm``) by dVRK version."""
    return DVRK_ECM_JOINT_NAMES if arm == "ecm" else DVRK_JOINT_NAMES


@dataclass(frozen=True)
class Topic:
    name: str
    type_name: str
    qos: QoS


@dataclass(frozen=True)
class DvrkProfile:
    """CRTK topics of one dVRK arm."""

    namespace: str = "/PSM1"
    command: str = "servo_cp"  # or "servo_jp"
    kind: str = "dvrk"
    has_operating_state: bool = True

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

    def preview(self, topic: Topic) -> Topic:
        """Where a dry run publishes ``topic`` instead: ``/PSM1/preview/servo_cp``."""
        return Topic(f"{self.namespace}/preview/{topic.name.removeprefix(self.namespace + '/')}", topic.type_name,
                     topic.qos)  # fmt: skip


@dataclass(frozen=True)
class Ros2ControlProfile:
    """ros2_control topics: joint states in, a trajectory or forward command out."""

    controller: str = "/arm_controller"
    command: str = "joint_trajectory"  # or "commands"
    kind: str = "ros2_control"
    has_operating_state: bool = False

    def __post_init__(self) -> None:
        if self.command not in ("joint_trajectory", "commands"):
            raise ValueError(f"command {self.command!r} is not supported; use joint_trajectory or commands")

    @property
    def joint_states(self) -> Topic:
        return Topic("/joint_states", msg.JOINT_STATE, QOS_SENSOR)

    @property
    def command_topic(self) -> Topic:
        type_name = msg.JOINT_TRAJECTORY if self.command == "joint_trajectory" else msg.FLOAT64_MULTI_ARRAY
        return Topic(f"{self.controller}/{self.command}", type_name, QOS_COMMAND)

    def preview(self, topic: Topic) -> Topic:
        return Topic(f"{self.controller}/preview/{self.command}", topic.type_name, topic.qos)


def make_profile(kind: str, namespace: str = "/PSM1", command: str | None = None) -> DvrkProfile | Ros2ControlProfile:
    """``dvrk`` (``namespace`` is the arm, e.g. ``/PSM1``) or ``ros2_control`` (``namespace`` is
    the controller, e.g. ``/arm_controller``)."""
    if kind == "dvrk":
        return DvrkProfile(namespace, command or "servo_cp")
    if kind == "ros2_control":
        return Ros2ControlProfile(
            "/arm_controller" if namespace == "/PSM1" else namespace, command or "joint_trajectory"
        )
    raise ValueError(f"unknown robot profile {kind!r}; use dvrk or ros2_control")
