"""Whole-process yardsticks: `python -m minimal_ofn.train` timed as users run it, per thread setting beside a
busy process (contention), and against CleanRL's own SAC script (yardstick)."""

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .. import threads
from ..cli import RunError
from .floors import matmul_floor, step_floor
from .timing import load_average


# ---- whole processes: contention, and the external yardstick (CleanRL's own script)
THREAD_VARS = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", threads.OFF)


CONTENTION_SETTINGS = [  # name, environment of the training process
    ("torch's default", {threads.OFF: "torch"}),
    ("OMP_NUM_THREADS=1", {threads.OFF: "torch", "OMP_NUM_THREADS": "1"}),
    ("OMP_WAIT_POLICY=PASSIVE", {threads.OFF: "torch", "OMP_WAIT_POLICY": "PASSIVE"}),
    ("package default (threads.py)", {}),
]


# The contention run: tutorial preset, UTD 2, 300 learning steps after the 1000 random ones.
CONTENTION_TRAIN = ["--preset", "tutorial", "--utd", "2", "--steps", "1300", "--seed_steps", "1000"]


def _clean_env(**extra) -> dict:
    """This process's environment without any thread setting (the bench's own import applied the defaults)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    return {**env, **extra}


def _timed(cmd, env, cwd=None, cap=None) -> float:
    """Wall seconds of a whole process; a failure is one line with the end of its stderr.

    cap: stop the process after that many seconds and return inf (a collapsed setting must not stall the bench)."""
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return math.inf
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RunError(f"{' '.join(map(str, cmd[:4]))} ... failed ({out.returncode}): {tail}")
    return seconds


def _train_cmd(args, out, compiled=False) -> list:
    # Ours as users run it: `python -m minimal_ofn.train`, eager (sac.py) or the compiled whole update.
    entry = ["-m", "minimal_ofn.train", "--compile", "update" if compiled else "off"]
    return [sys.executable, *entry, *args, "--out", str(out), "--no-progress"]


def contention(repeats=1, cap=180.0, idle=True) -> dict:
    """Whole-process seconds of the contention run per thread setting, idle and beside one busy process.

    "Idle" is whatever the machine runs besides (the load average is printed); "busy" adds one process of
    ours spinning in pure python (started and killed here). Settings alternate within each round. A run
    still going after cap seconds is stopped and shown as "> cap"."""
    result = {"cpu_count": os.cpu_count(), "usable_cores": threads.usable_cores(), "cap": cap, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for neighbour in (False, True) if idle else (True,):
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
            try:
                time.sleep(1.0 if neighbour else 0.0)
                for r in range(repeats):
                    for k, (name, extra) in enumerate(CONTENTION_SETTINGS):
                        load = load_average()
                        seconds = _timed(_train_cmd(CONTENTION_TRAIN, Path(tmp) / f"{neighbour}{r}{k}"),
                                         _clean_env(**extra), cap=cap)
                        row = result["rows"].setdefault(name, {"idle": [], "busy": [], "load": []})
                        row["busy" if neighbour else "idle"].append(seconds)
                        row["load"].append(load)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    return result


# CleanRL's script measures nothing while it trains: no evaluation episodes, no Monte Carlo rollouts (it logs
# losses every 100 steps). "same work" runs ours with those two past the end of the run; the other rows keep
# our defaults (a Monte Carlo rollout of up to 1000 steps at every log, every 1000 steps).
SAME_WORK = ["--mc_every", "1000000000", "--eval_every", "1000000000"]


YARDSTICK_KINDS = {  # name: (compiled, extra train args)
    "ours": (False, []), "ours compiled": (True, []), "ours, same work": (False, SAME_WORK),
    "ours compiled, same work": (True, SAME_WORK)}


def yardstick(cleanrl_script, cleanrl_python, pairs=1, compiled=True, long_steps=6000, short_steps=2000) -> dict:
    """CleanRL's own sac_continuous_action.py against `minimal_ofn.train`, whole processes, one thread each.

    HalfCheetah (CleanRL: -v4 with its gymnasium 0.29; ours: -v5), UTD 1, 2x256, batch 256, 1000 random steps.
    The learning phase costs (t(long_steps) - t(short_steps)) / (long_steps - short_steps) per env step: start-up,
    imports, the random phase, the final evaluation and (ours) the compile drop out of the difference. Runs
    alternate within a pair. Ours runs as users run it, and with the work CleanRL's script does (SAME_WORK)."""
    script = Path(cleanrl_script).resolve()
    env = _clean_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **{threads.OFF: "torch"})
    # CleanRL imports cleanrl_utils from its repository's root, one level above the script.
    clean_env = {**env, "PYTHONPATH": str(script.parent.parent)}
    batch, hidden, depth = 256, 256, 2  # the runs' sizes, and the ceiling's
    ours_args = ["--env", "HalfCheetah-v5", "--utd", "1", "--batch_size", str(batch), "--hidden", str(hidden),
                 "--depth", str(depth), "--seed_steps", "1000", "--device", "cpu"]
    kinds = ["cleanrl"] + [k for k, (c, _) in YARDSTICK_KINDS.items() if compiled or not c]
    times = {k: {long_steps: [], short_steps: []} for k in kinds}
    # The ceiling: a learning step of ours does at least one update, and no update beats its matrix products alone
    # (matmul_floor, one thread, as the runs had). So CleanRL's ms / the floor's ms bounds every row's ratio. The
    # floor drifts with the machine's state, even idle: it is measured after every run.
    floors = []

    def measure_floor():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            floors.append(1e3 * matmul_floor(batch, hidden, depth, 1, torch.device("cpu"), repeats=3))
        finally:
            torch.set_num_threads(before)

    with tempfile.TemporaryDirectory() as tmp:
        if compiled:  # untimed: fills Inductor's on-disk cache, so that no timed run pays a cold compile
            _timed(_train_cmd([*ours_args, "--steps", "1002"], Path(tmp) / "warm-up", compiled=True), env)
        for p in range(pairs):
            for steps in (long_steps, short_steps):
                for kind in kinds:
                    if kind == "cleanrl":
                        cmd = [cleanrl_python, str(script), "--env-id", "HalfCheetah-v4", "--total-timesteps",
                               str(steps), "--learning-starts", "1000", "--batch-size", str(batch), "--seed", str(p + 1),
                               "--no-cuda"]
                        times[kind][steps].append(_timed(cmd, clean_env, cwd=tmp))
                    else:
                        out = Path(tmp) / f"{kind.replace(' ', '_').replace(',', '')}{p}_{steps}"
                        is_compiled, extra = YARDSTICK_KINDS[kind]
                        cmd = _train_cmd([*ours_args, *extra, "--steps", str(steps), "--seed", str(p + 1)], out,
                                         compiled=is_compiled)
                        times[kind][steps].append(_timed(cmd, env))
                    measure_floor()
    span = long_steps - short_steps
    rows = {k: {"long_s": t[long_steps], "short_s": t[short_steps],
                "ms_per_env_step": 1e3 * statistics.median(a - b for a, b in zip(t[long_steps], t[short_steps])) / span}
            for k, t in times.items()}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step_ms = {k[:-2] + "_ms": 1e3 * v for k, v in step_floor().items()}
    finally:
        torch.set_num_threads(before)
    return {"pairs": pairs, "long_steps": long_steps, "short_steps": short_steps, "rows": rows,
            "matmul_floor_ms": statistics.median(floors), "matmul_floors_ms": floors, "step_floor_ms": step_ms}


# ---- how fast a command answers a bad flag (the flags are parsed before torch and the environments load)
def cli_error_seconds(repeats=3) -> dict:
    """Wall seconds until `python -m minimal_ofn.<command> --no-such-flag` has answered (median of whole processes)."""
    seconds = {}
    for command in ("train", "experiment"):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", f"minimal_ofn.{command}", "--no-such-flag"], capture_output=True)
            times.append(time.perf_counter() - start)
        seconds[command] = statistics.median(times)
    return seconds
