"""Dataset loaders for sr3d_training: ScanNet v2 and SUN RGB-D, returning :class:`Sample` objects.

Every loader returns points ``float32 (N, 6)`` (x, y, z metres in a gravity-aligned frame, z up;
r, g, b 0..255) and boxes ``float32 (K, 7)`` = ``(x, y, z, dx, dy, dz, yaw)`` with ``(x, y, z)``
the geometric centre and ``yaw`` counter-clockwise about +z (box x-axis ``(cos yaw, sin yaw)``).
Broken or missing files raise :class:`FileNotFoundError` / :class:`ValueError` naming the file.
"""

from .dataset import SampleDataset
from .kitti import KITTI_CLASSES, KittiDataset, KittiObjects, read_kitti_calib, read_kitti_label
from .mmdet3d_infos import InfoRecord, parse_mmdet3d_infos
from .sample import (
    Sample,
    load_npy,
    load_pickle_strict,
    load_points_bin,
)
from .scannet import (
    NYU40_TO_LABEL,
    SCANNET_CLASSES,
    SCANNET_NYU40_IDS,
    ScanNetDataset,
    ScanNetInfoDataset,
    align_points,
    load_scannet_raw_scan,
    load_scannet_scene,
    nyu40_boxes_to_labels,
    read_axis_alignment_txt,
    read_split_file,
)
from .sunrgbd import (
    SUNRGBD_CLASSES,
    SunRGBDDataset,
    SunRGBDInfoDataset,
    SunRGBDObject,
    label_to_box,
    load_sunrgbd_depth,
    load_sunrgbd_frame,
    read_sunrgbd_calib,
    read_sunrgbd_label,
    sunrgbd_info_boxes_to_ours,
)

__all__ = [
    "KITTI_CLASSES",
    "NYU40_TO_LABEL",
    "SCANNET_CLASSES",
    "SCANNET_NYU40_IDS",
    "SUNRGBD_CLASSES",
    "InfoRecord",
    "KittiDataset",
    "KittiObjects",
    "Sample",
    "SampleDataset",
    "ScanNetDataset",
    "ScanNetInfoDataset",
    "SunRGBDDataset",
    "SunRGBDInfoDataset",
    "SunRGBDObject",
    "align_points",
    "label_to_box",
    "load_npy",
    "load_pickle_strict",
    "load_points_bin",
    "load_scannet_raw_scan",
    "load_scannet_scene",
    "load_sunrgbd_depth",
    "load_sunrgbd_frame",
    "nyu40_boxes_to_labels",
    "parse_mmdet3d_infos",
    "read_axis_alignment_txt",
    "read_kitti_calib",
    "read_kitti_label",
    "read_split_file",
    "read_sunrgbd_calib",
    "read_sunrgbd_label",
    "sunrgbd_info_boxes_to_ours",
]
