"""A2D2 distillation loss (training/distill/a2d2.py): exact values on hand-made tensors, the
quality and importance terms, the switches, a loop reference, and where the gradient goes."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_training.distill.a2d2 import a2d2_distill_loss, channel_importance, object_quality


def _reference(f_s, f_t, log_z, assigned, z_gt, tau_q, source, use_q, use_w):
    """Plain-loop transcription of the module docstring's formula."""
    terms = []
    b, _, c = f_s.shape
    for i in range(b):
        for g in range(z_gt.shape[1]):
            locs = (assigned[i] == g).nonzero().flatten().tolist()
            if not locs:
                continue
            z_t = sum(math.exp(float(log_z[i, a])) for a in locs) / len(locs)
            z = float(z_gt[i, g])
            q = math.exp(-abs(z_t - z) / (tau_q * z)) if use_q else 1.0
            mean_abs = [
                sum(abs(float(source[i, a, k])) for a in locs) / len(locs) for k in range(c)
            ]
            ex = [math.exp(m) for m in mean_abs]
            w = [e / sum(ex) for e in ex] if use_w else [1.0 / c] * c
            per_loc = [
                sum(w[k] * float(f_s[i, a, k] - f_t[i, a, k]) ** 2 for k in range(c)) for a in locs
            ]
            terms.append(q * sum(per_loc) / len(per_loc))
    return sum(terms) / len(terms), len(terms)


def _random_case(seed: int, b: int = 3, a: int = 40, c: int = 6, g: int = 4):
    gen = torch.Generator().manual_seed(seed)
    f_s = torch.randn(b, a, c, generator=gen)
    f_t = torch.randn(b, a, c, generator=gen)
    z_gt = 5 + 40 * torch.rand(b, g, generator=gen)
    # teacher depth: ground truth of the assigned object times a random factor in [0.7, 1.3]
    assigned = torch.randint(-1, g, (b, a), generator=gen)
    assigned[1] = -1  # an image without any distilled object
    z_at = torch.gather(z_gt, 1, assigned.clamp(min=0))
    log_z = (z_at * (0.7 + 0.6 * torch.rand(b, a, generator=gen))).log()
    return f_s, f_t, log_z, assigned, z_gt


def test_zero_when_student_equals_teacher():
    f_s, _, log_z, assigned, z_gt = _random_case(0)
    out = a2d2_distill_loss(f_s, f_s.clone(), log_z, assigned, z_gt)
    assert out.loss.item() == 0.0
    assert out.num_objects == int(
        sum(len(assigned[i][assigned[i] >= 0].unique()) for i in range(3))
    )
    assert out.num_objects > 0


@pytest.mark.parametrize("use_q", [True, False])
@pytest.mark.parametrize("use_w", [True, False])
@pytest.mark.parametrize("grad_source", [False, True])
def test_matches_loop_reference(use_q, use_w, grad_source):
    f_s, f_t, log_z, assigned, z_gt = _random_case(1)
    source = torch.randn_like(f_t) if grad_source else f_t
    out = a2d2_distill_loss(
        f_s,
        f_t,
        log_z,
        assigned,
        z_gt,
        tau_q=0.15,
        importance_source=source if grad_source else None,
        use_quality=use_q,
        use_importance=use_w,
    )
    ref, n = _reference(f_s, f_t, log_z, assigned, z_gt, 0.15, source, use_q, use_w)
    assert out.num_objects == n
    assert out.loss.item() == pytest.approx(ref, rel=1e-5)


def test_quality_by_hand():
    z_gt = torch.tensor([10.0, 10.0, 40.0, 20.0])
    z_t = torch.tensor([10.0, 12.0, 42.0, 16.0])
    q = object_quality(z_t, z_gt, tau_q=0.2)
    # exact teacher -> 1; 20 % relative error = tau_q -> 1/e; the same 2 m error at 40 m is
    # only 5 % -> exp(-0.25); over- and under-estimates are treated alike (|.|)
    expected = torch.tensor([1.0, math.exp(-1.0), math.exp(-0.25), math.exp(-1.0)])
    torch.testing.assert_close(q, expected)
    assert float(object_quality(z_t, z_gt, tau_q=0.4)[1]) == pytest.approx(math.exp(-0.5))
    with pytest.raises(ValueError, match="tau_q"):
        object_quality(z_t, z_gt, tau_q=0.0)
    with pytest.raises(ValueError, match="gt_depth"):
        object_quality(z_t, -z_gt, tau_q=0.2)


def test_importance_by_hand():
    w = channel_importance(torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]]))
    torch.testing.assert_close(w, torch.tensor([[0.25, 0.75], [0.5, 0.5]]))


