"""Recording topics with rclpy into a rosbag2 MCAP bag: each topic is subscribed (raw) as soon as
it appears in the graph, with a QoS that matches its publishers. rclpy is imported when a
recorder is created, not at import.

Bag time: the receive time of the recording node's clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sr3d_ros.ros.bag.typestore import make_typestore, message_class

__all__ = ["BagRecorder"]


class BagRecorder:
    """Record topics with rclpy into a rosbag2 MCAP bag.

    Each topic is subscribed as soon as a publisher for it appears in the graph (checked every
    0.2 s by a timer on ``node``, so the executor spinning ``node`` must be running), with a QoS
    matching the publishers present then: reliable if all are reliable (else best effort),
    transient local if all are (so latched messages such as LabelInfo are recorded). Messages
    are written raw (received CDR bytes) with the receive time of ``node``'s clock.

    Large messages between processes: with Fast DDS's default transports, best-effort samples
    larger than ~0.5 MB (about 30k xyz+rgb points) are mostly lost between processes, while
    reliable ones arrive; publish big clouds reliably when they must be recorded.

    Args:
        node: rclpy node to subscribe with (``rclpy.node.Node``; ``Any``: rclpy is untyped).
        path: bag folder to create (must not exist).
        topics: fully-qualified topic names.
        types: optional ``{topic: "pkg/msg/Type"}``: use this type instead of the one the graph
            advertises (the topic is still subscribed only once it has a publisher).

    Raises:
        rosbags WriterError: ``path`` exists.
    """

    def __init__(
        self,
        node: Any,
        path: str | Path,
        topics: Sequence[str],
        types: dict[str, str] | None = None,
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.node = node
        self.path = Path(path)
        self.typestore = make_typestore()
        self.wanted = list(dict.fromkeys(topics))
        self.types = dict(types or {})
        self.counts: dict[str, int] = dict.fromkeys(self.wanted, 0)
        self._lock = threading.Lock()
        self._subs: dict[str, Any] = {}  # rclpy subscriptions
        self._conns: dict[str, Any] = {}  # rosbags writer connections
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._closed = False
        self._timer = node.create_timer(0.2, self._discover)
        self._discover()

    def _qos(self, topic: str) -> Any:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        infos = self.node.get_publishers_info_by_topic(topic)
        reliable = bool(infos) and all(
            i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos
        )
        latched = bool(infos) and all(
            i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos
        )
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )

    def _discover(self) -> None:
        missing = [t for t in self.wanted if t not in self._subs]
        if not missing or self._closed:
            return
        graph: dict[str, list[str]] = dict(self.node.get_topic_names_and_types())
        for topic in missing:
            # Subscribe only once a publisher exists, so that the QoS can match it.
            if not self.node.count_publishers(topic):
                continue
            msgtype = self.types.get(topic) or next(iter(graph.get(topic) or []), None)
            if msgtype is None:
                continue
            try:
                cls = message_class(msgtype)
                self.typestore.fielddefs[msgtype]
            except (ImportError, AttributeError, KeyError, ValueError):
                self.node.get_logger().warning(f"cannot record {topic}: unknown type {msgtype}")
                self.wanted.remove(topic)
                continue
            with self._lock:
                self._conns[topic] = self._writer.add_connection(
                    topic, msgtype, typestore=self.typestore
                )
            self._subs[topic] = self.node.create_subscription(
                cls, topic, lambda raw, t=topic: self._on_msg(t, raw), self._qos(topic), raw=True
            )

    def _on_msg(self, topic: str, raw: bytes) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed:
                return
            self._writer.write(self._conns[topic], now, raw)
            self.counts[topic] += 1

    @property
    def subscribed(self) -> list[str]:
        """Topics subscribed so far."""
        return list(self._subs)

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        """Wait (the node must be spinning elsewhere) until every topic is subscribed.

        Returns:
            True if all were subscribed within ``timeout_s`` seconds.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(t in self._subs for t in self.wanted):
                return True
            time.sleep(0.02)
        return all(t in self._subs for t in self.wanted)

    def close(self) -> dict[str, int]:
        """Stop recording and finish the bag (writes ``metadata.yaml``); idempotent.

        Returns:
            Messages written per topic.
        """
        with self._lock:
            if self._closed:
                return dict(self.counts)
            self._closed = True
        self.node.destroy_timer(self._timer)
        for sub in self._subs.values():
            self.node.destroy_subscription(sub)
        with self._lock:
            self._writer.close()
            from sr3d_ros.ros.bag.integrity import add_chunk_crcs

            add_chunk_crcs(self.path)  # rosbags writes CRC 0: corruption would play silently
        return dict(self.counts)
