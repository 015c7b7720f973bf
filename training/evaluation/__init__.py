"""Evaluation of 3D detections: the indoor (ScanNet / SUN RGB-D) mAP protocol."""

from .indoor_map import IndoorEvalResult, IoUFn, evaluate_indoor, voc_ap

__all__ = ["IndoorEvalResult", "IoUFn", "evaluate_indoor", "voc_ap"]
