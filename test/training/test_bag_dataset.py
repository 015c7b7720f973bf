"""sr3d_training.datasets.bag: the extracted-bag dataset format, written and read back with a
real ScanNet scan (no ROS): exact arrays, class lists and maps, score filter, resumable writer,
clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sr3d_training.datasets import ScanNetDataset
from sr3d_training.datasets.bag import BagDataset, BagDatasetWriter, partial_dir, read_manifest


@pytest.fixture(scope="module")
def scan(data_root):
    return ScanNetDataset(data_root / "scannet", scene_ids=["scene0000_00"])[0]


def _entry(i):
    return {
        "id": f"{i:06d}",
        "bag": "/bags/b",
        "topic": "/points",
        "stamp_ns": 10 + i,
        "frame_id": "map",
        "index": i,
    }


def _labels(s, scores=None):
    names = [s.class_names[k] for k in s.gt_labels]
    return {
        "boxes": s.gt_boxes,
        "names": names,
        "scores": np.ones(len(names)) if scores is None else scores,
    }


def test_round_trip_exact(scan, tmp_path):
    out = tmp_path / "ds"
    w = BagDatasetWriter(out, {"bag": "/bags/b"}, "points")
    w.add(_entry(0), points=scan.points, labels=_labels(scan))
    w.add(_entry(1), points=scan.points[:100])  # unlabelled
    assert not out.exists() and partial_dir(out).is_dir()
    w.finish(["chair"], "map")
    assert not partial_dir(out).exists()
    meta = json.loads((out / "dataset.json").read_text())
    # the given class list comes first, label names it lacks follow in order of appearance
    names = [scan.class_names[k] for k in scan.gt_labels]
    assert "chair" not in names  # scene0000_00 has none
    assert meta["class_names"] == ["chair", *dict.fromkeys(names)]
    ds = BagDataset(out, class_names=scan.class_names)
    assert len(ds) == 2 and ds.sample_ids == ["000000", "000001"]
    x = ds[0]
    np.testing.assert_array_equal(x.points, scan.points)
    np.testing.assert_array_equal(x.gt_boxes, scan.gt_boxes)
    np.testing.assert_array_equal(x.gt_labels, scan.gt_labels)
    assert x.meta["stamp_ns"] == 10 and x.meta["bag"] == "/bags/b" and x.source == "bag"
    assert len(ds[1].gt_boxes) == 0 and len(BagDataset(out, labelled_only=True)) == 1


def test_class_map_and_scores(scan, tmp_path):
    out = tmp_path / "ds"
    scores = np.linspace(0.1, 1.0, len(scan.gt_labels))
    w = BagDatasetWriter(out, {}, "points")
    w.add(_entry(0), points=scan.points, labels=_labels(scan, scores))
    w.finish([], "map")
    names = [scan.class_names[k] for k in scan.gt_labels]
    a, b = list(dict.fromkeys(names))[:2]  # two classes of the scene
    # fine-tuning on two classes: `a` kept, `b` renamed "thing", everything else dropped
    ds = BagDataset(out, class_names=(a, "thing"), class_map={b: "thing"})
    x = ds[0]
    keep = [n in (a, b) for n in names]
    assert 0 < sum(keep) < len(names)
    np.testing.assert_array_equal(x.gt_boxes, scan.gt_boxes[keep])
    assert x.gt_labels.tolist() == [0 if n == a else 1 for n in names if n in (a, b)]
    # a mapping to None drops a class even if it is in the list
    assert len(BagDataset(out, class_names=(a,), class_map={a: None})[0].gt_boxes) == 0
    hi = BagDataset(out, class_names=scan.class_names, min_score=0.5)[0]
    np.testing.assert_array_equal(hi.gt_boxes, scan.gt_boxes[scores >= 0.5])
    np.testing.assert_array_equal(hi.meta["scores"], scores[scores >= 0.5])
    with pytest.raises(ValueError, match="not in"):
        BagDataset(out, class_names=(a,), class_map={b: "sofa"})


def test_writer_resume_and_errors(scan, tmp_path):
    out = tmp_path / "ds"
    w = BagDatasetWriter(out, {"every": 1}, "points")
    w.add(_entry(0), points=scan.points[:10])
    w.close()
    # an interruption mid-line: the half-written line is dropped on resume
    with (partial_dir(out) / "manifest.jsonl").open("a") as f:
        f.write('{"id": "000001", "bag"')
    assert [e["id"] for e in read_manifest(partial_dir(out))] == ["000000"]
    with pytest.raises(FileNotFoundError, match="unfinished"):
        BagDataset(out)
    with pytest.raises(FileExistsError, match="--resume"):
        BagDatasetWriter(out, {"every": 1}, "points")
    with pytest.raises(ValueError, match="other options"):
        BagDatasetWriter(out, {"every": 2}, "points", resume=True)
    w = BagDatasetWriter(out, {"every": 1}, "points", resume=True)
    assert w.done == {"000000"}
    w.add(_entry(1), points=scan.points[:20])
    w.finish([], "map")
    assert BagDataset(out).sample_ids == ["000000", "000001"]
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        BagDatasetWriter(tmp_path / "x", {}, "points").add(_entry(0), points=scan.points[:, :3])
    with pytest.raises(ValueError, match="kind"):
        BagDatasetWriter(tmp_path / "y", {}, "lidar")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="format"):
        BagDataset(tmp_path / "z")
    with pytest.raises(FileNotFoundError, match="not a bag dataset"):
        BagDataset(tmp_path)


def test_mixed_sources_weights_and_epochs(scan, tmp_path):
    from sr3d_training.datasets.mixing import MixedDataset, parse_data_spec

    bench = [scan.replace(sample_id=f"b{i}") for i in range(4)]
    bag = [scan.replace(sample_id=f"g{i}") for i in range(10)]
    mixed = MixedDataset([(bench, 1.0), (bag, 0.5)], length=12, seed=3)
    assert mixed.counts == [8, 4] and len(mixed) == 12
    seen: set[str] = set()
    for epoch in range(3):  # the undersampled bag source rotates: 4 new samples per epoch
        mixed.epoch = epoch
        ids = [mixed[i].sample_id for i in range(len(mixed))]
        assert sorted(ids[:8]) == sorted([f"b{i}" for i in range(4)] * 2)
        assert len(set(ids[8:])) == 4
        seen |= set(ids[8:])
    assert seen == {f"g{i}" for i in range(10)}
    with pytest.raises(IndexError):
        mixed[12]
    spec = parse_data_spec(f"bag:{tmp_path}@0.25")
    assert (spec.path, spec.weight) == (str(tmp_path.resolve()), 0.25)
    assert parse_data_spec("bag:rel/dir").weight == 1.0
    for bad in ("kitti:x", "bag:", f"bag:{tmp_path}@-1", f"bag:{tmp_path}@x"):
        with pytest.raises(ValueError):
            parse_data_spec(bad)


def test_train_config_sources_and_build(scan, data_root, tmp_path):
    """A training config with a bag source (path relative to the config file): the training
    set mixes benchmark and bag samples, and follows the trainer's epoch."""
    import yaml

    from sr3d_training.batching import build_datasets
    from sr3d_training.config import load_train_config

    ds = tmp_path / "bagds"
    w = BagDatasetWriter(ds, {}, "points")
    for i in range(3):
        w.add(_entry(i), points=scan.points[i::3], labels=_labels(scan))
    w.finish([], "map")
    cfg_path = tmp_path / "cfg" / "train.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "dataset": "scannet",
                    "root": str(data_root / "scannet"),
                    "train_ids": ["scene0000_01"],
                    "repeat": 4,
                    "sources": [{"path": "../bagds", "weight": 3.0, "min_score": 0.5}],
                },
                "augmentation": {"normalize_colors": False, "point_ratio": 1.0},
            }
        )
    )
    cfg = load_train_config(cfg_path)
    assert cfg.data.sources[0].path == str(ds.resolve())
    train, _ = build_datasets(cfg)
    assert len(train) == 4  # the benchmark's length x repeat: 1 benchmark + 3 bag items
    train.epoch = 1
    assert train.base.epoch == 1
    ids = sorted(train.base[i].sample_id for i in range(4))
    assert ids.count("scene0000_01") == 1 and sum(i.startswith("00") for i in ids) == 3


