"""A2D2 depth-feature distillation loss (LeAD-M3D's asymmetric augmentation denoising
distillation; **our formulation**: the paper's exact equations are not public).

A frozen teacher sees the clean primary image, the student a MixUp-noised copy of it with the
same geometry (:mod:`.mixup_input`). At the primary image's ground-truth objects the student's
depth-branch features (``MonoHeadOutputs.depth_feat``, the input of the depth output layer) are
pulled towards the teacher's:

    L_kd = (1 / N_obj) * sum_o  q_o * mean_{a in L_o} sum_c  w_{o,c} (f_s(a, c) - f_t(a, c))^2

* ``L_o``: the locations assigned to object ``o`` (the detection loss's one-to-many
  assignment); objects without locations are skipped and not counted in ``N_obj``.
* ``q_o = exp(-|z_t,o - z_gt,o| / (tau_q * z_gt,o))`` (teacher quality): ``z_t,o`` is the mean
  over ``L_o`` of the teacher's depth ``exp(log_depth)``, ``z_gt,o`` the object's depth (the
  geometric centre's optical-frame z, metres). A teacher that gets the depth wrong teaches less.
  Switch ``use_quality=False``: ``q_o = 1``.
* ``w_{o,.} = softmax_c(mean_{a in L_o} |s(a, c)|)`` (channel importance) with ``s`` the
  *importance source*: the teacher's features themselves (``importance="magnitude"``, the
  default) or the gradient of the teacher's depth output with respect to its features
  (``importance="gradient"``, the documented alternative; the task computes it). Switch
  ``use_importance=False``: uniform ``w = 1 / C`` (same scale as the weighted sum).

Teacher quantities are detached: gradients reach the student's features only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["A2D2LossOutput", "a2d2_distill_loss", "channel_importance", "object_quality"]


@dataclass(frozen=True)
class A2D2LossOutput:
    """Result of :func:`a2d2_distill_loss`.

    Attributes:
        loss: scalar float32 tensor (0 with grad when there is no object to distil).
        num_objects: objects with at least one assigned location (the normaliser).
        mean_quality: mean ``q_o`` over those objects (1.0 when there is none).
        mean_abs_depth_error: mean ``|z_t,o - z_gt,o|`` of the teacher, metres (0 when none).
    """

    loss: Tensor
    num_objects: int
    mean_quality: float
    mean_abs_depth_error: float


def object_quality(teacher_depth: Tensor, gt_depth: Tensor, tau_q: float) -> Tensor:
    """Teacher quality ``q = exp(-|z_t - z_gt| / (tau_q * z_gt))`` per object (our formulation).

    Args:
        teacher_depth: ``float (N,)`` the teacher's depth of each object, metres.
        gt_depth: ``float (N,)`` ground-truth depth (optical-frame z), metres, > 0.
        tau_q: relative-error scale (> 0): a relative error of ``tau_q`` gives ``q = 1/e``.

    Returns:
        ``float (N,)`` in ``(0, 1]``; 1 exactly when the teacher's depth is right.

    Raises:
        ValueError: ``tau_q <= 0``, shapes differ, or a ``gt_depth <= 0``.
    """
    if tau_q <= 0:
        raise ValueError(f"tau_q must be > 0, got {tau_q}")
    if teacher_depth.shape != gt_depth.shape:
        raise ValueError(
            f"teacher_depth {tuple(teacher_depth.shape)} and gt_depth {tuple(gt_depth.shape)} "
            "must have the same shape"
        )
    if bool((gt_depth <= 0).any()):
        raise ValueError("gt_depth must be > 0 (objects in front of the camera)")
    return torch.exp(-(teacher_depth - gt_depth).abs() / (tau_q * gt_depth))


def channel_importance(source_abs_mean: Tensor) -> Tensor:
    """Channel weights ``w = softmax_c(mean |s|)`` per object (our formulation).

    Args:
        source_abs_mean: ``float (N, C)`` mean absolute importance source over each object's
            locations (teacher features, or the gradient of its depth w.r.t. them).

    Returns:
        ``float (N, C)``, each row positive and summing to 1; larger ``|s|`` -> larger weight.
    """
    return torch.softmax(source_abs_mean, dim=-1)


def _check(name: str, t: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape}")


def a2d2_distill_loss(
    student_feat: Tensor,
    teacher_feat: Tensor,
    teacher_log_depth: Tensor,
    assigned_gt: Tensor,
    gt_depth: Tensor,
    tau_q: float = 0.2,
    importance_source: Tensor | None = None,
    use_quality: bool = True,
    use_importance: bool = True,
) -> A2D2LossOutput:
    """The A2D2 depth-feature distillation loss (module docstring; our formulation).

    Args:
        student_feat: ``float32 (B, A, C)`` student ``depth_feat`` (after an adapter when the
            channel counts differ).
        teacher_feat: ``float32 (B, A, C)`` teacher ``depth_feat`` at the same locations.
        teacher_log_depth: ``float32 (B, A)`` teacher ``log_depth`` (log metres).
        assigned_gt: ``int64 (B, A)``: index in ``0..G-1`` of the primary-image object each
            location is assigned to, ``-1`` for none (background or second-image objects).
        gt_depth: ``float32 (B, G)`` object depths, metres (optical-frame z of the geometric
            centre); entries no location points to are ignored (padding may hold anything > 0).
        tau_q: quality scale (> 0). importance_source: ``float32 (B, A, C)`` for ``w`` (default:
            ``teacher_feat``, i.e. importance = feature magnitude).
        use_quality / use_importance: the ablation switches (``q = 1`` / uniform ``w``).

    Returns:
        :class:`A2D2LossOutput`; ``loss`` has a gradient w.r.t. ``student_feat`` only.

    Raises:
        ValueError: mismatched shapes, an index outside ``-1..G-1``, ``tau_q <= 0``, or a
            non-positive depth of an assigned object.
    """
    if student_feat.dim() != 3:
        raise ValueError(f"student_feat must be (B, A, C), got {tuple(student_feat.shape)}")
    b, a, c = student_feat.shape
    _check("teacher_feat", teacher_feat, (b, a, c))
    _check("teacher_log_depth", teacher_log_depth, (b, a))
    _check("assigned_gt", assigned_gt, (b, a))
    if gt_depth.dim() != 2 or gt_depth.shape[0] != b:
        raise ValueError(f"gt_depth must be (B={b}, G), got {tuple(gt_depth.shape)}")
    g = gt_depth.shape[1]
    if bool(((assigned_gt < -1) | (assigned_gt >= g)).any()):
        raise ValueError(f"assigned_gt must lie in -1..{g - 1}")
    source = teacher_feat if importance_source is None else importance_source
    _check("importance_source", source, (b, a, c))
    if tau_q <= 0:
        raise ValueError(f"tau_q must be > 0, got {tau_q}")

    pos = assigned_gt >= 0
    batch_idx = torch.arange(b, device=assigned_gt.device)[:, None].expand(b, a)
    obj = (batch_idx * g + assigned_gt)[pos]  # flat object id of each positive location
    if obj.numel() == 0:
        zero = student_feat.sum() * 0.0
        return A2D2LossOutput(zero, 0, 1.0, 0.0)
    uniq, inv = torch.unique(obj, return_inverse=True)
    n = uniq.numel()
    dtype = torch.promote_types(student_feat.dtype, torch.float32)  # half / bf16 -> float32

    count = torch.zeros(n, device=obj.device, dtype=dtype).index_add_(
        0, inv, torch.ones(obj.shape, device=obj.device, dtype=dtype)
    )

    def per_object_mean(x: Tensor) -> Tensor:  # (P, ...) per location -> (n, ...) per object
        total = x.new_zeros((n, *x.shape[1:])).index_add(0, inv, x)
        return total / count.reshape(-1, *([1] * (x.dim() - 1)))

    f_s = student_feat[pos].to(dtype)
    with torch.no_grad():
        f_t = teacher_feat[pos].to(dtype)
        z_t = per_object_mean(teacher_log_depth[pos].to(dtype).exp())
        z_gt = gt_depth.reshape(-1)[uniq].to(dtype)
        q = object_quality(z_t, z_gt, tau_q) if use_quality else torch.ones_like(z_t)
        if use_importance:
            w = channel_importance(per_object_mean(source[pos].to(dtype).abs()))
        else:
            w = torch.full((n, c), 1.0 / c, device=obj.device, dtype=dtype)
    per_loc = (w[inv] * (f_s - f_t).square()).sum(-1)
    loss = (q * per_object_mean(per_loc)).sum() / n
    return A2D2LossOutput(loss, int(n), float(q.mean()), float((z_t - z_gt).abs().mean()))
