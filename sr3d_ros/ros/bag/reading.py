"""Reading rosbag2 bags with ``rosbags``: messages in timestamp order, and a bag's summary.

Deserialised messages are ``rosbags`` dataclasses, duck-type compatible with the rclpy messages:
:func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array` and
:func:`sr3d_ros.ros.messages.detection3d_array_to_boxes` accept them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr3d_ros.ros.bag.typestore import make_typestore

__all__ = ["BagMessage", "bag_info", "read_bag"]


@dataclass
class BagMessage:
    """One message of a bag: topic, ``"pkg/msg/Type"``, bag time (ns), the CDR bytes, and the
    ``rosbags``-deserialised message (``None`` when not deserialised)."""

    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes
    msg: Any = None


def read_bag(
    path: str | Path, topics: Iterable[str] | None = None, deserialize: bool = True
) -> Iterator[BagMessage]:
    """Messages of a rosbag2 bag (folder or ``.mcap`` / ``.db3`` file) in timestamp order.

    Args:
        path: the bag.
        topics: only these topics (default: all).
        deserialize: also deserialise each message with :func:`make_typestore`.

    Yields:
        :class:`BagMessage`.

    Raises:
        FileNotFoundError: no such bag. rosbags errors for unreadable bags.
    """
    from rosbags.rosbag2 import Reader

    ts = make_typestore() if deserialize else None
    wanted = set(topics) if topics is not None else None
    with Reader(path) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        for conn, t, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype) if ts is not None else None
            yield BagMessage(conn.topic, conn.msgtype, int(t), bytes(raw), msg)


def bag_info(path: str | Path) -> dict[str, Any]:
    """Summary of a bag (JSON-serialisable).

    Returns:
        ``{"path", "duration_s", "start_ns", "messages", "topics": {topic: {"type", "count"}},
        "custom_data", "chunks"}``: duration in seconds, start as bag time in nanoseconds,
        the bag's ``custom_data`` (empty for single-file bags without metadata) and
        ``chunks = {"count", "with_crc", "corrupt": [one line per damaged chunk]}``.

    Raises:
        FileNotFoundError: no such bag. rosbags errors for unreadable bags (a damaged record
        structure; a corrupt chunk alone is reported in ``chunks["corrupt"]``).
    """
    from rosbags.rosbag2 import Reader

    from sr3d_ros.ros.bag.integrity import check_bag

    reports = check_bag(path)
    chunks = {
        "count": sum(r.chunks for r in reports),
        "with_crc": sum(r.with_crc for r in reports),
        "corrupt": [p for r in reports for p in r.problems],
    }

    with Reader(path) as r:
        topics = {t: {"type": i.msgtype, "count": i.msgcount} for t, i in r.topics.items()}
        meta = getattr(r.storage, "metadata", None)  # rosbags' ReaderMetadata (folder bags)
        custom = dict(getattr(meta, "custom", None) or {})
        return {
            "path": str(path),
            "duration_s": r.duration / 1e9,
            "start_ns": r.start_time,
            "messages": r.message_count,
            "topics": topics,
            "custom_data": custom,
            "chunks": chunks,
        }
