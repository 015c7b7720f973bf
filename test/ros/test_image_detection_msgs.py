"""Monocular detections as messages: optical_frame_poses + detections_to_msg / markers on the real
KITTI labels of 000007 and 000036 (camera boxes -> body-frame boxes, as a monocular detector
returns them -> optical-frame poses).

Reference: camera.py's camera_box_corners (the KITTI convention, written once) and the label's
bottom-centre (x, y, z) + height h, whose geometric centre is (x, y - h / 2, z).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from sr3d_ros.detections import Detections  # noqa: E402
from sr3d_ros.frames import box_corners  # noqa: E402
from sr3d_ros.geometry.camera import camera_box_corners  # noqa: E402
from sr3d_ros.ros.messages import (  # noqa: E402
    detections_to_markers,
    detections_to_msg,
    optical_frame_poses,
)

CLASSES = ("Car", "Pedestrian", "Cyclist")


@pytest.fixture(scope="module", params=["000007", "000036"])
def labels(request, data_root):
    from sr3d_training.datasets.kitti import read_kitti_label

    objs = read_kitti_label(data_root / f"kitti/training/label_2/{request.param}.txt")
    objs = objs.subset(np.isin(objs.names, CLASSES))
    assert len(objs) >= 2
    return objs


def test_poses_match_the_camera_boxes(labels):
    cam = labels.camera_boxes()
    poses = optical_frame_poses(torch.from_numpy(labels.boxes()))
    x, y, z, l, h, w, _ = cam.T
    np.testing.assert_allclose(poses.centers, np.stack([x, y - h / 2, z], 1), atol=1e-9)
    np.testing.assert_allclose(poses.sizes, np.stack([l, w, h], 1), atol=1e-9)
    # the box z axis (height) points up = -y of the optical frame
    np.testing.assert_allclose(poses.rotations[:, :, 2], [[0.0, -1.0, 0.0]] * len(cam), atol=1e-9)
    assert not poses.upright
    ours = box_corners(poses)
    ref = camera_box_corners(torch.from_numpy(cam)).numpy()
    for a, b in zip(ours, ref):  # the same 8 corners (in whatever order)
        d = np.linalg.norm(a[:, None] - b[None], axis=-1)
        assert d.min(axis=1).max() < 1e-9 and d.min(axis=0).max() < 1e-9
    empty = optical_frame_poses(np.zeros((0, 7)))
    assert len(empty) == 0


def test_detection3d_array_and_markers_in_the_image_frame(labels):
    body = torch.from_numpy(labels.boxes()).float()
    n = len(body)
    det = Detections(
        body,
        torch.linspace(0.9, 0.5, n),
        torch.tensor([CLASSES.index(c) for c in labels.names]),
        CLASSES,
    )
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 7, 500
    poses = optical_frame_poses(det.boxes)
    msg = detections_to_msg(det, header, poses)
    assert msg.header == header and len(msg.detections) == n
    x, y, z, _, h, _, _ = labels.camera_boxes().T
    for d, cx, cy, cz, hh, name in zip(msg.detections, x, y, z, h, labels.names):
        p = d.bbox.center.position
        np.testing.assert_allclose([p.x, p.y, p.z], [cx, cy - hh / 2, cz], atol=1e-5)
        assert d.results[0].hypothesis.class_id == name and d.header == header
    mk = detections_to_markers(det, header, poses=poses, line_width=0.05, text_height=0.5)
    assert mk.markers[0].action == Marker.DELETEALL and len(mk.markers) == 2 * n + 1
    edges = np.array([[q.x, q.y, q.z] for q in mk.markers[1].points])
    corners = camera_box_corners(torch.from_numpy(labels.camera_boxes()[:1])).numpy()[0]
    assert np.linalg.norm(edges[:, None] - corners[None], axis=-1).min(axis=1).max() < 1e-5
    label = mk.markers[2]  # above the box: smaller optical y than the box top (y - h)
    assert label.type == Marker.TEXT_VIEW_FACING and label.pose.position.y < y[0] - h[0]
    assert mk.markers[1].scale.x == pytest.approx(0.05)
