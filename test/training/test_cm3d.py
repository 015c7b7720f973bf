"""CM3D (sr3d_training.assigners.cm3d): TAL reference at gamma = 0, positives per object, the
centre prior, conflicts, and the MGIoU term moving the choice."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_training.assigners import CM3DAssigner, CM3DConfig

STRIDE = 8.0


def _grid(h: int, w: int) -> torch.Tensor:
    """(h*w, 2) anchor points (u, v) of one stride-8 level, pixel-centre convention."""
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    u = (j.flatten() + 0.5) * STRIDE - 0.5
    v = (i.flatten() + 0.5) * STRIDE - 0.5
    return torch.stack([u, v], dim=1).double()


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / (union + 1e-9)


def tal_reference(scores, pred2d, anchors, labels, gt2d, mask, topk, alpha=0.5, beta=6.0):  # type: ignore[no-untyped-def]
    """YOLOv10's task-aligned assignment written plainly, one object and one location at a
    time: candidates strictly inside the box, metric p^alpha * IoU^beta, top-k per object
    (ties: lower location), a location claimed twice to the higher metric (ties: lower object),
    soft target s * max IoU / max s over the object's positives."""
    B, A, _ = scores.shape
    G = labels.shape[1]
    gt_index = [[-1] * A for _ in range(B)]
    target = [[0.0] * A for _ in range(B)]
    for b in range(B):
        claims: dict[int, list[tuple[float, int]]] = {}
        metric: dict[tuple[int, int], tuple[float, float]] = {}
        for g in range(G):
            if not mask[b, g]:
                continue
            x1, y1, x2, y2 = gt2d[b, g].tolist()
            cands = []
            for a in range(A):
                u, v = anchors[a].tolist()
                if min(u - x1, v - y1, x2 - u, y2 - v) > 1e-9:
                    iou = _iou(pred2d[b, a].tolist(), [x1, y1, x2, y2])
                    p = float(scores[b, a, labels[b, g]])
                    s = p**alpha * iou**beta
                    metric[(g, a)] = (s, iou)
                    cands.append((-s, a))
            for _, a in sorted(cands)[:topk]:
                claims.setdefault(a, []).append((metric[(g, a)][0], g))
        winners: dict[int, list[int]] = {}
        for a, cl in claims.items():
            best = max(s for s, _ in cl)
            g = min(g for s, g in cl if s == best)
            gt_index[b][a] = g
            winners.setdefault(g, []).append(a)
        for g, locs in winners.items():
            max_s = max(metric[(g, a)][0] for a in locs)
            max_q = max(metric[(g, a)][1] for a in locs)
            for a in locs:
                target[b][a] = metric[(g, a)][0] * max_q / (max_s + 1e-9)
    return torch.tensor(gt_index), torch.tensor(target, dtype=torch.float64)


def _random_case(seed: int, B: int = 2, G: int = 5, h: int = 12, w: int = 16):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    anchors = _grid(h, w)
    A = anchors.shape[0]
    scores = torch.rand(B, A, 3, generator=gen, dtype=torch.float64)
    half = 4 + 20 * torch.rand(B, A, 2, generator=gen, dtype=torch.float64)
    shift = 6 * torch.randn(B, A, 2, generator=gen, dtype=torch.float64)
    centre = anchors[None] + shift
    pred2d = torch.cat([centre - half, centre + half], dim=-1)
    c = torch.rand(B, G, 2, generator=gen, dtype=torch.float64) * torch.tensor([w, h]) * STRIDE
    gh = 10 + 30 * torch.rand(B, G, 2, generator=gen, dtype=torch.float64)
    gt2d = torch.cat([c - gh, c + gh], dim=-1)  # overlapping objects: conflicts happen
    labels = torch.randint(0, 3, (B, G), generator=gen)
    mask = torch.ones(B, G, dtype=torch.bool)
    mask[1, -1] = False  # padding
    return scores, pred2d, anchors, labels, gt2d, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("topk", [10, 1])
