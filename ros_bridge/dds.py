"""ROS 2 topics over Cyclone DDS, without a ROS installation (``pip install surgisim[ros]``).

It speaks to ROS 2 nodes as ROS 2 does (``surgisim.ros_bridge.wire``): ``rt/`` topics,
``pkg::msg::dds_::Name_`` types, plain CDR, ROS 2 QoS; the domain from ``ROS_DOMAIN_ID`` and
discovery from ``ROS_AUTOMATIC_DISCOVERY_RANGE``, ``ROS_STATIC_PEERS`` and ``ROS_LOCALHOST_ONLY``
as ``rmw_cyclonedds`` reads them, with a user's ``CYCLONEDDS_URI`` applied after (it wins where
both set something). Like rmw, it announces its node and the node's readers and writers on
``ros_discovery_info`` (``rmw_dds_common/ParticipantEntitiesInfo``, reliable, transient local,
depth 1) each time they change, so ``ros2 node list`` and ``ros2 topic info -v`` show it.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from typing import Any

from cyclonedds.core import DDSException, InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from surgisim.ros_bridge.endpoints import QOS_DEFAULT, QOS_LATCHED, Callback, Publish, QoS
from surgisim.ros_bridge.messages import PARTICIPANT_ENTITIES_INFO, participant_entities_info
from surgisim.ros_bridge.wire import dds_topic, from_idl, idl_type, to_idl

DISCOVERY_TOPIC = "ros_discovery_info"  # rmw's node graph; a DDS name as it is, without "rt/"
ENCLAVE = b"enclave=/;"  # the participant's user data, as rmw sets it


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

    def __init__(self, domain_id: int | None = None, node_name: str = "surgisim_bridge") -> None:
        self.domain_id = ros_domain_id() if domain_id is None else domain_id
        if self.domain_id not in _DOMAINS:  # Cyclone configures a domain once per process
            _DOMAINS[self.domain_id] = Domain(self.domain_id, discovery_config())
        self.participant = DomainParticipant(self.domain_id, qos=Qos(Policy.Userdata(ENCLAVE)))
        self.node_name = node_name
        graph = Topic(self.participant, DISCOVERY_TOPIC, idl_type(PARTICIPANT_ENTITIES_INFO))
        self.graph_writer = DataWriter(self.participant, graph, qos=self._qos(QOS_LATCHED))
        self.waitset = WaitSet(self.participant)
        self._any_sample = SampleState.Any | ViewState.Any | InstanceState.Any
        self.topics: dict[str, Any] = {}
        self.readers: list[tuple[Any, str, Callback]] = []
        self.writers: dict[str, list[Any]] = defaultdict(list)
        self.topic_readers: dict[str, list[Any]] = defaultdict(list)
        self.conditions: list[Any] = []
        self._announce()

    def _announce(self) -> None:
        """Publish this node and its readers and writers on ``ros_discovery_info``."""
        readers = [reader.guid.bytes for reader, _, _ in self.readers]
        writers = [writer.guid.bytes for topic_writers in self.writers.values() for writer in topic_writers]
        info = participant_entities_info(self.participant.guid.bytes, [("/", self.node_name, readers, writers)])
        self.graph_writer.write(to_idl(info, PARTICIPANT_ENTITIES_INFO))

    def _topic(self, topic: str, type_name: str) -> Any:
        if topic not in self.topics:
            self.topics[topic] = (Topic(self.participant, dds_topic(topic), idl_type(type_name)), type_name)
        dds, known = self.topics[topic]
        if known != type_name:
            raise ValueError(f"{topic} carries {known}, not {type_name}")
        return dds

    @staticmethod
    def _qos(qos: QoS) -> Any:
        reliability = (
            Policy.Reliability.Reliable(duration(milliseconds=100)) if qos.reliable else Policy.Reliability.BestEffort
        )
        durability = Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile
        # Plain CDR (XCDR1) only, as ROS 2 sends it.
        return Qos(reliability, durability, Policy.History.KeepLast(qos.depth),
                   Policy.DataRepresentation(use_cdrv0_representation=True))  # fmt: skip

    def publisher(self, topic: str, type_name: str, qos: QoS = QOS_DEFAULT) -> Publish:
        writer = DataWriter(self.participant, self._topic(topic, type_name), qos=self._qos(qos))
        self.writers[topic].append(writer)
        self._announce()
        return lambda message: writer.write(to_idl(message, type_name))

    def subscribe(self, topic: str, type_name: str, callback: Callback, qos: QoS = QOS_DEFAULT) -> None:
        reader = DataReader(self.participant, self._topic(topic, type_name), qos=self._qos(qos))
        condition = ReadCondition(reader, self._any_sample)
        self.waitset.attach(condition)
        self.conditions.append(condition)
        self.readers.append((reader, type_name, callback))
        self.topic_readers[topic].append(reader)
        self._announce()

    def spin_once(self, timeout: float = 0.0) -> int:
        delivered = self._take()
        if not delivered and timeout > 0:
            self.waitset.wait(int(timeout * 1e9))
            delivered = self._take()
        return delivered

    def _take(self) -> int:
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

    def wait_for_acks(self, topic: str, timeout: float) -> bool:
        """Wait until every reliable reader has acknowledged what this transport's writers on
        ``topic`` wrote (or ``timeout`` seconds); whether they all did."""
        deadline = time.monotonic() + timeout
        acknowledged = True
        for writer in self.writers[topic]:
            left = max(0.0, deadline - time.monotonic())
            acknowledged = _acknowledged(writer, int(left * 1e9)) and acknowledged
        return acknowledged

    def close(self) -> None:
        self.readers.clear()
        self.writers.clear()
        self.topic_readers.clear()
        self.conditions.clear()
        self.topics.clear()
        self.participant = None
        self.waitset = None


def _acknowledged(writer: DataWriter, nanoseconds: int) -> bool:
    """``DataWriter.wait_for_acks``: cyclonedds-python's own wrapper fails on its timeout (it looks
    for the return code on ``Exception`` instead of ``DDSException``), so the binding is called."""
    code = writer._wait_for_acks(writer._ref, nanoseconds)
    if code not in (0, DDSException.DDS_RETCODE_TIMEOUT):
        raise DDSException(code, f"waiting for acknowledgements on {writer!r}")
    return code == 0
