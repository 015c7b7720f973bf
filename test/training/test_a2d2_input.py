"""A2D2's teacher / student input pair (training/distill/mixup_input.py) on real KITTI frames:
same geometry (camera, boxes, pixel alignment), different photometry, lambda >= 0.5, labels."""

from __future__ import annotations

import numpy as np
import pytest

from sr3d_training.datasets.kitti import KittiDataset
from sr3d_training.distill.mixup_input import make_a2d2_pair, sample_dominant_lambda
from sr3d_training.image_transforms import gt_weights, hflip, letterbox


@pytest.fixture(scope="module")
def frames(data_root):
    ds = KittiDataset(data_root / "kitti", frame_ids=["000003", "000036", "000217", "007091"])
    return list(ds)


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _best_shift(a: np.ndarray, b: np.ndarray, radius: int = 3) -> tuple[int, int]:
    """Integer shift (dy, dx) of ``b`` that best matches ``a``'s image gradients (correlation)."""
    ga, gb = np.gradient(_gray(a)), np.gradient(_gray(b))
    r = radius
    core = (slice(r, -r), slice(r, -r))
    best, arg = -np.inf, (0, 0)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = [np.roll(g, (dy, dx), axis=(0, 1)) for g in gb]
            score = sum(float((x[core] * y[core]).sum()) for x, y in zip(ga, shifted))
            if score > best:
                best, arg = score, (dy, dx)
    return arg


def test_lambda_is_dominant():
    rng = np.random.default_rng(0)
    lams = np.array([sample_dominant_lambda(rng, 2.0) for _ in range(2000)])
    assert lams.min() >= 0.5 and lams.max() <= 1.0
    assert (lams == 0.5).mean() < 0.01  # folded, not clipped: no mass piles up at 0.5
    # folded Beta(2, 2): P(lambda > 0.75) = 2 * P(Beta(2, 2) > 0.75) = 2 * 0.15625
    assert (lams > 0.75).mean() == pytest.approx(0.3125, abs=0.04)
    with pytest.raises(ValueError, match="alpha"):
        sample_dominant_lambda(rng, 0.0)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_same_geometry_without_photometric(frames, flip_prob):
    """Student - lambda * teacher is the (flipped) second image times 1 - lambda: the primary
    sits at exactly the same pixels in both views."""
    a, b = frames[0], frames[1]
    pair = make_a2d2_pair(a, b, np.random.default_rng(1), flip_prob=flip_prob, photometric=False)
    t, s = pair.teacher, pair.student
    assert 0.5 <= pair.lam <= 1.0
    ref_t = letterbox(a)
    ref_b = letterbox(b)
    if flip_prob:
        ref_t, ref_b = hflip(ref_t), hflip(ref_b)
    np.testing.assert_array_equal(t.image, ref_t.image)  # the teacher sees the clean primary
    np.testing.assert_array_equal(t.camera.P, s.camera.P)
    np.testing.assert_array_equal(s.gt_boxes[: pair.num_primary], t.gt_boxes)
    # cameras of 000003 and 000036 differ, so b is warped into a's camera first: compare where
    # it is not padded; rounding of the uint8 blend gives at most 1 grey level
    blend = pair.lam * t.image.astype(np.float64) + (1 - pair.lam) * ref_b.image
    diff = np.abs(s.image.astype(np.float64) - blend)
    assert np.median(diff) <= 1.0
    assert _best_shift(t.image, s.image) == (0, 0)


def test_same_geometry_different_photometry(frames):
    a, b = frames[2], frames[3]
    for seed in range(3):
        pair = make_a2d2_pair(a, b, np.random.default_rng(seed), flip_prob=0.5)
        t, s = pair.teacher, pair.student
        np.testing.assert_array_equal(t.camera.P, s.camera.P)
        np.testing.assert_array_equal(s.gt_boxes[: pair.num_primary], t.gt_boxes)
        assert t.image.shape == s.image.shape == (384, 1280, 3)
        # different photometry: the student's mean colour moved beyond the blend's
        assert np.abs(t.image.astype(float) - s.image).mean() > 5.0
        # same geometry: the primary's edges line up at zero shift
        assert _best_shift(t.image, s.image) == (0, 0)


@pytest.mark.parametrize("second_labels", [True, False])
def test_labels_and_weights(frames, second_labels):
    a, b = frames[0], frames[2]
    pair = make_a2d2_pair(a, b, np.random.default_rng(4), second_labels=second_labels)
    w = gt_weights(pair.student)
    na, nb = len(letterbox(a).gt_boxes), len(letterbox(b).gt_boxes)
    assert pair.num_primary == na > 0 and nb > 0
    np.testing.assert_array_equal(w[:na], np.ones(na, np.float32))
    if second_labels:
        assert len(w) == na + nb
        np.testing.assert_allclose(w[na:], np.full(nb, 1 - pair.lam), rtol=1e-6)
    else:
        assert len(w) == na
    np.testing.assert_array_equal(gt_weights(pair.teacher), np.ones(na, np.float32))


def test_without_blend_the_student_is_the_primary(frames):
    a, b = frames[0], frames[1]
    pair = make_a2d2_pair(a, b, np.random.default_rng(5), mixup_prob=0.0, photometric=False)
    assert pair.lam == 1.0 and pair.student is not pair.teacher
    np.testing.assert_array_equal(pair.student.image, pair.teacher.image)
    np.testing.assert_array_equal(pair.student.gt_boxes, pair.teacher.gt_boxes)
    with pytest.raises(ValueError, match="mixup_prob"):
        make_a2d2_pair(a, b, np.random.default_rng(5), mixup_prob=1.5)
