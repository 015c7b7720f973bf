# sr3d_ros developer entry points. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

# Every rclpy process started from here stays on this machine, and every torchrun/gloo job
# uses loopback only.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
# ROS logs: a fresh temporary folder per make run (an explicit ROS_LOG_DIR is kept); the tests
# and the demo make their own anyway (test/conftest.py, sr3d_ros.ros.env).
ifeq ($(strip $(ROS_LOG_DIR)),)
ROS_LOG_DIR := $(shell mktemp -d "$${TMPDIR:-/tmp}/sr3d_ros_log.XXXXXX")
endif
export ROS_LOG_DIR
export MASTER_ADDR := 127.0.0.1
export GLOO_SOCKET_IFNAME := lo
export PYTHONUNBUFFERED := 1
# rclpy from the PyPI wheels (see scripts/env.sh): Fast DDS is the only RMW in the venv, and
# ament_index lookups (vision_msgs share files) need the venv as an ament prefix.
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export AMENT_PREFIX_PATH := $(abspath $(VENV))$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))

.PHONY: setup minkowski lint test demo bench gpu-check clean

setup:            ## venv with torch, ROS 2 wheels, vision_msgs + tf2_msgs, sr3d_ros (idempotent)
	bash scripts/setup_env.sh $(VENV)

minkowski: setup  ## reference MinkowskiEngine build (cached wheel) for the sparse-engine tests
	bash scripts/build_minkowski.sh $(PY)

lint: setup       ## ruff (lint + format check) and mypy (strict) over the code
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup minkowski  ## the whole test suite (what CI runs)
	$(PY) -m pytest -q

demo: setup       ## the main job, both parts: point-cloud node + bag replay on real ScanNet scans
                  ## (table, mAP@0.25/0.5, PNG), then image node + bag replay on real KITTI
                  ## frames (table, AP|R40, PNG); one part: python -m sr3d_ros.demo --parts kitti
	$(PY) -m sr3d_ros.demo

bench: setup minkowski  ## benchmark tables (ours vs reference); run on a quiet machine
	$(PY) benchmarks/bench_sparse.py
	$(PY) benchmarks/bench_pointcloud2.py
	$(PY) benchmarks/bench_messages.py
	$(PY) benchmarks/bench_node.py
	$(PY) benchmarks/bench_node_memory.py
	$(PY) benchmarks/bench_detector.py
	$(PY) benchmarks/bench_assign_loss.py
	$(PY) benchmarks/bench_train_step.py
	$(PY) benchmarks/bench_mono.py
	$(PY) benchmarks/bench_bag_extract.py
	$(PY) benchmarks/bench_a2d2_step.py

gpu-check:        ## on a CUDA machine: CUDA test subset + detector latency table (< 8 min)
	bash benchmarks/gpu_check.sh

clean:
	rm -rf build *.egg-info .pytest_cache