def test_gamma_zero_is_exactly_tal(seed: int, topk: int) -> None:
    scores, pred2d, anchors, labels, gt2d, mask = _random_case(seed)
    assigner = CM3DAssigner(CM3DConfig(gamma=0.0))
    res = assigner.assign(scores, pred2d, None, anchors, labels, gt2d, None, mask, topk)
    ref_index, ref_target = tal_reference(scores, pred2d, anchors, labels, gt2d, mask, topk)
    assert torch.equal(res.gt_index, ref_index)
    torch.testing.assert_close(res.target_score, ref_target, rtol=1e-12, atol=1e-15)
    # conflicts were exercised: some location lies inside several boxes of its image
    u, v = anchors[:, 0], anchors[:, 1]
    inside = (
        (u > gt2d[..., 0, None]) & (u < gt2d[..., 2, None])
        & (v > gt2d[..., 1, None]) & (v < gt2d[..., 3, None])
    ) & mask[..., None]  # fmt: skip
    assert (inside.sum(1) > 1).any()
    # gamma = 0 ignores any 3D boxes passed in
    boxes3d = torch.rand(2, anchors.shape[0], 7, dtype=torch.float64) + 0.5
    gt3d = torch.rand(2, labels.shape[1], 7, dtype=torch.float64) + 0.5
    again = assigner.assign(scores, pred2d, boxes3d, anchors, labels, gt2d, gt3d, mask, topk)
    assert torch.equal(again.gt_index, res.gt_index)


def _separated_case(n_inside: tuple[int, ...]):  # type: ignore[no-untyped-def]
    """Disjoint objects on a 10 x 40 grid; object i covers the first n_inside[i] anchors of
    row 2*i+1 (a thin box around them), whose predicted 2D boxes are near that box."""
    h, w = 10, 40
    anchors = _grid(h, w)
    A = anchors.shape[0]
    G = len(n_inside)
    gt2d = torch.zeros(1, G, 4, dtype=torch.float64)
    for g, n in enumerate(n_inside):
        row = 2 * g + 1
        v = (row + 0.5) * STRIDE - 0.5
        gt2d[0, g] = torch.tensor([0.0, v - 3, n * STRIDE - 1.0, v + 3])
    scores = torch.full((1, A, 3), 0.5, dtype=torch.float64)
    pred2d = torch.cat([anchors - 4, anchors + 4], dim=-1)[None]
    for g in range(G):
        row = slice((2 * g + 1) * w, (2 * g + 2) * w)
        pred2d[0, row] = gt2d[0, g] + torch.linspace(0, 2, w, dtype=torch.float64)[:, None]
    labels = torch.zeros(1, G, dtype=torch.int64)
    mask = torch.ones(1, G, dtype=torch.bool)
    return scores, pred2d, anchors, labels, gt2d, mask


def test_positives_per_object_and_only_inside_the_box() -> None:
    scores, pred2d, anchors, labels, gt2d, mask = _separated_case((25, 12, 3))
    boxes3d = torch.tensor([10.0, 0, 0, 4, 2, 1.5, 0], dtype=torch.float64).expand(1, 400, 7)
    gt3d = torch.tensor([10.0, 0.5, 0, 4, 2, 1.5, 0.3], dtype=torch.float64).expand(1, 3, 7)
    assigner = CM3DAssigner()
    for k, expected in ((10, [10, 10, 3]), (1, [1, 1, 1])):
        res = assigner.assign(scores, pred2d, boxes3d, anchors, labels, gt2d, gt3d, mask, k)
        assert res.counts(3).tolist() == [expected]
        pos = res.gt_index[0] >= 0
        g = res.gt_index[0][pos]
        uv = anchors[pos]
        box = gt2d[0, g]
        assert ((uv[:, 0] > box[:, 0]) & (uv[:, 0] < box[:, 2])).all()
        assert ((uv[:, 1] > box[:, 1]) & (uv[:, 1] < box[:, 3])).all()
        assert (res.target_score[0][pos] > 0).all() and (res.target_score[0][~pos] == 0).all()
        # the soft target's maximum per object is that object's best quality
        for gi in range(3):
            sel = res.gt_index[0] == gi
            best = float(res.quality[0][sel].max())
            assert float(res.target_score[0][sel].max()) == pytest.approx(best, rel=1e-6)


