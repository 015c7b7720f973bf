"""Monocular augmentations on the real KITTI frames, each checked by projecting the labelled 3D
boxes with the transformed camera onto the transformed 2D labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from sr3d_ros.geometry.camera import camera_box_corners, corners_to_image_boxes
from sr3d_training.datasets import Sample
from sr3d_training.datasets.kitti import KittiDataset
from sr3d_training.evaluation.kitti import image_box_iou
from sr3d_training.image_transforms import (
    MonoAugmentation,
    gt_weights,
    hflip,
    letterbox,
    mixup,
    photometric_jitter,
    sample_mixup_lambda,
)
from sr3d_training.trainer import collate_samples


@pytest.fixture(scope="module")
def frames(data_root):
    return list(KittiDataset(data_root / "kitti"))


def _projection(s: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(projected 3D boxes, label 2D boxes, IoU) of the untruncated labelled objects."""
    o = s.meta["kitti"]
    o = o.subset(o.cared & (o.truncated < 0.01))
    assert s.camera is not None
    b, valid = corners_to_image_boxes(
        s.camera, camera_box_corners(torch.from_numpy(o.camera_boxes())), clip=False
    )
    assert bool(valid.all())
    p = b.numpy()
    return p, o.bbox, np.diag(image_box_iou(p, o.bbox))


def test_letterbox_keeps_the_projection(frames):
    for s in frames:
        out = letterbox(s)
        assert out.image is not None and out.image.shape == (384, 1280, 3)
        assert out.camera is not None and (out.camera.width, out.camera.height) == (1280, 384)
        box = s.camera.letterbox()  # type: ignore[union-attr]
        p0, _, iou0 = _projection(s)
        p1, _, iou1 = _projection(out)
        A = box.affine()
        np.testing.assert_allclose(p1[:, 0::2], p0[:, 0::2] * A[0, 0] + A[0, 2], atol=1e-6)
        np.testing.assert_allclose(p1[:, 1::2], p0[:, 1::2] * A[1, 1] + A[1, 2], atol=1e-6)
        np.testing.assert_allclose(iou1, iou0, atol=1e-9)  # scale + shift keep the IoU
        assert np.median(iou1) > 0.6
        np.testing.assert_array_equal(out.gt_boxes, s.gt_boxes)  # 3D boxes do not move
        # padding is grey, the content keeps its mean brightness
        left = box.pad_left
        if left:
            assert np.all(out.image[:, :left] == 114)
        inner = out.image[:, left : left + box.new_width].astype(float)
        assert abs(inner.mean() - s.image.astype(float).mean()) < 1.0  # type: ignore[union-attr]


def test_hflip_keeps_the_projection_and_is_an_involution(frames):
    for s in frames:
        out = hflip(s)
        w = s.camera.width  # type: ignore[union-attr]
        np.testing.assert_array_equal(out.image, s.image[:, ::-1])  # type: ignore[index]
        p0, _, iou0 = _projection(s)
        p1, _, iou1 = _projection(out)
        np.testing.assert_allclose(p1[:, [0, 2]], w - 1 - p0[:, [2, 0]], atol=1e-6)
        np.testing.assert_allclose(iou1, iou0, atol=1e-9)
        # body frame: y -> -y, yaw -> -yaw
        mirrored = s.gt_boxes * np.array([1, -1, 1, 1, 1, 1, -1], np.float32)
        d = out.gt_boxes - mirrored
        d[:, 6] = (d[:, 6] + np.pi) % (2 * np.pi) - np.pi
        np.testing.assert_allclose(d, 0, atol=1e-5)
        back = hflip(out)
        np.testing.assert_array_equal(back.image, s.image)
        np.testing.assert_allclose(back.camera.P, s.camera.P, atol=1e-9)  # type: ignore[union-attr]
        o0, o2 = s.meta["kitti"], back.meta["kitti"]
        np.testing.assert_allclose(o2.bbox, o0.bbox, atol=1e-9)
        np.testing.assert_allclose(o2.location, o0.location, atol=1e-12)
        np.testing.assert_allclose(np.cos(o2.rotation_y - o0.rotation_y), 1, atol=1e-12)
        np.testing.assert_allclose(np.cos(o2.alpha - o0.alpha), 1, atol=1e-12)
        # DontCare keeps its markers
        dc = ~o0.cared
        assert np.all(out.meta["kitti"].alpha[dc] == -10)


