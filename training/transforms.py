"""Training augmentations for indoor 3D detection (SR3D / TR3D recipe), acting on a :class:`Sample`.

Order (as in the TR3D/mmdetection3d pipelines): point sampling -> horizontal flips -> rotation
about z -> uniform scaling -> translation -> colour normalisation. Points and boxes are always
transformed together, in our box convention ``(x, y, z, dx, dy, dz, yaw)`` (geometric centre,
yaw counter-clockwise about +z, box x-axis ``(cos yaw, sin yaw)``):

* flip x (``x -> -x``, mirror in the y-z plane): ``yaw -> pi - yaw``;
* flip y (``y -> -y``, mirror in the x-z plane): ``yaw -> -yaw``;
* rotation by ``a`` about +z: centres rotate, ``yaw -> yaw + a``. ScanNet boxes are axis-aligned
  (no yaw is learned or evaluated), so for ``axis_aligned_boxes=True`` the box becomes the
  smallest axis-aligned box enclosing the rotated one (``dx' = |cos a| dx + |sin a| dy``,
  ``dy' = |sin a| dx + |cos a| dy``, ``yaw = 0``) -- what mmdetection3d does for ScanNet and what
  TR3D/SR3D train with (+-5 degrees). Every point inside the original box stays inside the new
  one (but the box is looser by up to ``dx sin|a|``).
* scaling by ``s``: centres and sizes times ``s``;
* translation by ``t``: centres plus ``t``.

yaw is wrapped to ``[-pi, pi)`` (yaw boxes) and stays exactly 0 for axis-aligned boxes.

Colours: ``rgb / 255 - 0.5`` (== mmdetection3d ``NormalizePointsColor(color_mean=127.5)``
as TR3D uses), marked by ``Sample.color_scale = "unit_centered"``.

Randomness comes only from the generator argument (:class:`numpy.random.Generator`,
:class:`torch.Generator` or an int seed), so results are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .datasets.sample import Sample

__all__ = [
    "AppliedAugmentation",
    "AugmentationConfig",
    "IndoorAugmentation",
    "as_numpy_rng",
    "flip_points_boxes",
    "normalize_colors",
    "rotate_points_boxes",
    "sample_points",
    "scale_points_boxes",
    "translate_points_boxes",
]

GeneratorLike = np.random.Generator | torch.Generator | int | None


def as_numpy_rng(generator: GeneratorLike) -> np.random.Generator:
    """Turn a generator argument into a :class:`numpy.random.Generator`.

    Args:
        generator: a numpy Generator (used as is), a :class:`torch.Generator` (one 63-bit seed is
            drawn from it, advancing it), an ``int`` seed, or ``None`` (fresh OS entropy: not
            reproducible).

    Raises:
        TypeError: any other type.
    """
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        return np.random.default_rng(seed)
    if generator is None or isinstance(generator, (int, np.integer)):
        return np.random.default_rng(None if generator is None else int(generator))
    raise TypeError(f"unsupported generator type {type(generator).__name__}")


def _wrap(yaw: np.ndarray) -> np.ndarray:
    return (yaw + np.pi) % (2 * np.pi) - np.pi


def _check(points: np.ndarray, boxes: np.ndarray) -> None:
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, >=3), got {points.shape}")
    if boxes.ndim != 2 or boxes.shape[1] != 7:
        raise ValueError(f"boxes must be (K, 7), got {boxes.shape}")


def sample_points(
    num_points: int, ratio: float | None, rng: np.random.Generator, max_points: int | None = None
) -> np.ndarray:
    """Indices of a random subset of points, without replacement, in increasing order.

    Args:
        num_points: ``N``.
        ratio: fraction to keep in (0, 1]; ``None`` keeps all. Kept count = ``round(ratio * N)``
            (at least 1 when ``N > 0``).
        rng: numpy generator.
        max_points: optional cap on the kept count.

    Returns:
        ``int64 (M,)`` sorted indices.

    Raises:
        ValueError: ratio outside (0, 1] or max_points < 1.
    """
    if ratio is not None and not 0.0 < ratio <= 1.0:
        raise ValueError(f"point ratio must be in (0, 1], got {ratio}")
    if max_points is not None and max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    keep = num_points if ratio is None else max(1, int(round(ratio * num_points)))
    if max_points is not None:
        keep = min(keep, max_points)
    keep = min(keep, num_points)
    if keep == num_points:
        return np.arange(num_points, dtype=np.int64)
    return np.sort(rng.choice(num_points, size=keep, replace=False)).astype(np.int64)


def flip_points_boxes(
    points: np.ndarray, boxes: np.ndarray, flip_x: bool, flip_y: bool, axis_aligned: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror points and boxes: ``flip_x``: ``x -> -x``, ``yaw -> pi - yaw``; ``flip_y``:
    ``y -> -y``, ``yaw -> -yaw``.

    Args:
        points: ``(N, C >= 3)`` float, metres; returned as a modified copy.
        boxes: ``(K, 7)`` our convention; returned as a modified copy.
        flip_x, flip_y: which mirrors to apply.
        axis_aligned: boxes have no yaw (kept at 0; a mirrored axis-aligned box is itself).

    Returns:
        ``(points, boxes)`` copies, same dtypes.
    """
    _check(points, boxes)
    p, b = points.copy(), boxes.copy()
    if flip_x:
        p[:, 0] = -p[:, 0]
        b[:, 0] = -b[:, 0]
        if not axis_aligned:
            b[:, 6] = _wrap(np.pi - b[:, 6].astype(np.float64)).astype(b.dtype)
    if flip_y:
        p[:, 1] = -p[:, 1]
        b[:, 1] = -b[:, 1]
        if not axis_aligned:
            b[:, 6] = _wrap(-b[:, 6].astype(np.float64)).astype(b.dtype)
    return p, b


