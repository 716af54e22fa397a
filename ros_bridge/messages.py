"""ROS 2 messages: one model for every transport.

Message classes and the CDR codec come from ``rosbags``' ROS 2 type store, with
``crtk_msgs/OperatingState`` and ``crtk_msgs/StringStamped`` added from their ``.msg``
definitions. The message types the nodes use are the same in Humble and Jazzy; the node graph's
``rmw_dds_common`` types differ (a GID of 24 bytes in Humble, 16 from Iron), so the store is
Humble's where ``ROS_DISTRO`` is ``humble`` and Jazzy's otherwise. Every transport sends and
receives these objects; the builders below make the ones the bridge uses.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from surgisim.envs.transforms import make_pose, matrix_to_quat, quat_to_matrix

# From https://github.com/collaborative-robotics/crtk_msgs (msg/OperatingState.msg, msg/StringStamped.msg).
CRTK_DEFINITIONS = {
    "crtk_msgs/msg/OperatingState": "std_msgs/Header header\nstring state\nbool is_homed\nbool is_busy\n",
    "crtk_msgs/msg/StringStamped": "std_msgs/Header header\nstring string\n",
}
OPERATING_STATES = ("DISABLED", "ENABLED", "PAUSED", "FAULT")

POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"
JOINT_STATE = "sensor_msgs/msg/JointState"
OPERATING_STATE = "crtk_msgs/msg/OperatingState"
STRING_STAMPED = "crtk_msgs/msg/StringStamped"
EMPTY = "std_msgs/msg/Empty"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
STRING = "std_msgs/msg/String"


ROS_DISTRO = "humble" if os.environ.get("ROS_DISTRO", "").strip() == "humble" else "jazzy"
PARTICIPANT_ENTITIES_INFO = "rmw_dds_common/msg/ParticipantEntitiesInfo"  # the node graph (ros_discovery_info)


def _typestore() -> Any:
    store = get_typestore(Stores.ROS2_HUMBLE if ROS_DISTRO == "humble" else Stores.ROS2_JAZZY)
    for name, text in CRTK_DEFINITIONS.items():
        store.register(get_types_from_msg(text, name))
    return store


TYPESTORE = _typestore()


def message_class(type_name: str) -> type:
    """The message class of a ROS 2 type, e.g. ``geometry_msgs/msg/PoseStamped``."""
    if type_name not in TYPESTORE.types:
        raise ValueError(f"unknown ROS 2 message type {type_name!r}")
    return TYPESTORE.types[type_name]


def encode(message: Any, type_name: str) -> bytes:
    """The message as plain CDR (with its 4-byte encapsulation header), as ROS 2 sends it."""
    return bytes(TYPESTORE.serialize_cdr(message, type_name))


def decode(data: bytes, type_name: str) -> Any:
    return TYPESTORE.deserialize_cdr(data, type_name)


# -- builders and readers ---------------------------------------------------------------------


def header(stamp: float, frame_id: str = "") -> Any:
    seconds, nanoseconds = divmod(round(stamp * 1e9), 10**9)
    time = message_class("builtin_interfaces/msg/Time")(sec=seconds, nanosec=nanoseconds)
    return message_class("std_msgs/msg/Header")(stamp=time, frame_id=frame_id)


def stamp_seconds(message: Any) -> float:
    """The header stamp of a message in seconds."""
    return message.header.stamp.sec + message.header.stamp.nanosec * 1e-9


def pose_stamped(pose: np.ndarray, stamp: float, frame_id: str = "") -> Any:
    """A ``PoseStamped`` from a 4x4 homogeneous matrix."""
    x, y, z, w = matrix_to_quat(pose[:3, :3])
    position = message_class("geometry_msgs/msg/Point")(*(float(v) for v in pose[:3, 3]))
    orientation = message_class("geometry_msgs/msg/Quaternion")(x=float(x), y=float(y), z=float(z), w=float(w))
    return message_class(POSE_STAMPED)(
        header(stamp, frame_id), message_class("geometry_msgs/msg/Pose")(position, orientation)
    )


def point_stamped(position: np.ndarray, stamp: float, frame_id: str = "") -> Any:
    point = message_class("geometry_msgs/msg/Point")(*(float(v) for v in position))
    return message_class(POINT_STAMPED)(header(stamp, frame_id), point)


def point(message: Any) -> np.ndarray:
    """The position of a ``PointStamped``; ``ValueError`` for NaN or inf."""
    position = np.array([message.point.x, message.point.y, message.point.z], dtype=np.float64)
    if not np.all(np.isfinite(position)):
        raise ValueError(f"point {position.tolist()} has NaN or inf")
    return position


def tf_message(transforms: list[tuple[str, str, np.ndarray]], stamp: float) -> Any:
    """A ``TFMessage`` of (parent frame, child frame, 4x4 pose of the child in the parent)."""
    stamped = []
    for parent, child, pose in transforms:
        x, y, z, w = matrix_to_quat(pose[:3, :3])
        translation = message_class("geometry_msgs/msg/Vector3")(*(float(v) for v in pose[:3, 3]))
        rotation = message_class("geometry_msgs/msg/Quaternion")(x=float(x), y=float(y), z=float(z), w=float(w))
        transform = message_class("geometry_msgs/msg/Transform")(translation, rotation)
        stamped.append(message_class("geometry_msgs/msg/TransformStamped")(header(stamp, parent), child, transform))
    return message_class(TF_MESSAGE)(stamped)


def string(text: str) -> Any:
    return message_class(STRING)(text)


def pose_matrix(message: Any) -> np.ndarray:
    """The 4x4 matrix of a ``PoseStamped`` (its quaternion normalised); ``ValueError`` for NaN,
    inf or a zero quaternion."""
    p, q = message.pose.position, message.pose.orientation
    position = np.array([p.x, p.y, p.z], dtype=np.float64)
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = np.linalg.norm(quat)
    if not (np.all(np.isfinite(position)) and np.isfinite(norm) and norm > 1e-6):
        raise ValueError(f"pose {position.tolist()} {quat.tolist()} has NaN, inf or a zero quaternion")
    return make_pose(quat_to_matrix(quat / norm), position)


def joint_state(names: list[str], positions: np.ndarray, stamp: float, velocities: np.ndarray | None = None) -> Any:
    empty = np.zeros(0, dtype=np.float64)
    velocity = np.asarray(velocities, dtype=np.float64) if velocities is not None else empty
    return message_class(JOINT_STATE)(
        header(stamp), list(names), np.asarray(positions, dtype=np.float64), velocity, empty
    )


def operating_state(state: str, is_homed: bool, stamp: float, is_busy: bool = False) -> Any:
    return message_class(OPERATING_STATE)(header(stamp), state, bool(is_homed), bool(is_busy))


def string_stamped(text: str, stamp: float) -> Any:
    return message_class(STRING_STAMPED)(header(stamp), text)


def empty() -> Any:
    return message_class(EMPTY)(structure_needs_at_least_one_member=0)


def image(pixels: np.ndarray, stamp: float, frame_id: str = "camera") -> Any:
    """A ``sensor_msgs/Image``: ``rgb8`` for H x W x 3 uint8, ``mono8`` for H x W x 1."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width, channels = pixels.shape
    encoding = {3: "rgb8", 1: "mono8"}[channels]
    return message_class(IMAGE)(
        header(stamp, frame_id), height, width, encoding, 0, width * channels, pixels.reshape(-1)
    )


