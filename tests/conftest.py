import os

import torch

import pytest

# Test networks are tiny: one thread avoids OpenMP spin-waits, which dominate at these sizes on a busy 2-core machine
# (and the suite runs one worker per core: pyproject.toml). Child processes a test starts inherit one thread too.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "disabled")

# Modules whose tests must share one worker: a module fixture worth building once (the bundle's venv), or one
# process-wide service (a local Ray cluster).
ONE_WORKER = {"test_tutorials", "test_cluster"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
