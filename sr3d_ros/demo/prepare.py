"""Demo stage 1: find the data and the model, and build the input bag."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "REPO",
    "DemoError",
    "ScanSample",
    "build_input_bag",
    "check_data",
    "choose_checkpoint",
    "data_root",
    "random_checkpoint",
    "training_scenes",
]

logger = logging.getLogger(__name__)


class DemoError(Exception):
    """A precondition of the demo is not met (the message says what to do)."""


class ScanSample(Protocol):
    """What the demo reads of a dataset sample (:class:`sr3d_training.datasets.Sample`)."""

    @property
    def num_points(self) -> int: ...
    @property
    def num_boxes(self) -> int: ...
    @property
    def class_names(self) -> tuple[str, ...]: ...


def data_root(arg: Path | None) -> Path:
    """The shared data root: ``arg``, else ``$SR3D_DATA``, else ``../shared/data`` beside the
    repository."""
    if arg is not None:
        return arg
    env = os.environ.get("SR3D_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def check_data(root: Path, scenes: Sequence[str]) -> None:
    """Raise :class:`DemoError` (naming the scans and what to do) unless every ScanNet scene's
    ``*_vert_all.npy`` and ``*_bbox.npy`` lie under ``root/scannet/scannet_instance_data``."""
    d = root / "scannet" / "scannet_instance_data"
    missing = [
        s
        for s in scenes
        if not (d / f"{s}_vert_all.npy").is_file() or not (d / f"{s}_bbox.npy").is_file()
    ]
    if missing:
        raise DemoError(
            f"ScanNet sample scans {missing} not found under {d}. The demo reads the real data in "
            "../shared/data next to the repository (see ../shared/data/README.md); pass "
            "--data-root DIR or set SR3D_DATA to use another copy."
        )


def random_checkpoint(path: Path) -> Path:
    """An untrained width-0.25 TR3D (seed 0) saved at ``path``."""
    import torch

    from sr3d_ros.checkpoints import save_checkpoint
    from sr3d_ros.config import DetectorConfig, ModelConfig
    from sr3d_ros.models import TR3DDetector

    torch.manual_seed(0)
    cfg = DetectorConfig(ModelConfig(width=0.25))
    note = "random initialisation (sr3d_ros.demo --random-init): detections are meaningless"
    save_checkpoint(path, TR3DDetector(cfg.model).state_dict(), cfg, provenance={"note": note})
    return path


def choose_checkpoint(checkpoint: str | None, random_init: bool, out: Path) -> Path:
    """The model the node runs: an untrained one written into ``out`` (``random_init``), the
    given ``checkpoint``, or the embedded default model.

    Raises:
        DemoError: the checkpoint file is missing (the message says what to pass instead).
    """
    from sr3d_ros.inference import default_checkpoint_path

    if random_init:
        return random_checkpoint(out / "random_init_w025.pt")
    path = Path(checkpoint) if checkpoint else default_checkpoint_path()
    if not path.is_file():
        if checkpoint:
            raise DemoError(f"checkpoint {path} not found")
        raise DemoError(
            f"the embedded default model {path} is not there yet (it is trained separately and "
            "shipped with the package). Run the demo with --checkpoint PATH (any sr3d_ros "
            "checkpoint), or with --random-init to check the pipeline with an untrained model."
        )
    return path


def training_scenes(ckpt: Path) -> set[str]:
    """Scene ids the checkpoint was trained on, from its provenance (``train_ids``, as written
    by ``scripts/export_default_model.py``); empty when it does not say or cannot be read."""
    from sr3d_ros.checkpoints import CheckpointError, load_checkpoint

    try:
        prov = load_checkpoint(ckpt, map_location="cpu").get("provenance", {})
    except (CheckpointError, OSError):
        return set()
    ids = prov.get("train_ids") if isinstance(prov, dict) else None
    return {str(i) for i in ids} if isinstance(ids, (list, tuple)) else set()


def build_input_bag(
    root: Path, scenes: Sequence[str], in_bag: Path, rate_hz: float
) -> list[ScanSample]:
    """Write the real ScanNet ``scenes`` into the MCAP bag ``in_bag`` (``/points`` xyz + rgb and
    ``/ground_truth``, frame ``map``, one scan every ``1 / rate_hz`` s of bag time, header stamp
    = bag time), replacing an old one.

    Returns:
        The samples, in bag order.

    Raises:
        FileNotFoundError: missing scan files (the message names them).
    """
    from sr3d_ros.ros.bag import build_bag, load_samples

    if in_bag.exists():
        shutil.rmtree(in_bag)
    samples: list[ScanSample] = load_samples("scannet", root, scenes)
    build_bag(in_bag, samples, rate_hz=rate_hz, frame_id="map")
    logger.info("built %s (%d scans at %g Hz)", in_bag, len(samples), rate_hz)
    return samples
