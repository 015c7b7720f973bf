"""launch/sr3d.launch.py + rviz/sr3d.rviz + rviz/sr3d_image.rviz: the per-launch RViz config
follows the arguments, for both detectors (pointcloud, image).

launch / launch_ros are not installable from PyPI here, so the launch file is executed against
small stand-ins for them (enough for its OpaqueFunctions); the substitution itself is the pure
:mod:`sr3d_ros.ros.rviz_config`. Needs no rclpy.
"""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest
import yaml

from sr3d_ros.ros.rviz_config import (
    markers_topic,
    render_rviz_config,
    resolve_topic,
    rviz_settings,
    write_rviz_config,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "rviz" / "sr3d.rviz"
IMAGE_TEMPLATE = REPO / "rviz" / "sr3d_image.rviz"


def test_template_defaults():
    assert rviz_settings(yaml.safe_load(TEMPLATE.read_text())) == {
        "cloud_topic": "/points",
        "markers_topic": "/pointcloud_detector/output/markers",
        "fixed_frame": "map",
    }


def test_resolve_and_markers_topic():
    assert resolve_topic("/points") == "/points"
    assert resolve_topic("/camera//depth/points/", "front") == "/camera/depth/points"
    assert resolve_topic("points", "front") == "/front/points"
    assert resolve_topic("points", "/robot/front/") == "/robot/front/points"
    assert resolve_topic("points") == "/points"
    with pytest.raises(ValueError):
        resolve_topic("~/input/points", "front")
    with pytest.raises(ValueError):
        resolve_topic("  ")
    assert markers_topic() == "/pointcloud_detector/output/markers"
    assert markers_topic("front") == "/front/pointcloud_detector/output/markers"
    assert markers_topic("/robot/front/") == "/robot/front/pointcloud_detector/output/markers"


@pytest.mark.parametrize(
    "topic,ns,frame,cloud,markers",
    [
        ("/points", "", "map", "/points", "/pointcloud_detector/output/markers"),
        (
            "/camera/depth/points",
            "front",
            "camera_depth_optical_frame",
            "/camera/depth/points",
            "/front/pointcloud_detector/output/markers",
        ),
        (
            "points",
            "/robot",
            "/base_link",
            "/robot/points",
            "/robot/pointcloud_detector/output/markers",
        ),
    ],
)
def test_render_substitutes_topics_and_frame(topic, ns, frame, cloud, markers):
    text = render_rviz_config(TEMPLATE.read_text(), topic, ns, frame)
    cfg = yaml.safe_load(text)
    assert rviz_settings(cfg) == {
        "cloud_topic": cloud,
        "markers_topic": markers,
        "fixed_frame": frame.lstrip("/"),
    }
    # everything else is the template's
    ref = yaml.safe_load(TEMPLATE.read_text())
    for c in (cfg, ref):
        vm = c["Visualization Manager"]
        for d in vm["Displays"]:
            d.get("Topic", {}).pop("Value", None)
        vm["Global Options"].pop("Fixed Frame")
    assert cfg == ref


def test_render_errors():
    with pytest.raises(ValueError, match="fixed_frame"):
        render_rviz_config(TEMPLATE.read_text(), fixed_frame=" ")
    with pytest.raises(ValueError, match="MarkerArray"):
        render_rviz_config(
            "Visualization Manager:\n  Displays:\n"
            "    - Class: rviz_default_plugins/PointCloud2\n  Global Options: {}\n"
        )


def test_image_template_defaults_and_render():
    ref = yaml.safe_load(IMAGE_TEMPLATE.read_text())
    assert rviz_settings(ref) == {
        "image_topic": "/camera/image_raw",
        "markers_topic": "/image_detector/output/markers",
        "fixed_frame": "map",
    }
    cam = next(d for d in ref["Visualization Manager"]["Displays"] if "Camera" in d["Class"])
    assert cam["Image Rendering"] == "background and overlay"
    assert cam["Visibility"]["Detections"] is True  # the boxes are drawn over the image
    text = render_rviz_config(
        IMAGE_TEMPLATE.read_text(), "image_rect", "kitti", "velodyne", node_name="image_detector"
    )
    assert rviz_settings(yaml.safe_load(text)) == {
        "image_topic": "/kitti/image_rect",
        "markers_topic": "/kitti/image_detector/output/markers",
        "fixed_frame": "velodyne",
    }
    with pytest.raises(ValueError, match="PointCloud2 or .*Camera display"):
        render_rviz_config("Visualization Manager:\n  Displays: []\n  Global Options: {}\n")


def test_write_makes_a_new_file_each_time(tmp_path):
    a = write_rviz_config(TEMPLATE, "/a", "x", "cam", out_dir=tmp_path)
    b = write_rviz_config(TEMPLATE, "/b", "", "map", out_dir=tmp_path)
    assert a != b and a.parent == b.parent == tmp_path and a.suffix == ".rviz"
    assert rviz_settings(yaml.safe_load(a.read_text()))["cloud_topic"] == "/a"
    assert rviz_settings(yaml.safe_load(b.read_text()))["cloud_topic"] == "/b"


# ---------------------------------------------------------------------------------------------
# the launch file itself, against stand-ins for launch / launch_ros


class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def _fake_launch_modules(share: Path) -> dict[str, types.ModuleType]:
    mods = {}

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        mods[name] = m

    mod("launch", LaunchDescription=lambda actions: list(actions))
    mod(
        "launch.actions",
        DeclareLaunchArgument=type("DeclareLaunchArgument", (_Action,), {}),
        OpaqueFunction=type("OpaqueFunction", (_Action,), {}),
    )
    mod("launch.conditions", IfCondition=type("IfCondition", (_Action,), {}))
    mod("launch.substitutions", LaunchConfiguration=_LaunchConfiguration)
    mod("launch_ros")
    mod("launch_ros.actions", Node=type("Node", (_Action,), {}))
    mod("ament_index_python")
    mod("ament_index_python.packages", get_package_share_directory=lambda pkg: str(share))
    return mods


@pytest.fixture
def launch_file(monkeypatch, tmp_path):
    """(launch file globals, share dir, LaunchDescription list, default argument values)."""
    share = tmp_path / "share"
    (share / "rviz").mkdir(parents=True)
    for t in (TEMPLATE, IMAGE_TEMPLATE):
        (share / "rviz" / t.name).write_text(t.read_text())
    for name, m in _fake_launch_modules(share).items():
        monkeypatch.setitem(sys.modules, name, m)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    g = runpy.run_path(str(REPO / "launch" / "sr3d.launch.py"))
    desc = g["generate_launch_description"]()
    defaults = {
        a.args[0]: a.kwargs["default_value"]
        for a in desc
        if type(a).__name__ == "DeclareLaunchArgument"
    }
    return g, tmp_path, desc, defaults


def test_launch_declares_fixed_frame_and_rviz_follows_arguments(launch_file):
    g, tmp, desc, defaults = launch_file
    assert defaults["fixed_frame"] == "map" and defaults["rviz"] == "false"
    assert defaults["detector"] == "pointcloud"
    assert {
        "detector",
        "image_topic",
        "camera_info_topic",
        "input_topic",
        "params_file",
        "checkpoint",
        "device",
        "namespace",
        "use_sim_time",
        "rviz",
        "fixed_frame",
    } <= set(defaults)
    funcs = [a.kwargs["function"] for a in desc if type(a).__name__ == "OpaqueFunction"]
    assert g["_rviz"] in funcs and g["_detector"] in funcs

    ctx = dict(defaults)
    assert g["_rviz"](ctx) == []  # rviz:=false: nothing
    ctx.update(
        rviz="true",
        input_topic="/camera/depth/points",
        namespace="front",
        fixed_frame="camera_depth_optical_frame",
        use_sim_time="true",
    )
    (node,) = g["_rviz"](ctx)
    assert node.kwargs["executable"] == "rviz2"
    assert node.kwargs["parameters"] == [{"use_sim_time": True}]
    flag, path = node.kwargs["arguments"]
    assert flag == "-d" and Path(path).parent == tmp and Path(path).is_file()
    assert rviz_settings(yaml.safe_load(Path(path).read_text())) == {
        "cloud_topic": "/camera/depth/points",
        "markers_topic": "/front/pointcloud_detector/output/markers",
        "fixed_frame": "camera_depth_optical_frame",
    }

    # the node that the markers topic refers to: name pointcloud_detector in that namespace
    (det,) = g["_detector"](ctx)
    assert det.kwargs["name"] == det.kwargs["executable"] == "pointcloud_detector"
    assert det.kwargs["namespace"].perform(ctx) == "front"
    assert det.kwargs["remappings"] == [("~/input/points", "/camera/depth/points")]
    assert det.kwargs["parameters"][0] == str(tmp / "share/config/pointcloud_detector.yaml")


def test_launch_image_detector_and_its_rviz(launch_file):
    """detector:=image: the image_detector node with the image / camera_info remaps and its
    params file, and RViz with the Camera template on the image topic."""
    g, tmp, _, defaults = launch_file
    ctx = dict(
        defaults,
        detector="image",
        image_topic="/kitti/image_rect",
        camera_info_topic="/kitti/camera_info",
        namespace="cam",
        rviz="true",
        fixed_frame="velodyne",
        checkpoint="/models/mono.pt",
    )
    (det,) = g["_detector"](ctx)
    assert det.kwargs["name"] == det.kwargs["executable"] == "image_detector"
    assert det.kwargs["remappings"] == [
        ("~/input/image", "/kitti/image_rect"),
        ("~/input/image/compressed", "/kitti/image_rect/compressed"),
        ("~/input/camera_info", "/kitti/camera_info"),
    ]
    params_file, overrides = det.kwargs["parameters"]
    assert params_file == str(tmp / "share/config/image_detector.yaml")
    assert overrides["checkpoint"] == "/models/mono.pt" and overrides["use_sim_time"] is False
    (det,) = g["_detector"](dict(ctx, params_file="/my/params.yaml"))
    assert det.kwargs["parameters"][0] == "/my/params.yaml"
    (node,) = g["_rviz"](ctx)
    _, path = node.kwargs["arguments"]
    assert rviz_settings(yaml.safe_load(Path(path).read_text())) == {
        "image_topic": "/kitti/image_rect",
        "markers_topic": "/cam/image_detector/output/markers",
        "fixed_frame": "velodyne",
    }
    with pytest.raises(RuntimeError, match="detector:='lidar'"):
        g["_check_args"](dict(ctx, detector="lidar"))


def test_rviz_without_rviz2_fails_before_anything_starts(launch_file, monkeypatch, tmp_path):
    """Issue 13 #11: the check runs first (before the detector) and names the fix."""
    g, _, desc, defaults = launch_file
    funcs = [a.kwargs["function"] for a in desc if type(a).__name__ == "OpaqueFunction"]
    assert funcs[0] is g["_check_args"]
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ctx = dict(defaults, rviz="true")
    with pytest.raises(RuntimeError, match="rviz2 is not installed.*rviz:=false"):
        g["_check_args"](ctx)
    assert g["_check_args"](dict(defaults)) == []  # rviz:=false: no check
    fake = empty / "rviz2"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert g["_check_args"](ctx) == []


def test_launch_qos_argument(launch_file):
    g, _, _, defaults = launch_file
    assert defaults["qos_reliability"] == ""
    (det,) = g["_detector"](dict(defaults, qos_reliability="best_effort"))
    assert det.kwargs["parameters"][1]["qos_reliability"] == "best_effort"
    (det,) = g["_detector"](dict(defaults))
    assert "qos_reliability" not in det.kwargs["parameters"][1]
