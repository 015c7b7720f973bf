"""KITTI AP|R40 / AP|R11 evaluator: hand-made cases, and parity with mmdetection3d 1.4's port of
the official evaluator on the real frames with perturbed labels.

The oracle is ``mmdet3d/evaluation/functional/kitti_utils/eval.py`` (+ ``rotate_iou.py``) from
the mmdet3d 1.4.0 wheel, loaded by path and run with numba only (numba's CUDA simulator stands in
for the GPU rotated IoU), in a subprocess. Where it lives: ``$SR3D_KITTI_EVAL_DIR`` or
``~/.cache/sr3d_ros/mmdet3d-1.4.0/kitti_utils`` (``scripts/setup_env.sh`` extracts it there).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sr3d_training.cli.evaluate import main as eval_main
from sr3d_training.datasets.kitti import KittiObjects, read_kitti_label
from sr3d_training.evaluation.kitti import (
    evaluate_kitti,
    evaluate_kitti_folders,
    kitti_overlaps,
    run_kitti_cli,
)
from sr3d_training.evaluation.kitti_match import select_thresholds

ORACLE_DIR = Path(
    os.environ.get("SR3D_KITTI_EVAL_DIR", Path.home() / ".cache/sr3d_ros/mmdet3d-1.4.0/kitti_utils")
)

_ORACLE = r"""
import importlib.util, json, pickle, sys
import numpy as np
d = sys.argv[1]
spec = importlib.util.spec_from_file_location("kitti_utils", d + "/__init__.py",
                                              submodule_search_locations=[d])
