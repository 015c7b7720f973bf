"""Our tf2_msgs build (interfaces/tf2_msgs: TFMessage only) is wire-compatible with upstream.

Upstream tf2_msgs (ros2/geometry2) defines ``TFMessage`` as ``geometry_msgs/TransformStamped[]
transforms``. Its RIHS01 hash below is what real ROS 2 nodes advertise for ``/tf`` and
``/tf_static`` (``ros2 topic info -v /tf`` on Jazzy and later; TransformStamped and its parts are
unchanged since); rosbags' ROS 2 Kilted typestore, which bags written by ``rosbag2`` carry the
same definitions as, computes the same hash independently of rosidl.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_vision_msgs import installed_hashes

pytestmark = pytest.mark.ros

UPSTREAM_TFMESSAGE_RIHS01 = (
    "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
)
UPSTREAM_FIELDS = {"transforms": "sequence<geometry_msgs/TransformStamped>"}
IFACE = Path(__file__).resolve().parents[2] / "interfaces" / "tf2_msgs"


def test_package_holds_only_tfmessage():
    """TFMessage alone: no TF2Error, no services (FrameGraph), no actions (LookupTransform)."""
    assert sorted(p.relative_to(IFACE).as_posix() for p in IFACE.rglob("*.msg")) == [
        "msg/TFMessage.msg"
    ]
    assert not (IFACE / "srv").exists() and not (IFACE / "action").exists()
    # a colcon workspace with a system tf2_msgs never builds ours over it
    assert (IFACE / "COLCON_IGNORE").is_file()


def test_field_list_equals_upstream():
    from tf2_msgs.msg import TFMessage

    assert TFMessage.get_fields_and_field_types() == UPSTREAM_FIELDS


def test_type_hash_equals_upstream_and_rosbags():
    from rosbags.typesys import Stores, get_typestore

    assert installed_hashes("tf2_msgs") == {"TFMessage": UPSTREAM_TFMESSAGE_RIHS01}
    kilted = get_typestore(Stores.ROS2_KILTED)
    assert kilted.hash_rihs01("tf2_msgs/msg/TFMessage") == UPSTREAM_TFMESSAGE_RIHS01


def test_advertised_type_hash_equals_upstream(ros):
    """What the RMW advertises on the graph (what tf2 listeners and RViz match against)."""
    import rclpy
    from tf2_msgs.msg import TFMessage

    ctx, _ = ros
    node = rclpy.create_node(f"sr3d_tf_hash_{uuid.uuid4().hex[:8]}", context=ctx)
    try:
        topic = f"/sr3d_test_{uuid.uuid4().hex[:8]}/tf"
        node.create_publisher(TFMessage, topic, 1)
        (info,) = node.get_publishers_info_by_topic(topic)
        assert info.topic_type == "tf2_msgs/msg/TFMessage"
        assert str(info.topic_type_hash) == UPSTREAM_TFMESSAGE_RIHS01
    finally:
        node.destroy_node()
