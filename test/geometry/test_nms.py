"""3D NMS: hand cases (suppression, classes, rotation, empty), order, bad input; the cases
that exercise a device run on every available one (``device`` fixture, conftest.py)."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry import batched_nms_3d, box_iou_3d, nms_3d
from sr3d_ros.geometry import nms as nms_module

F64 = torch.float64


def B(*rows, dtype=torch.float32, device="cpu"):
    return torch.tensor(rows, dtype=dtype, device=device)


def test_suppression_hand_case(device):
    boxes = B(
        [0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],  # 0: best
        [0.2, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],  # 1: IoU with 0 = 1.8 / 2.2 = 0.818 -> suppressed
        [5.0, 5.0, 0.0, 1.0, 1.0, 1.0, 0.0],  # 2: far away
        [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 0.0],  # 3: IoU with 0 = 1/15 -> kept
        device=device,
    )
    scores = torch.tensor([0.9, 0.8, 0.3, 0.5], device=device)
    keep = nms_3d(boxes, scores, 0.5)
    assert keep.dtype == torch.int64 and keep.device == device
    assert keep.tolist() == [0, 3, 2]  # sorted by descending score
    # threshold below 1/15: box 3 goes too; threshold above 0.818: nothing suppressed
    assert nms_3d(boxes, scores, 0.05).tolist() == [0, 2]
    assert nms_3d(boxes, scores, 0.9).tolist() == [0, 1, 3, 2]


def test_suppressed_box_does_not_suppress():
    # chain: 0 suppresses 1, 1 would suppress 2, but 1 is gone so 2 stays
    boxes = B(
        [0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],
        [0.6, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],  # IoU(0,1) = 1.4/2.6 = 0.54
        [1.2, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],  # IoU(0,2) = 0.8/3.2 = 0.25, IoU(1,2) = 0.54
    )
    keep = nms_3d(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_rotated_boxes(device):
    boxes = B(
        [0.0, 0.0, 0.0, 4.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 4.0, 1.0, 1.0, math.pi / 2],  # crossing: rotated IoU = 1/7 -> kept
        [0.0, 0.0, 0.0, 4.0, 1.0, 1.0, 0.05],  # nearly the same as 0 -> suppressed
        device=device,
    )
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    assert nms_3d(boxes, scores, 0.5).tolist() == [0, 1]
    # ignoring yaw, box 1 would be identical to box 0
    assert nms_3d(boxes, scores, 0.5, rotated=False).tolist() == [0]


def test_batched_classes_do_not_suppress_each_other(device):
    boxes = B(
        [0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.3],
        [0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.3],  # same box, other class -> kept
        [0.1, 0.0, 0.0, 2.0, 2.0, 2.0, 0.3],  # same class as 0 -> suppressed
        [0.1, 0.1, 0.0, 2.0, 2.0, 2.0, 0.3],  # same class as 1 -> suppressed
        [9.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
        device=device,
    )
    scores = torch.tensor([0.5, 0.9, 0.6, 0.95, 0.1], device=device)
    labels = torch.tensor([0, 1, 0, 1, 0], device=device)
    keep = batched_nms_3d(boxes, scores, labels, 0.5)
    assert keep.dtype == torch.int64 and keep.device == device
    assert keep.tolist() == [3, 2, 4]
    assert nms_3d(boxes, scores, 0.5).tolist() == [3, 4]  # class-agnostic
    # equals the union of per-class NMS
    g = torch.Generator().manual_seed(0)
    rb = torch.rand(60, 7, generator=g) * 3
    rb[:, 3:6] += 0.5
    rs = torch.rand(60, generator=g)
    rl = torch.randint(0, 3, (60,), generator=g)
    rb, rs, rl = rb.to(device), rs.to(device), rl.to(device)
    keep = batched_nms_3d(rb, rs, rl, 0.3)
    expected = []
    for c in range(3):
        idx = torch.nonzero(rl == c).flatten()
        expected += idx[nms_3d(rb[idx], rs[idx], 0.3)].tolist()
    assert sorted(keep.tolist()) == sorted(expected)
    assert torch.all(rs[keep][:-1] >= rs[keep][1:])


def test_greedy_invariant_random(device):
    g = torch.Generator().manual_seed(4)
    boxes = torch.rand(200, 7, generator=g, dtype=F64) * 4
    boxes[:, 3:6] += 0.3
    scores = torch.rand(200, generator=g, dtype=F64)
    keep = nms_3d(boxes.to(device), scores.to(device), 0.25).cpu()
    iou = box_iou_3d(boxes, boxes)
    kept = set(keep.tolist())
    # kept boxes never overlap each other above the threshold
    sub = iou[keep][:, keep]
    assert (sub - torch.eye(len(keep), dtype=F64)).max() <= 0.25
    # every dropped box overlaps a kept box with a higher score
    for i in range(200):
        if i not in kept:
            assert any(iou[i, k] > 0.25 and scores[k] >= scores[i] for k in kept)


def test_empty_and_six_dof(device):
    empty, no_scores = torch.zeros(0, 7, device=device), torch.zeros(0, device=device)
    out = nms_3d(empty, no_scores, 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64 and out.device == device
    no_labels = torch.zeros(0, dtype=torch.int64, device=device)
    out = batched_nms_3d(empty, no_scores, no_labels, 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64 and out.device == device
    six = B([0, 0, 0, 1, 1, 1], [0, 0, 0.1, 1, 1, 1], device=device)
    scores = torch.tensor([0.2, 0.7], device=device)
    assert nms_3d(six, scores, 0.5).tolist() == [1]
    labels = torch.tensor([0, 1], device=device)
    assert batched_nms_3d(six, scores, labels, 0.5).tolist() == [1, 0]


def test_bad_input():
    boxes = torch.rand(3, 7) + 0.1
    with pytest.raises(ValueError):
        nms_3d(boxes, torch.rand(4), 0.5)
    with pytest.raises(ValueError):
        nms_3d(boxes, torch.rand(3), 1.5)
    with pytest.raises(ValueError):
        nms_3d(torch.rand(3, 5), torch.rand(3), 0.5)
    with pytest.raises(TypeError):
        nms_3d(boxes, torch.tensor([1, 2, 3]), 0.5)
    with pytest.raises(TypeError):
        batched_nms_3d(boxes, torch.rand(3), torch.rand(3), 0.5)
    with pytest.raises(ValueError):
        batched_nms_3d(boxes, torch.rand(3), torch.zeros(2, dtype=torch.int64), 0.5)


# ---- the all-classes-at-once path (CUDA, axis-aligned) ----------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_all_classes_path_equals_per_class_nms(seed: int, device: torch.device) -> None:
    """The padded all-classes path gives exactly the per-class loop's indices and order
    (ties in score included); on CUDA batched_nms_3d takes it by itself."""
    g = torch.Generator().manual_seed(seed)
    n = 400
    boxes = torch.rand(n, 7, generator=g) * 4
    boxes[:, 3:6] = boxes[:, 3:6] * 0.5 + 0.3
    boxes[:, 6] = 0
    scores = torch.round(torch.rand(n, generator=g) * 50) / 50  # many exact ties
    labels = torch.randint(0, 7, (n,), generator=g)
    for threshold in (0.1, 0.3, 0.6):
        ref = batched_nms_3d(boxes, scores, labels, threshold)  # CPU: per-class loop
        args = (boxes.to(device), scores.to(device), labels.to(device), threshold)
        got = nms_module._nms_all_classes(*args)
        assert got is not None and got.device == device
        assert got.tolist() == ref.tolist()
        assert batched_nms_3d(*args).tolist() == ref.tolist()


def test_fixed_point_greedy_equals_the_host_walk(device: torch.device) -> None:
    g = torch.Generator().manual_seed(3)
    k = 120
    later = torch.ones(k, k, dtype=torch.bool).triu(1)
    random = (torch.rand(3, k, k, generator=g) < 0.05) & later
    # a chain: box i suppresses only box i + 1 (greedy keeps every other box; k rounds on the
    # device would be needed, so the host walk finishes it)
    chain = torch.zeros(1, k, k, dtype=torch.bool)
    chain[0, torch.arange(k - 1), torch.arange(1, k)] = True
    for suppress in (random, chain):
        valid = torch.ones(suppress.shape[:2], dtype=torch.bool)
        valid[0, k - 10 :] = False  # padding of a shorter group
        suppress = suppress & valid[:, :, None] & valid[:, None, :]
        got = nms_module._greedy_fixed_point(suppress.to(device), valid.to(device))
        assert got.device == device
        for i in range(suppress.shape[0]):
            n = int(valid[i].sum())
            want = torch.zeros(k, dtype=torch.bool)
            want[torch.from_numpy(nms_module._greedy(suppress[i, :n, :n].numpy()))] = True
            assert torch.equal(got[i].cpu(), want)
    assert nms_module._greedy_fixed_point(chain, torch.ones(1, k, dtype=torch.bool))[0, ::2].all()
