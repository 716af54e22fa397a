"""Transports: one small interface, three ways to reach ROS 2 topics.

``publisher(topic, type, qos)`` returns a function that publishes a message;
``subscribe(topic, type, callback, qos)`` registers a callback; ``spin_once(timeout)`` delivers
what has arrived, calling callbacks in the caller's thread (as rclpy's executor does, so nodes
need no locks); ``wait_for_match`` waits until one of this transport's endpoints on a topic
sees ``count`` peers; ``close``.

- ``RclpyTransport``: through a ROS 2 installation (Humble, Jazzy), chosen automatically when
  ``rclpy`` imports. Messages cross it as serialized CDR, so it shares the codec below.
- ``DdsTransport``: pip-installable, on Cyclone DDS, speaking to ROS 2 nodes as ROS 2 does
  (``surgisim.ros_bridge.wire``): ``rt/`` topics, ``pkg::msg::dds_::Name_`` types, plain CDR,
  ROS 2 QoS; the domain from ``ROS_DOMAIN_ID`` and discovery from ``ROS_AUTOMATIC_DISCOVERY_RANGE``,
  ``ROS_STATIC_PEERS`` and ``ROS_LOCALHOST_ONLY`` as ``rmw_cyclonedds`` reads them, with a
  user's ``CYCLONEDDS_URI`` applied after (it wins where both set something).
- ``InProcessTransport``: topics inside one process (a shared ``InProcessBus``), for fast tests;
  messages still go through CDR and QoS matching.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from surgisim.ros_bridge.messages import decode, encode, message_class

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

    def close(self) -> None: ...


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

    def close(self) -> None:
        for reader in self.readers:
            self.bus.readers[reader.topic].remove(reader)
        for writer in self.writers:
            self.bus.writers[writer.topic].remove(writer)
        self.readers.clear()
        self.writers.clear()


# -- Cyclone DDS ------------------------------------------------------------------------------


def ros_domain_id() -> int:
    value = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) > 232:
        raise ValueError(f"ROS_DOMAIN_ID={value!r} is not a domain id; use an integer from 0 to 232")
    return int(value)


def discovery_config() -> str:
    """The Cyclone DDS configuration ``rmw_cyclonedds`` (Jazzy) derives from the ROS 2 discovery
    variables, followed by ``CYCLONEDDS_URI`` when set (later settings win)."""
    if os.environ.get("ROS_LOCALHOST_ONLY") == "1":  # deprecated, and overrides the rest
        scope, peers = "LOCALHOST", []
    else:
        scope = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip() or "SUBNET"
        peers = [peer.strip() for peer in os.environ.get("ROS_STATIC_PEERS", "").split(";") if peer.strip()]
        if scope not in ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT"):
            warnings.warn(f"ROS_AUTOMATIC_DISCOVERY_RANGE={scope!r} is not valid; assuming LOCALHOST", stacklevel=2)
            scope = "LOCALHOST"
    add_localhost, add_peers, no_multicast = {
        "SUBNET": (False, True, False),
        "SYSTEM_DEFAULT": (False, False, False),
        "LOCALHOST": (True, True, True),
        "OFF": (False, False, True),
    }[scope]
    config = ""
    if add_localhost or (add_peers and peers) or no_multicast:
        config = "<CycloneDDS><Domain>"
        if no_multicast:
            config += "<General><AllowMulticast>false</AllowMulticast></General>"
        if no_multicast and not add_localhost and not add_peers:
            config += f"<Discovery><ParticipantIndex>none</ParticipantIndex><Tag>ros_discovery_off_{os.getpid()}</Tag>"
        else:
            config += "<Discovery><ParticipantIndex>auto</ParticipantIndex>"
            config += "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
        addresses = (["localhost"] if add_localhost else []) + (peers if add_peers else [])
        if addresses:
            config += "<Peers>" + "".join(f'<Peer address="{address}"/>' for address in addresses) + "</Peers>"
        config += "</Discovery></Domain></CycloneDDS>,"
    return config + os.environ.get("CYCLONEDDS_URI", "")


_DOMAINS: dict[int, Any] = {}


class DdsTransport:
    """ROS 2 topics over Cyclone DDS without a ROS installation (see the module docstring)."""

    def __init__(self, domain_id: int | None = None) -> None:
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.domain import Domain, DomainParticipant

        self.domain_id = ros_domain_id() if domain_id is None else domain_id
        if self.domain_id not in _DOMAINS:  # Cyclone configures a domain once per process
            _DOMAINS[self.domain_id] = Domain(self.domain_id, discovery_config())
        self.participant = DomainParticipant(self.domain_id)
        self.waitset = WaitSet(self.participant)
        self._any_sample = SampleState.Any | ViewState.Any | InstanceState.Any
        self._read_condition = ReadCondition
        self.topics: dict[str, Any] = {}
        self.readers: list[tuple[Any, str, Callback]] = []
        self.writers: dict[str, list[Any]] = defaultdict(list)
        self.topic_readers: dict[str, list[Any]] = defaultdict(list)
        self.conditions: list[Any] = []

    def _topic(self, topic: str, type_name: str) -> Any:
        from cyclonedds.topic import Topic

        from surgisim.ros_bridge.wire import dds_topic, idl_type

        if topic not in self.topics:
            self.topics[topic] = (Topic(self.participant, dds_topic(topic), idl_type(type_name)), type_name)
        dds, known = self.topics[topic]
        if known != type_name:
            raise ValueError(f"{topic} carries {known}, not {type_name}")
        return dds

    @staticmethod
    def _qos(qos: QoS) -> Any:
        from cyclonedds.qos import Policy, Qos
        from cyclonedds.util import duration

        reliability = (
            Policy.Reliability.Reliable(duration(milliseconds=100)) if qos.reliable else Policy.Reliability.BestEffort
        )
        durability = Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile
        # Plain CDR (XCDR1) only, as ROS 2 sends it.
        return Qos(reliability, durability, Policy.History.KeepLast(qos.depth),
                   Policy.DataRepresentation(use_cdrv0_representation=True))  # fmt: skip

    def publisher(self, topic: str, type_name: str, qos: QoS = QOS_DEFAULT) -> Publish:
        from cyclonedds.pub import DataWriter

        from surgisim.ros_bridge.wire import to_idl

        writer = DataWriter(self.participant, self._topic(topic, type_name), qos=self._qos(qos))
        self.writers[topic].append(writer)
        return lambda message: writer.write(to_idl(message, type_name))

    def subscribe(self, topic: str, type_name: str, callback: Callback, qos: QoS = QOS_DEFAULT) -> None:
        from cyclonedds.sub import DataReader

        reader = DataReader(self.participant, self._topic(topic, type_name), qos=self._qos(qos))
        condition = self._read_condition(reader, self._any_sample)
        self.waitset.attach(condition)
        self.conditions.append(condition)
        self.readers.append((reader, type_name, callback))
        self.topic_readers[topic].append(reader)

    def spin_once(self, timeout: float = 0.0) -> int:
        from surgisim.ros_bridge.wire import from_idl

        delivered = self._take(from_idl)
        if not delivered and timeout > 0:
            self.waitset.wait(int(timeout * 1e9))
            delivered = self._take(from_idl)
        return delivered

    def _take(self, from_idl: Callable[[Any, str], Any]) -> int:
        delivered = 0
        for reader, type_name, callback in self.readers:
            for sample in reader.take(N=64):
                if sample is not None and sample.sample_info.valid_data:
                    callback(from_idl(sample, type_name))
                    delivered += 1
        return delivered

    def wait_for_match(self, topic: str, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            counts = [len(writer.get_matched_subscriptions()) for writer in self.writers[topic]]
            counts += [len(reader.get_matched_publications()) for reader in self.topic_readers[topic]]
            if counts and max(counts) >= count:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def close(self) -> None:
        self.readers.clear()
        self.writers.clear()
        self.topic_readers.clear()
        self.conditions.clear()
        self.topics.clear()
        self.participant = None
        self.waitset = None


# -- rclpy ----------------------------------------------------------------------------------


class RclpyTransport:
    """ROS 2 topics through rclpy. Messages cross as serialized CDR: the rclpy side sees its own
    generated types, the bridge sees the same ``rosbags`` messages as on the other transports."""

    def __init__(self, node_name: str = "surgisim_bridge") -> None:
        import rclpy

        self.rclpy = rclpy
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(node_name)
        self.publishers: dict[str, list[Any]] = defaultdict(list)
        self.subscriptions: dict[str, list[Any]] = defaultdict(list)

    def _qos(self, qos: QoS) -> Any:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos.depth,
            reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.transient_local else DurabilityPolicy.VOLATILE,
        )

    @staticmethod
    def _ros_type(type_name: str) -> type:
        from rosidl_runtime_py.utilities import get_message

        return get_message(type_name)

    def publisher(self, topic: str, type_name: str, qos: QoS = QOS_DEFAULT) -> Publish:
        message_class(type_name)  # unknown types fail here, as on the other transports
        publisher = self.node.create_publisher(self._ros_type(type_name), topic, self._qos(qos))
        self.publishers[topic].append(publisher)
        return lambda message: publisher.publish(encode(message, type_name))  # rclpy publishes serialized bytes

    def subscribe(self, topic: str, type_name: str, callback: Callback, qos: QoS = QOS_DEFAULT) -> None:
        message_class(type_name)
        subscription = self.node.create_subscription(
            self._ros_type(type_name), topic, lambda data: callback(decode(bytes(data), type_name)), self._qos(qos),
            raw=True,
        )  # fmt: skip
        self.subscriptions[topic].append(subscription)

    def spin_once(self, timeout: float = 0.0) -> int:
        self.rclpy.spin_once(self.node, timeout_sec=timeout)
        return 0  # rclpy does not say how many callbacks ran

    def wait_for_match(self, topic: str, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = [p.get_subscription_count() for p in self.publishers[topic]]
            counts += [s.get_publisher_count() for s in self.subscriptions[topic]]
            if counts and max(counts) >= count:
                return True
            self.rclpy.spin_once(self.node, timeout_sec=0.01)
        return False

    def close(self) -> None:
        self.node.destroy_node()


def make_transport(kind: str = "auto", bus: InProcessBus | None = None) -> Transport:
    """``"auto"`` (rclpy where it imports, else DDS), ``"rclpy"``, ``"dds"`` or ``"inprocess"`` (on ``bus``)."""
    if kind == "auto":
        try:
            import rclpy  # noqa: F401
        except ImportError:
            kind = "dds"
        else:
            kind = "rclpy"
    if kind == "rclpy":
        return RclpyTransport()
    if kind == "dds":
        return DdsTransport()
    if kind == "inprocess":
        return InProcessTransport(bus if bus is not None else InProcessBus())
    raise ValueError(f"unknown transport {kind!r}; use auto, rclpy, dds or inprocess")
