"""Training loop, kind-agnostic: AdamW + warm-up/step schedule, AMP on CUDA, DDP through
torchrun, atomic checkpoints every epoch and on Ctrl-C, exact resume, non-finite-loss guard,
TensorBoard, a progress bar (or, without one, a log line every ``log_every`` steps).

What is trained, on which data, with which loss and evaluation, comes from a
:class:`~sr3d_training.tasks.TrainTask` (the point-cloud detector, the monocular detector, or a
distillation mode wrapping one of them)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from sr3d_ros.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from sr3d_ros.config import ConfigError, from_dict, to_dict
from sr3d_ros.inference import resolve_device

from .batching import build_datasets, collate_samples
from .config import BaseTrainConfig
from .runtime import git_revision, init_distributed, rng_state, seed_everything, set_rng_state
from .tasks import TaskLoss, TrainTask, build_task

__all__ = ["NonFiniteLossError", "Trainer", "build_datasets", "collate_samples", "seed_everything"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite losses (the configured ``max_nonfinite_steps``)."""


class Trainer:
    """Trains the detector of a :class:`~sr3d_training.tasks.TrainTask` with the run settings
    of its training config.

    Args:
        cfg: the training configuration (:class:`~sr3d_training.config.TrainConfig` or another
            kind's config).
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"`` (under torchrun: ``cuda:LOCAL_RANK``).
        resume: continue from ``output_dir/last.pt`` (model, optimizer, schedule position,
            step, epoch, RNG states).
        progress: show a tqdm progress bar (rank 0 only); without one, rank 0 logs a line every
            ``log_every`` steps (``logging`` INFO).
        extra_provenance: recorded in every checkpoint (e.g. the command line).
        task: the task to train; default :func:`~sr3d_training.tasks.build_task` of ``cfg``,
            built after the generators are seeded. A task passed in was built before seeding.

    Attributes:
        task, model (``task.model``), train_module (``task.train_module``), use_amp, optimizer
        (AdamW over ``train_module``'s parameters), step, epoch, history.
    """

    def __init__(
        self,
        cfg: BaseTrainConfig,
        device: str = "auto",
        resume: bool = False,
        progress: bool = True,
        extra_provenance: dict[str, Any] | None = None,
        task: TrainTask | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(device)
        self.dist = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        seed_everything(cfg.seed + self.dist.rank)
        self.out_dir = Path(cfg.output_dir)
        self.progress = progress and self.dist.is_main
        self.task = task if task is not None else build_task(cfg, self.device)
        self.model = self.task.model
        self.train_module = self.task.train_module
        if getattr(self.train_module, "model", None) is not self.model:
            raise TypeError("the task's train_module must hold its model as .model")
        self.optimizer = torch.optim.AdamW(
            self.train_module.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        self.use_amp = self.task.use_amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.train_set, self.val_set = self.task.train_set, self.task.val_set
        self.sampler: DistributedSampler[Any] | None = (
            DistributedSampler(
                self.train_set,
                num_replicas=self.dist.world_size,
                rank=self.dist.rank,
                shuffle=True,
                seed=cfg.seed,
            )
            if self.dist.enabled
            else None
        )
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # batches of the current epoch already consumed (mid-epoch resume)
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0
        self.history: list[dict[str, float]] = []
        self.provenance = {
            "command": extra_provenance or {},
            "git": git_revision(),
            "config": to_dict(cfg),
        }
        self.ddp_module: torch.nn.Module = self.train_module
        if self.dist.enabled:
            self.ddp_module = torch.nn.parallel.DistributedDataParallel(
                self.train_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        if resume:
            self._resume()
        self._writer = self._make_writer()
        self._stop_requested = False

    # ------------------------------------------------------------------ setup helpers
    def _make_writer(self) -> Any:  # a SummaryWriter, or None (tensorboard is optional)
        if not self.dist.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: scalars go to history.json only
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _loader(self) -> DataLoader[Any]:
        generator = torch.Generator().manual_seed(self.cfg.seed + 1000 * self.epoch)
        self.task.set_epoch(self.epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            num_workers=self.cfg.num_workers,
            collate_fn=self.task.collate,
            generator=generator,
            drop_last=False,
        )

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, name: str = "last.pt") -> Path:
        return self.out_dir / name

    def save(self, name: str = "last.pt", metrics: dict[str, Any] | None = None) -> Path:
        """Write a resumable checkpoint atomically (rank 0 only); returns its path."""
        path = self.checkpoint_path(name)
        if not self.dist.is_main:
            return path
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_in_row": self.nonfinite_in_row,
            "rng": rng_state(),
            "history": self.history,
        }
        extra = self._train_module_extra_state()
        if extra:  # training-only modules (e.g. a distillation adapter), for exact resume
            state["train_module_extra"] = extra
        prov = dict(
            self.provenance,
            saved_at=datetime.now(timezone.utc).isoformat(),
            step=self.step,
            epoch=self.epoch,
        )
        if metrics:
            prov["metrics"] = metrics
        save_checkpoint(
            path,
            self.model.state_dict(),
            self.task.detector_config,
            prov,
            training_state=state,
            kind=self.task.kind,
        )
        return path

    def _train_module_extra_state(self) -> dict[str, torch.Tensor]:
        """``train_module``'s state outside ``model`` (empty for a plain detector task; the
        model's own tensors are left out under every path that reaches it)."""
        prefixes = tuple(
            f"{name}."
            for name, m in self.train_module.named_modules(remove_duplicate=False)
            if m is self.model
        )
        return {
            k: v for k, v in self.train_module.state_dict().items() if not k.startswith(prefixes)
        }

    def _resume(self) -> None:
        """Load ``last.pt``: weights, training-only modules, optimizer, schedule, RNG.

        Raises:
            FileNotFoundError / CheckpointError: missing or invalid checkpoint.
            ValueError: a checkpoint of another detector kind or model config, or without
                training state.
        """
        path = self.checkpoint_path()
        ckpt = load_checkpoint(path, map_location="cpu")
        kind = ckpt.get("kind", "pointcloud")
        if kind != self.task.kind:
            raise ValueError(
                f"{path}: a {kind!r} checkpoint; this run trains a {self.task.kind!r} detector"
            )
        expected = self.task.detector_config
        try:
            stored = from_dict(type(expected), ckpt["config"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: invalid config in checkpoint: {exc}") from exc
        if stored.model != expected.model:
            raise ValueError(
                f"{path}: the checkpoint's model config differs from the training config"
            )
        self.model.load_state_dict(ckpt["state_dict"])
        state = ckpt.get("training_state")
        if state is None:
            raise ValueError(f"{path}: no training state to resume from")
        extra = state.get("train_module_extra", {})
        if extra or self._train_module_extra_state():
            res = self.train_module.load_state_dict(extra, strict=False)
            missing = [k for k in res.missing_keys if k in self._train_module_extra_state()]
            if missing or res.unexpected_keys:
                raise ValueError(
                    f"{path}: training-only module state does not match this run "
                    f"(missing {missing[:3]}, unexpected {res.unexpected_keys[:3]})"
                )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.nonfinite_in_row = int(state.get("nonfinite_in_row", 0))
        self.history = list(state.get("history", []))
        set_rng_state(state["rng"])

    # ------------------------------------------------------------------ training
    def _set_lr(self) -> float:
        lr = self.cfg.optim.lr_at(self.step, self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self, batch: dict[str, Any]) -> dict[str, float] | None:
        """One optimizer step; returns logged scalars, or ``None`` when skipped (non-finite).

        Raises:
            NonFiniteLossError: after ``max_nonfinite_steps`` consecutive non-finite losses.
        """
        self.train_module.train()
        lr = self._set_lr()
        # BatchNorm running statistics change in the forward pass; keep a copy so a skipped
        # (non-finite) step leaves the model exactly as it was.
        buffers = {k: v.clone() for k, v in self.train_module.named_buffers()}
        loss: TaskLoss = self.ddp_module(batch)
        finite = torch.isfinite(loss.total).to(torch.float32)
        if self.dist.enabled:  # every rank skips together
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        self.optimizer.zero_grad(set_to_none=True)
        if finite.item() < 1:
            with torch.no_grad():
                for k, v in self.train_module.named_buffers():
                    v.copy_(buffers[k])
            self.nonfinite_in_row += 1
            self.nonfinite_total += 1
            if self.nonfinite_in_row >= self.cfg.max_nonfinite_steps:
                raise NonFiniteLossError(
                    f"{self.nonfinite_in_row} non-finite losses in a row (step {self.step}); "
                    "lower the learning rate or check the data"
                )
            if self.dist.enabled:  # keep DDP's gradient hooks in step: reduce zeros
                torch.autograd.backward(loss.total.nan_to_num(0.0, 0.0, 0.0) * 0.0)
                self.optimizer.zero_grad(set_to_none=True)
            return None
        self.nonfinite_in_row = 0
        torch.autograd.backward(self.scaler.scale(loss.total))
        grad_norm = 0.0
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(
                    self.train_module.parameters(), self.cfg.optim.grad_clip
                )
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {
            "loss": float(loss.total.detach()),
            **loss.scalars,
            "lr": lr,
            "grad_norm": grad_norm,
        }

    def _log_line(self, scalars: dict[str, float]) -> None:
        if self.step % max(self.cfg.log_every, 1) == 0:
            parts = ", ".join(
                f"{k} {v:.4g}" for k, v in scalars.items() if k not in ("loss", "lr", "grad_norm")
            )
            logger.info(
                "epoch %d step %d: loss %.4f (%s) lr %.2e",
                self.epoch + 1,
                self.step,
                scalars["loss"],
                parts,
                scalars["lr"],
            )

    def _log(self, scalars: dict[str, float]) -> None:
        if self._writer is not None:
            for k, v in scalars.items():
                self._writer.add_scalar(f"train/{k}", v, self.step)

    def evaluate(self) -> dict[str, Any] | None:
        """The task's metrics on the validation samples (rank 0; e.g. mAP@0.25/0.5 for point
        clouds), or None without a validation set."""
        if self.val_set is None or not self.dist.is_main:
            return None
        metrics = self.task.evaluate(self.progress)
        if metrics is None:
            return None
        if self._writer is not None:
            for k, v in metrics.items():
                self._writer.add_scalar(f"val/{k}", v, self.step)
        return metrics

    def fit(self) -> dict[str, Any]:
        """Train to the configured epochs / max_steps; save ``last.pt`` each epoch, on Ctrl-C
        (then re-raise KeyboardInterrupt) and ``final.pt`` at the end.

        A run resumed from a checkpoint saved mid-epoch (Ctrl-C, SIGTERM) continues that epoch
        after the batches it had consumed: the epoch's batch order and augmentations are
        deterministic in (seed, epoch), so the skipped batches are exactly the trained ones.

        Returns:
            ``{"steps", "epochs", "nonfinite_total", "metrics", "seconds"}``.
        """
        t0 = time.time()
        previous = signal.getsignal(signal.SIGTERM)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread:  # SIGTERM (e.g. a scheduler stopping the job) ends like Ctrl-C
            signal.signal(signal.SIGTERM, self._on_sigterm)
        metrics: dict[str, Any] | None = None
        optim = self.cfg.optim
        try:
            while self.epoch < optim.epochs and not self._done():
                loader = self._loader()
                bar = tqdm(
                    loader,
                    desc=f"epoch {self.epoch + 1}/{optim.epochs}",
                    disable=not self.progress,
                    dynamic_ncols=True,
                    leave=False,
                )
                skip, self.batch_in_epoch = self.batch_in_epoch, 0
                for i, batch in enumerate(bar):
                    if i < skip:  # consumed before the interruption this run resumes from
                        self.batch_in_epoch = i + 1
                        continue
                    scalars = self.train_step(batch)
                    self.batch_in_epoch = i + 1
                    if scalars is not None:
                        if self.step % max(self.cfg.log_every, 1) == 0 or self.step == 1:
                            self._log(scalars)
                            self.history.append({"step": self.step, **scalars})
                        bar.set_postfix(
                            loss=f"{scalars['loss']:.3f}",
                            lr=f"{scalars['lr']:.2e}",
                            pos=int(scalars.get("num_pos", 0)),
                        )
                        if not self.progress and self.dist.is_main:
                            self._log_line(scalars)
                    if self._done() or self._stop_requested:
                        break
                if self._stop_requested:
                    raise KeyboardInterrupt
                self.epoch += 1
                self.batch_in_epoch = 0
                self.task.on_epoch_end(self.epoch)
                self._sync_buffers()
                if self.cfg.eval_every and self.epoch % self.cfg.eval_every == 0:
                    metrics = self.evaluate()
                self.save("last.pt", metrics)
            self._sync_buffers()
            metrics = self.evaluate()
            final = self.save("final.pt", metrics)
            self.save("last.pt", metrics)
        except KeyboardInterrupt:
            self.save("last.pt")
            raise
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
            if self._writer is not None:
                self._writer.flush()
        return {
            "steps": self.step,
            "epochs": self.epoch,
            "nonfinite_total": self.nonfinite_total,
            "metrics": metrics,
            "seconds": time.time() - t0,
            "checkpoint": str(final),
        }

    def _sync_buffers(self) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

        DDP averages gradients, so parameters stay equal, but each rank updates its running
        statistics from its own batches after DDP's per-forward broadcast; syncing at epoch ends
        makes every rank hold the model that rank 0 saves and evaluates.
        """
        if not self.dist.enabled:
            return
        for buf in self.train_module.buffers():
            dist.broadcast(buf.data, src=0)

    def _done(self) -> bool:
        return self.cfg.optim.max_steps > 0 and self.step >= self.cfg.optim.max_steps

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True
