"""DistillConfig: the training YAML's ``distill:`` section and the method options it validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr3d_ros.config import ConfigError, from_dict, to_dict
from sr3d_training.config import load_train_config
from sr3d_training.distill import DistillConfig, VRDistillOptions

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_plain_training() -> None:
    cfg = load_train_config(REPO / "config" / "train_scannet_default.yaml")
    assert cfg.distill == DistillConfig() and cfg.distill.kind == "none"


def test_vrdistill_section_round_trips() -> None:
    raw = {"kind": "vrdistill", "teacher": "t.pt", "options": {"vc_weight": 0.1, "num_votes": 0}}
    cfg = from_dict(DistillConfig, raw)
    opts = cfg.options_as(VRDistillOptions)
    assert opts.vc_weight == 0.1 and opts.num_votes == 0
    assert opts.num_layers == 4 and opts.num_neighbors == 5 and opts.sigma == 1.0  # the paper's
    assert opts.use_refinement and opts.use_mask
    assert from_dict(DistillConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "vrdistil"}, "vrdistil"),
        ({"kind": "none", "teacher": "t.pt"}, "distill.kind is 'none'"),
        ({"kind": "none", "options": {"vc_weight": 1.0}}, "distill.kind is 'none'"),
        ({"kind": "vrdistill", "options": {"lambda": 1.0}}, r"distill.options.*unknown.*lambda"),
        ({"kind": "vrdistill", "options": {"sigma": 0}}, r"distill.options.*sigma"),
        ({"kind": "vrdistill", "options": {"num_votes": -1}}, "num_votes"),
        ({"kind": "vrdistill", "options": {"use_mask": "yes"}}, "use_mask"),
    ],
)
def test_bad_sections_fail_with_one_clear_error(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(DistillConfig, raw)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    text = (REPO / "config" / "train_scannet_default.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "distill:\n  kind: vrdistill\n  options: {num_layers: 0}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*num_layers"):
        load_train_config(bad)
