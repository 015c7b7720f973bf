"""IoU / GIoU / DIoU: hand-computed cases, shapely cross-check, gradients, bad input.

The tests that exercise a device run on every available one (``device`` fixture, conftest.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from shapely import affinity
from shapely.geometry import box as shapely_box

from sr3d_ros.geometry import (
    aligned_box_iou_3d,
    axis_aligned_iou_3d,
    box_iou_3d,
    box_iou_bev,
    diou_3d,
    diou_loss,
    giou_3d,
    giou_loss,
    intersection_volume_3d,
    rotated_iou_3d,
)

F64 = torch.float64
SQ2 = math.sqrt(2.0)


def B(*rows, dtype=F64, device="cpu"):
    return torch.tensor(rows, dtype=dtype, device=device)


def both_paths(a, b):
    """IoU through the axis-aligned fast path and through the rotated polygon path, aligned."""
    return (
        box_iou_3d(a, b, aligned=True, rotated=False),
        box_iou_3d(a, b, aligned=True, rotated=True),
    )


# ---------------------------------------------------------------------------------------------
# hand-computed cases (each checked on both the axis-aligned and the rotated code path)
# ---------------------------------------------------------------------------------------------
HAND_CASES = {
    # name: (box a, box b, expected IoU)
    "identical": ([0.3, -1, 2, 1.5, 2.5, 0.7, 0], [0.3, -1, 2, 1.5, 2.5, 0.7, 0], 1.0),
    "disjoint": ([0, 0, 0, 1, 1, 1, 0], [5, 5, 5, 1, 1, 1, 0], 0.0),
    "touching_x_face": ([0, 0, 0, 2, 2, 2, 0], [2, 0, 0, 2, 2, 2, 0], 0.0),
    "touching_z_face": ([0, 0, 0, 2, 2, 2, 0], [0.5, 0.5, 2, 2, 2, 2, 0], 0.0),
    # inner box x [0,1], y [-0.5,1.5], z [-1,2] inside [-2,2]^3: volumes 6 / 64
    "nested": ([0, 0, 0, 4, 4, 4, 0], [0.5, 0.5, 0.5, 1, 2, 3, 0], 6.0 / 64.0),
    # overlap 1 x 1 x 1, union 8 + 8 - 1
    "corner_overlap": ([0, 0, 0, 2, 2, 2, 0], [1, 1, 1, 2, 2, 2, 0], 1.0 / 15.0),
    # x: [-2,2]&[0,2] = 2; y: [-1,1]&[-0.5,1.5] = 1.5; z: [-0.5,0.5]&[-0.75,1.25] = 1 -> 3 / (8+8-3)
    "partial": ([0, 0, 0, 4, 2, 1, 0], [1, 0.5, 0.25, 2, 2, 2, 0], 3.0 / 13.0),
    # thin plates (dz = 1e-6): half overlap in x -> inter 2e-6, union 6e-6
    "thin": ([0, 0, 0, 2, 2, 1e-6, 0], [1, 0, 0, 2, 2, 1e-6, 0], 1.0 / 3.0),
    "thin_z_separated": ([0, 0, 0, 2, 2, 1e-6, 0], [0, 0, 2e-6, 2, 2, 1e-6, 0], 0.0),
}


@pytest.mark.parametrize("name", sorted(HAND_CASES))
def test_hand_cases_axis_aligned(name, device):
    a, b = (B(box, device=device) for box in HAND_CASES[name][:2])
    expected = HAND_CASES[name][2]
    for iou in both_paths(a, b):
        assert iou.shape == (1,) and iou.device == device
        assert iou.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # pairwise, symmetric
    assert box_iou_3d(a, b).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert box_iou_3d(b, a, rotated=True).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_intersection_volume_hand_case():
    a, b = B([0, 0, 0, 4, 2, 1, 0]), B([1, 0.5, 0.25, 2, 2, 2, 0])
    assert intersection_volume_3d(a, b).item() == pytest.approx(3.0)
    assert intersection_volume_3d(a, b, rotated=True).item() == pytest.approx(3.0)


def test_rotated_90_equals_swapped_axis_aligned():
    rot = B([1.0, 2.0, 0.5, 3.0, 1.0, 2.0, math.pi / 2])
    swapped = B([1.0, 2.0, 0.5, 1.0, 3.0, 2.0, 0.0])
    assert box_iou_3d(rot, swapped).item() == pytest.approx(1.0, abs=1e-9)
    assert box_iou_3d(rot, B([1.0, 2.0, 0.5, 3.0, 1.0, 2.0, 0.0])).item() == pytest.approx(
        1 / 5, abs=1e-9
    )
    # against a third, shifted axis-aligned box: same IoU as the swapped box gets
    other = B([1.6, 2.9, 0.0, 2.0, 1.5, 1.0, 0.0])
    assert box_iou_3d(rot, other).item() == pytest.approx(
        box_iou_3d(swapped, other).item(), abs=1e-9
    )
    # yaw = -90 and 270 deg describe the same box
    for yaw in (-math.pi / 2, 1.5 * math.pi):
        r2 = rot.clone()
        r2[0, 6] = yaw
        assert box_iou_3d(r2, other).item() == pytest.approx(
            box_iou_3d(swapped, other).item(), abs=1e-9
        )


def test_rotated_45_hand_case(device):
    # Unit cube vs the same cube turned 45 deg: BEV intersection is a regular octagon of area
    # 1 - 4 * (sqrt(2)/2 - 1/2)^2 = 2 sqrt(2) - 2,
    # so IoU = (2 sqrt(2) - 2) / (4 - 2 sqrt(2)) = 1/sqrt(2).
    a = B([0, 0, 0, 1, 1, 1, 0], device=device)
    b = B([0, 0, 0, 1, 1, 1, math.pi / 4], device=device)
    assert box_iou_3d(a, b).item() == pytest.approx(1 / SQ2, rel=1e-12)
    assert intersection_volume_3d(a, b).item() == pytest.approx(2 * SQ2 - 2, rel=1e-12)
    assert box_iou_bev(a, b).item() == pytest.approx(1 / SQ2, rel=1e-12)
    # Same with half the height overlapping: inter halves, union = 2 - inter/2
    c = B([0, 0, 0.5, 1, 1, 1, math.pi / 4], device=device)
    inter = (2 * SQ2 - 2) / 2
    assert box_iou_3d(a, c).item() == pytest.approx(inter / (2 - inter), rel=1e-12)
    # BEV IoU ignores z
    assert box_iou_bev(a, c).item() == pytest.approx(1 / SQ2, rel=1e-12)


def test_rotated_identical_and_touching(device):
    g = torch.Generator().manual_seed(3)
    boxes = (torch.rand(50, 7, generator=g, dtype=F64) * 2).to(device)
    boxes[:, 3:6] += 0.1
    boxes[:, 6] = (boxes[:, 6] - 1) * math.pi
    assert torch.allclose(
        rotated_iou_3d(boxes, boxes, aligned=True), boxes.new_ones(50), atol=1e-12
    )
    assert torch.allclose(torch.diagonal(box_iou_3d(boxes, boxes)), boxes.new_ones(50), atol=1e-12)
    # shift each box by its own dx along its own x-axis: the boxes touch along a face
    touch = boxes.clone()
    touch[:, 0] += boxes[:, 3] * torch.cos(boxes[:, 6])
    touch[:, 1] += boxes[:, 3] * torch.sin(boxes[:, 6])
    assert rotated_iou_3d(boxes, touch, aligned=True).abs().max().item() < 1e-9
    # same in float32
    b32, t32 = boxes.float(), touch.float()
    assert torch.allclose(rotated_iou_3d(b32, b32, aligned=True), b32.new_ones(50), atol=1e-5)
    assert rotated_iou_3d(b32, t32, aligned=True).abs().max().item() < 1e-5


def test_rotated_thin_boxes():
    a = B([0, 0, 0, 1, 1, 1e-6, 0])
    b = B([0, 0, 0, 1, 1, 1e-6, math.pi / 4])
    assert box_iou_3d(a, b).item() == pytest.approx(1 / SQ2, rel=1e-9)
    # thin in BEV (a wall 1 mm thick) crossing a box
    wall = B([0, 0, 0, 4, 1e-3, 1, math.pi / 2])
    cube = B([0, 0, 0, 1, 1, 1, 0])
    # BEV: a 1e-3 x 1 strip inside the unit square; volume 1e-3 vs union 4e-3 + 1 - 1e-3
    assert box_iou_3d(wall, cube).item() == pytest.approx(1e-3 / (4e-3 + 1 - 1e-3), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# front door behaviour
# ---------------------------------------------------------------------------------------------
def test_front_door_auto_selection_and_six_dof():
    a = B([0, 0, 0, 4, 1, 1, 0])
    b = B([0, 0, 0, 4, 1, 1, math.pi / 2])
    assert box_iou_3d(a, b).item() == pytest.approx(1 / 7)  # auto -> rotated (yaw != 0)
    assert box_iou_3d(a, b, rotated=False).item() == pytest.approx(1.0)  # yaw ignored
    assert axis_aligned_iou_3d(a, b).item() == pytest.approx(1.0)
    assert rotated_iou_3d(a, b).item() == pytest.approx(1 / 7)
    assert aligned_box_iou_3d(a, b).shape == (1,)
    # (N, 6) axis-aligned boxes, mixed with (M, 7)
    six = B([1, 1, 1, 2, 2, 2])
    seven = B([0, 0, 0, 2, 2, 2, 0])
    assert box_iou_3d(six, seven).item() == pytest.approx(1 / 15)
    assert box_iou_3d(six, seven, aligned=True).item() == pytest.approx(1 / 15)


def test_pairwise_matches_aligned_and_broadcasting():
    g = torch.Generator().manual_seed(7)
    a = torch.rand(9, 7, generator=g, dtype=F64) * 4
    b = torch.rand(11, 7, generator=g, dtype=F64) * 4
    a[:, 3:6] += 0.2
    b[:, 3:6] += 0.2
    for rotated in (False, True):
        pair = box_iou_3d(a, b, rotated=rotated)
        assert pair.shape == (9, 11)
        ref = box_iou_3d(
            a[:, None, :].expand(9, 11, 7), b[None].expand(9, 11, 7), aligned=True, rotated=rotated
        )
        assert torch.allclose(pair, ref, atol=1e-12)
        # aligned broadcasting of leading dims
        bc = box_iou_3d(a[:, None, :], b[None], aligned=True, rotated=rotated)
        assert torch.allclose(bc, ref, atol=1e-12)
    assert (box_iou_3d(a, b) > 0).any() and (box_iou_3d(a, b) == 0).any()


def test_empty_inputs(device):
    e, b = torch.zeros(0, 7, device=device), torch.rand(3, 7, device=device) + 0.1
    for rotated in (None, False, True):
        assert box_iou_3d(e, b, rotated=rotated).shape == (0, 3)
        assert box_iou_3d(b, e, rotated=rotated).shape == (3, 0)
        assert box_iou_3d(e, e, aligned=True, rotated=rotated).shape == (0,)
        assert giou_3d(e, b, rotated=rotated).shape == (0, 3)
        assert giou_3d(e, e, aligned=True, rotated=rotated).shape == (0,)
        assert diou_3d(e, e, rotated=rotated).shape == (0,)
    assert diou_loss(e, e, reduction="mean").item() == 0.0
    assert box_iou_3d(e[:, :6], torch.zeros(5, 6, device=device)).shape == (0, 5)


def test_dtypes_and_device_preserved():
    a = B([0, 0, 0, 1, 1, 1, 0])
    b = B([0, 0, 0, 1, 1, 1, math.pi / 4])
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        out = box_iou_3d(a.to(dtype), b.to(dtype))
        assert out.dtype == dtype
        assert out.float().item() == pytest.approx(1 / SQ2, rel=1e-2)
    assert box_iou_3d(a.float(), b.float()).item() == pytest.approx(1 / SQ2, rel=1e-5)


@pytest.mark.parametrize(
    "a, b, exc",
    [
        (torch.zeros(2, 5), torch.zeros(2, 7), ValueError),
        (torch.zeros(2, 7, dtype=torch.int64), torch.zeros(2, 7), TypeError),
        (torch.zeros(2, 7), torch.zeros(2, 7, dtype=F64), TypeError),
        (torch.tensor([[0.0, 0, 0, -1, 1, 1, 0]]), torch.zeros(1, 7), ValueError),
        (torch.zeros(2, 3, 7), torch.zeros(2, 7), ValueError),  # pairwise needs 2-D
        ("not a tensor", torch.zeros(1, 7), TypeError),
    ],
)
def test_bad_input(a, b, exc):
    with pytest.raises(exc):
        box_iou_3d(a, b)


def test_aligned_shape_mismatch():
    with pytest.raises(ValueError, match="broadcastable"):
        box_iou_3d(torch.zeros(3, 7), torch.zeros(4, 7), aligned=True)
    with pytest.raises(ValueError, match="reduction"):
        diou_loss(torch.ones(1, 7), torch.ones(1, 7), reduction="avg")


# ---------------------------------------------------------------------------------------------
# shapely cross-check (independent polygon construction with shapely.affinity)
# ---------------------------------------------------------------------------------------------
def _shapely_iou(a, b):
    def poly(x):
        p = shapely_box(-x[3] / 2, -x[4] / 2, x[3] / 2, x[4] / 2)
        p = affinity.rotate(p, x[6], origin=(0, 0), use_radians=True)
        return affinity.translate(p, x[0], x[1])

    area = poly(a).intersection(poly(b)).area
    zo = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
    inter = area * zo
    return inter / (a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter)


def _random_boxes(n, gen):
    c = torch.rand(n, 3, generator=gen, dtype=F64)
    d = torch.rand(n, 3, generator=gen, dtype=F64) * 2 + 0.05
    yaw = (torch.rand(n, 1, generator=gen, dtype=F64) * 2 - 1) * math.pi
    return torch.cat([c, d, yaw], dim=1)


def test_rotated_iou_matches_shapely_random_pairs(device):
    gen = torch.Generator().manual_seed(2024)
    a, b = _random_boxes(400, gen), _random_boxes(400, gen)
    # structured degenerate pairs: shared yaw (parallel edges), yaw + k*90 deg, shared centre
    a[:40, 6] = b[:40, 6]
    b[40:80, 6] = a[40:80, 6] + math.pi / 2 * torch.randint(1, 4, (40,), generator=gen).to(F64)
    b[80:100, :2] = a[80:100, :2]
    b[100:110] = a[100:110]
    # same yaw and dx, shifted along the box's own y-axis: two pairs of collinear edges
    b[110:130] = a[110:130]
    shift = torch.rand(20, generator=gen, dtype=F64) * a[110:130, 4]
    b[110:130, 0] -= shift * torch.sin(a[110:130, 6])
    b[110:130, 1] += shift * torch.cos(a[110:130, 6])
    ours = rotated_iou_3d(a.to(device), b.to(device), aligned=True)
    assert ours.device == device
    ours = ours.cpu()
    ref = torch.tensor([_shapely_iou(x.tolist(), y.tolist()) for x, y in zip(a, b)], dtype=F64)
    assert (ref > 0).sum() >= 200  # most pairs really overlap
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)
    # pairwise on a subset agrees with shapely too
    pair = box_iou_3d(a[:25].to(device), b[:30].to(device), rotated=True).cpu()
    ref_pair = torch.tensor(
        [[_shapely_iou(x.tolist(), y.tolist()) for y in b[:30]] for x in a[:25]], dtype=F64
    )
    assert torch.allclose(pair, ref_pair, rtol=1e-5, atol=1e-5)


def test_rotated_iou_float32_close_to_float64():
    gen = torch.Generator().manual_seed(5)
    a, b = _random_boxes(500, gen), _random_boxes(500, gen)
    a[:, :2] += 40.0  # KITTI-like ranges: far from the origin
    b[:, :2] += 40.0
    ref = rotated_iou_3d(a, b, aligned=True)
    f32 = rotated_iou_3d(a.float(), b.float(), aligned=True)
    assert (f32.double() - ref).abs().max().item() < 1e-4
    # the pairwise path (with its overlap pre-filter) agrees with the aligned one far out
    pair = box_iou_3d(a[:60].float(), b[:60].float(), rotated=True)
    assert (torch.diagonal(pair) - f32[:60]).abs().max().item() < 1e-6
    small = a[:80].float().clone()
    small[:, :2] = small[:, :2] * 0.05 + 100.0  # many tiny-offset overlapping boxes at 100 m
    dense = box_iou_3d(small, small, rotated=True)
    ref_dense = rotated_iou_3d(small.double()[:, None], small.double()[None], aligned=True)
    assert (dense.double() - ref_dense).abs().max().item() < 1e-4


# ---------------------------------------------------------------------------------------------
# GIoU / DIoU hand cases
# ---------------------------------------------------------------------------------------------
def test_giou_hand_cases():
    a = B([0, 0, 0, 2, 2, 2, 0])
    far = B([3, 0, 0, 2, 2, 2, 0])
    # IoU 0, enclosing x [-1, 4] -> 5 * 2 * 2 = 20, union 16 -> -4/20
    assert giou_3d(a, far, aligned=True).item() == pytest.approx(-0.2)
    assert giou_3d(a, far).shape == (1, 1)
    assert giou_3d(a, a, aligned=True).item() == pytest.approx(1.0)
    # rotated: unit cube vs 45 deg cube; enclosing world-axis-aligned box is sqrt2 x sqrt2 x 1
    c = B([0, 0, 0, 1, 1, 1, 0])
    r = B([0, 0, 0, 1, 1, 1, math.pi / 4])
    inter = 2 * SQ2 - 2
    union = 2 - inter
    expected = inter / union - (2.0 - union) / 2.0
    assert giou_3d(c, r, aligned=True).item() == pytest.approx(expected, rel=1e-12)
    assert giou_loss(c, r).item() == pytest.approx(1 - expected, rel=1e-12)
    # rotated=False: yaw ignored everywhere, the enclosing box included
    assert giou_3d(c, r, aligned=True, rotated=False).item() == pytest.approx(1.0)


def test_diou_hand_cases():
    a = B([0, 0, 0, 2, 2, 2, 0])
    far = B([3, 0, 0, 2, 2, 2, 0])
    # centre distance^2 = 9, enclosing [-1,4]x[-1,1]x[-1,1] -> diag^2 = 25 + 4 + 4
    assert diou_3d(a, far).item() == pytest.approx(-9 / 33)
    # overlap 1/15, centre distance^2 = 3 (full 3D), enclosing [-1,2]^3 -> diag^2 = 27
    b = B([1, 1, 1, 2, 2, 2, 0])
    assert diou_3d(a, b).item() == pytest.approx(1 / 15 - 3 / 27)
    assert diou_loss(a, b).item() == pytest.approx(1 - (1 / 15 - 3 / 27))
    assert diou_3d(a, a).item() == pytest.approx(1.0)
    # rotated, same centre: DIoU = IoU
    r = B([0, 0, 0, 2, 2, 2, math.pi / 4])
    assert diou_3d(a, r).item() == pytest.approx(1 / SQ2, rel=1e-12)
    batch = diou_loss(torch.cat([a, a]), torch.cat([far, b]), reduction="none")
    assert batch.shape == (2,)
    assert diou_loss(
        torch.cat([a, a]), torch.cat([far, b]), reduction="sum"
    ).item() == pytest.approx(batch.sum().item())


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------
def _generic_pairs(device="cpu"):
    a = B(
        [0.1, 0.2, 0.0, 2.0, 1.3, 1.1, 0.3],
        [1.0, -0.5, 0.4, 1.7, 2.2, 0.9, -1.1],
        [-0.3, 0.7, 0.1, 0.8, 0.6, 1.5, 2.4],
        device=device,
    )
    b = B(
        [0.7, 0.4, 0.3, 1.5, 1.8, 1.2, 1.0],
        [0.4, -0.1, 0.0, 2.1, 0.9, 1.4, 0.2],
        [-0.1, 0.5, 0.6, 1.1, 1.2, 0.7, -0.5],
        device=device,
    )
    return a.requires_grad_(), b.requires_grad_()


def test_gradcheck_rotated_iou(device):
    a, b = _generic_pairs(device)
    assert (rotated_iou_3d(a, b, aligned=True) > 0.05).all()  # a real overlap configuration
    assert torch.autograd.gradcheck(lambda x, y: rotated_iou_3d(x, y, aligned=True), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: rotated_iou_3d(x, y), (a, b))


def test_gradcheck_axis_aligned_giou_diou(device):
    a, b = _generic_pairs(device)
    assert torch.autograd.gradcheck(lambda x, y: axis_aligned_iou_3d(x, y, aligned=True), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: giou_3d(x, y, aligned=True, rotated=True), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: diou_3d(x, y, rotated=True), (a, b))


def test_rotated_iou_gradient_matches_axis_aligned_at_yaw_zero():
    a = B([0.0, 0.0, 0.0, 4.0, 2.0, 1.0, 0.0], [0.2, 0.1, 0.0, 1.0, 1.5, 2.0, 0.0]).requires_grad_()
    # generic: no coincident edges (there IoU has a kink and any subgradient is valid)
    b = B([1.0, 0.5, 0.25, 1.8, 2.2, 2.0, 0.0], [0.9, 0.4, 0.3, 1.0, 1.0, 1.0, 0.0])
    (g_rot,) = torch.autograd.grad(rotated_iou_3d(a, b, aligned=True).sum(), a)
    (g_aa,) = torch.autograd.grad(axis_aligned_iou_3d(a, b, aligned=True).sum(), a)
    assert torch.allclose(g_rot[:, :6], g_aa[:, :6], atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_finite_gradients_degenerate_configurations(dtype, device):
    base = B([0.5, -0.2, 0.1, 2.0, 1.0, 1.5, 0.7], dtype=dtype, device=device)
    c, s = math.cos(0.7), math.sin(0.7)
    cases = {
        "identical": base.clone(),
        "touching": base + base.new_tensor([[2.0 * c, 2.0 * s, 0, 0, 0, 0, 0]]),
        "sliding_along_edge": base + base.new_tensor([[0.5 * c, 0.5 * s, 0, 0, 0, 0, 0]]),
        "disjoint": base + base.new_tensor([[10.0, 0, 0, 0, 0, 0, 0]]),
        "touching_top": base + base.new_tensor([[0, 0, 1.5, 0, 0, 0, 0]]),
        "nested": base * base.new_tensor([[1, 1, 1, 0.5, 0.5, 0.5, 1]]),
        "quarter_turn": base + base.new_tensor([[0, 0, 0, 0, 0, 0, math.pi / 2]]),
        "zero_size": base * base.new_tensor([[1, 1, 1, 0, 1, 1, 1]]),
    }
    fns = {
        "rotated": lambda p, t: rotated_iou_3d(p, t, aligned=True),
        "pairwise": lambda p, t: box_iou_3d(p, t, rotated=True),
        "giou": lambda p, t: giou_3d(p, t, aligned=True, rotated=True),
        "diou": lambda p, t: diou_3d(p, t, rotated=True),
        "aa": lambda p, t: axis_aligned_iou_3d(p, t, aligned=True),
    }
    for case, other in cases.items():
        for name, fn in fns.items():
            p = base.clone().requires_grad_()
            t = other.clone().requires_grad_()
            val = fn(p, t)
            val.sum().backward()
            assert torch.isfinite(val).all(), (case, name)
            assert torch.isfinite(p.grad).all() and torch.isfinite(t.grad).all(), (case, name)
            assert p.grad.abs().max() < 100, (case, name)


def test_empty_backward(device):
    e = torch.zeros(0, 7, device=device, requires_grad=True)
    b = (torch.rand(4, 7, device=device) + 0.1).requires_grad_()
    box_iou_3d(e, b, rotated=True).sum().backward()
    assert b.grad is not None and torch.all(b.grad == 0)
