"""Normalized vertex distance (SPOTA cost, our formulation): hand cases, pairwise, gradients;
the cases that exercise a device run on every available one (``device`` fixture)."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry import normalized_vertex_distance, normalized_vertex_distance_pairwise

F64 = torch.float64


def B(*rows, device="cpu"):
    return torch.tensor(rows, dtype=F64, device=device)


def test_identical_is_zero():
    g = torch.Generator().manual_seed(0)
    b = torch.rand(20, 7, generator=g, dtype=F64) + 0.1
    assert torch.all(normalized_vertex_distance(b, b) == 0)
    assert torch.all(torch.diagonal(normalized_vertex_distance_pairwise(b, b)) == 0)


def test_shifted_box_hand_case(device):
    # every corner moves by 1 m -> mean squared distance 1; enclosing box
    # [-1, 2] x [-1, 1] x [-1, 1] -> diag^2 = 9 + 4 + 4 = 17
    a = B([0, 0, 0, 2, 2, 2, 0], device=device)
    b = B([1, 0, 0, 2, 2, 2, 0], device=device)
    assert normalized_vertex_distance(a, b).item() == pytest.approx(1 / 17)
    # a box and the same box turned by 180 deg: corners k map to their BEV opposites,
    # squared distance (2)^2 + (2)^2 = 8 for every corner; enclosing box [-1,1]^3, diag^2 = 12
    r = B([0, 0, 0, 2, 2, 2, math.pi], device=device)
    assert normalized_vertex_distance(a, r).item() == pytest.approx(8 / 12)
    # size change only: corners move by (0.5, 0.5, 0.5) each: sq 0.75; enclosing [-1.5,1.5]^3 -> 27
    s = B([0, 0, 0, 3, 3, 3, 0], device=device)
    assert normalized_vertex_distance(a, s).item() == pytest.approx(0.75 / 27)
    # (N, 6) axis-aligned boxes are accepted
    assert normalized_vertex_distance(a[:, :6], b[:, :6]).item() == pytest.approx(1 / 17)


def test_range_and_pairwise_consistency(device):
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(6, 7, generator=g, dtype=F64) * 3).to(device)
    b = (torch.rand(5, 7, generator=g, dtype=F64) * 3).to(device)
    pair = normalized_vertex_distance_pairwise(a, b)
    assert pair.shape == (6, 5) and pair.device == device
    ref = normalized_vertex_distance(a[:, None, :], b[None, :, :])
    assert torch.allclose(pair, ref)
    assert bool(((pair >= 0) & (pair <= 1)).all())


def test_empty_and_bad_input():
    e = torch.zeros(0, 7)
    assert normalized_vertex_distance(e, e).shape == (0,)
    assert normalized_vertex_distance_pairwise(e, torch.ones(3, 7)).shape == (0, 3)
    with pytest.raises(ValueError):
        normalized_vertex_distance(torch.zeros(3, 7), torch.zeros(4, 7))
    with pytest.raises(ValueError):
        normalized_vertex_distance(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(TypeError):
        normalized_vertex_distance(torch.zeros(3, 7, dtype=torch.int32), torch.zeros(3, 7))
    with pytest.raises(ValueError):
        normalized_vertex_distance_pairwise(torch.zeros(1, 2, 7), torch.zeros(3, 7))


def test_gradients(device):
    a = B(
        [0.1, 0.2, 0.3, 1.0, 2.0, 1.5, 0.4], [1.0, 0.0, 0.0, 0.5, 0.7, 0.9, -2.0], device=device
    ).requires_grad_()
    b = B(
        [0.4, -0.1, 0.2, 1.2, 1.5, 1.1, 0.1], [0.0, 1.0, 0.5, 0.6, 0.4, 0.8, 1.0], device=device
    ).requires_grad_()
    assert torch.autograd.gradcheck(normalized_vertex_distance, (a, b))
    assert torch.autograd.gradcheck(normalized_vertex_distance_pairwise, (a, b))
    # identical and degenerate (point) boxes: finite gradients
    p = torch.zeros(2, 7, dtype=F64, device=device, requires_grad=True)
    normalized_vertex_distance(p, p.detach().clone()).sum().backward()
    assert torch.isfinite(p.grad).all()
