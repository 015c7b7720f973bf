"""rosbag2 (MCAP) tools on the ``rosbags`` library: build from dataset samples, read, play, record.

* :mod:`~sr3d_ros.ros.bag.building`: :func:`build_bag` writes real dataset scans as
  ``sensor_msgs/PointCloud2`` on ``/points`` and their ground truth as
  ``vision_msgs/Detection3DArray`` on ``/ground_truth`` (no ROS needed).
* :mod:`~sr3d_ros.ros.bag.kitti`: :func:`build_kitti_bag` writes real KITTI frames (image,
  CameraInfo, velodyne scan, ``/tf_static``, ground truth in the camera optical frame).
* :mod:`~sr3d_ros.ros.bag.reading`: :func:`read_bag` iterates a bag's messages deserialised by
  ``rosbags`` (duck-type compatible with the rclpy messages); :func:`bag_info` summarises a bag.
* :mod:`~sr3d_ros.ros.bag.playing`: :class:`BagPlayer` publishes a bag's raw messages with rclpy
  (timing scaled by ``rate``, loop, ``/clock``).
* :mod:`~sr3d_ros.ros.bag.recording`: :class:`BagRecorder` records topics with rclpy.
* :mod:`~sr3d_ros.ros.bag.typestore`: the ``rosbags`` typestore (ROS 2 Kilted plus our
  ``vision_msgs``, same definitions and RIHS01 hashes as the live graph) and message helpers.

Importing this package needs neither rclpy nor rosbags; they are imported where used.
"""

from sr3d_ros.ros.bag.building import (
    DETECTION3DARRAY,
    GT_TOPIC,
    POINTCLOUD2,
    POINTS_TOPIC,
    BagSummary,
    build_bag,
    load_samples,
)
from sr3d_ros.ros.bag.detections import DetectionPoses, detection_poses
from sr3d_ros.ros.bag.kitti import (
    KITTI_SCAN_FIELDS,
    KittiBagFrames,
    KittiBagTopics,
    build_kitti_bag,
    camera_box_poses,
    camera_boxes_from_poses,
)
from sr3d_ros.ros.bag.playing import CLOCK_TOPIC, BagPlayer
from sr3d_ros.ros.bag.reading import BagMessage, bag_info, read_bag
from sr3d_ros.ros.bag.recording import BagRecorder
from sr3d_ros.ros.bag.typestore import make_typestore, message_class, new_msg, vision_msgs_dir

__all__ = [
    "CLOCK_TOPIC",
    "DETECTION3DARRAY",
    "GT_TOPIC",
    "KITTI_SCAN_FIELDS",
    "POINTCLOUD2",
    "POINTS_TOPIC",
    "BagMessage",
    "BagPlayer",
    "BagRecorder",
    "BagSummary",
    "DetectionPoses",
    "KittiBagFrames",
    "KittiBagTopics",
    "bag_info",
    "build_bag",
    "build_kitti_bag",
    "camera_box_poses",
    "camera_boxes_from_poses",
    "detection_poses",
    "load_samples",
    "make_typestore",
    "message_class",
    "new_msg",
    "read_bag",
    "vision_msgs_dir",
]
