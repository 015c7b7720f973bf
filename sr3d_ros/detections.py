"""The detection result shared by every detector kind (point cloud and monocular)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .geometry.camera import rotation_y_to_alpha

__all__ = ["Detections"]


@dataclass
class Detections:
    """Detected 3D boxes of one input (one scene / frame).

    Attributes:
        boxes: ``(M, 7)`` float32 ``(x, y, z, dx, dy, dz, yaw)`` in the input's frame (metres,
            geometric centre, yaw radians about +z; see :mod:`sr3d_ros.geometry.boxes`).
        scores: ``(M,)`` float32 in [0, 1], descending.
        labels: ``(M,)`` int64 indices into ``class_names``.
        class_names: names of all classes the detector knows.
        timings_ms: wall time of each stage in milliseconds (e.g. ``voxelize``, ``backbone``,
            ``neck``, ``head``, ``nms``), empty when not measured.
        camera_boxes: monocular detections only (else None): ``(M, 7)`` float32 KITTI camera
            boxes ``(x, y, z, l, h, w, ry)`` in the camera's optical frame (x right, y down,
            z forward; ``(x, y, z)`` the bottom-face centre, metres; ``ry`` about +y, radians;
            :mod:`sr3d_ros.geometry.camera`). ``boxes`` then holds the same boxes in the camera
            body frame (x forward, y left, z up; ``camera_boxes_to_boxes``).
        image_boxes: monocular detections only (else None): ``(M, 4)`` float32 2D boxes
            ``(x1, y1, x2, y2)`` in the input image's pixels (pixel centres at integers).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    camera_boxes: torch.Tensor | None = None
    image_boxes: torch.Tensor | None = None

    @staticmethod
    def empty(
        class_names: tuple[str, ...], device: torch.device | str = "cpu", camera: bool = False
    ) -> Detections:
        """No detections (``camera``: with an empty ``camera_boxes``, as a monocular result)."""
        return Detections(
            torch.zeros((0, 7), device=device),
            torch.zeros((0,), device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
            tuple(class_names),
            camera_boxes=torch.zeros((0, 7), device=device) if camera else None,
            image_boxes=torch.zeros((0, 4), device=device) if camera else None,
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def names(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[i] for i in self.labels.tolist()]

    def to(self, device: torch.device | str) -> Detections:
        """A copy with ``boxes``, ``scores`` and ``labels`` on ``device`` (dtypes, frame, class
        names and timings unchanged; no copy of tensors already there). Raises what
        ``torch.Tensor.to`` raises for a bad or unavailable device (RuntimeError)."""
        return Detections(
            self.boxes.to(device),
            self.scores.to(device),
            self.labels.to(device),
            self.class_names,
            dict(self.timings_ms),
            None if self.camera_boxes is None else self.camera_boxes.to(device),
            None if self.image_boxes is None else self.image_boxes.to(device),
        )

    def filter(self, keep: torch.Tensor) -> Detections:
        """Subset by a ``(M,)`` bool mask or index tensor."""
        return Detections(
            self.boxes[keep],
            self.scores[keep],
            self.labels[keep],
            self.class_names,
            dict(self.timings_ms),
            None if self.camera_boxes is None else self.camera_boxes[keep],
            None if self.image_boxes is None else self.image_boxes[keep],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a list of ``{label, class_name, score, box: {center, size, yaw}}``; with
        camera boxes each also has ``camera_box: {location, dimensions_lhw, rotation_y, alpha}``
        (optical frame, bottom-face centre; ``alpha = ry - atan2(x, z)``), with image boxes
        ``bbox_2d: [x1, y1, x2, y2]`` (pixels)."""
        out = []
        for i, (box, score, label) in enumerate(
            zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist())
        ):
            item: dict[str, Any] = {
                "label": label,
                "class_name": self.class_names[label],
                "score": score,
                "box": {"center": box[:3], "size": box[3:6], "yaw": box[6]},
            }
            if self.camera_boxes is not None:
                cb = self.camera_boxes[i].double()
                alpha = rotation_y_to_alpha(cb[6], cb[0], cb[2])
                item["camera_box"] = {
                    "location": cb[:3].tolist(),
                    "dimensions_lhw": cb[3:6].tolist(),
                    "rotation_y": float(cb[6]),
                    "alpha": float(alpha),
                }
            if self.image_boxes is not None:
                item["bbox_2d"] = self.image_boxes[i].tolist()
            out.append(item)
        return {
            "detections": out,
            "class_names": list(self.class_names),
            "timings_ms": self.timings_ms,
        }
