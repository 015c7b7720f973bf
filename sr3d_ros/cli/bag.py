"""``sr3d-bag``: build, inspect, play and record rosbag2 (MCAP) bags (see :mod:`sr3d_ros.ros.bag`).

    sr3d-bag build OUT [--dataset scannet|sunrgbd|kitti] [--ids ID ...] [--rate 0.5]
                       [--frame-id map] [--storage mcap|sqlite3]
    sr3d-bag info BAG
    sr3d-bag play BAG [--rate 1.0] [--loop] [--clock [--clock-hz 40]] [--topics T ...]
                      [--remap FROM:=TO] [--wait-subscribers 5]
    sr3d-bag record OUT TOPIC ... [--duration S] [--type TOPIC=pkg/msg/Type ...]

``play`` and ``record`` start an rclpy node; DDS discovery stays on this machine unless
``ROS_AUTOMATIC_DISCOVERY_RANGE`` is set explicitly (see :mod:`sr3d_ros.ros.env`). Both stop
cleanly on Ctrl-C / SIGTERM (``record`` finishes the bag first) and exit 0.

``play --clock`` also publishes ``rosgraph_msgs/Clock`` on ``/clock`` with the bag time, for
nodes started with ``use_sim_time:=true``
(e.g. ``ros2 launch sr3d_ros sr3d.launch.py use_sim_time:=true``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

_DEFAULT_IDS = {
    "scannet": ["scene0000_00", "scene0000_01", "scene0000_02"],
    "sunrgbd": ["000001", "000002", "000003", "000004"],
    "kitti": ["000000", "000003", "000004", "000005"],
}


def _default_data_root() -> Path:
    env = os.environ.get("SR3D_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _cmd_build(a: argparse.Namespace) -> int:
    from sr3d_ros.ros.bag import build_bag, build_kitti_bag, load_samples

    ids = a.ids or _DEFAULT_IDS[a.dataset]
    sub = Path(a.data_root) / a.dataset
    if not sub.is_dir():
        raise FileNotFoundError(
            f"sample data not found: {sub} does not exist. The default data root "
            "(../shared/data beside the source tree, or $SR3D_DATA) is not available in a "
            "colcon / pip install: pass --data-root /path/to/shared/data or set SR3D_DATA"
        )
    if a.dataset == "kitti":
        s = build_kitti_bag(a.out, sub / "training", ids, rate_hz=a.rate, storage=a.storage)
        frames = "camera_optical_frame, velodyne"
    else:
        samples = load_samples(a.dataset, a.data_root, ids)
        s = build_bag(a.out, samples, rate_hz=a.rate, frame_id=a.frame_id, storage=a.storage)
        frames = repr(a.frame_id)
    print(
        f"wrote {s.path} ({a.storage}): {s.frames} frames ({', '.join(s.sample_ids)}) at "
        f"{a.rate} Hz, frame_id {frames}"
    )
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    from sr3d_ros.ros.bag import bag_info

    info = bag_info(a.bag)
    print(json.dumps(info, indent=2))
    corrupt = info["chunks"]["corrupt"]
    if corrupt:
        print(f"sr3d-bag: error: {a.bag}: {len(corrupt)} damaged part(s):", file=sys.stderr)
        for line in corrupt:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _stop_on_signals(event: threading.Event) -> None:
    """Ctrl-C / SIGTERM set ``event`` (the command then stops cleanly) instead of raising."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: event.set())


def _cmd_play(a: argparse.Namespace) -> int:
    from sr3d_ros.ros.bag import BagPlayer

    remap = {}
    for spec in a.remap or []:
        src, sep, dst = spec.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"--remap wants FROM:=TO, got {spec!r}")
        remap[src] = dst
    stop = threading.Event()
    from sr3d_ros.ros.node_base import ros_session

    with ros_session("sr3d_bag_player") as node:
        _stop_on_signals(stop)  # stop between messages, then clean up
        player = BagPlayer(node, a.bag, topics=a.topics, remap=remap, clock=a.clock)
        if a.wait_subscribers > 0 and not player.wait_for_subscribers(a.wait_subscribers):
            node.get_logger().warning("not every topic has a subscriber; playing anyway")
        n = player.play(rate=a.rate, loop=a.loop, stop=stop, clock_hz=a.clock_hz)
        # deliver the last messages before the node goes (reliable: wait for the acks)
        if not player.wait_for_all_acked(5.0):
            node.get_logger().warning("not every subscriber acknowledged the last messages")
        time.sleep(0.05)
        clock = (  # the topic name is read while the node lives
            f" and {player.clock_published} clock messages on {player.clock_publisher.topic_name}"
            if a.clock
            else ""
        )
    print(f"published {n} messages from {a.bag}{clock}")
    return 0


