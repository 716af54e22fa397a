"""The sim twin: a surgisim env playing a dVRK arm (or a task's arms) on ROS 2 topics.

It publishes ``measured_js``, ``measured_cp``, ``jaw/measured_js`` and a latched
``operating_state``, obeys ``state_command``, ``servo_cp``, ``servo_jp``, ``jaw/servo_jp`` and
``hold``; publishes the task's goal on ``/surgisim/goal`` (taking one that someone else publishes
there), the scene, a tracked needle or lesion where the task needs them (``surgisim.ros_bridge.world``),
its progress on ``/surgisim/info``, starts a new episode on ``/surgisim/reset``, and publishes
``/tf`` and a latched ``/robot_description`` for RViz.

Poses on the wire are in the arm's base frame (its remote centre of motion at the origin), as
the dVRK reports ``measured_cp`` with an identity base frame, and follow the dVRK 2.x tool-file
convention: ``measured_cp`` is ``FK(q) @ tooltip_offset`` of the tool (``surgisim.envs.tools``), on
the jaw pivot. Joint names are the dVRK's, up to 2.2 (``outer_yaw``...) or from 2.3 (``yaw``...),
as the twin is told.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.envs.robots import Arm
from surgisim.envs.tools import DEFAULT_TOOL
from surgisim.envs.urdf_builder import build_psm_urdf, psm_link_transforms
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import Transport, publisher, subscribe
from surgisim.ros_bridge.profiles import (
    ARM_NAMESPACES,
    DVRK_JOINT_NAMES,
    JAW_JOINT_NAMES,
    DvrkProfile,
    dvrk_joint_names,
)
from surgisim.ros_bridge.world import (
    CAMERA,
    CAMERA_COMPRESSED,
    CAMERA_INFO,
    GOAL,
    INFO,
    RESET,
    ROBOT_DESCRIPTION,
    SPIN_WAIT,
    TF,
    Frame,
    channels_of,
)

LOG = logging.getLogger("surgisim.ros")


class TwinArm:
    """One arm the twin plays: its CRTK topics, its operating state and what it was told to do."""

    def __init__(self, transport: Transport, arm: Arm, profile: DvrkProfile, joint_names: tuple[str, ...]) -> None:
        self.arm, self.profile, self.joint_names = arm, profile, list(joint_names)
        self.state, self.homed = "DISABLED", False
        self.target: np.ndarray | None = None  # joints to servo to
        self.jaw_target: float | None = None
        published = [profile.measured_js, profile.measured_cp, profile.operating_state]
        published += [profile.jaw_measured_js] if arm.has_jaw else []
        self.publish = {topic.name: publisher(transport, topic) for topic in published}
        subscribe(transport, profile.state_command, self._on_state_command)
        subscribe(transport, profile.servo_cp, self._on_servo_cp)
        subscribe(transport, profile.servo_jp, self._on_servo_jp)
        subscribe(transport, profile.hold, self._on_hold)
        if arm.has_jaw:
            subscribe(transport, profile.jaw_servo_jp, self._on_jaw_servo_jp)
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
        self.arms = [TwinArm(transport, arm, arm_profile, dvrk_joint_names(arm.name)[dvrk_version])
                     for arm, arm_profile in zip(self.model.arms, profiles, strict=True)]  # fmt: skip
        self.arm = self.arms[0].arm  # the first driven arm: world inputs are in its base frame
        # RViz shows PSM1 (with its tool), under the frame of its topics.
        self.psm_frame = (profile if names[0] == "psm1" else DvrkProfile(ARM_NAMESPACES["psm1"])).base_frame
        self.camera = camera
        self.world_time = 0.0  # s of the twin's time not yet taken by the world
        # What a robot's sources would give a runner (an operator's goal, a scene file, a tracker).
        self.channels = channels_of(env_id, self.model.task.robot_inputs)
        self.inputs = [robot_input() for robot_input in self.model.task.robot_inputs]
        self.frame = Frame(self.arm.base, self.model.task_name, profile.base_frame)
        self.info: dict[str, Any] = {}
        published = {GOAL, INFO, CAMERA, CAMERA_COMPRESSED, CAMERA_INFO, TF, ROBOT_DESCRIPTION,
                     *(channel.topic for channel in self.channels.values())}  # fmt: skip
        self.publish = {topic.name: publisher(transport, topic) for topic in published}
        subscribe(transport, GOAL, self._on_goal)
        subscribe(transport, RESET, self._on_reset)
        self.seed = seed
        meshes = (Path(str(files("surgisim.assets"))) / "meshes").as_uri()
        psm = self.model.scene.psm
        self.publish[ROBOT_DESCRIPTION.name](msg.string(build_psm_urdf(psm.tool, meshes=meshes)))
        self._publish_episode()

    def _publish_episode(self) -> None:
        """What a runner needs of the episode, latched (a runner that starts later gets it too):
        the goal and the scene file's layout, as the task has them."""
        self.goal = (self.arm.base_inv @ np.append(self.model.observe()["desired_goal"][:3], 1.0))[:3]
        self._publish_inputs(per_episode=True, stamp=time.time())

    def _publish_inputs(self, per_episode: bool, stamp: float) -> None:
        for robot_input in self.inputs:
            if robot_input.per_episode == per_episode:
                channel = self.channels[robot_input.name]
                self.publish[channel.topic.name](channel.encode(robot_input.sense(self.model), self.frame, stamp))

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
        self._publish_inputs(per_episode=False, stamp=now)  # as a tracker would see them
        if self.camera:
            self.publish[CAMERA.name](msg.image(observation["rgb"], now))
            self.publish[CAMERA_COMPRESSED.name](msg.compressed_image(observation["rgb"], now))
            size = self.model.image_size
            matrix = self.model.endoscope.intrinsics(size)
            self.publish[CAMERA_INFO.name](msg.camera_info(matrix, size, size, now))
        summary = {"is_success": bool(info["is_success"]), "distance_mm": float(info["distance_mm"])}
        if summary != self.info:
            self.publish[INFO.name](msg.string_stamped(json.dumps(summary), now))
            self.info = summary
        return info

    def close(self) -> None:
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
