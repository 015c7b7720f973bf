"""The detection result shared by every detector kind (point cloud now, monocular later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

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
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def empty(class_names: tuple[str, ...], device: torch.device | str = "cpu") -> Detections:
        """No detections."""
        return Detections(
            torch.zeros((0, 7), device=device),
            torch.zeros((0,), device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
            tuple(class_names),
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
        )

    def filter(self, keep: torch.Tensor) -> Detections:
        """Subset by a ``(M,)`` bool mask or index tensor."""
        return Detections(
            self.boxes[keep],
            self.scores[keep],
            self.labels[keep],
            self.class_names,
            dict(self.timings_ms),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a list of ``{label, class_name, score, box: {centre, size, yaw}}``."""
        out = []
        for box, score, label in zip(
            self.boxes.tolist(), self.scores.tolist(), self.labels.tolist()
        ):
            out.append(
                {
                    "label": label,
                    "class_name": self.class_names[label],
                    "score": score,
                    "box": {"center": box[:3], "size": box[3:6], "yaw": box[6]},
                }
            )
        return {
            "detections": out,
            "class_names": list(self.class_names),
            "timings_ms": self.timings_ms,
        }
