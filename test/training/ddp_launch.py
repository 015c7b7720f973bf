"""Helper of the DDP tests (test_trainer.py, test_mono_task.py): run a worker script under
``torch.distributed.run`` with gloo kept on this machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_torchrun(script: Path, timeout: float, nproc: int = 2) -> None:
    """Run ``script`` in ``nproc`` processes (torchrun, master 127.0.0.1 on a free port, gloo on
    ``lo``, one OpenMP thread each) and assert they all exit 0 (the assertion shows stderr)."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
