"""``python -m sr3d_ros.demo`` end to end (bag build, node process, lock-step play, record, table,
mAP, PNG) on two real ScanNet scans with an untrained tiny model (``--random-init``), and its
failure exit when the node publishes nothing.

Settings are the smallest that still exercise every step: 2 scans, bag at 10 Hz, one torch
thread, the top-down PNG renderer (~20 s on 2 busy cores).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
SCENES = ["scene0000_00", "scene0000_01"]


def _demo_args(out: Path, data_root: Path) -> list[str]:
    return [
        "--parts",
        "scannet",
        "--random-init",
        "--scenes",
        *SCENES,
        "--rate",
        "10",
        "--num-threads",
        "1",
        "--device",
        "cpu",
        "--render-backend",
        "bev",
        "--data-root",
        str(data_root),
        "--out",
        str(out),
        "--timeout",
        "60",
        "--startup-timeout",
        "60",
    ]


def _env() -> dict[str, str]:
    # conftest put ROS_LOG_DIR in a temporary folder of this session; the demo makes a fresh one
    return dict(
        os.environ,
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=os.environ["ROS_LOG_DIR"],
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND", "truncated PNG"
    return w, h


def test_evaluable_skips_frames_the_recorder_missed():
    import numpy as np

    from sr3d_ros.demo.evaluation import Recorded, evaluable
    from sr3d_ros.demo.replay import FrameRow

    rows = [FrameRow(i, f"s{i}", points=100, gt=1, stamp=10 + i) for i in range(4)]
    gt = (np.zeros((1, 7), np.float32), np.zeros(1, np.int64))
    cloud = np.zeros((100, 6), np.float32)
    recorded = Recorded(
        ground_truth={10: gt, 11: gt, 13: gt}, points={10: cloud, 12: cloud, 13: cloud}
    )
    keep, warnings = evaluable(rows, recorded)
    assert [r.frame for r in keep] == [0, 3]
    assert len(warnings) == 2
    assert "frame 1 (s1)" in warnings[0] and "input cloud" in warnings[0]
    assert "frame 2 (s2)" in warnings[1] and "ground truth" in warnings[1]
    assert all(w.startswith("WARNING") for w in warnings)


@pytest.mark.slow
def test_demo_end_to_end_random_init(tmp_path, data_root):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "sr3d_ros.demo", *_demo_args(out, data_root)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in proc.stdout
    # the per-frame table: header + one row per scan with a detection count and latencies
    assert re.search(
        r"^\| frame \| scene +\| points \| gt boxes \| detections \| latency ms \|",
        proc.stdout,
        re.M,
    ), proc.stdout
    for i, scene in enumerate(SCENES):
        assert re.search(
            rf"^\| +{i} \| {scene} +\| +\d+ \| +\d+ \| +\d+ \| +\d+ \|", proc.stdout, re.M
        ), proc.stdout
    assert "WARNING" not in proc.stdout
    m = re.search(r"^mAP@0\.25 = (\d+\.\d{4}) +mAP@0\.5 = (\d+\.\d{4})$", proc.stdout, re.M)
    assert m, proc.stdout
    assert 0.0 <= float(m.group(1)) <= 1.0
    for scene in SCENES:
        png = out / f"{scene}_detections_vs_gt.png"
        assert png.is_file(), text
        w, h = _png_size(png)
        assert w >= 320 and h >= 240 and png.stat().st_size > 20_000
    import json

    res = json.loads((out / "results.json").read_text())
    assert res["random_init"] and res["node_exit_code"] == 0
    assert [f["scene"] for f in res["frames"]] == SCENES
    assert all(f["detections"] is not None for f in res["frames"])
    assert res["evaluated_frames"] == [0, 1]


@pytest.mark.slow
def test_demo_exits_1_when_the_node_publishes_nothing(tmp_path, data_root, monkeypatch, capsys):
    """In-process demo whose node process is killed once it is up (after the start-up handshake,
    before the first scan): no detections reach the recorder, exit status 1."""
    from sr3d_ros import demo
    from sr3d_ros.demo import node as node_mod
    from sr3d_ros.ros import bag as B

    monkeypatch.setenv("ROS_LOG_DIR", os.environ["ROS_LOG_DIR"])  # the demo replaces it: restore
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    procs: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            procs.append(self)

    real_wait = B.BagPlayer.wait_for_subscribers

    def wait_then_kill_node(self, *a, **k):
        ok = real_wait(self, *a, **k)
        (node_proc,) = procs
        node_proc.kill()
        node_proc.wait()
        return ok

    monkeypatch.setattr(node_mod.subprocess, "Popen", Popen)
    monkeypatch.setattr(B.BagPlayer, "wait_for_subscribers", wait_then_kill_node)
    args = _demo_args(tmp_path / "demo", data_root)
    args[args.index("--scenes") + 1 : args.index("--rate")] = SCENES[:1]
    args[args.index("--timeout") + 1] = "3"
    try:
        rc = demo.main(args)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    captured = capsys.readouterr()
    assert rc == 1, captured.out + captured.err
    assert "no result for frame 0" in captured.out
    assert "the node published no detections" in captured.err
    assert len(procs) == 1 and procs[0].returncode != 0


def test_training_scenes_come_from_the_checkpoint_provenance(tmp_path):
    """The demo separates scans the model was trained on (from the checkpoint's ``train_ids``)
    from held-out ones; checkpoints without that record, or unreadable ones, name none."""
    import torch

    from sr3d_ros.checkpoints import save_checkpoint
    from sr3d_ros.config import DetectorConfig, ModelConfig
    from sr3d_ros.demo.prepare import training_scenes
    from sr3d_ros.models import TR3DDetector

    cfg = DetectorConfig(ModelConfig(width=0.25))
    torch.manual_seed(0)
    weights = TR3DDetector(cfg.model).state_dict()
    save_checkpoint(
        tmp_path / "a.pt", weights, cfg, {"train_ids": ["scene0000_00", "scene0000_01"]}
    )
    save_checkpoint(tmp_path / "b.pt", weights, cfg, {"note": "no record"})
    (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
    assert training_scenes(tmp_path / "a.pt") == {"scene0000_00", "scene0000_01"}
    assert training_scenes(tmp_path / "b.pt") == set()
    assert training_scenes(tmp_path / "c.pt") == set()


# ---------------------------------------------------------------------------------------------
# KITTI part


def _label_message(objs, frame="camera_optical_frame"):
    """The Detection3DArray the image node publishes for these objects (as a monocular detector
    returns them: body-frame boxes; scores from the label order)."""
    import torch
    from std_msgs.msg import Header

    from sr3d_ros.detections import Detections
    from sr3d_ros.ros.messages import detections_to_msg, optical_frame_poses

    classes = tuple(sorted(set(objs.names)))
    det = Detections(
        torch.from_numpy(objs.boxes()).float(),
        torch.linspace(0.95, 0.3, len(objs)).float(),
        torch.tensor([classes.index(c) for c in objs.names]),
        classes,
    )
    return detections_to_msg(det, Header(frame_id=frame), optical_frame_poses(det.boxes))


@pytest.mark.parametrize("frame", ["000007", "000036", "000217"])
def test_recorded_detections_back_to_kitti_objects(frame, data_root):
    """Real labels -> node message -> KITTI objects: the same 3D boxes, alpha = ry - atan2(x, z)
    (camera.py's convention); the 2D box is the projected 3D box (corners_to_image_boxes)."""
    import numpy as np
    import torch

    from sr3d_ros.demo.kitti_eval import detections_to_kitti
    from sr3d_ros.geometry.camera import camera_box_corners, corners_to_image_boxes
    from sr3d_training.datasets.kitti import read_kitti_calib, read_kitti_label

    root = data_root / "kitti/training"
    objs = read_kitti_label(root / f"label_2/{frame}.txt")
    objs = objs.subset(objs.cared)
    cam = read_kitti_calib(root / f"calib/{frame}.txt").camera(1242, 375)
    out = detections_to_kitti(_label_message(objs), cam.P, 1242, 375)
    assert list(out.names) == list(objs.names)
    np.testing.assert_allclose(out.location, objs.location, atol=1e-5)
    np.testing.assert_allclose(out.dimensions, objs.dimensions, atol=1e-5)
    dry = np.angle(np.exp(1j * (out.rotation_y - objs.rotation_y)))
    np.testing.assert_allclose(dry, 0, atol=1e-5)
    x, _, z = objs.location.T
    da = np.angle(np.exp(1j * (out.alpha - (objs.rotation_y - np.arctan2(x, z)))))
    np.testing.assert_allclose(da, 0, atol=1e-5)
    ref, _ = corners_to_image_boxes(cam, camera_box_corners(torch.from_numpy(objs.camera_boxes())))
    np.testing.assert_allclose(out.bbox, ref.numpy(), atol=1e-3)
    np.testing.assert_allclose(out.score, np.linspace(0.95, 0.3, len(objs)), atol=1e-6)
    empty = detections_to_kitti(_label_message(objs.subset(np.zeros(len(objs), bool))), cam.P, 9, 9)
    assert len(empty) == 0


def test_kitti_ap_of_recorded_detections_equals_the_labels_own(data_root):
    """AP of the labels sent through the node message and back equals the AP of the labels used
    directly as detections (BEV / 3D: identical boxes), on the held-out frames."""
    import numpy as np

    from sr3d_ros.demo.kitti_eval import detections_to_kitti, evaluate_frames
    from sr3d_training.datasets.kitti import read_kitti_calib, read_kitti_label
    from sr3d_training.evaluation.kitti import evaluate_kitti

    root = data_root / "kitti/training"
    frames = ["000007", "000036", "000217"]
    direct, via_msg = {}, {}
    for f in frames:
        objs = read_kitti_label(root / f"label_2/{f}.txt")
        objs = objs.subset(np.isin(objs.names, ["Car", "Pedestrian", "Cyclist"]))
        objs = objs.replace(score=np.linspace(0.95, 0.3, len(objs)))
        direct[f] = objs
        P = read_kitti_calib(root / f"calib/{f}.txt").P[2]
        via_msg[f] = detections_to_kitti(_label_message(objs), P, 1242, 375)
    ev = evaluate_frames(root, via_msg, held_out=["000007", "000217"], trained_on={"000036"})
    assert ev.held_out_frames == ["000007", "000217"] and ev.seen == ["000036"]
    ref = evaluate_kitti(
        [read_kitti_label(root / f"label_2/{f}.txt") for f in frames], list(direct.values())
    )
    for m in ("bev", "3d"):
        np.testing.assert_allclose(ev.all_frames.ap40[m], ref.ap40[m], atol=1e-9)
    # Car moderate 3D at IoU 0.7 found (few counted boxes: AP|R40 stays far below 100)
    assert ev.all_frames.ap40["3d"][0, 1, 0] > 0
    assert ev.held_out is not None and ev.held_out.to_dict()["num_frames"] == 2


@pytest.mark.slow
def test_demo_kitti_part_end_to_end_random_init(tmp_path, data_root):
    """``--parts kitti``: two real KITTI frames through the image node by bag replay with an
    untrained monocular model: table, AP on the held-out frames played, a PNG per frame,
    kitti_results.json; exit 0."""
    import json

    out = tmp_path / "demo"
    args = ["--parts", "kitti", "--random-init", "--kitti-frames", "000007", "000036"]
    args += ["--kitti-rate", "10", "--num-threads", "1", "--device", "cpu", "--out", str(out)]
    args += ["--data-root", str(data_root), "--timeout", "90", "--startup-timeout", "90"]
    proc = subprocess.run(
        [sys.executable, "-m", "sr3d_ros.demo", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert re.search(
        r"^\| frame \| kitti frame \| +image \| gt objects \| detections \|", text, re.M
    )
    for i, (fid, size) in enumerate((("000007", "1242x375"), ("000036", "1242x375"))):
        assert re.search(rf"^\| +{i} \| {fid} +\| {size} \| +\d+ \| +\d+ \| +\d+ \|", text, re.M), (
            text
        )
        w, h = _png_size(out / f"kitti_{fid}_detections_vs_gt.png")
        assert h == 375 and w > 1242  # the image and the bird's-eye view beside it
    assert "KITTI AP|R40 on the held-out frames (000007, 000036):" in text
    assert re.search(r"^held-out moderate 3D AP\|R40 \(%\): Car \d+\.\d\d", text, re.M), text
    assert "WARNING" not in proc.stdout
    res = json.loads((out / "kitti_results.json").read_text())
    assert res["random_init"] and res["node_exit_code"] == 0
    assert res["evaluated_frames"] == ["000007", "000036"]
    assert res["held_out_evaluation"]["num_frames"] == 2
    assert all(f["detections"] for f in res["frames"])  # the untrained model's best boxes


def test_demo_kitti_part_reports_missing_model_and_data(tmp_path, capsys, monkeypatch):
    """A missing monocular checkpoint or KITTI folder: one clear line, exit 1, no traceback."""
    from sr3d_ros import demo

    monkeypatch.setenv("ROS_LOG_DIR", os.environ["ROS_LOG_DIR"])  # the demo replaces it: restore
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    base = ["--parts", "kitti", "--out", str(tmp_path / "o")]
    assert demo.main([*base, "--mono-checkpoint", str(tmp_path / "mono.pt")]) == 1
    err = capsys.readouterr().err
    assert "KITTI part: monocular checkpoint" in err and "mono.pt not found" in err, err
    assert demo.main([*base, "--data-root", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "KITTI part: KITTI frames not found" in err and "Traceback" not in err, err
