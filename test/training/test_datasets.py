"""Dataset loaders on the real ScanNet / SUN RGB-D samples, incl. the SUN RGB-D yaw/size proof."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from sr3d_training.datasets import (
    SCANNET_CLASSES,
    SUNRGBD_CLASSES,
    Sample,
    ScanNetDataset,
    ScanNetInfoDataset,
    SunRGBDDataset,
    SunRGBDInfoDataset,
    align_points,
    label_to_box,
    load_pickle_strict,
    load_scannet_raw_scan,
    load_scannet_scene,
    load_sunrgbd_depth,
    load_sunrgbd_frame,
    parse_mmdet3d_infos,
    read_axis_alignment_txt,
    read_sunrgbd_calib,
    read_sunrgbd_label,
    sunrgbd_info_boxes_to_ours,
)


def points_in_box(points: np.ndarray, box: np.ndarray) -> int:
    """Number of points inside one box in OUR convention (yaw CCW about +z, dx along heading)."""
    b = np.asarray(box, np.float64)
    d = points[:, :3].astype(np.float64) - b[:3]
    c, s = math.cos(b[6]), math.sin(b[6])
    lx, ly = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    return int(
        ((np.abs(lx) <= b[3] / 2) & (np.abs(ly) <= b[4] / 2) & (np.abs(d[:, 2]) <= b[5] / 2)).sum()
    )


def negate_yaw(b: np.ndarray) -> np.ndarray:
    return np.asarray(b, np.float64) * [1, 1, 1, 1, 1, 1, -1]


def swap_sizes(b: np.ndarray) -> np.ndarray:
    return np.asarray(b, np.float64)[[0, 1, 2, 4, 3, 5, 6]]


@pytest.fixture(scope="module")
def scannet(data_root):
    return data_root / "scannet"


@pytest.fixture(scope="module")
def sunrgbd(data_root):
    return data_root / "sunrgbd"


# ------------------------------------------------------------------------------------------------
# ScanNet


def test_scannet_export_split_and_sample_types(scannet):
    ds = ScanNetDataset(scannet, "train")
    assert len(ds) == 1 and ds.scene_ids == ["scene0000_00"]
    s = ds[0]
    assert isinstance(s, Sample)
    assert s.points.dtype == np.float32 and s.points.shape == (81369, 6)
    assert s.gt_boxes.dtype == np.float32 and s.gt_boxes.shape == (27, 7)
    assert s.gt_labels.dtype == np.int64 and s.class_names == SCANNET_CLASSES
    assert (s.gt_boxes[:, 6] == 0).all()
    assert s.points[:, 3:].min() >= 0 and s.points[:, 3:].max() <= 255
    raw = np.load(scannet / "scannet_instance_data" / "scene0000_00_bbox.npy")
    np.testing.assert_allclose(s.gt_boxes[:, :6], raw[:, :6], rtol=1e-6)
    assert ScanNetDataset(scannet, "val").scene_ids == ["scene0000_02"]
    assert ScanNetDataset(scannet, "test").scene_ids == ["scene0000_01"]
    ds = ScanNetDataset(scannet, scene_ids=["scene0000_01", "scene0000_02"])
    assert [x.num_boxes for x in ds] == [29, 28]
    # usable with a torch DataLoader (list collate)
    dl = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=list)
    assert [x.sample_id for x in next(iter(dl))] == ["scene0000_01", "scene0000_02"]


def test_scannet_boxes_contain_their_objects(scannet):
    """In the aligned frame, every GT box holds points; most hold many."""
    s = ScanNetDataset(scannet, "train")[0]
    counts = np.array([points_in_box(s.points, b) for b in s.gt_boxes])
    assert (counts > 0).all() and np.median(counts) > 300


def test_scannet_nyu40_mapping_drops_other_classes(tmp_path, scannet):
    src = scannet / "scannet_instance_data"
    np.save(tmp_path / "sceneX_vert_all.npy", np.load(src / "scene0000_00_vert_all.npy")[:100])
    boxes = np.array(
        [
            [0, 0, 0, 1, 1, 1, 5],
            [1, 1, 1, 1, 1, 1, 1],
            [2, 2, 2, 1, 1, 1, 39],
            [3, 3, 3, 1, 1, 1, 40],
        ],
        np.float32,
    )  # chair, wall, garbagebin, otherprop
    np.save(tmp_path / "sceneX_bbox.npy", boxes)
    s = load_scannet_scene(tmp_path, "sceneX")
    assert [s.class_names[i] for i in s.gt_labels] == ["chair", "garbagebin"]
    np.testing.assert_array_equal(s.gt_boxes[:, 0], [0, 2])


def test_scannet_info_v0_matches_export(scannet):
    export = ScanNetDataset(scannet, scene_ids=["scene0000_00", "scene0000_02"])
    for split, ref in (("train", export[0]), ("val", export[1])):
        ds = ScanNetInfoDataset(
            scannet / f"scannet_infos_{split}.pkl", export_dir=scannet / "scannet_instance_data"
        )
        s = ds[0]
        assert s.sample_id == ref.sample_id and s.meta["info_version"] == "v0"
        np.testing.assert_allclose(s.gt_boxes, ref.gt_boxes, atol=1e-6)
        np.testing.assert_array_equal(s.gt_labels, ref.gt_labels)
        np.testing.assert_array_equal(s.points, ref.points)


def test_scannet_info_v1_with_category_remap(tmp_path, scannet):
    ref = ScanNetDataset(scannet, "train")[0]
    raw_pts = np.fromfile(scannet / "raw" / "scene0000_00_unaligned.bin", np.float32)
    (tmp_path / "points").mkdir()
    raw_pts.tofile(tmp_path / "points" / "scene0000_00.bin")
    v0 = load_pickle_strict(scannet / "raw" / "scene0000_00_infos_with_axis_align.pkl")[0]
    # v1.x file whose categories are listed in REVERSED order: labels must be remapped by name
    rev = list(reversed(SCANNET_CLASSES))
    instances = [
        {"bbox_3d": b.tolist(), "bbox_label_3d": rev.index(SCANNET_CLASSES[c])}
        for b, c in zip(v0["annos"]["gt_boxes_upright_depth"], v0["annos"]["class"])
    ]
    instances.append({"bbox_3d": [0, 0, 0, 1, 1, 1], "bbox_label_3d": -1})  # ignored
    info = {
        "metainfo": {"categories": {c: i for i, c in enumerate(rev)}, "info_version": "1.1"},
        "data_list": [
            {
                "lidar_points": {"num_pts_feats": 6, "lidar_path": "scene0000_00.bin"},
                "instances": instances,
                "axis_align_matrix": v0["annos"]["axis_align_matrix"].tolist(),
            }
        ],
    }
    with open(tmp_path / "scannet_infos_v1.pkl", "wb") as f:
        pickle.dump(info, f)
    ds = ScanNetInfoDataset(tmp_path / "scannet_infos_v1.pkl", tmp_path)
    s = ds[0]
    assert s.sample_id == "scene0000_00" and s.meta["info_version"] == "v1"
    np.testing.assert_array_equal(s.gt_labels, ref.gt_labels)
    np.testing.assert_allclose(s.gt_boxes, ref.gt_boxes, atol=1e-6)
    np.testing.assert_allclose(s.points, ref.points, atol=1e-5)


def test_scannet_raw_unaligned_scan_is_aligned_by_matrix(scannet):
    ref = ScanNetDataset(scannet, "train")[0]
    s = load_scannet_raw_scan(
        scannet / "raw" / "scene0000_00_unaligned.bin",
        scannet / "raw" / "scene0000_00_infos_with_axis_align.pkl",
    )
    assert s.meta["axis_align_matrix"].shape == (4, 4)
    np.testing.assert_allclose(s.points, ref.points, atol=1e-5)
    np.testing.assert_allclose(s.gt_boxes, ref.gt_boxes, atol=1e-6)
    # unaligned, the same boxes would miss most of their objects
    raw = np.fromfile(scannet / "raw" / "scene0000_00_unaligned.bin", np.float32).reshape(-1, 6)
    aligned = sum(points_in_box(s.points, b) for b in s.gt_boxes)
    unaligned = sum(points_in_box(raw, b) for b in s.gt_boxes)
    assert aligned > 5 * unaligned


def test_scannet_mmdet3d_export_layout_applies_matrix(tmp_path, scannet):
    raw = np.fromfile(scannet / "raw" / "scene0000_00_unaligned.bin", np.float32).reshape(-1, 6)
    m = load_pickle_strict(scannet / "raw" / "scene0000_00_infos_with_axis_align.pkl")[0]
    np.save(tmp_path / "scene0000_00_vert.npy", raw)
    np.save(tmp_path / "scene0000_00_axis_align_matrix.npy", m["annos"]["axis_align_matrix"])
    np.save(
        tmp_path / "scene0000_00_aligned_bbox.npy",
        np.load(scannet / "scannet_instance_data" / "scene0000_00_bbox.npy"),
    )
    s = load_scannet_scene(tmp_path, "scene0000_00")
    ref = np.load(scannet / "scannet_instance_data" / "scene0000_00_vert_all.npy")
    np.testing.assert_allclose(s.points, ref, atol=1e-5)


def test_align_points_and_axis_alignment_txt(tmp_path):
    m = np.eye(4)
    m[:3, 3] = [1, 2, 3]
    m[:2, :2] = [[0, -1], [1, 0]]
    (tmp_path / "scene.txt").write_text(
        "colorHeight = 968\naxisAlignment = " + " ".join(map(str, m.ravel())) + "\n"
    )
    np.testing.assert_array_equal(read_axis_alignment_txt(tmp_path / "scene.txt"), m)
    (tmp_path / "none.txt").write_text("colorHeight = 968\n")
    np.testing.assert_array_equal(read_axis_alignment_txt(tmp_path / "none.txt"), np.eye(4))
    p = np.array([[1.0, 0, 0, 10, 20, 30]], np.float32)
    np.testing.assert_allclose(align_points(p, m), [[1, 3, 3, 10, 20, 30]])


def test_scannet_errors_name_the_file(tmp_path, scannet):
    with pytest.raises(FileNotFoundError, match="sceneZ_vert"):
        load_scannet_scene(tmp_path, "sceneZ")
    with pytest.raises(FileNotFoundError, match="scannetv2_nosuch.txt"):
        ScanNetDataset(scannet, "nosuch")
    with pytest.raises(ValueError):
        ScanNetDataset(scannet)
    (tmp_path / "sceneB_vert_all.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="sceneB_vert_all.npy"):
        load_scannet_scene(tmp_path, "sceneB")
    np.save(tmp_path / "sceneC_vert_all.npy", np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match="sceneC_vert_all.npy"):
        load_scannet_scene(tmp_path, "sceneC")
    np.save(tmp_path / "sceneD_vert_all.npy", np.zeros((10, 6), np.float32))
    np.save(tmp_path / "sceneD_bbox.npy", np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="sceneD_bbox.npy"):
        load_scannet_scene(tmp_path, "sceneD")
    ds = ScanNetInfoDataset(scannet / "scannet_infos_train.pkl")  # no point source given
    with pytest.raises(FileNotFoundError, match="scannet_infos_train.pkl"):
        ds[0]


# ------------------------------------------------------------------------------------------------
# strict pickle


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_strict_pickle_rejects_code(tmp_path, capsys):
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps([{"a": _Evil()}]))
    with pytest.raises(ValueError, match="evil.pkl"):
        load_pickle_strict(bad)
    assert "pwned" not in capsys.readouterr().out
    weird = tmp_path / "set.pkl"
    weird.write_bytes(pickle.dumps({"s": {1, 2}}))  # sets are not plain data here
    with pytest.raises(ValueError, match="set.pkl"):
        load_pickle_strict(weird)
    trunc = tmp_path / "trunc.pkl"
    trunc.write_bytes(pickle.dumps({"a": np.arange(10)})[:-5])
    with pytest.raises(ValueError, match="trunc.pkl"):
        load_pickle_strict(trunc)
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        load_pickle_strict(tmp_path / "missing.pkl")
    # numpy arrays of every common protocol round-trip
    for proto in (2, 3, 4, 5):
        good = tmp_path / f"good{proto}.pkl"
        good.write_bytes(
            pickle.dumps(
                {"a": np.arange(6.0).reshape(2, 3), "b": [np.int64(3)], "c": b"raw"}, protocol=proto
            )
        )
        out = load_pickle_strict(good)
        np.testing.assert_array_equal(out["a"], np.arange(6.0).reshape(2, 3))
        assert out["b"][0] == 3 and out["c"] == b"raw"
    not_info = tmp_path / "notinfo.pkl"
    not_info.write_bytes(pickle.dumps({"foo": 1}))
    with pytest.raises(ValueError, match="notinfo.pkl"):
        parse_mmdet3d_infos(not_info, SCANNET_CLASSES)


# ------------------------------------------------------------------------------------------------
# SUN RGB-D


def test_sunrgbd_export_frames(sunrgbd):
    root = sunrgbd / "sunrgbd_trainval"
    assert SunRGBDDataset(root, "train").frame_ids == ["000001", "000002"]
    assert SunRGBDDataset(root, "val").frame_ids == ["000003", "000004"]
    ds = SunRGBDDataset(root, frame_ids=[1, "000002", 3, 4], with_calib=True)
    names = []
    for s in ds:
        assert s.points.dtype == np.float32 and s.points.shape[1] == 6 and s.num_points > 200_000
        assert s.points[:, 3:].max() > 200 and s.points[:, 3:].max() <= 255.0 + 1e-3
        assert s.class_names == SUNRGBD_CLASSES
        assert s.meta["Rtilt"].shape == (3, 3) and s.meta["K"][2, 2] == 1.0
        names += [SUNRGBD_CLASSES[i] for i in s.gt_labels]
    # lamp / ottoman / dresser_mirror are not evaluated classes and are dropped
    assert sorted(set(names)) == ["bed", "dresser", "night_stand"]
    assert names.count("bed") == 4


def test_sunrgbd_calibration_projects_points_into_the_image(sunrgbd):
    """Rtilt / K (column-major) are read correctly: the points project onto the 730 x 530 image."""
    root = sunrgbd / "sunrgbd_trainval"
    rtilt, k = read_sunrgbd_calib(root / "calib" / "000001.txt")
    pts = load_sunrgbd_depth(root / "depth" / "000001.mat")[:, :3].astype(np.float64)
    cam = pts @ rtilt  # upright depth -> depth (Rtilt^T p), then depth -> camera axes
    cam = np.stack([cam[:, 0], -cam[:, 2], cam[:, 1]], 1)
    uv = cam @ k.T
    uv = uv[:, :2] / uv[:, 2:]
    assert uv.min() > -1 and uv[:, 0].max() < 731 and uv[:, 1].max() < 531


def _all_label_boxes(root):
    for i in range(1, 5):
        pts = load_sunrgbd_depth(root / "depth" / f"{i:06d}.mat")
        for obj in read_sunrgbd_label(root / "label" / f"{i:06d}.txt"):
            yield pts, obj


def test_sunrgbd_label_convention_on_real_frames(sunrgbd):
    """Our mapping of the .txt labels (yaw = +atan2(oy, ox), dx = 2 * half_l (column 10) along the
    heading) explains the point clouds better than the negated yaw or swapped sizes."""
    totals = {"ours": 0, "neg": 0, "swap": 0}
    wins_swap = 0
    n = 0
    for pts, obj in _all_label_boxes(sunrgbd / "sunrgbd_trainval"):
        b = obj.box3d
        c = {
            "ours": points_in_box(pts, b),
            "neg": points_in_box(pts, negate_yaw(b)),
            "swap": points_in_box(pts, swap_sizes(b)),
        }
        for k in totals:
            totals[k] += c[k]
        wins_swap += c["ours"] > c["swap"]
        n += 1
    assert n == 17
    # measured: ours 482,838 / negated 430,523 / swapped 259,687
    assert totals["ours"] > 1.1 * totals["neg"]
    assert totals["ours"] > 1.5 * totals["swap"]
    assert wins_swap >= 12


def test_sunrgbd_label_parsing_maps_columns():
    b = label_to_box(1.0, 2.0, 3.0, 0.25, 1.0, 0.5, 0.0, 2.0)  # half_w, half_l, half_h, ox, oy
    np.testing.assert_allclose(b, [1, 2, 3, 2.0, 0.5, 1.0, math.pi / 2])
    with pytest.raises(ValueError):
        label_to_box(0, 0, 0, 1, 1, 1, 0.0, 0.0)


def test_sunrgbd_v1_info_demo_frame(sunrgbd):
    ds = SunRGBDInfoDataset(sunrgbd / "demo" / "sunrgbd_000017_infos.pkl")
    s = ds[0]
    assert s.sample_id == "000017" and s.num_points == 50_000
    assert s.points[:, 3:].max() == pytest.approx(255.0)
    assert [SUNRGBD_CLASSES[i] for i in s.gt_labels] == ["night_stand", "bed"]
    bed = s.gt_boxes[1].astype(np.float64)
    # yaw/size convention: the bed (heading -63 deg, so negating the yaw turns it by 52 deg)
    ours, neg, swp = (points_in_box(s.points, x) for x in (bed, negate_yaw(bed), swap_sizes(bed)))
    assert ours > 1.5 * neg and ours > 3 * swp  # measured 18,117 / 9,106 / 3,913
    # z origin: stored z is the geometric centre -> both boxes stand on the floor
    z = np.sort(s.points[:, 2])
    floor = float(np.median(z[: len(z) // 10]))
    for b in s.gt_boxes:
        assert abs((b[2] - b[5] / 2) - floor) < 0.06
    bottom = SunRGBDInfoDataset(
        sunrgbd / "demo" / "sunrgbd_000017_infos.pkl", bbox_z_origin="bottom"
    )[0]
    assert (bottom.gt_boxes[:, 2] - bottom.gt_boxes[:, 5] / 2 - floor > 0.3).all()
    assert points_in_box(s.points, bed) > 2 * points_in_box(bottom.points, bottom.gt_boxes[1])


def test_sunrgbd_v1_info_and_label_files_agree_in_size_order(sunrgbd):
    """No frame is in both sources; but per class the size order agrees: beds are longer along
    the heading (dx > dy), night stands shallower (dx < dy), in the .txt export and in v1.x."""
    demo = SunRGBDInfoDataset(sunrgbd / "demo" / "sunrgbd_000017_infos.pkl")[0]
    export = SunRGBDDataset(sunrgbd / "sunrgbd_trainval", frame_ids=[1, 2, 3, 4])
    for s in [demo, *export]:
        for b, lab in zip(s.gt_boxes, s.gt_labels):
            if SUNRGBD_CLASSES[lab] == "bed":
                assert b[3] > b[4]
            elif SUNRGBD_CLASSES[lab] == "night_stand":
                assert b[3] < b[4]


def test_sunrgbd_v0_info_negates_yaw(tmp_path, sunrgbd):
    """A v0.x info (stored yaw = -atan2) built from the .txt labels loads to the same boxes."""
    ref = load_sunrgbd_frame(sunrgbd / "sunrgbd_trainval", 1)
    stored = ref.gt_boxes.astype(np.float64).copy()
    stored[:, 6] = -stored[:, 6]
    (tmp_path / "points").mkdir()
    pts = ref.points.copy()
    pts[:, 3:] /= 255.0
    pts.tofile(tmp_path / "points" / "000001.bin")
    info = [
        {
            "point_cloud": {"num_features": 6, "lidar_idx": 1},
            "pts_path": "points/000001.bin",
            "annos": {
                "gt_num": len(stored),
                "name": np.array(["bed", "night_stand", "dresser"]),
                "gt_boxes_upright_depth": stored,
                "class": ref.gt_labels.copy(),
            },
        }
    ]
    with open(tmp_path / "sunrgbd_infos_v0.pkl", "wb") as f:
        pickle.dump(info, f, protocol=2)
    s = SunRGBDInfoDataset(tmp_path / "sunrgbd_infos_v0.pkl", tmp_path)[0]
    assert s.meta["info_version"] == "v0" and s.sample_id == "000001"
    np.testing.assert_allclose(s.gt_boxes, ref.gt_boxes, atol=1e-6)
    np.testing.assert_allclose(s.points, ref.points, atol=1e-3)
    np.testing.assert_allclose(
        sunrgbd_info_boxes_to_ours(stored, "v1")[:, 6], -ref.gt_boxes[:, 6], atol=1e-6
    )


def test_sunrgbd_errors_name_the_file(tmp_path, sunrgbd):
    (tmp_path / "depth").mkdir()
    (tmp_path / "label").mkdir()
    with pytest.raises(FileNotFoundError, match="000009.mat"):
        load_sunrgbd_frame(tmp_path, 9)
    (tmp_path / "depth" / "000009.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="000009.mat"):
        load_sunrgbd_frame(tmp_path, 9)
    (tmp_path / "label" / "bad.txt").write_text("bed 1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_sunrgbd_label(tmp_path / "label" / "bad.txt")
    with pytest.raises(FileNotFoundError, match="train_data_idx.txt"):
        SunRGBDDataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="000017.bin"):
        SunRGBDInfoDataset(sunrgbd / "demo" / "sunrgbd_000017_infos.pkl", tmp_path)[0]
    (tmp_path / "odd.bin").write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(ValueError, match="odd.bin"):
        SunRGBDInfoDataset(
            sunrgbd / "demo" / "sunrgbd_000017_infos.pkl",
            point_files={"000017": tmp_path / "odd.bin"},
        )[0]


def test_sample_validation():
    with pytest.raises(ValueError, match="points"):
        Sample(np.zeros((3, 5)), np.zeros((0, 7)), np.zeros(0), ("a",), "x")
    with pytest.raises(ValueError, match="labels"):
        Sample(np.zeros((3, 6)), np.zeros((1, 7)), np.array([1]), ("a",), "x")
    with pytest.raises(ValueError, match="boxes"):
        Sample(np.zeros((3, 6)), np.zeros((1, 7)), np.zeros(2), ("a",), "x")
    s = Sample(np.zeros((3, 6), np.float64), [], [], ("a",), "x")
    assert s.points.dtype == np.float32 and s.gt_boxes.shape == (0, 7)
    assert s.gt_labels.dtype == np.int64 and s.xyz.shape == (3, 3) and s.num_boxes == 0
