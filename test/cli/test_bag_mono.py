"""Retraining the monocular detector on a recorded KITTI bag, end to end through the command
lines (issue 19, images): ``build_kitti_bag`` (real frames) -> ``sr3d-bag extract`` (images,
CameraInfo, GT) -> ``sr3d-bag pseudo-label`` with a mono checkpoint -> ``sr3d-train --config
config/mono_kitti_n.yaml --data bag:DIR --init-from`` a few steps -> ``sr3d-eval --data
bag:DIR``. Plus ``--init-from``'s class map for mono checkpoints.

The teacher is a seeded random-init mono checkpoint at a small input size (the default mono
model has not landed, and CPU time is short): the test checks the data path, not accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from sr3d_ros.checkpoints import load_checkpoint, save_checkpoint
from sr3d_ros.cli.bag import main as bag_main
from sr3d_ros.models.mono import (
    MonoDetectorConfig,
    MonoDetectorModel,
    MonoInferenceConfig,
    MonoModelConfig,
)
from sr3d_ros.ros import bag as B
from sr3d_training.cli.evaluate import main as eval_main
from sr3d_training.cli.train import main as train_main
from sr3d_training.datasets.bag import BagDataset
from sr3d_training.datasets.kitti import KittiDataset
from sr3d_training.init_from import init_from_checkpoint

torch.set_num_threads(1)
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
FRAMES = ["000007", "000036"]
INPUT = [96, 320]  # (H, W): small, for one CPU core
START = 1_700_000_000_000_000_000


def _teacher(path, class_names=("Car", "Pedestrian", "Cyclist")):
    """A seeded random-init mono checkpoint (KITTI mean sizes of its classes)."""
    torch.manual_seed(0)
    default = MonoModelConfig()
    sizes = dict(zip(default.class_names, default.mean_sizes))
    model_cfg = MonoModelConfig(
        size="n",
        input_size=tuple(INPUT),
        class_names=class_names,
        mean_sizes=tuple(sizes[c] for c in class_names),
    )
    cfg = MonoDetectorConfig(model_cfg, MonoInferenceConfig(score_threshold=0.0))
    save_checkpoint(path, MonoDetectorModel(cfg.model).state_dict(), cfg, {"note": "test"})
    return path


def _config(tmp_path, data_root, out):
    """config/mono_kitti_n.yaml shrunk: small input, one KITTI frame, no validation."""
    cfg = yaml.safe_load((REPO / "config" / "mono_kitti_n.yaml").read_text())
    cfg["model"]["input_size"] = INPUT
    cfg["data"].update(
        {"root": str(data_root / "kitti"), "train_ids": ["000000"], "val_ids": [], "repeat": 1}
    )
    cfg["optim"].update({"warmup_steps": 1, "warmup_start_lr": 1e-4, "lr": 1e-4})
    cfg.update({"output_dir": str(out), "amp": False, "batch_size": 2, "precise_bn_batches": 0})
    path = tmp_path / "mono_finetune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_kitti_bag_extract_pseudo_label_finetune_eval(data_root, tmp_path, capsys):
    bag = tmp_path / "kitti"
    B.build_kitti_bag(bag, data_root / "kitti" / "training", FRAMES, start_ns=START)
    kt = B.KittiBagTopics()
    src = ["--image-topic", kt.image, "--camera-info-topic", kt.camera_info, "-q"]
    gt = tmp_path / "gt"
    assert (
        bag_main(["extract", str(bag), "--out", str(gt), "--gt-topic", kt.ground_truth, *src]) == 0
    )
    # the extracted images and calibrations are the source's exactly
    ref = KittiDataset(data_root / "kitti" / "training", frame_ids=FRAMES)
    ds = BagDataset(gt)
    assert ds.kind == "images" and len(ds) == 2
    for i, fid in enumerate(FRAMES):
        x, r = ds[i], ref[i]
        np.testing.assert_array_equal(x.image, r.image)
        np.testing.assert_array_equal(x.camera.P, ref.calib(fid).P[2])
        assert (x.camera.width, x.camera.height) == (r.image.shape[1], r.image.shape[0])
        objects = ref.objects(fid)
        np.testing.assert_allclose(
            x.meta["kitti"].location, objects.subset(objects.cared).location, atol=1e-9
        )

    teacher = _teacher(tmp_path / "teacher.pt")
    pl = tmp_path / "pl"
    args = ["pseudo-label", str(bag), "--out", str(pl), "--checkpoint", str(teacher)]
    assert bag_main([*args, "--score", "0.0", "--device", "cpu", *src]) == 0
    labelled = BagDataset(pl, labelled_only=True)
    assert len(labelled) == 2 and sum(len(labelled[i].meta["kitti"]) for i in range(2)) > 0

    run = tmp_path / "run"
    cfg = _config(tmp_path, data_root, run)
    argv = ["--config", str(cfg), "--data", f"bag:{pl}@2", "--data", f"bag:{gt}"]
    argv += ["--init-from", str(teacher)]
    assert train_main([*argv, "--max-steps", "2", "--device", "cpu", "-q"]) == 0
    capsys.readouterr()
    tuned, base = load_checkpoint(run / "last.pt"), load_checkpoint(teacher)
    assert tuned["kind"] == "mono" and tuned["provenance"]["step"] == 2
    diffs = [
        float((tuned["state_dict"][k].float() - v.float()).abs().max())
        for k, v in base["state_dict"].items()
        if "num_batches_tracked" not in k and "running_" not in k
    ]
    assert 0 < max(diffs) < 0.05  # trained a little, from the teacher's weights
    sources = tuned["provenance"]["config"]["data"]["sources"]
    expect = [(str(pl.resolve()), 2.0), (str(gt.resolve()), 1.0)]  # pseudo-labels and GT
    assert [(s["path"], s["weight"]) for s in sources] == expect

    out = tmp_path / "eval.json"
    argv = ["--checkpoint", str(run / "last.pt"), "--data", f"bag:{gt}", "--out", str(out)]
    assert eval_main([*argv, "--device", "cpu", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "AP" in printed and "projected 3D boxes" in printed
    res = json.loads(out.read_text())
    assert res["dataset"] == "bag" and res["frames"] == ["000000", "000001"]
    assert "approximate" in res["note"]
    m = res["metrics"]
    # the labels-as-detections ceiling counts the cars of each KITTI difficulty as the bag GT's
    # projected boxes give them (height > 40 / 25 / 25 px, truncation <= 0.15 / 0.3 / 0.5,
    # occlusion 0): R40 over n counted boxes tops out at (n - 1) / 40
    cars = [ds[i].meta["kitti"] for i in range(2)]
    cars = [o.subset(o.names == "Car") for o in cars]
    for diff, min_h, max_t in (("easy", 40, 0.15), ("moderate", 25, 0.3), ("hard", 25, 0.5)):
        n = sum(
            int(((o.bbox[:, 3] - o.bbox[:, 1] > min_h) & (o.truncated <= max_t)).sum())
            for o in cars
        )
        assert m[f"Car/AP3D_R40@0.7/{diff}_ceiling"] == pytest.approx(100 * (n - 1) / 40), diff
    assert np.isnan(m["Car/depth_mae"]) == (m["Car/depth_matched"] == 0)
    # one clear line for the wrong kind of checkpoint, a missing folder, or --split
    assert eval_main(["--checkpoint", str(teacher), "--data", f"bag:{gt}", "--device", "cpu",
                      "-q", "--out", str(tmp_path / "e.json")]) == 0  # fmt: skip
    pc = REPO / "sr3d_ros" / "models" / "weights" / "sr3d_scannet_default.pt"
    assert eval_main(["--checkpoint", str(pc), "--data", f"bag:{gt}", "-q"]) == 1
    assert "'mono' one is needed" in capsys.readouterr().err
    assert eval_main(["--data", f"bag:{tmp_path / 'nothing'}", "-q"]) == 1
    assert "not a bag dataset" in capsys.readouterr().err
    assert eval_main(["--data", f"bag:{gt}", "--split", "val", "-q"]) == 2


def test_init_from_mono_checkpoint_maps_classes(tmp_path):
    """--init-from a mono checkpoint: same classes copy every weight; (Car, Cyclist) from
    (Car, Pedestrian, Cyclist) takes the classification rows of those two classes."""
    names = ("Car", "Pedestrian", "Cyclist")
    teacher = _teacher(tmp_path / "t.pt", names)
    ck = load_checkpoint(teacher)
    same = MonoDetectorModel(MonoModelConfig(size="n", input_size=tuple(INPUT)))
    info = init_from_checkpoint(same, teacher, names, kind="mono")
    assert info["per_class"] == 0
    for k, v in same.state_dict().items():
        assert torch.equal(v, ck["state_dict"][k]), k

    new = ("Car", "Cyclist")
    torch.manual_seed(1)
    sizes = MonoModelConfig().mean_sizes
    model_cfg = MonoModelConfig(
        size="n", input_size=tuple(INPUT), class_names=new, mean_sizes=(sizes[0], sizes[2])
    )
    small = MonoDetectorModel(model_cfg)
    info = init_from_checkpoint(small, teacher, new, {}, kind="mono")
    assert info["mapping"] == {"Car": "Car", "Cyclist": "Cyclist"}
    assert info["per_class"] == 12  # class conv weight + bias, 3 levels, 2 heads
    sd = small.state_dict()
    for head in ("one2many", "one2one"):
        for level in range(3):
            for p in ("weight", "bias"):
                key = f"{head}.cls.{level}.4.{p}"
                torch.testing.assert_close(sd[key], ck["state_dict"][key][[0, 2]], rtol=0, atol=0)
    with pytest.raises(ValueError, match="'pointcloud' detector"):
        init_from_checkpoint(small, teacher, new, {}, kind="pointcloud")
