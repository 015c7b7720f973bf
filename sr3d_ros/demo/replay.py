"""Demo stage 3, its data: one row per played frame (:class:`FrameRow`), what to play and record
(:class:`ReplayPlan`), the outcome (:class:`Replay`) and :func:`stamp_ns`. The rclpy part
(lock-step play and recording) is :mod:`sr3d_ros.ros.replay` (rclpy is imported under
``sr3d_ros/ros`` only).

Playback is lock-step: a scan is published only after the node's result for the previous scan
has come back, and never earlier than the bag timing (scaled by the playback speed). The node
never queues frames, so a free-running player would see frames dropped by design on a slow
CPU; lock-step makes every scan count in the evaluation whatever the machine's speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FrameRow", "Replay", "ReplayPlan", "stamp_ns"]


@dataclass
class FrameRow:
    """One played frame (a scan or an image) and what came back for it.

    Attributes:
        frame: index in the bag. scene: ScanNet scene id or KITTI frame id. stamp: header stamp
        in ns (equal to the bag time; 0 until published). points / gt: input points (0 for an
        image) and ground-truth boxes. image: ``"WxH"`` of an image input. detections: boxes
        the node published (None: no answer in time). latency_ms: frame published -> its
        Detection3DArray received (end to end, over DDS). node_ms / inference_ms: the node's
        own total and model time from its diagnostics (None when not reported).
    """

    frame: int
    scene: str
    points: int
    gt: int
    stamp: int = 0
    image: str | None = None
    detections: int | None = None
    latency_ms: float | None = None
    node_ms: float | None = None
    inference_ms: float | None = None


@dataclass
class ReplayPlan:
    """What :func:`sr3d_ros.ros.replay.replay` plays and records.

    Attributes:
        rows: one row per frame, in bag order (filled in while playing).
        trigger: the bag topic whose messages are the frames (played lock-step).
        remap: ``{bag topic: played topic}`` for every bag topic to play.
        record: played topics to record besides the node's outputs and ``/diagnostics``.
        inputs: the bag topics the node subscribes to (default: the trigger); play starts once
            the node has subscribed to each.
    """

    rows: list[FrameRow]
    trigger: str
    remap: dict[str, str]
    record: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inputs = list(self.inputs) or [self.trigger]


@dataclass
class Replay:
    """Outcome of :func:`sr3d_ros.ros.replay.replay`: the rows, messages recorded per topic,
    and the error that stopped it (None when every scan was played)."""

    rows: list[FrameRow]
    recorded: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def stamp_ns(msg: Any) -> int:
    """A ROS message's ``header.stamp`` in nanoseconds (``msg`` is any stamped message)."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
