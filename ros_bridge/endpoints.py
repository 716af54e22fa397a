"""What every transport shares: ROS 2 QoS settings, topics, the callback types and the
interface (``surgisim.ros_bridge.transport`` describes it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

Callback = Callable[[Any], None]
Publish = Callable[[Any], None]


@dataclass(frozen=True)
class QoS:
    """The ROS 2 QoS settings the bridge uses."""

    reliable: bool = True
    depth: int = 10
    transient_local: bool = False

    def serves(self, reader: QoS) -> bool:
        """Whether a writer with these settings matches ``reader`` (DDS request/offer rules)."""
        return (self.reliable or not reader.reliable) and (self.transient_local or not reader.transient_local)


QOS_DEFAULT = QoS()  # ROS 2's default: reliable, volatile, keep last 10
QOS_SENSOR = QoS(reliable=False, depth=5)  # rclpy's qos_profile_sensor_data
QOS_COMMAND = QoS(reliable=True, depth=1)  # a dVRK command subscriber: reliable, depth 1
QOS_LATCHED = QoS(reliable=True, depth=1, transient_local=True)  # operating_state


class Transport(Protocol):
    def publisher(self, topic: str, type_name: str, qos: QoS = QOS_DEFAULT) -> Publish: ...

    def subscribe(self, topic: str, type_name: str, callback: Callback, qos: QoS = QOS_DEFAULT) -> None: ...

    def spin_once(self, timeout: float = 0.0) -> int: ...

    def wait_for_match(self, topic: str, count: int = 1, timeout: float = 5.0) -> bool: ...

    def wait_for_acks(self, topic: str, timeout: float) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Topic:
    """A ROS 2 topic: its name, message type and QoS."""

    name: str
    type_name: str
    qos: QoS


def publisher(transport: Transport, topic: Topic) -> Publish:
    return transport.publisher(topic.name, topic.type_name, topic.qos)


def subscribe(transport: Transport, topic: Topic, callback: Callback) -> None:
    transport.subscribe(topic.name, topic.type_name, callback, topic.qos)
