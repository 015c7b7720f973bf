"""VRDistill's pieces on hand-made votes: soft foreground mask, vote consistency loss, foreground
targets, refinement loss, vote selection, kNN indices (exact references written by hand)."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_training.distill import (
    foreground_targets,
    refinement_loss,
    soft_foreground_mask,
    top_votes,
    vote_consistency_loss,
)
from sr3d_training.distill.knn_attention import knn_indices


def box(x: float, y: float, z: float, dx: float, dy: float, dz: float, yaw: float = 0.0):
    return [x, y, z, dx, dy, dz, yaw]


def test_mask_on_hand_made_votes() -> None:
    # scene 0: box A at the origin, size (1, 2, 2) -> |s|^2 = 9; box B at (10, 0, 0), size
    # (3, 0, 4) -> |s|^2 = 25. scene 1: no boxes.
    boxes = [torch.tensor([box(0, 0, 0, 1, 2, 2), box(10, 0, 0, 3, 0, 4)]), torch.zeros(0, 7)]
    coords = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # at A's centre: 1
            [3.0, 0.0, 0.0],  # 3 m from A: 1 / (9 / 9 + 1) = 0.5
            [0.0, 6.0, 0.0],  # d^2 = 36 to A: 1 / (36 / 9 + 1) = 0.2
            [10.0, 0.0, 5.0],  # nearest is B (d^2 = 25): 1 / (25 / 25 + 1) = 0.5
            [6.0, 0.0, 0.0],  # d^2 36 to A, 16 to B: B -> 1 / (16 / 25 + 1) = 25 / 41
            [0.0, 0.0, 0.0],  # scene without boxes: 0
        ]
    )
    batch = torch.tensor([0, 0, 0, 0, 0, 1])
    mask = soft_foreground_mask(coords, batch, boxes, sigma=1.0)
    expected = torch.tensor([1.0, 0.5, 0.2, 0.5, 25 / 41, 0.0])
    torch.testing.assert_close(mask, expected)
    # sigma: sigma / (d^2/|s|^2 + sigma), still 1 at the centre (normalised maximum)
    mask2 = soft_foreground_mask(coords, batch, boxes, sigma=2.0)
    torch.testing.assert_close(
        mask2, torch.tensor([1.0, 2 / 3, 2 / 6, 2 / 3, 2 / (16 / 25 + 2), 0])
    )
    assert not mask.requires_grad
    with pytest.raises(ValueError, match="sigma"):
        soft_foreground_mask(coords, batch, boxes, sigma=0.0)


def test_vote_consistency_loss_by_hand() -> None:
    # two teacher votes per scene; student votes match their nearest teacher vote in the scene
    t_coords = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 0, 0], [5.0, 0, 0]])
    t_feats = torch.tensor([[1.0, 0], [0.0, 1], [2.0, 2], [0.0, 0]])
    t_batch = torch.tensor([0, 0, 1, 1])
    t_mask = torch.tensor([1.0, 0.5, 0.25, 0.0])
    s_coords = torch.tensor([[0.9, 0, 0], [0.2, 0, 0], [4.0, 0, 0]], requires_grad=True)
    s_feats = torch.tensor([[0.0, 0], [1.0, 1], [3.0, 0]], requires_grad=True)
    s_batch = torch.tensor([0, 1, 1])
    # student 0 -> teacher 1: mask 0.5 * (0.01 + 1) ; student 1 -> teacher 2 (scene 1, not
    # teacher 0 of scene 0): 0.25 * (0.04 + 1 + 1); student 2 -> teacher 3: 0 * ...
    expected = (0.5 * 1.01 + 0.25 * 2.04 + 0.0) / 3
    loss = vote_consistency_loss(s_coords, s_feats, s_batch, t_coords, t_feats, t_batch, t_mask)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    no_mask = vote_consistency_loss(s_coords, s_feats, s_batch, t_coords, t_feats, t_batch, None)
    assert float(no_mask.detach()) == pytest.approx((1.01 + 2.04 + (1 + 9)) / 3, rel=1e-6)
    loss.backward()
    assert s_coords.grad is not None and float(s_coords.grad[0, 0]) == pytest.approx(
        0.5 * 2 * (0.9 - 1.0) / 3
    )
    with pytest.raises(ValueError, match="channels"):
        vote_consistency_loss(s_coords, s_feats, s_batch, t_coords, t_feats[:, :1], t_batch, None)


def test_vote_consistency_loss_does_not_train_the_target() -> None:
    t_coords = torch.zeros(2, 3, requires_grad=True)
    t_feats = torch.ones(2, 4, requires_grad=True)
    loss = vote_consistency_loss(
        torch.ones(3, 3), torch.zeros(3, 4, requires_grad=True), torch.zeros(3, dtype=torch.long),
        t_coords, t_feats, torch.zeros(2, dtype=torch.long), None,
    )  # fmt: skip
    loss.backward()
    assert t_coords.grad is None and t_feats.grad is None


def test_foreground_targets_and_refinement_loss() -> None:
    # a yawed box: 4 x 1 x 1 turned 90 deg, so it extends along y
    boxes = [
        torch.tensor([box(0, 0, 0, 4, 1, 1, math.pi / 2), box(0.2, 0, 0, 0.5, 0.5, 0.5)]),
        torch.tensor([box(10, 10, 1, 2, 2, 2)]),
    ]
    locations = torch.tensor(
        [
            [0.0, 1.5, 0.0],  # inside the yawed box (along y), not the small one
            [1.5, 0.0, 0.0],  # outside the yawed box (its x extent is 1)
            [0.1, 0.1, 0.1],  # inside both: the smaller box wins
            [10.5, 10.5, 1.9],  # scene 1, inside
            [0.0, 1.5, 0.0],  # scene 1: the yawed box belongs to scene 0
        ]
    )
    batch = torch.tensor([0, 0, 0, 1, 1])
    fg, centres = foreground_targets(locations, batch, boxes)
    assert fg.tolist() == [True, False, True, True, False]
    torch.testing.assert_close(centres[0], torch.tensor([0.0, 0.0, 0.0]))
    torch.testing.assert_close(centres[2], torch.tensor([0.2, 0.0, 0.0]))
    torch.testing.assert_close(centres[3], torch.tensor([10.0, 10.0, 1.0]))
    refined = torch.tensor(
        [[0.0, 0.05, 0.0], [9.0, 9, 9], [0.0, 0.0, 1.0], [10.0, 10.0, 1.0], [7.0, 7, 7]]
    )
    # smooth L1 (beta 0.1) summed over xyz: 0.5 * 0.05^2 / 0.1 = 0.0125; (0.2 - 0.05) +
    # (1 - 0.05) = 1.1; 0 -> mean over the 3 foreground votes
    assert float(refinement_loss(refined, fg, centres)) == pytest.approx((0.0125 + 1.1) / 3)
    none = refinement_loss(refined.requires_grad_(), torch.zeros(5, dtype=torch.bool), centres)
    assert float(none.detach()) == 0.0 and none.requires_grad


def test_top_votes_per_scene() -> None:
    logits = torch.tensor([[0.0, 5], [3, 1], [9, 0], [1, 1], [2, 8], [0, 0]])
    batch = torch.tensor([0, 0, 1, 1, 0, 1])
    assert top_votes(logits, batch, 2).tolist() == [4, 0, 2, 3]
    assert top_votes(logits, batch, 5).tolist() == [4, 0, 1, 2, 3, 5]
    assert top_votes(logits, batch, 0).tolist() == [0, 1, 2, 3, 4, 5]


def test_knn_indices_match_a_sorted_reference() -> None:
    g = torch.Generator().manual_seed(0)
    keys = torch.rand(300, 3, generator=g)
    query = torch.rand(50, 3, generator=g)
    key_batch = (torch.arange(300) >= 200).long()
    query_batch = (torch.arange(50) >= 30).long()
    idx = knn_indices(query, keys, 5, query_batch, key_batch)
    for i in range(50):
        d = (keys - query[i]).square().sum(1)
        d[key_batch != query_batch[i]] = math.inf
        assert idx[i].tolist() == d.argsort()[:5].tolist()
    # a scene with fewer keys than k repeats its nearest key
    small = knn_indices(query[:1], keys[:2], 4, query_batch[:1], key_batch[:2])
    near = int((keys[:2] - query[0]).square().sum(1).argmin())
    assert sorted(small[0].tolist()) == sorted([near, near, near, 1 - near])
    with pytest.raises(ValueError, match="no keys"):
        knn_indices(query, keys[:10], 5, query_batch, key_batch[:10])
