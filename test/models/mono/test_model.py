"""The monocular network: YOLOv10 architecture (parameter counts), output shapes and anchor points,
the dual heads, bad input and the config round trip."""

from __future__ import annotations

import pytest
import torch

from sr3d_ros.config import ConfigError, from_dict, to_dict
from sr3d_ros.models.mono import (
    MonoDetectorConfig,
    MonoDetectorModel,
    MonoInferenceConfig,
    MonoModelConfig,
    anchor_grid,
)

torch.set_num_threads(1)

#: YOLOv10 paper (Wang et al., 2024), Table 1: #Params (M) of N / S / M / B / X (80 COCO classes,
#: one-to-one head only, as deployed).
YOLOV10_PARAMS_M = {"n": 2.3, "s": 7.2, "m": 15.4, "b": 19.1, "x": 29.5}


@pytest.mark.parametrize("size", list(YOLOV10_PARAMS_M))
def test_architecture_matches_yolov10_parameter_counts(size: str) -> None:
    """Backbone + neck + the one-to-one head's class and box branches, built for COCO's 80
    classes, have YOLOv10's published parameter count (to the paper's rounding, 0.1 M)."""
    coco = MonoModelConfig(
        size=size, class_names=tuple(f"c{i}" for i in range(80)), mean_sizes=((1.0, 1.0, 1.0),) * 80
    )
    model = MonoDetectorModel(coco)
    n = sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.startswith("one2many") and ".head3d." not in name
    )
    assert abs(n / 1e6 - YOLOV10_PARAMS_M[size]) <= 0.1, n


def test_output_shapes_anchor_points_and_init() -> None:
    torch.manual_seed(0)
    model = MonoDetectorModel(MonoModelConfig(size="n")).eval()
    images = torch.rand(2, 3, 96, 160)
    with torch.no_grad():
        out = model(images)
    shapes = [(12, 20), (6, 10), (3, 5)]
    a = sum(h * w for h, w in shapes)
    assert out.level_shapes == shapes
    assert out.anchor_points.shape == (a, 2) and out.strides.shape == (a,)
    # location 21 = level 0, row 1, column 1; the first level-1 location is at index 240
    assert out.anchor_points[21].tolist() == [1.5 * 8 - 0.5, 1.5 * 8 - 0.5]
    assert out.anchor_points[240].tolist() == [7.5, 7.5]
    assert out.anchor_points[-1].tolist() == [4.5 * 32 - 0.5, 2.5 * 32 - 0.5]
    assert out.strides[:240].eq(8).all() and out.strides[240:300].eq(16).all()
    assert out.strides[300:].eq(32).all()
    cd = model.depth_feat_channels
    for head in (out.one2many, out.one2one):
        assert head.cls_logits.shape == (2, a, 3)
        assert head.box_ltrb.shape == (2, a, 4) and bool((head.box_ltrb >= 0).all())
        assert head.center_offset.shape == (2, a, 2)
        assert head.log_depth.shape == (2, a) and head.log_sigma.shape == (2, a)
        assert head.log_dims.shape == (2, a, 3) and head.alpha_sincos.shape == (2, a, 2)
        assert head.depth_feat.shape == (2, a, cd)
        assert head.box_dist.shape == (2, a, 4, 16)
        for t in (head.cls_logits, head.box_ltrb, head.log_depth, head.depth_feat):
            assert t.dtype == torch.float32 and bool(torch.isfinite(t).all())
    # box edges at most reg_max - 1 strides away
    assert bool((out.one2one.box_ltrb <= 15 * out.strides[None, :, None] + 1e-4).all())


def test_anchor_grid_matches_pixel_centre_convention() -> None:
    pts, strides = anchor_grid([(2, 3)], (16,))
    expected = [[(j + 0.5) * 16 - 0.5, (i + 0.5) * 16 - 0.5] for i in range(2) for j in range(3)]
    assert pts.tolist() == expected and strides.tolist() == [16.0] * 6


def test_one2one_head_sees_detached_features_in_training() -> None:
    torch.manual_seed(0)
    model = MonoDetectorModel(MonoModelConfig(size="n")).train()
    out = model(torch.rand(1, 3, 64, 64))
    out.one2one.cls_logits.sum().backward()
    stem = model.backbone.stem[0][0].weight
    assert stem.grad is None or float(stem.grad.abs().sum()) == 0.0
    assert model.one2one.cls[0][-1].weight.grad is not None
    model.zero_grad()
    model(torch.rand(1, 3, 64, 64)).one2many.log_depth.sum().backward()
    assert stem.grad is not None and float(stem.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(3, 64, 64), r"\(B, 3, H, W\)"),
        (torch.rand(1, 4, 64, 64), r"\(B, 3, H, W\)"),
        (torch.rand(1, 3, 60, 64), "multiples of 32"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "floating"),
    ],
)
def test_bad_images_are_one_clear_error(images: torch.Tensor, match: str) -> None:
    model = MonoDetectorModel(MonoModelConfig(size="n")).eval()
    with pytest.raises(ValueError, match=match):
        model(images)


def test_config_round_trip_and_validation() -> None:
    cfg = MonoDetectorConfig(MonoModelConfig(size="s"), MonoInferenceConfig(gate_topk=80))
    assert from_dict(MonoDetectorConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="size"):
        from_dict(MonoModelConfig, {"size": "l"})
    with pytest.raises(ConfigError, match="mean_sizes"):
        from_dict(MonoModelConfig, {"mean_sizes": [[1.0, 1.0, 1.0]]})
    with pytest.raises(ConfigError, match="multiples of 32"):
        from_dict(MonoModelConfig, {"input_size": [380, 1280]})
    with pytest.raises(ConfigError, match="max_detections"):
        from_dict(MonoInferenceConfig, {"max_detections": 0})
    with pytest.raises(ConfigError, match="gate_topk"):
        from_dict(MonoInferenceConfig, {"gate_topk": 0})
