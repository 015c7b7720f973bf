"""MonoDetector (kind "mono") on real KITTI frames: the same boxes as the training-side letterbox +
network + one-to-one head + decoding, the two frames of the result, loading through the Detector
protocol, and one clear error per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.checkpoints import CheckpointError, save_checkpoint
from sr3d_ros.config import DetectorConfig, ModelConfig
from sr3d_ros.geometry.camera import PinholeCamera, camera_boxes_to_boxes
from sr3d_ros.inference import Detector, PointCloudDetector, load_detector
from sr3d_ros.models import TR3DDetector
from sr3d_ros.models.mono import (
    MonoDetectorConfig,
    MonoDetectorModel,
    MonoInferenceConfig,
    MonoModelConfig,
    decode_camera_boxes,
    decode_image_boxes,
    select_topk,
)
from sr3d_ros.mono_inference import MonoDetector, default_mono_checkpoint_path
from sr3d_training.datasets.kitti import KittiDataset
from sr3d_training.image_transforms import letterbox

torch.set_num_threads(1)
CONFIG = MonoDetectorConfig(MonoModelConfig(size="n"), MonoInferenceConfig(score_threshold=0.0))


@pytest.fixture(scope="module")
def mono_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random-init size-n checkpoint (no trained mono model ships yet)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mono") / "mono_n.pt"
    save_checkpoint(path, MonoDetectorModel(CONFIG.model).state_dict(), CONFIG, {"note": "test"})
    return path


@pytest.fixture(scope="module")
def kitti(data_root: Path) -> KittiDataset:
    return KittiDataset(data_root / "kitti" / "training", frame_ids=["000007", "000134"])


def test_detector_protocol_loads_mono_checkpoint(mono_ckpt: Path) -> None:
    det = Detector.from_checkpoint(mono_ckpt, device="cpu")
    assert isinstance(det, MonoDetector) and isinstance(det, Detector)
    assert isinstance(load_detector(mono_ckpt, "cpu"), MonoDetector)
    assert det.class_names == ("Car", "Pedestrian", "Cyclist")
    assert det.provenance == {"note": "test"}
    assert (
        MonoDetector.from_checkpoint(mono_ckpt, "cpu", gate_topk=20).inference_config.gate_topk
        == 20
    )


@pytest.mark.parametrize("index", [0, 1])
def test_detections_equal_training_side_reference(
    mono_ckpt: Path, kitti: KittiDataset, index: int
) -> None:
    """Letterbox (training/image_transforms.py), the network, the one-to-one head's top-K and
    decoding with the letterboxed P give the detector's boxes; 2D boxes map back to the input."""
    sample = kitti[index]
    det = MonoDetector.from_checkpoint(mono_ckpt, "cpu")
    result = det(sample.image, sample.camera)

    lb = letterbox(sample, 1280, 384)
    x = torch.from_numpy(lb.image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = det.model(x)
    index_k, scores, labels = select_topk(out.one2one.cls_logits, 50)
    head = out.one2one.gather(index_k)
    P = torch.tensor(lb.camera.P, dtype=torch.float32)[None]
    ref = decode_camera_boxes(head, out.anchor_points[index_k], out.strides[index_k], labels, P)[0]
    ref2d = decode_image_boxes(head, out.anchor_points[index_k])[0]

    assert len(result) == 50
    assert torch.allclose(result.scores, scores[0], atol=1e-6)
    assert torch.equal(result.labels, labels[0])
    assert result.camera_boxes is not None and result.image_boxes is not None
    assert torch.allclose(result.camera_boxes, ref, atol=1e-3, rtol=1e-4)
    assert torch.allclose(result.boxes, camera_boxes_to_boxes(result.camera_boxes))
    # 2D boxes: back in input pixels; mapping them forward again gives the network's (clipped)
    A = torch.tensor(sample.camera.letterbox(1280, 384).affine(), dtype=torch.float32)
    fwd = result.image_boxes.view(-1, 2, 2) * A.diagonal()[:2] + A[:2, 2]
    h, w = sample.image.shape[:2]
    lo = A[:2, 2] + 0 * A.diagonal()[:2]
    hi = torch.tensor([w - 1.0, h - 1.0]) * A.diagonal()[:2] + A[:2, 2]
    expected = torch.maximum(torch.minimum(ref2d.view(-1, 2, 2), hi), lo)
    assert torch.allclose(fwd, expected, atol=1e-3)
    assert set(result.timings_ms) == {
        "preprocess",
        "backbone",
        "neck",
        "head_2d",
        "head_3d",
        "decode",
    }


def test_gated_and_full_inference_agree_and_thresholds_apply(
    mono_ckpt: Path, kitti: KittiDataset
) -> None:
    sample = kitti[0]
    gated = MonoDetector.from_checkpoint(mono_ckpt, "cpu")(sample.image, sample.camera)
    full = MonoDetector.from_checkpoint(mono_ckpt, "cpu", gated=False)(sample.image, sample.camera)
    assert gated.camera_boxes is not None and full.camera_boxes is not None
    assert torch.allclose(gated.camera_boxes, full.camera_boxes, atol=1e-4)
    cut = float(gated.scores[9])
    few = MonoDetector.from_checkpoint(mono_ckpt, "cpu", score_threshold=cut, max_detections=5)
    r = few(sample.image, sample.camera)
    assert len(r) == 5 and bool((r.scores >= cut).all())
    assert bool((r.scores[:-1] >= r.scores[1:]).all())
    none = MonoDetector.from_checkpoint(mono_ckpt, "cpu", score_threshold=1.0)
    empty = none(sample.image, sample.camera)
    assert len(empty) == 0 and empty.camera_boxes is not None and empty.camera_boxes.shape == (0, 7)
    # the camera given as K (P = [K | 0]) or P: P2's baseline moves the boxes by t
    withP = MonoDetector.from_checkpoint(mono_ckpt, "cpu")(sample.image, sample.camera.P)
    assert withP.camera_boxes is not None and torch.allclose(withP.camera_boxes, gated.camera_boxes)


def test_json_of_mono_detections(mono_ckpt: Path, kitti: KittiDataset) -> None:
    sample = kitti[1]
    r = MonoDetector.from_checkpoint(mono_ckpt, "cpu", max_detections=3)(
        sample.image, sample.camera
    )
    d = r.to_dict()["detections"][0]
    assert set(d) == {"label", "class_name", "score", "box", "camera_box", "bbox_2d"}
    assert d["camera_box"]["location"] == pytest.approx(r.camera_boxes[0, :3].tolist())  # type: ignore[index]
    x, _, z = d["camera_box"]["location"]
    alpha = d["camera_box"]["rotation_y"] - np.arctan2(x, z)
    assert np.isclose(np.angle(np.exp(1j * (alpha - d["camera_box"]["alpha"]))), 0, atol=1e-6)


@pytest.fixture(scope="module")
def det(mono_ckpt: Path) -> MonoDetector:
    return MonoDetector.from_checkpoint(mono_ckpt, "cpu")


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((370, 1224, 3), np.float32), "dtype uint8"),
        (np.zeros((370, 1224, 4), np.uint8), "3 channels"),
        (np.zeros((370, 1224), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((0, 1224, 3), np.uint8), "empty"),
    ],
)
def test_bad_images(det: MonoDetector, image: np.ndarray, match: str) -> None:
    K = np.array([[700.0, 0, 600], [0, 700, 180], [0, 0, 1]])
    with pytest.raises(ValueError, match=match):
        det(image, K)


