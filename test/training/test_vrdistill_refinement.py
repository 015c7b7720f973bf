"""VRDistill's refinement module and the distillation module on a real ScanNet scan: kNN masking
attends only to the K neighbours, layers keep shapes, the refinement loss decreases when the
module trains, and no gradient ever reaches the frozen teacher."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from sr3d_ros.checkpoints import config_from_checkpoint, load_checkpoint
from sr3d_ros.config import ModelConfig
from sr3d_ros.inference import default_checkpoint_path
from sr3d_ros.models import TR3DDetector, points_to_sparse
from sr3d_training.assigners import AssignerConfig
from sr3d_training.criterion import DetectionLoss
from sr3d_training.datasets import ScanNetDataset
from sr3d_training.distill import (
    FrozenTeacher,
    VoteRefinement,
    VRDistillOptions,
    foreground_targets,
    refinement_loss,
    top_votes,
)
from sr3d_training.distill.knn_attention import KnnAttention, knn_indices
from sr3d_training.distill.refinement import RefinementLayer
from sr3d_training.distill.task import VRDistillTrainModule
from sr3d_training.losses import ClassificationLossConfig, build_classification_loss


@pytest.fixture(scope="module")
def scan(data_root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = ScanNetDataset(data_root / "scannet", scene_ids=["scene0000_00"])[0]
    return torch.as_tensor(s.points), torch.as_tensor(s.gt_boxes), torch.as_tensor(s.gt_labels)


@pytest.fixture(scope="module")
def teacher() -> FrozenTeacher:
    """The shipped model (TR3D, width 0.5, 2 cm voxels, trained on the real scans)."""
    path = default_checkpoint_path()
    ckpt = load_checkpoint(path)
    config = config_from_checkpoint(ckpt, path)
    model = TR3DDetector(config.model)
    model.load_state_dict(ckpt["state_dict"])
    return FrozenTeacher(model, config)


def random_votes(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g) * 4, torch.randn(n, c, generator=g)


def test_knn_attention_equals_masked_dense_attention() -> None:
    torch.manual_seed(0)
    att = KnnAttention(16, heads=4).eval()
    coords, feats = random_votes(40, 16)
    batch = torch.zeros(40, dtype=torch.long)
    nbrs = knn_indices(coords, coords, 5, batch, batch)
    out = att(feats, coords, feats, coords, nbrs)
    # reference: attention over ALL keys with the logits of non-neighbours set to -inf
    q = att.q(feats).view(40, 4, 4)
    rel = coords[None, :, :] - coords[:, None, :]  # (Q, N, 3) key - query
    pe = att.pos(rel)
    k = (att.k(feats)[None] + pe).view(40, 40, 4, 4)
    v = (att.v(feats)[None] + pe).view(40, 40, 4, 4)
    logits = torch.einsum("qhd,qnhd->qhn", q, k) / 2.0
    allowed = torch.zeros(40, 40, dtype=torch.bool)
    allowed.scatter_(1, nbrs, True)
    logits = logits.masked_fill(~allowed[:, None, :], -math.inf)
    ref = att.out(torch.einsum("qhn,qnhd->qhd", logits.softmax(-1), v).reshape(40, 16))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_refinement_layer_attends_only_to_k_neighbours() -> None:
    torch.manual_seed(0)
    layer = RefinementLayer(16, heads=4, neighbors=5).eval()
    torch.nn.init.normal_(layer.coord_update.weight, std=0.1)  # make coordinates move too
    coords, feats = random_votes(60, 16, seed=1)
    init_coords, init_feats = random_votes(60, 16, seed=2)
    batch = torch.zeros(60, dtype=torch.long)
    x, f = layer(coords, feats, init_coords, init_feats, batch)
    assert x.shape == (60, 3) and f.shape == (60, 16)
    query = 0
    self_nbrs = set(knn_indices(coords[:1], coords, 5, batch[:1], batch)[0].tolist())
    cross_nbrs = set(knn_indices(coords[:1], init_coords, 5, batch[:1], batch)[0].tolist())
    assert query in self_nbrs and len(self_nbrs) == 5
    far = max(set(range(60)) - self_nbrs - cross_nbrs)
    # a vote outside both neighbourhoods: changing its feature leaves the query unchanged ...
    feats2, init_feats2 = feats.clone(), init_feats.clone()
    feats2[far] += 10.0
    init_feats2[far] += 10.0
    x2, f2 = layer(coords, feats2, init_coords, init_feats2, batch)
    torch.testing.assert_close(x2[query], x[query], rtol=0, atol=0)
    torch.testing.assert_close(f2[query], f[query], rtol=0, atol=0)
    assert not torch.equal(f2[far], f[far])
    # ... while changing a neighbour's feature (self or cross) changes it
    for nbr_set, which in ((self_nbrs, "self"), (cross_nbrs, "cross")):
        nbr = min(nbr_set - {query}) if which == "self" else min(nbr_set)
        feats3, init3 = feats.clone(), init_feats.clone()
        (feats3 if which == "self" else init3)[nbr] += 10.0
        _, f3 = layer(coords, feats3, init_coords, init3, batch)
        assert not torch.allclose(f3[query], f[query]), which
    # scenes never attend to each other
    batch2 = (torch.arange(60) >= 30).long()
    _, fa = layer(coords, feats, init_coords, init_feats, batch2)
    feats4 = feats.clone()
    feats4[30:] += 5.0
    _, fb = layer(coords, feats4, init_coords, init_feats, batch2)
    torch.testing.assert_close(fb[:30], fa[:30], rtol=0, atol=0)


def test_untrained_refinement_returns_the_teacher_votes() -> None:
    ref = VoteRefinement(32, num_layers=4, heads=4, neighbors=5)
    coords, feats = random_votes(50, 32)
    x, f = ref(coords, feats, torch.zeros(50, dtype=torch.long))
    assert x.shape == (50, 3) and f.shape == (50, 32)
    torch.testing.assert_close(x, coords)  # coordinate updates start at zero
    assert len(ref.layers) == 4


def test_refinement_loss_decreases_on_a_real_scan(
    scan: tuple[torch.Tensor, torch.Tensor, torch.Tensor], teacher: FrozenTeacher
) -> None:
    torch.manual_seed(0)
    points, gt, _ = scan
    x = points_to_sparse([points], teacher.config.model.voxel_size)
    out, votes = teacher.votes(x)
    tv = votes.select(top_votes(out.cls_logits, out.batch, 1024))
    fg, centres = foreground_targets(tv.locations, tv.batch, [gt])
    assert int(fg.sum()) > 100  # the teacher's top locations lie mostly on objects
    ref = VoteRefinement(teacher.channels)
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        coords, _ = ref(tv.coords, tv.feats, tv.batch)
        loss = refinement_loss(coords, fg, centres)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    initial = losses[0]  # the teacher's own votes (refinement starts as the identity)
    assert min(losses[-5:]) < 0.6 * initial, losses


def test_gradients_never_reach_the_teacher(
    scan: tuple[torch.Tensor, torch.Tensor, torch.Tensor], teacher: FrozenTeacher
) -> None:
    torch.manual_seed(0)
    points, gt, labels = scan
    batch = {"points": [points[::2]], "gt_boxes": [gt], "gt_labels": [labels]}  # half the scan
    before = copy.deepcopy(teacher.model.state_dict())
    student = TR3DDetector(ModelConfig(voxel_size=0.02, width=0.25))
    assigner = AssignerConfig(label2level=student.config.label2level).build()
    criterion = DetectionLoss(assigner, build_classification_loss(ClassificationLossConfig()))
    module = VRDistillTrainModule(student, criterion, teacher, VRDistillOptions(num_votes=256))
    module.train()
    assert not teacher.model.training  # train() does not reach the teacher
    assert not any(n.startswith("distill.teacher") for n in module.state_dict())
    assert {id(p) for p in module.parameters()}.isdisjoint(
        id(p) for p in teacher.model.parameters()
    )
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    for _ in range(2):
        loss = module(batch)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in teacher.model.parameters())
    for k, v in teacher.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm statistics unchanged
    # the student and the training-only modules learn from the distillation terms
    assert float(student.neck.out_block_0[0].kernel.grad.abs().sum()) > 0
    refinement = module.distill.refinement
    assert refinement is not None and refinement.layers[0].coord_update.weight.grad is not None
    assert module.distill.align.weight.grad is not None
    s = loss.scalars
    assert s["fg_votes"] > 0 and 0 < s["mask_mean"] <= 1 and s["vc_loss"] > 0