# ---- image samples (the monocular detector's bag data) -------------------------------------


def _kitti_labels(objects):
    """Labels as sr3d-bag extract writes them for an image topic (DontCare left out)."""
    o = objects.subset(objects.cared)
    return {
        "boxes": o.boxes(),
        "names": list(o.names),
        "scores": np.ones(len(o)),
        "camera_boxes": o.camera_boxes(),
    }


def _calib(camera, frame="camera_optical_frame"):
    return {
        "P": camera.P.tolist(),
        "width": camera.width,
        "height": camera.height,
        "frame_id": frame,
    }


@pytest.fixture(scope="module")
def kitti(data_root):
    from sr3d_training.datasets.kitti import KittiDataset

    return KittiDataset(data_root / "kitti" / "training")


@pytest.fixture(scope="module")
def image_bag(kitti, tmp_path_factory):
    """Every real KITTI frame written as an image bag dataset with its labels."""
    out = tmp_path_factory.mktemp("img") / "ds"
    w = BagDatasetWriter(out, {"bag": "/bags/kitti"}, "images")
    for i, fid in enumerate(kitti.frame_ids):
        s = kitti[i]
        entry = dict(_entry(i), frame_id="camera_optical_frame")
        w.add(
            entry, image=s.image, calib=_calib(s.camera), labels=_kitti_labels(kitti.objects(fid))
        )
    w.finish([], "camera_optical_frame")
    return out


