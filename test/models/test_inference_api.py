"""PointCloudDetector input checks (dtype, colour range, non-finite rows) and the Detector
protocol's checkpoint loading (``Detector.from_checkpoint`` / ``load_detector``), on a crop of a
real ScanNet scan with a small random-init model (CPU)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from sr3d_ros.config import DetectorConfig, InferenceConfig, ModelConfig
from sr3d_ros.detections import Detections
from sr3d_ros.inference import Detector, PointCloudDetector, load_detector
from sr3d_ros.models import TR3DDetector

CFG = DetectorConfig(
    model=ModelConfig(width=0.25), inference=InferenceConfig(score_threshold=0.0, nms_pre=50)
)


@pytest.fixture(scope="module")
def crop(data_root: Path) -> np.ndarray:
    """A ~1.4 m x 1.4 m crop of scene0000_00 (float32 xyz + rgb 0..255)."""
    pts = np.load(data_root / "scannet" / "scannet_instance_data" / "scene0000_00_vert_all.npy")
    return pts[(np.abs(pts[:, 0]) < 0.7) & (np.abs(pts[:, 1]) < 0.7)].copy()


@pytest.fixture()
def det() -> PointCloudDetector:
    torch.manual_seed(0)
    return PointCloudDetector(TR3DDetector(CFG.model), CFG, torch.device("cpu"))


def _same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b) > 0
    assert (
        torch.equal(a.boxes, b.boxes)
        and torch.equal(a.scores, b.scores)
        and torch.equal(a.labels, b.labels)
    )


# ---- dtypes --------------------------------------------------------------------------------
def test_float64_and_integer_inputs_are_cast(det: PointCloudDetector, crop: np.ndarray) -> None:
    ref = det(crop)
    _same(det(crop.astype(np.float64)), ref)
    _same(det(torch.from_numpy(crop).double()), ref)
    rounded = np.round(crop).astype(np.float32)
    _same(det(rounded.astype(np.int32)), det(rounded))


@pytest.mark.parametrize(
    "bad",
    [
        lambda c: c.astype(np.complex64),
        lambda c: c.astype(object),
        lambda c: c > 0,
        lambda c: c.astype(str),
        lambda c: torch.from_numpy(c) > 0,
        lambda c: torch.from_numpy(c).to(torch.complex64),
    ],
)
def test_non_real_dtypes_are_value_errors(det: PointCloudDetector, crop: np.ndarray, bad) -> None:
    with pytest.raises(ValueError, match="real numeric dtype"):
        det(bad(crop[:100]))


def test_non_arrays_are_type_errors(det: PointCloudDetector, crop: np.ndarray) -> None:
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        det(crop[:10].tolist())


# ---- colour range --------------------------------------------------------------------------
def test_colours_outside_0_255_are_errors_naming_the_range(
    det: PointCloudDetector, crop: np.ndarray
) -> None:
    too_big = crop.copy()
    too_big[0, 3] = 300.0
    lo, hi = crop[:, 3:6].min(), crop[:, 3:6].max()
    with pytest.raises(ValueError, match=rf"0\.\.255.*\[{lo:g}, 300\]"):
        det(too_big)
    negative = crop.copy()
    negative[5, 5] = -1.5
    with pytest.raises(ValueError, match=rf"\[-1\.5, {hi:g}\]"):
        det(negative)
    # Boundaries are fine.
    edge = crop.copy()
    edge[:, 3:6] = np.clip(edge[:, 3:6], 0, 255)
    edge[0, 3:6], edge[1, 3:6] = 0.0, 255.0
    assert len(det(edge)) > 0


def test_unit_range_colours_warn_once_per_detector(
    det: PointCloudDetector, crop: np.ndarray
) -> None:
    unit = crop.copy()
    unit[:, 3:6] /= 255.0
    with pytest.warns(UserWarning, match="0..1 colour scale.*multiply the colours by 255"):
        det(unit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det(unit)  # once per detector
        det(crop)  # 0..255: silent
        zero = crop.copy()
        zero[:, 3:6] = 0.0  # a cloud without colour converted to (N, 6): silent
        det(zero)
        det(crop[:, :3])  # no colour columns: silent
    torch.manual_seed(0)
    other = PointCloudDetector(TR3DDetector(CFG.model), CFG, torch.device("cpu"))
    with pytest.warns(UserWarning, match="0..1"):
        other(torch.from_numpy(unit))


def test_colour_checks_ignore_dropped_non_finite_rows(
    det: PointCloudDetector, crop: np.ndarray
) -> None:
    pts = crop.copy()
    pts[0] = [np.nan, 0.0, 0.0, 1000.0, 1000.0, 1000.0]  # dropped row: its colour is not checked
    _same(det(pts), det(crop[1:]))


# ---- non-finite rows -----------------------------------------------------------------------
def test_non_finite_rows_are_dropped(det: PointCloudDetector, crop: np.ndarray) -> None:
    ref = det(crop)
    bad = np.full((30, 6), 7.0, np.float32)
    bad[:10, 0] = np.nan
    bad[10:20, 2] = np.inf
    bad[20:, 4] = np.nan  # non-finite colour drops the row too
    mixed = np.concatenate([bad[:15], crop, bad[15:]])
    _same(det(mixed), ref)
    assert len(det(np.full((10, 3), np.inf, np.float32))) == 0
    empty = det(np.zeros((0, 6), np.float32))
    assert len(empty) == 0 and empty.boxes.shape == (0, 7)
    # float64 beyond float32's range becomes inf when cast: dropped as well.
    huge = np.concatenate([crop.astype(np.float64), [[1e300, 0, 0, 0, 0, 0]]])
    _same(det(huge), ref)


# ---- Detector protocol / checkpoint loading ------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "w025.pt"
    save_checkpoint(path, TR3DDetector(CFG.model).state_dict(), CFG, provenance={"note": "test"})
    return path


def test_detector_from_checkpoint_dispatches_on_kind(checkpoint: Path, crop: np.ndarray) -> None:
    via_protocol = Detector.from_checkpoint(checkpoint, device="cpu", max_detections=5)
    assert type(via_protocol) is PointCloudDetector and isinstance(via_protocol, Detector)
    assert via_protocol.device == torch.device("cpu") and via_protocol.provenance == {
        "note": "test"
    }
    assert via_protocol.inference_config.max_detections == 5
    via_factory = load_detector(checkpoint, device="cpu", max_detections=5)
    direct = PointCloudDetector.from_checkpoint(checkpoint, device="cpu", max_detections=5)
    out = direct(crop)
    assert 0 < len(out) <= 5
    _same(via_protocol(crop), out)
    _same(via_factory(crop), out)
    auto = Detector.from_checkpoint(checkpoint)  # device="auto" is the default
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_detector_from_checkpoint_errors(checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(checkpoint)
    torch.save(dict(ckpt, kind="radar"), tmp_path / "radar.pt")
    with pytest.raises(CheckpointError, match="'radar' checkpoint.*mono.*pointcloud"):
        Detector.from_checkpoint(tmp_path / "radar.pt", device="cpu")
    torch.save(dict(ckpt, kind="mono"), tmp_path / "mono.pt")  # a point-cloud config inside
    with pytest.raises(CheckpointError, match="mono"):
        load_detector(tmp_path / "mono.pt", device="cpu")
    with pytest.raises(CheckpointError, match="mono"):  # unchanged: the kind-specific loader
        PointCloudDetector.from_checkpoint(tmp_path / "mono.pt", device="cpu")
    with pytest.raises(FileNotFoundError):
        Detector.from_checkpoint(tmp_path / "missing.pt", device="cpu")
    with pytest.raises(ValueError, match=r"unknown inference option.*no_such_option"):
        Detector.from_checkpoint(checkpoint, device="cpu", no_such_option=1)
    with pytest.raises(ValueError, match="unknown device"):
        Detector.from_checkpoint(checkpoint, device="tpu")


def test_protocol_is_structural() -> None:
    class Fake:
        class_names = ("a",)
        device = torch.device("cpu")

        @classmethod
        def from_checkpoint(cls, path=None, device="auto", **kw):
            return cls()

        def __call__(self, inputs):
            return Detections.empty(self.class_names)

    assert isinstance(Fake(), Detector)
    assert not isinstance(object(), Detector)
