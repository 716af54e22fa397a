"""The surgisim topics the twin and the runner share: what a task needs from the world besides
the arms (a goal, the scene's layout, a tracked needle or lesion), episodes and progress, the
camera, and what RViz shows. Poses are in the first driven arm's base frame, as the dVRK's are."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from surgisim.envs.documents import excerpt, parse_json
from surgisim.envs.tasks.inputs import RobotInput
from surgisim.envs.transforms import make_pose
from surgisim.ros_bridge import messages as msg
from surgisim.ros_bridge.endpoints import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR, QoS, Topic

GOAL = Topic("/surgisim/goal", msg.POSE_STAMPED, QOS_LATCHED)
RESET = Topic("/surgisim/reset", msg.STRING_STAMPED, QOS_DEFAULT)  # a new episode: the seed, or "" for the next
# What RViz needs to show the arm: its links on /tf (tf2's broadcaster QoS) and the URDF, latched.
TF = Topic("/tf", msg.TF_MESSAGE, QoS(reliable=True, depth=100))
ROBOT_DESCRIPTION = Topic("/robot_description", msg.STRING, QOS_LATCHED)
INFO = Topic("/surgisim/info", msg.STRING_STAMPED, QOS_LATCHED)
CAMERA = Topic("/surgisim/camera/image_raw", msg.IMAGE, QOS_SENSOR)
# image_transport's "compressed" topic beside the raw one, as a camera driver publishes it.
CAMERA_COMPRESSED = Topic(CAMERA.name + "/compressed", msg.COMPRESSED_IMAGE, QOS_SENSOR)
CAMERA_INFO = Topic("/surgisim/camera/camera_info", msg.CAMERA_INFO, QOS_SENSOR)  # beside each image, as ROS does
# A tracker's needle pose in the arm's base frame; best effort, so that either kind of writer matches.
NEEDLE = Topic("/surgisim/needle/measured_cp", msg.POSE_STAMPED, QOS_SENSOR)
SCENE = Topic("/surgisim/scene", msg.STRING, QOS_LATCHED)  # the episode's layout, as a scene file holds it
LESION = Topic("/surgisim/lesion/measured_cp", msg.POINT_STAMPED, QOS_SENSOR)  # a tracked lesion's position
SPIN_WAIT = 0.05  # s: the longest a loop waits for messages before it checks its stop flag and deadline


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


@dataclass(frozen=True)
class Frame:
    """Where a world value goes on the wire: the first driven arm's base (its pose in the world),
    the task (a scene names it) and the base frame's name in the messages written."""

    base: np.ndarray
    task: str
    frame_id: str = ""

    def to_base(self, value: np.ndarray) -> np.ndarray:
        """A world position (3,) or pose (4x4) in the base frame."""
        return self._moved(np.linalg.inv(self.base), value)

    def to_world(self, value: np.ndarray) -> np.ndarray:
        """A base-frame position (3,) or pose (4x4) in the world."""
        return self._moved(self.base, value)

    @staticmethod
    def _moved(transform: np.ndarray, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        return transform @ value if value.shape == (4, 4) else (transform @ np.append(value, 1.0))[:3]


def encode_position(position: np.ndarray, frame: Frame, stamp: float) -> Any:
    return msg.pose_stamped(make_pose(np.eye(3), frame.to_base(position)), stamp, frame.frame_id)


def decode_position(message: Any, frame: Frame) -> np.ndarray:
    return frame.to_world(msg.pose_matrix(message)[:3, 3])


def encode_pose(pose: np.ndarray, frame: Frame, stamp: float) -> Any:
    return msg.pose_stamped(frame.to_base(pose), stamp, frame.frame_id)


def decode_pose(message: Any, frame: Frame) -> np.ndarray:
    return frame.to_world(msg.pose_matrix(message))


def encode_point(position: np.ndarray, frame: Frame, stamp: float) -> Any:
    """A world position as a ``PointStamped`` in the base frame."""
    return msg.point_stamped(frame.to_base(position), stamp, frame.frame_id)


def decode_point(message: Any, frame: Frame) -> np.ndarray:
    """The world position of a base-frame ``PointStamped``; ``ValueError`` for NaN or inf."""
    return frame.to_world(msg.point(message))


def encode_scene(layout: dict[str, Any], frame: Frame, stamp: float) -> Any:
    return msg.string(json.dumps(scene_document(frame.task, layout)))


def decode_scene(message: Any, frame: Frame) -> dict[str, Any]:
    return scene_layout(parse_json(message.data, SCENE.name, "scene"), frame.task, SCENE.name)


@dataclass(frozen=True)
class Channel:
    """How one robot input (``surgisim.envs.tasks.inputs``) travels: its topic, and its world value
    to a message in the first arm's base frame (``encode(value, frame, stamp)``) and back."""

    topic: Topic
    encode: Callable[[Any, Frame, float], Any]
    decode: Callable[[Any, Frame], Any]
    also: str = ""  # where else a runner can take it from

    @property
    def source(self) -> str:
        return f"{self.topic.name} (or {self.also})" if self.also else self.topic.name

    @staticmethod
    def stamp(message: Any) -> float:
        """When the value was measured: its header's stamp, or now for a message without one."""
        return msg.stamp_seconds(message) if hasattr(message, "header") else time.time()


# The topic of each robot input, by its name.
CHANNELS = {
    "goal": Channel(GOAL, encode_position, decode_position),
    "layout": Channel(SCENE, encode_scene, decode_scene, also="--scene FILE"),
    "needle": Channel(NEEDLE, encode_pose, decode_pose),
    "lesion": Channel(LESION, encode_point, decode_point),
}


def channels_of(env_id: str, robot_inputs: Iterable[type[RobotInput]]) -> dict[str, Channel]:
    """The channel of each of a task's robot inputs, by name; a ``ValueError`` names those that no
    topic carries."""
    names = [robot_input.name for robot_input in robot_inputs]
    missing = [name for name in names if name not in CHANNELS]
    if missing:
        raise ValueError(f"{env_id}: on a robot its observation needs {', '.join(missing)}, which no topic "
                         f"supplies; the bridge carries {', '.join(CHANNELS)}")  # fmt: skip
    return {name: CHANNELS[name] for name in names}