def test_no_objects_gives_background() -> None:
    scores, pred2d, anchors, _, _, _ = _separated_case((5,))
    empty = torch.zeros(1, 0, dtype=torch.int64)
    res = CM3DAssigner(CM3DConfig(gamma=0)).assign(
        scores, pred2d, None, anchors, empty, torch.zeros(1, 0, 4).double(), None,
        torch.zeros(1, 0, dtype=torch.bool), 10,
    )  # fmt: skip
    assert (res.gt_index < 0).all() and (res.target_score == 0).all()


def test_shared_location_goes_to_the_higher_metric() -> None:
    """Two boxes contain the same single anchor; the one the predicted box overlaps more wins
    (whatever their order), the other object gets no positive."""
    anchors = torch.tensor([[20.0, 20.0], [60.0, 60.0]], dtype=torch.float64)
    pred2d = torch.tensor([[[10.0, 10, 30, 30], [50, 50, 70, 70]]], dtype=torch.float64)
    scores = torch.full((1, 2, 3), 0.8, dtype=torch.float64)
    good, poor = [11.0, 11, 31, 31], [0.0, 0, 40, 40]
    for boxes, winner in (([good, poor], 0), ([poor, good], 1)):
        gt2d = torch.tensor([boxes], dtype=torch.float64)
        res = CM3DAssigner(CM3DConfig(gamma=0)).assign(
            scores, pred2d, None, anchors, torch.zeros(1, 2, dtype=torch.int64), gt2d, None,
            torch.ones(1, 2, dtype=torch.bool), 10,
        )  # fmt: skip
        assert res.gt_index.tolist() == [[winner, -1]]
        assert res.counts(2)[0, 1 - winner] == 0


def test_mgiou_term_moves_the_one_to_one_choice() -> None:
    """Two candidates with the same class score and the same 2D box: TAL (gamma = 0) takes the
    lower index; CM3D (gamma = 1) takes the one whose 3D box matches the object's."""
    anchors = torch.tensor([[20.0, 20.0], [24.0, 20.0]], dtype=torch.float64)
    pred2d = torch.tensor([[[10.0, 10, 34, 30], [10, 10, 34, 30]]], dtype=torch.float64)
    scores = torch.full((1, 2, 3), 0.6, dtype=torch.float64)
    gt2d = torch.tensor([[[8.0, 8, 36, 32]]], dtype=torch.float64)
    gt3d = torch.tensor([[[15.0, 2.0, 0.8, 3.9, 1.6, 1.5, 0.4]]], dtype=torch.float64)
    wrong = torch.tensor([22.0, 2.0, 0.8, 3.9, 1.6, 1.5, 0.4 + math.pi / 2])
    pred3d = torch.stack([wrong.double(), gt3d[0, 0]])[None]
    args = (scores, pred2d, pred3d, anchors, torch.zeros(1, 1, dtype=torch.int64), gt2d, gt3d)
    mask = torch.ones(1, 1, dtype=torch.bool)
    tal = CM3DAssigner(CM3DConfig(gamma=0.0)).assign(*args, mask, 1)
    cm3d = CM3DAssigner(CM3DConfig(gamma=1.0)).assign(*args, mask, 1)
    assert tal.gt_index.tolist() == [[0, -1]]
    assert cm3d.gt_index.tolist() == [[-1, 0]]
    iou = _iou(pred2d[0, 1].tolist(), gt2d[0, 0].tolist())
    assert float(cm3d.metric[0, 1]) == pytest.approx(0.6**0.5 * iou**6)  # MGIoU = 1: term 1


def test_bad_inputs() -> None:
    scores, pred2d, anchors, labels, gt2d, mask = _separated_case((5,))
    with pytest.raises(ValueError, match="gamma > 0 needs"):
        CM3DAssigner().assign(scores, pred2d, None, anchors, labels, gt2d, None, mask, 10)
    with pytest.raises(ValueError, match="anchor_points must be"):
        CM3DAssigner(CM3DConfig(gamma=0)).assign(
            scores, pred2d, None, anchors[:-1], labels, gt2d, None, mask, 10
        )
    with pytest.raises(ValueError, match="topk_one2many"):
        CM3DConfig(topk_one2many=0)
    with pytest.raises(ValueError, match="unknown key"):
        CM3DConfig.from_dict({"gama": 1.0})
