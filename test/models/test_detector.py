"""TR3DDetector: end to end on real ScanNet / SUN RGB-D samples (random init, CPU), width
multipliers, box decoding on hand-computed cases, and post-processing on hand-built outputs."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.config import (
    SCANNET_CLASSES,
    SUNRGBD_CLASSES,
    SUNRGBD_LABEL2LEVEL,
    DetectorConfig,
    InferenceConfig,
    ModelConfig,
)
from sr3d_ros.detections import Detections
from sr3d_ros.inference import PointCloudDetector
from sr3d_ros.models import HeadOutputs, TR3DDetector, decode_boxes, points_to_sparse

STAGES = {"voxelize", "backbone", "neck", "head", "nms"}


def _detector(model_cfg: ModelConfig, seed: int, **inference) -> PointCloudDetector:
    torch.manual_seed(seed)
    cfg = DetectorConfig(model=model_cfg, inference=InferenceConfig(**inference))
    return PointCloudDetector(TR3DDetector(cfg.model), cfg, torch.device("cpu"))


@pytest.fixture(scope="module")
def scannet_points(data_root: Path) -> np.ndarray:
    return np.load(data_root / "scannet" / "scannet_instance_data" / "scene0000_00_vert_all.npy")


@pytest.fixture(scope="module")
def sunrgbd_points(data_root: Path) -> np.ndarray:
    scipy_io = pytest.importorskip("scipy.io")
    pts = np.asarray(
        scipy_io.loadmat(str(data_root / "sunrgbd" / "sunrgbd_trainval" / "depth" / "000001.mat"))[
            "instance"
        ],
        np.float32,
    )
    # TR3D's SUN RGB-D test pipeline samples 100k points per frame; so do we (fixed seed).
    pts = pts[np.sort(np.random.default_rng(0).choice(len(pts), 100_000, replace=False))].copy()
    pts[:, 3:6] *= 255.0  # 0..1 -> 0..255
    return pts


@pytest.fixture(scope="module")
def scannet_result(scannet_points: np.ndarray) -> Detections:
    det = _detector(ModelConfig(width=0.25), seed=0, score_threshold=0.0, nms_pre=100)
    return det(scannet_points)


@pytest.fixture(scope="module")
def sunrgbd_result(sunrgbd_points: np.ndarray) -> Detections:
    cfg = ModelConfig(
        class_names=SUNRGBD_CLASSES, label2level=SUNRGBD_LABEL2LEVEL, width=0.25, num_reg_outs=8
    )
    return _detector(cfg, seed=1, score_threshold=0.0, nms_pre=100)(sunrgbd_points)


def _check_result(out: Detections, points: np.ndarray, names: tuple[str, ...]) -> None:
    m = len(out)
    assert m > 0
    assert out.boxes.shape == (m, 7) and out.boxes.dtype == torch.float32
    assert out.scores.shape == (m,) and out.labels.shape == (m,) and out.labels.dtype == torch.int64
    assert torch.isfinite(out.boxes).all() and torch.isfinite(out.scores).all()
    assert ((out.scores >= 0) & (out.scores <= 1)).all()
    assert (out.scores[:-1] >= out.scores[1:]).all(), "scores must be sorted descending"
    assert (out.labels >= 0).all() and (out.labels < len(names)).all()
    assert (out.boxes[:, 3:6] > 0).all()
    assert out.class_names == names
    # Centres lie within the scene's bounds (random init: tiny offsets from voxel locations).
    lo, hi = points[:, :3].min(0) - 0.5, points[:, :3].max(0) + 0.5
    c = out.boxes[:, :3].numpy()
    assert (c >= lo).all() and (c <= hi).all()
    assert set(out.timings_ms) == STAGES and all(v > 0 for v in out.timings_ms.values())


def test_scannet_end_to_end(scannet_result: Detections, scannet_points: np.ndarray) -> None:
    _check_result(scannet_result, scannet_points, SCANNET_CLASSES)
    assert (scannet_result.boxes[:, 6] == 0).all(), "axis-aligned model must give yaw 0"


def test_sunrgbd_end_to_end(sunrgbd_result: Detections, sunrgbd_points: np.ndarray) -> None:
    _check_result(sunrgbd_result, sunrgbd_points, SUNRGBD_CLASSES)
    yaw = sunrgbd_result.boxes[:, 6]
    assert (yaw.abs() <= math.pi + 1e-5).all()


def test_xyz_only_and_empty_input(scannet_points: np.ndarray) -> None:
    det = _detector(ModelConfig(width=0.25), seed=0, score_threshold=0.0, nms_pre=50)
    crop = scannet_points[
        (np.abs(scannet_points[:, 0]) < 0.7) & (np.abs(scannet_points[:, 1]) < 0.7)
    ]
    assert len(det(crop[:, :3])) > 0  # no colour: mid grey features
    nan = np.full((10, 6), np.nan, np.float32)
    assert len(det(nan)) == 0
    with pytest.raises(ValueError):
        det(np.zeros((10, 4), np.float32))


# ---- width multipliers ---------------------------------------------------------------------
def expected_parameters(width: float, n_classes: int = 18, n_reg: int = 6) -> int:
    """Parameter count of the TR3D layout at ``width``, written out from the architecture."""

    def ch(c: int) -> int:
        return max(8, int(round(min(c, 128) * width)))

    stem, planes, neck = (
        max(8, int(round(64 * width))),
        [ch(p) for p in (64, 128, 128, 128)],
        ch(128),
    )
    total = 27 * 3 * stem + 2 * stem  # stem conv (no bias) + BN
    cin = stem
    for p, n in zip(planes, (3, 4, 6, 3)):
        total += (
            27 * cin * p + 2 * p + 27 * p * p + 2 * p + cin * p + 2 * p
        )  # first block + downsample
        total += (n - 1) * 2 * (27 * p * p + 2 * p)
        cin = p
    p1, p2, p3 = planes[1:]
    total += 27 * p2 * p1 + 2 * p1 + 27 * p3 * p2 + 2 * p2  # up blocks
    total += 27 * p1 * p1 + 2 * p1 + 27 * p2 * p2 + 2 * p2  # lateral blocks
    total += 27 * p1 * neck + 2 * neck + 27 * p2 * neck + 2 * neck  # out blocks
    return total + neck * n_reg + n_reg + neck * n_classes + n_classes


@pytest.mark.parametrize("width", [1.0, 0.5, 0.25])
def test_width_changes_parameter_count(width: float) -> None:
    model = TR3DDetector(ModelConfig(width=width))
    assert sum(p.numel() for p in model.parameters()) == expected_parameters(width)


def test_width_ratios() -> None:
    full = expected_parameters(1.0)
    assert full == 14_661_464
    assert 0.24 < expected_parameters(0.5) / full < 0.26
    assert 0.06 < expected_parameters(0.25) / full < 0.07


# ---- decode_boxes ----------------------------------------------------------------------------
def test_decode_six_outputs() -> None:
    loc = torch.tensor([[1.0, 2.0, 3.0]])
    pred = torch.tensor([[0.1, -0.2, 0.3, 2.0, 3.0, 4.0]])
    out = decode_boxes(loc, pred)
    assert torch.allclose(out, torch.tensor([[1.1, 1.8, 3.3, 2.0, 3.0, 4.0, 0.0]]))
    assert torch.equal(
        decode_boxes(loc, pred, "tr3d"), out
    )  # parametrization irrelevant without yaw


def test_decode_eight_outputs_sincos() -> None:
    loc = torch.zeros(2, 3)
    pred = torch.tensor(
        [
            [0.0, 0.0, 0.0, 2.0, 3.0, 4.0, 1.0, 0.0],
            [0.5, 0.0, 0.0, 1.0, 1.0, 1.0, -0.5 * math.sin(0.7), -0.5 * math.cos(0.7)],
        ]
    )
    out = decode_boxes(loc, pred, "sincos")
    assert torch.allclose(out[0], torch.tensor([0.0, 0.0, 0.0, 2.0, 3.0, 4.0, math.pi / 2]))
    # atan2(-sin, -cos) = 0.7 - pi
    assert torch.allclose(
        out[1], torch.tensor([0.5, 0.0, 0.0, 1.0, 1.0, 1.0, 0.7 - math.pi]), atol=1e-6
    )


def test_decode_eight_outputs_tr3d() -> None:
    loc = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    a = 0.3
    pred = torch.tensor(
        [
            # q = exp(ln 2) = 2, yaw = atan2(0, ln 2) / 2 = 0:
            # dx = (2 + 3) / 3, dy = 2 dx, dz = 4 + 3
            [0.0, 0.0, 0.0, 2.0, 3.0, 4.0, 0.0, math.log(2.0)],
            # q = 3, yaw = a: (sin 2a ln q, cos 2a ln q); dx = (1 + 3) / 4 = 1, dy = 3, dz = 2 + 3
            [
                0.1,
                0.2,
                0.3,
                1.0,
                3.0,
                2.0,
                math.sin(2 * a) * math.log(3.0),
                math.cos(2 * a) * math.log(3.0),
            ],
        ]
    )
    out = decode_boxes(loc, pred, "tr3d")
    assert torch.allclose(out[0], torch.tensor([1.0, 1.0, 1.0, 5 / 3, 10 / 3, 7.0, 0.0]), atol=1e-6)
    assert torch.allclose(out[1], torch.tensor([0.1, 0.2, 0.3, 1.0, 3.0, 5.0, a]), atol=1e-6)


def test_decode_errors() -> None:
    with pytest.raises(ValueError):
        decode_boxes(torch.zeros(2, 3), torch.zeros(2, 7))
    with pytest.raises(ValueError):
        decode_boxes(torch.zeros(3, 3), torch.zeros(2, 6))
    with pytest.raises(ValueError):
        decode_boxes(torch.zeros(1, 3), torch.zeros(1, 8), "euler")


# ---- postprocess -----------------------------------------------------------------------------
def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _outputs(rows: list[tuple[list[float], list[float], int]], n_classes: int = 3) -> HeadOutputs:
    """rows: (centre xyz, per-class probabilities, batch). Unit cubes, 6 outputs."""
    cls = torch.tensor([[_logit(p) for p in probs] for _, probs, _ in rows])
    loc = torch.tensor([c for c, _, _ in rows])
    reg = torch.cat([torch.zeros(len(rows), 3), torch.ones(len(rows), 3)], dim=1)
    batch = torch.tensor([b for _, _, b in rows])
    return HeadOutputs(cls, reg, loc, torch.zeros(len(rows), dtype=torch.int64), batch)


@pytest.fixture(scope="module")
def tiny_model() -> TR3DDetector:
    return TR3DDetector(ModelConfig(class_names=("a", "b", "c"), label2level=(0, 0, 1), width=0.25))


def test_postprocess_per_class_nms(tiny_model: TR3DDetector) -> None:
    out = _outputs(
        [
            ([0.0, 0.0, 0.0], [0.9, 0.001, 0.001], 0),  # class a
            (
                [0.1, 0.0, 0.0],
                [0.8, 0.001, 0.001],
                0,
            ),  # class a, IoU 0.82 with the first: suppressed
            ([0.05, 0.0, 0.0], [0.001, 0.7, 0.001], 0),  # class b overlapping: kept (other class)
            ([5.0, 5.0, 5.0], [0.6, 0.001, 0.001], 0),  # class a far away: kept
        ]
    )
    cfg = InferenceConfig(score_threshold=0.01, iou_threshold=0.5, nms_pre=1000)
    det = tiny_model.postprocess(out, 1, cfg)[0]
    assert det.labels.tolist() == [0, 1, 0]
    assert torch.allclose(det.scores, torch.tensor([0.9, 0.7, 0.6]))
    assert torch.allclose(
        det.boxes[:, :3], torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [5.0, 5.0, 5.0]])
    )
    assert torch.allclose(det.boxes[:, 3:], torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(3, 4))


def test_postprocess_score_threshold_and_multilabel(tiny_model: TR3DDetector) -> None:
    out = _outputs(
        [
            (
                [0.0, 0.0, 0.0],
                [0.6, 0.5, 0.05],
                0,
            ),  # two classes above 0.1 at one location: both kept
            ([3.0, 0.0, 0.0], [0.09, 0.02, 0.05], 0),  # everything below 0.1: dropped
        ]
    )
    det = tiny_model.postprocess(out, 1, InferenceConfig(score_threshold=0.1))[0]
    assert det.labels.tolist() == [0, 1] and torch.allclose(det.scores, torch.tensor([0.6, 0.5]))


def test_postprocess_nms_pre_and_max_detections(tiny_model: TR3DDetector) -> None:
    rows = [
        ([float(3 * i), 0.0, 0.0], [0.1 + 0.1 * i, 0.001, 0.001], 0) for i in range(5)
    ]  # disjoint boxes
    out = _outputs(rows)
    top2 = tiny_model.postprocess(out, 1, InferenceConfig(nms_pre=2, score_threshold=0.0))[0]
    # nms_pre keeps the 2 best locations (by max class score) before thresholding: classes b, c
    # of those two locations survive a 0.0 threshold as well.
    assert set(top2.boxes[:, 0].tolist()) == {9.0, 12.0}
    assert len(top2) == 6
    capped = tiny_model.postprocess(
        out, 1, InferenceConfig(score_threshold=0.05, max_detections=3)
    )[0]
    assert torch.allclose(capped.scores, torch.tensor([0.5, 0.4, 0.3]))


def test_postprocess_batches_are_separate(tiny_model: TR3DDetector) -> None:
    out = _outputs(
        [([0.0, 0.0, 0.0], [0.9, 0.001, 0.001], 0), ([0.0, 0.0, 0.0], [0.8, 0.001, 0.001], 1)]
    )
    res = tiny_model.postprocess(out, 3, InferenceConfig())
    assert [len(r) for r in res] == [1, 1, 0]  # same box in two scenes: no cross-scene NMS
    assert res[1].scores.item() == pytest.approx(0.8)


def test_batched_forward_matches_single(scannet_points: np.ndarray) -> None:
    torch.manual_seed(3)
    model = TR3DDetector(ModelConfig(width=0.25)).eval()
    a = torch.from_numpy(scannet_points[scannet_points[:, 0] < -2.5])
    b = torch.from_numpy(scannet_points[scannet_points[:, 0] > 2.5])
    cfg = dataclasses.replace(InferenceConfig(), score_threshold=0.0, nms_pre=50)
    with torch.no_grad():
        both = model.postprocess(model(points_to_sparse([a, b], 0.01)), 2, cfg)
        single = model.postprocess(model(points_to_sparse([b], 0.01)), 1, cfg)
    assert torch.allclose(both[1].boxes, single[0].boxes, atol=1e-4)
    assert torch.allclose(both[1].scores, single[0].scores, atol=1e-5)


# ---- devices ---------------------------------------------------------------------------------
def test_forward_backward_on_device_match_float64_reference(
    scannet_points: np.ndarray, device: torch.device
) -> None:
    """The network on ``device`` in float32 gives the outputs and parameter gradients of the
    same network in float64 on the CPU (real scan, 2 cm voxels, width 0.25). Eval mode: in
    training mode BatchNorm's backward cancels nearly to zero and float32 differs from float64
    by ~10% there whatever the device, so training mode is checked for finite gradients only."""
    torch.manual_seed(4)
    ref = TR3DDetector(ModelConfig(width=0.25, voxel_size=0.02)).double()
    pts = torch.from_numpy(scannet_points)
    trained = copy.deepcopy(ref).float().to(device).train()
    out = trained(points_to_sparse([pts.to(device)], 0.02))
    (out.cls_logits.sum() + out.bbox_pred.sum()).backward()
    for name, p in trained.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    ref.eval()
    model = copy.deepcopy(ref).float().to(device)
    x_ref = points_to_sparse([pts.double()], 0.02)
    x = points_to_sparse([pts.to(device)], 0.02)
    assert x.device == device and x.dtype == torch.float32
    out_ref, out = ref(x_ref), model(x)
    assert out.cls_logits.device == device and out.bbox_pred.device == device
    assert torch.equal(out.batch.cpu(), out_ref.batch) and torch.equal(
        out.levels.cpu(), out_ref.levels
    )
    torch.testing.assert_close(out.locations.cpu().double(), out_ref.locations)

    def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
        # float32 vs float64 through ~40 layers: 1e-4 of the tensor's scale (measured: 5e-6)
        scale = float(b.detach().abs().max())
        torch.testing.assert_close(
            a.detach().cpu().double(), b.detach(), rtol=1e-4, atol=1e-4 * scale, msg=what
        )

    close(out.cls_logits, out_ref.cls_logits, "class logits")
    close(out.bbox_pred, out_ref.bbox_pred, "box regression")
    g = torch.Generator().manual_seed(5)
    r_cls = torch.randn(out_ref.cls_logits.shape, generator=g, dtype=torch.float64)
    r_box = torch.randn(out_ref.bbox_pred.shape, generator=g, dtype=torch.float64)
    ((out_ref.cls_logits * r_cls).sum() + (out_ref.bbox_pred * r_box).sum()).backward()
    r_cls, r_box = r_cls.float().to(device), r_box.float().to(device)
    ((out.cls_logits * r_cls).sum() + (out.bbox_pred * r_box).sum()).backward()
    for (name, p_ref), (_, p) in zip(ref.named_parameters(), model.named_parameters()):
        assert p.grad is not None and p.grad.device == device, name
        assert torch.isfinite(p.grad).all(), name
        close(p.grad, p_ref.grad, f"gradient of {name}")
