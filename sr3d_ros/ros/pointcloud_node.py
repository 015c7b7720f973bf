"""ROS 2 node ``pointcloud_detector``: PointCloud2 in, vision_msgs/Detection3DArray out.

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
works on the newest frame and its latency never grows. This machinery, the outputs, the
bad-input policy and the shutdown are shared with the image node
(:class:`sr3d_ros.ros.detector_node.DetectorNode`); this module decodes clouds.

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
unusable checkpoint (also one of another detector kind, e.g. a monocular one: FATAL at start).
Unknown keys in the params file are reported in one warning.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sensor_msgs.msg import PointCloud2

from sr3d_ros.input_limits import InputBudgetError
from sr3d_ros.ros import params as P
from sr3d_ros.ros.detector_node import WARN_THROTTLE_S, BadInput, DetectorNode, run_detector_node
from sr3d_ros.ros.node_base import input_qos

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sr3d_ros.inference import PointCloudDetector

__all__ = ["NODE_NAME", "PointCloudDetectorNode", "main"]

NODE_NAME = "pointcloud_detector"


class PointCloudDetectorNode(DetectorNode):
    """The point-cloud detector node (see the module docstring for topics and behaviour;
    arguments and errors as :class:`~sr3d_ros.ros.detector_node.DetectorNode`, ``detector`` a
    :class:`~sr3d_ros.inference.PointCloudDetector`)."""

    NODE_NAME = NODE_NAME
    SPECS = P.PARAMS
    PARAMS_FILE = "config/pointcloud_detector.yaml"
    KIND = "pointcloud"
    OTHER_KINDS_HINT = "monocular 'mono' checkpoints run in the image_detector node"
    INPUT_NAME = "input cloud"

    params: P.NodeParams
    detector: PointCloudDetector

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        detector: PointCloudDetector | None = None,
        **node_kwargs: Any,
    ) -> None:
        super().__init__(node_name, detector=detector, **node_kwargs)

    # ----------------------------------------------------------------------------- hooks

    def _validate(self, raw: Mapping[str, Any], class_names: Sequence[str] | None) -> Any:
        return P.validate_params(raw, class_names)

    def _default_checkpoint(self) -> Path:
        from sr3d_ros.inference import default_checkpoint_path

        return default_checkpoint_path()

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

    def _create_inputs(self) -> str:
        self._gravity = self.params.gravity_transform
        self._rng = np.random.default_rng(0)
        self.sub_points = self.create_subscription(
            PointCloud2, "~/input/points", self._on_points, input_qos(self.params.qos_reliability)
        )
        return self.sub_points.topic_name + (
            " (gravity transform set)" if self._gravity is not None else ""
        )

    def _on_points(self, msg: Any) -> None:
        """Subscription callback: the cloud into the mailbox (never blocks)."""
        self._on_input(msg)

    # ---------------------------------------------------------------------------- process

    def _decode(self, msg: Any, warnings: list[str]) -> tuple[NDArray[np.float32], int]:
        """PointCloud2 -> (float32 (N, 6) valid points, points in the message) or BadInput."""
        from sr3d_ros.frames import random_subsample
        from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

        p = self.params
        try:
            n_in = int(msg.height) * int(msg.width)
        except (TypeError, ValueError):
            raise BadInput("malformed height/width", points_in=0) from None
        if p.max_input_points and n_in > p.max_input_points:
            raise BadInput(f"{n_in} points > max_input_points {p.max_input_points}", points_in=n_in)
        try:
            points, info = pointcloud2_to_array(msg)
        except ValueError as exc:
            raise BadInput(str(exc), points_in=n_in) from None
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
                points_in=n_in,
            )
        if p.max_points and len(points) > p.max_points:
            # configured behaviour, not trouble: reported in the diagnostics values
            points = random_subsample(points, p.max_points, self._rng)
        return points, n_in

    def _process(self, msg: Any, t_in: float) -> None:
        from sr3d_ros.frames import boxes_from_gravity, transform_points

        t0 = time.perf_counter()
        header = msg.header
        warnings: list[str] = []
        timings: dict[str, float] = {"wait": (t0 - t_in) * 1e3}
        try:
            points, n_in = self._decode(msg, warnings)
        except BadInput as exc:
            self._bad_input(str(exc), header, timings, exc.values)
            return
        n_used = len(points)
        t1 = time.perf_counter()
        timings["convert"] = (t1 - t0) * 1e3
        if self._gravity is not None:
            points = transform_points(points, self._gravity)
        try:
            det = self.detector(points)
        except InputBudgetError as exc:
            self._bad_input(str(exc), header, timings, {"points_in": n_in})
            return
        except Exception as exc:
            self.get_logger().error(
                f"inference failed: {type(exc).__name__}: {exc}",
                throttle_duration_sec=WARN_THROTTLE_S,
            )
            self._publish_failure(
                "errors", "ERROR", f"inference failed: {exc}", header, timings, {"points_in": n_in}
            )
            return
        timings.update(det.timings_ms)
        timings["inference"] = (time.perf_counter() - t1) * 1e3
        det = self._keep_classes(det)
        boxes = det.boxes.detach().cpu().numpy()
        poses = boxes_from_gravity(boxes, self._gravity) if self._gravity is not None else None
        crop = getattr(self.detector, "last_crop", None)
        values = {
            "points_in": n_in,
            "points_used": n_used,
            "points_non_finite": getattr(crop, "non_finite", 0),
            "points_out_of_range": getattr(crop, "out_of_range", 0),
        }
        self._publish_result(det, header, timings, t_in, warnings, values, poses)


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``pointcloud_detector``: exit status 0 after Ctrl-C / SIGTERM / shutdown,
    1 when the node cannot start (:func:`~sr3d_ros.ros.detector_node.run_detector_node`)."""
    return run_detector_node(PointCloudDetectorNode, args)


if __name__ == "__main__":
    sys.exit(main())
