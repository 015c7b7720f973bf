"""Typed config: the shipped TR3D YAMLs, strict key checking, type and value errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from sr3d_ros.config import (
    SCANNET_CLASSES,
    SCANNET_LABEL2LEVEL,
    SUNRGBD_CLASSES,
    SUNRGBD_LABEL2LEVEL,
    ConfigError,
    DetectorConfig,
    InferenceConfig,
    ModelConfig,
    from_dict,
    load_yaml,
    to_dict,
)
from sr3d_ros.models import TR3DDetector

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
YAMLS = ["tr3d_scannet.yaml", "tr3d_sunrgbd.yaml"]


def test_scannet_yaml() -> None:
    cfg = load_yaml(CONFIG_DIR / "tr3d_scannet.yaml", DetectorConfig)
    m = cfg.model
    assert m.class_names == SCANNET_CLASSES and m.label2level == SCANNET_LABEL2LEVEL
    assert m.num_reg_outs == 6 and not m.with_yaw and m.voxel_size == 0.01 and m.width == 1.0
    assert cfg == DetectorConfig()  # the defaults are TR3D ScanNet
    assert cfg.inference == InferenceConfig(nms_pre=1000, score_threshold=0.01, iou_threshold=0.5)


def test_sunrgbd_yaml() -> None:
    cfg = load_yaml(CONFIG_DIR / "tr3d_sunrgbd.yaml", DetectorConfig)
    m = cfg.model
    assert m.class_names == SUNRGBD_CLASSES and m.label2level == SUNRGBD_LABEL2LEVEL
    assert m.num_reg_outs == 8 and m.with_yaw and m.yaw_parametrization == "tr3d"
    assert (
        dataclasses.replace(
            m,
            class_names=SCANNET_CLASSES,
            label2level=SCANNET_LABEL2LEVEL,
            num_reg_outs=6,
            yaw_parametrization="sincos",
        )
        == ModelConfig()
    )


@pytest.mark.parametrize("name", YAMLS)
def test_every_key_is_documented(name: str) -> None:
    lines = (CONFIG_DIR / name).read_text().splitlines()
    data = yaml.safe_load("\n".join(lines))
    fields = {"model": ModelConfig, "inference": InferenceConfig}
    assert set(data) == set(fields)
    for section, cls in fields.items():
        assert set(data[section]) == {f.name for f in dataclasses.fields(cls)}, (
            f"{name}: {section} must list every key"
        )
    for i, line in enumerate(lines):
        if re.match(r"^\s+[a-z_0-9]+:", line):
            assert lines[i - 1].strip().startswith("#"), (
                f"{name}:{i + 1}: key without a comment: {line.strip()}"
            )


@pytest.mark.parametrize("name", YAMLS)
@pytest.mark.parametrize("width", [0.5, 0.25])
def test_width_variants_from_yaml(tmp_path: Path, name: str, width: float) -> None:
    text = (CONFIG_DIR / name).read_text().replace("  width: 1.0", f"  width: {width}")
    (tmp_path / "w.yaml").write_text(text)
    cfg = load_yaml(tmp_path / "w.yaml", DetectorConfig)
    assert cfg.model.width == width
    full = sum(
        p.numel()
        for p in TR3DDetector(load_yaml(CONFIG_DIR / name, DetectorConfig).model).parameters()
    )
    small = sum(p.numel() for p in TR3DDetector(cfg.model).parameters())
    assert small / full == pytest.approx(width**2, rel=0.1)


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"widht") as info:
        load_yaml(_write(tmp_path, {"model": {"widht": 0.5}}), DetectorConfig)
    assert "model" in str(info.value) and "width" in str(info.value)  # path + allowed keys
    assert "c.yaml" in str(info.value)
    with pytest.raises(ConfigError, match=r"score_thresh\b"):
        from_dict(DetectorConfig, {"inference": {"score_thresh": 0.1}})
    with pytest.raises(ConfigError, match=r"node"):
        from_dict(DetectorConfig, {"node": {}})


@pytest.mark.parametrize(
    "data,where",
    [
        ({"model": {"voxel_size": "1cm"}}, "model.voxel_size"),
        ({"model": {"num_reg_outs": 6.0}}, "model.num_reg_outs"),
        ({"model": {"num_reg_outs": True}}, "model.num_reg_outs"),
        ({"model": {"class_names": "chair"}}, "model.class_names"),
        ({"model": {"label2level": [0, "one"]}}, "model.label2level[1]"),
        ({"model": {"yaw_parametrization": 3}}, "model.yaw_parametrization"),
        ({"model": []}, "model"),
        ({"inference": {"nms_pre": "all"}}, "inference.nms_pre"),
    ],
)
def test_type_errors_name_the_key(data: dict, where: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(where)):
        from_dict(DetectorConfig, data)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"model": {"num_reg_outs": 7}}, "num_reg_outs"),
        ({"model": {"label2level": [0, 1]}}, "label2level"),
        ({"model": {"label2level": [2] * 18}}, "label2level"),
        ({"model": {"width": 0.0}}, "width"),
        ({"model": {"voxel_size": -0.01}}, "voxel_size"),
        ({"model": {"blocks": [3, 4, 6]}}, "blocks"),
        ({"model": {"yaw_parametrization": "euler"}}, "yaw_parametrization"),
        ({"model": {"class_names": []}}, "class_names"),
        ({"inference": {"iou_threshold": 0.0}}, "iou_threshold"),
        ({"inference": {"score_threshold": 1.5}}, "score_threshold"),
        ({"inference": {"nms_pre": 0}}, "nms_pre"),
        ({"inference": {"max_detections": -1}}, "max_detections"),
    ],
)
def test_value_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(DetectorConfig, data)


def test_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_yaml(tmp_path / "missing.yaml", DetectorConfig)
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(tmp_path / "bad.yaml", DetectorConfig)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml", DetectorConfig)
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml", DetectorConfig) == DetectorConfig()


@pytest.mark.parametrize("name", YAMLS)
def test_dict_round_trip(name: str) -> None:
    cfg = load_yaml(CONFIG_DIR / name, DetectorConfig)
    plain = to_dict(cfg)
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain  # YAML/JSON friendly
    assert from_dict(DetectorConfig, plain) == cfg
