"""The GPU check's CPU refusal and its parts that run on a CPU; the plan's figures."""

import math
import subprocess
import sys

import pytest
import torch

from minimal_ofn import gpu_check, plan
from minimal_ofn.config import preset
from minimal_ofn.replay import planned_bytes


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_check_without_cuda_says_so_in_one_line_and_writes_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "minimal_ofn.gpu_check", "--out", str(tmp_path / "gpu.md")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stdout.count("\n") == 1 and "no CUDA device" in out.stdout
    assert not (tmp_path / "gpu.md").exists()


def test_gpu_check_parts_run_on_the_cpu():
    assert gpu_check.ms_per_agent_update(1, "off", repeats=1, device="cpu") > 0
    line = gpu_check.end_to_end("Pendulum-v1", agents=2, steps=40, device="cpu", compile="off", batch_size=16,
                                hidden=16)
    assert line.startswith("Pendulum-v1: 2 agents x 40 steps") and "env steps/s" in line


def test_the_plan_counts_updates_memory_and_disk_of_each_stack(capsys):
    base = preset("tutorial", env="Pendulum-v1", hidden=16, batch_size=16)
    configs = [base.replace(utd=u, seed=s, ofn=o) for u in (1, 4) for s in (0, 1) for o in (False, True)]
    stacks = plan.print_plan(configs)
    assert [s["agents"] for s in stacks] == [4, 4]  # one stack per UTD
    assert stacks[1]["agent_updates"] == 4 * base.replace(utd=4).planned_updates() == 4 * 1001 * 4
    assert stacks[0]["replay_bytes"] == planned_bytes(4, base.steps, 3, 1)
    assert stacks[0]["disk_bytes"] > stacks[0]["replay_bytes"]
    assert all(math.isfinite(s["seconds"]) and s["seconds"] > 0 for s in stacks)
    assert f"total: {4 * 1001 * (1 + 4):,} agent-updates" in capsys.readouterr().out
    off = plan.grid_plan([base.replace(checkpoint_replay="off")])[0]
    assert off["disk_bytes"] < stacks[0]["replay_bytes"] / 4
