"""Augmentations of monocular samples (image + camera + KITTI objects), geometry kept exact.

Every transform takes and returns a :class:`~sr3d_training.datasets.Sample` built by
:func:`~sr3d_training.datasets.kitti.kitti_sample` (``image``, ``camera`` and
``meta["kitti"]`` set) and rebuilds it with that function, so ``gt_boxes`` / ``gt_labels``
always follow the objects. Pixel conventions are those of :mod:`sr3d_ros.geometry.camera`
(pixel centres at integer coordinates).

* :func:`letterbox`: resize keeping the aspect ratio to a fixed canvas (default 1280 x 384, the
  LeAD-M3D input), pad; the camera is letterboxed, 2D boxes are mapped, 3D boxes are unchanged.
* :func:`hflip`: mirror the image; the camera becomes :meth:`PinholeCamera.flipped`, objects get
  ``x -> -x``, ``ry -> pi - ry``, ``alpha -> pi - alpha`` and mirrored 2D boxes.
* :func:`photometric_jitter`: brightness, contrast, saturation and hue jitter (geometry kept).
* :func:`mixup`: blend two images, ``lambda * a + (1 - lambda) * b``; both label sets are kept,
  weighted ``lambda`` and ``1 - lambda`` (``KittiObjects.weight``). Image ``b`` is first warped
  into ``a``'s camera (``K_a K_b^-1``, exact up to the sub-millimetre baseline difference), so one
  camera serves all objects. Source of MixUp: Zhang et al., "mixup: Beyond Empirical Risk
  Minimization", ICLR 2018; ``lambda ~ Beta(32, 32)`` as YOLO detectors use it.

Errors: ``ValueError`` for samples without image / camera / KITTI objects, or bad parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sr3d_ros.geometry.boxes import limit_yaw
from sr3d_ros.geometry.camera import PinholeCamera

from .datasets.kitti import KittiObjects, kitti_sample
from .datasets.sample import Sample

__all__ = [
    "MonoAugmentation",
    "gt_weights",
    "hflip",
    "letterbox",
    "map_image_boxes",
    "mixup",
    "photometric_jitter",
    "sample_mixup_lambda",
]

_UNKNOWN_ANGLE = -10.0  # KITTI's "no alpha / ry" marker (DontCare, detections without angle)


def _parts(sample: Sample) -> tuple[np.ndarray, PinholeCamera, KittiObjects]:
    objs = sample.meta.get("kitti")
    if sample.image is None or sample.camera is None or not isinstance(objs, KittiObjects):
        raise ValueError(
            f"sample {sample.sample_id!r} is not a monocular KITTI sample "
            "(needs image, camera and meta['kitti'])"
        )
    return sample.image, sample.camera, objs


def _rebuild(
    sample: Sample, image: np.ndarray, camera: PinholeCamera, objs: KittiObjects, tag: str
) -> Sample:
    meta = {k: v for k, v in sample.meta.items() if k != "kitti"}
    meta["augmentation"] = [*meta.get("augmentation", []), tag]
    return kitti_sample(sample.sample_id, image, camera, objs, meta)


def gt_weights(sample: Sample) -> np.ndarray:
    """``float32 (K,)`` weights of ``sample.gt_boxes`` (1, or the MixUp factors)."""
    _, _, objs = _parts(sample)
    return objs.subset(objs.cared).weight.astype(np.float32)


def map_image_boxes(bbox: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map ``(K, 4)`` ``x1, y1, x2, y2`` pixel boxes by a ``(3, 3)`` scale + translation map."""
    A = np.asarray(affine, dtype=np.float64)
    out = np.empty_like(bbox, dtype=np.float64)
    out[:, 0::2] = bbox[:, 0::2] * A[0, 0] + A[0, 2]
    out[:, 1::2] = bbox[:, 1::2] * A[1, 1] + A[1, 2]
    return out


def _to_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _to_hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy().copy()


