"""Demo stage 3 with rclpy: play the bag into the node lock-step and record everything.

Playback is lock-step: a frame (a scan, or an image with its CameraInfo published before it) is
published only after the node's result for the previous frame has come back, and never earlier
than the bag timing (scaled by the playback speed). The node never queues frames, so a
free-running player would see frames dropped by design on a slow CPU; lock-step makes every
frame count in the evaluation whatever the machine's speed. The demo's data types are in
:mod:`sr3d_ros.demo.replay`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sr3d_ros.demo.node import NodeProcess
from sr3d_ros.demo.prepare import DemoError
from sr3d_ros.demo.replay import FrameRow, Replay, ReplayPlan, stamp_ns

if TYPE_CHECKING:
    from sr3d_ros.ros.bag import BagPlayer, BagRecorder

__all__ = ["ResultCollector", "replay"]

logger = logging.getLogger("sr3d_ros.demo.replay")  # the demo prints its loggers


class ResultCollector:
    """Collects the node's Detection3DArray per input stamp (receive time, count) and its
    diagnostics (key-values per input stamp string ``sec.nanosec``), from rclpy callbacks."""

    def __init__(self, diag_name: str) -> None:
        self.lock = threading.Condition()
        self.detections: dict[int, tuple[float, int]] = {}  # stamp ns -> (monotonic s, count)
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.diag_name = diag_name

    def on_detections(self, msg: Any) -> None:
        """Detection3DArray callback (ROS messages are untyped)."""
        t = time.monotonic()
        with self.lock:
            self.detections.setdefault(stamp_ns(msg), (t, len(msg.detections)))
            self.lock.notify_all()

    def on_diagnostics(self, msg: Any) -> None:
        """DiagnosticArray callback: keeps the node's detector status."""
        for st in msg.status:
            if st.name == self.diag_name:
                kv = {str(v.key): str(v.value) for v in st.values}
                with self.lock:
                    self.diagnostics[kv.get("input_stamp", "")] = kv
                    self.lock.notify_all()

    def detections_for(self, stamp: int, timeout_s: float) -> tuple[float, int] | None:
        """``(receive time (monotonic s), detection count)`` of the result for input ``stamp``
        (ns), waiting up to ``timeout_s``; None when none came."""
        with self.lock:
            self.lock.wait_for(lambda: stamp in self.detections, timeout_s)
            return self.detections.get(stamp)

    def diagnostics_for(self, stamp: int, timeout_s: float) -> dict[str, str]:
        """The node's diagnostics key-values for input ``stamp`` (ns), waiting up to
        ``timeout_s``; empty when none came."""
        key = f"{stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d}"
        with self.lock:
            self.lock.wait_for(lambda: key in self.diagnostics, timeout_s)
            return self.diagnostics.get(key, {})