def _cmd_record(a: argparse.Namespace) -> int:
    from sr3d_ros.ros.bag import BagRecorder

    types = {}
    for spec in a.type or []:
        topic, _, msgtype = spec.partition("=")
        if not msgtype:
            raise ValueError(f"--type wants TOPIC=pkg/msg/Type, got {spec!r}")
        types[topic] = msgtype
    done = threading.Event()
    counts: dict[str, int] = {}
    from sr3d_ros.ros.node_base import ros_session

    with ros_session("sr3d_bag_recorder") as node:
        _stop_on_signals(done)  # the bag is finished below either way
        rec = BagRecorder(node, a.out, a.topics, types=types)
        try:
            deadline = time.monotonic() + a.duration if a.duration else None
            while not done.is_set() and (deadline is None or time.monotonic() < deadline):
                done.wait(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            counts = rec.close()
    print(f"wrote {a.out}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``sr3d-bag`` argument parser."""
    p = argparse.ArgumentParser(prog="sr3d-bag", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser(
        "build",
        help="bag of real dataset scans (/points) + ground truth (/ground_truth); kitti: "
        "image, CameraInfo, velodyne, /tf_static, ground truth (sr3d_ros.ros.bag.kitti)",
    )
    b.add_argument("out", type=Path, help="bag folder to create")
    b.add_argument("--dataset", choices=sorted(_DEFAULT_IDS), default="scannet")
    b.add_argument(
        "--ids",
        nargs="+",
        help="scene / frame ids (default: "
        + "; ".join(f"{d}: {' '.join(ids)}" for d, ids in sorted(_DEFAULT_IDS.items()))
        + ")",
    )
    b.add_argument(
        "--data-root",
        type=Path,
        default=_default_data_root(),
        help="shared data root holding scannet/, sunrgbd/ and kitti/ (default: $SR3D_DATA, else "
        "../shared/data beside the source tree; an installed package (colcon, pip) has no "
        "such folder: pass --data-root or set SR3D_DATA)",
    )
    b.add_argument("--rate", type=float, default=0.5, help="frames per second of bag time")
    b.add_argument("--frame-id", default="map", help="header.frame_id of the messages (not kitti)")
    b.add_argument(
        "--storage",
        choices=("mcap", "sqlite3"),
        default="mcap",
        help="rosbag2 storage: mcap (.mcap, chunk CRCs) or sqlite3 (.db3)",
    )
    b.set_defaults(func=_cmd_build)

    i = sub.add_parser("info", help="topics, counts, duration")
    i.add_argument("bag", type=Path)
    i.set_defaults(func=_cmd_info)

    pl = sub.add_parser("play", help="publish a bag into the ROS graph")
    pl.add_argument("bag", type=Path)
    pl.add_argument("--rate", type=float, default=1.0, help="speed factor")
    pl.add_argument("--loop", action="store_true", help="replay until Ctrl-C")
    pl.add_argument(
        "--clock",
        action="store_true",
        help="publish rosgraph_msgs/Clock on /clock with the bag time (for nodes with "
        "use_sim_time); remap it with --remap /clock:=TOPIC",
    )
    pl.add_argument(
        "--clock-hz",
        type=float,
        default=40.0,
        metavar="HZ",
        help="with --clock: clock messages per second between bag messages "
        "(0 = only at each message; default 40)",
    )
    pl.add_argument("--topics", nargs="+", help="only these topics (bag names)")
    pl.add_argument(
        "--remap",
        action="append",
        metavar="FROM:=TO",
        help="publish bag topic FROM on topic TO (repeatable)",
    )
    pl.add_argument(
        "--wait-subscribers",
        type=float,
        default=5.0,
        metavar="S",
        help="wait up to S seconds for a subscriber on every topic (0 = no wait)",
    )
    pl.set_defaults(func=_cmd_play)

    r = sub.add_parser("record", help="record topics into an MCAP bag")
    r.add_argument("out", type=Path, help="bag folder to create")
    r.add_argument("topics", nargs="+", help="fully qualified topic names")
    r.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0 = Ctrl-C)")
    r.add_argument(
        "--type",
        action="append",
        metavar="TOPIC=pkg/msg/Type",
        help="type to record a topic as (default: what its publishers advertise)",
    )
    r.set_defaults(func=_cmd_record)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sr3d-bag``; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (OSError, ValueError) as exc:  # missing / existing / unreadable files, bad input
        print(f"sr3d-bag {args.cmd}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # rosbags errors (bag exists, unreadable bag)
        if type(exc).__module__.startswith("rosbags"):
            print(f"sr3d-bag {args.cmd}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