def test_loss_by_hand():
    """One image, C = 2, object 0 at locations 0 and 1 (teacher depth right), object 1 at location
    3 (teacher depth 20 % off), location 2 unassigned."""
    ln3 = math.log(3.0)
    f_t = torch.tensor([[[0.0, ln3], [0.0, -ln3], [5.0, 5.0], [0.0, 0.0]]])
    f_s = f_t.clone()
    f_s[0, 0] += torch.tensor([1.0, 0.0])  # object 0: diff^2 (1, 0) at loc 0, (0, 0) at loc 1
    f_s[0, 2] += 7.0  # unassigned: ignored
    f_s[0, 3] += torch.tensor([2.0, 2.0])  # object 1: diff^2 (4, 4)
    assigned = torch.tensor([[0, 0, -1, 1]])
    z_gt = torch.tensor([[10.0, 10.0]])
    log_z = torch.tensor([[10.0, 10.0, 1.0, 12.0]]).log()
    out = a2d2_distill_loss(f_s, f_t, log_z, assigned, z_gt, tau_q=0.2)
    # object 0: mean |f_t| = (0, ln3) -> w = (1/4, 3/4); per location 1/4 and 0 -> mean 1/8, q = 1
    # object 1: w = (1/2, 1/2) -> 4, q = exp(-1); normalised by 2 objects
    expected = (1 / 8 + math.exp(-1.0) * 4) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.num_objects == 2
    assert out.mean_quality == pytest.approx((1 + math.exp(-1.0)) / 2, rel=1e-6)
    assert out.mean_abs_depth_error == pytest.approx(1.0, rel=1e-6)
    no_q = a2d2_distill_loss(f_s, f_t, log_z, assigned, z_gt, tau_q=0.2, use_quality=False)
    assert no_q.loss.item() == pytest.approx((1 / 8 + 4) / 2, rel=1e-6)
    no_w = a2d2_distill_loss(f_s, f_t, log_z, assigned, z_gt, tau_q=0.2, use_importance=False)
    assert no_w.loss.item() == pytest.approx((1 / 4 + math.exp(-1.0) * 4) / 2, rel=1e-6)


def test_bad_teacher_teaches_less():
    f_s, f_t, log_z, assigned, z_gt = _random_case(2)
    good = a2d2_distill_loss(f_s, f_t, z_gt.gather(1, assigned.clamp(min=0)).log(), assigned, z_gt)
    bad = a2d2_distill_loss(f_s, f_t, log_z + math.log(1.5), assigned, z_gt)
    assert good.mean_quality == pytest.approx(1.0)
    assert bad.mean_quality < 0.2
    assert bad.loss.item() < 0.25 * good.loss.item()


def test_gradient_reaches_the_student_only():
    f_s, f_t, log_z, assigned, z_gt = (
        t.double() if t.is_floating_point() else t for t in _random_case(3)
    )
    f_s.requires_grad_(True)
    f_t.requires_grad_(True)
    log_z.requires_grad_(True)
    source = torch.randn_like(f_t, requires_grad=True)
    out = a2d2_distill_loss(f_s, f_t, log_z, assigned, z_gt, importance_source=source)
    out.loss.backward()
    assert f_t.grad is None and log_z.grad is None and source.grad is None
    assert f_s.grad is not None
    touched = f_s.grad.abs().sum(-1) > 0
    assert torch.equal(touched, assigned >= 0)  # exactly the distilled locations
    # the analytic gradient of one term: 2 q w (f_s - f_t) / (|L_o| N_obj)
    eps = 1e-3
    i, a, k = (assigned >= 0).nonzero()[0].tolist() + [2]
    bumped = f_s.detach().clone()
    bumped[i, a, k] += eps
    up = a2d2_distill_loss(
        bumped, f_t.detach(), log_z.detach(), assigned, z_gt, importance_source=source.detach()
    )
    bumped[i, a, k] -= 2 * eps
    down = a2d2_distill_loss(
        bumped, f_t.detach(), log_z.detach(), assigned, z_gt, importance_source=source.detach()
    )
    numeric = (up.loss.item() - down.loss.item()) / (2 * eps)
    assert f_s.grad[i, a, k].item() == pytest.approx(numeric, rel=1e-6)


def test_no_object_gives_zero_with_grad():
    f_s = torch.randn(2, 5, 3, requires_grad=True)
    out = a2d2_distill_loss(
        f_s, torch.randn(2, 5, 3), torch.zeros(2, 5), torch.full((2, 5), -1), torch.ones(2, 0)
    )
    assert out.loss.item() == 0.0 and out.num_objects == 0
    out.loss.backward()
    assert f_s.grad is not None and float(f_s.grad.abs().sum()) == 0.0


def test_bad_shapes_are_named():
    f = torch.zeros(1, 4, 2)
    z = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="teacher_feat"):
        a2d2_distill_loss(
            f, torch.zeros(1, 4, 3), z, torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 1)
        )
    with pytest.raises(ValueError, match="assigned_gt must lie"):
        a2d2_distill_loss(f, f, z, torch.full((1, 4), 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match="gt_depth"):
        a2d2_distill_loss(f, f, z, torch.zeros(1, 4, dtype=torch.long), torch.ones(2, 1))
