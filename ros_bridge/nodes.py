"""ROS 2 nodes: a policy runner that drives a robot, and a sim twin that plays one.

Both speak a robot profile over any transport. The runner keeps a *model* of the robot (a
surgisim env of the task): each tick it copies the measured joints into the model, builds the
observation with the env's own code, asks the policy, moves the model by the action as the env
would, and offers the resulting tool-tip set-point to the safety shield; what the shield lets
through is published (``servo_cp`` or ``servo_jp``, and ``jaw/servo_jp``), or to preview
topics in a dry run. The twin runs the env as a robot: it publishes ``measured_*`` and a
latched ``operating_state``, obeys ``state_command``, ``servo_*`` and ``hold``, publishes the
task's goal on ``/surgisim/goal`` (taking one that someone else publishes there) and its progress
on ``/surgisim/info``, starts a new episode on ``/surgisim/reset``, and publishes ``/tf`` and a
latched ``/robot_description`` for RViz.

Poses on the wire are in the arm's base frame (its remote centre of motion at the origin), as
the dVRK reports ``measured_cp`` with an identity base frame, and follow the dVRK 2.x tool-file
convention: ``measured_cp`` and ``servo_cp`` are ``FK(q) @ tooltip_offset`` of the tool
(``surgisim.envs.tools``), on the jaw pivot; the jaw tips the policy was trained to move lie 10.2
mm further along the jaws. Joint names are the dVRK's, up to 2.2 (``outer_yaw``...) or from 2.3
(``yaw``...): the twin publishes the version it is told, the runner answers in the names it hears.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from surgisim.agents.evaluate import check_policy, make_policy
from surgisim.envs import REGISTRY, task_name
from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.envs.core import OBS_MODES
from surgisim.envs.documents import excerpt, parse_json, read_yaml
from surgisim.envs.robots import Arm
from surgisim.envs.tools import DEFAULT_TOOL
from surgisim.envs.transforms import make_pose, rotation_from_vector, rotation_vector
from surgisim.envs.urdf_builder import build_psm_urdf, psm_link_transforms
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR, QoS, Transport
from surgisim.ros_bridge.profiles import (
    ARM_NAMESPACES,
    DVRK_JOINT_NAMES,
    JAW_JOINT_NAMES,
    PSM_JOINT_NAMES,
    DvrkProfile,
    Ros2ControlProfile,
    Topic,
    dvrk_joint_names,
)
from surgisim.ros_bridge.shield import SafetyShield

LOG = logging.getLogger("surgisim.ros")
GOAL = Topic("/surgisim/goal", msg.POSE_STAMPED, QOS_LATCHED)
RESET = Topic("/surgisim/reset", msg.STRING_STAMPED, QOS_DEFAULT)  # a new episode: the seed, or "" for the next
# What RViz needs to show the arm: its links on /tf (tf2's broadcaster QoS) and the URDF, latched.
TF = Topic("/tf", msg.TF_MESSAGE, QoS(reliable=True, depth=100))
ROBOT_DESCRIPTION = Topic("/robot_description", msg.STRING, QOS_LATCHED)
INFO = Topic("/surgisim/info", msg.STRING_STAMPED, QOS_LATCHED)
CAMERA = Topic("/surgisim/camera/image_raw", msg.IMAGE, QOS_SENSOR)
CAMERA_INFO = Topic("/surgisim/camera/camera_info", msg.CAMERA_INFO, QOS_SENSOR)  # beside each image, as ROS does
# A tracker's needle pose in the arm's base frame; best effort, so that either kind of writer matches.
NEEDLE = Topic("/surgisim/needle/measured_cp", msg.POSE_STAMPED, QOS_SENSOR)
SCENE = Topic("/surgisim/scene", msg.STRING, QOS_LATCHED)  # the episode's layout, as a scene file holds it
LESION = Topic("/surgisim/lesion/measured_cp", msg.POINT_STAMPED, QOS_SENSOR)  # a tracked lesion's position
# Where the runner takes each of a task's ``robot_inputs`` from (``surgisim.envs.tasks.base.ROBOT_INPUTS``).
SUPPLIED_INPUTS = {"goal": GOAL.name, "needle": NEEDLE.name, "layout": f"{SCENE.name} or --scene FILE",
                   "lesion": LESION.name}  # fmt: skip
SPIN_WAIT = 0.05  # s: the longest a loop waits for messages before it checks its stop flag and deadline
ACK_WAIT = 0.1  # s: the longest a hold waits for the commands before it to be acknowledged


def _publisher(transport: Transport, topic: Topic) -> Callable[[Any], None]:
    return transport.publisher(topic.name, topic.type_name, topic.qos)


def _subscribe(transport: Transport, topic: Topic, callback: Callable[[Any], None]) -> None:
    transport.subscribe(topic.name, topic.type_name, callback, topic.qos)


def scene_document(task: str, layout: dict[str, Any]) -> dict[str, Any]:
    """A scene file's content: the task, and its layout in the task's world frame (m, rad)."""
    return {"task": task, "frame": "world", "layout": layout}


def scene_layout(document: Any, task: str, source: str) -> dict[str, Any]:
    """The layout in a scene document, checked to be for ``task``; a ``ValueError`` naming ``source``."""
    if not isinstance(document, dict) or not isinstance(document.get("layout"), dict):
        raise ValueError(f"{source}: a scene is a mapping with 'task', 'frame' and a 'layout' mapping")
    if document.get("task") != task or document.get("frame") != "world":
        raise ValueError(f"{source}: the scene is for task {excerpt(document.get('task'))} in frame "
                         f"{excerpt(document.get('frame'))}; this run needs task {task!r}, frame 'world'")  # fmt: skip
    return document["layout"]


class TwinArm:
    """One arm the twin plays: its CRTK topics, its operating state and what it was told to do."""

    def __init__(self, transport: Transport, arm: Arm, profile: DvrkProfile, joint_names: tuple[str, ...]) -> None:
        self.arm, self.profile, self.joint_names = arm, profile, list(joint_names)
        self.state, self.homed = "DISABLED", False
        self.target: np.ndarray | None = None  # joints to servo to
        self.jaw_target: float | None = None
        published = [profile.measured_js, profile.measured_cp, profile.operating_state]
        published += [profile.jaw_measured_js] if arm.has_jaw else []
        self.publish = {topic.name: _publisher(transport, topic) for topic in published}
        _subscribe(transport, profile.state_command, self._on_state_command)
        _subscribe(transport, profile.servo_cp, self._on_servo_cp)
        _subscribe(transport, profile.servo_jp, self._on_servo_jp)
        _subscribe(transport, profile.hold, self._on_hold)
        if arm.has_jaw:
            _subscribe(transport, profile.jaw_servo_jp, self._on_jaw_servo_jp)
        self._publish_operating_state()

    def _publish_operating_state(self) -> None:
        self.publish[self.profile.operating_state.name](msg.operating_state(self.state, self.homed, time.time()))

    def _on_state_command(self, message: Any) -> None:
        command = message.string
        transitions = {"enable": ("ENABLED", None), "disable": ("DISABLED", False), "pause": ("PAUSED", None),
                       "resume": ("ENABLED", None), "home": (None, True), "unhome": (None, False)}  # fmt: skip
        if command not in transitions:
            LOG.warning("twin: unknown state command %r", command)
            return
        state, homed = transitions[command]
        if command == "home" and self.state != "ENABLED":
            LOG.warning("twin: home needs the arm enabled")
            return
        self.state = state or self.state
        self.homed = self.homed if homed is None else homed
        self.target = None if self.state != "ENABLED" else self.target
        self._publish_operating_state()

    def _moving(self) -> bool:
        return self.state == "ENABLED" and self.homed

    def _on_servo_cp(self, message: Any) -> None:
        try:
            pose = msg.pose_matrix(message)
        except ValueError as error:
            LOG.warning("twin: servo_cp ignored: %s", error)
            return
        if self._moving():
            self.target = self.arm.joints_from_cp(pose, self.arm.q)

    def _on_servo_jp(self, message: Any) -> None:
        positions = np.asarray(message.position, dtype=np.float64)
        if positions.shape != self.arm.q.shape or not np.all(np.isfinite(positions)):
            LOG.warning("twin: servo_jp ignored: %s is not %d finite joints", positions.tolist(), self.arm.q.size)
        elif self._moving():
            self.target = positions

    def _on_jaw_servo_jp(self, message: Any) -> None:
        positions = np.asarray(message.position, dtype=np.float64)
        if positions.shape != (1,) or not np.isfinite(positions[0]):
            LOG.warning("twin: jaw/servo_jp ignored: %s is not one finite angle", positions.tolist())
        elif self._moving():
            self.jaw_target = float(positions[0])

    def _on_hold(self, message: Any) -> None:
        self.target = self.jaw_target = None

    def obey(self) -> None:
        """Move as told: a stiff position-controlled arm reaches its set-point in one tick."""
        if self._moving() and self.target is not None:
            self.arm.set_joints(self.target)
            self.target = None
        if self._moving() and self.jaw_target is not None:
            self.arm.set_jaw(self.jaw_target)
            self.jaw_target = None

    def publish_state(self, now: float) -> None:
        profile = self.profile
        self.publish[profile.measured_js.name](msg.joint_state(self.joint_names, self.arm.q, now))
        self.publish[profile.measured_cp.name](msg.pose_stamped(self.arm.cp(), now, profile.base_frame))
        if self.arm.has_jaw:
            self.publish[profile.jaw_measured_js.name](msg.joint_state(list(JAW_JOINT_NAMES), [self.arm.jaw], now))

    def reset(self) -> None:
        self.target = self.jaw_target = None


class SimTwin:
    """A surgisim env playing the dVRK arms its task drives (``profile`` for the first, the
    dVRK's names for the others: ``/PSM1``, ``/PSM2``, ``/ECM``). ``randomize`` (groups, ranges
    from ``randomize_config``) makes it a less ideal robot: under ``"kinematics"`` its arms are
    not where their joints and ``measured_cp`` say, as an uncalibrated dVRK's are not."""

    def __init__(self, transport: Transport, env_id: str, profile: DvrkProfile, seed: int = 0,
                 camera: bool = False, image_size: int = 84, tool: str = DEFAULT_TOOL,
                 dvrk_version: str = "2.3", randomize: str | None = None,
                 randomize_config: str | None = None) -> None:  # fmt: skip
        if dvrk_version not in DVRK_JOINT_NAMES:
            raise ValueError(f"dVRK version {dvrk_version!r}: use {' or '.join(DVRK_JOINT_NAMES)}")
        self.transport, self.profile = transport, profile
        self.env = gym.make(env_id, obs_mode="rgb" if camera else "state", image_size=image_size, tool=tool,
                            randomize=randomize, randomize_config=randomize_config)  # fmt: skip
        self.model = self.env.unwrapped
        self.model.reset(seed=seed)
        names = self.model.task.arms
        profiles = [profile, *(DvrkProfile(ARM_NAMESPACES[name]) for name in names[1:])]
        self.arms = [TwinArm(transport, self.model.scene.arms[name], arm_profile, dvrk_joint_names(name)[dvrk_version])
                     for name, arm_profile in zip(names, profiles, strict=True)]  # fmt: skip
        self.arm = self.arms[0].arm  # the first driven arm: world inputs are in its base frame
        # RViz shows PSM1 (with its tool), under the frame of its topics.
        self.psm_frame = (profile if names[0] == "psm1" else DvrkProfile(ARM_NAMESPACES["psm1"])).base_frame
        self.camera = camera
        self.world_time = 0.0  # s of the twin's time not yet taken by the world
        self.inputs = REGISTRY[self.model.task_name].robot_inputs
        self.info: dict[str, Any] = {}
        published = (GOAL, INFO, CAMERA, CAMERA_INFO, TF, ROBOT_DESCRIPTION, NEEDLE, SCENE, LESION)
        self.publish = {topic.name: _publisher(transport, topic) for topic in published}
        _subscribe(transport, GOAL, self._on_goal)
        _subscribe(transport, RESET, self._on_reset)
        self.seed = seed
        meshes = (Path(str(files("surgisim.assets"))) / "meshes").as_uri()
        psm = self.model.scene.psm
        self.publish[ROBOT_DESCRIPTION.name](msg.string(build_psm_urdf(psm.tool, meshes=meshes)))
        self._publish_episode()

    def _publish_episode(self) -> None:
        """What a runner needs of the episode, latched (a runner that starts later gets it too):
        the goal and the scene file's layout, as the task has them."""
        self.goal = (self.arm.base_inv @ np.append(self.model.observe()["desired_goal"][:3], 1.0))[:3]
        if "goal" in self.inputs:
            pose = msg.pose_stamped(make_pose(np.eye(3), self.goal), time.time(), self.profile.base_frame)
            self.publish[GOAL.name](pose)
        if "layout" in self.inputs:
            document = scene_document(self.model.task_name, self.model.layout())
            self.publish[SCENE.name](msg.string(json.dumps(document)))

    def _on_goal(self, message: Any) -> None:
        """A goal from someone else (``surgisim ros goal``): the task takes it, and the twin publishes
        it as its own, so that every latched copy agrees."""
        try:
            goal = msg.pose_matrix(message)[:3, 3]
            if np.allclose(goal, self.goal):
                return  # our own
            self.model.set_goal((self.arm.base @ np.append(goal, 1.0))[:3])
        except ValueError as error:
            LOG.warning("twin: goal ignored: %s", error)
            return
        self._publish_episode()

    def _on_reset(self, message: Any) -> None:
        """A new episode of the task: with the seed sent, or the next one."""
        text = message.string.strip()
        if text and not text.isdigit():
            LOG.warning("twin: reset ignored: %r is not a seed (an integer from 0)", text)
            return
        self.seed = int(text) if text else self.seed + 1
        self.model.reset(seed=self.seed)
        for arm in self.arms:
            arm.reset()
        self.info = {}
        self._publish_episode()

    def tick(self, elapsed: float = CONTROL_PERIOD) -> dict[str, Any]:
        """Obey what arrived, advance the task, publish the state; returns the task's info.
        ``elapsed``: seconds since the last tick. A world that moves by itself (EndoscopeTrack's
        lesion) advances one env step per ``CONTROL_PERIOD`` of them, as in training; the others
        follow the arms every tick (a held needle moves with the jaws; a dropped one falls faster
        than in training when the twin ticks faster than the control period)."""
        self.transport.spin_once()
        for arm in self.arms:
            arm.obey()
        self.world_time += elapsed
        due = self.world_time >= CONTROL_PERIOD - 1e-9
        self.world_time = min(self.world_time - CONTROL_PERIOD, CONTROL_PERIOD) if due else self.world_time
        observation, info = self.model.advance(world=due or not self.model.task.moves_by_itself)
        now = time.time()
        for arm in self.arms:
            arm.publish_state(now)
        psm = self.model.scene.psm
        links = [(self.psm_frame, "rcm", np.eye(4)), *psm_link_transforms(psm.tool, psm.q, psm.jaw)]
        self.publish[TF.name](msg.tf_message(links, now))
        task = self.model.task
        if "needle" in self.inputs:  # as a tracker would see it
            needle = self.arm.base_inv @ task.needle.pose()
            self.publish[NEEDLE.name](msg.pose_stamped(needle, now, self.profile.base_frame))
        if "lesion" in self.inputs:
            lesion = self.arm.base_inv @ np.append(task.lesion_position(task.time), 1.0)
            self.publish[LESION.name](msg.point_stamped(lesion[:3], now, self.profile.base_frame))
        if self.camera:
            self.publish[CAMERA.name](msg.image(observation["rgb"], now))
            size = self.model.image_size
            matrix = self.model.scene.camera.intrinsics(size)
            self.publish[CAMERA_INFO.name](msg.camera_info(matrix, size, size, now))
        summary = {"is_success": bool(info["is_success"]), "distance_mm": float(info["distance_mm"])}
        if summary != self.info:
            self.publish[INFO.name](msg.string_stamped(json.dumps(summary), now))
            self.info = summary
        return info

    def close(self) -> None:
        self.env.close()


