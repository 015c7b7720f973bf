"""sr3d_ros: real-time 3D object detection (TR3D architecture, SR3D training) with a ROS 2 node.

Everything outside :mod:`sr3d_ros.ros` is ROS-free and imports without rclpy.
"""

__version__ = "0.1.0"
