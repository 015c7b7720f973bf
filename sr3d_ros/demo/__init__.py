"""End-to-end demo: the ROS 2 detector nodes on real data replayed from rosbag2 bags: the
point-cloud node on ScanNet scans (this docstring), then the image node on KITTI frames
(:mod:`.kitti`: same steps with images + CameraInfo, KITTI AP|R40 on the held-out frames
000007, 000036, 000217, one PNG per frame).

    python -m sr3d_ros.demo                      # what `make demo` runs (embedded default models)
    python -m sr3d_ros.demo --checkpoint my.pt --mono-checkpoint mono.pt   # any checkpoints
    python -m sr3d_ros.demo --random-init        # pipeline check with untrained tiny models
    python -m sr3d_ros.demo --parts scannet      # one part only (scannet, kitti)

Steps of the ScanNet part:

1. Build an MCAP bag (``demo_output/input_bag``) from the real ScanNet scans scene0000_00/01/02 in
   ``../shared/data`` (relative to the repository root; ``--data-root`` or ``$SR3D_DATA`` to
   change): ``/points`` (PointCloud2 xyz + rgb) and ``/ground_truth`` (Detection3DArray), one scan
   every ``1 / --rate`` seconds of bag time.
2. Start the ``pointcloud_detector`` node as a separate process (``python -m
   sr3d_ros.ros.pointcloud_node`` with ``config/pointcloud_detector.yaml``) in a private
   namespace, reliable input QoS.
3. Play the bag into the node and record everything (input, ground truth, the node's detections,
   markers, label info, its diagnostics) into ``demo_output/output_bag``.
4. Print a per-frame table (frame, scene, points, detections, end-to-end latency, node time) and
   mAP@0.25 / mAP@0.5 (ScanNet protocol, :func:`sr3d_training.evaluation.evaluate_indoor`)
   computed from the RECORDED detections against the bag's ground truth, and write one PNG per
   scan (detections vs ground truth, :func:`sr3d_ros.io.render.render_detections`) plus
   ``results.json`` into ``demo_output/``.

Playback is lock-step: a scan is published only after the node's result for the previous scan
has come back, and never earlier than the bag timing at ``--rate`` (default 0.5 Hz). The node
never queues frames (a frame arriving while it infers replaces the waiting one), and CPU
inference of a ScanNet scan takes ~1-3 s, so a free-running player would see frames dropped by
design; lock-step makes every scan count in the evaluation whatever the machine's speed.

Exit status (the CLIs' convention): 0 when the node answered every frame of every part; 1 when
it published nothing or missed a frame, exited with an error, or the data or the model of a part
is missing (with the reason, in one line; the other part still runs); 2 for bad command-line
options. A scan
whose input cloud or ground truth is missing from the recorded bag (the recorder lost the
message) is left out of the mAP and the pictures, with a WARNING line under the table; that alone
does not change the exit status, unless no scan is left to evaluate (1).

Environment: DDS discovery is forced to LOCALHOST and ROS logs go to a new temporary folder on
every run (:func:`sr3d_ros.ros.env.ensure_safe_ros_env`); nothing leaves the machine.

Stages, one module each: :mod:`.prepare` (data, model, input bag), :mod:`.node` (the node
process, either kind), :mod:`sr3d_ros.ros.replay` (lock-step play and recording with rclpy; its
data types in :mod:`.replay`), :mod:`.evaluation` (the recorded bag read back, mAP),
:mod:`.report` (table, pictures, ``results.json``); the KITTI part is :mod:`.kitti` with
:mod:`.kitti_eval` (AP); :mod:`.cli` runs the parts in order. The demo is a ROS program: rclpy is
imported by :mod:`sr3d_ros.ros.replay` only, when it runs.
"""

from .cli import build_parser, main

__all__ = ["build_parser", "main"]
