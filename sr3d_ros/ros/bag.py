"""rosbag2 (MCAP) tools on the ``rosbags`` library: build from dataset samples, read, play, record.

* :func:`build_bag` writes real dataset scans as ``sensor_msgs/PointCloud2`` (xyz + packed rgb) on
  ``/points`` and their ground truth as ``vision_msgs/Detection3DArray`` on ``/ground_truth``
  (same header stamp and frame), one frame per ``1 / rate`` seconds of bag time. No ROS needed.
* :func:`read_bag` iterates a bag's messages deserialised by ``rosbags`` (duck-type compatible
  with the rclpy messages: :func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array` and
  :func:`sr3d_ros.ros.messages.detection3d_array_to_boxes` accept them).
* :class:`BagPlayer` publishes a bag's raw CDR messages into the ROS graph with rclpy (original
  timing scaled by ``rate``, optional loop, optional ``rosgraph_msgs/Clock`` on ``/clock`` with
  the bag time for nodes with ``use_sim_time``); :class:`BagRecorder` subscribes to topics (raw) and
  writes an MCAP bag, subscribing to each topic as soon as it appears in the graph with a QoS
  that matches its publishers.

The ``rosbags`` typestore is the ROS 2 Kilted one plus our ``vision_msgs`` definitions
(``interfaces/vision_msgs/msg/*.msg``, registered with ``get_types_from_msg``), so bags carry the
same message definitions and RIHS01 type hashes as the live graph.

Bag time: the header stamps and the bag timestamps of :func:`build_bag` are equal; recorded bags
use the receive time of the recording node's clock.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GT_TOPIC",
    "POINTS_TOPIC",
    "BagMessage",
    "BagPlayer",
    "BagRecorder",
    "bag_info",
    "build_bag",
    "load_samples",
    "make_typestore",
    "new_msg",
    "read_bag",
    "vision_msgs_dir",
]

POINTS_TOPIC = "/points"
GT_TOPIC = "/ground_truth"
CLOCK_TOPIC = "/clock"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
DETECTION3DARRAY = "vision_msgs/msg/Detection3DArray"

_REPO = Path(__file__).resolve().parents[2]
_TYPESTORE: Any = None


# ---------------------------------------------------------------------------------------------
# typestore


def vision_msgs_dir() -> Path:
    """Folder holding our ``vision_msgs`` ``*.msg`` files.

    Looked up in the source tree (``interfaces/vision_msgs/msg``), then in the installed
    package's share folder (``<prefix>/share/vision_msgs/msg``, found through
    ``AMENT_PREFIX_PATH`` or the installed Python package).

    Raises:
        FileNotFoundError: none found.
    """
    import os
    import sys

    cands = [_REPO / "interfaces" / "vision_msgs" / "msg"]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        cands.append(Path(prefix) / "share" / "vision_msgs" / "msg")
    cands.append(Path(sys.prefix) / "share" / "vision_msgs" / "msg")
    try:
        import vision_msgs

        cands.append(
            Path(vision_msgs.__file__).resolve().parents[4] / "share" / "vision_msgs" / "msg"
        )
    except ImportError:
        pass
    for c in cands:
        if c.is_dir() and any(c.glob("*.msg")):
            return c
    raise FileNotFoundError("vision_msgs .msg files not found; tried " + ", ".join(map(str, cands)))


def make_typestore() -> Any:
    """The ``rosbags`` typestore for ROS 2 Kilted plus our ``vision_msgs`` (cached).

    Returns:
        ``rosbags.typesys.store.Typestore``.

    Raises:
        FileNotFoundError: the vision_msgs definitions are missing.
    """
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        ts = get_typestore(Stores.ROS2_KILTED)
        types: dict[str, Any] = {}
        for f in sorted(vision_msgs_dir().glob("*.msg")):
            types.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{f.stem}"))
        ts.register(types)
        _TYPESTORE = ts
    return _TYPESTORE


_NUMPY_BASE = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def _default(ts: Any, nodetype: int, detail: Any) -> Any:
    from rosbags.interfaces import Nodetype

    if nodetype == Nodetype.BASE:
        typ = detail[0]
        if typ in ("string", "wstring"):
            return ""
        if typ == "bool":
            return False
        return 0.0 if typ.startswith("float") else 0
    if nodetype == Nodetype.NAME:
        return new_msg(ts, detail)
    (sub_type, sub_detail), length = detail
    numeric = sub_type == Nodetype.BASE and sub_detail[0] in _NUMPY_BASE
    if nodetype == Nodetype.ARRAY:
        if numeric:
            return np.zeros(length, dtype=_NUMPY_BASE[sub_detail[0]])
        return [_default(ts, sub_type, sub_detail) for _ in range(length)]
    return np.zeros(0, dtype=_NUMPY_BASE[sub_detail[0]]) if numeric else []


def new_msg(ts: Any, typename: str, **fields: Any) -> Any:
    """A ``rosbags`` message of ``typename`` with the given fields, every other field at its ROS
    default (0, '', False, empty sequences, zero arrays, nested defaults).

    Raises:
        KeyError: unknown type. TypeError: unknown field name.
    """
    _, fdefs = ts.fielddefs[typename]
    names = {n for n, _ in fdefs}
    unknown = set(fields) - names
    if unknown:
        raise TypeError(f"{typename} has no field(s) {sorted(unknown)}")
    kwargs = {n: fields[n] if n in fields else _default(ts, nt, d) for n, (nt, d) in fdefs}
    return ts.types[typename](**kwargs)


# ---------------------------------------------------------------------------------------------
# build / read


def _header(ts: Any, stamp_ns: int, frame_id: str) -> Any:
    stamp = new_msg(
        ts,
        "builtin_interfaces/msg/Time",
        sec=int(stamp_ns // 1_000_000_000),
        nanosec=int(stamp_ns % 1_000_000_000),
    )
    return new_msg(ts, "std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


def _pointcloud2(ts: Any, header: Any, points: np.ndarray) -> Any:
    from sr3d_ros.ros.pointcloud2 import points_to_cloud

    layout, data = points_to_cloud(points)
    fields = [
        new_msg(
            ts,
            "sensor_msgs/msg/PointField",
            name=f.name,
            offset=f.offset,
            datatype=f.datatype,
            count=f.count,
        )
        for f in layout.fields
    ]
    return new_msg(
        ts,
        POINTCLOUD2,
        header=header,
        height=layout.height,
        width=layout.width,
        fields=fields,
        is_bigendian=layout.is_bigendian,
        point_step=layout.point_step,
        row_step=layout.row_step,
        data=np.frombuffer(data, np.uint8),
        is_dense=layout.is_dense,
    )


def _detection_array(
    ts: Any, header: Any, boxes: np.ndarray, scores: np.ndarray, names: Sequence[str]
) -> Any:
    from sr3d_ros.frames import quaternion_from_yaw

    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    q = quaternion_from_yaw(b[:, 6]).reshape(-1, 4)
    dets = []
    for i in range(len(b)):

        def pose() -> Any:
            return new_msg(
                ts,
                "geometry_msgs/msg/Pose",
                position=new_msg(ts, "geometry_msgs/msg/Point", x=b[i, 0], y=b[i, 1], z=b[i, 2]),
                orientation=new_msg(
                    ts, "geometry_msgs/msg/Quaternion", x=q[i, 0], y=q[i, 1], z=q[i, 2], w=q[i, 3]
                ),
            )

        hyp = new_msg(
            ts,
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=new_msg(
                ts,
                "vision_msgs/msg/ObjectHypothesis",
                class_id=str(names[i]),
                score=float(scores[i]),
            ),
            pose=new_msg(ts, "geometry_msgs/msg/PoseWithCovariance", pose=pose()),
        )
        bbox = new_msg(
            ts,
            "vision_msgs/msg/BoundingBox3D",
            center=pose(),
            size=new_msg(ts, "geometry_msgs/msg/Vector3", x=b[i, 3], y=b[i, 4], z=b[i, 5]),
        )
        dets.append(
            new_msg(ts, "vision_msgs/msg/Detection3D", header=header, results=[hyp], bbox=bbox)
        )
    return new_msg(ts, DETECTION3DARRAY, header=header, detections=dets)


def load_samples(dataset: str, data_root: str | Path, ids: Sequence[str]) -> list[Any]:
    """Real dataset samples (:class:`sr3d_training.datasets.Sample`) for a bag.

    Args:
        dataset: ``"scannet"`` (ids = scene ids, from ``<root>/scannet/scannet_instance_data``)
            or ``"sunrgbd"`` (ids = frame ids, from ``<root>/sunrgbd/sunrgbd_trainval``).
        data_root: the shared data root (``../shared/data``).
        ids: which scenes / frames, in bag order.

    Returns:
        ``Sample`` objects: points float32 (N, 6) gravity-aligned, rgb 0..255; gt boxes (K, 7).

    Raises:
        ValueError: unknown dataset. FileNotFoundError: missing files (the message names them).
    """
    root = Path(data_root)
    if dataset == "scannet":
        from sr3d_training.datasets import ScanNetDataset

        ds = ScanNetDataset(root / "scannet", scene_ids=list(ids))
        return [ds[i] for i in range(len(ds))]
    if dataset == "sunrgbd":
        from sr3d_training.datasets import load_sunrgbd_frame

        return [load_sunrgbd_frame(root / "sunrgbd" / "sunrgbd_trainval", i) for i in ids]
    raise ValueError(f"unknown dataset {dataset!r}: use 'scannet' or 'sunrgbd'")


@dataclass
class BagSummary:
    """What :func:`build_bag` wrote."""

    path: Path
    frames: int
    start_ns: int
    period_ns: int
    sample_ids: list[str] = field(default_factory=list)


def build_bag(
    out: str | Path,
    samples: Sequence[Any],
    rate_hz: float = 0.5,
    frame_id: str = "map",
    start_ns: int | None = None,
    points_topic: str = POINTS_TOPIC,
    gt_topic: str = GT_TOPIC,
) -> BagSummary:
    """Write dataset samples as a rosbag2 MCAP bag.

    Args:
        out: bag folder to create (must not exist).
        samples: objects with ``points`` float32 (N, 6) (xyz metres + rgb 0..255),
            ``gt_boxes`` (K, 7), ``gt_labels`` (K,), ``class_names`` and ``sample_id``
            (:class:`sr3d_training.datasets.Sample`).
        rate_hz: frames per second of bag time (frame ``i`` at ``start + i / rate``).
        frame_id: ``header.frame_id`` of every message (the points' frame).
        start_ns: bag time of the first frame (default: now).
        points_topic / gt_topic: topic names.

    Returns:
        :class:`BagSummary`. The bag's ``custom_data`` holds ``sr3d.sample_ids`` and
        ``sr3d.class_names`` (JSON lists).

    Raises:
        ValueError: ``rate_hz <= 0`` or no samples. rosbags ``WriterError``: ``out`` exists.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    if not samples:
        raise ValueError("no samples to write")
    ts = make_typestore()
    period = int(round(1e9 / rate_hz))
    start = time.time_ns() if start_ns is None else int(start_ns)
    out = Path(out)
    writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_custom_data("sr3d.sample_ids", json.dumps([str(s.sample_id) for s in samples]))
    writer.set_custom_data("sr3d.class_names", json.dumps(list(samples[0].class_names)))
    with writer:
        c_pts = writer.add_connection(points_topic, POINTCLOUD2, typestore=ts)
        c_gt = writer.add_connection(gt_topic, DETECTION3DARRAY, typestore=ts)
        for i, s in enumerate(samples):
            t = start + i * period
            header = _header(ts, t, frame_id)
            cloud = _pointcloud2(ts, header, np.asarray(s.points, np.float32))
            writer.write(c_pts, t, ts.serialize_cdr(cloud, POINTCLOUD2))
            names = [s.class_names[int(k)] for k in np.asarray(s.gt_labels).reshape(-1)]
            gt = _detection_array(ts, header, s.gt_boxes, np.ones(len(names)), names)
            writer.write(c_gt, t, ts.serialize_cdr(gt, DETECTION3DARRAY))
    return BagSummary(out, len(samples), start, period, [str(s.sample_id) for s in samples])


@dataclass
class BagMessage:
    """One message of a bag."""

    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes
    msg: Any = None  # the rosbags-deserialised message (None when not deserialised)


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
    """Summary of a bag: ``{"path", "duration_s", "start_ns", "messages", "topics": {topic:
    {"type", "count"}}, "custom_data"}``."""
    from rosbags.rosbag2 import Reader

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
        }


