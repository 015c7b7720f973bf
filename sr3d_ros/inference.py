"""Inference API: one :class:`Detector` interface that every detector kind implements.

``PointCloudDetector`` (TR3D architecture) is the first; the monocular detector (LeAD-M3D) will
implement the same protocol with an image + camera-info input.

    >>> det = PointCloudDetector.from_checkpoint("model.pt", device="auto")
    >>> result = det(points)            # (N, 3) or (N, 6) float32 xyz [+ rgb 0..255]
    >>> result.boxes, result.scores, result.labels, result.names, result.timings_ms
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .checkpoints import CheckpointError, config_from_checkpoint, load_checkpoint
from .config import DetectorConfig, InferenceConfig
from .detections import Detections
from .models import TR3DDetector, points_to_sparse
from .timing import StageTimer

__all__ = ["Detector", "PointCloudDetector", "resolve_device", "default_checkpoint_path"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; otherwise ``torch.device(device)``.

    Raises:
        ValueError: an unknown device string, or ``cuda`` requested without CUDA.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:i]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return dev


def default_checkpoint_path() -> Path:
    """The embedded default model shipped with the package (see its model card)."""
    return Path(__file__).resolve().parent / "models" / "weights" / "sr3d_scannet_default.pt"


@runtime_checkable
class Detector(Protocol):
    """What every detector offers: class names, a device, and a call returning Detections."""

    class_names: tuple[str, ...]
    device: torch.device

    def __call__(self, inputs: Any) -> Detections: ...


class PointCloudDetector:
    """Point-cloud detector (TR3D architecture, SR3D training) behind the :class:`Detector` API.

    Args:
        model: a built :class:`~sr3d_ros.models.TR3DDetector` (weights loaded).
        config: its :class:`~sr3d_ros.config.DetectorConfig`.
        device: where to run.
    """

    def __init__(self, model: TR3DDetector, config: DetectorConfig, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.config = config
        self.device = device
        self.class_names = tuple(config.model.class_names)
        self.provenance: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str | torch.device = "auto", **inference_overrides: Any
    ) -> "PointCloudDetector":
        """Build from our checkpoint format (``None``: the embedded default model).

        Args:
            path: checkpoint file.
            device: ``"auto"``, ``"cpu"``, ``"cuda"``.
            inference_overrides: fields of :class:`~sr3d_ros.config.InferenceConfig` to change
                (``score_threshold``, ``iou_threshold``, ``nms_pre``, ``max_detections``).

        Raises:
            FileNotFoundError / CheckpointError: missing or invalid checkpoint, weights that do
                not fit the stored config. ValueError: bad device or override.
        """
        path = Path(path) if path is not None else default_checkpoint_path()
        dev = resolve_device(device)
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("kind", "pointcloud") != "pointcloud":
            raise CheckpointError(f"{path}: a {ckpt.get('kind')!r} checkpoint, not a point-cloud detector")
        config = config_from_checkpoint(ckpt, path)
        if inference_overrides:
            try:
                config = dataclasses.replace(config, inference=dataclasses.replace(config.inference, **inference_overrides))
            except TypeError as exc:
                raise ValueError(f"unknown inference option: {exc}") from exc
        model = TR3DDetector(config.model)
        try:
            model.load_state_dict(ckpt["state_dict"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the stored model config: {exc}") from exc
        det = cls(model, config, dev)
        det.provenance = dict(ckpt.get("provenance", {}))
        return det

    @property
    def inference_config(self) -> InferenceConfig:
        return self.config.inference

    @torch.no_grad()
    def __call__(self, points: np.ndarray | torch.Tensor, timed: bool = True) -> Detections:
        """Detect objects in one cloud.

        Args:
            points: ``(N, 3)`` or ``(N, 6)`` float xyz in metres in a gravity-aligned frame
                (z up; RGB-D camera frames must be rotated first) + optional rgb in 0..255.
                NaN/inf rows are dropped.
            timed: record per-stage times (``voxelize``, ``backbone``, ``neck``, ``head``,
                ``nms``) in ``Detections.timings_ms``.

        Returns:
            :class:`Detections` in the input frame (empty if no valid point).

        Raises:
            TypeError: not an array/tensor. ValueError: wrong shape.
        """
        if isinstance(points, np.ndarray):
            points = torch.from_numpy(np.ascontiguousarray(points))
        if not isinstance(points, torch.Tensor):
            raise TypeError(f"points must be a numpy array or torch tensor, got {type(points).__name__}")
        if points.dim() != 2 or points.shape[1] not in (3, 6):
            raise ValueError(f"points must be (N, 3) or (N, 6) = xyz [+ rgb 0..255], got {tuple(points.shape)}")
        points = points.to(self.device, torch.float32)
        points = points[torch.isfinite(points).all(dim=1)]
        if points.shape[0] == 0:
            return Detections.empty(self.class_names, self.device)
        timer = StageTimer(self.device, enabled=timed)
        with timer.stage("voxelize"):
            x = points_to_sparse([points], self.config.model.voxel_size, self.config.model.color_mean)
        outputs = self.model(x, timer)
        with timer.stage("nms"):
            det = self.model.postprocess(outputs, 1, self.config.inference)[0]
        det.timings_ms = dict(timer.ms)
        return det
