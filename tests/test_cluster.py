"""Grids on Ray: the same results as a local run, a killed worker resumed, a failing stack reported, clear errors.

The Ray tests share one local Ray instance (2 CPUs, no dashboard). They are skipped only when Ray is not
installed (the "cluster" extra)."""

import csv
import importlib.util
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import minimal_ofn  # noqa: E402
from minimal_ofn import cluster  # noqa: E402
from minimal_ofn import experiment as ex  # noqa: E402
from minimal_ofn.config import Config  # noqa: E402

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason='Ray is not installed: pip install -e ".[dev]"')

# 2 variants x 2 seeds (one stack of 4 agents), the smallest nets that still run everything: the random phase,
# learning, evaluation, Monte Carlo diagnostics, checkpoints every 50 steps. (Two stacks side by side: the last test.)
GRID = ["--env", "Pendulum-v1", "--steps", "300", "--seed_steps", "50", "--utd", "2", "--batch_size", "16",
        "--hidden", "16", "--log_every", "25", "--eval_every", "100", "--checkpoint_every", "50",
        "--variants", "baseline", "ofn", "--seeds", "0", "1"]
RUNS = [f"utd2/{v}/seed{s}" for v in ("baseline", "ofn") for s in (0, 1)]  # the stack's order: checkpoints too


def _rows(folder):
    """metrics.csv as text rows without the wall_time column (the one thing that differs between two machines)."""
    with open(folder / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]


def _assert_same_runs(a, b):
    for run in RUNS:
        rows = _rows(a / run)
        assert rows and rows == _rows(b / run), run
        assert rows[-1]["step"] == "300" and (b / run / "summary.json").exists(), run


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    ex.main([*GRID, "--out", str(out), "--no-progress"])
    return out


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    # Every Ray process imports jsonschema, which imports rfc3987_syntax when it is installed (JupyterLab brings
    # it); that module compiles a grammar at import, 1.5 s of CPU per process. On this shared 2-core machine the
    # dashboard agent then misses the raylet's fixed 15 s start-up window ("The current node timed out during
    # startup"). Ray's processes do not need it: a stub that fails to import makes jsonschema skip it.
    shim = tmp_path_factory.mktemp("shim")
    (shim / "rfc3987_syntax.py").write_text('raise ImportError("not needed by Ray")\n')
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(shim), *([saved] if saved else [])])
    try:
        cluster.connect()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    ray.shutdown()


