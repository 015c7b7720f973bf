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
    use_sim_time  use /clock (bag replay: `sr3d-bag play BAG --clock`).
    qos_reliability  'reliable' (default, keep last 1) | 'best_effort'; '' = params_file value.
    rviz          start RViz with rviz/sr3d.rviz, adapted to this launch (see below). When
                  rviz2 is not installed the launch fails at once with a clear message and
                  starts nothing.
    fixed_frame   RViz Fixed Frame (default map, the frame_id of `sr3d-bag build` bags). Without
                  TF (bag replay, a lone sensor) set it to the cloud's header.frame_id, or RViz
                  shows nothing.

RViz: the launch writes a per-launch copy of rviz/sr3d.rviz into a temporary file
(sr3d_ros.ros.rviz_config) with the cloud display on input_topic (resolved in namespace when
relative), the marker display on /<namespace>/pointcloud_detector/output/markers and the Fixed
Frame fixed_frame.

Outputs: ~/output/detections (vision_msgs/Detection3DArray), ~/output/markers, ~/output/label_info,
/diagnostics. DDS discovery: the node keeps ROS_AUTOMATIC_DISCOVERY_RANGE as the environment
sets it and defaults to LOCALHOST when it is unset; export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET to
reach sensors on other computers.
"""

import os
import shutil

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from sr3d_ros.ros.rviz_config import write_rviz_config

PACKAGE = "sr3d_ros"


def _rviz2_installed():
    """True when rviz2 can be started (on PATH or in the ament index)."""
    if shutil.which("rviz2"):
        return True
    try:
        from ament_index_python.packages import get_package_prefix

        get_package_prefix("rviz2")
    except Exception:
        return False
    return True


def _check_rviz(context, *args, **kwargs):
    """rviz:=true without rviz2 installed: fail before anything is started."""
    wanted = LaunchConfiguration("rviz").perform(context).lower() in ("true", "1")
    if wanted and not _rviz2_installed():
        raise RuntimeError(
            "rviz:=true but rviz2 is not installed (not on PATH, not in the ament index); "
            "install it (apt install ros-$ROS_DISTRO-rviz2) or launch with rviz:=false. "
            "Nothing was started."
        )
    return []


def _detector(context, *args, **kwargs):
    """The detector node, with checkpoint / device overriding params_file only when given."""
    overrides = {}
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    device = LaunchConfiguration("device").perform(context)
    if checkpoint:
        overrides["checkpoint"] = checkpoint
    if device:
        overrides["device"] = device
    qos = LaunchConfiguration("qos_reliability").perform(context)
    if qos:
        overrides["qos_reliability"] = qos
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


def _rviz(context, *args, **kwargs):
    """RViz with a per-launch copy of rviz/sr3d.rviz (topics + Fixed Frame from the arguments)."""
    if LaunchConfiguration("rviz").perform(context).lower() not in ("true", "1"):
        return []
    template = os.path.join(get_package_share_directory(PACKAGE), "rviz", "sr3d.rviz")
    config = write_rviz_config(
        template,
        input_topic=LaunchConfiguration("input_topic").perform(context),
        namespace=LaunchConfiguration("namespace").perform(context),
        fixed_frame=LaunchConfiguration("fixed_frame").perform(context),
    )
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1")
    return [
        Node(
            package="rviz2",
            executable="rviz2",
            name="sr3d_rviz",
            arguments=["-d", str(config)],
            parameters=[{"use_sim_time": use_sim_time}],
            output="screen",
        )
    ]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "input_topic",
                default_value="/points",
                description="sensor_msgs/PointCloud2 topic to detect objects in",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "pointcloud_detector.yaml"),
                description="YAML file with the node parameters",
            ),
            DeclareLaunchArgument(
                "checkpoint",
                default_value="",
                description="model checkpoint (.pt); empty = the params_file value",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="",
                description="'auto', 'cpu', 'cuda' or 'cuda:N'; empty = the params_file value",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the detector node"
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="use the /clock topic "
                "(e.g. when replaying with `sr3d-bag play BAG --clock`)",
            ),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                description="start RViz with the sr3d_ros display configuration",
            ),
            DeclareLaunchArgument(
                "fixed_frame",
                default_value="map",
                description="RViz Fixed Frame; without TF it must be the cloud's header.frame_id",
            ),
            DeclareLaunchArgument(
                "qos_reliability",
                default_value="",
                description="input subscription reliability: 'reliable' (the node's default) or "
                "'best_effort'; empty = the params_file value",
            ),
            OpaqueFunction(function=_check_rviz),
            OpaqueFunction(function=_detector),
            OpaqueFunction(function=_rviz),
        ]
    )
