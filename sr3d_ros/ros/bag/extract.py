"""``sr3d-bag extract``: a recorded bag -> a training dataset (the format of
:mod:`sr3d_training.datasets.bag`), streamed message by message, atomic and resumable.

What a sample is:

* **points** (``points_topic``): the cloud as ``(N, 6)`` xyz + rgb 0..255
  (:func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array`; NaN points of a non-dense cloud
  dropped), moved into the dataset frame: ``target_frame`` through the bag's ``/tf_static`` and
  ``/tf`` at the cloud's header stamp (:class:`~sr3d_ros.ros.bag.tf.TfBuffer`), else by
  ``gravity_transform`` (the node's parameter: input frame -> gravity-aligned), else unchanged
  (bit for bit). Transformed coordinates are computed in float64 and stored as float32.
* **images** (``image_topic`` + ``camera_info_topic``): the image as RGB (``rgb8``, ``bgr8``,
  ``rgba8``, ``bgra8``, ``mono8``) and the camera ``P`` of the CameraInfo with the same header
  stamp (nearest within ``sync_tolerance_s``), in the image's optical frame.
* **labels** (``gt_topic``, optional): the ``Detection3DArray`` with the sample's header stamp
  (nearest within ``sync_tolerance_s``; none: an unlabelled sample), as full poses moved into
  the dataset frame (points) or the camera body frame (images) through TF (and the gravity
  transform), then made upright (:func:`~sr3d_ros.ros.bag.detections.upright_boxes`; a warning
  when a box is tilted by more than 2 degrees there).

Memory is bounded by one message plus the small side topics (TF, labels, camera infos, read
in a first pass): it does not grow with the number of clouds or images.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sr3d_ros.ros.bag.detections import DetectionPoses, detection_poses
from sr3d_ros.ros.bag.reading import open_bag
from sr3d_ros.ros.bag.tf import TfBuffer

__all__ = ["ExtractOptions", "ExtractSummary", "StampIndex", "decode_image", "extract_bag"]

logger = logging.getLogger(__name__)

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DETECTION3DARRAY = "vision_msgs/msg/Detection3DArray"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
_TILT_WARN_RAD = math.radians(2.0)


@dataclass(frozen=True)
class ExtractOptions:
    """What to extract (module docstring). Exactly one of ``points_topic`` / ``image_topic``.

    Attributes:
        gravity_transform: 16 values, row-major ``(4, 4)``, input frame -> gravity-aligned
            (used without ``target_frame``). every: keep every n-th message of the topic.
        sync_tolerance_s: how far apart (seconds) a label / CameraInfo stamp may be from the
            sample's. tf_tolerance_s: how far outside the recorded ``/tf`` span a lookup may
            fall (the nearest sample is used).
    """

    points_topic: str | None = None
    image_topic: str | None = None
    camera_info_topic: str | None = None
    gt_topic: str | None = None
    target_frame: str | None = None
    gravity_transform: tuple[float, ...] | None = None
    every: int = 1
    sync_tolerance_s: float = 0.05
    tf_tolerance_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.points_topic is None) == (self.image_topic is None):
            raise ValueError("give exactly one of points_topic / image_topic")
        if self.image_topic is not None and self.camera_info_topic is None:
            raise ValueError("an image topic needs its camera_info topic")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.gravity_transform is not None and self.target_frame is not None:
            raise ValueError("give target_frame or gravity_transform, not both")

    @property
    def kind(self) -> str:
        return "points" if self.points_topic is not None else "images"

    @property
    def topic(self) -> str:
        return str(self.points_topic or self.image_topic)


@dataclass
class ExtractSummary:
    """What :func:`extract_bag` did: the dataset folder, samples in it (``samples``), written by
    this run (``written``; the rest came from the resumed part), with labels (``labelled``),
    messages read on the topic, the frame, class names, and messages per second."""

    out: Path
    samples: int
    written: int
    labelled: int
    messages: int
    frame_id: str
    class_names: list[str] = field(default_factory=list)
    messages_per_s: float = 0.0


class StampIndex:
    """Values sorted by stamp, looked up at the nearest stamp within a tolerance."""

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.values: list[Any] = []

    def add(self, stamp_ns: int, value: Any) -> None:
        i = bisect_left(self.stamps, stamp_ns)
        self.stamps.insert(i, stamp_ns)
        self.values.insert(i, value)

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> Any:
        """The value whose stamp is nearest ``stamp_ns`` within ``tolerance_ns``, else None."""
        i = bisect_left(self.stamps, stamp_ns)
        best = min(
            (j for j in (i - 1, i) if 0 <= j < len(self.stamps)),
            key=lambda j: abs(self.stamps[j] - stamp_ns),
            default=None,
        )
        if best is None or abs(self.stamps[best] - stamp_ns) > tolerance_ns:
            return None
        return self.values[best]


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def decode_image(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` -> ``uint8 (H, W, 3)`` RGB (rows may be padded: ``step``).

    Raises:
        ValueError: an unsupported encoding or a data size that does not match.
    """
    ch = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(str(msg.encoding))
    if ch is None:
        raise ValueError(f"image encoding {msg.encoding!r} not supported (rgb8, bgr8, mono8, ...)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, np.uint8).reshape(-1)
    if step < w * ch or data.size < h * step:
        raise ValueError(f"image data of {data.size} bytes does not hold {h} rows of {step}")
    img = data[: h * step].reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if ch == 1:
        return np.repeat(img, 3, axis=2)
    if str(msg.encoding).startswith("bgr"):
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def _side_data(bag: Path, o: ExtractOptions) -> tuple[TfBuffer, StampIndex, StampIndex]:
    """First pass: TF, labels and camera infos (small messages) of the bag."""
    tf = TfBuffer(int(o.tf_tolerance_s * 1e9))
    gts, infos = StampIndex(), StampIndex()
    want = {t for t in ("/tf", "/tf_static", o.gt_topic, o.camera_info_topic) if t}
    with open_bag(bag) as reader:
        for m in reader.messages(topics=want):
            if m.topic in ("/tf", "/tf_static") and m.msgtype == TF_MESSAGE:
                tf.add(m.msg, static=m.topic == "/tf_static")
            elif m.topic == o.gt_topic:
                gts.add(_stamp(m.msg), detection_poses(m.msg))
            elif m.topic == o.camera_info_topic:
                P = np.asarray(m.msg.p, np.float64).reshape(3, 4)
                calib = {"P": P.tolist(), "width": int(m.msg.width)}
                calib |= {"height": int(m.msg.height), "frame_id": str(m.msg.header.frame_id)}
                infos.add(_stamp(m.msg), calib)
    return tf, gts, infos


def _apply(points: np.ndarray, T: np.ndarray | None) -> np.ndarray:
    if T is None:
        return points
    out = points.copy()
    out[:, :3] = points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    return out


class _Extractor:
    """One extract run: frames, transforms and label conversion per sample."""

    def __init__(self, bag: Path, o: ExtractOptions) -> None:
        self.bag, self.o = bag, o
        self.tf, self.gts, self.infos = _side_data(bag, o)
        self.tol = int(o.sync_tolerance_s * 1e9)
        self.gravity = None
        if o.gravity_transform is not None:
            from sr3d_ros.frames import validate_transform

            self.gravity = validate_transform(np.asarray(o.gravity_transform, np.float64))
        self.frame_id = ""
        self.max_tilt = 0.0

    def to_dataset(self, frame: str, stamp: int) -> np.ndarray | None:
        """``frame`` -> dataset frame at ``stamp`` (None = identity, data kept bit for bit)."""
        if self.o.target_frame is not None:
            if frame.lstrip("/") == self.o.target_frame.lstrip("/"):
                return None
            return self.tf.lookup(self.o.target_frame, frame, stamp)
        return self.gravity

    def labels(
        self, stamp: int, frame: str, T_frame: np.ndarray | None, use_target: bool = True
    ) -> tuple[DetectionPoses, np.ndarray] | None:
        """The GT at ``stamp`` in the output frame: (poses there, upright boxes), or None.

        ``T_frame`` maps the sample's message frame to the output frame (None: identity);
        GT in another frame goes through TF: to ``target_frame`` directly (``use_target``),
        else to the message frame and then by ``T_frame``.
        """
        gt: DetectionPoses | None = self.gts.nearest(stamp, self.tol)
        if gt is None:
            return None
        T = np.eye(4) if T_frame is None else T_frame
        if gt.frame_id.lstrip("/") != frame.lstrip("/"):
            if use_target and self.o.target_frame is not None:
                T = self.tf.lookup(self.o.target_frame, gt.frame_id, stamp)
            else:
                T = T @ self.tf.lookup(frame, gt.frame_id, stamp)
        poses = gt.transformed(T, self.frame_id)
        boxes, tilt = poses.upright()
        self.max_tilt = max(self.max_tilt, tilt)
        return poses, boxes

    def sample(self, m: Any) -> dict[str, Any]:
        """The files of one message: ``points`` or ``image`` + ``calib``, and ``labels``."""
        msg, stamp, frame = m.msg, _stamp(m.msg), str(m.msg.header.frame_id)
        if self.o.kind == "points":
            from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

            T = self.to_dataset(frame, stamp)
            self.frame_id = self.o.target_frame or frame
            pts, _ = pointcloud2_to_array(msg)
            out: dict[str, Any] = {"points": _apply(pts, T)}
            lab = self.labels(stamp, frame, T)
            if lab is not None:
                out["labels"] = {"boxes": lab[1], "names": lab[0].names, "scores": lab[0].scores}
            return out
        calib = self.infos.nearest(stamp, self.tol)
        if calib is None:
            raise ValueError(
                f"{self.bag}: no {self.o.camera_info_topic} message within "
                f"{self.o.sync_tolerance_s} s of the image stamped {stamp} ns"
            )
        self.frame_id = frame
        out = {"image": decode_image(msg), "calib": dict(calib, frame_id=frame)}
        from sr3d_ros.geometry.camera import OPTICAL_TO_BODY

        body = np.eye(4)
        body[:3, :3] = OPTICAL_TO_BODY
        lab = self.labels(stamp, frame, body, use_target=False)  # camera body frame, z up
        if lab is not None:
            import torch

            from sr3d_ros.geometry.camera import boxes_to_camera_boxes

            cam = boxes_to_camera_boxes(torch.from_numpy(lab[1])).numpy()
            out["labels"] = {
                "boxes": lab[1],
                "names": lab[0].names,
                "scores": lab[0].scores,
                "camera_boxes": cam,
            }
        return out


def extract_bag(
    bag: str | Path,
    out: str | Path,
    options: ExtractOptions,
    resume: bool = False,
    progress: bool = False,
    class_names: Sequence[str] = (),
) -> ExtractSummary:
    """Extract a bag's clouds or images (+ labels) into a dataset folder (module docstring).

    Args:
        bag: rosbag2 folder or file (``.mcap`` / ``.db3``). out: dataset folder to create.
        options: topics, frames, subsampling. resume: continue ``out.partial``.
        progress: show a tqdm bar (messages and messages per second) on stderr.
        class_names: label order of the dataset (default: the bag's ``sr3d.class_names``
            custom data, then label names in order of appearance).

    Returns:
        :class:`ExtractSummary`.

    Raises:
        FileNotFoundError: no bag. FileExistsError: ``out`` exists, or ``out.partial`` without
        ``resume``. BagReadError (a ValueError): an unreadable, damaged or truncated bag, a topic
        that is not in it or of the wrong type (the message names the bag and the problem).
        TfLookupError (a ValueError): no transform to ``target_frame`` at a sample's stamp.
        ValueError: other bad input. ``out`` appears only when everything is written. On an
        error the samples written so far stay in ``out.partial`` (removed when there are none);
        on KeyboardInterrupt they stay for ``resume``.
    """
    import json

    from sr3d_ros.ros.bag.reading import require_topic
    from sr3d_training.datasets.bag import BagDatasetWriter

    bag = Path(bag).resolve()
    o = options
    expect = {o.topic: POINTCLOUD2 if o.kind == "points" else IMAGE}
    if o.camera_info_topic:
        expect[o.camera_info_topic] = CAMERA_INFO
    if o.gt_topic:
        expect[o.gt_topic] = DETECTION3DARRAY
    with open_bag(bag, check=True) as reader:  # a damaged bag fails here, before any output
        for topic, msgtype in expect.items():
            require_topic(reader, topic, msgtype)
        total = reader.topics[o.topic].msgcount
        custom = reader.custom_data
    names = list(class_names) or list(json.loads(custom.get("sr3d.class_names", "[]")))
    ex = _Extractor(bag, o)
    source = {"bag": str(bag), **asdict(o)}
    writer = BagDatasetWriter(out, source, o.kind, resume=resume)
    written, labelled, seen = 0, 0, 0
    t0 = time.monotonic()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="msg", desc=f"extract {o.topic}", dynamic_ncols=True)
    try:
        with open_bag(bag) as reader:
            for index, m in enumerate(reader.messages(topics=[o.topic], deserialize=False)):
                seen += 1
                if bar is not None:
                    bar.update(1)
                sid = f"{index:06d}"
                if index % o.every or sid in writer.done:
                    continue
                m.msg = reader.deserialize(m)
                files = ex.sample(m)
                entry = {"id": sid, "bag": str(bag), "topic": o.topic, "index": index}
                entry |= {"stamp_ns": _stamp(m.msg), "frame_id": str(m.msg.header.frame_id)}
                writer.add(entry, **files)
                written += 1
                labelled += "labels" in files
        if ex.max_tilt > _TILT_WARN_RAD:
            logger.warning(
                "%s: boxes are tilted by up to %.1f deg in %r (not gravity-aligned?); their tilt "
                "was dropped",
                bag,
                math.degrees(ex.max_tilt),
                ex.frame_id,
            )
        frame = ex.frame_id or o.target_frame or ""
        if not frame and writer.entries:  # resumed with nothing left to do
            frame = str(writer.entries[0]["frame_id"])
        n = len(writer.entries)
        labelled = sum(1 for e in writer.entries if e.get("labels"))
        result = writer.finish(names, frame)
    except Exception:
        if writer.entries:
            writer.close()
            logger.error("%d samples kept in %s (--resume)", len(writer.entries), writer.tmp)
        else:
            writer.discard()  # nothing worth keeping: no output at all
        raise
    except BaseException:  # Ctrl-C / SIGTERM: keep everything for --resume
        writer.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    dt = max(time.monotonic() - t0, 1e-9)
    final = json.loads((result / "dataset.json").read_text())
    return ExtractSummary(
        result, n, written, labelled, seen, frame, list(final["class_names"]), seen / dt
    )
