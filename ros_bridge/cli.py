"""``surgisim ros ...``: the bridge's nodes as commands (see ``surgisim ros --help``).

The ``surgisim`` command finds ``add_commands`` through the ``surgisim.commands`` entry point.
The bridge's own modules are imported when a ros command runs: they need rosbags and cyclonedds
(the ``ros`` extra), and ``surgisim`` works without them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from surgisim.envs import REGISTRY, task_name
from surgisim.envs.arguments import env_id_type, finite_number, positive_number, seed_type
from surgisim.envs.files import check_writable
from surgisim.envs.tools import DEFAULT_TOOL, shipped_tools
from surgisim.envs.transforms import make_pose

LOG = logging.getLogger("surgisim.ros")
TRANSPORTS = ("auto", "dds", "rclpy")
RATE_RANGE = (1.0, 1000.0)  # Hz: CRTK arms take servo commands at 100-1000 Hz; below 1 Hz nothing reacts


def _ros_namespace(value: str) -> str:
    """A ROS namespace as the bridge uses it, ``/PSM1``: a leading slash added, a trailing one dropped."""
    name = "/" + value.strip("/")
    if not re.fullmatch(r"/[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise argparse.ArgumentTypeError(f"{value!r} is not a ROS namespace such as /PSM1")
    return name


def _rate(value: str) -> float:
    number = float(value)
    if not RATE_RANGE[0] <= number <= RATE_RANGE[1]:
        raise argparse.ArgumentTypeError(f"must be from {RATE_RANGE[0]:g} to {RATE_RANGE[1]:g} Hz, got {value}")
    return number


def _stop_on_signals() -> list[bool]:
    """A flag set by SIGINT or SIGTERM, so loops end cleanly (and the runner sends hold)."""
    stopped = [False]

    def stop(*_: Any) -> None:
        stopped[0] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return stopped


def _namespace(args: argparse.Namespace) -> str:
    """``--namespace``, or the dVRK's name of the task's first driven arm."""
    from surgisim.ros_bridge.profiles import ARM_NAMESPACES  # the ros extra

    return args.namespace or ARM_NAMESPACES[REGISTRY[task_name(args.env_id)].task.arms[0]]


def cmd_twin(args: argparse.Namespace) -> int:
    from surgisim.ros_bridge.profiles import DvrkProfile  # the ros extra
    from surgisim.ros_bridge.transport import make_transport
    from surgisim.ros_bridge.twin import SimTwin, run_twin

    configure_logging(args)
    transport = make_transport(args.transport, node_name="surgisim_twin")
    twin = SimTwin(transport, args.env_id, DvrkProfile(_namespace(args)), args.seed, args.camera, args.image_size,
                   args.tool, args.dvrk_version, args.randomize, args.randomize_config)  # fmt: skip
    stopped = _stop_on_signals()
    try:
        summary = run_twin(twin, args.rate, args.duration, args.until_success, stop=lambda: stopped[0])
    finally:
        twin.close()
        transport.close()
    print(json.dumps(summary))
    return 0


PRIORITY = -10  # the runner's niceness where permitted: ahead of ordinary work on the same cores


def _raise_priority() -> str:
    """Run ahead of ordinary processes where permitted (root, or CAP_SYS_NICE); what it got."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    except OSError as error:  # PermissionError without the capability
        LOG.warning(
            "running at normal priority (%s): a busy machine can delay commands; grant CAP_SYS_NICE "
            "(setcap cap_sys_nice+ep on the python binary) or run as root to raise it",
            error.strerror,
        )
        return "normal"
    return f"nice {PRIORITY}"


