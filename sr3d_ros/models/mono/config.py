"""Configuration of the monocular detector (LeAD-M3D on a YOLOv10-style network).

Frozen dataclasses loadable with :func:`sr3d_ros.config.from_dict` and written with
:func:`sr3d_ros.config.to_dict`; a ``kind="mono"`` checkpoint stores a :class:`MonoDetectorConfig`.

Sizes n / s / m / b / x use YOLOv10's compound scaling (Wang et al., "YOLOv10: Real-Time End-to-End
Object Detection", NeurIPS 2024, Sec. 4 / the released model configs): a depth multiplier on the
number of blocks per stage, a width multiplier on the channels, a cap on the channels, and where the
compact inverted blocks (CIB, Sec. 3.2) replace the C2f blocks.
"""

from __future__ import annotations

import dataclasses
import math

from ...config import ConfigError

__all__ = [
    "KITTI_MEAN_SIZES",
    "MONO_CLASSES",
    "MONO_SIZES",
    "MonoDetectorConfig",
    "MonoInferenceConfig",
    "MonoModelConfig",
    "SizeSpec",
]

#: Detected KITTI classes, label order of the monocular detector.
MONO_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")

#: Mean object size (l, h, w) in metres of each class of :data:`MONO_CLASSES` on the KITTI training
#: set (the class means monocular detectors such as GUPNet / MonoFlex use, rounded to 1 mm).
KITTI_MEAN_SIZES: tuple[tuple[float, float, float], ...] = (
    (3.883, 1.526, 1.629),
    (0.844, 1.763, 0.661),
    (1.763, 1.737, 0.597),
)


@dataclasses.dataclass(frozen=True)
class SizeSpec:
    """One YOLOv10 model size.

    Attributes:
        depth: multiplier on the number of blocks of each C2f / C2fCIB stage.
        width: multiplier on the channels.
        max_channels: cap on any layer's channels before the width multiplier.
        cib: block kind at the six places where YOLOv10 sizes differ, in the order (backbone
            P4 stage, backbone P5 stage, neck top-down P4, neck P3 output, neck P4 output, neck
            P5 output): ``"c2f"``, ``"cib"`` (C2fCIB) or ``"cib_lk"`` (C2fCIB with the large
            7x7 depth-wise kernel).
    """

    depth: float
    width: float
    max_channels: int
    cib: tuple[str, str, str, str, str, str]


#: YOLOv10's sizes (the released ``yolov10{n,s,m,b,x}`` configs); ``l`` is not part of LeAD-M3D.
MONO_SIZES: dict[str, SizeSpec] = {
    "n": SizeSpec(0.33, 0.25, 1024, ("c2f", "c2f", "c2f", "c2f", "c2f", "cib_lk")),
    "s": SizeSpec(0.33, 0.50, 1024, ("c2f", "cib_lk", "c2f", "c2f", "c2f", "cib_lk")),
    "m": SizeSpec(0.67, 0.75, 768, ("c2f", "cib", "c2f", "c2f", "cib", "cib")),
    "b": SizeSpec(0.67, 1.00, 512, ("c2f", "cib", "cib", "c2f", "cib", "cib")),
    "x": SizeSpec(1.00, 1.25, 512, ("cib", "cib", "cib", "c2f", "cib", "cib")),
}


