"""MonoTask (sr3d_training.tasks.mono) on real KITTI frames: batches and targets, training steps
through the trainer, the mono checkpoint, exact resume, precise BatchNorm, config loading."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_launch import run_torchrun

from sr3d_ros.checkpoints import load_checkpoint
from sr3d_ros.config import from_dict
from sr3d_ros.models.mono import MonoDetectorConfig, MonoModelConfig
from sr3d_training.batching import collate_mono
from sr3d_training.config import (
    DataConfig,
    MonoAugmentationConfig,
    MonoTrainConfig,
    OptimConfig,
    TrainConfig,
    load_train_config,
)
from sr3d_training.datasets import KittiDataset
from sr3d_training.image_transforms import letterbox
from sr3d_training.tasks import MonoTask, build_task
from sr3d_training.tasks.precise_bn import recalibrate_batchnorm
from sr3d_training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
HELD_OUT = ("000007", "000036", "000217")


def mono_config(data_root: Path, out: Path, **kw: object) -> MonoTrainConfig:
    base: dict[str, object] = {
        "model": MonoModelConfig(size="n", input_size=(128, 416)),
        "data": DataConfig(
            dataset="kitti", root=str(data_root / "kitti"), train_ids=("000006", "000010")
        ),
        "augmentation": MonoAugmentationConfig(flip_prob=0.5, jitter=True),
        "optim": OptimConfig(warmup_steps=1, epochs=2, milestones=()),
        "batch_size": 1,
        "output_dir": str(out),
        "precise_bn_batches": 2,
        "log_every": 1,
    }
    base.update(kw)
    return MonoTrainConfig(**base)  # type: ignore[arg-type]


def test_collate_mono_targets_follow_the_letterboxed_labels(data_root: Path) -> None:
    ds = KittiDataset(data_root / "kitti", ["000217", "000134"])
    samples = [letterbox(s, 1280, 384) for s in ds]
    batch = collate_mono(samples, ("Car", "Pedestrian", "Cyclist"))
    t = batch["targets"]
    assert batch["images"].shape == (2, 3, 384, 1280) and batch["images"].dtype == torch.uint8
    # 000217: 5 cars + 2 cyclists (the van is not a target); 000134: 3 + 7 + 5
    assert t.mask.sum(1).tolist() == [7, 15] and t.labels.shape == (2, 15)
    objs = samples[0].meta["kitti"]
    keep = np.isin(objs.names, ["Car", "Pedestrian", "Cyclist"])
    np.testing.assert_allclose(t.boxes2d[0, :7].numpy(), objs.bbox[keep], rtol=1e-6)
    np.testing.assert_allclose(t.cam_boxes[0, :7].numpy(), objs.camera_boxes()[keep], rtol=1e-6)
    assert t.labels[0, :7].tolist() == [
        ("Car", "Pedestrian", "Cyclist").index(n) for n in objs.names[keep]
    ]
    # each object's 3D centre projects (letterboxed P) inside or near its 2D box
    cam = t.cam_boxes[t.mask]
    centre = torch.stack([cam[:, 0], cam[:, 1] - cam[:, 4] / 2, cam[:, 2], torch.ones(len(cam))], 1)
    b = torch.nonzero(t.mask)[:, 0]
    uvw = torch.einsum("nij,nj->ni", t.projections[b], centre)
    uv = uvw[:, :2] / uvw[:, 2:]
    box = t.boxes2d[t.mask]
    margin = 0.25 * (box[:, 2:] - box[:, :2])
    assert ((uv >= box[:, :2] - margin) & (uv <= box[:, 2:] + margin)).all()
    with pytest.raises(ValueError, match="one size"):
        collate_mono([samples[0], next(iter(ds))], ("Car",))


def test_mono_training_steps_checkpoint_and_resume(data_root: Path, tmp_path: Path) -> None:
    straight = Trainer(mono_config(data_root, tmp_path / "a"), device="cpu", progress=False)
    assert isinstance(straight.task, MonoTask)
    before = {k: v.clone() for k, v in straight.model.state_dict().items()}
    straight.fit()
    assert straight.step == 4
    h = straight.history[-1]
    for key in ("loss", "cls_loss", "depth_loss", "mgiou_loss", "num_pos", "num_pos_o2o"):
        assert np.isfinite(h[key]), key
    assert h["num_pos"] >= h["num_pos_o2o"] > 0
    moved = [k for k, v in straight.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("one2many.") for k in moved) and any(
        k.startswith("backbone.") for k in moved
    )
    ckpt = load_checkpoint(tmp_path / "a" / "final.pt")
    assert ckpt["kind"] == "mono" and ckpt["class_names"] == ["Car", "Pedestrian", "Cyclist"]
    cfg = from_dict(MonoDetectorConfig, ckpt["config"])
    assert cfg.model.input_size == (128, 416)
    # interrupted after one epoch, then resumed: the same weights and BN statistics
    first = Trainer(
        mono_config(
            data_root, tmp_path / "b", optim=OptimConfig(warmup_steps=1, epochs=1, milestones=())
        ),
        device="cpu",
        progress=False,
    )
    first.fit()
    resumed = Trainer(
        mono_config(data_root, tmp_path / "b"), device="cpu", resume=True, progress=False
    )
    assert resumed.step == 2
    resumed.fit()
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # a mono run cannot resume a point-cloud checkpoint
    pc = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    pc["kind"] = "pointcloud"
    torch.save(pc, tmp_path / "b" / "last.pt")
    with pytest.raises(ValueError, match="a 'pointcloud' checkpoint"):
        Trainer(mono_config(data_root, tmp_path / "b"), device="cpu", resume=True, progress=False)


def test_precise_bn_recomputes_statistics(data_root: Path, tmp_path: Path) -> None:
    """The recalibrated running mean of a layer is the average of its batch means."""
    task = build_task(mono_config(data_root, tmp_path), torch.device("cpu"))
    assert isinstance(task, MonoTask)
    batches = [task.collate([task.train_set[i]]) for i in range(2)]
    bn = next(m for m in task.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen: list[torch.Tensor] = []
    hook = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].mean((0, 2, 3))))
    assert recalibrate_batchnorm(task.model, batches, task.train_module.run_model) == 2
    hook.remove()
    torch.testing.assert_close(bn.running_mean, (seen[0] + seen[1]) / 2)
    assert bn.momentum == 0.03 and task.model.training
    before = bn.running_mean.clone()
    assert recalibrate_batchnorm(task.model, [], task.train_module.run_model) == 0
    assert torch.equal(bn.running_mean, before)


def test_mono_configs_load() -> None:
    cfg = load_train_config(REPO / "config" / "mono_kitti_n.yaml")
    assert isinstance(cfg, MonoTrainConfig) and cfg.kind == "mono"
    assert cfg.model.size == "n" and cfg.model.input_size == (384, 1280)
    assert cfg.data.val_ids == HELD_OUT and len(cfg.data.train_ids) == 11
    assert not set(cfg.data.train_ids) & set(HELD_OUT)
    assert cfg.assigner.gamma == 1.0 and cfg.assigner.topk_one2many == 10
    assert Path(cfg.data.root).is_dir()
    full = load_train_config(REPO / "config" / "mono_kitti_full_n.yaml")
    assert isinstance(full, MonoTrainConfig)
    assert (full.data.train_split, full.data.val_split, full.data.train_ids) == ("train", "val", ())
    assert full.model == cfg.model and full.assigner == cfg.assigner
    with pytest.raises(ValueError, match="needs 'kind: mono'"):
        dataclasses.replace(TrainConfig(), data=cfg.data)
    with pytest.raises(ValueError, match="unknown key"):
        load_train_config(REPO / "config" / "mono_kitti_n.yaml", {"model": {"voxel_size": 0.02}})


@pytest.mark.slow
def test_mono_ddp_two_processes_gloo_keep_equal_weights(data_root: Path, tmp_path: Path) -> None:
    """sr3d-train's DDP path for the monocular task: two gloo processes end with equal weights
    (and rank 0's checkpoint is a mono one)."""
    script = tmp_path / "ddp_mono.py"
    script.write_text(
        textwrap.dedent(f"""
        import torch, torch.distributed as dist
        from pathlib import Path
        from sr3d_ros.models.mono import MonoModelConfig
        from sr3d_training.config import DataConfig, MonoTrainConfig, OptimConfig
        from sr3d_training.trainer import Trainer
        torch.set_num_threads(1)
        cfg = MonoTrainConfig(model=MonoModelConfig(input_size=(128, 416)),
                              data=DataConfig(dataset="kitti", root={str(data_root / "kitti")!r},
                                              train_ids=("000006", "000010")),
                              optim=OptimConfig(warmup_steps=1, epochs=1, max_steps=2),
                              batch_size=1, precise_bn_batches=1,
                              output_dir={str(tmp_path / "run")!r})
        t = Trainer(cfg, device="cpu", progress=False)
        init = {{k: v.clone() for k, v in t.model.state_dict().items()}}
        t.fit()
        torch.save({{"init": init, "final": t.model.state_dict()}},
                   Path({str(tmp_path)!r}) / f"rank{{dist.get_rank()}}.pt")
        dist.destroy_process_group()
    """)
    )
    run_torchrun(script, timeout=900)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    changed = 0
    for name, w0 in r0["final"].items():
        torch.testing.assert_close(w0, r1["final"][name], rtol=0, atol=0, msg=name)
        changed += int(not torch.equal(w0, r0["init"][name]))
    assert changed > 0
    assert load_checkpoint(tmp_path / "run" / "final.pt")["kind"] == "mono"