def test_photometric_jitter(frames):
    s = frames[3]
    rng = np.random.default_rng(0)
    same = photometric_jitter(s, rng, 0, 0, 0, 0)
    assert np.abs(same.image.astype(int) - s.image.astype(int)).max() <= 1  # type: ignore[union-attr]
    out = photometric_jitter(s, np.random.default_rng(1))
    assert np.abs(out.image.astype(int) - s.image.astype(int)).mean() > 2  # type: ignore[union-attr]
    np.testing.assert_array_equal(out.camera.P, s.camera.P)  # type: ignore[union-attr]
    np.testing.assert_array_equal(out.gt_boxes, s.gt_boxes)
    # saturation / hue leave grey pixels grey
    grey = s.replace(image=np.full_like(s.image, 90))
    g = photometric_jitter(grey, np.random.default_rng(2), 0, 0, 0.9, 0.4).image
    assert np.abs(g.astype(int) - 90).max() <= 1  # type: ignore[union-attr]
    # deterministic for a seed
    a = photometric_jitter(s, np.random.default_rng(5)).image
    np.testing.assert_array_equal(a, photometric_jitter(s, np.random.default_rng(5)).image)
    with pytest.raises(ValueError, match=">= 0"):
        photometric_jitter(s, rng, brightness=-1)


def test_mixup_blends_and_keeps_both_label_sets(frames):
    a, b = letterbox(frames[0]), letterbox(frames[9])  # different calibration days
    assert not np.allclose(a.camera.P, b.camera.P)  # type: ignore[union-attr]
    lam = 0.6
    m = mixup(a, b, lam)
    oa, ob, om = a.meta["kitti"], b.meta["kitti"], m.meta["kitti"]
    assert len(om) == len(oa) + len(ob) and m.num_boxes == a.num_boxes + b.num_boxes
    np.testing.assert_allclose(om.weight, [lam] * len(oa) + [1 - lam] * len(ob))
    np.testing.assert_allclose(gt_weights(m), [lam] * a.num_boxes + [1 - lam] * b.num_boxes)
    np.testing.assert_array_equal(m.camera.P, a.camera.P)  # type: ignore[union-attr]
    # b's objects, projected with the mixed (= a's) camera, land on b's mapped 2D labels
    _, _, iou_b0 = _projection(b)
    only_b = m.replace(meta={**m.meta, "kitti": om.subset(np.arange(len(oa), len(om)))})
    _, _, iou_b = _projection(only_b)
    np.testing.assert_allclose(iou_b, iou_b0, atol=2e-3)
    # lambda = 0: b's image resampled into a's camera (scipy's bilinear map_coordinates as oracle)
    warped = mixup(a, b, 0.0).image.astype(float)  # type: ignore[union-attr]
    A = np.linalg.inv(a.camera.K @ np.linalg.inv(b.camera.K))  # type: ignore[union-attr]
    v, u = np.mgrid[0:384, 0:1280].astype(float)
    src = [A[1, 1] * v + A[1, 2], A[0, 0] * u + A[0, 2]]
    for ch in range(3):
        ref = ndimage.map_coordinates(b.image[..., ch].astype(float), src, order=1, cval=114)  # type: ignore[index]
        inside = (src[0] > 0) & (src[0] < 383) & (src[1] > 0) & (src[1] < 1279)
        assert np.abs(warped[..., ch] - ref)[inside].max() <= 1.0
    # same camera: the image is exactly the blend
    a2 = a.replace(meta=dict(a.meta))
    m2 = mixup(a, a2, 0.3)
    np.testing.assert_array_equal(m2.image, a.image)
    other = photometric_jitter(a, np.random.default_rng(0))  # same camera, other pixels
    blend = mixup(a, other, 0.25).image.astype(float)
    want = 0.25 * a.image + 0.75 * other.image  # type: ignore[operator]
    assert np.abs(blend - want).max() <= 0.5
    lams = [sample_mixup_lambda(np.random.default_rng(i)) for i in range(200)]
    assert 0.45 < np.mean(lams) < 0.55 and min(lams) > 0.3 and max(lams) < 0.7
    with pytest.raises(ValueError, match="equal image sizes"):
        mixup(a, frames[1], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mixup(a, b, 1.5)


def test_pipeline_and_one_collate(frames):
    aug = MonoAugmentation(mixup_prob=1.0)
    rng = np.random.default_rng(0)
    batch = [aug(frames[i], rng, partner=frames[i + 5]) for i in range(3)]
    for s in batch:
        assert s.image is not None and s.image.shape == (384, 1280, 3)
        assert any(t.startswith("mixup") for t in s.meta["augmentation"])
        _, _, iou = _projection(s)
        assert np.median(iou) > 0.5
    col = collate_samples(batch)
    assert col["images"].shape == (3, 3, 384, 1280) and col["images"].dtype == torch.uint8
    assert col["cameras"].shape == (3, 3, 4) and len(col["gt_boxes"]) == 3
    with pytest.raises(ValueError, match="not a monocular"):
        letterbox(Sample(np.zeros((0, 6)), np.zeros((0, 7)), np.zeros(0), ("a",), "x"))
