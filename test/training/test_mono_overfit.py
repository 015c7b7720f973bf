"""The monocular detector (size n) overfits two real KITTI frames: Car AP3D|R40 at IoU 0.5 reaches
at least 90% of what the labels themselves reach on those frames, in a bounded number of steps.

The frames 000006 and 000010 hold 8 cars counted as moderate. With fewer than 40 counted boxes
the official R40 sampling caps AP at (n - 1) / 40 (17.5% here) even for perfect detections, so
the test compares with that ceiling (the AP of the labels as detections, same evaluator). Budget:
input 192 x 640 (half KITTI's resolution), batch 2, 250 AdamW steps (lr 4e-3, x0.1 for the last
50), no augmentation, precise BatchNorm after each epoch; about 2.5 minutes of CPU time on one
core (measured: 156 s, with AP3D@0.5 at 100% of the ceiling for easy / moderate / hard and a car
depth error of 0.14 m; 150 steps reached 75%).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sr3d_ros.models.mono import MonoInferenceConfig, MonoModelConfig
from sr3d_training.config import DataConfig, MonoAugmentationConfig, MonoTrainConfig, OptimConfig
from sr3d_training.trainer import Trainer

FRAMES = ("000006", "000010")
STEPS_PER_EPOCH, EPOCHS = 50, 5


@pytest.mark.slow
def test_mono_n_overfits_two_real_kitti_frames(data_root: Path, tmp_path: Path) -> None:
    cfg = MonoTrainConfig(
        model=MonoModelConfig(size="n", input_size=(192, 640)),
        inference=MonoInferenceConfig(score_threshold=0.05),
        data=DataConfig(
            dataset="kitti",
            root=str(data_root / "kitti"),
            train_ids=FRAMES,
            val_ids=FRAMES,
            repeat=STEPS_PER_EPOCH,  # 2 frames x 50 / batch 2 = 50 steps per epoch
        ),
        augmentation=MonoAugmentationConfig(flip_prob=0.0, jitter=False),
        optim=OptimConfig(
            lr=4e-3, weight_decay=0.0, warmup_steps=10, epochs=EPOCHS, milestones=(EPOCHS - 1,)
        ),
        batch_size=2,
        output_dir=str(tmp_path),
        amp=False,
    )
    summary = Trainer(cfg, device="cpu", progress=False).fit()
    assert summary["steps"] == STEPS_PER_EPOCH * EPOCHS
    m = summary["metrics"]
    assert m["Car/AP3D_R40@0.5/moderate_ceiling"] == pytest.approx(17.5)  # 8 moderate cars
    assert m["Car/AP3D_R40@0.5/moderate_norm"] >= 0.9, m
    assert m["Car/AP2D_R40@0.7/moderate"] >= 0.9 * 17.5, m
    assert m["Car/depth_matched"] >= 10 and m["Car/depth_mae"] < 0.5, m