def _arm_joints(message: Any) -> Any:
    """The arm's joints of a joint state in the dVRK's order (ros2_control's ``/joint_states``
    may list others too, in any order); unchanged when some are missing (the shield refuses it)."""
    names = list(message.name)
    scheme = next((list(scheme) for scheme in DVRK_JOINT_NAMES.values() if set(scheme) <= set(names)), None)
    if scheme is None or names == scheme:
        return message
    positions = np.asarray(message.position, dtype=np.float64)
    if positions.shape != (len(names),):
        return message
    order = [names.index(name) for name in scheme]
    return msg.message_class(msg.JOINT_STATE)(message.header, scheme, positions[order], np.zeros(0),
                                              np.zeros(0))  # fmt: skip


class RunnerArm:
    """One arm the runner drives: its topics, its shield, and the arm of the runner's model that
    mirrors it (kinematics only)."""

    def __init__(self, transport: Transport, arm: Arm, profile: DvrkProfile | Ros2ControlProfile,
                 shield: SafetyShield, dry_run: bool, period: float, on_state: Callable[[], None]) -> None:  # fmt: skip
        self.transport, self.arm, self.profile, self.shield = transport, arm, profile, shield
        arm.in_sim = False  # no PyBullet call per tick
        self.on_state, self.period = on_state, period
        shield.joint_schemes, shield.period = tuple(dvrk_joint_names(arm.name).values()), period
        shield.source = profile.joint_states.name if profile.kind == "ros2_control" else profile.measured_js.name
        self.measured_cp: np.ndarray | None = None  # the arm's own report, for the start-up check
        self.checked = profile.kind != "dvrk"  # ros2_control reports no pose to check against
        if profile.kind == "ros2_control":
            _subscribe(transport, profile.joint_states, self._on_joint_state)
            command = profile.command_topic
        else:
            _subscribe(transport, profile.measured_js, self._on_joint_state)
            _subscribe(transport, profile.measured_cp, self._on_measured_cp)
            _subscribe(transport, profile.operating_state, shield.accept_operating_state)
            command = profile.servo_cp if profile.command == "servo_cp" else profile.servo_jp
            if arm.has_jaw:
                _subscribe(transport, profile.jaw_measured_js, shield.accept_jaw_state)
                self.jaw_topic = profile.preview(profile.jaw_servo_jp) if dry_run else profile.jaw_servo_jp
                self.publish_jaw = _publisher(transport, self.jaw_topic)
            self.publish_hold = _publisher(transport, profile.hold)
            self.publish_state_command = _publisher(transport, profile.state_command)
        self.command_topic = profile.preview(command) if dry_run else command
        self.publish_command = _publisher(transport, self.command_topic)

    def _on_joint_state(self, message: Any) -> None:
        if self.shield.accept_joint_state(_arm_joints(message), time.monotonic()):
            self.on_state()

    def _on_measured_cp(self, message: Any) -> None:
        try:
            self.measured_cp = msg.pose_matrix(message)
        except ValueError as error:
            LOG.warning("runner: %s ignored: %s", self.profile.measured_cp.name, error)

    def check_start(self) -> str | None:
        """Before the first command: forward kinematics of the measured joints must give the
        arm's own measured_cp (to 1 mm and 1 degree); ``None`` when it does, else why not."""
        if self.measured_cp is None:
            return f"waiting for {self.profile.measured_cp.name}"
        expected = self.arm.cp_of(self.shield.joints)
        offset = self.measured_cp[:3, 3] - expected[:3, 3]
        angle = float(np.linalg.norm(rotation_vector(expected[:3, :3].T @ self.measured_cp[:3, :3])))
        if np.linalg.norm(offset) <= 0.001 and angle <= np.deg2rad(1.0):
            self.checked = True
            return None
        tool = getattr(self.arm, "tool", None)
        along_jaws = float(np.dot(offset, expected[:3, 2]))
        if tool is not None and abs(along_jaws - tool.jaw_tip) < 0.001 and angle <= np.deg2rad(1.0):
            cause = "the arm reports the jaw tips, not the dVRK 2.x jaw pivot: is it a dVRK 2.x?"
        else:
            check = f"check --tool (this run assumes {tool.name}: an S/Si tool has a longer shaft), " if tool else ""
            cause = f"{check}the dVRK version, and that measured_cp is in the arm's base frame (the RCM)"
        distance, degrees = np.linalg.norm(offset) * 1000, np.rad2deg(angle)
        return (f"forward kinematics of {self.profile.measured_js.name} is {distance:.1f} mm and {degrees:.1f} "
                f"degrees from {self.profile.measured_cp.name}: {cause}; nothing was sent")  # fmt: skip

    def mirror(self) -> None:
        """Put the model's arm where the robot's is."""
        self.arm.set_joints(self.shield.joints)
        if self.arm.has_jaw and self.shield.jaw is not None:
            self.arm.set_jaw(self.shield.jaw)

    def request(self, command: str) -> None:
        self.publish_state_command(msg.string_stamped(command, time.time()))

    def send(self, pose: np.ndarray, jaw: float | None) -> None:
        """Publish a set-point (a base-frame ``servo_cp`` pose, the dVRK's convention) on the
        profile's command topic."""
        stamp = time.time()
        if self.profile.kind == "dvrk" and self.profile.command == "servo_cp":
            self.publish_command(msg.pose_stamped(pose, stamp, self.profile.base_frame))
        else:
            self._send_joints(self.arm.joints_from_cp(pose, self.shield.joints), stamp)
        if self.profile.kind == "dvrk" and self.arm.has_jaw and jaw is not None:
            self.publish_jaw(msg.joint_state(list(JAW_JOINT_NAMES), [jaw], stamp))

    def _send_joints(self, joints: np.ndarray, stamp: float) -> None:
        if self.profile.kind == "dvrk":  # in the names the arm uses
            names = self.shield.names or dvrk_joint_names(self.arm.name)["2.2"]
            self.publish_command(msg.joint_state(list(names), joints, stamp))
        elif self.profile.command == "joint_trajectory":
            self.publish_command(msg.joint_trajectory(list(PSM_JOINT_NAMES), joints, stamp, self.period))
        else:
            self.publish_command(msg.float64_multi_array(joints))

    def hold(self) -> None:
        """Stop the arm: CRTK ``hold``; for ros2_control, the measured joints as the set-point.
        DDS orders messages per writer only, so the hold waits (up to ``ACK_WAIT``) until the
        arm has every command sent before it: none can arrive after it."""
        if self.profile.kind == "dvrk":
            topics = [self.command_topic.name] + ([self.jaw_topic.name] if self.arm.has_jaw else [])
            for topic in topics:
                if not self.transport.wait_for_acks(topic, ACK_WAIT):
                    LOG.warning("runner: %s not acknowledged within %.1f s before the hold", topic, ACK_WAIT)
            self.publish_hold(msg.empty())
        elif self.shield.joints is not None:
            self._send_joints(self.shield.joints, time.time())