@dataclasses.dataclass(frozen=True)
class MonoModelConfig:
    """Architecture of the monocular detector.

    Attributes:
        size: ``"n"``, ``"s"``, ``"m"``, ``"b"`` or ``"x"`` (:data:`MONO_SIZES`).
        class_names: detected classes, index = label (default Car, Pedestrian, Cyclist).
        input_size: ``(H, W)`` letterbox target of the network input, pixels (LeAD-M3D:
            384 x 1280); both multiples of the largest stride.
        mean_sizes: per class ``(l, h, w)`` metres; the dimension branch predicts
            ``log(dims / mean_size[class])``.
        strides: output strides of the three levels (8, 16, 32; the only supported value).
        reg_max: bins of the 2D box's distance distribution (YOLOv8 / YOLOv10 DFL: 16), so a
            box edge lies at most ``reg_max - 1`` strides from the anchor point.
        width: channel multiplier overriding the size's (0 = the size's YOLOv10 value).
        depth_feat_scale: channels of the 3D branches relative to YOLOv10's box-branch width
            (``max(16, C_P3 / 4, 4 reg_max)``); ``Cd`` of ``depth_feat`` is that product.
        detach_one2one: the one-to-one head sees detached features during training (YOLOv10's
            released code: the one-to-many head alone shapes the backbone).
        depth_prior_m: initial depth (metres) of the depth branch's bias.
    """

    size: str = "n"
    class_names: tuple[str, ...] = MONO_CLASSES
    input_size: tuple[int, int] = (384, 1280)
    mean_sizes: tuple[tuple[float, float, float], ...] = KITTI_MEAN_SIZES
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 16
    width: float = 0.0
    depth_feat_scale: float = 1.5
    detach_one2one: bool = True
    depth_prior_m: float = 20.0

    def __post_init__(self) -> None:
        if self.size not in MONO_SIZES:
            raise ConfigError(f"model.size must be one of {sorted(MONO_SIZES)}, got {self.size!r}")
        if len(self.class_names) == 0:
            raise ConfigError("model.class_names must not be empty")
        if len(self.mean_sizes) != len(self.class_names):
            raise ConfigError(
                f"model.mean_sizes has {len(self.mean_sizes)} entries for "
                f"{len(self.class_names)} classes"
            )
        if any(not (math.isfinite(v) and v > 0) for size in self.mean_sizes for v in size):
            raise ConfigError("model.mean_sizes must be finite and > 0 (metres)")
        if tuple(self.strides) != (8, 16, 32):
            raise ConfigError(f"model.strides must be (8, 16, 32), got {self.strides}")
        h, w = self.input_size
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ConfigError(f"model.input_size must be positive multiples of 32, got {(h, w)}")
        if self.reg_max < 1:
            raise ConfigError(f"model.reg_max must be >= 1, got {self.reg_max}")
        if not (self.width == 0.0 or 0.0 < self.width <= 2.0):
            raise ConfigError(
                f"model.width must be 0 (size default) or in (0, 2], got {self.width}"
            )
        if not 0.0 < self.depth_feat_scale <= 8.0:
            raise ConfigError(
                f"model.depth_feat_scale must be in (0, 8], got {self.depth_feat_scale}"
            )
        if not (math.isfinite(self.depth_prior_m) and self.depth_prior_m > 0):
            raise ConfigError(f"model.depth_prior_m must be > 0, got {self.depth_prior_m}")

    @property
    def num_classes(self) -> int:
        """C = ``len(class_names)``."""
        return len(self.class_names)

    @property
    def spec(self) -> SizeSpec:
        """The :class:`SizeSpec` of ``size`` with ``width`` applied."""
        spec = MONO_SIZES[self.size]
        return dataclasses.replace(spec, width=self.width) if self.width else spec


@dataclasses.dataclass(frozen=True)
class MonoInferenceConfig:
    """Post-processing of the monocular detector (one-to-one head, no NMS: YOLOv10 Sec. 3.1).

    Attributes:
        score_threshold: drop detections whose class score is below this.
        max_detections: cap on detections per image (the candidates are the ``gate_topk``
            locations, so at most ``min(max_detections, gate_topk)`` come out).
        gate_topk: the ``K`` most confident locations (by max class score) are the candidates;
            CGI3D runs the 3D branches on their 3x3 feature patches only (LeAD-M3D: K = 50).
        gated: run the 3D branches on the candidates' patches (CGI3D) instead of the full maps
            (same outputs, less work).
    """

    score_threshold: float = 0.25
    max_detections: int = 50
    gate_topk: int = 50
    gated: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError("inference.score_threshold must be in [0, 1]")
        if self.gate_topk < 1:
            raise ConfigError("inference.gate_topk must be >= 1")
        if self.max_detections < 1:
            raise ConfigError(f"inference.max_detections must be >= 1, got {self.max_detections}")


@dataclasses.dataclass(frozen=True)
class MonoDetectorConfig:
    """A monocular model plus its default post-processing: what a ``kind="mono"`` checkpoint
    carries."""

    model: MonoModelConfig = dataclasses.field(default_factory=MonoModelConfig)
    inference: MonoInferenceConfig = dataclasses.field(default_factory=MonoInferenceConfig)
