"""sr3d_ros.classes: the benchmark class tables and the ScanNet nyu40 box conversion on real
ScanNet export files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr3d_ros.classes import (
    NYU40_TO_LABEL,
    SCANNET_CLASSES,
    SCANNET_LABEL2LEVEL,
    SCANNET_NYU40_IDS,
    SUNRGBD_CLASSES,
    SUNRGBD_LABEL2LEVEL,
    nyu40_boxes_to_labels,
)


def test_tables_are_consistent() -> None:
    assert len(SCANNET_CLASSES) == len(SCANNET_NYU40_IDS) == len(SCANNET_LABEL2LEVEL) == 18
    assert len(SUNRGBD_CLASSES) == len(SUNRGBD_LABEL2LEVEL) == 10
    assert len(set(SCANNET_NYU40_IDS)) == 18
    assert SCANNET_CLASSES[NYU40_TO_LABEL[5]] == "chair"  # nyu40 id 5 = chair
    assert SCANNET_CLASSES[NYU40_TO_LABEL[39]] == "garbagebin"  # the benchmark maps 39 to it


def test_nyu40_boxes_to_labels_on_real_export(data_root: Path) -> None:
    raw = np.load(data_root / "scannet" / "scannet_instance_data" / "scene0000_00_bbox.npy")
    boxes, labels = nyu40_boxes_to_labels(raw)
    kept = np.isin(raw[:, 6].astype(int), SCANNET_NYU40_IDS)
    assert boxes.dtype == np.float32 and labels.dtype == np.int64
    assert len(boxes) == len(labels) == int(kept.sum()) == 27
    np.testing.assert_array_equal(boxes[:, :6], raw[kept, :6].astype(np.float32))
    assert not boxes[:, 6].any()  # ScanNet boxes are axis-aligned: yaw 0
    assert [SCANNET_NYU40_IDS[i] for i in labels] == raw[kept, 6].astype(int).tolist()


def test_nyu40_boxes_to_labels_rejects_bad_shapes() -> None:
    boxes, labels = nyu40_boxes_to_labels(np.zeros((0, 7)))
    assert boxes.shape == (0, 7) and labels.shape == (0,)
    with pytest.raises(ValueError, match=r"\(K, 7\)"):
        nyu40_boxes_to_labels(np.zeros((3, 6)))
