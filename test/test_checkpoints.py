"""Checkpoint format: round trip, atomic writes, weights_only safety, config/weights mismatches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import sr3d_ros.checkpoints.format as ckpt_mod
from sr3d_ros.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    atomic_torch_save,
    config_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sr3d_ros.config import DetectorConfig, InferenceConfig, ModelConfig, to_dict
from sr3d_ros.inference import PointCloudDetector
from sr3d_ros.models import TR3DDetector

SMALL = DetectorConfig(
    model=ModelConfig(width=0.25), inference=InferenceConfig(score_threshold=0.0, nms_pre=50)
)


@pytest.fixture(scope="module")
def small_model() -> TR3DDetector:
    torch.manual_seed(0)
    model = TR3DDetector(SMALL.model)
    with torch.no_grad():  # non-default BN statistics, so a lost buffer would show
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


def test_round_trip(tmp_path: Path, small_model: TR3DDetector, data_root: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(
        path, small_model.state_dict(), SMALL, provenance={"dataset": "none", "note": "random"}
    )
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["kind"] == "pointcloud"
    assert config_from_checkpoint(ckpt, path) == SMALL
    assert ckpt["provenance"] == {"dataset": "none", "note": "random"}
    ref = small_model.state_dict()
    assert set(ckpt["state_dict"]) == set(ref)
    assert all(torch.equal(ckpt["state_dict"][k], ref[k]) for k in ref)
    # The loaded detector computes exactly what the original model computes.
    pts = np.load(data_root / "scannet" / "scannet_instance_data" / "scene0000_00_vert_all.npy")
    pts = pts[(np.abs(pts[:, 0]) < 0.8) & (np.abs(pts[:, 1]) < 0.8)]
    loaded = PointCloudDetector.from_checkpoint(path, device="cpu")
    original = PointCloudDetector(small_model, SMALL, torch.device("cpu"))
    a, b = loaded(pts), original(pts)
    assert len(a) == len(b) > 0
    assert (
        torch.equal(a.boxes, b.boxes)
        and torch.equal(a.scores, b.scores)
        and torch.equal(a.labels, b.labels)
    )


def test_inference_overrides(tmp_path: Path, small_model: TR3DDetector) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, small_model.state_dict(), SMALL)
    det = PointCloudDetector.from_checkpoint(
        path, device="cpu", score_threshold=0.4, max_detections=5
    )
    assert det.config.inference.score_threshold == 0.4 and det.config.inference.max_detections == 5
    with pytest.raises(ValueError, match="no_such_option"):
        PointCloudDetector.from_checkpoint(path, device="cpu", no_such_option=1)
    with pytest.raises(ValueError, match=r"inference\.nms_pre: expected an integer"):
        PointCloudDetector.from_checkpoint(path, device="cpu", nms_pre=2.5)
    with pytest.raises(ValueError, match="score_threshold must be in"):
        PointCloudDetector.from_checkpoint(path, device="cpu", score_threshold=2)


def test_atomic_save_leaves_nothing_on_failure(
    tmp_path: Path, small_model: TR3DDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, small_model.state_dict(), SMALL, provenance={"v": 1})
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial checkpoint bytes")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_model.state_dict(), SMALL, provenance={"v": 2})
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(
            ckpt_mod.torch, "save", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())
        )
        atomic_torch_save({"x": 1}, tmp_path / "new.pt")
    assert path.read_bytes() == before, "a failed save must not touch the existing file"
    assert not (tmp_path / "new.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"], "no temporary files left behind"


def _touch(path: str) -> None:
    Path(path).touch()


class Malicious:
    """Its pickle would run code at load time (here: create a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_weights_only_rejects_pickled_code(tmp_path: Path, small_model: TR3DDetector) -> None:
    marker = tmp_path / "pwned"
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "kind": "pointcloud",
        "config": to_dict(SMALL),
        "class_names": list(SMALL.model.class_names),
        "state_dict": small_model.state_dict(),
        "provenance": {"evil": Malicious(marker)},
    }
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        PointCloudDetector.from_checkpoint(tmp_path / "evil.pt", device="cpu")
    assert not marker.exists()


def test_wrong_config_weights(tmp_path: Path, small_model: TR3DDetector) -> None:
    wider = dataclasses.replace(SMALL, model=dataclasses.replace(SMALL.model, width=0.5))
    save_checkpoint(tmp_path / "w.pt", small_model.state_dict(), wider)
    with pytest.raises(CheckpointError, match="do not match"):
        PointCloudDetector.from_checkpoint(tmp_path / "w.pt", device="cpu")
    sd = dict(small_model.state_dict())
    sd.pop("head.conv_cls.bias")
    save_checkpoint(tmp_path / "m.pt", sd, SMALL)
    with pytest.raises(CheckpointError, match="head.conv_cls.bias"):
        PointCloudDetector.from_checkpoint(tmp_path / "m.pt", device="cpu")


