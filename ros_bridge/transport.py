"""Transports: one small interface, three ways to reach ROS 2 topics.

``publisher(topic, type, qos)`` returns a function that publishes a message;
``subscribe(topic, type, callback, qos)`` registers a callback; ``spin_once(timeout)`` delivers
what has arrived, calling callbacks in the caller's thread (as rclpy's executor does, so nodes
need no locks); ``wait_for_match`` waits until one of this transport's endpoints on a topic
sees ``count`` peers; ``wait_for_acks`` until reliable readers have acknowledged what its writers
on a topic wrote; ``close``.

- ``RclpyTransport`` (``surgisim.ros_bridge.rclpy_transport``): through a ROS 2 installation
  (Humble, Jazzy), chosen automatically when ``rclpy`` imports. Messages cross it as serialized
  CDR, so it shares the bridge's codec.
- ``DdsTransport`` (``surgisim.ros_bridge.dds``): pip-installable, on Cyclone DDS, speaking to
  ROS 2 nodes as ROS 2 does.
- ``InProcessTransport`` (here): topics inside one process (a shared ``InProcessBus``), for fast
  tests; messages still go through CDR and QoS matching.

A new transport is a module with a class that has these methods, and a line in ``make_transport``.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from surgisim.ros_bridge.endpoints import QOS_DEFAULT, Callback, Publish, QoS, Transport
from surgisim.ros_bridge.messages import decode, encode

# -- in-process ---------------------------------------------------------------------------------


@dataclass
class _Endpoint:
    topic: str
    type_name: str
    qos: QoS
    inbox: deque = field(default_factory=deque)
    callback: Callback | None = None


class InProcessBus:
    """Topics shared by the ``InProcessTransport`` objects made on it."""

    def __init__(self) -> None:
        self.readers: dict[str, list[_Endpoint]] = defaultdict(list)
        self.writers: dict[str, list[_Endpoint]] = defaultdict(list)
        self.latched: dict[str, deque] = {}

    def check_type(self, topic: str, type_name: str) -> None:
        for endpoint in (*self.readers[topic], *self.writers[topic]):
            if endpoint.type_name != type_name:
                raise ValueError(f"{topic} carries {endpoint.type_name}, not {type_name}")


class InProcessTransport:
    """Topics inside one process; every message is encoded to CDR and decoded for each reader."""

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus
        self.readers: list[_Endpoint] = []
        self.writers: list[_Endpoint] = []

    def publisher(self, topic: str, type_name: str, qos: QoS = QOS_DEFAULT) -> Publish:
        self.bus.check_type(topic, type_name)
        writer = _Endpoint(topic, type_name, qos)
        self.bus.writers[topic].append(writer)
        self.writers.append(writer)
        if qos.transient_local:
            self.bus.latched.setdefault(topic, deque(maxlen=qos.depth))

        def publish(message: Any) -> None:
            data = encode(message, type_name)
            if qos.transient_local:
                self.bus.latched[topic].append(data)
            for reader in self.bus.readers[topic]:
                if qos.serves(reader.qos):
                    reader.inbox.append(data)

        return publish

    def subscribe(self, topic: str, type_name: str, callback: Callback, qos: QoS = QOS_DEFAULT) -> None:
        self.bus.check_type(topic, type_name)
        reader = _Endpoint(topic, type_name, qos, deque(maxlen=qos.depth), callback)
        if qos.transient_local:  # as in DDS, only a transient-local reader gets the history
            reader.inbox.extend(self.bus.latched.get(topic, ()))
        self.bus.readers[topic].append(reader)
        self.readers.append(reader)

    def spin_once(self, timeout: float = 0.0) -> int:
        delivered = 0
        for reader in self.readers:
            while reader.inbox:
                reader.callback(decode(reader.inbox.popleft(), reader.type_name))
                delivered += 1
        return delivered

    def wait_for_match(self, topic: str, count: int = 1, timeout: float = 5.0) -> bool:
        """Matching is immediate in one process: no waiting, only the count under QoS rules."""
        counts = [sum(w.qos.serves(r.qos) for r in self.bus.readers[topic]) for w in self.writers if w.topic == topic]
        counts += [sum(w.qos.serves(r.qos) for w in self.bus.writers[topic]) for r in self.readers if r.topic == topic]
        return bool(counts) and max(counts) >= count

    def wait_for_acks(self, topic: str, timeout: float) -> bool:
        """Delivery to the bus is immediate: what was written is with every reader already."""
        return True

    def close(self) -> None:
        for reader in self.readers:
            self.bus.readers[reader.topic].remove(reader)
        for writer in self.writers:
            self.bus.writers[writer.topic].remove(writer)
        self.readers.clear()
        self.writers.clear()


def make_transport(
    kind: str = "auto", bus: InProcessBus | None = None, node_name: str = "surgisim_bridge"
) -> Transport:
    """``"auto"`` (rclpy where it imports, else DDS), ``"rclpy"``, ``"dds"`` or ``"inprocess"`` (on
    ``bus``); ROS 2 tools list it as the node ``node_name``."""
    if kind == "auto":
        try:
            import rclpy  # noqa: F401  (present only where ROS 2 is installed)
        except ImportError:
            kind = "dds"
        else:
            kind = "rclpy"
    if kind == "rclpy":
        from surgisim.ros_bridge.rclpy_transport import RclpyTransport  # rclpy: from a ROS 2 installation

        return RclpyTransport(node_name)
    if kind == "dds":
        from surgisim.ros_bridge.dds import DdsTransport  # cyclonedds: the ros extra

        return DdsTransport(node_name=node_name)
    if kind == "inprocess":
        return InProcessTransport(bus if bus is not None else InProcessBus())
    raise ValueError(f"unknown transport {kind!r}; use auto, rclpy, dds or inprocess")
