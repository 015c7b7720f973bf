"""Reading rosbag2 bags (``.mcap`` / ``.db3``, folder or file) with ``rosbags``: messages in
timestamp order, clear errors for damaged bags, and a bag's summary.

Deserialised messages are ``rosbags`` dataclasses, duck-type compatible with the rclpy messages:
:func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array` and
:func:`sr3d_ros.ros.messages.detection3d_array_to_boxes` accept them.

Every problem with a bag (missing metadata.yaml, a truncated or damaged file, a chunk whose CRC
does not match, an unknown message type, a topic that is not in the bag) raises
:class:`BagReadError`, one line naming the bag and the problem.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr3d_ros.ros.bag.typestore import make_typestore

__all__ = [
    "BagMessage",
    "BagReadError",
    "BagReader",
    "bag_info",
    "check_storage",
    "frame_of",
    "open_bag",
    "read_bag",
    "require_topic",
]


class BagReadError(ValueError):
    """A bag cannot be read as asked: the message names the bag and the problem."""


@dataclass
class BagMessage:
    """One message of a bag: topic, ``"pkg/msg/Type"``, bag time (ns), the CDR bytes, and the
    ``rosbags``-deserialised message (``None`` when not deserialised)."""

    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes
    msg: Any = None


def _db3_files(path: Path) -> list[Path]:
    return [path] if path.suffix == ".db3" else sorted(path.glob("*.db3")) if path.is_dir() else []


def frame_of(raw: bytes, msgtype: str) -> str | None:
    """``header.frame_id`` of a CDR message whose first field is a ``std_msgs/Header``, read
    from the bytes (no deserialisation); None for types without one or malformed bytes."""
    fields = make_typestore().fielddefs.get(msgtype)
    if not fields or fields[1][:1] != [("header", fields[1][0][1])]:
        return None
    if fields[1][0][1][1] != "std_msgs/msg/Header" or len(raw) < 16:
        return None
    order = "<" if raw[1] == 1 else ">"  # CDR encapsulation: 0x0001 little, 0x0000 big endian
    (n,) = struct.unpack_from(order + "I", raw, 12)  # after sec, nanosec: the string length
    if n < 1 or 16 + n > len(raw):
        return None
    return raw[16 : 16 + n - 1].decode("utf-8", "replace")


def check_storage(path: str | Path) -> None:
    """Verify a bag's files before reading them: MCAP record structure and chunk CRCs
    (:func:`~sr3d_ros.ros.bag.integrity.check_bag`, streaming), SQLite ``quick_check``.

    Raises:
        FileNotFoundError: no bag. BagReadError: a damaged file (each problem listed).
    """
    from sr3d_ros.ros.bag.integrity import check_bag

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag not found: {p}")
    problems = [q for r in check_bag(p) for q in r.problems]
    for db in _db3_files(p):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                rows = con.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                problems.append(f"{db}: damaged SQLite file ({rows[0][0]})")
        except sqlite3.DatabaseError as exc:
            problems.append(f"{db}: not a readable SQLite file ({exc})")
    if problems:
        raise BagReadError(f"{p}: damaged bag: " + "; ".join(problems))


class BagReader:
    """An open bag (see :func:`open_bag`): topic summary, messages, deserialisation."""

    def __init__(self, path: Path, reader: Any) -> None:
        self.path = path
        self._reader = reader  # rosbags.rosbag2.Reader
        self._ts = make_typestore()

    @property
    def topics(self) -> dict[str, Any]:
        """``{topic: rosbags TopicInfo}`` (``.msgtype``, ``.msgcount``)."""
        return dict(self._reader.topics)

    @property
    def custom_data(self) -> dict[str, str]:
        """The bag's ``custom_data`` (empty for single files without metadata)."""
        meta = getattr(self._reader.storage, "metadata", None)  # rosbags' ReaderMetadata
        return dict(getattr(meta, "custom", None) or {})

    @property
    def rosbags(self) -> Any:
        """The underlying ``rosbags.rosbag2.Reader``."""
        return self._reader

    def deserialize(self, m: BagMessage) -> Any:
        """The message of ``m`` deserialised with our typestore.

        Raises:
            BagReadError: an unknown message type or bytes that do not decode as it.
        """
        if m.msgtype not in self._ts.fielddefs:
            raise BagReadError(
                f"{self.path}: topic {m.topic} has the unknown message type {m.msgtype!r} "
                "(not in ROS 2 Kilted or our vision_msgs)"
            )
        try:
            return self._ts.deserialize_cdr(m.raw, m.msgtype)
        except Exception as exc:  # rosbags raises assorted errors for bad bytes
            raise BagReadError(
                f"{self.path}: a {m.msgtype} message on {m.topic} at {m.timestamp_ns} ns does not "
                f"decode ({type(exc).__name__}: {exc})"
            ) from None

    def messages(
        self, topics: Iterable[str] | None = None, deserialize: bool = True
    ) -> Iterator[BagMessage]:
        """Messages of the given topics (default all) in timestamp order, streamed.

        Raises:
            BagReadError: a damaged part met while reading, or an unknown type.
        """
        wanted = set(topics) if topics is not None else None
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, t, raw = next(it)
            except StopIteration:
                return
            except Exception as exc:
                if type(exc).__module__.startswith("rosbags") or isinstance(
                    exc, (OSError, sqlite3.DatabaseError)
                ):
                    raise BagReadError(f"{self.path}: cannot read the bag: {exc}") from None
                raise
            m = BagMessage(conn.topic, conn.msgtype, int(t), bytes(raw))
            if deserialize:
                m.msg = self.deserialize(m)
            yield m


