"""Assigner protocol shared by the label assigners of sr3d_training.

An assigner decides, for ONE scene, which ground-truth box (if any) each head output location
is trained to predict. Inputs are the per-scene tensors the detector head produces, concatenated
over its output levels:

* ``locations``: ``(L, 3)`` float, metres (voxel coordinate * voxel size of each output voxel);
* ``levels``: ``(L,)`` int64, the head output level of each location (0 = finest);
* ``gt_boxes``: ``(K, 7)`` float ``(x, y, z, dx, dy, dz, yaw)`` (box convention of
  :mod:`sr3d_ros.geometry.boxes`: geometric centre, full extents, metres / radians, z up);
* ``gt_labels``: ``(K,)`` int64 class indices in ``[0, C)``;
* ``pred_boxes``: ``(L, 7)`` float decoded predicted boxes (needed by prediction-aware
  assigners such as SPOTA; ignored by TR3D); always used detached.

The output is an :class:`AssignResult` whose ``gt_index`` is ``(L,)`` int64, ``-1`` for
background. :meth:`Assigner.assign_batch` assigns several scenes at once (SPOTA solves them in one
transport problem).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AssignResult", "Assigner", "SceneInputs", "check_assign_inputs"]


@dataclass(frozen=True)
class AssignResult:
    """Result of assigning one scene's locations to its ground-truth boxes.

    Attributes:
        gt_index: ``(L,)`` int64: index into the scene's ``gt_boxes`` / ``gt_labels`` of the box
            each location is assigned to, ``-1`` for background.
        num_gts: ``K``, the number of ground-truth boxes of the scene.
        cost: optional debugging matrix ``(L, K)`` float (the assigner's matching cost / centre
            distance, ``inf`` where a pair was not a candidate); ``None`` when not kept.
        plan: optional ``(L, K)`` float transport plan (SPOTA with optimal transport: the mass
            each GT sends to each location; ``0`` for non-candidates); ``None`` otherwise.
    """

    gt_index: Tensor
    num_gts: int
    cost: Tensor | None = None
    plan: Tensor | None = None

    @property
    def pos_mask(self) -> Tensor:
        """``(L,)`` bool: locations assigned to a ground-truth box."""
        return self.gt_index >= 0

    @property
    def num_pos(self) -> int:
        """Number of positive locations (one host sync on CUDA)."""
        return int(self.pos_mask.sum())

    def labels(self, gt_labels: Tensor) -> Tensor:
        """Per-location class target, ``-1`` for background.

        Args:
            gt_labels: ``(K,)`` int64 labels of the scene the result belongs to.

        Returns:
            ``(L,)`` int64: ``gt_labels[gt_index]`` for positives, ``-1`` for background.

        Raises:
            ValueError: ``gt_labels`` does not have ``num_gts`` entries.
        """
        if gt_labels.dim() != 1 or gt_labels.shape[0] != self.num_gts:
            raise ValueError(
                f"gt_labels must have shape ({self.num_gts},), got {tuple(gt_labels.shape)}"
            )
        if self.num_gts == 0:
            return torch.full_like(self.gt_index, -1)
        safe = self.gt_index.clamp_min(0)
        return torch.where(self.pos_mask, gt_labels[safe], torch.full_like(self.gt_index, -1))

    def counts(self) -> Tensor:
        """``(K,)`` int64: number of positives of each ground-truth box."""
        pos = self.gt_index[self.pos_mask]
        return torch.bincount(pos, minlength=self.num_gts)


def check_assign_inputs(
    locations: Tensor,
    levels: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None,
    num_classes: int,
) -> None:
    """Validate the per-scene assigner inputs (shapes, dtypes, devices, label range).

    Args:
        locations: ``(L, 3)`` floating, metres.
        levels: ``(L,)`` int64.
        gt_boxes: ``(K, 7)`` floating (same dtype family as ``locations`` not required).
        gt_labels: ``(K,)`` int64, values in ``[0, num_classes)``.
        pred_boxes: ``None`` or ``(L, 7)`` floating.
        num_classes: length of the assigner's ``label2level`` table.

    Raises:
        TypeError: a non-tensor, a non-floating location / box tensor, non-int64 levels / labels.
        ValueError: wrong shapes, tensors on different devices, labels outside
            ``[0, num_classes)`` (one host sync), negative levels.
    """
    for name, t in (
        ("locations", locations),
        ("levels", levels),
        ("gt_boxes", gt_boxes),
        ("gt_labels", gt_labels),
    ):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not locations.is_floating_point():
        raise TypeError(f"locations must be floating, got {locations.dtype}")
    if not gt_boxes.is_floating_point():
        raise TypeError(f"gt_boxes must be floating, got {gt_boxes.dtype}")
    if levels.dtype != torch.int64:
        raise TypeError(f"levels must be int64, got {levels.dtype}")
    if gt_labels.dtype != torch.int64:
        raise TypeError(f"gt_labels must be int64, got {gt_labels.dtype}")
    if locations.dim() != 2 or locations.shape[1] != 3:
        raise ValueError(f"locations must have shape (L, 3), got {tuple(locations.shape)}")
    n = locations.shape[0]
    if levels.shape != (n,):
        raise ValueError(f"levels must have shape ({n},), got {tuple(levels.shape)}")
    if gt_boxes.dim() != 2 or gt_boxes.shape[1] != 7:
        raise ValueError(f"gt_boxes must have shape (K, 7), got {tuple(gt_boxes.shape)}")
    k = gt_boxes.shape[0]
    if gt_labels.shape != (k,):
        raise ValueError(f"gt_labels must have shape ({k},), got {tuple(gt_labels.shape)}")
    devices = {locations.device, levels.device, gt_boxes.device, gt_labels.device}
    if pred_boxes is not None:
        if not isinstance(pred_boxes, Tensor) or not pred_boxes.is_floating_point():
            raise TypeError("pred_boxes must be a floating torch.Tensor")
        if pred_boxes.shape != (n, 7):
            raise ValueError(f"pred_boxes must have shape ({n}, 7), got {tuple(pred_boxes.shape)}")
        devices.add(pred_boxes.device)
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(map(str, devices))}")
    if k and bool(((gt_labels < 0) | (gt_labels >= num_classes)).any()):
        raise ValueError(
            f"gt_labels must lie in [0, {num_classes}) (the length of label2level), got "
            f"min {int(gt_labels.min())}, max {int(gt_labels.max())}"
        )
    if n and bool((levels < 0).any()):
        raise ValueError("levels must be >= 0")


@dataclass(frozen=True)
class SceneInputs:
    """The per-scene inputs of an assigner (shapes and units: module docstring).

    Attributes:
        locations: ``(L, 3)`` float, metres.
        levels: ``(L,)`` int64 head output level per location (0 = finest).
        gt_boxes: ``(K, 7)`` float boxes (project box convention).
        gt_labels: ``(K,)`` int64 class indices.
        pred_boxes: ``(L, 7)`` float decoded predicted boxes (used detached) or ``None``.
        cls_logits: ``(L, C)`` float classification logits (used detached) or ``None``.
    """

    locations: Tensor
    levels: Tensor
    gt_boxes: Tensor
    gt_labels: Tensor
    pred_boxes: Tensor | None = None
    cls_logits: Tensor | None = None


class Assigner(abc.ABC):
    """Label assigner (abstract base): one public signature, validated once, for every kind.

    :meth:`assign` (one scene) and :meth:`assign_batch` (``B`` scenes) check their inputs with
    :func:`check_assign_inputs` (plus the subclass's :meth:`_check_scene`) and hand the scenes
    to :meth:`_assign_scenes`, which subclasses implement: TR3D one scene at a time, SPOTA all
    scenes in one transport problem. Assigners never build autograd graphs (they run under
    ``torch.no_grad``) and never modify their inputs.

    Attributes:
        label2level: output level of each class; its length is the number of classes ``C``.
    """

    label2level: tuple[int, ...]

    def assign(
        self,
        locations: Tensor,
        levels: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor,
        pred_boxes: Tensor | None = None,
        cls_logits: Tensor | None = None,
    ) -> AssignResult:
        """Assign the ``L`` locations of one scene to its ``K`` ground-truth boxes.

        Args:
            locations: ``(L, 3)`` float, metres.
            levels: ``(L,)`` int64 head output level per location (0 = finest).
            gt_boxes: ``(K, 7)`` float boxes (project box convention).
            gt_labels: ``(K,)`` int64 class indices in ``[0, len(label2level))``.
            pred_boxes: ``(L, 7)`` float decoded predicted boxes (used detached) or ``None``
                (prediction-aware assigners such as SPOTA require them).
            cls_logits: ``(L, C)`` float classification logits (used detached) or ``None``.

        Returns:
            :class:`AssignResult` with ``gt_index (L,)`` int64 (``-1`` = background), on the
            inputs' device.

        Raises:
            TypeError / ValueError: invalid inputs (see :func:`check_assign_inputs` and the
                subclass's requirements).
        """
        scene = SceneInputs(locations, levels, gt_boxes, gt_labels, pred_boxes, cls_logits)
        self._check(scene)
        return self._assign_scenes([scene])[0]

    __call__ = assign

    def assign_batch(
        self,
        locations: Sequence[Tensor],
        levels: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        pred_boxes: Sequence[Tensor] | None = None,
        cls_logits: Sequence[Tensor] | None = None,
    ) -> list[AssignResult]:
        """Assign a batch of ``B`` scenes (sequences of per-scene tensors, shapes as in
        :meth:`assign`); equal to ``[assign(scene) for scene in batch]``.

        Args:
            locations, levels, gt_boxes, gt_labels: sequences of per-scene tensors, all of the
                same length ``B``.
            pred_boxes, cls_logits: ``None`` or sequences of length ``B``.

        Returns:
            ``B`` :class:`AssignResult` objects, in order.

        Raises:
            ValueError: sequences of different lengths; per-scene errors of :meth:`assign`.
        """
        b = len(locations)
        seqs = [levels, gt_boxes, gt_labels]
        seqs += [s for s in (pred_boxes, cls_logits) if s is not None]
        if any(len(s) != b for s in seqs):
            raise ValueError("all per-scene sequences must have the same length")
        scenes = [
            SceneInputs(
                locations[i],
                levels[i],
                gt_boxes[i],
                gt_labels[i],
                None if pred_boxes is None else pred_boxes[i],
                None if cls_logits is None else cls_logits[i],
            )
            for i in range(b)
        ]
        for scene in scenes:
            self._check(scene)
        return self._assign_scenes(scenes) if scenes else []

    def _check(self, scene: SceneInputs) -> None:
        check_assign_inputs(
            scene.locations,
            scene.levels,
            scene.gt_boxes,
            scene.gt_labels,
            scene.pred_boxes,
            len(self.label2level),
        )
        self._check_scene(scene)

    def _check_scene(self, scene: SceneInputs) -> None:
        """Subclass hook: requirements beyond :func:`check_assign_inputs` (raise ValueError).

        The base class has none.
        """
        return None

    @abc.abstractmethod
    def _assign_scenes(self, scenes: Sequence[SceneInputs]) -> list[AssignResult]:
        """Assign validated, non-empty ``scenes``; one :class:`AssignResult` per scene."""
