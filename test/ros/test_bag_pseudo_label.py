"""``sr3d-bag pseudo-label`` on real data: the default point-cloud model labels the moving-sensor
ScanNet bag (through TF into the aligned frame) and a seeded random monocular model labels a
KITTI image bag. The labels are exactly the teacher's detections above the score for the kept
classes, in the dataset and in the review bag, and the summary counts them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from sr3d_ros.cli.bag import main
from sr3d_ros.frames import matrix_from_quaternion
from sr3d_ros.ros import bag as B

torch.set_num_threads(1)
START = 1_700_000_000_000_000_000
SCORE = 0.3


@pytest.fixture(scope="module")
def sensor_bag(data_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("pl") / "sensor"
    B.build_scannet_sensor_bag(path, data_root, frames=2, start_ns=START)
    return path


@pytest.fixture(scope="module")
def labelled(sensor_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("pl_out") / "labels"
    opts = B.ExtractOptions(points_topic="/points", target_frame="scannet_aligned")
    from sr3d_ros.ros.bag.pseudo_label import pseudo_label

    s = pseudo_label(sensor_bag, None, out, score=SCORE, extract_options=opts, device="cpu")
    return out, s


def _dataset(path, **kw):
    from sr3d_training.datasets.bag import BagDataset

    return BagDataset(path, **kw)


def test_labels_are_the_teachers_detections(labelled, sensor_bag, tmp_path):
    from sr3d_ros.inference import load_detector

    out, s = labelled
    det = load_detector(None, device="cpu", score_threshold=SCORE)
    plain = tmp_path / "plain"
    B.extract_bag(
        sensor_bag, plain, B.ExtractOptions(points_topic="/points", target_frame="scannet_aligned")
    )
    src, ds = _dataset(plain), _dataset(out)
    assert ds.sample_ids == src.sample_ids == ["000000", "000001"] and s.samples == 2
    total = 0
    for i in range(len(src)):
        np.testing.assert_array_equal(ds[i].points, src[i].points)
        d = det(src[i].points)
        keep = d.scores.numpy() >= SCORE
        lab = ds.labels(i)
        np.testing.assert_allclose(lab["boxes"], d.boxes.numpy()[keep], atol=1e-6)
        assert lab["names"] == [n for n, k in zip(d.names, keep) if k]
        np.testing.assert_allclose(lab["scores"], d.scores.numpy()[keep], atol=1e-7)
        assert keep.sum() > 5  # the default model was trained on this room: it finds things
        total += int(keep.sum())
        assert ds.entries[i]["stamp_ns"] == src.entries[i]["stamp_ns"]
        assert ds.entries[i]["bag"] == str(sensor_bag.resolve())
    assert s.boxes == total

    summary = json.loads((out / "summary.json").read_text())
    counts: dict[str, int] = {}
    for i in range(len(ds)):
        for n in ds.labels(i)["names"]:
            counts[n] = counts.get(n, 0) + 1
    assert {k: v["boxes"] for k, v in summary["per_class"].items()} == counts
    assert summary["score"] == SCORE and summary["samples"] == 2
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {r["class"]: int(r["boxes"]) for r in rows} == counts
    assert all(float(r["min_score"]) >= SCORE for r in rows)


def test_review_bag_replays_cloud_and_labels(labelled):
    out, _ = labelled
    from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

    ds = _dataset(out)
    info = B.bag_info(out / "review")
    assert info["topics"]["/pseudo_labels"]["frame_ids"] == ["scannet_aligned"]
    clouds = [m.msg for m in B.read_bag(out / "review", topics=["/points"])]
    labels = [m.msg for m in B.read_bag(out / "review", topics=["/pseudo_labels"])]
    assert len(clouds) == len(labels) == len(ds)
    for i, (c, lab) in enumerate(zip(clouds, labels)):
        np.testing.assert_array_equal(pointcloud2_to_array(c)[0], ds[i].points)
        poses = B.detection_poses(lab)
        assert poses.stamp_ns == ds.entries[i]["stamp_ns"] == START + i * 500_000_000
        boxes, tilt = B.upright_boxes(
            poses.centers, matrix_from_quaternion(poses.quaternions), poses.sizes
        )
        raw = ds.labels(i)
        assert tilt < 1e-6 and poses.names == raw["names"]
        np.testing.assert_allclose(boxes[:, :6], np.asarray(raw["boxes"])[:, :6], atol=1e-6)


def test_class_filter_dir_source_and_errors(labelled, tmp_path, capsys):
    out, s = labelled
    cls = sorted(s.per_class)[:2]
    sub = tmp_path / "sub"
    # from the labelled dataset folder (its labels ignored), keeping two classes
    assert (
        main(
            [
                "pseudo-label",
                str(out),
                "--out",
                str(sub),
                "--score",
                str(SCORE),
                "--classes",
                *cls,
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "review bag" in text and cls[0] in text
    full, part = _dataset(out), _dataset(sub)
    for i in range(len(full)):
        want = [n for n in full.labels(i)["names"] if n in cls]
        assert part.labels(i)["names"] == want
    assert set(json.loads((sub / "summary.json").read_text())["per_class"]) == set(cls)

    bad = tmp_path / "bad"
    assert main(["pseudo-label", str(out), "--out", str(bad), "--classes", "unicorn"]) == 1
    assert "unicorn" in capsys.readouterr().err
    assert main(["pseudo-label", str(out), "--out", str(bad), "--score", "1.5"]) == 1
    assert main(["pseudo-label", str(out), "--out", str(sub)]) == 1
    assert "already exists" in capsys.readouterr().err
    bag_dir = json.loads((out / "dataset.json").read_text())["source"]["source"]
    assert main(["pseudo-label", bag_dir, "--out", str(bad)]) == 1  # a bag: which topic?
    assert "topic" in capsys.readouterr().err
    assert not bad.exists() and not (tmp_path / "bad.partial").exists()


def test_mono_teacher_on_kitti_images(data_root, tmp_path):
    from sr3d_ros.checkpoints import save_checkpoint
    from sr3d_ros.inference import load_detector
    from sr3d_ros.models.mono import (
        MonoDetectorConfig,
        MonoDetectorModel,
        MonoInferenceConfig,
        MonoModelConfig,
    )
    from sr3d_ros.ros.bag.pseudo_label import pseudo_label

    torch.manual_seed(0)
    cfg = MonoDetectorConfig(MonoModelConfig(size="n"), MonoInferenceConfig(score_threshold=0.0))
    ckpt = tmp_path / "mono.pt"
    save_checkpoint(ckpt, MonoDetectorModel(cfg.model).state_dict(), cfg, {"note": "test"})
    bag = tmp_path / "kitti"
    B.build_kitti_bag(bag, data_root / "kitti" / "training", ["000007"], start_ns=START)
    kt = B.KittiBagTopics()
    opts = B.ExtractOptions(image_topic=kt.image, camera_info_topic=kt.camera_info)
    out = tmp_path / "mono_labels"
    s = pseudo_label(bag, ckpt, out, score=0.0, extract_options=opts, device="cpu")
    det = load_detector(ckpt, device="cpu")
    x = _dataset(out)[0]
    d = det(x.image, x.camera)
    lab = _dataset(out).labels(0)
    assert s.boxes == len(d) > 0
    np.testing.assert_allclose(lab["camera_boxes"], d.camera_boxes.numpy(), atol=1e-5)
    np.testing.assert_allclose(lab["boxes"], d.boxes.numpy(), atol=1e-5)
    (rev,) = [m.msg for m in B.read_bag(out / "review", topics=["/pseudo_labels"])]
    poses = B.detection_poses(rev)
    cam = B.camera_boxes_from_poses(poses.centers, poses.rotations, poses.sizes)
    np.testing.assert_allclose(cam, np.asarray(lab["camera_boxes"]), atol=1e-5)
    # a point-cloud teacher cannot label images
    with pytest.raises(ValueError, match="point-cloud teacher cannot label images"):
        pseudo_label(out, None, tmp_path / "x", device="cpu")
