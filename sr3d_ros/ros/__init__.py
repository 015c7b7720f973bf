"""ROS 2 glue for sr3d_ros (message conversion, nodes).

Importing this package needs no ROS environment: :mod:`sr3d_ros.ros.pointcloud2` imports the
message classes only inside the functions that build messages.
"""

from sr3d_ros.ros.pointcloud2 import (
    CloudInfo,
    CloudLayout,
    Field,
    array_to_pointcloud2,
    cloud_to_array,
    pointcloud2_to_array,
    pointcloud2_to_structured,
    points_to_cloud,
)

__all__ = [
    "CloudInfo",
    "CloudLayout",
    "Field",
    "array_to_pointcloud2",
    "cloud_to_array",
    "pointcloud2_to_array",
    "pointcloud2_to_structured",
    "points_to_cloud",
]
