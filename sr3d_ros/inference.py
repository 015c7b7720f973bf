"""Inference API: one :class:`Detector` interface that every detector kind implements.

``PointCloudDetector`` (TR3D architecture, here) and the monocular
:class:`~sr3d_ros.mono_inference.MonoDetector` (LeAD-M3D; input image + camera) implement it.

    >>> det = Detector.from_checkpoint("model.pt", device="auto")   # kind read from the file
    >>> det = PointCloudDetector.from_checkpoint("model.pt")         # or: this kind only
    >>> result = det(points)            # (N, 3) or (N, 6) float32 xyz [+ rgb 0..255]
    >>> result.boxes, result.scores, result.labels, result.names, result.timings_ms
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from .checkpoints import CheckpointError, config_from_checkpoint, load_checkpoint
from .config import DetectorConfig, InferenceConfig, from_dict, to_dict
from .detections import Detections
from .input_limits import CropCounts, InputLimits, check_voxel_budget, crop_points
from .models import TR3DDetector, points_to_sparse
from .models.mono.config import MonoDetectorConfig
from .timing import StageTimer

__all__ = [
    "Detector",
    "PointCloudDetector",
    "default_checkpoint_path",
    "load_detector",
    "load_model_weights",
    "resolve_device",
    "with_inference_overrides",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda:<current>`` when available else ``cpu``; otherwise the named device.

    A bare ``"cuda"`` resolves to ``cuda:<current index>``, so the result compares equal to
    ``tensor.device`` of tensors created on it.

    Raises:
        ValueError: an unknown device string, or ``cuda`` requested without CUDA.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:i]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def default_checkpoint_path() -> Path:
    """The embedded default model shipped with the package (see its model card)."""
    return Path(__file__).resolve().parent / "models" / "weights" / "sr3d_scannet_default.pt"


C = TypeVar("C", DetectorConfig, MonoDetectorConfig)


def load_model_weights(model: torch.nn.Module, ckpt: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's ``state_dict`` into ``model`` (strict).

    Raises:
        CheckpointError: the weights do not fit the model built from the stored config (missing
            / unexpected keys, shape mismatches; the message names the file).
    """
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not match the stored model config: {exc}"
        ) from exc


def with_inference_overrides(config: C, overrides: Mapping[str, float]) -> C:
    """``config`` with some fields of its inference config replaced
    (:class:`~sr3d_ros.config.InferenceConfig` or
    :class:`~sr3d_ros.models.mono.MonoInferenceConfig`), checked by the strict config loader
    (:func:`~sr3d_ros.config.from_dict`: integer fields must be integers, every value in its
    range).

    Raises:
        ValueError: an unknown option (the message lists the known ones); ConfigError (a
            ValueError): a value of the wrong type or out of range.
    """
    inference_type = type(config.inference)
    known = sorted(f.name for f in dataclasses.fields(inference_type))
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown inference option(s) {unknown}; known: {known}")
    if not overrides:
        return config
    merged = {**to_dict(config.inference), **overrides}
    return dataclasses.replace(config, inference=from_dict(inference_type, merged, "inference"))


@runtime_checkable
class Detector(Protocol):
    """What every detector kind offers: class names, a device, a checkpoint loader, and a call
    returning :class:`Detections`.

    Implemented by :class:`PointCloudDetector` (input: ``(N, 3|6)`` points) and
    :class:`~sr3d_ros.mono_inference.MonoDetector` (input: image, camera).
    ``isinstance(x, Detector)`` checks the members structurally.

    ``Detector.from_checkpoint(path, device="auto")`` called on the protocol itself reads the
    checkpoint's ``kind`` and builds the matching implementation (same as :func:`load_detector`);
    each implementation's own ``from_checkpoint`` builds that kind only.
    """

    class_names: tuple[str, ...]
    device: torch.device

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "auto",
        **inference_overrides: float,
    ) -> Detector:
        """Load a detector from our checkpoint format (``None``: the embedded default model).

        Args:
            path: checkpoint file.
            device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda[:i]"``.
            inference_overrides: post-processing fields to change (see the implementation).

        Returns:
            A ready detector in eval mode on ``device``.

        Raises:
            FileNotFoundError / CheckpointError: missing or invalid checkpoint, or a ``kind``
                this version has no detector for. ValueError: bad device or override.
        """
        return load_detector(path, device, **inference_overrides)

    def __call__(self, inputs: Any, /) -> Detections:
        """Detect objects in one input (its type depends on the kind: points, image + camera
        info); returns :class:`Detections` in the input frame."""
        ...


