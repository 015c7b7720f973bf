"""CGI3D: confidence-gated 3D inference (LeAD-M3D, Meier et al., arXiv 2512.05663).

The class and 2D box branches run on the full feature maps; the ``K`` locations with the highest
class score (max over classes, after the sigmoid) are selected, and the 3D branches run only on
the ``3 x 3`` feature patch around each selected location. The 3D branches' only spatial op is a
3x3 convolution (:class:`~.head.Head3D`), so a location's 3D outputs depend on exactly that
patch (zero-padded at the map border, as the full-map convolution pads): the gated outputs equal
the full-map outputs at those locations. One class per location (its best; our formulation of
YOLOv10's top-k selection, Sec. 3.1 / its released post-processing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...timing import StageTimer
from .head import DetectionHead, Head3D, MonoHeadOutputs, assemble_outputs, flatten_levels

__all__ = ["GatedOutputs", "gated_3d", "head_topk", "select_topk"]


@dataclass
class GatedOutputs:
    """The ``K`` most confident locations of each image with every head output there.

    Attributes:
        head: :class:`MonoHeadOutputs` ``(B, K, ...)``.
        index: ``(B, K)`` int64 location indices into the ``A`` locations, by descending score.
        scores: ``(B, K)`` float32 sigmoid class score of ``labels``.
        labels: ``(B, K)`` int64 best class of each location.
    """

    head: MonoHeadOutputs
    index: Tensor
    scores: Tensor
    labels: Tensor


def select_topk(cls_logits: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``min(k, A)`` locations with the highest max-class sigmoid score.

    Args:
        cls_logits: ``(B, A, C)`` class logits. k: number of locations (>= 1).

    Returns:
        ``(index (B, K), scores (B, K), labels (B, K))``, descending scores.
    """
    scores, labels = cls_logits.sigmoid().max(dim=-1)
    top, index = scores.topk(min(k, scores.shape[1]), dim=1)
    return index, top, torch.gather(labels, 1, index)


def gated_3d(head: DetectionHead, feats: list[Tensor], index: Tensor) -> dict[str, Tensor]:
    """The 3D branches of ``head`` at ``index`` locations only, from 3x3 feature patches.

    Args:
        head: a :class:`~.head.DetectionHead` (eval mode: batch-norm uses running statistics).
        feats: neck maps ``(B, c_l, H_l, W_l)`` per level.
        index: ``(B, K)`` int64 location indices (levels concatenated, row-major).

    Returns:
        ``center`` ``(B, K, 2)``, ``depth`` ``(B, K, 2)``, ``dims`` ``(B, K, 3)``, ``orient``
        ``(B, K, 2)``, ``depth_feat`` ``(B, K, Cd)``: equal to the full-map outputs
        (:meth:`~.head.DetectionHead.forward_3d`) at those locations.

    Raises:
        ValueError: an index outside ``[0, A)``.
    """
    b, k = index.shape
    sizes = [f.shape[2] * f.shape[3] for f in feats]
    total = sum(sizes)
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= total):
        raise ValueError(f"location index out of range [0, {total})")
    flat = index.reshape(-1)
    batch = torch.arange(b, device=index.device).repeat_interleave(k)
    out: dict[str, Tensor] = {}
    offset = 0
    ar = torch.arange(3, device=index.device)
    for level, (f, m) in enumerate(zip(feats, head.head3d)):
        assert isinstance(m, Head3D)
        width = f.shape[3]
        sel = ((flat >= offset) & (flat < offset + sizes[level])).nonzero().squeeze(1)
        offset += sizes[level]
        if sel.numel() == 0:
            continue
        local = flat[sel] - (offset - sizes[level])
        rows, cols = local // width, local % width  # top-left of the 3x3 patch in padded coords
        padded = F.pad(f, (1, 1, 1, 1))
        r = (rows[:, None] + ar)[:, :, None]
        c = (cols[:, None] + ar)[:, None, :]
        patches = padded[batch[sel][:, None, None], :, r, c].permute(0, 3, 1, 2)
        res = m.branches(m.stem_patches(patches))
        for key, val in res.items():
            if key not in out:
                out[key] = val.new_zeros(b * k, val.shape[1])
            out[key][sel] = val.flatten(1)
    return {key: val.view(b, k, -1) for key, val in out.items()}


def _gather(t: Tensor, index: Tensor) -> Tensor:
    """``(B, A, ch)`` -> ``(B, K, ch)`` at ``index`` ``(B, K)``."""
    return torch.gather(t, 1, index[..., None].expand(-1, -1, t.shape[2]))


def head_topk(
    head: DetectionHead,
    feats: list[Tensor],
    strides: Tensor,
    k: int,
    gated: bool = True,
    timer: StageTimer | None = None,
) -> GatedOutputs:
    """CGI3D: 2D branches on the full maps, top-``k`` selection, 3D branches on the selected
    locations' patches (``gated``) or, as the reference, on the full maps (``gated=False``,
    ``MonoInferenceConfig.gated = False``; same outputs).

    Args:
        head: the head to run (inference uses the one-to-one head). feats: neck maps per level.
        strides: ``(A,)`` float stride of each location. k: candidates per image.
        gated: run the 3D branches on patches only. timer: records ``head_2d`` and ``head_3d``.

    Returns:
        :class:`GatedOutputs` (``K = min(k, A)``).
    """
    timer = timer or StageTimer(enabled=False)
    with timer.stage("head_2d"):
        cls_maps, box_maps = head.forward_2d(feats)
        cls_logits, box_dist = flatten_levels(cls_maps), flatten_levels(box_maps)
        index, scores, labels = select_topk(cls_logits, k)
    with timer.stage("head_3d"):
        if gated:
            out3d = gated_3d(head, feats, index)
        else:
            maps3d = head.forward_3d(feats)
            out3d = {
                key: _gather(flatten_levels([m[key] for m in maps3d]), index) for key in maps3d[0]
            }
    out = assemble_outputs(
        _gather(cls_logits, index), _gather(box_dist, index), out3d, strides[index]
    )
    return GatedOutputs(out, index, scores, labels)