def test_invalid_files(tmp_path: Path, small_model: TR3DDetector) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"state_dict": {"backbone.conv1.kernel": torch.zeros(1)}}, tmp_path / "tr3d.pth")
    with pytest.raises(CheckpointError, match="sr3d-convert-tr3d"):
        load_checkpoint(tmp_path / "tr3d.pth")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(tmp_path / "garbage.pt")
    save_checkpoint(tmp_path / "m.pt", small_model.state_dict(), SMALL)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.save(dict(ckpt, version=99), tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save(dict(ckpt, class_names=["x"] * 18), tmp_path / "names.pt")
    with pytest.raises(CheckpointError, match="class_names"):
        config_from_checkpoint(load_checkpoint(tmp_path / "names.pt"))
    bad = dict(ckpt)
    bad["config"] = dict(ckpt["config"], model=dict(ckpt["config"]["model"], widht=0.5))
    torch.save(bad, tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match="widht"):
        config_from_checkpoint(load_checkpoint(tmp_path / "badcfg.pt"))
    for field, value in (("state_dict", [1, 2]), ("class_names", "chair"), ("version", "1")):
        torch.save(dict(ckpt, **{field: value}), tmp_path / "typed.pt")
        with pytest.raises(CheckpointError, match=rf"typed\.pt: .*{field}"):
            load_checkpoint(tmp_path / "typed.pt")
    torch.save(dict(ckpt, kind="mono"), tmp_path / "mono.pt")
    with pytest.raises(CheckpointError, match="mono"):
        PointCloudDetector.from_checkpoint(tmp_path / "mono.pt", device="cpu")


def test_saved_file_has_umask_permissions(tmp_path: Path) -> None:
    """Atomic saves go through mkstemp (0600); the result must be readable like any new file."""
    import os
    import stat

    from sr3d_ros.checkpoints import atomic_torch_save

    old = os.umask(0o022)
    try:
        atomic_torch_save({"x": 1}, tmp_path / "a.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o644


def test_hostile_checkpoint_files(tmp_path: Path, small_model: TR3DDetector) -> None:
    """Issue 13 #5: empty, random and truncated files and NaN weights give one clear error that
    names the file and never suggests unsafe loading."""
    rng = np.random.default_rng(0)
    save_checkpoint(tmp_path / "m.pt", small_model.state_dict(), SMALL)
    good = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(rng.bytes(4096))
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    cases = {"empty.pt": "empty file", "random.pt": "not a PyTorch", "cut.pt": "corrupt"}
    for name, what in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        msg = str(info.value)
        assert name in msg and what in msg, msg
        assert "weights_only=False" not in msg and "\n" not in msg, msg
    nan = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in small_model.state_dict().items()
    }
    save_checkpoint(tmp_path / "nan.pt", nan, SMALL)
    with pytest.raises(CheckpointError, match=r"nan\.pt: \d+ of \d+ weight tensors hold NaN"):
        PointCloudDetector.from_checkpoint(tmp_path / "nan.pt", device="cpu")


# ---- kind "mono" (MonoDetectorConfig) ------------------------------------------------------


def test_mono_round_trip_and_kind_checks(tmp_path: Path) -> None:
    from sr3d_ros.models.mono import (
        MonoDetectorConfig,
        MonoDetectorModel,
        MonoInferenceConfig,
        MonoModelConfig,
    )
    from sr3d_ros.mono_inference import MonoDetector

    cfg = MonoDetectorConfig(MonoModelConfig(size="n"), MonoInferenceConfig(gate_topk=30))
    torch.manual_seed(0)
    model = MonoDetectorModel(cfg.model).eval()
    path = tmp_path / "mono.pt"
    save_checkpoint(path, model.state_dict(), cfg, provenance={"note": "random"})
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "mono"  # inferred from the config's type
    assert ckpt["class_names"] == ["Car", "Pedestrian", "Cyclist"]
    assert config_from_checkpoint(ckpt, path, config_type=MonoDetectorConfig) == cfg
    with pytest.raises(CheckpointError, match="a 'mono' detector checkpoint, but a 'pointcloud'"):
        config_from_checkpoint(ckpt, path)
    with pytest.raises(ValueError, match="does not match the config"):
        save_checkpoint(tmp_path / "x.pt", model.state_dict(), cfg, kind="pointcloud")
    # weights round-trip exactly: the loaded detector's network is the saved one
    det = MonoDetector.from_checkpoint(path, "cpu")
    ref = model.state_dict()
    assert all(torch.equal(det.model.state_dict()[k], ref[k]) for k in ref)
    # weights of another size do not fit the stored config: one clear CheckpointError
    other = MonoDetectorModel(MonoModelConfig(size="s")).state_dict()
    save_checkpoint(tmp_path / "bad.pt", other, cfg)
    with pytest.raises(CheckpointError, match="weights do not match the stored model config"):
        MonoDetector.from_checkpoint(tmp_path / "bad.pt", "cpu")
