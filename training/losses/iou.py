"""Box regression loss: 3D DIoU loss (thin wrapper over :func:`sr3d_ros.geometry.diou_loss`).

Source: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
Regression", AAAI 2020, lifted to 3D in :func:`sr3d_ros.geometry.diou_3d` (full 3D centre
distance over the squared diagonal of the enclosing world-axis-aligned box); TR3D (Rukhovich et
al., 2023) trains its regression with this DIoU loss (rotated IoU for yaw datasets).
"""

from __future__ import annotations

from torch import Tensor

from sr3d_ros.geometry import diou_loss

from ._common import Reduction, check_reduction

__all__ = ["box_diou_loss"]


def box_diou_loss(
    pred: Tensor,
    target: Tensor,
    rotated: bool | None = None,
    reduction: Reduction = "none",
) -> Tensor:
    """3D DIoU loss ``1 - DIoU(pred, target)`` of aligned box pairs, in ``[0, 2]``.

    Args:
        pred: ``(P, 7)`` float decoded predicted boxes of the positive locations (project box
            convention: geometric centre, full extents, metres / radians).
        target: ``(P, 7)`` float assigned GT boxes (broadcastable with ``pred``).
        rotated: ``None``: exact rotated IoU when any yaw != 0 (SUN RGB-D), axis-aligned fast
            path otherwise (ScanNet); ``True`` / ``False`` force it (see
            :func:`sr3d_ros.geometry.box_iou_3d`).
        reduction: ``"none"`` -> ``(P,)``, ``"sum"``, ``"mean"`` (0 for ``P = 0``).

    Returns:
        Loss in the dtype of ``pred``; differentiable w.r.t. all 7 parameters of ``pred``.

    Raises:
        TypeError / ValueError: invalid boxes (see :func:`sr3d_ros.geometry.box_iou_3d`), unknown
            reduction.
    """
    check_reduction(reduction)
    return diou_loss(pred, target, rotated=rotated, reduction=reduction)
