"""``sr3d-train --config config/vrdistill_scannet_default.yaml --teacher T --width W`` on the real
ScanNet scans: the student checkpoint is an ordinary point-cloud checkpoint the node loads, the
distillation modules ride only in the resume state, and a wrong teacher is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr3d_ros.checkpoints import load_checkpoint, save_checkpoint
from sr3d_ros.config import DetectorConfig, ModelConfig
from sr3d_ros.inference import PointCloudDetector, default_checkpoint_path, load_detector
from sr3d_ros.models import TR3DDetector
from sr3d_ros.models.mono.config import MonoDetectorConfig
from sr3d_training.cli.train import main as train_main

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "vrdistill_scannet_default.yaml"


def _train(tmp_path: Path, *extra: str) -> int:
    return train_main(
        ["--config", str(CONFIG), "--output-dir", str(tmp_path / "run"), "-q", "--device", "cpu"]
        + list(extra)
    )


def test_student_is_an_ordinary_checkpoint_the_node_loads(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = default_checkpoint_path()  # the shipped model: width 0.5, 2 cm voxels
    assert _train(tmp_path, "--teacher", str(teacher), "--width", "0.25", "--max-steps", "3") == 0
    path = tmp_path / "run" / "final.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "pointcloud"
    assert ckpt["config"]["model"]["width"] == 0.25
    # only the student's weights: no teacher, no refinement, no align
    assert set(ckpt["state_dict"]) == set(TR3DDetector(ModelConfig(width=0.25)).state_dict())
    extra = ckpt["training_state"]["train_module_extra"]  # exact resume of the distill modules
    assert "distill.align.weight" in extra
    assert any(k.startswith("distill.refinement.layers.3.") for k in extra)
    assert not any("teacher" in k for k in extra)
    history = ckpt["training_state"]["history"]
    assert {"vc_loss", "refine_loss", "det_loss", "mask_mean"} <= set(history[-1])
    # the node builds its detector with PointCloudDetector.from_checkpoint
    det = PointCloudDetector.from_checkpoint(path, device="cpu")
    assert isinstance(load_detector(path, device="cpu"), PointCloudDetector)
    points = np.load(data_root / "scannet" / "scannet_instance_data" / "scene0000_02_vert_all.npy")
    result = det(points[:, :6])
    assert result.boxes.shape[1] == 7 and len(result.boxes) == len(result.scores)
    assert det.config.model.width == 0.25
    assert "mAP@0.25" in capsys.readouterr().out


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sr3d-train: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


def test_a_teacher_of_another_kind_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mono = tmp_path / "mono.pt"
    save_checkpoint(mono, {}, MonoDetectorConfig(), kind="mono")
    assert _train(tmp_path, "--teacher", str(mono)) == 1
    _one_error_line(capsys, "mono.pt", "'mono'", "point-cloud teacher")


def test_an_incompatible_teacher_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "coarse.pt"
    model = TR3DDetector(ModelConfig(voxel_size=0.04, width=0.25))
    save_checkpoint(other, model.state_dict(), DetectorConfig(model.config))
    assert _train(tmp_path, "--teacher", str(other)) == 1
    _one_error_line(capsys, "coarse.pt", "incompatible", "voxel_size: teacher 0.04 != student 0.02")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ((), ("needs a teacher", "--teacher")),
        (("--teacher", "missing.pt"), ("missing.pt",)),
        (("--teacher", "t.pt", "--width", "2"), ("width",)),
    ],
)
def test_missing_or_bad_settings_are_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needles: tuple[str]
) -> None:
    assert _train(tmp_path, *args) == 1
    _one_error_line(capsys, *needles)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.pt"))


def test_plain_config_with_a_teacher_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = train_main(
        [
            "--config",
            str(REPO / "config" / "train_scannet_default.yaml"),
            "--teacher",
            str(default_checkpoint_path()),
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    _one_error_line(capsys, "distill.kind is 'none'")
