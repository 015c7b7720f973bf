"""Label assigners (sr3d_training.assigners): TR3D exact indices, SPOTA behaviour, configs."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry import box_iou_3d, normalized_vertex_distance
from sr3d_training.assigners import (
    TR3D_LABEL2LEVEL_SCANNET,
    AssignerConfig,
    AssignResult,
    SPOTAAssigner,
    TR3DAssigner,
    build_assigner,
    ensure_one_positive,
    level_spacing,
    sinkhorn_log,
    sinkhorn_log_sparse,
    squared_center_distance,
    top_k_decision,
    topk_then_resolve,
)

F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def grid(n: int, spacing: float, offset: float = 0.0) -> torch.Tensor:
    """(n^3, 3) float64 cubic grid of locations, metres."""
    xs = torch.arange(n, dtype=F64) * spacing + offset
    return torch.stack(torch.meshgrid(xs, xs, xs, indexing="ij"), -1).reshape(-1, 3)


def two_level_scene(n0: int = 12, s0: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Level 0: n0^3 grid at s0; level 1: the (n0/2)^3 grid at 2*s0 (as a stride-2 head level)."""
    l0 = grid(n0, s0)
    l1 = grid(n0 // 2, 2 * s0)
    locs = torch.cat([l0, l1])
    levels = torch.cat(
        [torch.zeros(len(l0), dtype=torch.long), torch.ones(len(l1), dtype=torch.long)]
    )
    return locs, levels


def init_like_predictions(locs: torch.Tensor, seed: int = 0, size: float = 1.0) -> torch.Tensor:
    """Boxes an untrained head decodes (random weights, std 0.01 like TR3D's init): centred on the
    location +- 1 cm, sizes ``size * exp(N(0, 0.01))``, yaw 0."""
    g = torch.Generator().manual_seed(seed)
    n = locs.shape[0]
    centre = locs + 0.01 * torch.randn(n, 3, generator=g, dtype=locs.dtype)
    dims = size * torch.exp(0.01 * torch.randn(n, 3, generator=g, dtype=locs.dtype))
    return torch.cat([centre, dims, torch.zeros(n, 1, dtype=locs.dtype)], 1)


def positives(res: AssignResult, g: int) -> set[int]:
    """Indices of the locations assigned to GT ``g``."""
    return set((res.gt_index == g).nonzero().flatten().tolist())


def reference_tr3d(locs, levels, boxes, labels, label2level, k=6):  # type: ignore[no-untyped-def]
    """Plain-python TR3D rule (for distinct distances): top-k per box, nearest box wins."""
    out = [-1] * len(locs)
    best = [math.inf] * len(locs)
    for g in range(len(boxes)):
        lvl = label2level[int(labels[g])]
        cands = [i for i in range(len(locs)) if int(levels[i]) == lvl]
        d = {i: float(((locs[i] - boxes[g, :3]) ** 2).sum()) for i in cands}
        for i in sorted(cands, key=lambda i: d[i])[:k]:
            if d[i] < best[i]:
                best[i], out[i] = d[i], g
    return out


# ----------------------------------------------------------------------------------------------
# TR3D
# ----------------------------------------------------------------------------------------------
def test_tr3d_hand_built_two_level_line_exact_indices() -> None:
    # level 0: x = 0.0 .. 0.9 step 0.1 (indices 0..9); level 1: x = 0.05 .. 0.85 step 0.2 (10..14)
    l0 = torch.stack(
        [torch.arange(10, dtype=F64) * 0.1, torch.zeros(10, dtype=F64), torch.zeros(10, dtype=F64)],
        1,
    )
    l1 = torch.stack(
        [
            torch.arange(5, dtype=F64) * 0.2 + 0.05,
            torch.zeros(5, dtype=F64),
            torch.zeros(5, dtype=F64),
        ],
        1,
    )
    locs = torch.cat([l0, l1])
    levels = torch.tensor([0] * 10 + [1] * 5)
    boxes = torch.tensor(
        [
            [0.32, 0.0, 0.0, 0.2, 0.2, 0.2, 0.0],  # class 0 -> level 0: 6 nearest = 3,4,2,5,1,6
            [0.71, 0.0, 0.0, 0.2, 0.2, 0.2, 0.0],  # class 0 -> level 0: 6 nearest = 7,8,6,9,5,4
            [0.50, 0.0, 0.0, 0.9, 0.9, 0.9, 0.0],  # class 1 -> level 1: only 5 candidates -> all
        ],
        dtype=F64,
    )
    labels = torch.tensor([0, 0, 1])
    res = TR3DAssigner([0, 1], top_k=6).assign(locs, levels, boxes, labels)
    # 4: d0 = .08^2 < d1 = .31^2 -> 0; 5: .18^2 < .21^2 -> 0; 6: .28^2 > .11^2 -> 1
    expected = [-1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert res.gt_index.tolist() == expected
    assert res.gt_index.dtype == torch.long
    assert res.counts().tolist() == [5, 4, 5]
    assert res.labels(labels).tolist() == [-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_tr3d_hand_built_grid_exact_indices() -> None:
    locs, levels = two_level_scene(n0=6, s0=0.1)  # level 0: 216 locations, level 1: 27
    boxes = torch.tensor(
        [[0.212, 0.234, 0.176, 0.3, 0.3, 0.3, 0.0], [0.41, 0.37, 0.33, 0.8, 0.8, 0.8, 0.0]],
        dtype=F64,
    )
    labels = torch.tensor([0, 1])
    res = TR3DAssigner([0, 1]).assign(locs, levels, boxes, labels)

    # box 0 on the 0.1 m grid, squared distances by hand (grid cell (i, j, k) = 0.1 * (i, j, k)):
    # (2,2,2) .001876  (2,3,2) .005076  (2,2,1) .007076  (3,2,2) .009476  (2,3,1) .010276
    # (3,3,2) .012676  | 7th: (1,2,2) .014276
    def cells(offset: int, n: int, *ijk: tuple[int, int, int]) -> set[int]:
        return {offset + (i * n + j) * n + k for i, j, k in ijk}

    assert positives(res, 0) == cells(
        0, 6, (2, 2, 2), (2, 3, 2), (2, 2, 1), (3, 2, 2), (2, 3, 1), (3, 3, 2)
    )
    # box 1 on the 0.2 m grid (indices 216..242): (2,2,2) .0059 (2,2,1) .0179 (2,1,2) .0339
    # (2,1,1) .0459 (1,2,2) .0499 (1,2,1) .0619 | 7th: (1,1,2) .0779
    assert positives(res, 1) == cells(
        216, 3, (2, 2, 2), (2, 2, 1), (2, 1, 2), (2, 1, 1), (1, 2, 2), (1, 2, 1)
    )
    assert res.num_pos == 12


def test_tr3d_matches_reference_on_random_scenes() -> None:
    g = torch.Generator().manual_seed(1)
    l2l = [0, 1, 1, 0]
    for _ in range(5):
        n, k = 150, 7
        locs = torch.rand(n, 3, generator=g, dtype=F64) * 3
        levels = torch.randint(0, 2, (n,), generator=g)
        boxes = torch.cat(
            [
                torch.rand(k, 3, generator=g, dtype=F64) * 3,
                torch.rand(k, 3, generator=g, dtype=F64) + 0.1,
                torch.zeros(k, 1, dtype=F64),
            ],
            1,
        )
        labels = torch.randint(0, 4, (k,), generator=g)
        res = TR3DAssigner(l2l).assign(locs, levels, boxes, labels)
        assert res.gt_index.tolist() == reference_tr3d(locs, levels, boxes, labels, l2l)


def test_tr3d_edge_cases() -> None:
    a = TR3DAssigner([0, 1, 2])
    locs, levels = two_level_scene(n0=4)
    box = torch.tensor([[0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.0]], dtype=F64)
    # K = 0
    res = a.assign(locs, levels, box[:0], torch.zeros(0, dtype=torch.long))
    assert res.gt_index.shape == (len(locs),) and bool((res.gt_index == -1).all())
    assert res.num_pos == 0 and res.counts().shape == (0,)
    # L = 0
    res = a.assign(locs[:0], levels[:0], box, torch.tensor([0]))
    assert res.gt_index.shape == (0,)
    # level without locations (class 2 -> level 2): background, the other box unaffected
    two = torch.cat([box, box + torch.tensor([0.2, 0, 0, 0, 0, 0, 0], dtype=F64)])
    res = a.assign(locs, levels, two, torch.tensor([2, 0]))
    assert res.counts().tolist() == [0, 6]
    # fewer than top_k candidates in total
    res = a.assign(locs[:3], levels[:3], box, torch.tensor([0]))
    assert res.gt_index.tolist() == [0, 0, 0]
    # bad inputs
    with pytest.raises(ValueError, match="gt_labels"):
        a.assign(locs, levels, box, torch.tensor([3]))
    with pytest.raises(ValueError, match="locations"):
        a.assign(locs[:, :2], levels, box, torch.tensor([0]))
    with pytest.raises(TypeError, match="levels"):
        a.assign(locs, levels.int(), box, torch.tensor([0]))
    with pytest.raises(ValueError, match="top_k"):
        TR3DAssigner([0, 1], top_k=0)
    with pytest.raises(TypeError):
        TR3DAssigner([0, 1.5])  # type: ignore[list-item]


def test_tr3d_on_real_scannet_scene(data_root) -> None:  # type: ignore[no-untyped-def]
    from sr3d_training.datasets import load_scannet_scene

    s = load_scannet_scene(data_root / "scannet" / "scannet_instance_data", "scene0000_00")
    pts = torch.from_numpy(s.points[:, :3])
    locs, levels = [], []
    for lvl, vs in enumerate((0.08, 0.16)):
        c = torch.unique(torch.floor(pts / vs).long(), dim=0)
        locs.append(c.float() * vs)
        levels.append(torch.full((len(c),), lvl))
    loc, lev = torch.cat(locs), torch.cat(levels)
    boxes, labels = torch.from_numpy(s.gt_boxes), torch.from_numpy(s.gt_labels)
    res = TR3DAssigner(TR3D_LABEL2LEVEL_SCANNET).assign(loc, lev, boxes, labels)
    pos = res.pos_mask
    assert 0 < int(pos.sum()) <= 6 * len(boxes)
    assert bool((res.counts() <= 6).all())
    table = torch.tensor(TR3D_LABEL2LEVEL_SCANNET)
    assert torch.equal(lev[pos], table[labels[res.gt_index[pos]]])  # right level
    # each positive is within reach of its box centre (the 6 nearest of a 8 / 16 cm grid)
    d = (loc[pos] - boxes[res.gt_index[pos], :3]).norm(dim=1)
    assert float(d.max()) < 1.0


# ----------------------------------------------------------------------------------------------
# SPOTA
# ----------------------------------------------------------------------------------------------
def test_spota_cost_matches_formula() -> None:
    locs, levels = two_level_scene(n0=6)
    pred = init_like_predictions(locs, size=0.5)
    boxes = torch.tensor([[0.23, 0.26, 0.31, 0.4, 0.3, 0.5, 0.0]], dtype=F64)
    labels = torch.tensor([0])
    for use_vd, beta, mu in ((True, 1.0, 1.0), (False, 1.0, 1.0), (True, 2.0, 3.0)):
        a = SPOTAAssigner(
            [0, 1],
            beta=beta,
            mu=mu,
            use_vertex_distance=use_vd,
            max_candidates=None,
            keep_cost=True,
        )
        res = a.assign(locs, levels, boxes, labels, pred)
        on = levels == 0
        b = boxes.expand(int(on.sum()), 7)
        d2 = ((locs[on] - boxes[:, :3]) ** 2).sum(1) / 0.1**2  # in strides of level 0 (0.1 m)
        want = (1 - box_iou_3d(pred[on], b, aligned=True)) + (1 - torch.exp(-mu * d2))
        if use_vd:
            want = want + beta * normalized_vertex_distance(pred[on], b)
        assert res.cost is not None
        torch.testing.assert_close(res.cost[on, 0], want)
        assert bool(torch.isinf(res.cost[~on]).all())  # other level: not a candidate


def test_spota_random_weights_picks_locations_near_the_centre() -> None:
    locs, levels = two_level_scene(n0=12, s0=0.1)
    pred = init_like_predictions(locs)
    boxes = torch.tensor(
        [[0.43, 0.52, 0.47, 0.5, 0.6, 0.4, 0.0], [0.85, 0.31, 0.66, 1.0, 0.8, 0.9, 0.0]], dtype=F64
    )
    labels = torch.tensor([0, 1])
    d2 = squared_center_distance(boxes[:, :3], locs)  # (K, L)
    for decision in ("top_mass", "max_mass"):
        a = SPOTAAssigner([0, 1], ot_decision=decision)
        res = a.assign(locs, levels, boxes, labels, pred)
        for g in range(2):
            pos = res.gt_index == g
            cand = levels == g
            assert int(pos.sum()) >= 1
            assert bool((levels[pos] == g).all())
            mean_pos = float(d2[g, pos].sqrt().mean())
            mean_cand = float(d2[g, cand].sqrt().mean())
            assert mean_pos < 0.25 * mean_cand
            # compare with the expected nearest set: positives are among the 8 nearest
            nearest = set(
                torch.topk(torch.where(cand, d2[g], math.inf), 8, largest=False).indices.tolist()
            )
            assert set(pos.nonzero().flatten().tolist()) <= nearest
        if decision == "top_mass":
            assert res.counts().tolist() == [6, 6]


def test_spota_positives_cluster_at_the_centre_with_a_random_weight_model(data_root) -> None:  # type: ignore[no-untyped-def]
    """A randomly initialised detector on a real scan (4 cm voxels: strides 0.64 / 1.28 m): every
    GT gets k = 6 positives, all within 1.6 strides of its centre and >= 90% of them among its 10
    nearest candidates; the stride-normalised centre prior pulls them closer than mu = 0."""
    from sr3d_ros.config import ModelConfig
    from sr3d_ros.models import TR3DDetector, decode_boxes, points_to_sparse
    from sr3d_training.datasets import load_scannet_scene

    s = load_scannet_scene(data_root / "scannet" / "scannet_instance_data", "scene0000_00")
    cfg = ModelConfig(voxel_size=0.04, width=0.25)
    torch.manual_seed(0)
    model = TR3DDetector(cfg).eval()
    with torch.no_grad():
        out = model(points_to_sparse([torch.from_numpy(s.points)], cfg.voxel_size))
    pred = decode_boxes(out.locations, out.bbox_pred)
    boxes, labels = torch.from_numpy(s.gt_boxes), torch.from_numpy(s.gt_labels)
    stride = level_spacing(out.locations, out.levels, 2)
    torch.testing.assert_close(stride, torch.tensor([0.64, 1.28]))
    gt_level = torch.tensor(cfg.label2level)[labels]

    def distances(mu: float) -> list[torch.Tensor]:
        res = SPOTAAssigner(cfg.label2level, mu=mu).assign(
            out.locations, out.levels, boxes, labels, pred
        )
        assert res.counts().tolist() == [6] * len(boxes)
        return [
            (out.locations[res.gt_index == g] - boxes[g, :3]).norm(dim=1) / stride[gt_level[g]]
            for g in range(len(boxes))
        ]

    d = distances(1.0)
    assert max(float(x.max()) for x in d) < 1.6
    near = 0
    for g, dg in enumerate(d):
        cand = (out.locations[out.levels == gt_level[g]] - boxes[g, :3]).norm(dim=1)
        tenth = float(cand.sort().values[9]) / float(stride[gt_level[g]])
        near += int((dg <= tenth + 1e-6).sum())
    assert near >= 0.9 * 6 * len(boxes)
    assert float(torch.cat(d).mean()) < float(torch.cat(distances(0.0)).mean())


def test_spota_perfect_predictions_win() -> None:
    locs, levels = two_level_scene(n0=12, s0=0.1)
    g = torch.Generator().manual_seed(3)
    n = len(locs)
    # poor predictions everywhere: small random boxes far off
    pred = torch.cat(
        [
            locs + 0.3 * torch.randn(n, 3, generator=g, dtype=F64),
            0.05 + 0.1 * torch.rand(n, 3, generator=g, dtype=F64),
            torch.zeros(n, 1, dtype=F64),
        ],
        1,
    )
    box = torch.tensor([[0.55, 0.45, 0.52, 0.6, 0.5, 0.4, 0.0]], dtype=F64)
    d2 = squared_center_distance(box[:, :3], locs)[0]
    d2 = torch.where(levels == 0, d2, math.inf)
    order = torch.argsort(d2)
    good = order[torch.tensor([5, 9, 14])]  # not the nearest ones
    pred[good] = box
    for decision in ("max_mass", "top_mass"):
        res = SPOTAAssigner([0, 1], ot_decision=decision).assign(
            locs, levels, box, torch.tensor([0]), pred
        )
        assert set(good.tolist()) <= set((res.gt_index == 0).nonzero().flatten().tolist())
    res = SPOTAAssigner([0, 1], use_ot=False, top_k=3).assign(
        locs, levels, box, torch.tensor([0]), pred
    )
    assert set((res.gt_index == 0).nonzero().flatten().tolist()) == set(good.tolist())


def test_spota_every_gt_gets_a_positive_and_levels_are_respected() -> None:
    locs, levels = two_level_scene(n0=8, s0=0.1)
    pred = init_like_predictions(locs, size=0.3)
    g = torch.Generator().manual_seed(5)
    k = 12  # crowded: 12 boxes in a 0.3 m cube
    boxes = torch.cat(
        [
            0.3 + 0.3 * torch.rand(k, 3, generator=g, dtype=F64),
            0.2 + 0.2 * torch.rand(k, 3, generator=g, dtype=F64),
            torch.zeros(k, 1, dtype=F64),
        ],
        1,
    )
    labels = torch.randint(0, 3, (k,), generator=g)
    l2l = [0, 1, 0]
    for kw in (
        {},
        {"ot_decision": "max_mass"},
        {"use_ot": False},
        {"max_candidates": None},
        {"sinkhorn_eps": 1.0},
    ):
        res = SPOTAAssigner(l2l, **kw).assign(locs, levels, boxes, labels, pred)
        assert bool((res.counts() >= 1).all()), kw
        if kw.get("ot_decision") != "max_mass":  # the top-k rules: k each (enough candidates)
            assert res.counts().tolist() == [6] * k, kw
        pos = res.pos_mask
        table = torch.tensor(l2l)
        assert torch.equal(levels[pos], table[labels[res.gt_index[pos]]]), kw


def test_spota_duplicate_gts_k0_l0_and_missing_level() -> None:
    locs, levels = two_level_scene(n0=8)
    pred = init_like_predictions(locs, size=0.4)
    box = torch.tensor([[0.33, 0.36, 0.41, 0.4, 0.4, 0.4, 0.0]], dtype=F64)
    a = SPOTAAssigner([0, 1, 2], ot_decision="top_mass")
    res = a.assign(locs, levels, box.repeat(2, 1), torch.tensor([0, 0]), pred)
    assert res.counts().tolist() == [6, 6]  # two identical GTs: 12 distinct positives
    single = a.assign(locs, levels, box, torch.tensor([0]), pred)
    assert single.counts().tolist() == [6]
    assert set(single.pos_mask.nonzero().flatten().tolist()) <= set(
        res.pos_mask.nonzero().flatten().tolist()
    )
    # K = 0, L = 0
    res = a.assign(locs, levels, box[:0], torch.zeros(0, dtype=torch.long), pred)
    assert bool((res.gt_index == -1).all()) and res.num_gts == 0
    res = a.assign(locs[:0], levels[:0], box, torch.tensor([0]), pred[:0])
    assert res.gt_index.shape == (0,)
    # class 2 -> level 2 has no locations: that GT gets nothing, the other is unaffected
    res = a.assign(locs, levels, box.repeat(2, 1), torch.tensor([2, 0]), pred)
    assert res.counts()[0] == 0 and res.counts()[1] >= 1
    # only a level without locations
    res = a.assign(locs, levels, box, torch.tensor([2]), pred)
    assert res.num_pos == 0
    # fewer candidates than k
    res = a.assign(locs[:3], levels[:3], box, torch.tensor([0]), pred[:3])
    assert res.counts().tolist() == [3]


def test_spota_background_cost_does_not_change_the_plan() -> None:
    locs, levels = two_level_scene(n0=8)
    pred = init_like_predictions(locs, size=0.4, seed=2)
    pred[:, :3] += 0.05 * torch.randn(
        len(locs), 3, generator=torch.Generator().manual_seed(0), dtype=F64
    )
    boxes = torch.tensor(
        [[0.33, 0.36, 0.41, 0.4, 0.4, 0.4, 0.0], [0.55, 0.5, 0.45, 0.3, 0.5, 0.4, 0.0]], dtype=F64
    )
    labels = torch.tensor([0, 0])
    r1 = SPOTAAssigner([0], keep_cost=True, bg_cost=3.0).assign(locs, levels, boxes, labels, pred)
    r2 = SPOTAAssigner([0], keep_cost=True, bg_cost=40.0).assign(locs, levels, boxes, labels, pred)
    assert r1.plan is not None and r2.plan is not None
    torch.testing.assert_close(r1.plan, r2.plan)
    assert torch.equal(r1.gt_index, r2.gt_index)
    # the GT rows of the plan carry k = 6 units each
    torch.testing.assert_close(r1.plan.sum(0), torch.full((2,), 6.0, dtype=F64), atol=1e-3, rtol=0)


def test_spota_rotated_boxes_and_float32() -> None:
    locs, levels = two_level_scene(n0=10)
    locs32 = locs.float()
    pred = init_like_predictions(locs32, size=0.6)
    pred[:, 6] = 0.3
    boxes = torch.tensor([[0.45, 0.42, 0.38, 0.8, 0.4, 0.5, 0.7]])
    res = SPOTAAssigner([0, 1], ot_decision="top_mass").assign(
        locs32, levels, boxes, torch.tensor([0]), pred
    )
    d = (locs32[res.pos_mask] - boxes[:, :3]).norm(dim=1)
    assert res.counts().tolist() == [6] and float(d.max()) < 0.2


def test_spota_cls_cost_ablation() -> None:
    locs, levels = two_level_scene(n0=8)
    pred = init_like_predictions(locs, size=0.4)
    box = torch.tensor([[0.35, 0.35, 0.35, 0.4, 0.4, 0.4, 0.0]], dtype=F64)  # 8 equidistant
    a = SPOTAAssigner([0, 1], use_cls_cost=True, cls_cost_weight=5.0, top_k=1, use_ot=False)
    with pytest.raises(ValueError, match="cls_logits"):
        a.assign(locs, levels, box, torch.tensor([0]), pred)
    logits = torch.full((len(locs), 2), -4.0, dtype=F64)
    d2 = squared_center_distance(box[:, :3], locs)[0]
    far = int(torch.topk(torch.where(levels == 0, d2, math.inf), 8, largest=False).indices[7])
    logits[far, 0] = 6.0  # one of the 8 nearest already scores the class: it wins
    res = a.assign(locs, levels, box, torch.tensor([0]), pred, cls_logits=logits)
    assert (res.gt_index == 0).nonzero().flatten().tolist() == [far]


def reference_top_k(score: torch.Tensor, cost: torch.Tensor, k: int) -> list[int]:
    """Plain-python top-k with conflicts to the lower cost and refill ((K, L) dense inputs, inf =
    not a candidate; lower score = better): rounds in which every GT short of k proposes its best
    free candidates, each location to the lowest-cost proposer (ties: lower GT)."""
    n_gt, n = cost.shape
    owner = [-1] * n
    count = [0] * n_gt
    order = [
        sorted(
            (j for j in range(n) if cost[g, j] < math.inf), key=lambda j: (float(score[g, j]), j)
        )
        for g in range(n_gt)
    ]
    while True:
        proposals: dict[int, list[int]] = {}
        for g in range(n_gt):
            free = [j for j in order[g] if owner[j] < 0][: max(k - count[g], 0)]
            for j in free:
                proposals.setdefault(j, []).append(g)
        if not proposals:
            return owner
        for j, gs in proposals.items():
            owner[j] = min(gs, key=lambda g: (float(cost[g, j]), g))
            count[owner[j]] += 1


def test_top_k_decision_hand_case() -> None:
    # row 0 picks 0, 1; row 1 picks 0, 2; location 0 to row 1 (0.05 < 0.1); row 0 then takes 3
    cost = torch.tensor([[0.1, 0.2, 0.3, 0.9], [0.05, 0.6, 0.25, 0.4]])
    cols = torch.arange(4).repeat(2, 1)
    need = torch.tensor([2, 2])
    assert top_k_decision(cost, cost, need, cols, 4, largest=False).tolist() == [1, 0, 1, 0]
    # TR3D's rule (no refill) would leave row 0 with one positive
    assert topk_then_resolve(cost, 2, largest=False).tolist() == [1, 0, 1, -1]
    # ranked by a score, conflicts by the cost: row 0 prefers 3, 2; row 1 prefers 3, 1
    score = torch.tensor([[0.0, 0.0, 2.0, 3.0], [0.0, 1.0, 0.0, 5.0]])
    got = top_k_decision(score, cost, need, cols, 4, largest=True).tolist()
    # round 1: location 3 to row 1 (cost .4 < .9), 2 to row 0, 1 to row 1; round 2: row 0 lacks
    # one and takes its next free location, 0
    assert got == [0, 1, 0, 1]
    assert (
        top_k_decision(cost[:0], cost[:0], need[:0], cols[:0], 4, largest=False).tolist()
        == [-1] * 4
    )


def test_spota_use_ot_false_is_topk_lowest_cost_with_refill() -> None:
    locs, levels = two_level_scene(n0=8)
    g = torch.Generator().manual_seed(7)
    pred = init_like_predictions(locs, size=0.4)
    pred[:, :3] += 0.1 * torch.randn(len(locs), 3, generator=g, dtype=F64)
    boxes = torch.tensor(
        [[0.33, 0.36, 0.41, 0.4, 0.4, 0.4, 0.0], [0.45, 0.4, 0.45, 0.3, 0.5, 0.4, 0.0]], dtype=F64
    )
    res = SPOTAAssigner([0], use_ot=False, keep_cost=True, max_candidates=None).assign(
        locs, levels, boxes, torch.tensor([0, 0]), pred
    )
    assert res.cost is not None
    cost = res.cost.T  # (K, L)
    assert res.gt_index.tolist() == reference_top_k(cost, cost, 6)
    assert res.counts().tolist() == [6, 6]


def test_spota_top_mass_matches_reference_on_the_plan() -> None:
    locs, levels = two_level_scene(n0=8)
    pred = init_like_predictions(locs, size=0.3, seed=4)
    g = torch.Generator().manual_seed(9)
    k = 5
    boxes = torch.cat(
        [
            0.3 + 0.2 * torch.rand(k, 3, generator=g, dtype=F64),
            0.2 + 0.2 * torch.rand(k, 3, generator=g, dtype=F64),
            torch.zeros(k, 1, dtype=F64),
        ],
        1,
    )
    res = SPOTAAssigner([0], keep_cost=True).assign(
        locs, levels, boxes, torch.zeros(k, dtype=torch.long), pred
    )
    assert res.cost is not None and res.plan is not None
    cost, plan = res.cost.T, res.plan.T
    assert res.gt_index.tolist() == reference_top_k(-plan, cost, 6)
    assert res.counts().tolist() == [6] * k


def test_spota_does_not_track_gradients_and_validates() -> None:
    locs, levels = two_level_scene(n0=6)
    pred = init_like_predictions(locs, size=0.4).requires_grad_(True)
    box = torch.tensor([[0.3, 0.3, 0.3, 0.4, 0.4, 0.4, 0.0]], dtype=F64)
    res = SPOTAAssigner([0, 1], keep_cost=True).assign(locs, levels, box, torch.tensor([0]), pred)
    assert not res.gt_index.requires_grad and res.cost is not None and not res.cost.requires_grad
    with pytest.raises(ValueError, match="pred_boxes"):
        SPOTAAssigner([0, 1]).assign(locs, levels, box, torch.tensor([0]))
    with pytest.raises(ValueError, match="pred_boxes"):
        SPOTAAssigner([0, 1]).assign(locs, levels, box, torch.tensor([0]), pred[:3])
    for bad in (
        {"sinkhorn_eps": 0.0},
        {"top_k": 0},
        {"max_candidates": 3},
        {"mu": -1.0},
        {"ot_decision": "argmax"},
        {"sinkhorn_iters": 0},
    ):
        with pytest.raises(ValueError):
            SPOTAAssigner([0, 1], **bad)  # type: ignore[arg-type]


def test_sinkhorn_marginals_and_small_eps_limit() -> None:
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(3, 7, generator=g, dtype=F64)
    cost[0, 2] = math.inf  # forbidden pair
    supply = torch.tensor([2.0, 1.0, 4.0], dtype=F64)
    demand = torch.ones(7, dtype=F64)
    plan = sinkhorn_log(cost, supply, demand, eps=0.05, iters=500).exp()
    torch.testing.assert_close(plan.sum(0), demand)
    torch.testing.assert_close(plan.sum(1), supply, atol=1e-6, rtol=0)
    assert float(plan[0, 2]) == 0.0
    # eps -> 0: the plan becomes the exact (integral) optimum, here checked by brute force
    c = cost[:2, :3]  # row 0 sends 1 unit, row 1 sends 2; c[0, 2] is forbidden
    plan = sinkhorn_log(
        c, torch.tensor([1.0, 2.0], dtype=F64), torch.ones(3, dtype=F64), eps=0.002, iters=2000
    ).exp()
    total = {i: float(c[0, i] + c[1].sum() - c[1, i]) for i in range(2)}
    best = min(total, key=total.__getitem__)
    assert int(plan[0].argmax()) == best and float(plan[0].max()) > 0.99
    with pytest.raises(ValueError):
        sinkhorn_log(cost, supply, demand, eps=0.0, iters=5)


def test_sparse_sinkhorn_matches_dense() -> None:
    g = torch.Generator().manual_seed(4)
    # two groups (scenes): rows 0-1 reach columns 0..5, row 2 reaches columns 6..9
    r, m, u = 3, 4, 10
    columns = torch.tensor([[0, 2, 3, 5], [1, 2, 4, 0], [6, 9, 7, 8]])
    cost = torch.rand(r, m, generator=g, dtype=F64)
    cost[1, 3] = math.inf  # a missing entry
    group = torch.tensor([0] * 6 + [1] * 4)
    supply = torch.tensor([2.0, 1.5, 3.0], dtype=F64)
    bg = torch.tensor([6 - 3.5, 4 - 3.0], dtype=F64)
    lp, lp_bg = sinkhorn_log_sparse(cost, columns, u, supply, group, bg, 2.5, 0.1, 200)
    dense = torch.full((r + 2, u), math.inf, dtype=F64)
    for i in range(r):
        for j in range(m):
            dense[i, columns[i, j]] = cost[i, j]
    dense[r, :6] = 2.5
    dense[r + 1, 6:] = 2.5
    ref = sinkhorn_log(dense, torch.cat([supply, bg]), torch.ones(u, dtype=F64), 0.1, 200).exp()
    got = torch.zeros(r + 2, u, dtype=F64)
    for i in range(r):
        for j in range(m):
            got[i, columns[i, j]] = lp[i, j].exp()
    got[r, :6] = lp_bg[:6].exp()
    got[r + 1, 6:] = lp_bg[6:].exp()
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(got.sum(0), torch.ones(u, dtype=F64))


def test_spota_assign_batch_equals_per_scene() -> None:
    g = torch.Generator().manual_seed(8)
    scenes = []
    for n0, k, seed in ((8, 4, 0), (6, 0, 1), (7, 3, 2), (0, 2, 3)):
        locs, levels = (
            two_level_scene(n0=n0)
            if n0
            else (torch.zeros(0, 3, dtype=F64), torch.zeros(0, dtype=torch.long))
        )
        pred = init_like_predictions(locs, seed=seed, size=0.4)
        pred[:, :3] += 0.05 * torch.randn(len(locs), 3, generator=g, dtype=F64)
        boxes = torch.cat(
            [
                0.2 + 0.4 * torch.rand(k, 3, generator=g, dtype=F64),
                0.2 + 0.3 * torch.rand(k, 3, generator=g, dtype=F64),
                torch.zeros(k, 1, dtype=F64),
            ],
            1,
        )
        labels = torch.randint(0, 2, (k,), generator=g)
        scenes.append((locs, levels, boxes, labels, pred))
    for kw in ({}, {"ot_decision": "top_mass"}, {"use_ot": False}):
        a = SPOTAAssigner([0, 1], keep_cost=True, **kw)
        batch = a.assign_batch(*[list(x) for x in zip(*scenes)])
        for res, sc in zip(batch, scenes):
            single = a.assign(*sc)
            assert torch.equal(res.gt_index, single.gt_index), kw
            assert res.num_gts == sc[2].shape[0]
            assert res.cost is not None and single.cost is not None
            torch.testing.assert_close(res.cost, single.cost)
            if res.plan is not None and single.plan is not None:
                torch.testing.assert_close(res.plan, single.plan)
    assert SPOTAAssigner([0, 1]).assign_batch([], [], [], [], []) == []


def test_spota_ensure_one_rule() -> None:
    inf = math.inf
    cols = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    cost = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.5, 0.6], [0.2, 0.3, 0.9]])
    # GT 0 owns locations 0 and 1; GT 1 and GT 2 are empty and both want location 0:
    # round 1: GT 1 (0.1 < 0.2) takes it from GT 0 (which keeps 1); round 2: location 0 and 1
    # are now the only positives of GTs 1 / 0, so GT 2 takes the background location 2
    out = ensure_one_positive(torch.tensor([0, 0, -1]), cost, cols)
    assert out.tolist() == [1, 0, 2]
    # nothing to do -> unchanged; GT without candidates -> ignored
    cost2 = torch.tensor([[0.1, 0.2, inf], [inf, inf, inf]])
    assert ensure_one_positive(torch.tensor([0, -1, -1]), cost2, cols[:2]).tolist() == [
        0,
        -1,
        -1,
    ]
    # a single shared candidate: the empty GT takes it (fallback), the other one loses it
    out = ensure_one_positive(
        torch.tensor([0]), torch.tensor([[0.1], [0.2]]), torch.tensor([[0], [0]])
    )
    assert out.tolist() == [1]