def _wait_for_node(
    node: NodeProcess, player: BagPlayer, recorder: BagRecorder, plan: ReplayPlan, timeout_s: float
) -> None:
    """Until the node subscribes to each of its inputs (a recorded input needs the recorder's
    subscription and the node's) and the recorder to the node's detections.

    Raises:
        DemoError: the node exited (with the tail of its log) or did not come up in time.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = node.exit_code()
        if code is not None:
            raise DemoError(
                f"the node exited with code {code} during start-up; "
                f"its log:\n{node.log.read_text()[-3000:]}"
            )
        if node.output("detections") in recorder.subscribed and all(
            player.publishers[t].get_subscription_count() >= 1 + (plan.remap[t] in plan.record)
            for t in plan.inputs
        ):
            return
        time.sleep(0.1)
    raise DemoError(f"the node did not come up within {timeout_s:.0f} s (log: {node.log})")


def _play_lock_step(
    player: BagPlayer,
    results: ResultCollector,
    plan: ReplayPlan,
    playback_speed: float,
    timeout_s: float,
) -> list[FrameRow]:
    """Publish each frame once the previous result is back and its bag spacing (divided by
    ``playback_speed``) has passed (other messages as they come, and acknowledged by every
    subscriber before the frame: a small CameraInfo published just before a 1.4 MB image was
    seen to reach another process only seconds later, after a retransmission); fills one row per
    frame."""
    rows: list[FrameRow] = []
    last: tuple[float, int] | None = None  # (monotonic s, bag ns) of the last frame published
    for m in player.messages():
        if m.topic != plan.trigger:
            player.publish(m)
            continue
        if len(rows) == len(plan.rows):
            raise DemoError(f"the bag has more {plan.trigger} messages than planned frames")
        if last is not None:
            due = last[0] + (m.timestamp_ns - last[1]) / 1e9 / playback_speed
            while time.monotonic() < due:
                time.sleep(0.01)
        if not player.wait_for_all_acked(10.0):
            logger.warning("frame %d: its companion messages were not acknowledged", len(rows))
        t_pub = time.monotonic()
        player.publish(m)
        last = (t_pub, m.timestamp_ns)
        row = plan.rows[len(rows)]
        row.stamp = m.timestamp_ns
        rows.append(row)
        got = results.detections_for(row.stamp, timeout_s)
        if got is None:
            logger.warning("no result for frame %d within %.0f s", row.frame, timeout_s)
            continue
        t_res, n = got
        row.detections, row.latency_ms = n, (t_res - t_pub) * 1e3
        kv = results.diagnostics_for(row.stamp, 5.0)
        row.node_ms = float(kv["total_ms"]) if "total_ms" in kv else None
        row.inference_ms = float(kv["inference_ms"]) if "inference_ms" in kv else None
        logger.info(
            "frame %d (%s): %d detections, latency %.0f ms", row.frame, row.scene, n, row.latency_ms
        )
    return rows


def replay(
    node: NodeProcess,
    in_bag: Path,
    out_bag: Path,
    plan: ReplayPlan,
    playback_speed: float,
    timeout_s: float,
    startup_timeout_s: float,
) -> Replay:
    """Play ``in_bag`` into ``node`` lock-step and record the planned input topics and every
    output of the node (detections, markers, label info, diagnostics) into ``out_bag``; then
    stop the node (SIGINT).

    Args:
        node: the started node (:func:`~sr3d_ros.demo.node.start_node`).
        in_bag / out_bag: the input bag and the bag folder to record (must not exist).
        plan: the frames, the trigger topic, the remaps and the input topics to record.
        playback_speed: bag-time speed factor (frames still wait for results).
        timeout_s: seconds to wait for each result. startup_timeout_s: for the node to come up.

    Returns:
        :class:`Replay` (an error such as a node that never came up is returned, not raised).
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection3DArray

    from sr3d_ros.ros.bag import BagPlayer, BagRecorder

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=[])
    ros_node = rclpy.create_node("sr3d_demo", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(ros_node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    results = ResultCollector(f"{node.fqn.lstrip('/')}: detector")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    ros_node.create_subscription(
        Detection3DArray, node.output("detections"), results.on_detections, qos
    )
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", results.on_diagnostics, qos)
    topics = [*plan.record, *(node.output(t) for t in ("detections", "markers", "label_info"))]
    out = Replay(rows=[])
    recorder = None
    try:
        player = BagPlayer(ros_node, in_bag, topics=list(plan.remap), remap=plan.remap)
        recorder = BagRecorder(ros_node, out_bag, [*topics, "/diagnostics"])
        _wait_for_node(node, player, recorder, plan, startup_timeout_s)
        player.wait_for_subscribers(10.0)
        time.sleep(0.5)  # let every match settle before the first frame
        logger.info("node up; playing %d frames lock-step", len(plan.rows))
        out.rows = _play_lock_step(player, results, plan, playback_speed, timeout_s)
        time.sleep(1.0)  # last diagnostics / markers into the recorder
    except DemoError as exc:
        out.error = str(exc)
    finally:
        out.recorded = recorder.close() if recorder is not None else {}
        ex.shutdown(timeout_sec=2.0)
        spin.join(timeout=5.0)
        ros_node.destroy_node()
        ctx.try_shutdown()
        node.stop()
    return out