class PolicyRunner:
    """Runs a policy against a robot on ``profile``'s topics, behind ``shield``.

    The task's driven arms are the robot's: the first on ``profile`` behind ``shield``, the others
    (NeedleHandover's PSM2) on the dVRK's names with shields of the same limits. Each tick the
    policy proposes one env step from the measured state; the runner sends the part of it that one
    tick of ``period`` takes at the speed the policy was trained at (a step stands for the env's
    ``CONTROL_PERIOD``), so the arms move as in training whatever the rate. A set-point leaves
    only when every arm's shield lets it. The runner tracks the goal distance from the measured
    state, and reports a stall when that has not shrunk by 1 mm for ``stall_seconds``, with what
    the shields did meanwhile."""

    def __init__(self, transport: Transport, env_id: str, policy: str | Any, profile: DvrkProfile | Ros2ControlProfile,
                 shield: SafetyShield, dry_run: bool = False, period: float = 0.01,
                 tool: str = DEFAULT_TOOL, stall_seconds: float = 5.0,
                 scene_file: Path | None = None) -> None:  # fmt: skip
        self.transport, self.profile, self.shield, self.dry_run = transport, profile, shield, dry_run
        task = REGISTRY[task_name(env_id)].task
        if profile.kind == "ros2_control" and task.arms != ("psm1",):
            raise ValueError(f"{env_id} drives {', '.join(task.arms)}; the ros2_control profile drives one PSM")
        missing = [item for item in task.robot_inputs if item not in SUPPLIED_INPUTS]
        if missing:
            raise ValueError(f"{env_id}: on a robot its observation needs {', '.join(missing)}, which no topic "
                             f"supplies; the runner takes {', '.join(SUPPLIED_INPUTS)}")  # fmt: skip
        self.inputs = task.robot_inputs
        self.period = period  # a tick; a ros2_control trajectory point is due one period after it is sent
        self.fraction = min(1.0, period / CONTROL_PERIOD)  # of a policy step sent per tick
        self.env = gym.make(env_id, tool=tool)
        self.model = self.env.unwrapped
        self.model.reset(seed=0)
        self.policy = make_policy(policy, self.env)
        needs = getattr(self.policy, "env_kwargs", {})
        self.image_keys = OBS_MODES[needs.get("obs_mode", "state")]
        if set(self.image_keys) - {"rgb"}:
            raise ValueError(
                f"this policy needs {', '.join(self.image_keys)} images; the camera topic carries rgb only"
            )
        self.image_size = needs.get("image_size")
        # What the runner gives the policy: the model's state, and the camera topic's images.
        spaces = dict(self.env.observation_space.spaces)
        spaces.update({key: gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
                       for key in self.image_keys})  # fmt: skip
        check_policy(self.policy, env_id, gym.spaces.Dict(spaces), self.env.action_space)
        self.image: np.ndarray | None = None
        self.camera_info: Any = None  # the latest, until the camera is checked against the training camera
        self.camera_checked = not self.image_keys
        self.state_arrival: float | None = None  # perf_counter of the latest accepted joint state not yet acted on
        others = [(DvrkProfile(ARM_NAMESPACES[name], profile.command),
                   SafetyShield(shield.limits, requires_operating_state=shield.requires_operating_state))
                  for name in task.arms[1:]]  # fmt: skip
        self.arms = [RunnerArm(transport, self.model.scene.arms[name], arm_profile, arm_shield, dry_run, period,
                               self._on_state)
                     for name, (arm_profile, arm_shield) in zip(task.arms, [(profile, shield), *others],
                                                                strict=True)]  # fmt: skip
        self.arm = self.arms[0].arm  # the first driven arm: world inputs are in its base frame
        self.goal: np.ndarray | None = None
        self.layout: dict[str, Any] | None = None
        self.needle: np.ndarray | None = None  # the tracked needle pose (world) not yet taken
        self.needle_seen = False
        self.lesions: deque[tuple[float, np.ndarray]] = deque(maxlen=1000)  # (stamp, world position)
        self.sent, self.holding = 0, False
        self.progress: dict[str, Any] = {"distance_mm": float("nan"), "is_success": False}
        self.stall, self.stall_seconds = "", stall_seconds
        self.best: tuple[float, float] = (np.inf, time.monotonic())  # goal distance, and when it was reached
        self.since_best: Counter = Counter()  # what the shields clipped or refused since
        self.peak_commanded_speed = self.peak_measured_speed = 0.0  # m/s
        self.last_measured: tuple[np.ndarray, float] | None = None  # position and robot stamp
        self.start_error = ""  # why the runner will not start (FK and measured_cp disagree)
        self.latencies: deque[float] = deque(maxlen=100_000)  # state arrival to command sent, seconds
        if "goal" in self.inputs:
            _subscribe(transport, GOAL, self._on_goal)
        if "needle" in self.inputs:
            _subscribe(transport, NEEDLE, self._on_needle)
        if "lesion" in self.inputs:
            _subscribe(transport, LESION, self._on_lesion)
        if scene_file is not None:
            try:
                self._new_episode(scene_layout(read_yaml(scene_file, "scene"), self.model.task_name, str(scene_file)))
            except ValueError as error:
                raise ValueError(f"{scene_file}: {error}" if str(scene_file) not in str(error) else error) from None
        elif "layout" in self.inputs:
            _subscribe(transport, SCENE, self._on_scene)
        if self.image_keys:
            _subscribe(transport, CAMERA, self._on_image)
            _subscribe(transport, CAMERA_INFO, self._on_camera_info)

    def _on_state(self) -> None:
        self.state_arrival = time.perf_counter()

    def _on_image(self, message: Any) -> None:
        try:
            self.image = msg.image_array(message)
        except ValueError as error:
            LOG.warning("runner: camera image ignored: %s", error)

    def _on_camera_info(self, message: Any) -> None:
        self.camera_info = message

    def _check_camera(self) -> str | None:
        """The camera must be the one the policy saw in training: its image size and intrinsics
        (to 1 %), undistorted. ``None`` when it is, else why not."""
        if self.camera_info is None:
            return f"waiting for {CAMERA_INFO.name}"
        info, size = self.camera_info, self.image_size
        matrix = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        expected = self.model.scene.camera.intrinsics(size)
        if (info.width, info.height) == (size, size) and np.allclose(matrix, expected, rtol=0.01, atol=0.01 * size) \
                and not np.any(np.asarray(info.d, dtype=np.float64)):  # fmt: skip
            self.camera_checked = True
            return None
        return (f"{CAMERA_INFO.name} gives {info.width}x{info.height} images, fx {matrix[0, 0]:.1f}, fy "
                f"{matrix[1, 1]:.1f}, cx {matrix[0, 2]:.1f}, cy {matrix[1, 2]:.1f} px, distortion {list(info.d)}; the "
                f"policy was trained on {size}x{size} undistorted images of a {self.model.scene.camera.fov_deg:g} "
                f"degree camera (fx = fy {expected[0, 0]:.1f}, cx = cy {expected[0, 2]:.1f} px): resize, crop or "
                "rectify the images to match; nothing was sent")  # fmt: skip

    def fresh(self) -> bool:
        """Whether a joint state has arrived since the last tick."""
        return self.state_arrival is not None

    def _world(self, position: np.ndarray) -> np.ndarray:
        """A position in the first arm's base frame, in the world."""
        return (self.arm.base @ np.append(position, 1.0))[:3]

    def _on_goal(self, message: Any) -> None:
        try:
            self.goal = self._world(msg.pose_matrix(message)[:3, 3])
        except ValueError as error:
            LOG.warning("runner: goal ignored: %s", error)
            return
        self.model.set_goal(self.goal)
        self.policy.reset()

    def _on_scene(self, message: Any) -> None:
        try:
            self._new_episode(scene_layout(parse_json(message.data, SCENE.name, "scene"), self.model.task_name,
                                           SCENE.name))  # fmt: skip
        except ValueError as error:
            LOG.warning("runner: scene ignored: %s", error)

    def _new_episode(self, layout: dict[str, Any]) -> None:
        """A new scene is a new episode: the model starts as the task's card says (e.g. the needle
        in the jaws for NeedleInsert), with this layout and the goal it has."""
        self.model.reset(seed=0)
        self.model.set_layout(layout)
        if self.goal is not None:
            self.model.set_goal(self.goal)
        self.layout = layout
        self.policy.reset()

    def _on_needle(self, message: Any) -> None:
        try:
            self.needle = self.arm.base @ msg.pose_matrix(message)
            self.needle_seen = True
        except ValueError as error:
            LOG.warning("runner: needle pose ignored: %s", error)

    def _on_lesion(self, message: Any) -> None:
        try:
            self.lesions.append((msg.stamp_seconds(message), self._world(msg.point(message))))
        except ValueError as error:
            LOG.warning("runner: lesion position ignored: %s", error)

    def _follow_world(self) -> None:
        """The model's world follows the robot's. A needle: the task's rules (grasps, tissue,
        thread) run on the measured arm, and the tracked pose corrects the needle, held where the
        tracker sees it. A lesion: its position now, and its displacement over one control period."""
        task = self.model.task
        if "needle" in self.inputs:
            task.step_world(self.model.scene)
            if self.needle is not None:
                task.needle.set_pose(self.needle)
                self.needle = None
                for grasp in task.grasps:
                    if grasp.held:
                        grasp.attach()
        if "lesion" in self.inputs:
            stamp, position = self.lesions[-1]
            then, earlier = next(((t, p) for t, p in reversed(self.lesions) if t <= stamp - CONTROL_PERIOD),
                                 self.lesions[0])  # fmt: skip
            rate = CONTROL_PERIOD / (stamp - then) if stamp > then else 0.0  # scales a shorter history up
            task.track_lesion(position, (position - earlier) * rate)

    def _waiting(self) -> str | None:
        """What the task still needs from the world before the first command."""
        if "goal" in self.inputs and self.goal is None:
            return f"waiting for a goal on {GOAL.name}"
        if "layout" in self.inputs and self.layout is None:
            return f"waiting for the scene on {SCENE.name} (or --scene FILE)"
        if "needle" in self.inputs and not self.needle_seen:
            return f"waiting for the needle's pose on {NEEDLE.name}"
        if "lesion" in self.inputs and not self.lesions:
            return f"waiting for the lesion's position on {LESION.name}"
        return None

    def request(self, command: str) -> None:
        """Send a CRTK state command (enable, home, ...) to every arm; dVRK profile only."""
        for arm in self.arms:
            arm.request(command)

    def enable(self, timeout: float = 30.0, stop: Callable[[], bool] = lambda: False) -> bool:
        """Ask the arms to enable and home (again every half second, as a command sent before an
        arm was listening is lost) until each reports ENABLED and homed, or ``stop()``."""
        deadline, asked = time.monotonic() + timeout, -1.0
        while time.monotonic() < deadline and not stop():
            self.transport.spin_once(SPIN_WAIT)
            if all(arm.shield.state == "ENABLED" and arm.shield.homed for arm in self.arms):
                return True
            if time.monotonic() - asked > 0.5:
                for arm in self.arms:
                    arm.request("enable" if arm.shield.state != "ENABLED" else "home")
                asked = time.monotonic()
        return False

    def tick(self, spin: bool = True) -> str:
        """One control tick; returns what happened (``sent``, or why nothing was). ``spin``:
        take what has arrived first (a loop that has just done so passes False)."""
        if spin:
            self.transport.spin_once()
        arrival, self.state_arrival = self.state_arrival, None
        now = time.monotonic()
        for arm in self.arms:
            refusal = arm.shield.ready(now)
            if refusal is not None:
                return self._refused(refusal)
        waiting = self._waiting()
        if waiting is not None:
            return waiting
        checks = [arm.check_start for arm in self.arms if not arm.checked]
        for check in checks + ([] if self.camera_checked else [self._check_camera]):
            problem = check()
            if problem is not None:
                self.start_error = "" if problem.startswith("waiting") else problem
                return problem
        for arm in self.arms:
            arm.mirror()
        self._follow_world()
        observation = self.model.observe()
        self._track_progress(observation, now)
        if self.image_keys:
            wanted = (self.image_size, self.image_size, 3)
            if self.image is None or self.image.shape != wanted:
                got = "no camera image yet" if self.image is None else f"camera image {self.image.shape}"
                return f"{got}; the policy needs {wanted}"
            observation["rgb"] = self.image
        measured = [arm.arm.cp() for arm in self.arms]
        self._track_speed(measured[0][:3, 3])
        decisions = []
        for arm, pose, (tip, jaw) in zip(self.arms, measured, self.model.set_points(self.policy(observation)),
                                         strict=True):  # fmt: skip
            target, jaw = self._paced(arm, pose, arm.arm.cp_from_tip(tip), jaw)
            decision = arm.shield.limit(pose, target, jaw)
            self.since_best.update(decision.clipped)
            if decision.pose is None:
                return self._refused(decision)
            decisions.append(decision)
        for arm, decision in zip(self.arms, decisions, strict=True):
            arm.send(decision.pose, decision.jaw)
        self.sent, self.holding = self.sent + 1, False
        speed = float(np.linalg.norm(decisions[0].pose[:3, 3] - measured[0][:3, 3])) / self.period
        self.peak_commanded_speed = max(self.peak_commanded_speed, speed)
        if arrival is not None:
            self.latencies.append(time.perf_counter() - arrival)
        return "sent"

    def _refused(self, decision: Any) -> str:
        if decision.hold and not self.holding:  # once per stop, not every tick
            self.hold()
        self.since_best[decision.reason] += 1
        return decision.reason

    def _paced(self, arm: RunnerArm, measured: np.ndarray, target: np.ndarray,
               jaw: float | None) -> tuple[np.ndarray, float | None]:  # fmt: skip
        """The part of a policy step (``measured`` to ``target``, and the jaw) one tick takes."""
        if self.fraction >= 1.0:
            return target, jaw
        pose = target.copy()
        pose[:3, 3] = measured[:3, 3] + self.fraction * (target[:3, 3] - measured[:3, 3])
        turn = rotation_vector(measured[:3, :3].T @ target[:3, :3])
        pose[:3, :3] = measured[:3, :3] @ rotation_from_vector(self.fraction * turn)
        if jaw is not None and arm.shield.jaw is not None:
            jaw = arm.shield.jaw + self.fraction * (jaw - arm.shield.jaw)
        return pose, jaw

    def _track_progress(self, observation: dict[str, np.ndarray], now: float) -> None:
        """The goal distance from the measured state, and a stall when it no longer shrinks."""
        task, achieved, desired = self.model.task, observation["achieved_goal"], observation["desired_goal"]
        distance = float(task.distance(achieved, desired))
        self.progress = {"distance_mm": distance * 1000, "is_success": bool(task.is_success(achieved, desired))}
        if distance < self.best[0] - 0.001 or self.progress["is_success"]:
            self.best, self.stall = (distance, now), ""
            self.since_best.clear()
        elif now - self.best[1] > self.stall_seconds and not self.stall:
            doing = ", ".join(f"{reason} ({count} ticks)" for reason, count in self.since_best.most_common(2))
            self.stall = (f"no progress for {now - self.best[1]:.0f} s, {distance * 1000:.1f} mm from the goal; "
                          f"meanwhile: {doing or 'commands sent unchanged'}")  # fmt: skip
            LOG.warning("runner: stalled: %s", self.stall)

    def _track_speed(self, position: np.ndarray) -> None:
        """The first arm's peak speed (m/s), from successive measured states and their stamps."""
        stamp = self.shield.last_stamp
        if self.last_measured is not None and stamp > self.last_measured[1]:
            speed = float(np.linalg.norm(position - self.last_measured[0])) / (stamp - self.last_measured[1])
            self.peak_measured_speed = max(self.peak_measured_speed, speed)
        self.last_measured = (position, stamp)

    def hold(self) -> None:
        """Stop every arm (see ``RunnerArm.hold``)."""
        for arm in self.arms:
            arm.hold()
        self.holding = True

    def close(self) -> None:
        self.hold()
        self.env.close()


