"""The trainer seam (sr3d_training.tasks): a task wrapping the point-cloud task with a
training-only module and a frozen teacher, as the distillation modes do, on real ScanNet scans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sr3d_ros.checkpoints import load_checkpoint
from sr3d_ros.config import ModelConfig
from sr3d_ros.models import TR3DDetector
from sr3d_training.config import DataConfig, OptimConfig, TrainConfig, load_train_config
from sr3d_training.tasks import (
    PointCloudTask,
    TaskLoss,
    TrainTask,
    build_task,
    hold_frozen,
)
from sr3d_training.trainer import Trainer
from sr3d_training.transforms import AugmentationConfig


def _config(data_root: Path, out: Path, epochs: int = 2) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(voxel_size=0.08, width=0.25),
        data=DataConfig(root=str(data_root / "scannet"), train_ids=("scene0000_00",), repeat=2),
        augmentation=AugmentationConfig(point_ratio=0.3, normalize_colors=False),
        optim=OptimConfig(warmup_steps=1, epochs=epochs, milestones=()),
        batch_size=1,
        output_dir=str(out),
    )


class _AdapterModule(nn.Module):
    """Base loss + a training-only adapter pulled towards a frozen teacher's first weights."""

    def __init__(self, base: nn.Module, teacher: TR3DDetector) -> None:
        super().__init__()
        self.model = base.model
        self.base = base
        self.adapter = nn.Linear(4, 4)
        self.teacher = hold_frozen(teacher)  # a list: not a submodule

    def forward(self, batch: dict[str, Any]) -> TaskLoss:
        out: TaskLoss = self.base(batch)
        t = next(self.teacher[0].parameters()).flatten()[:4]
        extra = (self.adapter(t) - 1.0).pow(2).mean()
        return TaskLoss(out.total + extra, {**out.scalars, "adapter": float(extra.detach())})


class _WrappedTask(TrainTask):
    def __init__(self, base: PointCloudTask) -> None:
        self.base, self.kind, self.model = base, base.kind, base.model
        self.device, self.use_amp = base.device, base.use_amp
        self.train_set, self.val_set = base.train_set, base.val_set
        self.teacher = TR3DDetector(base.cfg.model)
        self.train_module = _AdapterModule(base.train_module, self.teacher)

    @property
    def detector_config(self) -> Any:
        return self.base.detector_config

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        return self.base.collate(samples)

    def evaluate(self, progress: bool = False) -> dict[str, float] | None:
        return self.base.evaluate(progress)


def _wrapped(cfg: TrainConfig) -> _WrappedTask:
    torch.manual_seed(cfg.seed)
    return _WrappedTask(PointCloudTask(cfg, torch.device("cpu")))


def test_build_task_gives_the_point_cloud_task(data_root: Path, tmp_path: Path) -> None:
    task = build_task(_config(data_root, tmp_path), torch.device("cpu"))
    assert isinstance(task, PointCloudTask) and task.kind == "pointcloud"
    assert task.train_module.model is task.model
    assert {k for k, _ in task.train_module.named_parameters()} == {
        f"model.{k}" for k, _ in task.model.named_parameters()
    }


def test_wrapped_task_trains_extra_module_keeps_teacher_frozen_and_resumes_exactly(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(data_root, tmp_path / "a")
    task = _wrapped(cfg)
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    trainer = Trainer(cfg, device="cpu", progress=False, task=task)
    n_opt = sum(len(g["params"]) for g in trainer.optimizer.param_groups)
    assert n_opt == len(list(task.model.parameters())) + 2  # + adapter weight and bias
    adapter_before = task.train_module.adapter.weight.detach().clone()
    trainer.fit()
    assert trainer.step == 4 and "adapter" in trainer.history[-1]
    assert not torch.equal(task.train_module.adapter.weight, adapter_before)
    assert not task.teacher.training
    for k, v in task.teacher.state_dict().items():  # frozen: never updated, never in train mode
        assert torch.equal(v, teacher_before[k]), k
    ckpt = load_checkpoint(tmp_path / "a" / "final.pt")
    assert ckpt["kind"] == "pointcloud"
    assert set(ckpt["state_dict"]) == set(task.model.state_dict())  # the detector only
    extra = ckpt["training_state"]["train_module_extra"]
    assert set(extra) == {"adapter.weight", "adapter.bias"}

    # interrupted after 1 epoch, resumed: the same weights (detector and adapter) as straight
    cfg_b = _config(data_root, tmp_path / "b", epochs=1)
    Trainer(cfg_b, device="cpu", progress=False, task=_wrapped(cfg_b)).fit()
    cfg_b2 = _config(data_root, tmp_path / "b")
    resumed_task = _wrapped(cfg_b2)
    resumed = Trainer(cfg_b2, device="cpu", resume=True, progress=False, task=resumed_task)
    assert resumed.step == 2
    resumed.fit()
    for (name, a), b in zip(
        task.train_module.state_dict().items(), resumed_task.train_module.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_resume_refuses_a_checkpoint_of_another_kind(data_root: Path, tmp_path: Path) -> None:
    cfg = _config(data_root, tmp_path, epochs=1)
    Trainer(cfg, device="cpu", progress=False).fit()
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    ckpt["kind"] = "mono"
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="a 'mono' checkpoint; this run trains a 'pointcloud'"):
        Trainer(cfg, device="cpu", resume=True, progress=False)


def test_config_kind_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kind: pointcloud\ndata: {train_ids: [scene0000_00]}\n")
    assert isinstance(load_train_config(path), TrainConfig)
    path.write_text("kind: lidar\n")
    with pytest.raises(ValueError, match="kind must be one of"):
        load_train_config(path)