# ---- no Ray needed
def test_bad_launcher_input_is_one_line_and_names_the_extra(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    for argv, match in [(["--launcher", "slurm"], "invalid choice: 'slurm'"),
                        (["--launcher", "ray", "--cpus-per-stack", "0"], "--cpus-per-stack must be > 0")]:
        with pytest.raises(SystemExit) as exit_:
            ex.main([*GRID, *argv, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1 and match in err, err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed: import ray fails
    with pytest.raises(SystemExit) as exit_:
        ex.main([*GRID, "--launcher", "ray", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    assert '"cluster" extra' in err and 'pip install -e ".[cluster]"' in err
    assert not out.exists()  # nothing ran


def test_the_command_goes_on_to_the_next_utd_after_a_failed_stack_and_ends_with_one_line(tmp_path, capsys):
    argv = ["--env", "Pendulum-v1", "--steps", "60", "--seed_steps", "20", "--batch_size", "16", "--hidden", "16",
            "--log_every", "10", "--eval_every", "30", "--checkpoint_every", "20", "--critic_lr", "1e30",
            "--utd", "1", "2", "--variants", "baseline", "--no-progress", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        ex.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.count("non-finite loss") == 2, err
    assert str(tmp_path / "utd1" / "baseline" / "seed0") in err and str(tmp_path / "utd2" / "baseline" / "seed0") in err


def test_a_stack_asks_for_one_gpu_only_where_there_is_one_and_its_config_may_use_it():
    gpus = {"CPU": 16.0, "GPU": 4.0}
    assert cluster.resources(Config(device="auto"), gpus, 2) == {"num_cpus": 2, "num_gpus": 1}
    assert cluster.resources(Config(device="cuda:0"), gpus, 1) == {"num_cpus": 1, "num_gpus": 1}
    assert cluster.resources(Config(device="cpu"), gpus, 1)["num_gpus"] == 0
    assert cluster.resources(Config(device="auto"), {"CPU": 2.0}, 1)["num_gpus"] == 0


# ---- on a local Ray instance
@needs_ray
def test_a_ray_grid_equals_the_local_grid_row_for_row(local_grid, ray_cluster, tmp_path, capsys):
    @ray_cluster.remote
    def where():
        import minimal_ofn as m
        return m.__file__

    # Workers must run this checkout's code, not another install of the package.
    assert ray_cluster.get(where.remote()) == minimal_ofn.__file__
    ex.main([*GRID, "--launcher", "ray", "--out", str(tmp_path)])
    _assert_same_runs(local_grid, tmp_path)
    out = capsys.readouterr().out
    finished = re.findall(r"\[stack \d+/\d+\] finished: (\d+) runs in ", out)  # a line per stack, as each ends
    assert finished and sum(map(int, finished)) == 4, out
    assert "grid at UTD 2: 4 runs finished, 0 failed, 0 skipped" in out
    assert (tmp_path / "figure_utd2.png").exists() and (tmp_path / "table_utd2.txt").exists()  # plot read it
    ex.main([*GRID, "--launcher", "ray", "--out", str(tmp_path)])  # again: everything is loaded, nothing runs
    assert "grid: 0 runs finished, 0 failed, 4 skipped" in capsys.readouterr().out


def _descendants(pid):
    """Processes below pid (this test's own local Ray: its raylet and workers), from /proc."""
    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    below, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, parent in parents.items() if parent in frontier} - below
        below |= frontier
    return below


def _kill_worker_after_first_checkpoint(run_dir, task_name, seen):
    """Wait for run_dir's first checkpoint, then SIGKILL the Ray worker running task_name.

    run_dir is the stack's last run: its checkpoint is written last, so all of them stopped at one step."""
    deadline = time.time() + 120
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    for pid in _descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if title == f"ray::{task_name}":
            os.kill(pid, signal.SIGKILL)
            seen["pid"], seen["finished_before"] = pid, (run_dir / "summary.json").exists()
            seen["rows"] = list(csv.DictReader(open(run_dir / "metrics.csv", newline="")))
            return


@needs_ray
def test_a_killed_worker_is_retried_and_its_runs_resume_from_their_checkpoints(local_grid, ray_cluster, tmp_path,
                                                                              capfd):
    seen = {}
    killer = threading.Thread(target=_kill_worker_after_first_checkpoint,
                              args=(tmp_path / RUNS[-1], "stack1", seen))
    killer.start()
    ex.main([*GRID, "--launcher", "ray", "--out", str(tmp_path)])
    killer.join()
    assert "pid" in seen and not seen["finished_before"], "the worker was not killed mid-run"
    _assert_same_runs(local_grid, tmp_path)  # every run, the two killed ones included, as if never interrupted
    # Resumed, not restarted: the rows up to the first checkpoint are the ones written before the kill.
    after = list(csv.DictReader(open(tmp_path / RUNS[-1] / "metrics.csv", newline="")))
    before = [r for r in seen["rows"] if int(r["step"]) <= 50]
    assert before and after[:len(before)] == before  # wall_time included: a rerun would have new times
    assert "grid at UTD 2: 4 runs finished, 0 failed" in capfd.readouterr().out


@needs_ray
def test_the_command_connects_to_the_cluster_ray_address_names(local_grid, ray_cluster, tmp_path):
    address = ray_cluster.get_runtime_context().gcs_address  # the module's instance, as if started by `ray start`
    env = {**os.environ, "RAY_ADDRESS": address, "OMP_NUM_THREADS": "1"}
    argv = [*GRID[:GRID.index("--seeds")], "--seeds", "1", "--variants", "ofn", "--launcher", "ray"]
    done = subprocess.run([sys.executable, "-m", "minimal_ofn.experiment", *argv, "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Started a local Ray instance" not in done.stderr  # it joined the running one
    assert "grid at UTD 2: 1 runs finished, 0 failed, 0 skipped" in done.stdout
    # Alone here, in a stack of four there: equal up to float rounding (as tests/test_train.py holds them).
    alone, stacked = _rows(tmp_path / "utd2/ofn/seed1"), _rows(local_grid / "utd2/ofn/seed1")
    assert len(alone) == len(stacked) == 12
    for a, b in zip(alone, stacked):
        for k in a:
            x, y = float(a[k] or "nan"), float(b[k] or "nan")
            assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-4), (k, x, y)


@pytest.mark.parametrize("launcher", ["local", pytest.param("ray", marks=needs_ray)])
def test_a_stack_failing_on_its_own_is_reported_and_the_rest_of_the_grid_finishes(launcher, tmp_path, capsys,
                                                                                 request):
    if launcher == "ray":
        request.getfixturevalue("ray_cluster")
    base = Config(env="Pendulum-v1", steps=120, seed_steps=40, utd=1, batch_size=16, hidden=16, log_every=20,
                  eval_every=60, checkpoint_every=40)
    variants = {"baseline": {}, "diverges": {"critic_lr": 1e30, "priming_updates": 10}}  # its own stack
    with pytest.raises(cluster.StacksFailed) as err:
        ex.run_variants(base, variants, seeds=(0, 1), out=tmp_path, launcher=launcher)
    message = str(err.value)
    assert "1 of 2 stacks failed" in message and "non-finite loss" in message
    assert str(tmp_path / "diverges" / "seed0") in message and str(tmp_path / "diverges" / "seed1") in message
    assert "baseline" not in message
    for seed in (0, 1):
        assert (tmp_path / "baseline" / f"seed{seed}" / "summary.json").exists()
        assert not (tmp_path / "diverges" / f"seed{seed}" / "summary.json").exists()
    out = capsys.readouterr().out
    assert "FAILED" in out and "grid at UTD 1: 2 runs finished, 2 failed, 0 skipped" in out