def rotate_points_boxes(
    points: np.ndarray, boxes: np.ndarray, angle: float, axis_aligned: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate points and boxes by ``angle`` radians counter-clockwise about +z (through 0).

    Args:
        points: ``(N, C >= 3)``; boxes: ``(K, 7)``.
        angle: radians.
        axis_aligned: boxes must stay axis-aligned: each becomes the axis-aligned box enclosing
            its rotated self (yaw stays 0); otherwise ``yaw += angle`` (wrapped to [-pi, pi)).

    Returns:
        ``(points, boxes)`` copies (computed in float64, cast back).

    Raises:
        ValueError: ``axis_aligned`` with a non-zero yaw.
    """
    _check(points, boxes)
    if axis_aligned and len(boxes) and np.any(boxes[:, 6] != 0):
        raise ValueError("axis_aligned=True but some boxes have yaw != 0")
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    p, b = points.copy(), boxes.copy()
    p[:, :2] = (points[:, :2].astype(np.float64) @ rot.T).astype(p.dtype)
    b[:, :2] = (boxes[:, :2].astype(np.float64) @ rot.T).astype(b.dtype)
    if axis_aligned:
        dx, dy = boxes[:, 3].astype(np.float64), boxes[:, 4].astype(np.float64)
        b[:, 3] = abs(c) * dx + abs(s) * dy
        b[:, 4] = abs(s) * dx + abs(c) * dy
    else:
        b[:, 6] = _wrap(boxes[:, 6].astype(np.float64) + angle).astype(b.dtype)
    return p, b


def scale_points_boxes(
    points: np.ndarray, boxes: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale coordinates, box centres and box sizes by ``factor`` (> 0) about the origin.

    Returns:
        ``(points, boxes)`` copies.

    Raises:
        ValueError: ``factor <= 0``.
    """
    _check(points, boxes)
    if factor <= 0:
        raise ValueError(f"scale factor must be > 0, got {factor}")
    p, b = points.copy(), boxes.copy()
    p[:, :3] *= factor
    b[:, :6] *= factor
    return p, b


def translate_points_boxes(
    points: np.ndarray, boxes: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Add ``offset`` (3,) metres to the coordinates and the box centres.

    Returns:
        ``(points, boxes)`` copies.
    """
    _check(points, boxes)
    t = np.asarray(offset, np.float64).reshape(3)
    p, b = points.copy(), boxes.copy()
    p[:, :3] = (p[:, :3] + t).astype(p.dtype)
    b[:, :3] = (b[:, :3] + t).astype(b.dtype)
    return p, b


def normalize_colors(sample: Sample) -> Sample:
    """Map rgb 0..255 to ``rgb / 255 - 0.5`` (in [-0.5, 0.5]); idempotent.

    Args:
        sample: a :class:`Sample` with ``color_scale == "rgb255"`` (returned unchanged when
            already ``"unit_centered"``).

    Returns:
        New :class:`Sample` with ``color_scale = "unit_centered"``.
    """
    if sample.color_scale == "unit_centered":
        return sample
    pts = sample.points.copy()
    pts[:, 3:6] = pts[:, 3:6] / 255.0 - 0.5
    return sample.replace(points=pts, color_scale="unit_centered")


@dataclass
class AugmentationConfig:
    """Parameters of :class:`IndoorAugmentation` (defaults: SR3D on ScanNet).

    Attributes:
        point_ratio: fraction of points kept by random sampling without replacement
            (SR3D: 0.66); ``None`` disables.
        max_points: optional cap on the number of points after sampling.
        flip_x_prob: probability of ``x -> -x`` (0.5).
        flip_y_prob: probability of ``y -> -y`` (0.5).
        rotation_range: max |angle| in radians of the uniform rotation about z
            (ScanNet: 5 degrees, SUN RGB-D: 30 degrees); 0 disables.
        scale_range: ``(low, high)`` of the uniform isotropic scale factor (0.6, 1.4);
            ``(1, 1)`` disables.
        translation_std: std (metres) of the gaussian translation, per axis (x, y, z); 0 default.
        axis_aligned_boxes: boxes carry no yaw (ScanNet): rotations enlarge them to the enclosing
            axis-aligned box and flips keep yaw 0.
        normalize_colors: map rgb to ``rgb / 255 - 0.5`` at the end.
    """

    point_ratio: float | None = 0.66
    max_points: int | None = None
    flip_x_prob: float = 0.5
    flip_y_prob: float = 0.5
    rotation_range: float = math.radians(5.0)
    scale_range: tuple[float, float] = (0.6, 1.4)
    translation_std: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axis_aligned_boxes: bool = True
    normalize_colors: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.translation_std, (int, float)):
            self.translation_std = (float(self.translation_std),) * 3
        std = tuple(float(v) for v in self.translation_std)
        self.translation_std = std  # type: ignore[assignment]
        self.scale_range = (float(self.scale_range[0]), float(self.scale_range[1]))
        if len(self.translation_std) != 3 or min(self.translation_std) < 0:
            raise ValueError(f"translation_std must be 3 values >= 0, got {self.translation_std}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        for name in ("flip_x_prob", "flip_y_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.rotation_range < 0:
            raise ValueError("rotation_range must be >= 0")
        if self.point_ratio is not None and not 0.0 < self.point_ratio <= 1.0:
            raise ValueError(f"point_ratio must be in (0, 1], got {self.point_ratio}")

    @classmethod
    def scannet(cls, **overrides: Any) -> AugmentationConfig:
        """SR3D ScanNet recipe: 66 % points, flips x/y at 0.5, +-5 deg, scale [0.6, 1.4],
        axis-aligned (enclosing) boxes."""
        return cls(**overrides)

    @classmethod
    def sunrgbd(cls, **overrides: Any) -> AugmentationConfig:
        """SR3D SUN RGB-D recipe: 66 % points, +-30 deg, scale [0.6, 1.4], yaw boxes.

        Only the x flip (probability 0.5): a SUN RGB-D frame is one view from a camera at the
        origin looking along +y, and ``y -> -y`` would put the camera behind the scene; the TR3D /
        mmdetection3d SUN RGB-D configs use ``flip_ratio_bev_vertical=0`` for that reason.
        """
        params: dict[str, Any] = {
            "rotation_range": math.radians(30.0),
            "flip_y_prob": 0.0,
            "axis_aligned_boxes": False,
        }
        params.update(overrides)
        return cls(**params)

    @classmethod
    def evaluation(cls, axis_aligned_boxes: bool = True) -> AugmentationConfig:
        """No augmentation, colour normalisation only (test-time input)."""
        return cls(
            point_ratio=None,
            flip_x_prob=0.0,
            flip_y_prob=0.0,
            rotation_range=0.0,
            scale_range=(1.0, 1.0),
            axis_aligned_boxes=axis_aligned_boxes,
        )


@dataclass
class AppliedAugmentation:
    """What :class:`IndoorAugmentation` did to one sample (stored in ``meta['augmentation']``).

    Attributes:
        point_indices: ``int64 (M,)`` indices of the kept input points (in output order).
        flip_x, flip_y: mirrors applied.
        angle: rotation about z, radians.
        scale: scale factor.
        translation: ``(3,)`` metres.
    """

    point_indices: np.ndarray
    flip_x: bool
    flip_y: bool
    angle: float
    scale: float
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))


class IndoorAugmentation:
    """Random training augmentation of a :class:`Sample` (callable; usable as a dataset
    ``transform``).

    Args:
        config: the parameters (:class:`AugmentationConfig`).
        generator: default randomness source when a call gets none (numpy Generator, torch
            Generator, int seed or ``None``; see :func:`as_numpy_rng`).

    Calling ``aug(sample, generator=None)`` returns a new :class:`Sample` whose points (float32
    (M, 6)) and boxes (float32 (K, 7)) are consistently transformed; labels are unchanged;
    ``meta['augmentation']`` holds the :class:`AppliedAugmentation`.

    Raises:
        ValueError: ``config.axis_aligned_boxes`` but the sample has boxes with yaw != 0.
    """

    def __init__(
        self, config: AugmentationConfig | None = None, generator: GeneratorLike = None
    ) -> None:
        self.config = config if config is not None else AugmentationConfig()
        self._rng = as_numpy_rng(generator)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        cfg = self.config
        rng = self._rng if generator is None else as_numpy_rng(generator)
        aa = cfg.axis_aligned_boxes
        if aa and sample.num_boxes and np.any(sample.gt_boxes[:, 6] != 0):
            raise ValueError(
                f"sample {sample.sample_id}: axis_aligned_boxes=True but boxes have yaw != 0"
            )
        idx = sample_points(sample.num_points, cfg.point_ratio, rng, cfg.max_points)
        pts = sample.points[idx]
        boxes = sample.gt_boxes.copy()
        fx = bool(rng.random() < cfg.flip_x_prob)
        fy = bool(rng.random() < cfg.flip_y_prob)
        pts, boxes = flip_points_boxes(pts, boxes, fx, fy, axis_aligned=aa)
        rot = cfg.rotation_range
        angle = float(rng.uniform(-rot, rot)) if rot > 0 else 0.0
        if angle:
            pts, boxes = rotate_points_boxes(pts, boxes, angle, axis_aligned=aa)
        lo, hi = cfg.scale_range
        scale = float(rng.uniform(lo, hi)) if hi > lo else lo
        if scale != 1.0:
            pts, boxes = scale_points_boxes(pts, boxes, scale)
        std = np.asarray(cfg.translation_std, np.float64)
        trans = rng.normal(0.0, 1.0, 3) * std if np.any(std > 0) else np.zeros(3)
        if np.any(trans != 0):
            pts, boxes = translate_points_boxes(pts, boxes, trans)
        meta = dict(sample.meta)
        meta["augmentation"] = AppliedAugmentation(idx, fx, fy, angle, scale, trans)
        out = sample.replace(points=pts, gt_boxes=boxes, meta=meta)
        return normalize_colors(out) if cfg.normalize_colors else out

    def config_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (for logging / checkpoints)."""
        return asdict(self.config)
