"""IoU and GIoU of axis-aligned image boxes, and the GIoU loss (torch, differentiable).

Boxes are ``(..., 4) = (x1, y1, x2, y2)`` in pixels with ``x2 >= x1``, ``y2 >= y1``; areas are
``(x2 - x1) (y2 - y1)`` (continuous coordinates, as the box regression of YOLO detectors uses
them). GIoU: Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019:
``IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest enclosing box; loss ``1 - GIoU`` in
``[0, 2]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import Reduction, reduce_loss

__all__ = ["image_box_giou", "image_box_giou_loss", "image_box_iou"]

_EPS = 1e-9


def _check(a: Tensor, b: Tensor) -> None:
    for name, t in (("boxes1", a), ("boxes2", b)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor")
        if t.shape[-1:] != (4,):
            raise ValueError(f"{name} must be (..., 4) x1, y1, x2, y2, got {tuple(t.shape)}")


def _parts(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Broadcast pairs: (intersection, union, enclosing area, iou)."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).prod(-1)
    return inter, union, hull, inter / (union + _EPS)


def image_box_iou(boxes1: Tensor, boxes2: Tensor, aligned: bool = False) -> Tensor:
    """IoU of image boxes.

    Args:
        boxes1: ``(N, 4)`` (pairwise) or ``(..., 4)`` (aligned) pixels, float.
        boxes2: ``(M, 4)`` (pairwise) or broadcastable with ``boxes1`` (aligned).
        aligned: element-wise instead of all pairs.

    Returns:
        ``(N, M)`` or the broadcast shape, in ``[0, 1]`` (``1e-9`` added to the union, so
        degenerate boxes give 0); differentiable.

    Raises:
        TypeError / ValueError: non-floating tensors, last dimension not 4.
    """
    _check(boxes1, boxes2)
    if not aligned:
        boxes1, boxes2 = boxes1[:, None, :], boxes2[None, :, :]
    return _parts(boxes1, boxes2)[3]


def image_box_giou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """GIoU of broadcastable image box pairs ``(..., 4)``, in ``[-1, 1]`` (Rezatofighi et al.
    2019). Raises as :func:`image_box_iou`."""
    _check(boxes1, boxes2)
    _, union, hull, iou = _parts(boxes1, boxes2)
    return iou - (hull - union) / (hull + _EPS)


def image_box_giou_loss(pred: Tensor, target: Tensor, reduction: Reduction = "none") -> Tensor:
    """``1 - GIoU(pred, target)`` of aligned ``(..., 4)`` pixel boxes, in ``[0, 2]``.

    Args:
        pred, target: broadcastable ``(..., 4)`` float boxes.
        reduction: ``"none"``, ``"sum"`` or ``"mean"`` (0 for empty input).

    Raises:
        TypeError / ValueError: bad boxes (see :func:`image_box_iou`), unknown reduction.
    """
    return reduce_loss(1.0 - image_box_giou(pred, target), reduction)
