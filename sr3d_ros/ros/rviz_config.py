"""Per-launch RViz configuration: ``rviz/sr3d.rviz`` (point cloud) or ``rviz/sr3d_image.rviz``
(image) adapted to the launch arguments.

``launch/sr3d.launch.py rviz:=true`` writes the result of :func:`render_rviz_config` into a
temporary file and starts RViz with it, so the displayed topics follow the input topic and
``namespace`` and the Fixed Frame follows ``fixed_frame``. Pure Python + PyYAML (no ROS, no
launch): tested without launch / launch_ros installed.

A template has one input display, a PointCloud2 display (the cloud) or a Camera display (the
image, with the other displays, i.e. the boxes, rendered over it through its CameraInfo), and
one MarkerArray display (the detector's markers).

Topic names are resolved the way the node resolves them (``rcl`` rules, simplified): an absolute
name stays as it is, a relative one is put under the namespace; the node's own outputs live under
``/<namespace>/<node name>/``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CAMERA_DISPLAY",
    "CLOUD_DISPLAY",
    "MARKERS_DISPLAY",
    "markers_topic",
    "render_rviz_config",
    "resolve_topic",
    "rviz_settings",
    "write_rviz_config",
]

CLOUD_DISPLAY = "rviz_default_plugins/PointCloud2"
CAMERA_DISPLAY = "rviz_default_plugins/Camera"
#: input display class -> the key of its topic in :func:`rviz_settings`
_INPUT_KEYS = {CLOUD_DISPLAY: "cloud_topic", CAMERA_DISPLAY: "image_topic"}
MARKERS_DISPLAY = "rviz_default_plugins/MarkerArray"
NODE_NAME = "pointcloud_detector"


def _norm_ns(namespace: str) -> str:
    ns = "/".join(p for p in str(namespace or "").split("/") if p)
    return f"/{ns}" if ns else ""


def resolve_topic(topic: str, namespace: str = "") -> str:
    """Fully qualified name of ``topic`` for a node in ``namespace``.

    ``/points`` -> ``/points``; ``points`` in namespace ``front`` -> ``/front/points``.

    Raises:
        ValueError: empty topic, or a private (``~``) name (the launch file's input topic is
            remapped onto the node's private ``~/input/points``, so ``~`` cannot be meant).
    """
    topic = str(topic).strip()
    if not topic:
        raise ValueError("empty topic name")
    if topic.startswith("~"):
        raise ValueError(f"private topic name {topic!r} is not allowed here")
    if topic.startswith("/"):
        return "/" + "/".join(p for p in topic.split("/") if p)
    return f"{_norm_ns(namespace)}/" + "/".join(p for p in topic.split("/") if p)


def markers_topic(namespace: str = "", node_name: str = NODE_NAME) -> str:
    """The node's ``~/output/markers`` topic: ``/<namespace>/<node_name>/output/markers``."""
    return f"{_norm_ns(namespace)}/{node_name}/output/markers"


def _display(displays: list[dict[str, Any]], cls: str) -> dict[str, Any]:
    for d in displays:
        if isinstance(d, dict) and d.get("Class") == cls:
            return d
    raise ValueError(f"the RViz config has no {cls} display")


def _input_display(displays: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """(settings key, display) of the template's input display (cloud or camera)."""
    for d in displays:
        if isinstance(d, dict) and d.get("Class") in _INPUT_KEYS:
            return _INPUT_KEYS[d["Class"]], d
    raise ValueError(f"the RViz config has no {CLOUD_DISPLAY} or {CAMERA_DISPLAY} display")


def rviz_settings(config: dict[str, Any]) -> dict[str, str]:
    """``{"cloud_topic" or "image_topic", "markers_topic", "fixed_frame"}`` of a parsed RViz
    config (the input display's topic under the key of its kind)."""
    vm = config["Visualization Manager"]
    key, inp = _input_display(vm["Displays"])
    return {
        key: inp["Topic"]["Value"],
        "markers_topic": _display(vm["Displays"], MARKERS_DISPLAY)["Topic"]["Value"],
        "fixed_frame": vm["Global Options"]["Fixed Frame"],
    }


def render_rviz_config(
    template: str,
    input_topic: str = "/points",
    namespace: str = "",
    fixed_frame: str = "map",
    node_name: str = NODE_NAME,
) -> str:
    """``template`` with the input display on ``input_topic``, the marker display on the node's
    markers topic and the Fixed Frame ``fixed_frame``.

    Args:
        template: RViz config text (YAML) with a PointCloud2 or Camera display and a
            MarkerArray display.
        input_topic: the cloud (``input_topic``) or image (``image_topic``) topic of the launch
            file (resolved in ``namespace`` if relative).
        namespace: the launch file's ``namespace`` of the node.
        fixed_frame: RViz Fixed Frame. Without TF (bag replay, a single sensor) it must be the
            cloud's or image's ``header.frame_id``, or RViz shows nothing.
        node_name: the detector node (``pointcloud_detector`` or ``image_detector``).

    Returns:
        The new config text (YAML; the template's comments are not kept).

    Raises:
        ValueError: empty / private topic, empty frame, or a template without those displays.
    """
    fixed_frame = str(fixed_frame).strip().lstrip("/")
    if not fixed_frame:
        raise ValueError("empty fixed_frame")
    cfg = yaml.safe_load(template)
    vm = cfg["Visualization Manager"]
    _, inp = _input_display(vm["Displays"])
    inp.setdefault("Topic", {})["Value"] = resolve_topic(input_topic, namespace)
    _display(vm["Displays"], MARKERS_DISPLAY).setdefault("Topic", {})["Value"] = markers_topic(
        namespace, node_name
    )
    vm.setdefault("Global Options", {})["Fixed Frame"] = fixed_frame
    header = (
        "# Generated by sr3d_ros (launch/sr3d.launch.py) for "
        f"input_topic={input_topic!r} namespace={namespace!r} fixed_frame={fixed_frame!r} "
        f"node={node_name!r}\n"
    )
    return header + yaml.safe_dump(cfg, default_flow_style=False, sort_keys=False)


def write_rviz_config(
    template_path: str | Path,
    input_topic: str = "/points",
    namespace: str = "",
    fixed_frame: str = "map",
    out_dir: str | Path | None = None,
    node_name: str = NODE_NAME,
) -> Path:
    """:func:`render_rviz_config` of ``template_path`` written to a new temporary ``.rviz`` file
    (in ``out_dir``, default the system temporary folder). Returns its path."""
    text = render_rviz_config(
        Path(template_path).read_text(), input_topic, namespace, fixed_frame, node_name
    )
    fd, name = tempfile.mkstemp(
        prefix="sr3d_rviz_", suffix=".rviz", dir=None if out_dir is None else str(out_dir)
    )
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(name)
