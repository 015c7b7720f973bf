"""sr3d_ros: real-time 3D object detection (TR3D architecture, SR3D training) with a ROS 2 node.

Everything outside :mod:`sr3d_ros.ros` imports without rclpy; only the ROS programs
(:mod:`sr3d_ros.demo`, ``sr3d-bag``) import it, when they run.
"""

__version__ = "0.1.0"