def test_topk_then_resolve() -> None:
    score = torch.tensor([[0.1, 0.2, 0.3, math.inf], [0.05, 0.5, 0.25, 0.4]])
    # row 0 picks 0, 1; row 1 picks 0, 2 -> column 0 to row 1 (0.05 < 0.1)
    assert topk_then_resolve(score, 2, largest=False).tolist() == [1, 0, 1, -1]
    tie = torch.tensor([[1.0, 2.0], [1.0, 3.0]])
    assert topk_then_resolve(tie, 1, largest=False).tolist() == [0, -1]  # tie -> lower row
    assert topk_then_resolve(score[:0], 2, largest=False).tolist() == [-1] * 4


# ----------------------------------------------------------------------------------------------
# configs / builder
# ----------------------------------------------------------------------------------------------
def test_assigner_config_and_builder() -> None:
    cfg = AssignerConfig()
    assert cfg.kind == "tr3d" and cfg.top_k == 6 and cfg.label2level == TR3D_LABEL2LEVEL_SCANNET
    assert (cfg.mu, cfg.beta, cfg.sinkhorn_eps, cfg.sinkhorn_iters) == (1.0, 1.0, 0.1, 50)
    assert (cfg.max_candidates, cfg.use_ot, cfg.use_vertex_distance, cfg.use_cls_cost) == (
        64,
        True,
        True,
        False,
    )
    assert isinstance(build_assigner(), TR3DAssigner)
    a = build_assigner({"kind": "spota", "label2level": [0, 1], "use_ot": False, "beta": 0.5})
    assert isinstance(a, SPOTAAssigner) and not a.use_ot and a.beta == 0.5
    assert a.label2level == (0, 1) and a.bg_cost == 2.5
    b = build_assigner(AssignerConfig(kind="spota"), use_vertex_distance=False)
    assert isinstance(b, SPOTAAssigner) and not b.use_vertex_distance
    assert AssignerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        build_assigner({"kind": "spota", "topk": 6})
    with pytest.raises(ValueError, match="unknown"):
        build_assigner(None, epsilon=0.1)
    with pytest.raises(ValueError, match="kind"):
        AssignerConfig(kind="atss")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AssignerConfig(kind="spota", sinkhorn_eps=-1.0)
    with pytest.raises(ValueError, match="use_ot"):  # types: the core's strict from_dict
        AssignerConfig.from_dict({"use_ot": "yes"})
    with pytest.raises(TypeError, match="mapping"):
        AssignerConfig.from_dict([("kind", "spota")])  # type: ignore[arg-type]
    with pytest.raises(dataclasses_frozen_error()):
        cfg.top_k = 3  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_assign_batch_and_result_helpers() -> None:
    locs, levels = two_level_scene(n0=6)
    pred = init_like_predictions(locs, size=0.4)
    box = torch.tensor([[0.3, 0.3, 0.3, 0.4, 0.4, 0.4, 0.0]], dtype=F64)
    for a in (TR3DAssigner([0, 1]), SPOTAAssigner([0, 1])):
        out = a.assign_batch(
            [locs, locs[:10]],
            [levels, levels[:10]],
            [box, box[:0]],
            [torch.tensor([0]), torch.zeros(0, dtype=torch.long)],
            [pred, pred[:10]],
        )
        assert len(out) == 2 and isinstance(out[0], AssignResult)
        assert out[0].num_pos >= 1 and out[1].num_pos == 0
        assert torch.equal(a(locs, levels, box, torch.tensor([0]), pred).gt_index, out[0].gt_index)
        with pytest.raises(ValueError):
            a.assign_batch([locs], [levels, levels], [box], [torch.tensor([0])])
        with pytest.raises(ValueError):
            out[0].labels(torch.tensor([0, 1]))