@pytest.mark.parametrize(
    "K, match",
    [
        (np.array([[0.0, 0, 600], [0, 700, 180], [0, 0, 1]]), "zero / negative focal length"),
        (np.array([[700.0, 0, np.nan], [0, 700, 180], [0, 0, 1]]), "non-finite"),
        (np.array([[700.0, 0, 600], [0, 700, np.inf], [0, 0, 1]]), "non-finite"),
        (np.eye(2), r"K \(3, 3\) or P \(3, 4\)"),
        (None, "a camera is needed"),
    ],
)
def test_bad_cameras(det: MonoDetector, K: np.ndarray | None, match: str) -> None:
    image = np.zeros((370, 1224, 3), np.uint8)
    with pytest.raises(ValueError, match=match):
        det(image, K)


def test_camera_of_another_size(det: MonoDetector) -> None:
    cam = PinholeCamera.from_intrinsics(np.diag([700.0, 700.0, 1.0]), 1242, 375)
    with pytest.raises(
        ValueError, match="camera is for 1242 x 375 pixels, the image is 1224 x 370"
    ):
        det(np.zeros((370, 1224, 3), np.uint8), cam)


def test_checkpoint_of_the_other_kind(mono_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="'mono' checkpoint, not a point-cloud"):
        PointCloudDetector.from_checkpoint(mono_ckpt, "cpu")
    cfg = DetectorConfig(ModelConfig(width=0.25, num_planes=(16, 16, 16, 16), blocks=(1, 1, 1, 1)))
    pc = tmp_path / "pc.pt"
    save_checkpoint(pc, TR3DDetector(cfg.model).state_dict(), cfg)
    with pytest.raises(CheckpointError, match="'pointcloud' detector checkpoint, but a 'mono'"):
        MonoDetector.from_checkpoint(pc, "cpu")


def test_missing_default_model_is_a_clear_error() -> None:
    if default_mono_checkpoint_path().is_file():
        pytest.skip("the default mono model is installed")
    with pytest.raises(FileNotFoundError, match="default monocular model is not installed"):
        MonoDetector.from_checkpoint(None, "cpu")


def test_mono_detector_on_each_device(
    mono_ckpt: Path, kitti: KittiDataset, device: torch.device
) -> None:
    """On every device (CPU always, CUDA when present): CGI3D equals the full 3D head there, the
    result lives on the detector's device, an image tensor on that device works, and the
    scores match the CPU's (sorted: near-equal random-init scores may swap places)."""
    sample = kitti[0]
    ref = MonoDetector.from_checkpoint(mono_ckpt, "cpu")(sample.image, sample.camera)
    det = MonoDetector.from_checkpoint(mono_ckpt, device)
    full = MonoDetector.from_checkpoint(mono_ckpt, device, gated=False)
    for image in (sample.image, torch.from_numpy(sample.image).to(device)):
        out = det(image, sample.camera)
        assert out.camera_boxes is not None and out.camera_boxes.device == device
        ref_full = full(image, sample.camera)
        assert torch.equal(out.labels, ref_full.labels)
        assert ref_full.camera_boxes is not None
        assert torch.allclose(out.camera_boxes, ref_full.camera_boxes, atol=1e-4)
        assert torch.allclose(out.scores.cpu().sort().values, ref.scores.sort().values, atol=1e-4)
