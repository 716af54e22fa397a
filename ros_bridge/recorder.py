"""A recorder: the session's topics into a rosbag2 bag (MCAP storage), readable by ``rosbags``
and ``ros2 bag``. Messages are stored as the CDR ROS 2 sends, stamped with their arrival time.

The bag is written beside its destination and moved into place when closed, so an interrupted
recording leaves no half-written bag where one was asked for (what a killed one left is removed
by the next recording to the same path), and an existing bag is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer

from surgisim.envs.files import remove_stale, staging_prefix
from surgisim.ros_bridge.endpoints import Transport
from surgisim.ros_bridge.messages import TYPESTORE, encode
from surgisim.ros_bridge.profiles import Topic


class Recorder:
    """Subscribes to ``topics`` and writes what arrives to a bag at ``path`` (on ``close``)."""

    def __init__(self, transport: Transport, topics: list[Topic], path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists; choose another bag path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.path)
        self.staging = Path(tempfile.mkdtemp(prefix=staging_prefix(self.path), dir=self.path.parent))
        self.writer = Writer(self.staging / self.path.name, version=8, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.counts: dict[str, int] = {}
        for topic in topics:
            connection = self.writer.add_connection(topic.name, topic.type_name, typestore=TYPESTORE)
            transport.subscribe(topic.name, topic.type_name, self._writer_for(connection, topic), topic.qos)
            self.counts[topic.name] = 0

    def _writer_for(self, connection: Any, topic: Topic) -> Any:
        def write(message: Any) -> None:
            self.writer.write(connection, time.time_ns(), encode(message, topic.type_name))
            self.counts[topic.name] += 1

        return write

    def close(self) -> Path:
        """Finish the bag and move it into place."""
        self.writer.close()
        os.replace(self.staging / self.path.name, self.path)
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.path
