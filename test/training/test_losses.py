"""Losses (sr3d_training.losses): hand-computed values, gradients, RAS safety, selector."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry import diou_3d
from sr3d_training.losses import (
    ClassificationLoss,
    ClassificationLossConfig,
    box_diou_loss,
    build_classification_loss,
    collate_assignments,
    iou_targets,
    quality_focal_loss,
    ras_loss,
    ras_targets,
    sigmoid_focal_loss,
    soft_rank,
    varifocal_loss,
)

F64 = torch.float64


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def t64(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=F64)


# ----------------------------------------------------------------------------------------------
# focal / QFL / VFL values
# ----------------------------------------------------------------------------------------------
def test_focal_loss_hand_values() -> None:
    logits = t64(0.0, 2.0, -1.5, 3.0)[:, None]
    targets = t64(1.0, 0.0, 1.0, 0.0)[:, None]
    got = sigmoid_focal_loss(logits, targets).flatten().tolist()
    a, g = 0.25, 2.0
    want = [
        -a * (1 - sig(0.0)) ** g * math.log(sig(0.0)),  # = 0.25 * 0.25 * ln 2
        -(1 - a) * sig(2.0) ** g * math.log(1 - sig(2.0)),
        -a * (1 - sig(-1.5)) ** g * math.log(sig(-1.5)),
        -(1 - a) * sig(3.0) ** g * math.log(1 - sig(3.0)),
    ]
    assert got[0] == pytest.approx(0.0625 * math.log(2), rel=1e-12)
    assert got == pytest.approx(want, rel=1e-12)
    # gamma = 0, alpha < 0 -> plain BCE
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=0.0, alpha=-1.0), bce)
    # reductions
    full = sigmoid_focal_loss(logits, targets)
    assert float(sigmoid_focal_loss(logits, targets, reduction="sum")) == pytest.approx(
        float(full.sum())
    )
    assert float(sigmoid_focal_loss(logits, targets, reduction="mean")) == pytest.approx(
        float(full.mean())
    )
    assert float(sigmoid_focal_loss(logits[:0], targets[:0], reduction="mean")) == 0.0
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(logits, targets, reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        sigmoid_focal_loss(logits, targets[:2])
    with pytest.raises(TypeError):
        sigmoid_focal_loss(logits, targets.long())


def test_losses_are_stable_for_extreme_logits() -> None:
    logits = torch.tensor([[-200.0, -30.0, 0.0, 30.0, 200.0]] * 2, requires_grad=True)
    targets = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.3, 0.0, 0.0]])
    for fn in (sigmoid_focal_loss, quality_focal_loss, varifocal_loss):
        loss = fn(logits, targets)
        assert bool(torch.isfinite(loss).all()), fn.__name__
        (g,) = torch.autograd.grad(loss.sum(), logits)
        assert bool(torch.isfinite(g).all()), fn.__name__
    # focal of a confident right answer is ~0, of a confident wrong one ~ alpha * |logit|
    fl = sigmoid_focal_loss(logits.detach(), targets)
    assert float(fl[0, 4]) < 1e-30 and float(fl[0, 0]) == pytest.approx(0.25 * 200, rel=1e-5)


def test_quality_focal_loss_hand_values() -> None:
    logits = t64(0.0, 1.0, -2.0)[:, None]
    y = t64(0.8, 0.0, 0.6)[:, None]
    got = quality_focal_loss(logits, y).flatten().tolist()

    def qfl(x: float, t: float, beta: float = 2.0) -> float:
        s = sig(x)
        return abs(t - s) ** beta * -((1 - t) * math.log(1 - s) + t * math.log(s))

    assert got[0] == pytest.approx(0.09 * math.log(2), rel=1e-12)  # |0.8-0.5|^2 * ln 2
    assert got == pytest.approx([qfl(0.0, 0.8), qfl(1.0, 0.0), qfl(-2.0, 0.6)], rel=1e-12)
    # target == prediction -> 0
    assert float(quality_focal_loss(t64(0.0)[:, None], t64(0.5)[:, None])) == 0.0


def test_varifocal_loss_hand_values() -> None:
    logits = t64(0.0, 1.0, 2.5)[:, None]
    q = t64(0.6, 0.0, 0.9)[:, None]
    got = varifocal_loss(logits, q).flatten().tolist()

    def vfl(x: float, t: float, alpha: float = 0.75, gamma: float = 2.0) -> float:
        p = sig(x)
        if t > 0:
            return -t * (t * math.log(p) + (1 - t) * math.log(1 - p))
        return -alpha * p**gamma * math.log(1 - p)

    assert got[0] == pytest.approx(0.6 * math.log(2), rel=1e-12)
    assert got == pytest.approx([vfl(0.0, 0.6), vfl(1.0, 0.0), vfl(2.5, 0.9)], rel=1e-12)


def test_gradcheck_focal_qfl_vfl() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    soft = torch.rand(6, 3, generator=g, dtype=F64)
    soft[soft < 0.5] = 0.0  # VFL branches on q > 0
    hard = (torch.rand(6, 3, generator=g, dtype=F64) > 0.7).to(F64)
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, hard), (logits,))
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, soft, gamma=1.5), (logits,))
    assert torch.autograd.gradcheck(lambda x: quality_focal_loss(x, soft), (logits,))
    assert torch.autograd.gradcheck(lambda x: varifocal_loss(x, soft), (logits,))


# ----------------------------------------------------------------------------------------------
# RAS
# ----------------------------------------------------------------------------------------------
def test_soft_rank_by_hand() -> None:
    r = soft_rank(t64(0.9, 0.5, 0.1), tau=0.1)
    s4, s8 = sig(-4.0), sig(-8.0)  # (0.5 - 0.9) / 0.1 = -4, (0.1 - 0.9) / 0.1 = -8
    want = [1 - 0.5 * (s4 + s8), 1 - 0.5 * (sig(4.0) + s4), 1 - 0.5 * (sig(8.0) + sig(4.0))]
    assert r.tolist() == pytest.approx(want, rel=1e-12)
    assert r.tolist() == pytest.approx([0.990839, 0.5, 0.009161], abs=1e-6)
    # N = 1 -> 1, N = 0 -> empty, groups rank independently
    assert soft_rank(t64(0.3)).tolist() == [1.0]
    assert soft_rank(t64()).shape == (0,)
    grouped = soft_rank(t64(0.9, 0.2, 0.5, 0.1, 0.7), groups=torch.tensor([0, 1, 0, 0, 1]))
    assert grouped[[0, 2, 3]].tolist() == pytest.approx(r.tolist(), rel=1e-12)
    assert grouped[[1, 4]].tolist() == pytest.approx([sig(-5.0), 1 - sig(-5.0)], rel=1e-12)
    # chunked rows give the same result
    v = torch.rand(300, dtype=F64, generator=torch.Generator().manual_seed(0))
    import sr3d_training.losses.ras as ras_mod

    full = soft_rank(v)
    old = ras_mod._RANK_CHUNK_ELEMS
    ras_mod._RANK_CHUNK_ELEMS = 1000
    try:
        torch.testing.assert_close(soft_rank(v), full)
    finally:
        ras_mod._RANK_CHUNK_ELEMS = old


def _ras_by_hand(x: list[float], q: list[float], tau: float = 0.1, beta: float = 2.0) -> float:
    """Sum over positives (one class, all locations positive) of the RAS loss, in plain python."""
    n = len(x)

    def rank(v: list[float], i: int) -> float:
        if n == 1:
            return 1.0
        return 1 - sum(sig((v[j] - v[i]) / tau) for j in range(n) if j != i) / (n - 1)

    s = [sig(xi) for xi in x]
    total = 0.0
    for i in range(n):
        t = q[i] * rank(q, i)
        w = rank(s, i)
        focal = -0.25 * (1 - s[i]) ** 2 * math.log(s[i])
        rdl = abs(t - s[i]) ** beta * -(t * math.log(s[i]) + (1 - t) * math.log(1 - s[i]))
        total += (1 - w) * focal + w * rdl
    return total


def test_ras_loss_by_hand() -> None:
    x = [1.2, -0.3, 0.4]
    q = [0.9, 0.5, 0.1]
    logits = t64(*x)[:, None]
    # three positives of ONE GT: ranked among each other (default rank group "gt")
    got = ras_loss(logits, torch.tensor([0, 0, 0]), torch.tensor([0]), t64(*q))
    assert float(got) == pytest.approx(_ras_by_hand(x, q), rel=1e-12)
    # three GTs of one class in one scene: "class" and "scene" rank the three together, "gt"
    # ranks each alone (N = 1 per group: r = w = 1, the RDL towards t = q)
    gt_index = torch.tensor([0, 1, 2])
    gt_labels = torch.tensor([0, 0, 0])
    for group in ("class", "scene"):
        got = ras_loss(logits, gt_index, gt_labels, t64(*q), rank_group=group)
        assert float(got) == pytest.approx(_ras_by_hand(x, q), rel=1e-12), group
    alone = sum(_ras_by_hand([xi], [qi]) for xi, qi in zip(x, q))
    assert float(ras_loss(logits, gt_index, gt_labels, t64(*q))) == pytest.approx(alone, rel=1e-12)
    # two GTs: positives 0, 2 of GT 0 and 1 of GT 1 -> two rank groups
    two = ras_loss(logits, torch.tensor([0, 1, 0]), torch.tensor([0, 0]), t64(*q))
    want = _ras_by_hand([x[0], x[2]], [q[0], q[2]]) + _ras_by_hand([x[1]], [q[1]])
    assert float(two) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="rank_group"):
        ras_loss(logits, gt_index, gt_labels, t64(*q), rank_group="image")  # type: ignore[arg-type]
    # targets and weights by hand
    t, w = ras_targets(t64(*q), torch.sigmoid(t64(*x)))
    assert t.tolist() == pytest.approx([qi * ri for qi, ri in zip(q, soft_rank(t64(*q)).tolist())])
    s = [sig(v) for v in x]
    w0 = 1 - 0.5 * (sig((s[1] - s[0]) / 0.1) + sig((s[2] - s[0]) / 0.1))
    assert float(w[0]) == pytest.approx(w0, rel=1e-12)
    # with negatives and extra classes: those entries keep the focal loss
    logits2 = torch.cat([logits, t64(0.7, -1.0, 2.0)[:, None]], 0)  # 3 negatives
    logits2 = torch.cat([logits2, t64(0.2, -0.5, 1.0, 0.3, -2.0, 0.0)[:, None]], 1)  # class 1
    gi2 = torch.tensor([0, 0, 0, -1, -1, -1])
    ious2 = torch.cat([t64(*q), t64(0.0, 0.0, 0.0)])
    onehot = torch.zeros(6, 2, dtype=F64)
    onehot[:3, 0] = 1
    focal = sigmoid_focal_loss(logits2, onehot)
    want = float(focal.sum() - focal[:3, 0].sum()) + _ras_by_hand(x, q)
    assert float(ras_loss(logits2, gi2, gt_labels[:1], ious2)) == pytest.approx(want, rel=1e-12)
    per = ras_loss(logits2, gi2, gt_labels[:1], ious2, reduction="none")
    assert per.shape == (6, 2) and torch.equal(per[3:], focal[3:])


def test_ras_n1_n0_safety() -> None:
    # N = 1: r = 1 and w = 1 -> the loss is the RDL towards t = q
    logits = t64(0.3, -2.0)[:, None]
    gi = torch.tensor([0, -1])
    loss = ras_loss(logits, gi, torch.tensor([0]), t64(0.7, 0.0))
    s = sig(0.3)
    rdl = (0.7 - s) ** 2 * -(0.7 * math.log(s) + 0.3 * math.log(1 - s))
    neg = -0.75 * sig(-2.0) ** 2 * math.log(1 - sig(-2.0))
    assert float(loss) == pytest.approx(rdl + neg, rel=1e-12)
    # N = 0: focal on negatives only; K = 0 too
    logits = torch.randn(5, 3, dtype=F64, requires_grad=True)
    gi = torch.full((5,), -1)
    for labels in (torch.tensor([1]), torch.zeros(0, dtype=torch.long)):
        loss = ras_loss(logits, gi, labels, torch.zeros(5, dtype=F64))
        want = sigmoid_focal_loss(logits, torch.zeros_like(logits), reduction="sum")
        torch.testing.assert_close(loss, want)
        (g,) = torch.autograd.grad(loss, logits)
        assert bool(torch.isfinite(g).all())
    # L = 0
    empty = ras_loss(
        torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), torch.tensor([0]), torch.zeros(0)
    )
    assert float(empty) == 0.0
    # identical IoUs / scores, IoU 0 and 1: no NaN
    logits = torch.zeros(4, 2, requires_grad=True)
    loss = ras_loss(
        logits, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]), torch.tensor([1.0, 1.0, 0.0, 0.0])
    )
    (g,) = torch.autograd.grad(loss, logits)
    assert math.isfinite(float(loss.detach())) and bool(torch.isfinite(g).all())


def test_ras_beta_below_one_keeps_gradients_finite_at_t_equal_s() -> None:
    # N = 1 positive: t = q * r = q (r = 1); logit 0 -> s = 0.5 = q exactly, where
    # d|t - s|^beta / ds is infinite for beta < 1
    for beta in (0.5, 0.0, 1.0, 2.0):
        logits = torch.zeros(1, 1, dtype=F64, requires_grad=True)
        loss = ras_loss(logits, torch.tensor([0]), torch.tensor([0]), t64(0.5), beta=beta)
        (g,) = torch.autograd.grad(loss, logits)
        assert math.isfinite(float(loss.detach())) and bool(torch.isfinite(g).all()), beta


def test_ras_gradients_flow_only_through_the_scores() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 3, generator=g, dtype=F64, requires_grad=True)
    gi = torch.tensor([0, 1, -1, 2, 0, -1, 1, 2])
    labels = torch.tensor([2, 0, 1])
    ious = torch.rand(8, generator=g, dtype=F64).requires_grad_(True)
    loss = ras_loss(logits, gi, labels, ious)
    loss.backward()
    assert ious.grad is None  # IoUs (and the targets built from them) are detached
    # same gradient as a loss whose t and w are constants: weights carry no gradient
    pos = (gi >= 0).nonzero().flatten()
    lab = labels[gi[pos]]
    with torch.no_grad():
        t, w = ras_targets(ious[pos], torch.sigmoid(logits[pos, lab]), groups=gi[pos])
    x = logits.detach().clone().requires_grad_(True)
    onehot = torch.zeros_like(x)
    onehot[pos, lab] = 1
    focal = sigmoid_focal_loss(x, onehot)
    xp = x[pos, lab]
    sp = torch.sigmoid(xp)
    rdl = (t - sp).abs() ** 2 * torch.nn.functional.binary_cross_entropy_with_logits(
        xp, t, reduction="none"
    )
    ref = focal.sum() - focal[pos, lab].sum() + ((1 - w) * focal[pos, lab] + w * rdl).sum()
    ref.backward()
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    assert logits.grad is not None and x.grad is not None
    torch.testing.assert_close(logits.grad, x.grad)


def test_ras_gradcheck_with_frozen_weights() -> None:
    # w = rank(s) is detached, so a finite-difference check only matches where w cannot move:
    # one positive per scene (w = 1 by definition); the detached-w case is checked above against
    # a reference with constant t and w.
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 2, generator=g, dtype=F64, requires_grad=True)
    gi = torch.tensor([0, -1, 1, -1, 2, -1])
    labels = torch.tensor([0, 1, 1])
    ious = t64(0.8, 0.0, 0.4, 0.0, 0.6, 0.0)
    scenes = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(
        lambda z: ras_loss(z, gi, labels, ious, scene_ids=scenes), (logits,)
    )


def test_ras_batch_equals_sum_of_scenes() -> None:
    g = torch.Generator().manual_seed(3)
    scenes = []
    for n, k in ((12, 2), (9, 3), (7, 0)):
        logits = torch.randn(n, 4, generator=g, dtype=F64)
        gi = torch.randint(-1, max(k, 1), (n,), generator=g) if k else torch.full((n,), -1)
        labels = torch.randint(0, 4, (k,), generator=g)
        ious = torch.rand(n, generator=g, dtype=F64)
        scenes.append((logits, gi, labels, ious))
    for kind in ("focal", "ras", "qfl", "vfl"):
        fn = ClassificationLoss(kind)
        per_scene = sum(float(fn(lo, gi, la, io)) for lo, gi, la, io in scenes)
        gi_b, labels_b, sid = collate_assignments([s[1] for s in scenes], [s[2] for s in scenes])
        batch = fn(
            torch.cat([s[0] for s in scenes]),
            gi_b,
            labels_b,
            torch.cat([s[3] for s in scenes]),
            scene_ids=sid,
        )
        assert float(batch) == pytest.approx(per_scene, rel=1e-10), kind
    assert sid.tolist() == [0] * 12 + [1] * 9 + [2] * 7
    # rank groups "gt" (default) and "class" never mix scenes; "scene" needs the scene ids:
    # without them it ranks across scenes, a different value
    cat_logits, cat_ious = torch.cat([s[0] for s in scenes]), torch.cat([s[3] for s in scenes])
    for group in ("gt", "class", "scene"):
        ras = ClassificationLoss("ras", ras_rank_group=group)
        per_scene = sum(float(ras(*s)) for s in scenes)
        with_ids = float(ras(cat_logits, gi_b, labels_b, cat_ious, scene_ids=sid))
        assert with_ids == pytest.approx(per_scene, rel=1e-10), group
        without = float(ras(cat_logits, gi_b, labels_b, cat_ious))
        if group == "gt":
            assert without == pytest.approx(per_scene, rel=1e-10)
        elif group == "scene":
            assert without != pytest.approx(per_scene, rel=1e-10)


# ----------------------------------------------------------------------------------------------
# selector
# ----------------------------------------------------------------------------------------------
def test_classification_loss_selector_matches_functions() -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(10, 3, generator=g, dtype=F64)
    gi = torch.tensor([-1, 0, 0, 1, -1, -1, 1, 2, -1, -1])
    labels = torch.tensor([1, 2, 0])
    ious = torch.rand(10, generator=g, dtype=F64)
    onehot = torch.zeros_like(logits)
    onehot[[1, 2, 3, 6, 7], [1, 1, 2, 2, 0]] = 1
    soft = iou_targets(logits, gi, labels, ious)
    assert torch.equal(soft > 0, onehot > 0) and float(soft[3, 2]) == float(ious[3])
    cases = {
        "focal": sigmoid_focal_loss(logits, onehot, reduction="sum"),
        "qfl": quality_focal_loss(logits, soft, reduction="sum"),
        "vfl": varifocal_loss(logits, soft, reduction="sum"),
        "ras": ras_loss(logits, gi, labels, ious),
    }
    for kind, want in cases.items():
        fn = build_classification_loss({"kind": kind})
        assert fn.kind == kind
        torch.testing.assert_close(fn(logits, gi, labels, ious), want)
    assert float(ClassificationLoss("focal")(logits, gi, labels)) == pytest.approx(
        float(cases["focal"])
    )
    # parameters reach the function
    fn = ClassificationLoss("ras", ras_tau=0.3, ras_beta=1.0)
    torch.testing.assert_close(
        fn(logits, gi, labels, ious), ras_loss(logits, gi, labels, ious, tau=0.3, beta=1.0)
    )
    fn = build_classification_loss(ClassificationLossConfig(kind="vfl"), vfl_alpha=0.5)
    torch.testing.assert_close(
        fn(logits, gi, labels, ious), varifocal_loss(logits, soft, alpha=0.5, reduction="sum")
    )


def test_classification_loss_config_and_errors() -> None:
    cfg = ClassificationLossConfig()
    assert cfg.kind == "focal" and (cfg.focal_gamma, cfg.focal_alpha) == (2.0, 0.25)
    assert (cfg.qfl_beta, cfg.vfl_alpha, cfg.vfl_gamma, cfg.ras_tau, cfg.ras_beta) == (
        2.0,
        0.75,
        2.0,
        0.1,
        2.0,
    )
    assert ClassificationLossConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        build_classification_loss({"kind": "ras", "tau": 0.1})
    with pytest.raises(ValueError, match="unknown"):
        ClassificationLoss("ras", gamma=2.0)
    with pytest.raises(ValueError, match="kind"):
        ClassificationLoss("ce")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ClassificationLoss("ras", ras_tau=0.0)
    logits = torch.zeros(3, 2)
    gi = torch.tensor([0, -1, -1])
    with pytest.raises(ValueError, match="ious"):
        ClassificationLoss("qfl")(logits, gi, torch.tensor([0]))
    with pytest.raises(ValueError, match="gt_index"):
        ClassificationLoss("focal")(logits, torch.tensor([0, 1, -1]), torch.tensor([0]))
    with pytest.raises(ValueError):
        ClassificationLoss("focal")(logits, gi, torch.tensor([5]))
    with pytest.raises(TypeError):
        ClassificationLoss("focal")(logits, gi.int(), torch.tensor([0]))


# ----------------------------------------------------------------------------------------------
# box regression
# ----------------------------------------------------------------------------------------------
def test_box_diou_loss_wraps_geometry() -> None:
    g = torch.Generator().manual_seed(5)
    pred = torch.cat(
        [
            torch.rand(5, 3, generator=g, dtype=F64),
            0.5 + torch.rand(5, 3, generator=g, dtype=F64),
            torch.rand(5, 1, generator=g, dtype=F64),
        ],
        1,
    )
    target = pred + 0.1 * torch.rand(5, 7, generator=g, dtype=F64)
    torch.testing.assert_close(box_diou_loss(pred, target), 1 - diou_3d(pred, target))
    assert float(box_diou_loss(target, target, reduction="sum")) == pytest.approx(0.0, abs=1e-9)
    # hand case: two unit cubes shifted by 0.5 along x: IoU = 1/3, enclosing diag^2 = 1.5^2+1+1
    a = t64(0, 0, 0, 1, 1, 1, 0)[None]
    b = t64(0.5, 0, 0, 1, 1, 1, 0)[None]
    want = 1 - (1 / 3 - 0.25 / (1.5**2 + 2))
    assert float(box_diou_loss(a, b)) == pytest.approx(want, rel=1e-12)
    assert float(box_diou_loss(a[:0], b[:0], reduction="mean")) == 0.0
    p = pred.clone().requires_grad_(True)
    box_diou_loss(p, target, reduction="sum").backward()
    assert p.grad is not None and bool(torch.isfinite(p.grad).all())
    with pytest.raises(ValueError, match="reduction"):
        box_diou_loss(pred, target, reduction="max")  # type: ignore[arg-type]
