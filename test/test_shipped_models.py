"""sr3d_ros.checkpoints.shipped: a checkpoint setting is a path or a shipped model's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr3d_ros.checkpoints import WEIGHTS_DIR, resolve_checkpoint, shipped_models

REPO = Path(__file__).resolve().parents[1]


def test_shipped_models_are_the_weight_files() -> None:
    models = shipped_models()
    assert models["sr3d_scannet_default"] == WEIGHTS_DIR / "sr3d_scannet_default.pt"
    assert models["lead_m3d_kitti_n"] == WEIGHTS_DIR / "lead_m3d_kitti_n.pt"
    assert models["sr3d_scannet_realtime"] == WEIGHTS_DIR / "sr3d_scannet_realtime.pt"
    # every shipped model has its card
    for name in models:
        card = "MODEL_CARD.md" if name == "sr3d_scannet_default" else f"MODEL_CARD_{name}.md"
        if name == "lead_m3d_kitti_n":
            card = "MODEL_CARD_mono.md"
        assert (WEIGHTS_DIR / card).is_file(), card
    assert WEIGHTS_DIR == REPO / "sr3d_ros" / "models" / "weights"
    assert list(models) == sorted(models) and all(p.is_file() for p in models.values())


def test_names_paths_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("sr3d_scannet_default") == WEIGHTS_DIR / "sr3d_scannet_default.pt"
    # anything with a folder or a suffix is a path, existing or not (its loader reports it)
    assert resolve_checkpoint("runs/final.pt") == Path("runs/final.pt")
    assert resolve_checkpoint("sr3d_scannet_default.pt") == Path("sr3d_scannet_default.pt")
    assert resolve_checkpoint("~/m.pt") == Path.home() / "m.pt"
    # an existing file wins over a shipped name
    (tmp_path / "sr3d_scannet_default").write_bytes(b"x")
    assert resolve_checkpoint("sr3d_scannet_default") == Path("sr3d_scannet_default")
    with pytest.raises(FileNotFoundError, match=r"'nope' is neither a file nor a shipped model"):
        resolve_checkpoint("nope")
    listed = r"\(shipped: lead_m3d_kitti_n, sr3d_scannet_default\b"
    with pytest.raises(FileNotFoundError, match=listed):
        resolve_checkpoint("nope")