def letterbox(
    sample: Sample, width: int = 1280, height: int = 384, center: bool = True, pad_value: int = 114
) -> Sample:
    """Resize (aspect kept, bilinear, antialiased when shrinking) and pad to ``width x height``.

    Args:
        sample: monocular KITTI sample. width, height: canvas size, pixels.
        center: centre the image (else top-left). pad_value: grey level of the padding.

    Returns:
        New sample: ``uint8 (height, width, 3)`` image, letterboxed camera, mapped 2D boxes.

    Raises:
        ValueError: not a monocular sample; non-positive size.
    """
    image, camera, objs = _parts(sample)
    box = camera.letterbox(width, height, center)
    resized = F.interpolate(
        _to_chw(image),
        size=(box.new_height, box.new_width),
        mode="bilinear",
        align_corners=False,
        antialias=box.scale_x < 1 or box.scale_y < 1,
    )
    canvas = np.full((height, width, 3), pad_value, np.uint8)
    canvas[
        box.pad_top : box.pad_top + box.new_height, box.pad_left : box.pad_left + box.new_width
    ] = _to_hwc(resized)
    objs = objs.replace(bbox=map_image_boxes(objs.bbox, box.affine()))
    return _rebuild(sample, canvas, camera.letterboxed(box), objs, f"letterbox{width}x{height}")


def _mirror_angle(a: np.ndarray) -> np.ndarray:
    out = limit_yaw(torch.from_numpy(math.pi - a)).numpy()
    return np.where(a == _UNKNOWN_ANGLE, a, out)


def hflip(sample: Sample) -> Sample:
    """Mirror the image left-right with exact geometry (see the module docstring).

    Raises:
        ValueError: not a monocular sample.
    """
    image, camera, objs = _parts(sample)
    w = camera.width
    cared = objs.cared
    loc = objs.location.copy()
    loc[cared, 0] = -loc[cared, 0]
    bbox = objs.bbox.copy()
    bbox[:, 0], bbox[:, 2] = w - 1 - objs.bbox[:, 2], w - 1 - objs.bbox[:, 0]
    objs = objs.replace(
        location=loc,
        bbox=bbox,
        rotation_y=np.where(cared, _mirror_angle(objs.rotation_y), objs.rotation_y),
        alpha=_mirror_angle(objs.alpha),
    )
    return _rebuild(sample, image[:, ::-1].copy(), camera.flipped(), objs, "hflip")


def photometric_jitter(
    sample: Sample,
    rng: np.random.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.7,
    hue: float = 0.015,
) -> Sample:
    """Random brightness, contrast, saturation and hue (our formulation; geometry unchanged).

    In order, with factors drawn uniformly: ``x *= U(1 +- brightness)``; ``x = m + (x - m) *
    U(1 +- contrast)`` (``m`` the mean grey level); ``x = g + (x - g) * U(1 +- saturation)``
    (``g`` the pixel's luma, BT.601); hue: the chroma is rotated by ``U(+- hue)`` turns in YIQ
    space. Values are clipped to 0..255. Grey pixels keep their colour under saturation / hue.

    Args:
        sample: monocular KITTI sample. rng: random generator.
        brightness, contrast, saturation: relative ranges (>= 0). hue: range in turns (>= 0).

    Raises:
        ValueError: not a monocular sample, or a negative range.
    """
    image, camera, objs = _parts(sample)
    if min(brightness, contrast, saturation, hue) < 0:
        raise ValueError("photometric jitter ranges must be >= 0")
    x = image.astype(np.float64)
    x *= rng.uniform(1 - brightness, 1 + brightness)
    x = x.mean() + (x - x.mean()) * rng.uniform(1 - contrast, 1 + contrast)
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    q = x @ yiq.T
    q[..., 1:] *= rng.uniform(1 - saturation, 1 + saturation)
    t = 2 * math.pi * rng.uniform(-hue, hue)
    c, s = math.cos(t), math.sin(t)
    q[..., 1], q[..., 2] = c * q[..., 1] - s * q[..., 2], s * q[..., 1] + c * q[..., 2]
    x = q @ np.linalg.inv(yiq).T
    out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return _rebuild(sample, out, camera, objs, "photometric")


