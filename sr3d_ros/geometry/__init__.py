"""ROS-free 3D box geometry: conversions, corners, IoU / GIoU / DIoU, vertex distance, NMS; the
pinhole camera (:mod:`.camera`) and the CameraInfo rules that give an image its camera
(:mod:`.camera_info`, shared by the image node and camera_info files).

The box convention ``(x, y, z, dx, dy, dz, yaw)`` (geometric centre, full extents, yaw about
+z, metres) and the corner order are documented once, in :mod:`sr3d_ros.geometry.boxes`.
"""

from .boxes import (
    bottom_center_to_center,
    box_bev_corners,
    box_corners,
    box_volume,
    center_to_bottom_center,
    enclosing_aabb,
    limit_yaw,
    to_7dof,
    validate_boxes,
)
from .camera import PinholeCamera, boxes_to_camera_boxes, camera_boxes_to_boxes
from .iou import (
    aligned_box_iou_3d,
    axis_aligned_iou_3d,
    box_iou_3d,
    box_iou_bev,
    diou_3d,
    diou_loss,
    giou_3d,
    giou_loss,
    intersection_volume_3d,
    rotated_iou_3d,
)
from .mgiou import mgiou_3d, mgiou_loss
from .nms import batched_nms_3d, nms_3d
from .vertex_distance import normalized_vertex_distance, normalized_vertex_distance_pairwise

__all__ = [
    "PinholeCamera",
    "aligned_box_iou_3d",
    "axis_aligned_iou_3d",
    "batched_nms_3d",
    "bottom_center_to_center",
    "box_bev_corners",
    "box_corners",
    "box_iou_3d",
    "box_iou_bev",
    "box_volume",
    "boxes_to_camera_boxes",
    "camera_boxes_to_boxes",
    "center_to_bottom_center",
    "diou_3d",
    "diou_loss",
    "enclosing_aabb",
    "giou_3d",
    "giou_loss",
    "intersection_volume_3d",
    "limit_yaw",
    "mgiou_3d",
    "mgiou_loss",
    "nms_3d",
    "normalized_vertex_distance",
    "normalized_vertex_distance_pairwise",
    "rotated_iou_3d",
    "to_7dof",
    "validate_boxes",
]
