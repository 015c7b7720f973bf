"""sr3d-detect on a real ScanNet scan with a random-init checkpoint: JSON + PNG, and its errors."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch

import sr3d_ros.cli.detect as detect_mod
from sr3d_ros.checkpoints import save_checkpoint
from sr3d_ros.cli.detect import load_gt_boxes, main
from sr3d_ros.config import DetectorConfig, InferenceConfig, ModelConfig
from sr3d_ros.models import TR3DDetector


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = DetectorConfig(model=ModelConfig(width=0.25), inference=InferenceConfig(nms_pre=100))
    path = tmp_path_factory.mktemp("ckpt") / "random_w025.pt"
    save_checkpoint(
        path,
        TR3DDetector(cfg.model).state_dict(),
        cfg,
        provenance={"note": "random init for tests"},
    )
    return path


def _scan_args(data_root: Path, scene: str, checkpoint: Path, out: Path, png: Path) -> list[str]:
    """sr3d-detect arguments for a real ScanNet scan with its ground truth, on the CPU, every
    detection kept (score threshold 0)."""
    scans = data_root / "scannet" / "scannet_instance_data"
    return [
        str(scans / f"{scene}_vert_all.npy"),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--render",
        str(png),
        "--gt",
        str(scans / f"{scene}_bbox.npy"),
        "--device",
        "cpu",
        "--score-threshold",
        "0.0",
    ]


def test_detect_writes_json_and_png(
    tmp_path: Path, checkpoint: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("PIL")
    out, png = tmp_path / "det.json", tmp_path / "det.png"
    rc = main(
        [
            *_scan_args(data_root, "scene0000_00", checkpoint, out, png),
            "--max-detections",
            "20",
            "--render-min-score",
            "0",
            "--image-size",
            "640",
            "480",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert "detections in 81369 points" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["input"]["num_points"] == 81369 and data["input"]["columns"] == 6
    assert data["checkpoint"]["provenance"] == {"note": "random init for tests"}
    assert data["checkpoint"]["config"]["model"]["width"] == 0.25
    assert data["checkpoint"]["config"]["inference"]["score_threshold"] == 0.0  # override recorded
    assert data["device"] == "cpu" and set(data["timings_ms"]) == {
        "voxelize",
        "backbone",
        "neck",
        "head",
        "nms",
    }
    assert 0 < len(data["detections"]) <= 20
    d0 = data["detections"][0]
    assert set(d0) == {"label", "class_name", "score", "box"} and len(d0["box"]["center"]) == 3
    assert all(
        np.isfinite(d["box"]["center"] + d["box"]["size"] + [d["box"]["yaw"]]).all()
        for d in data["detections"]
    )
    assert data["render"]["gt"] == {
        "path": str((data_root / "scannet/scannet_instance_data/scene0000_00_bbox.npy").resolve()),
        "format": "scannet",
        "num_boxes": 27,
    }
    render = data["render"]
    assert render["backend_requested"] == "auto" and render["backend"] in ("open3d", "bev")
    assert ("fallback_reason" in render) == (render["backend"] == "bev")  # a fallback says why
    assert render["num_drawn"] == len(data["detections"])
    from PIL import Image

    assert png.stat().st_size > 50_000
    img = Image.open(png)
    assert img.size == (640, 480)
    assert (
        len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 500
    )  # a real picture


def test_detect_renders_with_open3d_offscreen(
    tmp_path: Path, checkpoint: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--render-backend open3d: the 3D offscreen view or an error, never a silent fallback; the
    JSON records the backend actually used."""
    PIL = pytest.importorskip("PIL.Image")
    pytest.importorskip("open3d")
    from sr3d_ros.io.render import GT_COLOR, class_color

    out, png = tmp_path / "det.json", tmp_path / "det.png"
    rc = main(
        [
            *_scan_args(data_root, "scene0000_02", checkpoint, out, png),
            "--max-detections",
            "10",
            "--render-min-score",
            "0",
            "--render-backend",
            "open3d",
            "--image-size",
            "640",
            "480",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, f"open3d offscreen rendering failed (needs mesa-vulkan-drivers or EGL): {err}"
    data = json.loads(out.read_text())
    assert data["render"]["backend_requested"] == "open3d" and data["render"]["backend"] == "open3d"
    assert (
        "fallback_reason" not in data["render"]
        and data["render"]["num_drawn"] == len(data["detections"]) > 0
    )
    assert png.stat().st_size > 100_000
    img = np.asarray(PIL.open(png).convert("RGB")).astype(int)
    assert img.shape == (480, 640, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) > 5_000

    def near(c: tuple[float, float, float]) -> int:
        return int((np.abs(img - np.round(np.array(c) * 255)).sum(axis=2) < 10).sum())

    assert near(GT_COLOR) > 1_000  # dashed green ground-truth wireframes
    for label in {d["label"] for d in data["detections"]}:
        assert near(class_color(label)) > 100, data["detections"]


def test_detect_errors(
    tmp_path: Path,
    checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    np.save(tmp_path / "c.npy", np.zeros((10, 3), np.float32))
    assert main([str(tmp_path / "missing.ply"), "--checkpoint", str(checkpoint)]) == 1
    assert "missing.ply" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert (
        main(
            [
                str(tmp_path / "c.npy"),
                "--checkpoint",
                str(tmp_path / "bad.pt"),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 1
    )
    assert "bad.pt" in capsys.readouterr().err
    monkeypatch.setattr(
        detect_mod, "default_checkpoint_path", lambda: tmp_path / "not_installed.pt"
    )
    assert main([str(tmp_path / "c.npy"), "--out", str(tmp_path / "o.json")]) == 1
    assert "embedded default model" in capsys.readouterr().err
    assert (
        main([str(tmp_path / "c.npy"), "--checkpoint", str(checkpoint), "--score-threshold", "2"])
        == 1
    )
    bad_rgb = np.zeros((10, 6), np.float32)
    bad_rgb[:, 3:] = 300.0
    np.save(tmp_path / "rgb.npy", bad_rgb)
    assert (
        main(
            [
                str(tmp_path / "rgb.npy"),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 1
    )
    assert "rgb.npy" in (err := capsys.readouterr().err) and "0..255" in err and "300" in err
    assert not (tmp_path / "o.json").exists()
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "c.npy"), "--bin-columns", "5"])
    assert info.value.code == 2


def test_load_gt_boxes_formats(tmp_path: Path, data_root: Path) -> None:
    boxes, labels, fmt = load_gt_boxes(
        data_root / "scannet" / "scannet_instance_data" / "scene0000_00_bbox.npy"
    )
    assert (
        fmt == "scannet"
        and boxes.shape == (27, 7)
        and (boxes[:, 6] == 0).all()
        and labels is not None
    )
    np.save(tmp_path / "b.npy", np.array([[0, 0, 0, 1, 2, 3, 0.5]], np.float32))
    boxes, labels, fmt = load_gt_boxes(tmp_path / "b.npy")
    assert fmt == "boxes" and labels is None and boxes[0, 6] == pytest.approx(0.5)
    np.save(tmp_path / "l.npy", np.array([[0, 0, 0, 1, 2, 3, 0.0, 4]], np.float32))
    assert load_gt_boxes(tmp_path / "l.npy")[1].tolist() == [4]
    np.save(tmp_path / "s.npy", np.array([[0, 0, 0, 1, 2, 3]], np.float32))
    assert load_gt_boxes(tmp_path / "s.npy")[0].shape == (1, 7)
    np.save(tmp_path / "w.npy", np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"w\.npy"):
        load_gt_boxes(tmp_path / "w.npy")


def test_console_scripts_registered() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("sr3d-detect") == "sr3d_ros.cli.detect:main"
    assert scripts.get("sr3d-convert-tr3d") == "sr3d_ros.cli.convert_tr3d:main"


def test_bag_build_without_data_says_data_root(tmp_path, capsys):
    """Issue 13 #13: an installed sr3d-bag has no ../shared/data; the error names the fix."""
    from sr3d_ros.cli.bag import build_parser
    from sr3d_ros.cli.bag import main as bag_main

    rc = bag_main(["build", str(tmp_path / "b"), "--data-root", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 1 and "--data-root" in err and "SR3D_DATA" in err and "nowhere" in err, err
    sub = build_parser()._subparsers._group_actions[0].choices["build"]
    assert "colcon" in sub.format_help()


def test_detect_hostile_inputs(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], data_root: Path
) -> None:
    """Issue 13 #3/#5/#1/#7: a truncated .ply and an empty checkpoint are errors (exit 1, the file
    named, no output); a cloud spread over +-10 km is cropped to nothing (exit 0, 0 detections,
    counted); the JSON gets plain file permissions."""
    import os
    import stat

    header = (
        "ply\nformat binary_little_endian 1.0\nelement vertex 1000\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    (tmp_path / "cut.ply").write_bytes(header.encode() + np.zeros(3, "<f4").tobytes())
    out = tmp_path / "o.json"
    assert (
        main([str(tmp_path / "cut.ply"), "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    )
    err = capsys.readouterr().err
    assert "cut.ply" in err and "truncated" in err and not out.exists(), err
    (tmp_path / "empty.pt").write_bytes(b"")
    np.save(tmp_path / "c.npy", np.zeros((10, 3), np.float32))
    assert main([str(tmp_path / "c.npy"), "--checkpoint", str(tmp_path / "empty.pt")]) == 1
    err = capsys.readouterr().err
    assert "empty.pt" in err and "empty file" in err and "weights_only" not in err, err
    wide = np.random.default_rng(0).uniform(-1e4, 1e4, (100_000, 3)).astype(np.float32)
    np.save(tmp_path / "wide.npy", wide)
    old = os.umask(0o022)
    try:
        rc = main([str(tmp_path / "wide.npy"), "--checkpoint", str(checkpoint), "--out", str(out)])
    finally:
        os.umask(old)
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["input"]["points_out_of_range"] == 100_000 and not result["detections"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


# ---- images: sr3d-detect IMAGE --calib ... (monocular detector) ----------------------------
KITTI_FRAME = "000007"


@pytest.fixture(scope="module")
def mono_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random-init size-n mono checkpoint, every candidate kept (score threshold 0)."""
    from sr3d_ros.models.mono import MonoDetectorConfig, MonoDetectorModel, MonoInferenceConfig

    torch.manual_seed(0)
    cfg = MonoDetectorConfig(inference=MonoInferenceConfig(score_threshold=0.0, max_detections=20))
    path = tmp_path_factory.mktemp("mono") / "mono_n.pt"
    save_checkpoint(path, MonoDetectorModel(cfg.model).state_dict(), cfg, {"note": "random"})
    return path


def _kitti(data_root: Path) -> tuple[Path, Path]:
    root = data_root / "kitti" / "training"
    return root / "image_2" / f"{KITTI_FRAME}.png", root / "calib" / f"{KITTI_FRAME}.txt"


def test_detect_image_writes_json_and_png(
    tmp_path: Path, mono_checkpoint: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from sr3d_ros.io.calibration import kitti_camera
    from sr3d_ros.io.images import read_image
    from sr3d_ros.mono_inference import MonoDetector

    image_path, calib = _kitti(data_root)
    out = tmp_path / "det.json"
    args = [str(image_path), "--calib", str(calib), "--checkpoint", str(mono_checkpoint)]
    rc = main([*args, "--out", str(out), "--device", "cpu", "--render-min-score", "0"])
    assert rc == 0, capsys.readouterr().err
    assert "20 detections" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    image = read_image(image_path)
    camera = kitti_camera(calib, image.shape[1], image.shape[0])
    assert payload["input"]["P"] == camera.P.tolist()
    assert payload["checkpoint"]["provenance"] == {"note": "random"}
    assert "optical frame" in payload["frames"]
    ref = MonoDetector.from_checkpoint(mono_checkpoint, "cpu")(image, camera)
    assert ref.camera_boxes is not None
    got = np.array([d["camera_box"]["location"] for d in payload["detections"]])
    np.testing.assert_allclose(got, ref.camera_boxes[:, :3].numpy(), atol=1e-4)
    assert [d["class_name"] for d in payload["detections"]] == ref.names
    png = out.with_suffix(".png")
    assert payload["render"]["path"] == str(png.resolve()) and payload["render"]["num_drawn"] == 20
    with Image.open(png) as im:
        assert im.size[1] == image.shape[0] and im.size[0] > image.shape[1]  # + bird's-eye view

    # the same camera as a ROS camera_info YAML gives the same boxes
    import yaml

    info = {
        "image_width": int(image.shape[1]),
        "image_height": int(image.shape[0]),
        "camera_matrix": {"rows": 3, "cols": 3, "data": camera.K.reshape(-1).tolist()},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "projection_matrix": {"rows": 3, "cols": 4, "data": camera.P.reshape(-1).tolist()},
    }
    (tmp_path / "camera_info.yaml").write_text(yaml.safe_dump(info))
    out2 = tmp_path / "det2.json"
    args2 = [str(image_path), "--calib", str(tmp_path / "camera_info.yaml")]
    rc = main([*args2, "--checkpoint", str(mono_checkpoint), "--out", str(out2), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    got2 = np.array(
        [d["camera_box"]["location"] for d in json.loads(out2.read_text())["detections"]]
    )
    np.testing.assert_allclose(got2, got, atol=1e-5)

    # a distorted camera: the image is undistorted first, as the image node does
    from sr3d_ros.geometry.camera_info import camera_setup
    from sr3d_ros.io.calibration import read_camera_info_yaml

    with Image.open(out2.with_suffix(".png")) as im:
        png_rectified = np.asarray(im.convert("RGB"), dtype=np.int16)
    info["distortion_coefficients"]["data"] = [-0.3, 0.1, 0.001, -0.002, 0.0]
    (tmp_path / "camera_info.yaml").write_text(yaml.safe_dump(info))
    rc = main([*args2, "--checkpoint", str(mono_checkpoint), "--out", str(out2), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    payload3 = json.loads(out2.read_text())
    assert payload3["input"]["calib_notes"] == []  # undistorted, not ignored
    node = camera_setup(read_camera_info_yaml(tmp_path / "camera_info.yaml"), *image.shape[1::-1])
    assert node.undistort is not None
    ref3 = MonoDetector.from_checkpoint(mono_checkpoint, "cpu")(node.undistort(image), node.camera)
    assert ref3.camera_boxes is not None
    got3 = np.array([d["camera_box"]["location"] for d in payload3["detections"]])
    np.testing.assert_allclose(got3, ref3.camera_boxes[:, :3].numpy(), atol=1e-4)
    with Image.open(out2.with_suffix(".png")) as im:  # the PNG shows the undistorted image
        png_undistorted = np.asarray(im.convert("RGB"), dtype=np.int16)
    h, w = image.shape[:2]
    changed = np.abs(png_undistorted[:h, :w] - png_rectified[:h, :w]).max(-1) > 30
    assert changed.mean() > 0.2, changed.mean()


def test_detect_image_errors(
    tmp_path: Path,
    mono_checkpoint: Path,
    checkpoint: Path,
    data_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image_path, calib = _kitti(data_root)
    base = [str(image_path), "--device", "cpu", "--out", str(tmp_path / "o.json")]
    with_ckpt = [*base, "--checkpoint", str(mono_checkpoint)]
    for extra in ([], ["--calib", str(calib), "--nms-pre", "10"]):  # usage errors: exit 2
        with pytest.raises(SystemExit) as info:
            main([*with_ckpt, *extra])
        assert info.value.code == 2
    assert "--nms-pre applies to point clouds only" in capsys.readouterr().err
    scan = data_root / "scannet" / "scannet_instance_data" / "scene0000_00_vert_all.npy"
    with pytest.raises(SystemExit) as info:
        main([str(scan), "--calib", str(calib), "--checkpoint", str(checkpoint)])
    assert info.value.code == 2
    no_p2 = tmp_path / "calib.txt"
    no_p2.write_text(calib.read_text().replace("P2:", "X2:"))
    assert main([*with_ckpt, "--calib", str(no_p2)]) == 1
    assert "P2 needs 12 values, got missing" in capsys.readouterr().err
    not_image = tmp_path / "broken.png"
    not_image.write_bytes(b"not a png")
    assert main([str(not_image), "--calib", str(calib), "--checkpoint", str(mono_checkpoint)]) == 1
    assert "broken.png: cannot read image" in capsys.readouterr().err
    assert main([*base, "--calib", str(calib), "--checkpoint", str(checkpoint)]) == 1
    assert "'pointcloud' detector checkpoint, but a 'mono' one" in capsys.readouterr().err
    assert main([*with_ckpt, "--calib", str(calib), "--max-detections", "0"]) == 1
    assert "max_detections" in capsys.readouterr().err
    from sr3d_ros.mono_inference import default_mono_checkpoint_path

    if not default_mono_checkpoint_path().is_file():
        assert main([*base, "--calib", str(calib)]) == 1
        assert "default monocular model is not installed" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sr3d_scannet_default", "sr3d_scannet_realtime"])
def test_detect_takes_a_shipped_models_name(
    name: str, tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--checkpoint <shipped name>`` runs the shipped file (the embedded default and the
    real-time option of issue 18); an unknown name is exit 1 naming the shipped models."""
    from sr3d_ros.checkpoints import WEIGHTS_DIR

    scan = data_root / "scannet" / "scannet_instance_data" / "scene0000_02_vert_all.npy"
    out = tmp_path / "o.json"
    args = [str(scan), "--device", "cpu", "--out", str(out)]
    assert main([*args, "--checkpoint", name]) == 0
    payload = json.loads(out.read_text())
    record = payload["checkpoint"]
    assert record["path"] == str((WEIGHTS_DIR / f"{name}.pt").resolve())
    assert len(payload["detections"]) > 0  # trained on this room: it finds furniture
    assert main([*args, "--checkpoint", "no_such_model"]) == 1
    err = capsys.readouterr().err
    assert "'no_such_model' is neither a file nor a shipped model" in err and "lead_m3d" in err
