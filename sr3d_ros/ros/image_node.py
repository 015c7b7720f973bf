"""ROS 2 node ``image_detector``: Image + CameraInfo in, vision_msgs/Detection3DArray out.

The monocular twin of ``pointcloud_detector``: parameters, QoS options, the one-slot mailbox
(frames never queue), outputs, diagnostics, the bad-input policy and the shutdown are the
shared :class:`~sr3d_ros.ros.detector_node.DetectorNode`; this module decodes images, pairs
them with a CameraInfo and calls a monocular detector (checkpoint ``kind`` ``"mono"``).

Topics (relative names, remap them or set a namespace):

* ``~/input/image`` (sensor_msgs/Image: rgb8, bgr8, mono8, rgba8 / bgra8 (alpha dropped), their
  16-bit forms; padded rows; ``is_bigendian`` honoured; see :mod:`sr3d_ros.ros.image_msgs`), or
  with ``image_transport: compressed`` ``~/input/image/compressed`` (sensor_msgs/CompressedImage,
  JPEG / PNG). Keep last 1, volatile, reliability from ``qos_reliability``.
* ``~/input/camera_info`` (sensor_msgs/CameraInfo, same QoS). Each image is paired with the
  latest CameraInfo of the same ``frame_id`` (or, with ``camera_info_tolerance > 0``, the one
  whose stamp is closest, within the tolerance; the worker waits up to 1 s for one that has not
  arrived yet). An image without one (none received yet, none for its frame_id, none close
  enough) is dropped: no detections, a throttled warning, WARN
  diagnostics, counted in ``frames_without_camera_info``. How K / P / D / R, roi, binning and a
  size that differs from the image are used: :mod:`sr3d_ros.geometry.camera_info` (a size that
  cannot be scaled is bad input).
* ``~/output/detections`` (vision_msgs/Detection3DArray): header copied from the image; boxes in
  the image's optical frame (x right, y down, z forward; ``bbox.center`` the geometric centre,
  ``bbox.size`` = (length, width, height) along the box axes, whose z axis points up, i.e.
  along -y of the optical frame); RViz places them with TF from ``frame_id``. With
  ``P = K [I | t]`` (a stereo pair's second camera, KITTI ``P2``) they are in the frame ``P``
  projects from, which ROS (and RViz's Camera display) takes ``frame_id`` to name.
* ``~/output/markers``, ``~/output/label_info``, ``/diagnostics``: as the point-cloud node;
  the diagnostics carry ``image_width``, ``image_height``, ``image_encoding`` and the stage
  times ``wait``, ``decode``, ``undistort``, the detector's own stages, ``inference``,
  ``publish``, ``total`` (ms).
* ``~/output/image_overlay`` (sensor_msgs/Image rgb8, header of the input; only with
  ``publish_overlay: true``): the detector's input image with the boxes projected and drawn.

Bad input (unsupported encoding, empty or huge image, ``step`` too small, ``data`` short,
undecodable compressed bytes, an unusable CameraInfo) logs a throttled warning and publishes an
EMPTY Detection3DArray with the image header (markers cleared); the node keeps running.

Run: ``image_detector --ros-args -r ~/input/image:=/camera/image_rect -r
~/input/camera_info:=/camera/camera_info`` or ``python -m sr3d_ros.ros.image_node``. Exit
status as the point-cloud node: 0 on Ctrl-C / SIGTERM / external shutdown (also a second
Ctrl-C), 1 on invalid parameters or an unusable checkpoint (also a point-cloud checkpoint:
FATAL at start). Parameters: ``config/image_detector.yaml``, :mod:`sr3d_ros.ros.image_params`.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sr3d_ros.geometry.camera_info import CameraInfoError, CameraSetup, camera_setup, info_key
from sr3d_ros.ros.detector_node import WARN_THROTTLE_S, DetectorNode, run_detector_node
from sr3d_ros.ros.image_msgs import ImageError, compressed_to_rgb, image_to_rgb, rgb_to_image
from sr3d_ros.ros.image_params import (
    IMAGE_PARAMS,
    ImageNodeParams,
    validate_image_params,
)
from sr3d_ros.ros.node_base import input_qos

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sr3d_ros.detections import Detections

__all__ = ["NODE_NAME", "ImageDetectorNode", "draw_projected_boxes", "main"]

NODE_NAME = "image_detector"
#: CameraInfos kept per frame_id for pairing by stamp.
_INFO_HISTORY = 32
#: Seconds the worker waits for a CameraInfo that has not arrived yet: the two topics race (a
#: CameraInfo published just before its image was measured to arrive over 0.2 s after it on a
#: loaded machine).
_INFO_WAIT_S = 1.0


class ImageDetectorNode(DetectorNode):
    """The monocular detector node (see the module docstring for topics and behaviour;
    arguments and errors as :class:`~sr3d_ros.ros.detector_node.DetectorNode`, ``detector`` a
    monocular detector, called as ``detector(rgb, camera)``)."""

    NODE_NAME = NODE_NAME
    SPECS = IMAGE_PARAMS
    PARAMS_FILE = "config/image_detector.yaml"
    KIND = "mono"
    OTHER_KINDS_HINT = "point-cloud checkpoints run in the pointcloud_detector node"
    INPUT_NAME = "image"
    COUNTERS = ("no_camera_info",)
    MARKER_LINE_WIDTH = 0.05  # outdoor scale: objects 5-80 m away
    MARKER_TEXT_HEIGHT = 0.5

    params: ImageNodeParams

    def __init__(
        self, node_name: str = NODE_NAME, *, detector: Any = None, **node_kwargs: Any
    ) -> None:
        super().__init__(node_name, detector=detector, **node_kwargs)

    # ----------------------------------------------------------------------------- hooks

    def _validate(self, raw: Mapping[str, Any], class_names: Sequence[str] | None) -> Any:
        return validate_image_params(raw, class_names)

    def _default_checkpoint(self) -> Path:
        from sr3d_ros.mono_inference import default_mono_checkpoint_path

        return default_mono_checkpoint_path()

    def _apply_inference_params(self, p: ImageNodeParams) -> None:
        import dataclasses

        inf = dataclasses.replace(
            self._base_inference,
            score_threshold=p.score_threshold,
            max_detections=p.max_detections or self._base_inference.max_detections,
        )
        self.detector.config = dataclasses.replace(self.detector.config, inference=inf)

    def _create_inputs(self) -> str:
        self._infos: dict[str, collections.deque[tuple[int, Any]]] = {}
        self._info_cv = threading.Condition()
        self._setup_cache: tuple[tuple[Any, ...], CameraSetup] | None = None
        self._told: set[str] = set()  # CameraSetup notes already logged
        qos = input_qos(self.params.qos_reliability)
        self.pub_overlay = self.create_publisher(Image, "~/output/image_overlay", 1)
        self.sub_camera_info = self.create_subscription(
            CameraInfo, "~/input/camera_info", self._on_camera_info, qos
        )
        if self.params.image_transport == "compressed":
            self.sub_image = self.create_subscription(
                CompressedImage, "~/input/image/compressed", self._on_image, qos
            )
        else:
            self.sub_image = self.create_subscription(Image, "~/input/image", self._on_image, qos)
        return f"{self.sub_image.topic_name} + {self.sub_camera_info.topic_name}"

    # ------------------------------------------------------------------------------ input

    def _on_image(self, msg: Any) -> None:
        """Subscription callback: the image into the mailbox (never blocks)."""
        self._on_input(msg)

    def _on_camera_info(self, msg: Any) -> None:
        """Subscription callback: keep the CameraInfo (the last few per frame_id)."""
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        with self._info_cv:
            q = self._infos.setdefault(str(msg.header.frame_id), collections.deque())
            q.append((stamp, msg))
            while len(q) > _INFO_HISTORY:
                q.popleft()
            self._info_cv.notify_all()

    def _pair(self, header: Any) -> tuple[Any, str]:
        """``(CameraInfo, "")`` for an image header, or ``(None, why none)`` after waiting up to
        ``_INFO_WAIT_S`` for one to arrive."""
        frame = str(header.frame_id)
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        tol_ns = self.params.camera_info_tolerance * 1e9

        def pick() -> tuple[Any, str]:
            q = self._infos.get(frame)
            if not q:
                if not self._infos:
                    return None, f"no CameraInfo received yet on {self.sub_camera_info.topic_name}"
                return None, f"no CameraInfo for frame_id {frame!r} (have {sorted(self._infos)})"
            if tol_ns <= 0:
                return q[-1][1], ""
            best = min(q, key=lambda si: abs(si[0] - stamp))
            gap = abs(best[0] - stamp)
            if gap > tol_ns:
                return None, (
                    f"no CameraInfo of frame_id {frame!r} within camera_info_tolerance "
                    f"{self.params.camera_info_tolerance:g} s of the image (closest "
                    f"{gap / 1e9:.3f} s)"
                )
            return best[1], ""

        deadline = time.monotonic() + _INFO_WAIT_S
        with self._info_cv:
            while True:
                info, why = pick()
                left = deadline - time.monotonic()
                if info is not None or left <= 0 or self._stop:
                    return info, why
                self._info_cv.wait(left)

    def _decode(self, msg: Any) -> NDArray[np.uint8]:
        """The image as ``uint8 (H, W, 3)`` RGB (raises ImageError)."""
        if hasattr(msg, "format"):
            return compressed_to_rgb(msg, self.params.max_image_pixels)
        return image_to_rgb(msg, self.params.max_image_pixels)

    def _camera(self, info: Any, width: int, height: int) -> CameraSetup:
        """The (cached) camera setup of ``info`` for a ``width x height`` image; its notes are
        logged once each (raises CameraInfoError)."""
        p = self.params
        key = (info_key(info), width, height, p.intrinsics, p.undistort)
        if self._setup_cache is None or self._setup_cache[0] != key:
            setup = camera_setup(
                info,
                width,
                height,
                p.intrinsics,
                p.undistort,
                device=getattr(self.detector, "device", "cpu"),
            )
            self._setup_cache = (key, setup)
            for note in setup.notes:
                if note not in self._told:
                    self._told.add(note)
                    self.get_logger().warning(note)
        return self._setup_cache[1]

    # ---------------------------------------------------------------------------- process

    def _process(self, msg: Any, t_in: float) -> None:
        from sr3d_ros.ros.messages import optical_frame_poses

        t0 = time.perf_counter()
        header = msg.header
        timings: dict[str, float] = {"wait": (t0 - t_in) * 1e3}
        encoding = str(getattr(msg, "encoding", getattr(msg, "format", "")))
        values: dict[str, Any] = {"image_encoding": encoding}
        info, why = self._pair(header)
        if info is None:
            self._no_camera_info(why, header, timings, values)
            return
        t1 = time.perf_counter()
        try:
            rgb = self._decode(msg)
            values.update(image_width=rgb.shape[1], image_height=rgb.shape[0])
            setup = self._camera(info, rgb.shape[1], rgb.shape[0])
        except ImageError as exc:
            self._bad_input(str(exc), header, timings, values)
            return
        except CameraInfoError as exc:
            self._bad_input(f"unusable CameraInfo: {exc}", header, timings, values)
            return
        t2 = time.perf_counter()
        timings["decode"] = (t2 - t1) * 1e3
        if setup.undistort is not None:
            rgb = setup.undistort(rgb)
        t3 = time.perf_counter()
        timings["undistort"] = (t3 - t2) * 1e3
        try:
            det = self.detector(rgb, setup.camera)
        except Exception as exc:
            self.get_logger().error(
                f"inference failed: {type(exc).__name__}: {exc}",
                throttle_duration_sec=WARN_THROTTLE_S,
            )
            self._publish_failure(
                "errors", "ERROR", f"inference failed: {exc}", header, timings, values
            )
            return
        timings.update(det.timings_ms)
        timings["inference"] = (time.perf_counter() - t3) * 1e3
        det = self._keep_classes(det)
        poses = optical_frame_poses(det.boxes)
        if self.params.publish_overlay:
            self._publish_overlay(rgb, det, setup, header)
        self._publish_result(det, header, timings, t_in, (), values, poses)

    def _no_camera_info(
        self, why: str, header: Any, timings: dict[str, float], values: Mapping[str, Any]
    ) -> None:
        """An image without a CameraInfo: dropped (no detections), a throttled warning, WARN
        diagnostics."""
        self._count("no_camera_info")
        if self._throttle.allow(why):
            self.get_logger().warning(f"image dropped: {why}")
        self._publish_diagnostics("WARN", f"image dropped: {why}", header, timings, 0, values)

    def _diagnostic_values(self) -> dict[str, Any]:
        values = super()._diagnostic_values()
        values["frames_without_camera_info"] = self.stats["no_camera_info"]
        return values

    def _publish_overlay(
        self, rgb: NDArray[np.uint8], det: Detections, setup: CameraSetup, header: Any
    ) -> None:
        """``~/output/image_overlay``: ``rgb`` with the boxes' projected edges and labels."""
        from sr3d_ros.frames import box_corners
        from sr3d_ros.ros.messages import optical_frame_poses

        corners = box_corners(optical_frame_poses(det.boxes))  # in the frame P projects from
        labels = det.labels.tolist()
        texts = [f"{det.class_names[k]} {s:.2f}" for k, s in zip(labels, det.scores.tolist())]
        image = draw_projected_boxes(rgb, setup.camera.P, corners, labels, texts)
        self.pub_overlay.publish(rgb_to_image(image, header))


