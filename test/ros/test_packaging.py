"""package.xml / setup.py data files / interfaces/vision_msgs/COLCON_IGNORE (no ROS needed)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _ros_imports() -> set[str]:
    """Top-level ROS packages imported by sr3d_ros and the launch file."""
    mods: set[str] = set()
    for f in [*(REPO / "sr3d_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods.add(node.module.split(".")[0])
    return {
        m
        for m in mods
        if m.endswith(("_msgs", "_interfaces"))
        or m in {"rclpy", "launch", "launch_ros", "ament_index_python"}
    }


def test_package_xml_declares_every_ros_dependency():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "sr3d_ros"
    execs = {e.text for e in root.findall("exec_depend")}
    used = _ros_imports()
    assert {"rclpy", "vision_msgs", "sensor_msgs", "launch", "launch_ros", "rosgraph_msgs"} <= used
    assert used <= execs, sorted(used - execs)
    assert {"rviz2", "python3-numpy", "python3-yaml"} <= execs
    assert root.find("export/build_type").text == "ament_python"


def test_vision_msgs_interface_folder_is_colcon_ignored():
    folder = REPO / "interfaces" / "vision_msgs"
    assert (folder / "COLCON_IGNORE").is_file()
    assert "COLCON_IGNORE" in (folder / "README.md").read_text()
    # setup_env.sh builds it with cmake directly (build_interface.sh), which ignores colcon markers
    setup = (REPO / "scripts" / "setup_env.sh").read_text()
    assert "IFACES=(vision_msgs tf2_msgs)" in setup and "build_interface.sh" in setup
    assert 'cmake -S "$SRC"' in (REPO / "scripts" / "build_interface.sh").read_text()


def test_setup_py_installs_launch_rviz_and_config():
    text = (REPO / "setup.py").read_text()
    for folder, pattern in (
        ("launch", "launch/*.py"),
        ("rviz", "rviz/*.rviz"),
        ("config", "config/*.yaml"),
    ):
        assert f'"share/{{PACKAGE}}/{folder}"' in text.replace('f"', '"') and pattern in text, (
            folder
        )
