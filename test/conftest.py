"""Shared pytest fixtures: where the real sample data lives, and a safe ROS environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("SR3D_DATA", REPO_ROOT.parent / "shared" / "data"))

# Every rclpy process started by the tests stays on this machine (no DDS multicast outside),
# and ROS logs go to a temporary folder of this test session, whatever the caller's environment
# says (a shared ROS_LOG_DIR from a Makefile or shell would mix runs). Child processes inherit
# both through os.environ.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
ROS_LOG_DIR = tempfile.mkdtemp(prefix="sr3d_ros_log_")
os.environ["ROS_LOG_DIR"] = ROS_LOG_DIR
# torchrun / gloo tests use loopback only.
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Root of the real ScanNet / SUN RGB-D / KITTI samples (``../shared/data``).

    Fails (not skips) with a clear message when the folder is missing: the tests are meant to run
    on real data.
    """
    if not DATA_ROOT.is_dir():
        pytest.fail(
            f"real sample data not found at {DATA_ROOT}; clone the repo next to shared/ "
            "(../shared/data) or set SR3D_DATA"
        )
    return DATA_ROOT


# ---- devices -------------------------------------------------------------------------------
# Tests that exercise a device take the `device` fixture: they run on "cpu" always and on
# "cuda" when torch sees a GPU; elsewhere the CUDA case is skipped with the reason. The cases
# carry the markers `cuda` / `cpu`, so `pytest -m cuda` runs exactly the GPU subset
# (benchmarks/gpu_check.sh does; `-m cpu` the same tests on the CPU).
CUDA_SKIP_REASON = "no CUDA device (torch.cuda.is_available() is False)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: the CUDA case of a device-parametrised test")
    config.addinivalue_line("markers", "cpu: the CPU case of a device-parametrised test")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (torch imported lazily: ROS-only tests stay light)."""
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(
    params=[
        pytest.param("cpu", marks=pytest.mark.cpu),
        pytest.param("cuda", marks=pytest.mark.cuda),
    ]
)
def device(request: pytest.FixtureRequest) -> torch.device:
    """``torch.device("cpu")``, then the current CUDA device with its index (``cuda:0``; a
    bare ``cuda`` would not compare equal to the ``tensor.device`` of tensors placed there),
    skipped without a GPU."""
    import torch

    if request.param == "cuda":
        if not cuda_available():
            pytest.skip(CUDA_SKIP_REASON)
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