@contextmanager
def open_bag(path: str | Path, check: bool = False) -> Iterator[BagReader]:
    """Open a bag for reading.

    Args:
        path: bag folder (with ``metadata.yaml``) or a single ``.mcap`` / ``.db3`` file.
        check: verify the files first (:func:`check_storage`; reads every byte once).

    Raises:
        FileNotFoundError: no bag. BagReadError: missing or broken metadata, a damaged or
        truncated file, an unsupported storage (named).
    """
    from rosbags.rosbag2 import Reader

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag not found: {p}")
    if p.is_dir() and not (p / "metadata.yaml").is_file():
        raise BagReadError(
            f"{p}: no metadata.yaml in the bag folder (not a rosbag2 bag, or its metadata was "
            "lost; `ros2 bag reindex` rebuilds it)"
        )
    if check:
        check_storage(p)
    try:
        reader = Reader(p)
        reader.open()
    except Exception as exc:
        if type(exc).__module__.startswith("rosbags") or isinstance(
            exc, (OSError, sqlite3.DatabaseError, KeyError, ValueError)
        ):
            raise BagReadError(f"{p}: cannot open the bag: {exc}") from None
        raise
    try:
        yield BagReader(p, reader)
    finally:
        reader.close()


def require_topic(reader: BagReader, topic: str, msgtype: str | None = None) -> None:
    """Check that ``topic`` is in the bag (with type ``msgtype`` when given).

    Raises:
        BagReadError: it is not (the message lists the bag's topics and types).
    """
    topics = reader.topics
    have = ", ".join(f"{t} ({i.msgtype})" for t, i in sorted(topics.items())) or "none"
    if topic not in topics:
        raise BagReadError(f"{reader.path}: no topic {topic} in the bag (it has: {have})")
    got = topics[topic].msgtype
    if msgtype is not None and got != msgtype:
        raise BagReadError(f"{reader.path}: topic {topic} has type {got}, expected {msgtype}")


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
        FileNotFoundError: no such bag. BagReadError: an unreadable or damaged bag.
    """
    with open_bag(path) as reader:
        yield from reader.messages(topics, deserialize)


def bag_info(path: str | Path, target_frame: str | None = None) -> dict[str, Any]:
    """Summary of a bag (JSON-serialisable); reads every message once (streaming).

    Returns:
        ``{"path", "storage", "duration_s", "start_ns", "messages", "topics": {topic: {"type",
        "count", "frame_ids"}}, "tf", "custom_data", "chunks"}``: duration in seconds, start as
        bag time in nanoseconds, ``frame_ids`` the header frames seen on a topic,
        ``tf = {"static": [[parent, child]], "dynamic": [...], "frames": the data topics'
        frames, "target_frame", "static_complete": /tf_static alone connects every data frame
        (and the target frame), "complete": /tf_static + /tf do, "unconnected": the data
        frames that cannot reach the first one (or the target frame)}``; the bag's
        ``custom_data``; ``chunks = {"count", "with_crc", "corrupt": [one line per damaged
        chunk]}`` (MCAP).

    Raises:
        FileNotFoundError: no such bag. BagReadError: an unreadable bag (a damaged record
        structure met while reading; a corrupt chunk alone is reported in
        ``chunks["corrupt"]`` and its messages are skipped).
    """
    from sr3d_ros.ros.bag.integrity import check_bag, mcap_files
    from sr3d_ros.ros.bag.tf import TfBuffer, TfLookupError, tf_connectivity

    reports = check_bag(path)
    corrupt = [p for r in reports for p in r.problems]
    chunks = {
        "count": sum(r.chunks for r in reports),
        "with_crc": sum(r.with_crc for r in reports),
        "corrupt": corrupt,
    }
    with ExitStack() as stack:
        try:
            r = stack.enter_context(open_bag(path))
        except BagReadError:
            if corrupt:  # say what is damaged, not only that rosbags cannot open it
                raise BagReadError(f"{path}: damaged bag: " + "; ".join(corrupt)) from None
            raise
        rb = r.rosbags
        topics: dict[str, dict[str, Any]] = {
            t: {"type": i.msgtype, "count": i.msgcount, "frame_ids": []}
            for t, i in r.topics.items()
        }
        tf = TfBuffer()
        tf_problem = ""
        if not corrupt:
            frames: dict[str, set[str]] = {t: set() for t in topics}
            for m in r.messages(deserialize=False):
                if m.msgtype == "tf2_msgs/msg/TFMessage" and m.topic in ("/tf", "/tf_static"):
                    try:
                        tf.add(r.deserialize(m), static=m.topic == "/tf_static")
                    except TfLookupError as exc:
                        tf_problem = str(exc)
                    continue
                fid = frame_of(m.raw, m.msgtype)
                if fid is not None:
                    frames[m.topic].add(fid)
            for t, fs in frames.items():
                topics[t]["frame_ids"] = sorted(fs)
        data_frames = sorted({f for t in topics.values() for f in t["frame_ids"]})
        tf_info = tf_connectivity(tf, data_frames, target_frame)
        if tf_problem:
            tf_info["problem"] = tf_problem
        storage = "mcap" if mcap_files(path) else "sqlite3"
        return {
            "path": str(path),
            "storage": storage,
            "duration_s": rb.duration / 1e9,
            "start_ns": rb.start_time,
            "messages": rb.message_count,
            "topics": topics,
            "tf": tf_info,
            "custom_data": r.custom_data,
            "chunks": chunks,
        }
