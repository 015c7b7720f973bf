"""Retraining on a recorded bag, end to end through the command lines (issue 19): build a bag of
the moving-sensor ScanNet scan -> ``sr3d-bag extract`` (GT, aligned through TF) ->
``sr3d-bag pseudo-label`` with the default model -> ``sr3d-train --data bag:DIR --init-from``
a few steps -> ``sr3d-eval --data bag:DIR``. Plus ``--init-from``'s weight copy and class map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from sr3d_ros.checkpoints import load_checkpoint
from sr3d_ros.cli.bag import main as bag_main
from sr3d_ros.config import DetectorConfig, ModelConfig
from sr3d_ros.inference import default_checkpoint_path
from sr3d_ros.models import TR3DDetector
from sr3d_ros.ros import bag as B
from sr3d_training.cli.evaluate import main as eval_main
from sr3d_training.cli.train import main as train_main
from sr3d_training.init_from import init_from_checkpoint, parse_class_map

torch.set_num_threads(1)
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _config(tmp_path, data_root, out):
    cfg = yaml.safe_load((REPO / "config" / "train_scannet_default.yaml").read_text())
    cfg["data"] = {"dataset": "scannet", "root": str(data_root / "scannet"), "repeat": 1}
    cfg["optim"].update({"warmup_steps": 1, "warmup_start_lr": 1e-4, "lr": 1e-4})
    cfg.update({"output_dir": str(out), "eval_every": 0, "amp": False})
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _map25(path):
    return json.loads(path.read_text())["result"]["mAP_0.25"]


def test_bag_extract_pseudo_label_finetune_eval(data_root, tmp_path, capsys):
    bag = tmp_path / "bag"
    B.build_scannet_sensor_bag(bag, data_root, frames=2, start_ns=1_700_000_000_000_000_000)
    src = ["--points-topic", "/points", "--target-frame", "scannet_aligned", "-q"]
    gt = tmp_path / "gt"
    assert (
        bag_main(["extract", str(bag), "--out", str(gt), "--gt-topic", "/ground_truth", *src]) == 0
    )
    pl = tmp_path / "pl"
    assert (
        bag_main(
            ["pseudo-label", str(bag), "--out", str(pl), "--score", "0.3", "--device", "cpu", *src]
        )
        == 0
    )
    run = tmp_path / "run"
    cfg = _config(tmp_path, data_root, run)
    default = default_checkpoint_path()
    assert (
        train_main(
            [
                "--config",
                str(cfg),
                "--data",
                f"bag:{pl}",
                "--init-from",
                str(default),
                "--max-steps",
                "2",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    tuned = load_checkpoint(run / "last.pt")
    base = load_checkpoint(default)
    assert tuned["provenance"]["step"] == 2
    diffs = [
        float((tuned["state_dict"][k].float() - v.float()).abs().max())
        for k, v in base["state_dict"].items()
        if "num_batches_tracked" not in k and "running_" not in k  # weights, not BN statistics
    ]
    assert 0 < max(diffs) < 0.05  # trained a little, from the default weights
    # the run saw the pseudo-labelled samples only (no benchmark ids): 2 per epoch
    assert tuned["provenance"]["config"]["data"]["sources"][0]["path"] == str(pl.resolve())

    e0, e1, ref = tmp_path / "e0.json", tmp_path / "e1.json", tmp_path / "ref.json"
    assert eval_main(["--data", f"bag:{gt}", "--device", "cpu", "--out", str(e0), "-q"]) == 0
    assert (
        eval_main(
            [
                "--checkpoint",
                str(run / "last.pt"),
                "--data",
                f"bag:{gt}",
                "--device",
                "cpu",
                "--out",
                str(e1),
                "-q",
            ]
        )
        == 0
    )
    assert (
        eval_main(
            [
                "--data",
                str(data_root / "scannet"),
                "--ids",
                "scene0000_00",
                "--device",
                "cpu",
                "--out",
                str(ref),
                "-q",
            ]
        )
        == 0
    )
    assert json.loads(e0.read_text())["samples"] == ["000000", "000001"]
    # the bag frames are scene0000_00 moved through TF and back: the default model scores them
    # as it scores the scan itself (the GT came through TF too)
    assert _map25(e0) == pytest.approx(_map25(ref), abs=0.03) and _map25(ref) > 0.5
    assert _map25(e1) >= 0.8 * _map25(e0)
    assert eval_main(["--data", f"bag:{tmp_path / 'nothing'}", "--device", "cpu", "-q"]) == 1


def test_init_from_copies_weights_and_maps_classes(tmp_path):
    default = default_checkpoint_path()
    ck = load_checkpoint(default)
    names = tuple(ck["class_names"])
    cfg = DetectorConfig(ModelConfig(**{**ck["config"]["model"], "class_names": names}))
    torch.manual_seed(0)
    model = TR3DDetector(cfg.model)
    info = init_from_checkpoint(model, default, names, kind="pointcloud")
    assert info["per_class"] == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, ck["state_dict"][k].to(v.dtype)), k

    # three classes: "seat" from chair, "table" kept by name, "lamp" new (fresh weights)
    new = ("seat", "table", "lamp")
    mcfg = {**ck["config"]["model"], "class_names": new, "label2level": [0, 1, 0]}
    torch.manual_seed(1)
    small = TR3DDetector(ModelConfig(**mcfg))
    fresh = {k: v.clone() for k, v in small.state_dict().items()}
    info = init_from_checkpoint(small, default, new, parse_class_map(["seat=chair"]))
    assert info["mapping"] == {"seat": "chair", "table": "table", "lamp": None}
    assert info["per_class"] == 2  # the classification kernel and bias
    sd = small.state_dict()
    w_old, w_new = ck["state_dict"]["head.conv_cls.kernel"], sd["head.conv_cls.kernel"]
    np.testing.assert_array_equal(w_new[:, 0], w_old[:, names.index("chair")])
    np.testing.assert_array_equal(w_new[:, 1], w_old[:, names.index("table")])
    np.testing.assert_array_equal(w_new[:, 2], fresh["head.conv_cls.kernel"][:, 2])
    b_old = ck["state_dict"]["head.conv_cls.bias"]
    np.testing.assert_array_equal(sd["head.conv_cls.bias"][:, :2], b_old[:, [2, 4]])

    with pytest.raises(ValueError, match="--class-map"):
        init_from_checkpoint(TR3DDetector(ModelConfig(**mcfg)), default, new)
    with pytest.raises(ValueError, match="not among"):
        init_from_checkpoint(small, default, new, {"seat": "throne"})
    with pytest.raises(ValueError, match="'mono' detector"):
        init_from_checkpoint(small, default, new, {}, kind="mono")
    with pytest.raises(ValueError, match="NEW=OLD"):
        parse_class_map(["seat"])
    other = {**ck["config"]["model"], "width": 0.25}
    with pytest.raises(ValueError, match="another architecture"):
        init_from_checkpoint(TR3DDetector(ModelConfig(**other)), default, names)
