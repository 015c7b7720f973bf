"""Evaluation of 3D detections: the indoor (ScanNet / SUN RGB-D) mAP protocol."""

from .indoor_map import IndoorEvalResult, IoUFn, evaluate_indoor, voc_ap
from .kitti import KittiEvalResult, evaluate_kitti

__all__ = [
    "IndoorEvalResult",
    "IoUFn",
    "KittiEvalResult",
    "evaluate_indoor",
    "evaluate_kitti",
    "voc_ap",
]
