"""A2D2's asymmetric input pair: a clean teacher view and a MixUp-noised student view of the same
primary image with the same geometry (our formulation of LeAD-M3D's A2D2 augmentation).

* teacher: ``letterbox(a)`` then, with probability ``flip_prob``, :func:`hflip`;
* student: ``mixup(letterbox(a), letterbox(b), lambda)``, the same flip, then (optionally)
  :func:`photometric_jitter`. Flipping commutes with the blend, so both views share one camera
  and every pixel of the primary image sits at the same place: features are spatially aligned.
* ``lambda ~ Beta(alpha, alpha)`` folded to ``>= 0.5`` (``lambda -> max(lambda, 1 - lambda)``):
  Beta(alpha, alpha) is symmetric, so this is its law given ``lambda >= 0.5``; the primary stays
  dominant and no probability mass piles up at exactly 0.5 as a hard clip would make it.
* student labels: the primary's objects with their own weight (1), then, with
  ``second_labels=True``, the second image's weighted ``1 - lambda`` (else dropped). The
  student's first :attr:`A2D2Pair.num_primary` ``gt_boxes`` are the teacher's ``gt_boxes``.

All augmentation code is :mod:`sr3d_training.image_transforms`'s; this module only composes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..datasets.kitti import KittiObjects, kitti_sample
from ..datasets.sample import Sample
from ..image_transforms import hflip, letterbox, mixup, photometric_jitter, sample_mixup_lambda

__all__ = ["A2D2Pair", "make_a2d2_pair", "sample_dominant_lambda"]


@dataclass(frozen=True)
class A2D2Pair:
    """Teacher and student views of one primary image.

    Attributes:
        teacher: clean primary sample (letterboxed, maybe flipped).
        student: blended (and jittered) sample, same size and camera as ``teacher``.
        lam: the primary's blend weight, in ``[0.5, 1]``.
        num_primary: the student's first ``num_primary`` ``gt_boxes`` are the primary's, equal
            to ``teacher.gt_boxes``.
    """

    teacher: Sample
    student: Sample
    lam: float
    num_primary: int


def sample_dominant_lambda(rng: np.random.Generator, alpha: float) -> float:
    """``lambda ~ Beta(alpha, alpha)`` folded to ``[0.5, 1]`` (module docstring).

    Raises:
        ValueError: ``alpha <= 0``.
    """
    lam = sample_mixup_lambda(rng, alpha)
    return max(lam, 1.0 - lam)


def _relabel(mixed: Sample, objs_a: KittiObjects, second_labels: bool) -> Sample:
    """Primary objects back to their own weights; the second image's kept (``1 - lam``) or not."""
    objs = mixed.meta["kitti"]
    assert isinstance(objs, KittiObjects)
    n = len(objs_a)
    parts = [objs.subset(slice(0, n)).replace(weight=objs_a.weight)]
    if second_labels:
        parts.append(objs.subset(slice(n, len(objs))))
    meta = {k: v for k, v in mixed.meta.items() if k != "kitti"}
    assert mixed.image is not None and mixed.camera is not None
    return kitti_sample(
        mixed.sample_id, mixed.image, mixed.camera, KittiObjects.concat(parts), meta
    )


def make_a2d2_pair(
    primary: Sample,
    second: Sample,
    rng: np.random.Generator,
    width: int = 1280,
    height: int = 384,
    flip_prob: float = 0.5,
    mixup_alpha: float = 32.0,
    photometric: bool = True,
    second_labels: bool = True,
    mixup_prob: float = 1.0,
) -> A2D2Pair:
    """Build the teacher / student views (module docstring; our formulation).

    Args:
        primary, second: monocular KITTI samples (any size; both are letterboxed).
        rng: random generator (lambda, blend or not, flip, photometric factors, in that
            order; every draw is made whatever the options, so streams stay aligned).
        width, height: letterbox canvas, pixels. flip_prob: probability of the shared flip.
        mixup_alpha: Beta parameter (> 0). photometric: jitter the student.
        second_labels: keep the second image's objects in the student's labels (weight
            ``1 - lambda``).
        mixup_prob: probability of the blend (else the student's image is the primary's,
            ``lambda = 1``, still jittered).

    Returns:
        :class:`A2D2Pair`.

    Raises:
        ValueError: not monocular KITTI samples, ``mixup_alpha <= 0``, ``mixup_prob`` outside
            [0, 1], or bad sizes.
    """
    a = letterbox(primary, width, height)
    if not 0.0 <= mixup_prob <= 1.0:
        raise ValueError(f"mixup_prob must be in [0, 1], got {mixup_prob}")
    lam = sample_dominant_lambda(rng, mixup_alpha)
    if rng.random() < mixup_prob:
        objs_a = a.meta["kitti"]
        assert isinstance(objs_a, KittiObjects)
        b = letterbox(second, width, height)
        student = _relabel(mixup(a, b, lam), objs_a, second_labels)
    else:
        student, lam = replace(a, meta=dict(a.meta)), 1.0  # a distinct sample object
    teacher = a
    if rng.random() < flip_prob:
        teacher, student = hflip(teacher), hflip(student)
    if photometric:
        student = photometric_jitter(student, rng)
    return A2D2Pair(teacher, student, lam, len(teacher.gt_boxes))
