"""sr3d_training.datasets.bag: the extracted-bag dataset format, written and read back with a
real ScanNet scan (no ROS): exact arrays, class lists and maps, score filter, resumable writer,
clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

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