def compressed_image(pixels: np.ndarray, stamp: float, frame_id: str = "camera") -> Any:
    """A ``sensor_msgs/CompressedImage`` of H x W x 3 ``rgb8`` pixels as image_transport's
    ``compressed`` plugin writes one in PNG mode (lossless): OpenCV's encoding of the BGR image,
    format ``"rgb8; png compressed bgr8"``."""
    import cv2

    done, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(pixels, dtype=np.uint8), cv2.COLOR_RGB2BGR))
    if not done:
        raise ValueError("OpenCV could not encode the image as PNG")
    return message_class(COMPRESSED_IMAGE)(header(stamp, frame_id), "rgb8; png compressed bgr8", data.reshape(-1))


def compressed_image_array(message: Any) -> np.ndarray:
    """The H x W x 3 uint8 RGB array of a colour ``CompressedImage`` from image_transport's
    ``compressed`` plugin (JPEG or PNG; format e.g. ``"rgb8; jpeg compressed bgr8"``)."""
    import cv2

    codec = message.format.split(";")[-1].strip().split(" ")[0] if message.format else ""
    if codec not in ("jpeg", "png") or "compressedDepth" in message.format:
        raise ValueError(f"compressed image format {message.format!r} is not supported; use the compressed "
                         "transport's jpeg or png of a colour image")  # fmt: skip
    pixels = cv2.imdecode(np.asarray(message.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        shape = "undecodable" if pixels is None else f"of shape {pixels.shape}"
        raise ValueError(f"compressed image ({message.format}) is {shape}; the policy needs a colour image")
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def camera_info(matrix: np.ndarray, width: int, height: int, stamp: float, frame_id: str = "camera") -> Any:
    """A ``sensor_msgs/CameraInfo`` of an undistorted pinhole camera with intrinsics ``matrix``."""
    projection = np.hstack([matrix, np.zeros((3, 1))])
    roi = message_class("sensor_msgs/msg/RegionOfInterest")(0, 0, 0, 0, False)
    return message_class(CAMERA_INFO)(header(stamp, frame_id), height, width, "plumb_bob", np.zeros(5),
                                      np.asarray(matrix, dtype=np.float64).reshape(9), np.eye(3).reshape(9),
                                      projection.reshape(12), 0, 0, roi)  # fmt: skip


def image_array(message: Any) -> np.ndarray:
    """The H x W x C uint8 array of an ``rgb8`` or ``mono8`` image."""
    channels = {"rgb8": 3, "mono8": 1}.get(message.encoding)
    if channels is None:
        raise ValueError(f"image encoding {message.encoding!r} is not supported; use rgb8 or mono8")
    data = np.asarray(message.data, dtype=np.uint8)
    if data.size != message.height * message.width * channels:
        raise ValueError(f"image data has {data.size} bytes, expected {message.height}x{message.width}x{channels}")
    return data.reshape(message.height, message.width, channels)


def participant_entities_info(participant: bytes, nodes: list[tuple[str, str, list[bytes], list[bytes]]]) -> Any:
    """What rmw publishes on ``ros_discovery_info``: a DDS participant's GUID and, per node
    (namespace, name, reader GUIDs, writer GUIDs), its entities; each GUID (16 bytes) zero-padded
    to the distribution's GID size, as rmw_cyclonedds does."""
    gid_class = message_class("rmw_dds_common/msg/Gid")
    size = TYPESTORE.fielddefs["rmw_dds_common/msg/Gid"][1][0][1][1][1]

    def gid(guid: bytes) -> Any:
        return gid_class(np.frombuffer(guid.ljust(size, b"\0"), dtype=np.uint8))

    info = message_class("rmw_dds_common/msg/NodeEntitiesInfo")
    return message_class(PARTICIPANT_ENTITIES_INFO)(gid(participant), [
        info(namespace, name, [gid(g) for g in readers], [gid(g) for g in writers])
        for namespace, name, readers, writers in nodes
    ])  # fmt: skip


def float64_multi_array(values: np.ndarray) -> Any:
    layout = message_class("std_msgs/msg/MultiArrayLayout")(dim=[], data_offset=0)
    return message_class(FLOAT64_MULTI_ARRAY)(layout, np.asarray(values, dtype=np.float64))


def joint_trajectory(names: list[str], positions: np.ndarray, stamp: float, time_from_start: float) -> Any:
    """A one-point ``JointTrajectory`` reaching ``positions`` ``time_from_start`` seconds after ``stamp``."""
    empty_values = np.zeros(0, dtype=np.float64)
    seconds = int(time_from_start)
    duration = message_class("builtin_interfaces/msg/Duration")(
        sec=seconds, nanosec=int((time_from_start - seconds) * 1e9)
    )
    point = message_class("trajectory_msgs/msg/JointTrajectoryPoint")(
        np.asarray(positions, dtype=np.float64), empty_values, empty_values, empty_values, duration
    )
    return message_class(JOINT_TRAJECTORY)(header(stamp), list(names), [point])