def draw_projected_boxes(
    rgb: NDArray[np.uint8],
    P: NDArray[np.float64],
    corners: NDArray[np.float64],
    labels: Sequence[int],
    texts: Sequence[str],
    min_depth: float = 0.1,
) -> NDArray[np.uint8]:
    """``rgb`` with 3D boxes drawn: the 12 projected edges of each box in its class colour
    (:mod:`sr3d_ros.palette`) and a label above it.

    Args:
        rgb: ``uint8 (H, W, 3)`` image. P: ``(3, 4)`` projection of the frame of ``corners``.
        corners: ``(M, 8, 3)`` box corners, metres (:func:`sr3d_ros.frames.box_corners`).
        labels: class index of each box. texts: label text of each box (best box first).
        min_depth: boxes with a corner nearer than this (metres, along the optical axis) are
            not drawn (their projection is not a box).

    Returns:
        A new ``uint8 (H, W, 3)`` image.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    from sr3d_ros.frames import BOX_EDGES
    from sr3d_ros.io.render_pillow import draw_labels, load_font
    from sr3d_ros.palette import class_color, class_color_255

    im = PILImage.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(im)
    h = np.concatenate([corners, np.ones(corners.shape[:2] + (1,))], -1) @ P.T  # (M, 8, 3)
    width = max(2, round(im.width / 600))
    anchors, shown, colors = [], [], []
    for k in range(len(corners)):
        if not (h[k, :, 2] >= min_depth).all():
            continue
        uv = h[k, :, :2] / h[k, :, 2:3]
        for a, b in BOX_EDGES:
            draw.line([tuple(uv[a]), tuple(uv[b])], fill=class_color_255(labels[k]), width=width)
        top = uv[np.argmin(uv[:, 1])]
        anchors.append((float(uv[:, 0].mean()), float(top[1])))
        shown.append(texts[k])
        colors.append(class_color(labels[k]))
    font = load_font(max(10, round(im.height / 28)))
    draw_labels(draw, np.asarray(anchors).reshape(-1, 2), shown, colors, im.size, font)
    return np.asarray(im, dtype=np.uint8).copy()


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``image_detector``: exit status 0 after Ctrl-C / SIGTERM / shutdown,
    1 when the node cannot start (:func:`~sr3d_ros.ros.detector_node.run_detector_node`)."""
    return run_detector_node(ImageDetectorNode, args)


if __name__ == "__main__":
    sys.exit(main())