def _reference_image_box(cam_box, P, width, height):
    """2D box of a KITTI camera box by hand: the 8 corners (bottom face at y, top at y - h),
    projected with P, enclosed and clipped (independent of sr3d_ros.geometry)."""
    x, y, z, length, h, w, ry = cam_box
    dx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * length / 2
    dz = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
    dy = np.array([0, 0, 0, 0, -h, -h, -h, -h])
    c, s = np.cos(ry), np.sin(ry)
    pts = np.stack([x + c * dx + s * dz, y + dy, z - s * dx + c * dz, np.ones(8)])
    uvw = P @ pts
    u, v = uvw[0] / uvw[2], uvw[1] / uvw[2]
    box = np.array([u.min(), v.min(), u.max(), v.max()])
    clipped = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return clipped, 1 - (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / area


def test_image_samples_project_kitti_objects(image_bag, kitti):
    """On the 14 real KITTI frames: images, cameras and 3D labels round-trip exactly; the 2D
    boxes are the hand-projected 3D boxes (clipped); truncation, computed as the clipped
    fraction, lies within 0.02 of the annotators' on all 84 objects; the projected boxes match
    the annotated ones with median IoU > 0.95; alpha is KITTI's formula; occlusion is 0."""
    from sr3d_training.datasets.kitti import KITTI_CLASSES
    from sr3d_training.losses.iou2d import image_box_iou

    ds = BagDataset(image_bag, class_names=KITTI_CLASSES)
    assert ds.kind == "images" and len(ds) == len(kitti) == 14
    ious, alpha_err, n = [], [], 0
    for i, fid in enumerate(kitti.frame_ids):
        x, ref = ds[i], kitti[i]
        np.testing.assert_array_equal(x.image, ref.image)
        np.testing.assert_array_equal(x.camera.P, ref.camera.P)
        objects = kitti.objects(fid)
        objects = objects.subset(objects.cared)
        got = x.meta["kitti"]
        assert list(got.names) == list(objects.names)  # all in view
        np.testing.assert_array_equal(got.location, objects.location)
        np.testing.assert_array_equal(got.dimensions, objects.dimensions)
        np.testing.assert_array_equal(got.rotation_y, objects.rotation_y)
        ref_alpha = objects.rotation_y - np.arctan2(objects.location[:, 0], objects.location[:, 2])
        ref_alpha = (ref_alpha + np.pi) % (2 * np.pi) - np.pi
        np.testing.assert_allclose(got.alpha, ref_alpha, atol=1e-12)
        alpha_err += np.abs(got.alpha - objects.alpha).tolist()
        np.testing.assert_array_equal(x.gt_boxes, ref.gt_boxes.astype(np.float32))
        np.testing.assert_array_equal(x.gt_labels, ref.gt_labels)
        assert not got.occluded.any() and (got.score == 1).all()
        for k, cam_box in enumerate(objects.camera_boxes()):
            box, trunc = _reference_image_box(
                cam_box, ref.camera.P, ref.camera.width, ref.camera.height
            )
            np.testing.assert_allclose(got.bbox[k], box, atol=1e-6)
            assert got.truncated[k] == pytest.approx(trunc, abs=1e-9)
        assert np.abs(got.truncated - objects.truncated).max() <= 0.02
        iou = image_box_iou(torch.from_numpy(got.bbox), torch.from_numpy(objects.bbox))
        ious += torch.diagonal(iou).tolist()
        n += len(got)
    assert n == 84 and np.median(ious) > 0.95
    assert np.median(alpha_err) < 0.005  # the labels' alpha: the same formula, 2 decimals


def test_image_labels_out_of_view_are_dropped(kitti, tmp_path):
    """Labels behind the camera or beside the image are not in the sample; class maps and
    score filters apply as for clouds."""
    i = kitti.frame_ids.index("000007")
    s = kitti[i]
    lab = _kitti_labels(kitti.objects("000007"))
    behind = [2.0, 1.6, -8.0, 4.0, 1.5, 1.7, 0.3]  # z < 0: behind the camera
    beside = [60.0, 1.6, 10.0, 4.0, 1.5, 1.7, 0.3]  # 80 degrees to the right: off the image
    straddle = [1.0, 1.6, 0.5, 4.0, 1.5, 1.7, 1.57]  # corners on both sides of the camera
    cam = np.concatenate([lab["camera_boxes"], [behind, beside, straddle]])
    from sr3d_ros.geometry.camera import camera_boxes_to_boxes

    lab = {
        "boxes": camera_boxes_to_boxes(torch.from_numpy(cam)).numpy(),
        "names": [*lab["names"], "Car", "Car", "Car"],
        "scores": [0.9, 0.2, 0.8, 0.7, 1.0, 1.0, 1.0],
        "camera_boxes": cam,
    }
    w = BagDatasetWriter(tmp_path / "ds", {}, "images")
    w.add(_entry(0), image=s.image, calib=_calib(s.camera), labels=lab)
    w.finish([], "camera_optical_frame")
    assert list(lab["names"][:4]) == ["Car", "Car", "Car", "Cyclist"]
    x = BagDataset(tmp_path / "ds", class_names=("Car", "Pedestrian", "Cyclist"))[0]
    assert list(x.meta["kitti"].names) == ["Car", "Car", "Car", "Cyclist"]
    assert len(x.gt_boxes) == 4 and x.gt_labels.tolist() == [0, 0, 0, 2]
    np.testing.assert_array_equal(x.meta["camera_boxes"], cam[:4])
    np.testing.assert_array_equal(x.meta["scores"], [0.9, 0.2, 0.8, 0.7])
    y = BagDataset(
        tmp_path / "ds", class_names=("Vehicle",), class_map={"Car": "Vehicle"}, min_score=0.5
    )[0]
    assert list(y.meta["kitti"].names) == ["Vehicle"] * 2 and y.gt_labels.tolist() == [0, 0]
    np.testing.assert_array_equal(y.meta["camera_boxes"], cam[[0, 2]])


def _mono_config(data_root, sources, model=None, **data):
    from sr3d_ros.config import from_dict
    from sr3d_training.config import MonoTrainConfig

    return from_dict(
        MonoTrainConfig,
        {
            "model": {"size": "n", "input_size": [96, 320], **(model or {})},
            "data": {
                "dataset": "kitti",
                "root": str(data_root / "kitti"),
                "repeat": 1,
                "sources": sources,
                **data,
            },
            "augmentation": {"flip_prob": 0.0, "jitter": False},
        },
    )


def test_mono_training_mixes_kitti_and_bag_images(image_bag, data_root):
    """build_mono_datasets with an image bag source: KITTI frames and bag samples in the
    weights' proportions, and a bag sample's targets are its projected 2D boxes letterboxed
    and its camera boxes (exact)."""
    from sr3d_training.batching import build_mono_datasets, collate_mono
    from sr3d_training.datasets.mixing import MixedDataset
    from sr3d_training.image_transforms import letterbox

    cfg = _mono_config(
        data_root, [{"path": str(image_bag), "weight": 3.0}], train_ids=["000000", "000003"]
    )
    train, val = build_mono_datasets(cfg)
    assert val is None and isinstance(train.base, MixedDataset)
    assert train.base.counts == [1, 2] and len(train) == 3  # E = 2 KITTI frames, weights 1 : 3
    train.epoch = 2
    assert train.base.epoch == 2
    items = [train[i] for i in range(3)]
    assert items[0].sample_id in ("000000", "000003")
    raw = BagDataset(image_bag, class_names=cfg.model.class_names, labelled_only=True)
    for item in items[1:]:
        assert item.image.shape == (96, 320, 3)
        ref = letterbox(raw[raw.sample_ids.index(item.sample_id)], 320, 96)
        batch = collate_mono([item], cfg.model.class_names)
        t = batch["targets"]
        o = ref.meta["kitti"]
        o = o.subset(np.isin(o.names, cfg.model.class_names))
        assert int(t.mask.sum()) == len(o)
        np.testing.assert_allclose(t.boxes2d[0, : len(o)].numpy(), o.bbox, atol=1e-4)
        np.testing.assert_allclose(t.cam_boxes[0, : len(o)].numpy(), o.camera_boxes(), atol=1e-5)
        np.testing.assert_allclose(t.projections[0].numpy(), ref.camera.P, atol=1e-4)
    # bag data only (no KITTI training frames)
    only, _ = build_mono_datasets(_mono_config(data_root, [{"path": str(image_bag)}]))
    assert len(only) == 14 and only[0].image.shape == (96, 320, 3)


def test_mono_bag_source_errors(image_bag, data_root, scan, tmp_path):
    from sr3d_training.batching import build_mono_datasets

    pts = tmp_path / "pts"
    w = BagDatasetWriter(pts, {}, "points")
    w.add(_entry(0), points=scan.points[:100], labels=_labels(scan))
    w.finish([], "map")
    with pytest.raises(ValueError, match="dataset of points, this model trains on images"):
        build_mono_datasets(_mono_config(data_root, [{"path": str(pts)}]))
    model = {"class_names": ["Car", "Forklift"], "mean_sizes": [[3.9, 1.5, 1.6], [2.0, 2.0, 1.0]]}
    cfg = _mono_config(data_root, [{"path": str(image_bag)}], model)
    with pytest.raises(ValueError, match="KITTI types only"):
        build_mono_datasets(cfg)