# ---------------------------------------------------------------------------------------------
# rclpy: play / record


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``"pkg/msg/Name"``.

    Raises:
        ImportError / AttributeError: the package's Python messages are not installed.
    """
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class BagPlayer:
    """Publish a bag's messages with rclpy, as raw CDR (no conversion).

    Publishers are reliable + volatile with depth 10 (a reliable publisher also serves
    best-effort subscribers, such as rclpy's and rclcpp's ``/clock`` subscriptions).

    Args:
        node: the rclpy node to publish from.
        path: the bag.
        topics: only these topics (default: all).
        remap: ``{bag topic: published topic}``; ``"/clock"`` renames the clock topic.
        clock: also publish ``rosgraph_msgs/Clock`` with the bag time during :meth:`play` (like
            ``ros2 bag play --clock``): the message's bag timestamp just before each message,
            and the interpolated bag time ``clock_hz`` times per second in between. Each loop
            pass starts the clock again at the bag's start (time jumps back, as with rosbag2).

    Raises:
        FileNotFoundError: no such bag. ImportError: a message type is not installed.
    """

    def __init__(
        self,
        node: Any,
        path: str | Path,
        topics: Iterable[str] | None = None,
        remap: dict[str, str] | None = None,
        clock: bool = False,
    ) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosbags.rosbag2 import Reader

        self.node = node
        self.path = Path(path)
        self.topics = None if topics is None else set(topics)
        remap = remap or {}
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self.publishers: dict[str, Any] = {}
        with Reader(self.path) as r:
            for topic, info in r.topics.items():
                if self.topics is not None and topic not in self.topics:
                    continue
                self.publishers[topic] = node.create_publisher(
                    message_class(info.msgtype), remap.get(topic, topic), qos
                )
        self.clock_publisher: Any = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self.clock_publisher = node.create_publisher(
                Clock, remap.get(CLOCK_TOPIC, CLOCK_TOPIC), qos
            )
        self.published = 0
        self.clock_published = 0

    def wait_for_subscribers(
        self, timeout_s: float = 10.0, topics: Iterable[str] | None = None, count: int = 1
    ) -> bool:
        """Wait until every (given) topic has at least ``count`` matched subscribers (with
        ``clock`` and no ``topics`` given, the clock topic too).

        Returns:
            True if they all matched within ``timeout_s``.
        """
        pubs = [self.publishers[t] for t in (topics or self.publishers) if t in self.publishers]
        if topics is None and self.clock_publisher is not None:
            pubs.append(self.clock_publisher)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() >= count for p in pubs):
                return True
            time.sleep(0.02)
        return all(p.get_subscription_count() >= count for p in pubs)

    def wait_for_all_acked(self, timeout_s: float = 5.0) -> bool:
        """Wait until every matched subscriber has acknowledged everything published so far (the
        publishers are reliable), e.g. before the process exits. Returns True if all were acked
        within ``timeout_s`` (in total)."""
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        pubs = [*self.publishers.values(), *filter(None, [self.clock_publisher])]
        ok = True
        for p in pubs:
            left = max(0.0, deadline - time.monotonic())
            ok = p.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))) and ok
        return ok

    def messages(self) -> Iterator[BagMessage]:
        """The bag's messages on the played topics (raw, not deserialised)."""
        return read_bag(self.path, self.publishers.keys(), deserialize=False)

    def publish(self, m: BagMessage) -> None:
        """Publish one message now."""
        self.publishers[m.topic].publish(m.raw)
        self.published += 1

    def publish_clock(self, t_ns: int) -> None:
        """Publish ``rosgraph_msgs/Clock`` with time ``t_ns`` (needs ``clock=True``)."""
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self.clock_publisher.publish(msg)
        self.clock_published += 1

    def play(
        self,
        rate: float = 1.0,
        loop: bool = False,
        stop: threading.Event | None = None,
        on_publish: Callable[[BagMessage], None] | None = None,
        clock_hz: float = 40.0,
    ) -> int:
        """Publish with the bag's timing: message ``k`` goes out ``(t_k - t_0) / rate`` seconds
        after the start of the pass.

        Args:
            rate: speed factor (2 = twice as fast).
            loop: replay forever (until ``stop`` is set).
            stop: event that ends playback early.
            on_publish: called after each message is published.
            clock_hz: with ``clock``: clock messages per second of wall time between bag
                messages (the bag time interpolated, never past the next message's); <= 0 =
                only at the messages.

        Returns:
            Number of messages published (clock messages not counted; see ``clock_published``).

        Raises:
            ValueError: ``rate <= 0``.
        """
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        clock = self.clock_publisher is not None
        period = 1.0 / clock_hz if clock and clock_hz > 0 else None
        n = 0
        while True:
            t0_bag = None
            t0_wall = time.monotonic()
            next_clock = t0_wall
            for m in self.messages():
                if t0_bag is None:
                    t0_bag = m.timestamp_ns
                due = t0_wall + (m.timestamp_ns - t0_bag) / 1e9 / rate
                while True:
                    if stop is not None and stop.is_set():
                        return n
                    now = time.monotonic()
                    left = due - now
                    if left <= 0:
                        break
                    if period is not None and now >= next_clock:
                        bag_now = t0_bag + int((now - t0_wall) * rate * 1e9)
                        self.publish_clock(min(bag_now, m.timestamp_ns))
                        next_clock = now + period
                    time.sleep(min(left, 0.05, period or 0.05))
                if clock:  # the time a sim-time node sees is never behind the message it gets
                    self.publish_clock(m.timestamp_ns)
                    next_clock = time.monotonic() + (period or 0.0)
                self.publish(m)
                n += 1
                if on_publish is not None:
                    on_publish(m)
            if not loop or t0_bag is None:
                return n


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
        node: rclpy node to subscribe with.
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
        self._subs: dict[str, Any] = {}
        self._conns: dict[str, Any] = {}
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
        graph = dict(self.node.get_topic_names_and_types())
        for topic in missing:
            # Subscribe only once a publisher exists, so that the QoS can match it.
            if not self.node.count_publishers(topic):
                continue
            msgtype = self.types.get(topic) or (graph.get(topic) or [None])[0]
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
        """Wait (the node must be spinning elsewhere) until every topic is subscribed."""
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
        return dict(self.counts)
