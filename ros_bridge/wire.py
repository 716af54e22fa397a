"""How ROS 2 messages travel over DDS, for a transport that is not ROS 2 itself.

ROS 2 (Humble, Jazzy; Fast DDS or Cyclone DDS) maps a topic ``/PSM1/servo_cp`` to the DDS
topic ``rt/PSM1/servo_cp`` and a type ``geometry_msgs/msg/PoseStamped`` to the DDS type
``geometry_msgs::msg::dds_::PoseStamped_`` (nested types alike), encoded as plain CDR (XCDR1)
final structs without keys. ``idl_type`` builds, from the type store's field definitions, a
Cyclone DDS ``IdlStruct`` with exactly that name and layout, so that the bytes on the wire equal
``rosbags``' CDR for the same message (tested for every type the bridge uses).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import cyclonedds.idl.types as idl
import numpy as np
from cyclonedds.idl import IdlStruct, make_idl_struct
from rosbags.typesys.base import Nodetype

from surgisim.ros_bridge.messages import TYPESTORE, message_class

BASE_TYPES: dict[str, Any] = {
    "bool": bool, "byte": idl.byte, "char": idl.uint8,  # ROS 2 maps char to uint8
    "int8": idl.int8, "uint8": idl.uint8, "int16": idl.int16,
    "uint16": idl.uint16, "int32": idl.int32, "uint32": idl.uint32, "int64": idl.int64, "uint64": idl.uint64,
    "float32": idl.float32, "float64": idl.float64, "string": str,
}  # fmt: skip
NUMPY_TYPES = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
               "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
               "uint64": np.uint64, "float32": np.float32, "float64": np.float64}  # fmt: skip


def dds_topic(ros_topic: str) -> str:
    """``/PSM1/servo_cp`` -> ``rt/PSM1/servo_cp``."""
    if not ros_topic.startswith("/"):
        raise ValueError(f"ROS topic {ros_topic!r} must be absolute (start with '/')")
    return "rt" + ros_topic


def dds_type_name(type_name: str) -> str:
    """``geometry_msgs/msg/PoseStamped`` -> ``geometry_msgs::msg::dds_::PoseStamped_``."""
    package, kind, name = type_name.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def _fields(type_name: str) -> list[tuple[str, tuple]]:
    return TYPESTORE.fielddefs[type_name][1]


def _annotation(node: tuple) -> Any:
    kind, detail = node
    if kind == Nodetype.BASE:
        name, bound = detail
        return idl.bounded_str[bound] if name == "string" and bound else BASE_TYPES[name]
    if kind == Nodetype.NAME:
        return idl_type(detail)
    if kind == Nodetype.ARRAY:
        return idl.array[_annotation(detail[0]), detail[1]]
    element, bound = detail
    return idl.sequence[_annotation(element), bound] if bound else idl.sequence[_annotation(element)]


@cache
def idl_type(type_name: str) -> type[IdlStruct]:
    """The Cyclone DDS type of a ROS 2 message type, named and laid out as ROS 2 sends it."""
    fields = {name: _annotation(node) for name, node in _fields(type_name)}
    return make_idl_struct(type_name.split("/")[-1], dds_type_name(type_name), fields)


def _convert(value: Any, node: tuple, struct: Callable[[Any, str], Any], numbers: Callable[[Any, str], Any]) -> Any:
    """A field value converted between the two representations: nested messages by ``struct``,
    sequences and arrays of numbers by ``numbers`` (rosbags keeps them as numpy arrays)."""
    kind, detail = node
    if kind == Nodetype.BASE:
        return value
    if kind == Nodetype.NAME:
        return struct(value, detail)
    element = detail[0]
    if element[0] == Nodetype.BASE and element[1][0] != "string":
        return numbers(value, element[1][0])
    return [_convert(item, element, struct, numbers) for item in value]


def to_idl(message: Any, type_name: str) -> IdlStruct:
    """A rosbags message as its Cyclone DDS sample."""
    values = {name: _convert(getattr(message, name), node, to_idl, lambda v, _: np.asarray(v).tolist())
              for name, node in _fields(type_name)}  # fmt: skip
    return idl_type(type_name)(**values)


def from_idl(sample: IdlStruct, type_name: str) -> Any:
    """A Cyclone DDS sample as the rosbags message."""
    values = {name: _convert(getattr(sample, name), node, from_idl, _numbers) for name, node in _fields(type_name)}
    return message_class(type_name)(**values)


def _numbers(values: Any, base_type: str) -> np.ndarray:
    if isinstance(values, bytes):  # Cyclone's fixed arrays of uint8
        return np.frombuffer(values, dtype=NUMPY_TYPES[base_type]).copy()
    return np.asarray(values, dtype=NUMPY_TYPES[base_type])