mod = importlib.util.module_from_spec(spec); sys.modules["kitti_utils"] = mod
spec.loader.exec_module(mod)
ev = sys.modules["kitti_utils.eval"]
gt, dt = pickle.load(open(sys.argv[2], "rb"))
o7 = np.array([[0.7, 0.5, 0.5], [0.7, 0.5, 0.5], [0.7, 0.5, 0.5]])
o5 = np.array([[0.7, 0.5, 0.5], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
mo = np.stack([o7, o5])
r = ev.do_eval(gt, dt, [0, 1, 2], mo, ["bbox", "bev", "3d", "aos"])
names = ["ap11_bbox", "ap11_bev", "ap11_3d", "ap11_aos", "ap40_bbox", "ap40_bev", "ap40_3d",
         "ap40_aos"]
print(json.dumps({n: np.asarray(v).tolist() for n, v in zip(names, r)}))
"""


@pytest.fixture(scope="module")
def labels(data_root):
    folder = data_root / "kitti" / "training" / "label_2"
    ids = sorted(p.stem for p in folder.glob("*.txt"))
    return ids, [read_kitti_label(folder / f"{i}.txt") for i in ids]


def _anno(o: KittiObjects) -> dict:
    """mmdetection3d annotation dict (dimensions l, h, w)."""
    return {
        "name": o.names.astype(object),
        "truncated": o.truncated,
        "occluded": o.occluded,
        "alpha": o.alpha,
        "bbox": o.bbox.reshape(-1, 4),
        "dimensions": o.dimensions[:, [2, 0, 1]].reshape(-1, 3),
        "location": o.location.reshape(-1, 3),
        "rotation_y": o.rotation_y,
        "score": o.score,
    }


def _perturb(gt: list[KittiObjects], seed: int) -> list[KittiObjects]:
    """Detections from the labels: shifted, rescaled, turned, some dropped, false positives."""
    rng = np.random.default_rng(seed)
    out = []
    for g in gt:
        d = g.subset(g.cared & (rng.random(len(g)) > 0.15))
        k = len(d)
        loc = d.location + rng.normal(0, 0.25, (k, 3)) * [1, 0.3, 2]
        dims = d.dimensions * rng.uniform(0.85, 1.15, (k, 3))
        ry = d.rotation_y + rng.normal(0, 0.2, k)
        bbox = d.bbox + rng.normal(0, 4, (k, 4))
        fp_n = int(rng.integers(0, 3))
        fp_src = g.subset(g.cared) if g.cared.any() else d
        fp = fp_src.subset(rng.integers(0, max(len(fp_src), 1), fp_n)) if len(fp_src) else d
        fp = fp.replace(
            location=fp.location + rng.uniform(2, 6, (len(fp), 3)) * [1, 0, 1],
            bbox=fp.bbox + rng.uniform(30, 90, (len(fp), 1)) * [1, 0, 1, 0],
        )
        d = d.replace(
            location=loc,
            dimensions=dims,
            rotation_y=ry,
            bbox=bbox,
            alpha=d.alpha + rng.normal(0, 0.3, k),
        )
        both = KittiObjects.concat([d, fp])
        n = len(both)
        names = both.names.copy()
        swap = rng.random(n) < 0.1  # some detections with the wrong class
        names[swap] = rng.choice(["Car", "Pedestrian", "Cyclist"], int(swap.sum()))
        out.append(both.replace(names=names, score=rng.uniform(0.05, 1.0, n)))
    return out


def _oracle(gt: list[KittiObjects], dt: list[KittiObjects], tmp_path: Path) -> dict:
    pytest.importorskip("numba", reason="numba runs the mmdet3d evaluator (test oracle)")
    if not (ORACLE_DIR / "eval.py").is_file():
        pytest.skip(f"mmdet3d 1.4.0 kitti_utils/eval.py not found in {ORACLE_DIR} (setup_env.sh)")
    blob = tmp_path / "annos.pkl"
    blob.write_bytes(pickle.dumps(([_anno(g) for g in gt], [_anno(d) for d in dt])))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "NUMBA_DISABLE_PERFORMANCE_WARNINGS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", _ORACLE, str(ORACLE_DIR), str(blob)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seed", [0, 1])
def test_parity_with_mmdet3d_port_on_real_frames(labels, tmp_path, seed):
    _, gt = labels
    dt = _perturb(gt, seed)
    ref = _oracle(gt, dt, tmp_path)
    ours = evaluate_kitti(gt, dt)
    for key in ("bbox", "bev", "3d", "aos"):
        for rp, table in (("40", ours.ap40), ("11", ours.ap11)):
            want = np.asarray(ref[f"ap{rp}_{key}"])  # (class, difficulty, IoU set)
            np.testing.assert_allclose(table[key], want, atol=1e-9, err_msg=f"AP{rp} {key}")
    # the perturbation is strong enough to make the metrics informative (not all 0 or 100)
    assert 5 < ours.ap40["3d"][0, 1, 1] < 99


def test_perfect_detections_give_100_and_none_give_0(labels):
    _, gt = labels
    perfect = [g.subset(g.cared) for g in gt]
    res = evaluate_kitti(gt, perfect)
    counted = [
        sum(
            n == "Car" and b[3] - b[1] > h and o <= occ and t <= tr
            for g in gt
            for n, b, o, t in zip(g.names, g.bbox, g.occluded, g.truncated)
        )
        for h, occ, tr in ((40, 0, 0.15), (25, 1, 0.3), (25, 2, 0.5))
    ]
    assert res.num_gt[0].tolist() == counted == [12, 26, 35]
    # the devkit samples one threshold per TP and 41 recall points: with 12 GT only 12 points
    # are filled, so perfect Car-easy detections score 11/40 (a property of the official code)
    assert len(select_thresholds(np.ones(12), 12)) == 12
    assert res.ap40["3d"][0, 0, 0] == pytest.approx(100 * 11 / 40)
    # with >= 40 counted GT per class and difficulty, perfect detections score 100
    res = evaluate_kitti(gt * 14, perfect * 14)
    for m in ("bbox", "bev", "3d", "aos"):
        assert np.allclose(res.ap40[m], 100.0) and np.allclose(res.ap11[m], 100.0), m
    none = evaluate_kitti(gt, [KittiObjects.empty() for _ in gt])
    assert all(np.all(v == 0) for v in none.ap40.values())


def test_neighbour_and_dontcare_rules(labels):
    ids, gt = labels
    perfect = [x.subset(x.cared) for x in gt]
    base = evaluate_kitti(gt * 4, perfect * 4, classes=["Car"])
    i = ids.index("000010")
    g = gt[i]
    # a confident Car detection on a DontCare region: no false positive in 2D (DontCare rule),
    # a false positive in BEV / 3D (the port applies the rule to 2D only)
    dc = g.subset(np.nonzero(g.names == "DontCare")[0][:1])
    dc_det = dc.replace(
        names=np.array(["Car"]),
        dimensions=np.array([[1.5, 1.6, 3.9]]),
        location=np.array([[30.0, 1.6, 60.0]]),
        rotation_y=np.zeros(1),
        alpha=np.zeros(1),
        score=np.array([2.0]),
    )
    dets = list(perfect)
    dets[i] = KittiObjects.concat([perfect[i], dc_det])
    res = evaluate_kitti(gt * 4, dets * 4, classes=["Car"])
    assert np.array_equal(res.ap40["bbox"], base.ap40["bbox"])
    height = dc.bbox[0, 3] - dc.bbox[0, 1]
    assert 25 <= height < 40  # ignored in Easy (detections under the minimum height)
    assert np.array_equal(res.ap40["3d"][0, 0], base.ap40["3d"][0, 0])
    assert np.all(res.ap40["3d"][0, 1:] < base.ap40["3d"][0, 1:])
    # the same detection off any DontCare region is a 2D false positive too
    off = dc_det.replace(bbox=np.array([[0.0, 300.0, 60.0, 370.0]]))
    dets[i] = KittiObjects.concat([perfect[i], off])
    assert np.all(evaluate_kitti(gt * 4, dets * 4, classes=["Car"]).ap40["bbox"] < 100)
    # Van ground truth: a confident Car detection on it is neither TP nor FP
    j = next(k for k, x in enumerate(gt) if "Van" in x.names)
    van = gt[j].subset(gt[j].names == "Van")
    dets = list(perfect)
    dets[j] = KittiObjects.concat([perfect[j], van.replace(names=np.array(["Car"]), score=[2.0])])
    res = evaluate_kitti(gt * 4, dets * 4, classes=["Car"])
    for m in ("bbox", "bev", "3d"):
        assert np.array_equal(res.ap40[m], base.ap40[m]), m
    # ... while a Car detection on a Pedestrian is a false positive
    ped = gt[0].subset(gt[0].names == "Pedestrian")
    dets = list(perfect)
    dets[0] = KittiObjects.concat([perfect[0], ped.replace(names=np.array(["Car"]), score=[2.0])])
    res = evaluate_kitti(gt * 4, dets * 4, classes=["Car"])
    assert np.all(res.ap40["3d"] < base.ap40["3d"])


def test_overlaps_and_thresholds_hand_cases(labels):
    _, gt = labels
    g = next(x for x in gt if (x.names == "Car").sum() >= 2)
    cars = g.subset(g.names == "Car")
    shifted = cars.replace(location=cars.location + [0.0, 0.0, cars.dimensions[0, 2] / 2])
    ov3 = kitti_overlaps(cars, shifted, "3d")
    ovb = kitti_overlaps(cars, shifted, "bev")
    # a box shifted by half its length along z keeps a known share when it faces the camera
    assert np.allclose(np.diag(kitti_overlaps(cars, cars, "3d")), 1.0)
    assert np.all(np.diag(ov3) < 1) and np.all(np.diag(ov3) > 0)
    assert np.allclose(np.diag(ov3), np.diag(ovb))  # same height, no vertical change
    # thresholds: recall steps of 1/40 over 4 GT and 4 TP scores -> all four kept
    assert select_thresholds(np.array([0.9, 0.2, 0.5, 0.7]), 4).tolist() == [0.9, 0.7, 0.5, 0.2]
    # 80 TPs for 80 GT: 41 thresholds, one per 2 scores (plus the first)
    thr = select_thresholds(np.linspace(1, 0.01, 80), 80)
    assert len(thr) == 41 and thr[0] == 1.0 and thr[-1] == pytest.approx(0.01)


def test_folder_evaluation_and_cli(labels, data_root, tmp_path, capsys):
    ids, gt = labels
    res_dir = tmp_path / "results"
    res_dir.mkdir()
    dt = _perturb(gt, 3)
    for fid, d in zip(ids[:-1], dt[:-1]):  # the last frame has no result file
        lines = [
            f"{n} 0 0 {a:.4f} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f} {s[0]:.3f} {s[1]:.3f} "
            f"{s[2]:.3f} {p[0]:.3f} {p[1]:.3f} {p[2]:.3f} {r:.4f} {c:.4f}"
            for n, a, b, s, p, r, c in zip(
                d.names, d.alpha, d.bbox, d.dimensions, d.location, d.rotation_y, d.score
            )
        ]
        (res_dir / f"{fid}.txt").write_text("\n".join(lines) + "\n")
    res = evaluate_kitti_folders(data_root / "kitti/training/label_2", res_dir)
    assert res.num_frames == len(ids)
    out = tmp_path / "kitti.json"
    argv = ["--dataset", "kitti", "--data", str(data_root / "kitti"), "--ids", *ids]
    assert eval_main([*argv, "--predictions", str(res_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "KITTI AP|R40" in text and "Pedestrian" in text and "Moderate" in text
    js = json.loads(out.read_text())["result"]
    car = js["per_class"]["Car"]
    assert car["AP40"]["loose"]["3d"]["moderate"] == pytest.approx(res.ap40["3d"][0, 1, 1])
    assert car["iou"]["strict"]["3d"] == 0.7 and car["num_gt"]["moderate"] == 26
    # a missing data folder is a runtime error (1); a missing option a usage error (2)
    assert run_kitti_cli(str(tmp_path / "nowhere"), str(res_dir), None, None, out) == 1
    assert "error" in capsys.readouterr().err
    assert eval_main([*argv, "--out", str(out)]) == 2  # no --predictions
    assert "--predictions" in capsys.readouterr().err
