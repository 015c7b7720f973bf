"""ROS 2 node ``pointcloud_detector``: PointCloud2 in, vision_msgs/Detection3DArray out.

(Over ~400 lines on purpose: one class, the node, and its user-facing documentation of topics,
diagnostics and behaviour; the parameters, conversions and message builders live elsewhere.)

Topics (relative names, remap them or set a namespace):

* ``~/input/points`` (sensor_msgs/PointCloud2, subscribed): xyz (FLOAT32/FLOAT64) + optional
  colour (packed ``rgb``/``rgba`` or ``r, g, b``). Keep last 1, volatile; reliability from
  ``qos_reliability`` (default reliable; best_effort as an option).
* ``~/output/detections`` (vision_msgs/Detection3DArray): one message per processed frame, header
  copied from the input (stamp + frame_id), boxes in the input cloud's frame.
* ``~/output/markers`` (visualization_msgs/MarkerArray): box edges + labels for RViz.
* ``~/output/label_info`` (vision_msgs/LabelInfo, reliable + transient local): class id -> name
  and the score threshold, published at start-up and again whenever ``score_threshold`` is
  changed at run time; late subscribers still get the latest.
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): per processed frame one status named
  ``"<namespace>/pointcloud_detector: detector"`` with level OK (normal operation, including
  dropped stale frames, subsampling and cropped points), WARN (real trouble: bad input,
  non-finite points in a cloud marked ``is_dense``) or ERROR (inference failed), and key-values
  ``points_in`` (the cloud's height * width, also for bad input), ``detections_out``,
  ``frames_dropped`` (since start), ``frames_dropped_rate`` (dropped / received),
  ``<stage>_ms`` for wait (in the mailbox), convert, voxelize, backbone, neck, head, nms,
  inference, publish and total, ``input_stamp``, ``input_frame_id``, ``points_used``,
  ``points_non_finite`` and ``points_out_of_range`` (dropped before voxelisation),
  ``frames_received``, ``frames_processed``, ``bad_input_frames``.

Frames are never queued: the subscription callback only stores the newest message in a one-slot
mailbox; a worker thread runs conversion + inference + publishing. A message that arrives while
another is waiting in the mailbox replaces it (counted in ``frames_dropped``), so the node always
works on the newest frame and its latency never grows.

Bad input (empty cloud, no x/y/z, wrong field types, malformed sizes, all points NaN, more than
``max_input_points``, over the voxel budget ``max_voxels`` or too spread out) logs a warning
(throttled per distinct reason) and publishes an EMPTY Detection3DArray with the input header
(and clears the markers); the node keeps running. Points beyond ``max_range`` / outside
``crop_box`` and non-finite points are dropped and counted; the rest is detected. Parameters: see
:mod:`sr3d_ros.ros.params` and ``config/pointcloud_detector.yaml``.

Gravity alignment: the model expects z up. ``gravity_transform.*`` gives the static transform
from the input frame to a gravity-aligned one; points are moved with it before detection and the
boxes moved back, so detections are published in the input frame. For a rotation about z only
the boxes stay upright (yaw adjusted); for a tilted sensor each box orientation is the quaternion
of the full rotation (``R^T Rz(yaw)``), see :mod:`sr3d_ros.frames`.

Run: ``pointcloud_detector --ros-args -p checkpoint:=model.pt -r ~/input/points:=/camera/points``
or ``python -m sr3d_ros.ros.pointcloud_node``. Exits 0 on Ctrl-C / SIGTERM / external shutdown
(within ~1 s, also mid-inference; repeated signals are ignored), 1 on invalid parameters or an
unusable checkpoint. Unknown keys in the params file are reported in one warning.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from sr3d_ros.input_limits import InputBudgetError
from sr3d_ros.ros import params as P
from sr3d_ros.ros.node_base import (
    LATCHED_QOS,
    ReasonThrottle,
    declare_parameters,
    input_qos,
    raw_parameters,
    run_node,
    unknown_overrides,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sr3d_ros.inference import PointCloudDetector

__all__ = ["NODE_NAME", "PointCloudDetectorNode", "main"]

NODE_NAME = "pointcloud_detector"
_WARN_THROTTLE_S = 5.0
#: Seconds destroy_node waits for a frame in progress before abandoning it.
_SHUTDOWN_DEADLINE_S = 0.5


class BadInput(ValueError):
    """The input cloud cannot be used (the message says why; ``points_in`` = its size)."""

    def __init__(self, message: str, points_in: int = 0) -> None:
        super().__init__(message)
        self.points_in = points_in


class PointCloudDetectorNode(Node):
    """The detector node (see the module docstring for topics and behaviour).

    Args:
        node_name: ROS node name.
        detector: an already built detector (tests); default: load ``checkpoint``.
        **node_kwargs: passed to ``rclpy.node.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ``cli_args``, ...).

    Raises:
        sr3d_ros.ros.params.ParamError: invalid parameters (all problems listed).
        FileNotFoundError / sr3d_ros.checkpoints.CheckpointError: unusable checkpoint.
        ValueError: unusable device.
    """

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        detector: PointCloudDetector | None = None,
        **node_kwargs: Any,
    ) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._setup(node_name, detector)
        except BaseException:
            super().destroy_node()  # release the half-built node before the error propagates
            raise

    def _setup(self, node_name: str, detector: PointCloudDetector | None) -> None:
        declare_parameters(self, P.PARAMS)
        unknown = unknown_overrides(self, P.PARAMS)
        if unknown:
            self.get_logger().warning(
                f"unknown parameter(s) {unknown} in the params file / overrides are ignored "
                "(misspelled?); see config/pointcloud_detector.yaml for the known ones"
            )
        raw = self._raw_params()
        # structure first, classes once the model is loaded
        self.params: P.NodeParams = P.validate_params(raw)
        self.detector = detector if detector is not None else self._load_detector(self.params)
        self.class_names: tuple[str, ...] = tuple(self.detector.class_names)
        self._base_inference = self.detector.config.inference
        self.params = P.validate_params(raw, self.class_names)
        self._apply_inference_params(self.params)
        self._gravity = self.params.gravity_transform
        # "<node>: <component>" (diagnostic_aggregator convention); the namespace keeps two
        # detector nodes apart on the shared /diagnostics topic
        self._diag_name = f"{self.get_fully_qualified_name().lstrip('/')}: detector"
        self._rng = np.random.default_rng(0)

        # mailbox + worker
        self._cv = threading.Condition()
        self._pending: Any = None  # the newest PointCloud2 not yet taken by the worker
        self._pending_t = 0.0
        self._stop = False
        self._destroyed = False
        self.worker_abandoned = False
        self._stats = {"received": 0, "processed": 0, "dropped": 0, "bad_input": 0, "errors": 0}
        self._throttle = ReasonThrottle(_WARN_THROTTLE_S)

        in_qos = input_qos(self.params.qos_reliability)
        latched = LATCHED_QOS
        self.pub_detections = self.create_publisher(Detection3DArray, "~/output/detections", 5)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 1)
        self.pub_label_info = self.create_publisher(LabelInfo, "~/output/label_info", latched)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._publish_label_info()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker = threading.Thread(target=self._work, name=f"{node_name}_worker", daemon=True)
        self._worker.start()
        self.sub_points = self.create_subscription(
            PointCloud2, "~/input/points", self._on_points, in_qos
        )
        dev = getattr(self.detector, "device", "?")
        self.get_logger().info(
            f"ready: {len(self.class_names)} classes on {dev}, input "
            f"{self.sub_points.topic_name} ({self.params.qos_reliability}), output "
            f"{self.pub_detections.topic_name}"
            + (", gravity transform set" if self._gravity is not None else "")
        )

    # -------------------------------------------------------------------------------- params

    def _raw_params(self, changes: Sequence[Parameter[Any]] = ()) -> dict[str, Any]:
        return raw_parameters(self, P.PARAMS, changes)

    def _on_set_parameters(self, changes: list[Parameter[Any]]) -> SetParametersResult:
        try:
            new = P.validate_params(self._raw_params(changes), self.class_names)
        except P.ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old, self.params = self.params, new
        self._apply_inference_params(new)
        if new.score_threshold != old.score_threshold:
            self._publish_label_info()  # LabelInfo.threshold must not go stale
        self.get_logger().info("parameters updated: " + ", ".join(p.name for p in changes))
        return SetParametersResult(successful=True)

    def _apply_inference_params(self, p: P.NodeParams) -> None:
        inf = dataclasses.replace(
            self._base_inference,
            score_threshold=p.score_threshold,
            iou_threshold=p.nms_iou_threshold,
            max_detections=p.max_detections or self._base_inference.max_detections,
        )
        self.detector.config = dataclasses.replace(self.detector.config, inference=inf)
        if hasattr(self.detector, "limits"):
            self.detector.limits = dataclasses.replace(
                self.detector.limits,
                max_range=p.max_range,
                crop_box=p.crop_box,
                max_voxels=p.max_voxels,
            )

    def _load_detector(self, p: P.NodeParams) -> PointCloudDetector:
        from sr3d_ros.inference import PointCloudDetector, default_checkpoint_path

        path = p.checkpoint or None
        if path is None and not default_checkpoint_path().is_file():
            raise FileNotFoundError(
                f"the embedded default model {default_checkpoint_path()} is not installed; "
                "set the 'checkpoint' parameter to a model file"
            )
        if p.num_threads > 0:
            import torch

            torch.set_num_threads(p.num_threads)
        t0 = time.perf_counter()
        det = PointCloudDetector.from_checkpoint(path, device=p.device)
        self.get_logger().info(
            f"loaded {path or default_checkpoint_path()} in {time.perf_counter() - t0:.2f} s"
        )
        return det

    # ------------------------------------------------------------------------------- input

    def _on_points(self, msg: Any) -> None:
        """Subscription callback: put the frame in the one-slot mailbox (never blocks)."""
        with self._cv:
            self._stats["received"] += 1
            if self._pending is not None:
                self._stats["dropped"] += 1
            self._pending = msg
            self._pending_t = time.perf_counter()
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                msg, t_in = self._pending, self._pending_t
                self._pending = None
            try:
                self._process(msg, t_in)
            except Exception as exc:
                if self._stop or not self.context.ok():
                    return
                with self._cv:
                    self._stats["errors"] += 1
                self.get_logger().error(
                    f"frame failed: {type(exc).__name__}: {exc}",
                    throttle_duration_sec=_WARN_THROTTLE_S,
                )

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start: ``received``, ``processed`` (results published), ``dropped``
        (replaced in the mailbox), ``bad_input``, ``errors``."""
        with self._cv:
            return dict(self._stats)

    # ---------------------------------------------------------------------------- process

    def _decode(self, msg: Any, warnings: list[str]) -> tuple[NDArray[np.float32], int]:
        """PointCloud2 -> (float32 (N, 6) valid points, points in the message) or BadInput."""
        from sr3d_ros.frames import random_subsample
        from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

        p = self.params
        try:
            n_in = int(msg.height) * int(msg.width)
        except (TypeError, ValueError):
            raise BadInput("malformed height/width") from None
        if p.max_input_points and n_in > p.max_input_points:
            raise BadInput(f"{n_in} points > max_input_points {p.max_input_points}", n_in)
        try:
            points, info = pointcloud2_to_array(msg)
        except ValueError as exc:
            raise BadInput(str(exc), n_in) from None
        if info.valid_mask is None and len(points):  # is_dense claimed: trust but verify
            finite = (
                np.isfinite(points[:, 0]) & np.isfinite(points[:, 1]) & np.isfinite(points[:, 2])
            )
            n_bad = len(points) - int(np.count_nonzero(finite))
            if n_bad:
                warnings.append(f"{n_bad} non-finite points in a cloud marked is_dense")
                points = points[finite]
        if len(points) == 0:
            raise BadInput(
                "no valid points (empty cloud or all x/y/z non-finite)" if n_in else "empty cloud",
                n_in,
            )
        if p.max_points and len(points) > p.max_points:
            # configured behaviour, not trouble: reported in the diagnostics values
            points = random_subsample(points, p.max_points, self._rng)
        return points, n_in

    def _process(self, msg: Any, t_in: float) -> None:
        from sr3d_ros.frames import boxes_from_gravity, transform_points
        from sr3d_ros.ros.messages import detections_to_markers, detections_to_msg

        t0 = time.perf_counter()
        p = self.params
        header = msg.header
        warnings: list[str] = []
        timings: dict[str, float] = {"wait": (t0 - t_in) * 1e3}
        n_in = n_used = 0
        try:
            points, n_in = self._decode(msg, warnings)
        except BadInput as exc:
            self._bad_input(str(exc), header, timings, exc.points_in)
            return
        n_used = len(points)
        t1 = time.perf_counter()
        timings["convert"] = (t1 - t0) * 1e3
        if self._gravity is not None:
            points = transform_points(points, self._gravity)
        try:
            det = self.detector(points)
        except InputBudgetError as exc:
            self._bad_input(str(exc), header, timings, n_in)
            return
        except Exception as exc:
            self.get_logger().error(
                f"inference failed: {type(exc).__name__}: {exc}",
                throttle_duration_sec=_WARN_THROTTLE_S,
            )
            self._publish_failure(
                "errors", "ERROR", f"inference failed: {exc}", header, timings, n_in
            )
            return
        t2 = time.perf_counter()
        timings.update(det.timings_ms)
        timings["inference"] = (t2 - t1) * 1e3
        if p.classes_to_keep and len(det):
            import torch

            keep_ids = sorted({self.class_names.index(c) for c in p.classes_to_keep})
            keep = torch.isin(det.labels, torch.tensor(keep_ids, device=det.labels.device))
            det = det.filter(keep)  # on the detector's device
        boxes = det.boxes.detach().cpu().numpy()
        poses = boxes_from_gravity(boxes, self._gravity) if self._gravity is not None else None
        self.pub_detections.publish(detections_to_msg(det, header, poses))
        if p.publish_markers:
            self.pub_markers.publish(
                detections_to_markers(det, header, lifetime=p.marker_lifetime, poses=poses)
            )
        t3 = time.perf_counter()
        timings["publish"] = (t3 - t2) * 1e3
        timings["total"] = (t3 - t_in) * 1e3
        with self._cv:
            self._stats["processed"] += 1
        for w in warnings:
            if self._throttle.allow(w):
                self.get_logger().warning(w)
        level = "WARN" if warnings else "OK"
        message = "; ".join(warnings) if warnings else f"{len(det)} detections"
        crop = getattr(self.detector, "last_crop", None)
        self._publish_diagnostics(
            level,
            message,
            header,
            timings,
            n_in,
            len(det),
            points_used=n_used,
            points_non_finite=getattr(crop, "non_finite", 0),
            points_out_of_range=getattr(crop, "out_of_range", 0),
        )

    def _bad_input(
        self, reason: str, header: Any, timings: dict[str, float], points_in: int
    ) -> None:
        """Log (once per distinct reason per period) and publish an empty result."""
        if self._throttle.allow(reason):
            self.get_logger().warning(f"bad input cloud ({reason}); publishing no detections")
        self._publish_failure(
            "bad_input", "WARN", f"bad input: {reason}", header, timings, points_in
        )

    def _publish_failure(
        self,
        counter: str,
        level: str,
        message: str,
        header: Any,
        timings: dict[str, float],
        points_in: int,
    ) -> None:
        """A frame without a result: count it, publish no detections (and clear the markers)
        with the input header, then its diagnostics."""
        from sr3d_ros.detections import Detections
        from sr3d_ros.ros.messages import detections_to_markers, detections_to_msg

        with self._cv:
            self._stats[counter] += 1
        empty = Detections.empty(self.class_names)
        self.pub_detections.publish(detections_to_msg(empty, header))
        if self.params.publish_markers:
            self.pub_markers.publish(detections_to_markers(empty, header))
        with self._cv:
            self._stats["processed"] += 1
        self._publish_diagnostics(level, message, header, timings, points_in, 0)

    def _publish_diagnostics(
        self,
        level: str,
        message: str,
        header: Any,
        timings: dict[str, float],
        points_in: int,
        detections_out: int,
        points_used: int = 0,
        points_non_finite: int = 0,
        points_out_of_range: int = 0,
    ) -> None:
        from sr3d_ros.ros.status_messages import diagnostics_msg

        s = self.stats
        drop_rate = s["dropped"] / s["received"] if s["received"] else 0.0
        self.pub_diagnostics.publish(
            diagnostics_msg(
                self.get_clock().now().to_msg(),
                self._diag_name,
                str(getattr(self.detector, "device", "")),
                level,
                message,
                timings,
                points_in,
                detections_out,
                s["dropped"],
                extra={
                    "input_stamp": f"{header.stamp.sec}.{header.stamp.nanosec:09d}",
                    "input_frame_id": header.frame_id,
                    "points_used": points_used,
                    "points_non_finite": points_non_finite,
                    "points_out_of_range": points_out_of_range,
                    "frames_dropped_rate": f"{drop_rate:.3f}",
                    "frames_received": s["received"],
                    "frames_processed": s["processed"],
                    "bad_input_frames": s["bad_input"],
                },
            )
        )

    def _publish_label_info(self) -> None:
        from sr3d_ros.ros.status_messages import label_info_msg

        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        self.pub_label_info.publish(
            label_info_msg(self.class_names, header, self.params.score_threshold)
        )

    # ---------------------------------------------------------------------------- shutdown

    def destroy_node(self) -> None:
        """Stop the worker, then destroy the node; idempotent (a second call does nothing).

        The frame in progress gets ``_SHUTDOWN_DEADLINE_S`` (0.5 s) to finish; after that it is
        abandoned (``worker_abandoned`` is set; the worker is a daemon thread and publishes
        nothing more)."""
        if getattr(self, "_destroyed", False):
            return
        self._destroyed = True
        cv, worker = getattr(self, "_cv", None), getattr(self, "_worker", None)
        if cv is not None:
            with cv:
                self._stop = True
                cv.notify_all()
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
            worker.join(timeout=_SHUTDOWN_DEADLINE_S)
            self.worker_abandoned = worker.is_alive()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``pointcloud_detector``: run the node until Ctrl-C / SIGTERM / shutdown.

    Signal-safe (see :func:`sr3d_ros.ros.node_base.run_node`): the first SIGINT / SIGTERM stops
    it within ~1 s even mid-inference, later ones are ignored, no traceback.

    Args:
        args: command line (default ``sys.argv``), including ``--ros-args ...``.

    Returns:
        0 after Ctrl-C, SIGTERM or an external shutdown; 1 when the node cannot start (invalid
        parameters, missing / invalid checkpoint, unusable device).
    """
    from sr3d_ros.checkpoints import CheckpointError
    from sr3d_ros.ros.params import ParamError

    return run_node(
        PointCloudDetectorNode,
        NODE_NAME,
        args,
        (ParamError, FileNotFoundError, CheckpointError, ValueError),
    )


if __name__ == "__main__":
    sys.exit(main())