def run_twin(twin: SimTwin, rate: float, duration: float | None = None, until_success: bool = False,
             stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:  # fmt: skip
    """Tick the twin at ``rate`` Hz, obeying commands as they arrive in between."""
    period, started = 1.0 / rate, time.monotonic()
    next_tick, ticks, info = started, 0, {}
    while (duration is None or time.monotonic() - started < duration) and not stop():
        now = time.monotonic()
        if now < next_tick:
            twin.transport.spin_once(min(next_tick - now, SPIN_WAIT))
            continue
        info = twin.tick(period)
        ticks += 1
        next_tick = max(next_tick + period, now)
        if until_success and info["is_success"]:
            break
    return {"ticks": ticks, "is_success": bool(info.get("is_success", False)),
            "distance_mm": float(info.get("distance_mm", float("nan")))}  # fmt: skip


def run_policy(runner: PolicyRunner, rate: float, duration: float | None = None,
               stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:  # fmt: skip
    """Tick the runner at ``rate`` Hz. A tick falls due every period and runs as soon as the next
    joint state arrives (so the command answers the freshest state), or half a period late
    without one (then the watchdog judges the state's age)."""
    period, started = 1.0 / rate, time.monotonic()
    due, ticks = started, 0
    while (duration is None or time.monotonic() - started < duration) and not stop() and not runner.start_error:
        now = time.monotonic()
        if now < due:
            runner.transport.spin_once(min(due - now, SPIN_WAIT))
            continue
        runner.transport.spin_once()
        runner.state_arrival = None  # answer the next state, not one that waited for the tick
        while not runner.fresh() and time.monotonic() < due + period / 2 and not stop():
            runner.transport.spin_once(0.0005)
        runner.tick(spin=False)
        ticks += 1
        due = max(due + period, time.monotonic() - period)
    elapsed = time.monotonic() - started
    latencies = np.array(runner.latencies) * 1000.0
    return {
        "ticks": ticks,
        "previewed" if runner.dry_run else "sent": runner.sent,
        "rate_hz": ticks / elapsed if elapsed > 0 else 0.0,
        "latency_ms_median": float(np.median(latencies)) if latencies.size else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else None,
        "peak_commanded_speed_m_s": runner.peak_commanded_speed,
        "peak_measured_speed_m_s": runner.peak_measured_speed,
        **runner.progress,
        "stalled": runner.stall or None,
        "refused": dict(runner.shield.counts),
        "clipped": dict(runner.shield.clips),
    }
