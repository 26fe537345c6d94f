"""Thread defaults (threads.py): passive OpenMP waiting and threads matched to the free cores, unless the user chose."""

import os
import subprocess
import sys

from minimal_ofn import threads


def test_threads_are_the_free_cores_and_at_least_one():
    assert threads.default_threads(cores=2, load=0.3) == 2
    assert threads.default_threads(cores=2, load=1.2) == 1  # one busy neighbour: leave it its core
    assert threads.default_threads(cores=2, load=7.0) == 1
    assert threads.default_threads(cores=8, load=2.9) == 6


def test_defaults_go_into_a_fresh_environment_and_never_over_a_users_choice(monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda: 3)
    monkeypatch.delitem(sys.modules, "torch")  # as before the first import of torch
    env = {}
    assert threads.apply_thread_defaults(env) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}
    chosen = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    assert threads.apply_thread_defaults(chosen) == {} and chosen == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    off = {threads.OFF: "torch"}
    assert threads.apply_thread_defaults(off) == {} and off == {threads.OFF: "torch"}


def test_after_torch_is_loaded_only_the_thread_count_can_change(monkeypatch):
    import torch

    monkeypatch.setattr(threads, "default_threads", lambda: 1)
    before = torch.get_num_threads()
    try:
        env = {}
        assert threads.apply_thread_defaults(env) == {"torch.set_num_threads": 1}
        assert env == {} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_import_minimal_ofn_sets_them_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", threads.OFF)}
    code = ("import os, minimal_ofn, torch; "
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'] == str(torch.get_num_threads()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PASSIVE", "True"]