def sample_mixup_lambda(rng: np.random.Generator, alpha: float = 32.0) -> float:
    """Blend factor ``lambda ~ Beta(alpha, alpha)`` (YOLO's MixUp uses alpha = 32).

    Raises:
        ValueError: ``alpha <= 0``.
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    return float(rng.beta(alpha, alpha))


def _warp_into(
    image: np.ndarray, affine: np.ndarray, width: int, height: int, fill: int = 114
) -> np.ndarray:
    """Warp by a scale + translation pixel map (bilinear; outside -> ``fill``)."""
    inv = np.linalg.inv(affine)
    u = torch.arange(width, dtype=torch.float64) * inv[0, 0] + inv[0, 2]
    v = torch.arange(height, dtype=torch.float64) * inv[1, 1] + inv[1, 2]
    h_in, w_in = image.shape[:2]
    gx = ((2 * u + 1) / w_in - 1).float()
    gy = ((2 * v + 1) / h_in - 1).float()
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(_to_chw(image) - fill, grid, mode="bilinear", align_corners=False)
    return _to_hwc(out + fill)


def mixup(a: Sample, b: Sample, lam: float) -> Sample:
    """MixUp of two monocular samples of the same image size (module docstring).

    Args:
        a, b: monocular KITTI samples, same image size (letterbox them first).
        lam: weight of ``a`` in ``[0, 1]`` (:func:`sample_mixup_lambda`).

    Returns:
        Sample with ``a``'s id and camera, the blended image and both object lists (``a``'s
        first), weights multiplied by ``lam`` / ``1 - lam``; ``b``'s 2D boxes mapped into ``a``'s
        image.

    Raises:
        ValueError: not monocular samples, different image sizes, ``lam`` outside [0, 1], or a
            camera with skew.
    """
    img_a, cam_a, objs_a = _parts(a)
    img_b, cam_b, objs_b = _parts(b)
    if img_a.shape != img_b.shape:
        raise ValueError(f"mixup needs equal image sizes, got {img_a.shape} and {img_b.shape}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"mixup lambda must lie in [0, 1], got {lam}")
    if cam_a.P[0, 1] or cam_b.P[0, 1]:
        raise ValueError("mixup supports cameras without skew only")
    if not np.allclose(cam_a.P[:, :3], cam_b.P[:, :3], rtol=0, atol=1e-9):
        affine = cam_a.K @ np.linalg.inv(cam_b.K)
        img_b = _warp_into(img_b, affine, cam_a.width, cam_a.height)
        objs_b = objs_b.replace(bbox=map_image_boxes(objs_b.bbox, affine))
    blend = lam * img_a.astype(np.float64) + (1 - lam) * img_b.astype(np.float64)
    image = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    objs = KittiObjects.concat(
        [
            objs_a.replace(weight=objs_a.weight * lam),
            objs_b.replace(weight=objs_b.weight * (1 - lam)),
        ]
    )
    out = _rebuild(a, image, cam_a, objs, f"mixup({b.sample_id},{lam:.3f})")
    return out


@dataclass
class MonoAugmentation:
    """The monocular training pipeline: [MixUp] -> letterbox -> [flip] -> [photometric].

    Attributes:
        width, height: letterbox canvas. flip_prob: probability of :func:`hflip`.
        jitter: apply :func:`photometric_jitter` (default ranges).
        mixup_prob: probability of MixUp with the ``partner`` passed to ``__call__``.
        mixup_alpha: Beta parameter of the MixUp factor.
    """

    width: int = 1280
    height: int = 384
    flip_prob: float = 0.5
    jitter: bool = True
    mixup_prob: float = 0.0
    mixup_alpha: float = 32.0

    def __call__(
        self, sample: Sample, rng: np.random.Generator, partner: Sample | None = None
    ) -> Sample:
        """Augment one sample (``partner``: a second sample for MixUp, or None)."""
        out = letterbox(sample, self.width, self.height)
        if partner is not None and rng.random() < self.mixup_prob:
            lam = sample_mixup_lambda(rng, self.mixup_alpha)
            out = mixup(out, letterbox(partner, self.width, self.height), lam)
        if rng.random() < self.flip_prob:
            out = hflip(out)
        if self.jitter:
            out = photometric_jitter(out, rng)
        return out
