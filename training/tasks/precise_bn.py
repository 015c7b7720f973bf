"""Precise BatchNorm: recompute the running statistics of every BatchNorm layer with the current
weights, as the population average over a number of training batches.

Source: Wu & Johnson, "Rethinking 'Batch' in BatchNorm", arXiv 2105.07576, 2021, Sec. 3
("PreciseBN"). The exponential moving average that BatchNorm keeps during training lags behind
weights that still move fast (short schedules, high learning rates), so a model evaluated with it
can be far worse than the same weights with statistics of the final network; recomputing them with
``momentum=None`` (a cumulative average) removes that lag. Training itself is unchanged (it
normalises with batch statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm"]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], object]
) -> int:
    """Replace the running mean / variance of every BatchNorm layer of ``model`` by their
    cumulative average over ``batches``.

    Args:
        model: the network (its train / eval mode is restored afterwards).
        batches: the batches to average over (each passed to ``forward``).
        forward: runs ``model`` on one batch in training mode (e.g. the task's forward pass
            without the loss).

    Returns:
        The number of batches used (0: nothing changed).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in bns]
    was_training = model.training
    model.train()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    n = 0
    try:
        for batch in batches:
            forward(batch)
            n += 1
    finally:
        for m, (momentum, state) in zip(bns, saved):
            m.momentum = momentum
            if n == 0:  # no batch: leave the statistics as they were
                m.load_state_dict(state)
        model.train(was_training)
    return n
