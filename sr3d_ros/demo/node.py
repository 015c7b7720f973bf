"""Demo stage 2: the detector node (``pointcloud_detector`` for ScanNet, ``image_detector`` for
KITTI) as a separate process in a private namespace."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .prepare import REPO

__all__ = ["NodeProcess", "node_command", "start_node"]

logger = logging.getLogger(__name__)

#: The node's parameter file used by the demo (its defaults; the demo overrides a few).
PARAMS_FILE = REPO / "config" / "pointcloud_detector.yaml"
#: kind -> (module, node name, parameter file)
NODES = {
    "pointcloud": ("sr3d_ros.ros.pointcloud_node", "pointcloud_detector", PARAMS_FILE),
    "image": ("sr3d_ros.ros.image_node", "image_detector", REPO / "config/image_detector.yaml"),
}


def node_command(
    namespace: str,
    params: Mapping[str, str | float | int],
    remaps: Mapping[str, str] | None = None,
    params_file: Path | None = None,
    module: str = "sr3d_ros.ros.pointcloud_node",
) -> list[str]:
    """Command line that runs a detector node (``python -m <module>``, by default the point-cloud
    node; ``sr3d_ros.ros.image_node`` for the image node) in ``namespace`` with topic ``remaps``
    (``{from: to}``), an optional ``--params-file`` and the ``params`` overrides
    (``-p name:=value``), in that order."""
    cmd = [sys.executable, "-m", module, "--ros-args"]
    cmd += ["-r", f"__ns:={namespace}"]
    for src, dst in (remaps or {}).items():
        cmd += ["-r", f"{src}:={dst}"]
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    for name, value in params.items():
        cmd += ["-p", f"{name}:={value}"]
    return cmd


@dataclass
class NodeProcess:
    """A running detector node.

    Attributes:
        proc: the process (stdout and stderr go to ``log``).
        namespace: its private namespace (``/sr3d_demo_xxxxxx``); its input is
            ``<namespace>/points``.
        fqn: its fully-qualified name; its outputs are ``<fqn>/output/...``.
        log: the node's log file.
    """

    proc: subprocess.Popen[bytes]
    namespace: str
    fqn: str
    log: Path

    def output(self, name: str) -> str:
        """The node's output topic ``name`` (``detections``, ``markers``, ``label_info``)."""
        return f"{self.fqn}/output/{name}"

    def exit_code(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.proc.poll()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGINT (the node's clean shutdown), SIGKILL after ``timeout_s``; returns the exit
        status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_node(
    checkpoint: Path,
    device: str,
    score_threshold: float,
    num_threads: int,
    log: Path,
    kind: str = "pointcloud",
) -> NodeProcess:
    """Start the node of ``kind`` with its ``config/*.yaml`` and these overrides, reliable input
    QoS (the player is reliable; big clouds and images need it), unbuffered output into ``log``.

    ``"pointcloud"``: ``~/input/points`` is ``<namespace>/points``. ``"image"``:
    ``~/input/image`` and ``~/input/camera_info`` are ``<namespace>/image`` and
    ``<namespace>/camera_info``, and each image is paired with the CameraInfo of its own stamp
    (``camera_info_tolerance`` 1 ms: KITTI frames come from different drives, each with its own
    calibration).

    Raises:
        OSError: the process cannot be started or ``log`` not written.
        KeyError: an unknown ``kind``.
    """
    module, name, params_file = NODES[kind]
    namespace = f"/sr3d_demo_{uuid.uuid4().hex[:6]}"
    params: dict[str, str | float | int] = {
        "checkpoint": str(checkpoint),
        "device": device,
        "score_threshold": score_threshold,
        "qos_reliability": "reliable",
        "num_threads": num_threads,
    }
    if kind == "pointcloud":
        remaps = {"~/input/points": f"{namespace}/points"}
    else:
        remaps = {
            "~/input/image": f"{namespace}/image",
            "~/input/camera_info": f"{namespace}/camera_info",
        }
        params["camera_info_tolerance"] = 0.001
    cmd = node_command(namespace, params, remaps, params_file, module)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    node = NodeProcess(proc, namespace, f"{namespace}/{name}", log)
    logger.info("node pid %d: %s (log %s)", proc.pid, node.fqn, log)
    return node
