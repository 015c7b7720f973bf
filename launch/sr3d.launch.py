"""Launch the sr3d_ros point-cloud detector (and optionally RViz).

    ros2 launch sr3d_ros sr3d.launch.py input_topic:=/camera/depth/points
    ros2 launch sr3d_ros sr3d.launch.py checkpoint:=/models/tr3d.pt device:=cuda rviz:=true
    ros2 launch sr3d_ros sr3d.launch.py params_file:=/path/to/my_params.yaml namespace:=front

Arguments:
    input_topic   PointCloud2 topic to detect in (remapped onto ~/input/points).
    params_file   node parameter YAML (default: the installed config/pointcloud_detector.yaml).
    checkpoint    model file; '' = the value in params_file ('' there = embedded default model).
    device        'auto' | 'cpu' | 'cuda' | 'cuda:N'; '' = the value in params_file.
    namespace     namespace of the node (its topics become /<namespace>/pointcloud_detector/...).
    use_sim_time  use /clock (bag replay).
    rviz          start RViz with rviz/sr3d.rviz.

Outputs: ~/output/detections (vision_msgs/Detection3DArray), ~/output/markers, ~/output/label_info,
/diagnostics. DDS discovery: the node keeps ROS_AUTOMATIC_DISCOVERY_RANGE as the environment
sets it and defaults to LOCALHOST when it is unset; export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET to
reach sensors on other computers.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "sr3d_ros"


def _detector(context, *args, **kwargs):
    """The detector node, with checkpoint / device overriding params_file only when given."""
    overrides = {}
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    device = LaunchConfiguration("device").perform(context)
    if checkpoint:
        overrides["checkpoint"] = checkpoint
    if device:
        overrides["device"] = device
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1")
    overrides["use_sim_time"] = use_sim_time
    return [
        Node(
            package=PACKAGE,
            executable="pointcloud_detector",
            name="pointcloud_detector",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[("~/input/points", LaunchConfiguration("input_topic"))],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            "input_topic", default_value="/points",
            description="sensor_msgs/PointCloud2 topic to detect objects in"),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "pointcloud_detector.yaml"),
            description="YAML file with the node parameters"),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="model checkpoint (.pt); empty = the params_file value"),
        DeclareLaunchArgument(
            "device", default_value="",
            description="'auto', 'cpu', 'cuda' or 'cuda:N'; empty = the params_file value"),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="namespace of the detector node"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false",
            description="use the /clock topic (e.g. when replaying a bag with --clock)"),
        DeclareLaunchArgument(
            "rviz", default_value="false",
            description="start RViz with the sr3d_ros display configuration"),
        OpaqueFunction(function=_detector),
        Node(
            package="rviz2",
            executable="rviz2",
            name="sr3d_rviz",
            arguments=["-d", os.path.join(share, "rviz", "sr3d.rviz")],
            parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
    ])
