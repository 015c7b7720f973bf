"""Launch an sr3d_ros detector node, point-cloud or monocular (and optionally RViz).

    ros2 launch sr3d_ros sr3d.launch.py input_topic:=/camera/depth/points
    ros2 launch sr3d_ros sr3d.launch.py checkpoint:=/models/tr3d.pt device:=cuda rviz:=true
    ros2 launch sr3d_ros sr3d.launch.py params_file:=/path/to/my_params.yaml namespace:=front
    ros2 launch sr3d_ros sr3d.launch.py detector:=image image_topic:=/cam/image_rect \
        camera_info_topic:=/cam/camera_info rviz:=true fixed_frame:=cam_optical_frame

Arguments:
    detector      'pointcloud' (default: the pointcloud_detector node, PointCloud2 in) or
                  'image' (the image_detector node, Image + CameraInfo in).
    input_topic   pointcloud: PointCloud2 topic to detect in (remapped onto ~/input/points).
    image_topic   image: sensor_msgs/Image topic (remapped onto ~/input/image; with the
                  parameter image_transport: compressed, <image_topic>/compressed is used).
    camera_info_topic  image: sensor_msgs/CameraInfo topic (remapped onto ~/input/camera_info).
    params_file   node parameter YAML; '' (default) = the installed
                  config/pointcloud_detector.yaml or config/image_detector.yaml.
    checkpoint    model file; '' = the value in params_file ('' there = embedded default model).
    device        'auto' | 'cpu' | 'cuda' | 'cuda:N'; '' = the value in params_file.
    namespace     namespace of the node (its topics become /<namespace>/<node name>/...).
    use_sim_time  use /clock (bag replay: `sr3d-bag play BAG --clock`).
    qos_reliability  'reliable' (default, keep last 1) | 'best_effort'; '' = params_file value.
    rviz          start RViz with rviz/sr3d.rviz (pointcloud) or rviz/sr3d_image.rviz (image),
                  adapted to this launch (see below). When rviz2 is not installed the launch
                  fails at once with a clear message and starts nothing.
    fixed_frame   RViz Fixed Frame (default map, the frame_id of `sr3d-bag build` ScanNet bags).
                  Without TF (bag replay, a lone sensor) set it to the cloud's or image's
                  header.frame_id, or RViz shows nothing.

RViz: the launch writes a per-launch copy of the template into a temporary file
(sr3d_ros.ros.rviz_config) with the input display (the cloud, or the Camera display showing the
image with the boxes drawn over it) on the input topic (resolved in namespace when relative),
the marker display on /<namespace>/<node name>/output/markers and the Fixed Frame fixed_frame.
RViz's Camera display reads the CameraInfo from the image topic's sibling `camera_info`
(/cam/image_rect -> /cam/camera_info).

Outputs: ~/output/detections (vision_msgs/Detection3DArray), ~/output/markers, ~/output/label_info,
/diagnostics (the image node also ~/output/image_overlay when publish_overlay is set). DDS
discovery: the node keeps ROS_AUTOMATIC_DISCOVERY_RANGE as the environment sets it and defaults
to LOCALHOST when it is unset; export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET to reach sensors on
other computers.
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
#: detector argument -> (executable = node name, params file, RViz template)
DETECTORS = {
    "pointcloud": ("pointcloud_detector", "pointcloud_detector.yaml", "sr3d.rviz"),
    "image": ("image_detector", "image_detector.yaml", "sr3d_image.rviz"),
}


def _kind(context):
    """The detector argument, checked."""
    kind = LaunchConfiguration("detector").perform(context).strip().lower()
    if kind not in DETECTORS:
        raise RuntimeError(f"detector:={kind!r}: use 'pointcloud' or 'image'")
    return kind


def _input_topic(context, kind):
    """The topic the node reads (and RViz shows)."""
    return LaunchConfiguration("input_topic" if kind == "pointcloud" else "image_topic").perform(
        context
    )


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


def _check_args(context, *args, **kwargs):
    """A bad detector argument, or rviz:=true without rviz2 installed: fail before anything is
    started."""
    _kind(context)
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
    kind = _kind(context)
    executable, params_name, _ = DETECTORS[kind]
    params_file = LaunchConfiguration("params_file").perform(context) or os.path.join(
        get_package_share_directory(PACKAGE), "config", params_name
    )
    if kind == "pointcloud":
        remappings = [("~/input/points", LaunchConfiguration("input_topic").perform(context))]
    else:
        image = LaunchConfiguration("image_topic").perform(context)
        remappings = [
            ("~/input/image", image),
            ("~/input/image/compressed", image.rstrip("/") + "/compressed"),
            ("~/input/camera_info", LaunchConfiguration("camera_info_topic").perform(context)),
        ]
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
            executable=executable,
            name=executable,
            namespace=LaunchConfiguration("namespace"),
            parameters=[params_file, overrides],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        )
    ]


def _rviz(context, *args, **kwargs):
    """RViz with a per-launch copy of the detector's template (topics + Fixed Frame from the
    arguments)."""
    if LaunchConfiguration("rviz").perform(context).lower() not in ("true", "1"):
        return []
    kind = _kind(context)
    node_name, _, template_name = DETECTORS[kind]
    template = os.path.join(get_package_share_directory(PACKAGE), "rviz", template_name)
    config = write_rviz_config(
        template,
        input_topic=_input_topic(context, kind),
        namespace=LaunchConfiguration("namespace").perform(context),
        fixed_frame=LaunchConfiguration("fixed_frame").perform(context),
        node_name=node_name,
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
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "detector",
                default_value="pointcloud",
                description="'pointcloud' (PointCloud2 in) or 'image' (Image + CameraInfo in)",
            ),
            DeclareLaunchArgument(
                "input_topic",
                default_value="/points",
                description="detector:=pointcloud: sensor_msgs/PointCloud2 topic to detect in",
            ),
            DeclareLaunchArgument(
                "image_topic",
                default_value="/camera/image_raw",
                description="detector:=image: sensor_msgs/Image topic to detect in",
            ),
            DeclareLaunchArgument(
                "camera_info_topic",
                default_value="/camera/camera_info",
                description="detector:=image: sensor_msgs/CameraInfo topic of the images",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value="",
                description="YAML file with the node parameters; empty = the installed "
                "config/<node name>.yaml of the detector",
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
                description="RViz Fixed Frame; without TF it must be the cloud's or image's "
                "header.frame_id",
            ),
            DeclareLaunchArgument(
                "qos_reliability",
                default_value="",
                description="input subscription reliability: 'reliable' (the node's default) or "
                "'best_effort'; empty = the params_file value",
            ),
            OpaqueFunction(function=_check_args),
            OpaqueFunction(function=_detector),
            OpaqueFunction(function=_rviz),
        ]
    )
