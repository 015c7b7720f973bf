"""A2D2Task on real KITTI frames (small network input for speed): the teacher stays frozen and
outside the optimiser, the distillation gradient reaches the student's one-to-many branch only,
the teacher / student batch is aligned, and ``sr3d-train --teacher`` gives an ordinary
monocular checkpoint or one clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from sr3d_ros.checkpoints import load_checkpoint, save_checkpoint
from sr3d_ros.config import DetectorConfig, ModelConfig
from sr3d_ros.inference import load_detector
from sr3d_ros.models import TR3DDetector
from sr3d_ros.models.mono import MonoDetectorConfig, MonoDetectorModel, MonoModelConfig
from sr3d_training.cli.train import main as train_main
from sr3d_training.config import MonoTrainConfig, load_train_config
from sr3d_training.distill import DistillConfig
from sr3d_training.distill.a2d2_task import A2D2Task

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "mono_kitti_a2d2.yaml"
SMALL = (96, 320)  # network input (H, W): KITTI frames letterboxed small


def _teacher(path: Path, **model: object) -> Path:
    torch.manual_seed(123)
    cfg = MonoDetectorConfig(MonoModelConfig(**{"input_size": SMALL, **model}))  # type: ignore[arg-type]
    save_checkpoint(path, MonoDetectorModel(cfg.model).state_dict(), cfg, {"note": "test"})
    return path


def _config(teacher: Path | None, tmp_path: Path, **options: object) -> MonoTrainConfig:
    cfg = load_train_config(CONFIG)
    assert isinstance(cfg, MonoTrainConfig)
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, input_size=SMALL),
        data=dataclasses.replace(cfg.data, val_ids=(), repeat=1),
        batch_size=2,
        output_dir=str(tmp_path / "run"),
        distill=DistillConfig(
            kind="a2d2",
            teacher=None if teacher is None else str(teacher),
            options={**cfg.distill.options, **options},
        ),
    )


def _task(cfg: MonoTrainConfig) -> A2D2Task:
    torch.manual_seed(0)  # the student's initialisation
    return A2D2Task.from_config(cfg, torch.device("cpu"))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _teacher(tmp_path_factory.mktemp("teacher") / "teacher.pt")


def test_teacher_frozen_and_gradient_to_the_student_only(data_root, teacher_ckpt, tmp_path):
    task = _task(_config(teacher_ckpt, tmp_path))
    plain = _task(_config(teacher_ckpt, tmp_path, kd_weight=0.0))
    assert task.teacher is not None and plain.teacher is None
    teacher = task.teacher.model
    t_params = {id(p) for p in teacher.parameters()}
    assert not t_params & {id(p) for p in task.train_module.parameters()}
    assert set(task.train_module.state_dict()) == set(plain.train_module.state_dict())
    task.train_module.train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    buffers = {k: v.clone() for k, v in teacher.named_buffers()}

    batch = task.collate([task.train_set[i] for i in range(2)])
    loss = task.train_module(batch)
    loss.total.backward()
    plain.train_module.train()
    ref = plain.train_module(batch)
    ref.total.backward()

    assert all(p.grad is None for p in teacher.parameters())
    for k, v in teacher.named_buffers():  # BatchNorm statistics untouched (eval mode)
        assert torch.equal(v, buffers[k]), k
    s = loss.scalars
    assert s["kd_objects"] > 0 and s["kd_loss"] > 0 and 0 < s["kd_quality"] <= 1
    assert s["det_loss"] == pytest.approx(ref.scalars["det_loss"], rel=1e-6)
    kd_weight = task.train_module.options.kd_weight
    assert loss.total.item() == pytest.approx(s["det_loss"] + kd_weight * s["kd_loss"], rel=1e-5)
    grads = dict(task.train_module.model.named_parameters())
    ref_grads = dict(plain.train_module.model.named_parameters())
    for name, p in grads.items():
        g, r = p.grad, ref_grads[name].grad
        assert g is not None and r is not None, name
        if name.startswith("one2one."):  # detached features: the distillation cannot reach it
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-7)
    depth_hidden = "one2many.head3d.0.hidden.depth.0.weight"
    assert not torch.allclose(grads[depth_hidden].grad, ref_grads[depth_hidden].grad)
    # the other 3D branches' own layers see no distillation term
    dims = "one2many.head3d.0.hidden.dims.0.weight"
    torch.testing.assert_close(grads[dims].grad, ref_grads[dims].grad, rtol=1e-5, atol=1e-7)


def test_batch_pairs_are_aligned(data_root, teacher_ckpt, tmp_path):
    task = _task(_config(teacher_ckpt, tmp_path))
    items = [task.train_set[i] for i in range(3)]
    batch = task.collate(items)
    s_t, t_t = batch["targets"], batch["teacher_targets"]
    assert batch["images"].shape == batch["teacher_images"].shape == (3, 3, *SMALL)
    torch.testing.assert_close(s_t.projections, t_t.projections)  # one camera per pair
    g = t_t.mask.shape[1]
    # the student's first objects are the teacher's (primary) objects, same boxes, weight 1
    assert torch.equal(s_t.mask[:, :g] & t_t.mask, t_t.mask)
    torch.testing.assert_close(s_t.cam_boxes[:, :g][t_t.mask], t_t.cam_boxes[t_t.mask])
    torch.testing.assert_close(s_t.weights[:, :g][t_t.mask], t_t.weights[t_t.mask])
    assert bool((t_t.weights[t_t.mask] == 1).all())
    assert not torch.equal(batch["images"], batch["teacher_images"])  # noised vs clean
    # the same item twice is the same pair (reproducible stream: exact resume)
    again = task.collate([task.train_set[i] for i in range(3)])
    assert torch.equal(again["images"], batch["images"])


def test_gradient_importance_and_adapter(data_root, tmp_path):
    narrow = _teacher(tmp_path / "narrow.pt", depth_feat_scale=1.0)
    with pytest.raises(ValueError, match="channels"):
        _task(_config(narrow, tmp_path))
    task = _task(_config(narrow, tmp_path, adapter=True, importance="gradient"))
    assert task.teacher is not None
    assert task.teacher.channels != task.model.depth_feat_channels
    batch = task.collate([task.train_set[i] for i in range(2)])
    out = task.teacher(batch["teacher_images"].float() / 255)
    grad = task.teacher.depth_gradient(out)
    assert grad.shape == (out.anchor_points.shape[0], task.teacher.channels)
    first = task.teacher.model.one2many.head3d[0].out["depth"].weight[0, :, 0, 0]
    torch.testing.assert_close(grad[0], first)
    loss = task.train_module(batch)
    loss.total.backward()
    adapter = task.train_module.adapter
    assert adapter is not None and adapter.weight.grad is not None
    assert loss.scalars["kd_objects"] > 0


def _cli_config(tmp_path: Path) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    data["model"]["input_size"] = list(SMALL)
    data["data"]["root"] = str((CONFIG.parent / data["data"]["root"]).resolve())
    data["data"]["val_ids"] = []
    data["batch_size"] = 2
    path = tmp_path / "a2d2.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _train(tmp_path: Path, *extra: str) -> int:
    args = ["--config", str(_cli_config(tmp_path)), "--output-dir", str(tmp_path / "run")]
    return train_main([*args, "-q", "--device", "cpu", *extra])


def test_cli_student_is_an_ordinary_mono_checkpoint(data_root, tmp_path, capsys):
    # a larger teacher: its config (size s) comes from its checkpoint
    teacher = _teacher(tmp_path / "teacher_s.pt", size="s")
    assert _train(tmp_path, "--teacher", str(teacher), "--max-steps", "2") == 0
    path = tmp_path / "run" / "final.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "mono" and ckpt["config"]["model"]["size"] == "n"
    student = MonoDetectorModel(MonoModelConfig(input_size=SMALL))
    assert set(ckpt["state_dict"]) == set(student.state_dict())  # no teacher, no adapter
    history = ckpt["training_state"]["history"]
    assert {"kd_loss", "kd_objects", "kd_quality", "det_loss"} <= set(history[-1])
    assert type(load_detector(path, device="cpu")).__name__ == "MonoDetector"
    capsys.readouterr()


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sr3d-train: error:"), err
    for needle in needles:
        assert needle in err, err


def test_cli_wrong_teachers_are_one_clear_error(data_root, tmp_path, capsys):
    pointcloud = tmp_path / "pointcloud.pt"
    model = TR3DDetector(ModelConfig(width=0.25))
    save_checkpoint(pointcloud, model.state_dict(), DetectorConfig(model.config))
    assert _train(tmp_path, "--teacher", str(pointcloud)) == 1
    _one_error_line(capsys, "pointcloud.pt", "'pointcloud'", "monocular teacher")
    narrow = _teacher(tmp_path / "narrow.pt", depth_feat_scale=1.0)
    assert _train(tmp_path, "--teacher", str(narrow)) == 1
    _one_error_line(capsys, "narrow.pt", "64 channels, the student's 96", "adapter")
    other = _teacher(tmp_path / "big_input.pt", input_size=(384, 1280))
    assert _train(tmp_path, "--teacher", str(other)) == 1
    _one_error_line(capsys, "big_input.pt", "input_size")
    assert _train(tmp_path) == 1
    _one_error_line(capsys, "needs a teacher", "--teacher")
    assert _train(tmp_path, "--teacher", str(tmp_path / "missing.pt")) == 1
    _one_error_line(capsys, "missing.pt")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.pt"))
