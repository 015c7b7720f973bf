"""CGI3D: the 3D branches run on 3x3 patches around selected locations give the full-map head's
outputs there (tolerance 1e-5), border locations included, on a real KITTI image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sr3d_ros.models.mono import MonoDetectorModel, MonoModelConfig
from sr3d_ros.models.mono.gating import gated_3d, head_topk
from sr3d_ros.models.mono.head import MonoHeadOutputs, flatten_levels
from sr3d_training.datasets.kitti import load_kitti_image

torch.set_num_threads(1)


def randomised_model() -> MonoDetectorModel:
    """Size n in eval mode with random batch-norm statistics and affine terms (so every op of the
    3D branches matters)."""
    torch.manual_seed(0)
    model = MonoDetectorModel(MonoModelConfig(size="n"))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def feats(data_root: Path) -> tuple[MonoDetectorModel, list[torch.Tensor], torch.Tensor]:
    """Neck maps of a real KITTI image (000007, resized to 192 x 640), batch of it and its flip."""
    image = load_kitti_image(data_root / "kitti" / "training" / "image_2" / "000007.png")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(192, 640), mode="bilinear", align_corners=False)
    x = torch.cat([x, x.flip(-1)])
    model = randomised_model()
    with torch.no_grad():
        f = model.features(x)
    _, strides = model.anchors(f)
    return model, f, strides


def border_and_random_index(shapes: list[tuple[int, int]], n_random: int, seed: int) -> list[int]:
    """Corners and edge midpoints of every level, plus random locations."""
    out, offset = [], 0
    for h, w in shapes:
        for i, j in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, w // 2), (h // 2, 0)]:
            out.append(offset + i * w + j)
        offset += h * w
    rng = np.random.default_rng(seed)
    return out + rng.integers(0, offset, n_random).tolist()


def test_gated_3d_equals_full_map_head_at_selected_locations(feats) -> None:  # type: ignore[no-untyped-def]
    model, f, _ = feats
    shapes = [(t.shape[2], t.shape[3]) for t in f]
    index = torch.tensor(
        [border_and_random_index(shapes, 40, 0), border_and_random_index(shapes, 40, 1)]
    )
    with torch.no_grad():
        gated = gated_3d(model.one2one, f, index)
        maps = model.one2one.forward_3d(f)
    assert set(gated) == {"center", "depth", "dims", "orient", "depth_feat"}
    for key, val in gated.items():
        full = flatten_levels([m[key] for m in maps])
        ref = torch.gather(full, 1, index[..., None].expand(-1, -1, full.shape[2]))
        assert val.shape == ref.shape
        assert float((val - ref).abs().max()) <= 1e-5, key
        assert float(ref.abs().max()) > 1e-2  # the comparison is not between zeros


@pytest.mark.parametrize("k", [50, 100000])
def test_gated_topk_equals_full_head_topk(feats, k: int) -> None:  # type: ignore[no-untyped-def]
    model, f, strides = feats
    with torch.no_grad():
        gated = head_topk(model.one2one, f, strides, k, gated=True)
        full = head_topk(model.one2one, f, strides, k, gated=False)
    a = strides.shape[0]
    assert gated.index.shape == (2, min(k, a))
    assert torch.equal(gated.index, full.index) and torch.equal(gated.labels, full.labels)
    assert bool((gated.scores[:, :-1] >= gated.scores[:, 1:]).all())
    for name in MonoHeadOutputs.__dataclass_fields__:
        g, r = getattr(gated.head, name), getattr(full.head, name)
        assert g.shape == r.shape, name
        assert float((g - r).abs().max()) <= 1e-5, name


def test_gated_3d_rejects_out_of_range_locations(feats) -> None:  # type: ignore[no-untyped-def]
    model, f, strides = feats
    with pytest.raises(ValueError, match="out of range"):
        gated_3d(model.one2one, f, torch.tensor([[0, strides.shape[0]]]))
