"""ROS 2 topics through rclpy, where ROS 2 (Humble, Jazzy) is installed: rclpy and the message
packages come from that installation, not from pip.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import rclpy
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosidl_runtime_py.utilities import get_message

from surgisim.ros_bridge.endpoints import QOS_DEFAULT, Callback, Publish, QoS
from surgisim.ros_bridge.messages import decode, encode, message_class


class RclpyTransport:
    """ROS 2 topics through rclpy. Messages cross as serialized CDR: the rclpy side sees its own
    generated types, the bridge sees the same ``rosbags`` messages as on the other transports."""

    def __init__(self, node_name: str = "surgisim_bridge") -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(node_name)
        self.publishers: dict[str, list[Any]] = defaultdict(list)
        self.subscriptions: dict[str, list[Any]] = defaultdict(list)
        self.delivered = 0

    def _qos(self, qos: QoS) -> Any:
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos.depth,
            reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.transient_local else DurabilityPolicy.VOLATILE,
        )

    @staticmethod
    def _ros_type(type_name: str) -> type:
        return get_message(type_name)

    def publisher(self, topic: str, type_name: str, qos: QoS = QOS_DEFAULT) -> Publish:
        message_class(type_name)  # unknown types fail here, as on the other transports
        publisher = self.node.create_publisher(self._ros_type(type_name), topic, self._qos(qos))
        self.publishers[topic].append(publisher)
        return lambda message: publisher.publish(encode(message, type_name))  # rclpy publishes serialized bytes

    def subscribe(self, topic: str, type_name: str, callback: Callback, qos: QoS = QOS_DEFAULT) -> None:
        message_class(type_name)

        def deliver(data: bytes) -> None:
            callback(decode(bytes(data), type_name))
            self.delivered += 1

        subscription = self.node.create_subscription(self._ros_type(type_name), topic, deliver, self._qos(qos),
                                                     raw=True)  # fmt: skip
        self.subscriptions[topic].append(subscription)

    def spin_once(self, timeout: float = 0.0) -> int:
        before = self.delivered  # rclpy does not say how many callbacks ran: they count themselves
        rclpy.spin_once(self.node, timeout_sec=timeout)
        return self.delivered - before

    def wait_for_match(self, topic: str, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = [p.get_subscription_count() for p in self.publishers[topic]]
            counts += [s.get_publisher_count() for s in self.subscriptions[topic]]
            if counts and max(counts) >= count:
                return True
            rclpy.spin_once(self.node, timeout_sec=0.01)
        return False

    def wait_for_acks(self, topic: str, timeout: float) -> bool:
        """Wait until every reliable subscription has acknowledged this node's messages on
        ``topic`` (or ``timeout`` seconds); whether they all did."""
        deadline = time.monotonic() + timeout
        acknowledged = True
        for publisher in self.publishers[topic]:
            left = Duration(nanoseconds=int(max(0.0, deadline - time.monotonic()) * 1e9))
            acknowledged = publisher.wait_for_all_acked(left) and acknowledged
        return acknowledged

    def close(self) -> None:
        self.node.destroy_node()
