"""The detector-node skeleton both nodes share (``pointcloud_detector``, ``image_detector``).

(~440 lines, about half docstrings: one job, the behaviour both nodes must share exactly.)

:class:`DetectorNode` is everything a detector node does except decoding its input:

* parameters declared from the node's table and validated (unknown keys in the params file are
  reported in one warning; invalid values are a start-up error listing each);
* the checkpoint loaded and its detector kind checked: a checkpoint of another kind is a
  start-up error (FATAL ``cannot start: ...``, exit status 1, see
  :func:`sr3d_ros.ros.node_base.run_node`);
* a one-slot mailbox drained by a worker thread: a message that arrives while another waits
  replaces it (counted in ``frames_dropped``), so frames never queue and latency never grows;
* outputs: ``~/output/detections`` (Detection3DArray, the input header copied),
  ``~/output/markers`` (DELETEALL + box edges + labels), ``~/output/label_info`` (LabelInfo,
  transient local, republished when ``score_threshold`` changes at run time) and one
  ``/diagnostics`` status per frame named ``"<node fqn>: detector"``;
* the bad-input policy: a warning throttled per distinct reason and an EMPTY Detection3DArray
  with the input header (markers cleared); the node keeps running;
* a clean shutdown: ``destroy_node`` stops the worker, abandoning a frame still running after
  0.5 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from sr3d_ros.ros.node_base import (
    LATCHED_QOS,
    ReasonThrottle,
    declare_parameters,
    raw_parameters,
    run_node,
    unknown_overrides,
)
from sr3d_ros.ros.params import CommonParams, ParamSpec

if TYPE_CHECKING:
    from sr3d_ros.detections import Detections
    from sr3d_ros.frames import BoxPoses

__all__ = [
    "SHUTDOWN_DEADLINE_S",
    "WARN_THROTTLE_S",
    "BadInput",
    "DetectorNode",
    "run_detector_node",
]


class BadInput(ValueError):
    """The input cannot be used (the message says why; ``values`` are extra diagnostics
    key-values, e.g. ``points_in``)."""

    def __init__(self, message: str, **values: Any) -> None:
        super().__init__(message)
        self.values = values


#: Seconds between two log lines of the same warning reason.
WARN_THROTTLE_S = 5.0
#: Seconds destroy_node waits for a frame in progress before abandoning it.
SHUTDOWN_DEADLINE_S = 0.5


class DetectorNode(Node):
    """The detector-node skeleton both nodes share (see the module docstring).

    A subclass sets the class attributes and implements :meth:`_validate`,
    :meth:`_apply_inference_params`, :meth:`_create_inputs` and :meth:`_process`; its input
    callbacks hand messages to :meth:`_on_input`, and :meth:`_process` ends every frame with
    :meth:`_publish_result` or :meth:`_bad_input` / :meth:`_publish_failure`.

    Args:
        node_name: ROS node name.
        detector: an already built detector (tests); default: load ``checkpoint``.
        **node_kwargs: passed to ``rclpy.node.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ``cli_args``, ...).

    Raises:
        sr3d_ros.ros.params.ParamError: invalid parameters (all problems listed).
        FileNotFoundError / sr3d_ros.checkpoints.CheckpointError: unusable checkpoint or one of
            another detector kind.
        ValueError: unusable device.
    """

    #: The node's default name (also the console script's).
    NODE_NAME: ClassVar[str] = ""
    #: The node's parameter table.
    SPECS: ClassVar[tuple[ParamSpec, ...]] = ()
    #: The documented params file (named in the unknown-parameter warning).
    PARAMS_FILE: ClassVar[str] = ""
    #: The checkpoint ``kind`` this node runs, and where the other kinds go.
    KIND: ClassVar[str] = ""
    OTHER_KINDS_HINT: ClassVar[str] = ""
    #: What the input is called in warnings ("input cloud", "image").
    INPUT_NAME: ClassVar[str] = "input"
    #: Counters beyond received / processed / dropped / bad_input / errors.
    COUNTERS: ClassVar[tuple[str, ...]] = ()
    #: Box edge width and label height of the markers, metres.
    MARKER_LINE_WIDTH: ClassVar[float] = 0.02
    MARKER_TEXT_HEIGHT: ClassVar[float] = 0.12

    params: CommonParams

    def __init__(self, node_name: str, *, detector: Any = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._setup(detector)
        except BaseException:
            super().destroy_node()  # release the half-built node before the error propagates
            raise

    # ------------------------------------------------------------------------ subclass hooks

    def _validate(self, raw: Mapping[str, Any], class_names: Sequence[str] | None) -> Any:
        """Raw parameter values -> the node's params dataclass (raises ParamError)."""
        raise NotImplementedError

    def _default_checkpoint(self) -> Path:
        """The embedded default model of this node's kind."""
        raise NotImplementedError

    def _apply_inference_params(self, p: Any) -> None:
        """Push the (dynamic) parameters into the detector."""
        raise NotImplementedError

    def _create_inputs(self) -> str:
        """Create the input subscriptions; returns their description for the start-up log."""
        raise NotImplementedError

    def _process(self, msg: Any, t_in: float) -> None:
        """Run one frame (called by the worker thread)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- set-up

    def _setup(self, detector: Any) -> None:
        declare_parameters(self, self.SPECS)
        unknown = unknown_overrides(self, self.SPECS)
        if unknown:
            self.get_logger().warning(
                f"unknown parameter(s) {unknown} in the params file / overrides are ignored "
                f"(misspelled?); see {self.PARAMS_FILE} for the known ones"
            )
        raw = self._raw_params()
        # structure first, classes once the model is loaded
        self.params = self._validate(raw, None)
        self.detector = detector if detector is not None else self._load_detector(self.params)
        self.class_names: tuple[str, ...] = tuple(self.detector.class_names)
        self._base_inference = self.detector.config.inference
        self.params = self._validate(raw, self.class_names)
        self._apply_inference_params(self.params)
        # "<node>: <component>" (diagnostic_aggregator convention); the namespace keeps two
        # detector nodes apart on the shared /diagnostics topic
        self._diag_name = f"{self.get_fully_qualified_name().lstrip('/')}: detector"

        # mailbox + worker
        self._cv = threading.Condition()
        self._pending: Any = None  # the newest input message not yet taken by the worker
        self._pending_t = 0.0
        self._stop = False
        self._destroyed = False
        self.worker_abandoned = False
        self._stats = dict.fromkeys(
            ("received", "processed", "dropped", "bad_input", "errors", *self.COUNTERS), 0
        )
        self._throttle = ReasonThrottle(WARN_THROTTLE_S)

        self.pub_detections = self.create_publisher(Detection3DArray, "~/output/detections", 5)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 1)
        self.pub_label_info = self.create_publisher(LabelInfo, "~/output/label_info", LATCHED_QOS)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._publish_label_info()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker = threading.Thread(
            target=self._work, name=f"{self.get_name()}_worker", daemon=True
        )
        self._worker.start()
        inputs = self._create_inputs()
        dev = getattr(self.detector, "device", "?")
        self.get_logger().info(
            f"ready: {len(self.class_names)} classes on {dev}, input {inputs} "
            f"({self.params.qos_reliability}), output {self.pub_detections.topic_name}"
        )

    def _load_detector(self, p: CommonParams) -> Any:
        """The detector of ``p.checkpoint`` (or the default model), of this node's kind."""
        from sr3d_ros.checkpoints import CheckpointError, load_checkpoint, resolve_checkpoint
        from sr3d_ros.inference import load_detector

        path = resolve_checkpoint(p.checkpoint) if p.checkpoint else self._default_checkpoint()
        if not p.checkpoint and not path.is_file():
            raise FileNotFoundError(
                f"the embedded default model {path} is not installed; "
                "set the 'checkpoint' parameter to a model file"
            )
        if p.num_threads > 0:
            import torch

            torch.set_num_threads(p.num_threads)
        t0 = time.perf_counter()
        kind = load_checkpoint(path, map_location="cpu").get("kind", "pointcloud")
        if kind != self.KIND:
            raise CheckpointError(
                f"{path}: a {kind!r} checkpoint, but {self.get_name()} runs {self.KIND!r} "
                f"detectors ({self.OTHER_KINDS_HINT})"
            )
        det = load_detector(path, device=p.device)
        self.get_logger().info(f"loaded {path} in {time.perf_counter() - t0:.2f} s")
        return det

    # ------------------------------------------------------------------------------ params

    def _raw_params(self, changes: Sequence[Parameter[Any]] = ()) -> dict[str, Any]:
        return raw_parameters(self, self.SPECS, changes)

    def _on_set_parameters(self, changes: list[Parameter[Any]]) -> SetParametersResult:
        from sr3d_ros.ros.params import ParamError

        try:
            new = self._validate(self._raw_params(changes), self.class_names)
        except ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old, self.params = self.params, new
        self._apply_inference_params(new)
        if new.score_threshold != old.score_threshold:
            self._publish_label_info()  # LabelInfo.threshold must not go stale
        self.get_logger().info("parameters updated: " + ", ".join(p.name for p in changes))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------- mailbox, worker

    def _on_input(self, msg: Any) -> None:
        """Subscription callback: put the message in the one-slot mailbox (never blocks)."""
        with self._cv:
            self._stats["received"] += 1
            if self._pending is not None:
                self._stats["dropped"] += 1
            self._pending = msg
            self._pending_t = time.perf_counter()
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                msg, t_in = self._pending, self._pending_t
                self._pending = None
            try:
                self._process(msg, t_in)
            except Exception as exc:
                if self._stop or not self.context.ok():
                    return
                self._count("errors")
                self.get_logger().error(
                    f"frame failed: {type(exc).__name__}: {exc}",
                    throttle_duration_sec=WARN_THROTTLE_S,
                )

    def _count(self, counter: str) -> None:
        with self._cv:
            self._stats[counter] += 1

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start: ``received``, ``processed`` (results published), ``dropped``
        (replaced in the mailbox), ``bad_input``, ``errors`` and the node's own ones."""
        with self._cv:
            return dict(self._stats)

    # ----------------------------------------------------------------------------- results

    def _keep_classes(self, det: Detections) -> Detections:
        """``det`` without the classes outside ``classes_to_keep`` (all when it is empty)."""
        if not self.params.classes_to_keep or not len(det):
            return det
        import torch

        keep_ids = sorted({self.class_names.index(c) for c in self.params.classes_to_keep})
        keep = torch.isin(det.labels, torch.tensor(keep_ids, device=det.labels.device))
        return det.filter(keep)  # on the detector's device

    def _publish_detections(
        self, det: Detections, header: Any, poses: BoxPoses | None = None
    ) -> None:
        """The frame's Detection3DArray and (when enabled) markers, with ``header``."""
        from sr3d_ros.ros.messages import detections_to_markers, detections_to_msg

        self.pub_detections.publish(detections_to_msg(det, header, poses))
        if self.params.publish_markers:
            self.pub_markers.publish(
                detections_to_markers(
                    det,
                    header,
                    lifetime=self.params.marker_lifetime,
                    poses=poses,
                    line_width=self.MARKER_LINE_WIDTH,
                    text_height=self.MARKER_TEXT_HEIGHT,
                )
            )

    def _publish_result(
        self,
        det: Detections,
        header: Any,
        timings: dict[str, float],
        t_in: float,
        warnings: Sequence[str] = (),
        values: Mapping[str, Any] | None = None,
        poses: BoxPoses | None = None,
    ) -> None:
        """Publish a processed frame: detections, markers, then its diagnostics (OK, or WARN
        with the throttled ``warnings``). ``timings`` gains ``publish`` and ``total``."""
        t0 = time.perf_counter()
        self._publish_detections(det, header, poses)
        t1 = time.perf_counter()
        timings["publish"] = (t1 - t0) * 1e3
        timings["total"] = (t1 - t_in) * 1e3
        self._count("processed")
        for w in warnings:
            if self._throttle.allow(w):
                self.get_logger().warning(w)
        level = "WARN" if warnings else "OK"
        message = "; ".join(warnings) if warnings else f"{len(det)} detections"
        self._publish_diagnostics(level, message, header, timings, len(det), values)

    def _bad_input(
        self,
        reason: str,
        header: Any,
        timings: dict[str, float],
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Log (once per distinct reason per period) and publish an empty result."""
        if self._throttle.allow(reason):
            self.get_logger().warning(f"bad {self.INPUT_NAME} ({reason}); publishing no detections")
        self._publish_failure("bad_input", "WARN", f"bad input: {reason}", header, timings, values)

    def _publish_failure(
        self,
        counter: str,
        level: str,
        message: str,
        header: Any,
        timings: dict[str, float],
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """A frame without a result: count it, publish no detections (and clear the markers)
        with the input header, then its diagnostics."""
        from sr3d_ros.detections import Detections

        self._count(counter)
        self._publish_detections(Detections.empty(self.class_names), header)
        self._count("processed")
        self._publish_diagnostics(level, message, header, timings, 0, values)

    def _diagnostic_values(self) -> dict[str, Any]:
        """Key-values every diagnostics message of this node carries (after the frame's)."""
        s = self.stats
        drop_rate = s["dropped"] / s["received"] if s["received"] else 0.0
        return {
            "frames_dropped_rate": f"{drop_rate:.3f}",
            "frames_received": s["received"],
            "frames_processed": s["processed"],
            "bad_input_frames": s["bad_input"],
        }

    def _publish_diagnostics(
        self,
        level: str,
        message: str,
        header: Any,
        timings: dict[str, float],
        detections_out: int,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """One DiagnosticArray for a frame: ``values`` (``points_in`` is put first when given),
        the input's stamp and frame, then :meth:`_diagnostic_values`."""
        from sr3d_ros.ros.status_messages import diagnostics_msg

        extra = dict(values or {})
        points_in = extra.pop("points_in", None)
        stamp = {
            "input_stamp": f"{header.stamp.sec}.{header.stamp.nanosec:09d}",
            "input_frame_id": header.frame_id,
        }
        self.pub_diagnostics.publish(
            diagnostics_msg(
                self.get_clock().now().to_msg(),
                self._diag_name,
                str(getattr(self.detector, "device", "")),
                level,
                message,
                timings,
                points_in,
                detections_out,
                self.stats["dropped"],
                extra={**stamp, **extra, **self._diagnostic_values()},
            )
        )

    def _publish_label_info(self) -> None:
        from sr3d_ros.ros.status_messages import label_info_msg

        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        self.pub_label_info.publish(
            label_info_msg(self.class_names, header, self.params.score_threshold)
        )

    # ---------------------------------------------------------------------------- shutdown

    def destroy_node(self) -> None:
        """Stop the worker, then destroy the node; idempotent (a second call does nothing).

        The frame in progress gets ``SHUTDOWN_DEADLINE_S`` (0.5 s) to finish; after that it is
        abandoned (``worker_abandoned`` is set; the worker is a daemon thread and publishes
        nothing more)."""
        if getattr(self, "_destroyed", False):
            return
        self._destroyed = True
        cv, worker = getattr(self, "_cv", None), getattr(self, "_worker", None)
        if cv is not None:
            with cv:
                self._stop = True
                cv.notify_all()
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
            worker.join(timeout=SHUTDOWN_DEADLINE_S)
            self.worker_abandoned = worker.is_alive()
        super().destroy_node()


def run_detector_node(node_cls: type[DetectorNode], args: Sequence[str] | None = None) -> int:
    """The console script of a detector node: run it until Ctrl-C / SIGTERM / shutdown.

    Signal-safe (see :func:`sr3d_ros.ros.node_base.run_node`): the first SIGINT / SIGTERM stops
    it within ~1 s even mid-inference, later ones are ignored, no traceback.

    Args:
        node_cls: the node class (built with its default name).
        args: command line (default ``sys.argv``), including ``--ros-args ...``.

    Returns:
        0 after Ctrl-C, SIGTERM or an external shutdown; 1 when the node cannot start (invalid
        parameters, missing / invalid checkpoint or one of another detector kind, unusable
        device), with one FATAL line saying why.
    """
    from sr3d_ros.checkpoints import CheckpointError
    from sr3d_ros.ros.params import ParamError

    return run_node(
        node_cls,
        node_cls.NODE_NAME,
        args,
        (ParamError, FileNotFoundError, CheckpointError, ValueError),
    )