def cmd_run(args: argparse.Namespace) -> int:
    from surgisim.ros_bridge.profiles import make_profile  # the ros extra
    from surgisim.ros_bridge.runner import PolicyRunner, run_policy
    from surgisim.ros_bridge.shield import SafetyShield, load_limits
    from surgisim.ros_bridge.transport import make_transport

    configure_logging(args)
    limits = load_limits(args.limits)
    profile = make_profile(args.profile, _namespace(args), args.command)
    transport = make_transport(args.transport, node_name="surgisim_runner")
    shield = SafetyShield(limits, requires_operating_state=profile.has_operating_state)
    runner = PolicyRunner(transport, args.env_id, args.policy, profile, shield, args.dry_run, 1.0 / args.rate,
                          args.tool, args.stall_seconds, args.scene)  # fmt: skip
    priority = _raise_priority()
    stopped = _stop_on_signals()
    try:
        if args.enable and profile.has_operating_state and not runner.enable(stop=lambda: stopped[0]):
            if stopped[0]:
                raise KeyboardInterrupt
            late = [
                arm.profile.namespace for arm in runner.arms if not (arm.shield.state == "ENABLED" and arm.shield.homed)
            ]
            raise ValueError(f"{', '.join(late)} did not report ENABLED and homed within 30 s of enable and home")

        def stop() -> bool:
            return stopped[0] or (args.until_success and (runner.progress["is_success"] or bool(runner.stall)))

        summary = {**run_policy(runner, args.rate, args.duration, stop=stop), "priority": priority}
        if runner.start_error:
            raise ValueError(runner.start_error)
    finally:
        runner.close()  # sends hold
        transport.close()
    print(json.dumps(summary))
    if args.until_success and not summary["is_success"]:
        why = runner.stall or ("stopped" if stopped[0] else "--duration ran out")
        print(f"surgisim: the task did not succeed: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from surgisim.ros_bridge.profiles import DvrkProfile  # the ros extra
    from surgisim.ros_bridge.recorder import Recorder
    from surgisim.ros_bridge.transport import make_transport
    from surgisim.ros_bridge.world import CHANNELS, INFO, SPIN_WAIT

    configure_logging(args)
    out = check_writable(args.out, "bag")
    profile = DvrkProfile(args.namespace)
    known = [profile.measured_js, profile.measured_cp, profile.jaw_measured_js, profile.operating_state,
             profile.state_command, profile.servo_cp, profile.servo_jp, profile.jaw_servo_jp, profile.hold, INFO,
             *(channel.topic for channel in CHANNELS.values())]  # fmt: skip
    by_name = {topic.name: topic for topic in known}
    unknown = [name for name in args.topics or [] if name not in by_name]
    if unknown:
        raise ValueError(f"cannot record {', '.join(unknown)}; the topics it knows: {', '.join(by_name)}")
    topics = [by_name[name] for name in args.topics] if args.topics else known
    transport = make_transport(args.transport, node_name="surgisim_recorder")
    recorder = Recorder(transport, topics, out)
    stopped = _stop_on_signals()
    started = time.monotonic()
    try:
        while not stopped[0] and (args.duration is None or time.monotonic() - started < args.duration):
            transport.spin_once(SPIN_WAIT)
    finally:
        path = recorder.close()
        transport.close()
    print(json.dumps({"bag": str(path), "messages": recorder.counts}))
    return 0


def _publish_and_wait(args: argparse.Namespace, topic: Any, message: Any) -> dict[str, Any]:
    """Publish one message, wait for a reader, and keep a latched one alive for ``--duration``."""
    from surgisim.ros_bridge.transport import make_transport  # the ros extra
    from surgisim.ros_bridge.world import SPIN_WAIT

    configure_logging(args)
    transport = make_transport(args.transport, node_name=f"surgisim_{args.ros_command}")
    stopped = _stop_on_signals()
    try:
        publish = transport.publisher(topic.name, topic.type_name, topic.qos)
        matched = transport.wait_for_match(topic.name, timeout=args.wait)
        publish(message)
        transport.wait_for_acks(topic.name, 1.0)
        started = time.monotonic()
        while topic.qos.transient_local and not stopped[0] and time.monotonic() - started < (args.duration or 0.0):
            transport.spin_once(SPIN_WAIT)
    finally:
        transport.close()
    return {"topic": topic.name, "readers": "matched" if matched else "none yet"}


def cmd_goal(args: argparse.Namespace) -> int:
    from surgisim.ros_bridge import messages as msg  # the ros extra
    from surgisim.ros_bridge.profiles import DvrkProfile
    from surgisim.ros_bridge.world import GOAL

    position = np.array([args.x, args.y, args.z], dtype=np.float64)
    message = msg.pose_stamped(make_pose(np.eye(3), position), time.time(), DvrkProfile(args.namespace).base_frame)
    print(json.dumps({**_publish_and_wait(args, GOAL, message), "goal_m": position.tolist()}))
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from surgisim.ros_bridge import messages as msg  # the ros extra
    from surgisim.ros_bridge.world import RESET

    message = msg.string_stamped("" if args.seed is None else str(args.seed), time.time())
    print(json.dumps(_publish_and_wait(args, RESET, message)))
    return 0


def add_commands(commands: Any) -> None:
    """Add ``surgisim ros twin | run | record`` to the ``surgisim`` parser's subcommands."""
    ros = commands.add_parser("ros", help="ROS 2 bridge: run a policy on a robot, a sim twin, a recorder")
    nodes = ros.add_subparsers(dest="ros_command", required=True)

    def common(parser: argparse.ArgumentParser, namespace: str | None = "/PSM1") -> None:
        where = "the task's first arm (/PSM1; /ECM for EndoscopeTrack)" if namespace is None else namespace
        parser.add_argument("--namespace", default=namespace, type=_ros_namespace,
                            help=f"dvrk: the arm (default {where}); ros2_control: the controller")  # fmt: skip
        parser.add_argument("--transport", default="auto", choices=TRANSPORTS,
                            help="auto: rclpy where ROS 2 is installed, else DDS (Cyclone)")  # fmt: skip
        parser.add_argument(
            "--duration", type=positive_number, help="stop after this many seconds (default: until Ctrl-C)"
        )
        parser.add_argument("--verbose", action="store_true", help="log every refusal reason as it changes")

    def tool(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tool", default=DEFAULT_TOOL,
                            help=f"the instrument: a shipped dVRK tool ({', '.join(shipped_tools())}) or a dVRK "
                                 "tool .json file")  # fmt: skip

    twin = nodes.add_parser("twin", help="run a surgisim env as a dVRK arm on ROS 2 topics")
    twin.add_argument("env_id", nargs="?", default="surgisim/NeedleReach-v0", type=env_id_type)
    twin.add_argument("--seed", type=seed_type, default=0)
    twin.add_argument("--rate", type=_rate, default=100.0, help="state publishing rate, 1 to 1000 Hz")
    twin.add_argument("--camera", action="store_true", help="also publish the endoscope image")
    twin.add_argument("--image-size", type=int, default=84, help="side of the published image, pixels")
    twin.add_argument("--until-success", action="store_true", help="stop once the task succeeds")
    twin.add_argument("--randomize", metavar="GROUPS", help="e.g. kinematics: arms off their reported poses, "
                      "as an uncalibrated dVRK (see README, Domain randomisation)")  # fmt: skip
    twin.add_argument("--randomize-config", metavar="FILE", help="YAML of randomisation ranges")
    twin.add_argument("--dvrk-version", default="2.3", choices=("2.2", "2.3"),
                      help="joint names as this dVRK release publishes them: 2.2 outer_yaw..., 2.3 yaw...")  # fmt: skip
    tool(twin)
    common(twin, namespace=None)
    twin.set_defaults(run=cmd_twin)

    run = nodes.add_parser("run", help="drive a robot with a policy, behind the safety shield")
    run.add_argument("env_id", nargs="?", default="surgisim/NeedleReach-v0", type=env_id_type)
    run.add_argument("--policy", default="pretrained", help="pretrained, expert or an exported .onnx file")
    run.add_argument("--profile", default="dvrk", help="the robot's topics: dvrk (default) or ros2_control")
    run.add_argument(
        "--command",
        choices=("servo_cp", "servo_jp", "joint_trajectory", "commands"),
        help="dvrk: servo_cp (default), servo_jp; ros2_control: joint_trajectory (default), commands",
    )
    run.add_argument("--rate", type=_rate, default=100.0, help="command rate, 1 to 1000 Hz")
    run.add_argument("--limits", type=Path, help="YAML file of shield limits (see surgisim.ros_bridge.shield)")
    run.add_argument("--dry-run", action="store_true", help="publish to preview topics only")
    run.add_argument("--enable", action="store_true", help="send enable and home to the arm first")
    run.add_argument("--until-success", action="store_true",
                     help="stop at success (exit 0), a stall or the end of --duration (exit 1)")  # fmt: skip
    run.add_argument("--stall-seconds", type=positive_number, default=5.0,
                     help="report a stall when the goal has come no closer by 1 mm for this long (s)")  # fmt: skip
    run.add_argument("--scene", type=Path,
                     help="a scene file (YAML or JSON: task, frame, layout) for tasks with scenery, instead of the "
                          "/surgisim/scene topic")  # fmt: skip
    tool(run)
    common(run, namespace=None)
    run.set_defaults(run=cmd_run)

    record = nodes.add_parser("record", help="record the arm's topics to a rosbag2 MCAP bag")
    record.add_argument("out", type=Path, help="bag directory to create")
    record.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these (default: every topic it knows)")
    common(record)
    record.set_defaults(run=cmd_record)

    goal = nodes.add_parser("goal", help="publish a goal position for the runner and the twin (no ROS 2 needed)")
    for axis in "xyz":
        goal.add_argument(axis, type=finite_number, help=f"{axis} of the goal in the arm's base frame, m")
    goal.add_argument("--wait", type=positive_number, default=5.0, help="seconds to wait for a reader first")
    common(goal)
    goal.set_defaults(run=cmd_goal)

    reset = nodes.add_parser("reset", help="start a new episode on the sim twin")
    reset.add_argument("--seed", type=seed_type, help="its seed (default: the twin's next)")
    reset.add_argument("--wait", type=positive_number, default=5.0, help="seconds to wait for the twin first")
    common(reset)
    reset.set_defaults(run=cmd_reset)


def configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(name)s: %(message)s")
