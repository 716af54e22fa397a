"""The policy runner: drives a robot with a policy, behind the safety shield.

It speaks a robot profile (``surgisim.ros_bridge.profiles``) over any transport and keeps a
*model* of the robot (a surgisim env of the task): each tick it copies the measured joints into
the model, builds the observation with the env's own code, asks the policy, turns its action into
tool-tip set-points as the env would, and offers them to the safety shield; what the shield lets
through goes out on the profile's command topics, or to preview topics in a dry run. What the task
needs from the world besides the arms comes from ``surgisim.ros_bridge.world``'s topics.

Poses on the wire are in the arm's base frame (its remote centre of motion at the origin) and
follow the dVRK 2.x tool-file convention: ``measured_cp`` and ``servo_cp`` are ``FK(q) @
tooltip_offset`` of the tool (``surgisim.envs.tools``), on the jaw pivot; the jaw tips the policy
was trained to move lie 10.2 mm further along the jaws. The runner answers in the joint names it
hears.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from surgisim.agents.evaluate import check_policy, make_policy
from surgisim.envs import REGISTRY, task_name
from surgisim.envs.camera import magnified
from surgisim.envs.controllers import CONTROL_PERIOD
from surgisim.envs.core import OBS_MODES
from surgisim.envs.documents import read_yaml
from surgisim.envs.robots import Arm
from surgisim.envs.tasks.inputs import RobotInput
from surgisim.envs.tools import DEFAULT_TOOL
from surgisim.envs.transforms import rotation_from_vector, rotation_vector
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import Transport, subscribe
from surgisim.ros_bridge.profiles import DVRK_JOINT_NAMES, Profile, dvrk_joint_names
from surgisim.ros_bridge.shield import SafetyShield
from surgisim.ros_bridge.world import (
    CAMERA,
    CAMERA_COMPRESSED,
    CAMERA_INFO,
    SPIN_WAIT,
    Channel,
    Frame,
    channels_of,
    scene_layout,
)

LOG = logging.getLogger("surgisim.ros")


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
    """One arm the runner drives: its state in (through its profile), its shield, the arm of the
    runner's model that mirrors it (kinematics only) and its link (set-points, hold)."""

    def __init__(self, transport: Transport, arm: Arm, profile: Profile, shield: SafetyShield, dry_run: bool,
                 period: float, on_state: Callable[[], None]) -> None:  # fmt: skip
        self.arm, self.profile, self.shield = arm, profile, shield
        arm.in_sim = False  # no PyBullet call per tick
        self.on_state = on_state
        shield.joint_schemes, shield.period = tuple(dvrk_joint_names(arm.name).values()), period
        shield.source = profile.state_topic.name
        self.measured_cp: np.ndarray | None = None  # the arm's own report, for the start-up check
        self.checked = not profile.reports_pose  # nothing to check the kinematics against
        profile.listen(transport, arm, shield, self._on_joint_state, self._on_measured_cp)
        self.link = profile.link(transport, arm, shield, dry_run, period)

    def _on_joint_state(self, message: Any) -> None:
        if self.shield.accept_joint_state(_arm_joints(message), time.monotonic()):
            self.on_state()

    def _on_measured_cp(self, message: Any) -> None:
        try:
            self.measured_cp = msg.pose_matrix(message)
        except ValueError as error:
            LOG.warning("runner: measured_cp ignored: %s", error)

    def check_start(self) -> str | None:
        """Before the first command: forward kinematics of the measured joints must give the
        arm's own measured_cp (to 1 mm and 1 degree); ``None`` when it does, else why not."""
        topic = self.profile.measured_cp.name
        if self.measured_cp is None:
            return f"waiting for {topic}"
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
        return (f"forward kinematics of {self.profile.state_topic.name} is {distance:.1f} mm and {degrees:.1f} "
                f"degrees from {topic}: {cause}; nothing was sent")  # fmt: skip

    def mirror(self) -> None:
        """Put the model's arm where the robot's is."""
        self.arm.set_joints(self.shield.joints)
        if self.arm.has_jaw and self.shield.jaw is not None:
            self.arm.set_jaw(self.shield.jaw)

    def request(self, command: str) -> None:
        self.link.request(command)

    def send(self, pose: np.ndarray, jaw: float | None) -> None:
        """Publish a set-point (a base-frame pose, the dVRK's ``servo_cp`` convention, and the jaw)."""
        self.link.send(pose, jaw, time.time())

    def hold(self) -> None:
        """Stop the arm (the profile's way: CRTK ``hold``, or the measured joints as the set-point)."""
        self.link.hold()


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

    def __init__(self, transport: Transport, env_id: str, policy: str | Any, profile: Profile,
                 shield: SafetyShield, dry_run: bool = False, period: float = 0.01,
                 tool: str = DEFAULT_TOOL, stall_seconds: float = 5.0,
                 scene_file: Path | None = None) -> None:  # fmt: skip
        self.transport, self.profile, self.shield, self.dry_run = transport, profile, shield, dry_run
        task = REGISTRY[task_name(env_id)].task
        if not profile.can_drive(task.arms):
            raise ValueError(f"{env_id} drives {', '.join(task.arms)}; the {profile.name} profile drives "
                             f"{profile.drives}")  # fmt: skip
        # What the task needs from the world besides the arms (``surgisim.envs.tasks.inputs``), by name.
        self.channels = channels_of(env_id, task.robot_inputs)
        self.inputs: dict[str, RobotInput] = {item.name: item() for item in task.robot_inputs}
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
        self.tip_zoom = needs.get("tip_zoom")  # a vision policy's magnified view around the reported tip
        self.camera_size: int | None = None  # the camera's image side, once checked: image_size or a multiple
        # A vision policy sees what a robot has (obs_mode "robot"), the others the model's state too.
        self.sees_as_a_robot = needs.get("obs_mode") == "robot"
        check_policy(self.policy, env_id, self._observation_space(), self.env.action_space)
        self.image: np.ndarray | None = None
        self.camera_info: Any = None  # the latest, until the camera is checked against the training camera
        self.camera_checked = not self.image_keys
        self.state_arrival: float | None = None  # perf_counter of the latest accepted joint state not yet acted on
        others = [(profile.for_arm(name),
                   SafetyShield(shield.limits, requires_operating_state=shield.requires_operating_state))
                  for name in task.arms[1:]]  # fmt: skip
        self.arms = [RunnerArm(transport, arm, arm_profile, arm_shield, dry_run, period, self._on_state)
                     for arm, (arm_profile, arm_shield) in zip(self.model.arms, [(profile, shield), *others],
                                                               strict=True)]  # fmt: skip
        self.arm = self.arms[0].arm  # the first driven arm: world inputs are in its base frame
        self.frame = Frame(self.arm.base, self.model.task_name)
        self.sent, self.holding = 0, False
        self.progress: dict[str, Any] = {"distance_mm": float("nan"), "is_success": False}
        self.stall, self.stall_seconds = "", stall_seconds
        self.best: tuple[float, float] = (np.inf, time.monotonic())  # goal distance, and when it was reached
        self.since_best: Counter = Counter()  # what the shields clipped or refused since
        self.peak_commanded_speed = self.peak_measured_speed = 0.0  # m/s
        self.last_measured: tuple[np.ndarray, float] | None = None  # position and robot stamp
        self.start_error = ""  # why the runner will not start (FK and measured_cp disagree)
        self.latencies: deque[float] = deque(maxlen=100_000)  # state arrival to command sent, seconds
        # What a tick spends on the camera image (decoding it, shrinking it, cutting the tip view)
        # and on the policy, seconds.
        self.image_seconds: deque[float] = deque(maxlen=100_000)
        self.policy_seconds: deque[float] = deque(maxlen=100_000)
        self.decode_seconds = 0.0  # the latest image's decoding
        if scene_file is not None:
            self._read_scene(scene_file)
        for name, robot_input in self.inputs.items():
            if not robot_input.received:
                channel = self.channels[name]
                subscribe(transport, channel.topic, partial(self._on_input, robot_input, channel))
        if self.image_keys:  # raw or image_transport's compressed: whichever the camera gives
            subscribe(transport, CAMERA, partial(self._on_image, msg.image_array))
            subscribe(transport, CAMERA_COMPRESSED, partial(self._on_image, msg.compressed_image_array))
            subscribe(transport, CAMERA_INFO, self._on_camera_info)

    def _observation_space(self) -> gym.spaces.Dict:
        """What the runner gives the policy: the model's state (or what a robot has of it), and the
        camera topic's images."""
        if self.sees_as_a_robot:
            return self.model.robot_observation_space(self.image_size, self.tip_zoom)
        spaces = dict(self.env.observation_space.spaces)
        spaces.update({key: gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
                       for key in self.image_keys})  # fmt: skip
        return gym.spaces.Dict(spaces)

    def _on_state(self) -> None:
        self.state_arrival = time.perf_counter()

    def _on_image(self, pixels: Callable[[Any], np.ndarray], message: Any) -> None:
        started = time.perf_counter()
        try:
            self.image = pixels(message)
            self.decode_seconds = time.perf_counter() - started
        except ValueError as error:
            LOG.warning("runner: camera image ignored: %s", error)

    def _on_camera_info(self, message: Any) -> None:
        self.camera_info = message

    def _check_camera(self) -> str | None:
        """The camera must be the one the policy saw in training, undistorted, its intrinsics to
        1 %: images of the policy's size or a whole multiple of it (shrunk to the size); for a
        tip-view policy at least ``tip_zoom`` times the size, so that the magnified view cut from
        them has a camera pixel for each of its own. ``None`` when it is, else why not."""
        if self.camera_info is None:
            return f"waiting for {CAMERA_INFO.name}"
        info, size = self.camera_info, self.image_size
        matrix = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        side, least = int(info.width), size * int(np.ceil(self.tip_zoom or 1))
        expected = self.model.endoscope.intrinsics(side)
        if side == info.height and side >= least and side % size == 0 and not np.any(np.asarray(info.d, dtype=float)) \
                and np.allclose(matrix, expected, rtol=0.01, atol=0.01 * side):  # fmt: skip
            self.camera_checked, self.camera_size = True, side
            return None
        wanted = f"{size}x{size} or a multiple" if least == size else \
            f"{least}x{least} or a larger multiple of {size} (for its {self.tip_zoom:g}x tip view)"  # fmt: skip
        return (f"{CAMERA_INFO.name} gives {info.width}x{info.height} images, fx {matrix[0, 0]:.1f}, fy "
                f"{matrix[1, 1]:.1f}, cx {matrix[0, 2]:.1f}, cy {matrix[1, 2]:.1f} px, distortion {list(info.d)}; the "
                f"policy was trained on {wanted} undistorted images of a {self.model.endoscope.fov_deg:g} degree "
                f"camera (at {side} px: fx = fy {expected[0, 0]:.1f}, cx = cy {expected[0, 2]:.1f} px): resize, crop "
                "or rectify the images to match; nothing was sent")  # fmt: skip

    def _images(self) -> tuple[np.ndarray, np.ndarray | None] | str:
        """The policy's image from the camera's (shrunk to its size) and its magnified tip view,
        or why there are none."""
        side = self.camera_size
        if self.image is None or self.image.shape != (side, side, 3):
            got = "no camera image yet" if self.image is None else f"camera image {self.image.shape}"
            return f"{got}; the policy needs ({side}, {side}, 3) as {CAMERA_INFO.name} says"
        size, image = self.image_size, self.image
        rgb = image if side == size else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        if self.tip_zoom is None:
            return rgb, None
        endoscope = self.model.endoscope
        tip = magnified(image, endoscope.intrinsics(side), self.model.tip_direction(), self.tip_zoom, size,
                        endoscope.fov_deg)  # fmt: skip
        return rgb, tip

    def fresh(self) -> bool:
        """Whether a joint state has arrived since the last tick."""
        return self.state_arrival is not None

    def _read_scene(self, scene_file: Path) -> None:
        """The layout from a scene file instead of its topic; a ``ValueError`` naming the file."""
        if "layout" not in self.inputs:
            raise ValueError(f"{scene_file}: {self.model.task_name} has no scenery to take from a scene file")
        try:
            layout = scene_layout(read_yaml(scene_file, "scene"), self.model.task_name, str(scene_file))
            self._take(self.inputs["layout"], layout, time.time())
        except ValueError as error:
            raise ValueError(f"{scene_file}: {error}" if str(scene_file) not in str(error) else error) from None

    def _on_input(self, robot_input: RobotInput, channel: Channel, message: Any) -> None:
        try:
            self._take(robot_input, channel.decode(message, self.frame), channel.stamp(message))
        except ValueError as error:
            LOG.warning("runner: %s ignored: %s", robot_input.name, error)

    def _take(self, robot_input: RobotInput, value: Any, stamp: float) -> None:
        """The model takes a robot input. One that starts a new episode takes the others it has
        again (the goal); a new goal or scene starts the policy afresh."""
        robot_input.receive(self.model, value, stamp)
        if robot_input.restarts:
            for other in self.inputs.values():
                if other is not robot_input and other.received and other.per_episode:
                    other.receive(self.model, other.value, stamp)
        if robot_input.per_episode:
            self.policy.reset()

    def _waiting(self) -> str | None:
        """What the policy still needs from the world before the first command (a vision
        policy: only what the image does not show)."""
        for name, robot_input in self.inputs.items():
            if not robot_input.received and not (self.sees_as_a_robot and robot_input.seen):
                return f"waiting for {robot_input.wanted} on {self.channels[name].source}"
        return None

    def _untracked(self) -> list[str]:
        """The inputs not received: the model's goal distance is unknown without them."""
        return [name for name, robot_input in self.inputs.items() if not robot_input.received]

    def request(self, command: str) -> None:
        """Send a state command (enable, home, ...) to every arm; profiles with an operating state only."""
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
        for robot_input in self.inputs.values():
            if robot_input.received:
                robot_input.follow(self.model)
        observation = self.model.observe()
        self._track_progress(observation, now)
        if self.image_keys:
            started = time.perf_counter()
            images = self._images()
            if isinstance(images, str):
                return images
            self.image_seconds.append(self.decode_seconds + time.perf_counter() - started)
            rgb, tip = images
            if self.sees_as_a_robot:
                observation = self.model.as_a_robot_has(observation, rgb, tip)
            else:
                observation["rgb"] = rgb
        measured = [arm.arm.cp() for arm in self.arms]
        self._track_speed(measured[0][:3, 3])
        decisions, started = [], time.perf_counter()
        action = self.policy(observation)
        self.policy_seconds.append(time.perf_counter() - started)
        for arm, pose, (tip, jaw) in zip(self.arms, measured, self.model.set_points(action), strict=True):
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
        """The goal distance from the measured state, and a stall when it no longer shrinks;
        neither without every input (a vision policy's needle, untracked)."""
        untracked = self._untracked()
        if untracked:
            self.progress = {"distance_mm": None, "is_success": False,
                             "unknown": f"no {', '.join(untracked)} received, so no goal distance"}  # fmt: skip
            return
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
    image_ms, policy_ms = (np.array(seconds) * 1000.0 for seconds in (runner.image_seconds, runner.policy_seconds))
    return {
        "ticks": ticks,
        "previewed" if runner.dry_run else "sent": runner.sent,
        "rate_hz": ticks / elapsed if elapsed > 0 else 0.0,
        "latency_ms_median": float(np.median(latencies)) if latencies.size else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else None,
        "image_ms_median": float(np.median(image_ms)) if image_ms.size else None,
        "policy_ms_median": float(np.median(policy_ms)) if policy_ms.size else None,
        "peak_commanded_speed_m_s": runner.peak_commanded_speed,
        "peak_measured_speed_m_s": runner.peak_measured_speed,
        **runner.progress,
        "stalled": runner.stall or None,
        "refused": dict(runner.shield.counts),
        "clipped": dict(runner.shield.clips),
    }