def load_detector(
    path: str | Path | None = None,
    device: str | torch.device = "auto",
    **inference_overrides: float,
) -> Detector:
    """Build the detector a checkpoint holds, whatever its kind (see :class:`Detector`).

    Args / Raises: as :meth:`Detector.from_checkpoint`. Kinds: ``"pointcloud"`` ->
    :class:`PointCloudDetector`, ``"mono"`` -> :class:`~sr3d_ros.mono_inference.MonoDetector`;
    other kinds are a :class:`~sr3d_ros.checkpoints.CheckpointError`.
    """
    path = Path(path) if path is not None else default_checkpoint_path()
    dev = resolve_device(device)
    ckpt = load_checkpoint(path, map_location="cpu")
    kind = ckpt.get("kind", "pointcloud")
    factory = _DETECTOR_KINDS.get(kind) if isinstance(kind, str) else None
    if factory is None:
        raise CheckpointError(
            f"{path}: a {kind!r} checkpoint; this version has detectors for "
            f"{sorted(_DETECTOR_KINDS)} only"
        )
    return factory(ckpt, path, dev, inference_overrides)


class PointCloudDetector:
    """Point-cloud detector (TR3D architecture, SR3D training) implementing :class:`Detector`.

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
        self._warned_unit_colors = False
        #: Work bounds (crop box / max range, voxel budget); replace to change them.
        self.limits = InputLimits()
        #: Points the last call removed (non-finite, out of range); for diagnostics.
        self.last_crop = CropCounts()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "auto",
        **inference_overrides: float,
    ) -> PointCloudDetector:
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
        return cls._from_loaded(ckpt, path, dev, inference_overrides)

    @classmethod
    def _from_loaded(
        cls,
        ckpt: dict[str, Any],
        path: Path,
        dev: torch.device,
        inference_overrides: Mapping[str, float],
    ) -> PointCloudDetector:
        if ckpt.get("kind", "pointcloud") != "pointcloud":
            raise CheckpointError(
                f"{path}: a {ckpt.get('kind')!r} checkpoint, not a point-cloud detector"
            )
        config = with_inference_overrides(config_from_checkpoint(ckpt, path), inference_overrides)
        model = TR3DDetector(config.model)
        load_model_weights(model, ckpt, path)
        det = cls(model, config, dev)
        det.provenance = dict(ckpt.get("provenance", {}))
        return det

    def _validate(self, inputs: object) -> torch.Tensor:
        """Checked ``(N', 3|6)`` float32 tensor on ``self.device``; non-finite and out-of-range
        rows dropped (counted in ``self.last_crop``)."""
        points = inputs
        if isinstance(points, np.ndarray):
            if points.dtype.kind not in "fiu":
                raise ValueError(
                    f"points must have a real numeric dtype (float32 preferred), got {points.dtype}"
                )
            points = torch.from_numpy(np.ascontiguousarray(points))
        if not isinstance(points, torch.Tensor):
            raise TypeError(
                f"points must be a numpy array or torch tensor, got {type(points).__name__}"
            )
        if points.dtype == torch.bool or points.is_complex():
            raise ValueError(
                f"points must have a real numeric dtype (float32 preferred), got {points.dtype}"
            )
        if points.dim() != 2 or points.shape[1] not in (3, 6):
            raise ValueError(
                f"points must be (N, 3) or (N, 6) = xyz [+ rgb 0..255], got {tuple(points.shape)}"
            )
        points = points.to(self.device, torch.float32)
        points, self.last_crop = crop_points(points, self.limits)
        if points.shape[1] == 6 and points.shape[0] > 0:
            rgb = points[:, 3:6]
            lo, hi = float(rgb.min()), float(rgb.max())
            if lo < 0.0 or hi > 255.0:
                raise ValueError(
                    f"rgb must be in 0..255, got values in [{lo:g}, {hi:g}] "
                    "(columns 3..5 of an (N, 6) cloud are r, g, b; pass (N, 3) xyz for no colour)"
                )
            if 0.0 < hi <= 1.0 and not self._warned_unit_colors:
                self._warned_unit_colors = True
                warnings.warn(
                    f"all rgb values lie in [{lo:g}, {hi:g}]: this looks like a 0..1 colour scale, "
                    "but the detector expects 0..255; multiply the colours by 255",
                    UserWarning,
                    stacklevel=4,  # caller -> no_grad wrapper -> __call__ -> here
                )
        return points

    @property
    def inference_config(self) -> InferenceConfig:
        """The post-processing in use (``nms_pre``, ``score_threshold``, ``iou_threshold``,
        ``max_detections``): the checkpoint's defaults with any ``from_checkpoint`` overrides.
        Read-only (a frozen dataclass); build a new detector to change it."""
        return self.config.inference

    @torch.no_grad()
    def __call__(self, points: np.ndarray | torch.Tensor, timed: bool = True) -> Detections:
        """Detect objects in one cloud.

        Input expectations:

        * ``points``: ``(N, 3)`` xyz or ``(N, 6)`` xyz + rgb, numpy array or torch tensor of a
          real dtype (float32 preferred; float64 / integers are cast to float32).
        * Frame: xyz in metres in a gravity-aligned frame, z up (the frame the model was trained
          in: ScanNet / SUN RGB-D upright depth). RGB-D camera frames (z forward) must be rotated
          first. Boxes come back in the same frame.
        * Colour: r, g, b in **0..255** (8-bit scale). Colours outside [0, 255] are an error;
          colours that all lie in [0, 1] (with some > 0) look like a 0..1 scale and trigger a
          ``UserWarning`` (once per detector): multiply them by 255. All-zero colour (e.g. a
          cloud converted without colour) is accepted silently.
        * Non-finite values: every row with a NaN or inf in any column (xyz or rgb) is dropped
          before detection (organised sensor clouds mark missing depth with NaN); a cloud with
          no finite row gives empty :class:`Detections`.
        * Bounded work (``self.limits``, :class:`~sr3d_ros.input_limits.InputLimits`): rows
          farther than ``max_range`` (default 20 m) or outside ``crop_box`` are dropped before
          voxelisation (``self.last_crop`` counts both kinds of dropped rows); a cloud still
          over the voxel budget is refused with :class:`~sr3d_ros.input_limits.InputBudgetError`
          before the network runs.

        Args:
            points: see above.
            timed: record per-stage times (``voxelize``, ``backbone``, ``neck``, ``head``,
                ``nms``) in ``Detections.timings_ms``.

        Returns:
            :class:`Detections` in the input frame on ``self.device`` (empty if no valid point).

        Raises:
            TypeError: not a numpy array / torch tensor.
            ValueError: wrong shape; a dtype that is not real-valued (bool, complex, object,
                strings); finite colours outside [0, 255] (the message gives the observed range).
            InputBudgetError (a ValueError): too many voxels, or points too spread out.
        """
        points = self._validate(points)
        if points.shape[0] == 0:
            return Detections.empty(self.class_names, self.device)
        voxel_size = self.config.model.voxel_size
        check_voxel_budget(torch.floor(points[:, :3] / voxel_size).long(), self.limits)
        timer = StageTimer(self.device, enabled=timed)
        with timer.stage("voxelize"):
            x = points_to_sparse(
                [points], self.config.model.voxel_size, self.config.model.color_mean
            )
        outputs = self.model(x, timer)
        with timer.stage("nms"):
            det = self.model.postprocess(outputs, 1, self.config.inference)[0]
        det.timings_ms = dict(timer.ms)
        return det


#: Builds a detector from a loaded checkpoint: ``(checkpoint dict, its path, device,
#: inference overrides) -> detector``.
DetectorFactory = Callable[[dict[str, Any], Path, torch.device, Mapping[str, float]], Detector]


def _load_mono(
    ckpt: dict[str, Any], path: Path, dev: torch.device, overrides: Mapping[str, float]
) -> Detector:
    from .mono_inference import MonoDetector  # imports this module: loaded on first use

    return MonoDetector._from_loaded(ckpt, path, dev, overrides)


#: Checkpoint ``kind`` -> its factory.
_DETECTOR_KINDS: dict[str, DetectorFactory] = {
    "pointcloud": PointCloudDetector._from_loaded,
    "mono": _load_mono,
}
