"""Detector models. Point cloud: TR3D architecture (:class:`TR3DDetector`); later: ``mono/``."""

from .backbone import BasicBlock, MinkResNet
from .detector import TR3DDetector, points_to_sparse
from .head import HeadOutputs, TR3DHead, decode_boxes
from .neck import TR3DNeck

__all__ = [
    "BasicBlock",
    "HeadOutputs",
    "MinkResNet",
    "TR3DDetector",
    "TR3DHead",
    "TR3DNeck",
    "decode_boxes",
    "points_to_sparse",
]
