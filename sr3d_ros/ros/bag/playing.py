"""Playing a bag into the ROS graph with rclpy: raw CDR messages with the bag's timing (scaled by
``rate``), optional loop, optional ``rosgraph_msgs/Clock`` on ``/clock`` with the bag time for
nodes with ``use_sim_time``. rclpy is imported when a player is created, not at import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sr3d_ros.ros.bag.reading import BagMessage, read_bag
from sr3d_ros.ros.bag.typestore import message_class

__all__ = ["CLOCK_TOPIC", "TF_STATIC_TOPIC", "TF_TOPIC", "BagPlayer"]

CLOCK_TOPIC = "/clock"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"


class BagPlayer:
    """Publish a bag's messages with rclpy, as raw CDR (no conversion).

    Publishers are reliable + volatile with depth 10 (a reliable publisher also serves
    best-effort subscribers, such as rclpy's and rclcpp's ``/clock`` subscriptions); ``/tf``
    is reliable + volatile with depth 100 (tf2's dynamic broadcaster QoS); ``/tf_static`` is
    reliable + transient local with depth 100 (latched, as tf2's static broadcasters publish
    it, so late subscribers such as RViz still get every calibration the bag held). The QoS
    follows the bag's topic name, also when ``remap`` renames it. ``/tf`` and ``/tf_static``
    need the ``tf2_msgs`` Python messages (``scripts/setup_env.sh`` builds them into the venv
    from ``interfaces/tf2_msgs``; a full ROS 2 install has them).

    Args:
        node: the rclpy node to publish from (``rclpy.node.Node``; ``Any``: rclpy is untyped).
        path: the bag.
        topics: only these topics (default: all).
        remap: ``{bag topic: published topic}``; ``"/clock"`` renames the clock topic.
        clock: also publish ``rosgraph_msgs/Clock`` with the bag time during :meth:`play` (like
            ``ros2 bag play --clock``): the message's bag timestamp just before each message,
            and the interpolated bag time ``clock_hz`` times per second in between. Each loop
            pass starts the clock again at the bag's start (time jumps back, as with rosbag2).

    Topics whose message package is not installed (e.g. ``tf2_msgs`` in a pip install without
    it) are skipped with one warning and listed in :attr:`skipped`, unless asked for by name.

    Raises:
        FileNotFoundError: no such bag. ImportError: a topic asked for in ``topics`` whose
            message type is not installed.
        ValueError: a played topic has more than one message type in the bag.
        BagIntegrityError (a ValueError): damaged chunks (CRC mismatch) or a truncated file;
            the message lists each damaged chunk with its byte offset.
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

        from sr3d_ros.ros.bag.integrity import require_intact

        self.node = node
        self.path = Path(path)
        require_intact(self.path)  # a corrupt chunk is refused up front, never played
        self.topics = None if topics is None else set(topics)
        remap = remap or {}

        def reliable(depth: int, durability: Any) -> Any:  # rclpy QoSProfile
            return QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=depth,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=durability,
            )

        qos = reliable(10, DurabilityPolicy.VOLATILE)
        topic_qos = {  # tf2's broadcaster profiles; /tf_static latched for tf2's static listeners
            TF_TOPIC: reliable(100, DurabilityPolicy.VOLATILE),
            TF_STATIC_TOPIC: reliable(100, DurabilityPolicy.TRANSIENT_LOCAL),
        }
        self.publishers: dict[str, Any] = {}  # rclpy publishers
        self.skipped: dict[str, str] = {}  # topic -> type whose messages are not installed
        with Reader(self.path) as r:
            for topic, info in r.topics.items():
                if self.topics is not None and topic not in self.topics:
                    continue
                if info.msgtype is None:  # rosbags: the topic's connections disagree on the type
                    raise ValueError(f"{self.path}: topic {topic} has more than one message type")
                try:
                    cls = message_class(info.msgtype)
                except (ImportError, AttributeError):
                    if self.topics is not None:  # asked for by name: an error
                        raise ImportError(
                            f"{self.path}: cannot play {topic}: the Python messages of "
                            f"{info.msgtype} are not installed"
                        ) from None
                    self.skipped[topic] = info.msgtype
                    continue
                self.publishers[topic] = node.create_publisher(
                    cls, remap.get(topic, topic), topic_qos.get(topic, qos)
                )
        if self.skipped:
            node.get_logger().warning(
                "not playing "
                + ", ".join(f"{t} ({m})" for t, m in sorted(self.skipped.items()))
                + ": their Python message packages are not installed (in the pip venv,"
                " scripts/setup_env.sh builds vision_msgs and tf2_msgs)"
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
            True if they all matched within ``timeout_s`` seconds.
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
        publishers are reliable), e.g. before the process exits.

        Returns:
            True if all were acked within ``timeout_s`` seconds (in total).
        """
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
        """Publish one message now.

        Raises:
            KeyError: ``m.topic`` is not a played topic.
        """
        self.publishers[m.topic].publish(m.raw)
        self.published += 1

    def publish_clock(self, t_ns: int) -> None:
        """Publish ``rosgraph_msgs/Clock`` with time ``t_ns`` (nanoseconds; needs ``clock=True``).

        Raises:
            RuntimeError: the player was made without ``clock``.
        """
        from rosgraph_msgs.msg import Clock

        if self.clock_publisher is None:
            raise RuntimeError("this BagPlayer has no clock publisher (create it with clock=True)")
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
            t0_bag: int | None = None
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
