"""Run a grid's stacks somewhere: in this process, one after another, or as Ray tasks on a cluster.

A stack is one lockstep train() call: the runs of a grid whose configs agree on config.STACK_FIELDS
(experiment.run_variants groups them), each run in its own folder out/utd<U>/<variant>/seed<k>/.
A stack is what a launcher schedules: one process, its agents updated together, on one GPU or on
--cpus-per-stack CPUs.

    launcher="local"  every stack here, in turn (today's behaviour; train's progress bar per stack)
    launcher="ray"    every stack one Ray task, all submitted at once. With RAY_ADDRESS set (or
                      ray.init already called) on an existing cluster, otherwise on a local Ray
                      instance started for this process. Run folders must be on storage that
                      every node and the driver share: tasks write there, the driver reads progress there.

Faults:
- A task that dies with its worker or node (killed, out of memory, node lost) is retried by Ray
  (max_retries=RETRIES). The retry resumes every run from its folder's checkpoint.pt
  (train(..., resume=True)) instead of starting over, and ends with the metrics of an
  uninterrupted run. A task can also die between two runs' checkpoint writes: the retry then
  resumes the folders in groups, by the step they stopped at (an agent's results do not depend on
  who shares its stack, up to float rounding: tests/test_train.py).
- A stack that fails for its own reasons (RunError: a bad config, NonFiniteLoss) is reported
  with its folders and error, and the rest of the grid goes on. At the end, run_stacks raises one
  StacksFailed naming every failed stack. Finished runs stay finished: the same command, run
  again, loads them and runs only the rest.
Progress (ray): a line per stack when it starts to checkpoint (its step and ETA, at most every
REPORT_EVERY seconds), when it finishes or fails, and a final summary of the runs finished, failed
and skipped (already finished before this call).
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .train import RunError, load_metrics, train

LAUNCHERS = ("local", "ray")
RETRIES = 3  # Ray's attempts after a lost worker or node, per stack (application errors are never retried)
REPORT_EVERY = 30.0  # seconds between two progress lines of one running stack
LOCAL_OBJECT_STORE = 100 * 2**20  # a local instance's object store: it only carries metrics rows back


class StacksFailed(RunError):
    """Some stacks of a grid failed for their own reasons; every other stack ran to its end."""


@dataclass
class Stack:
    """One train() call: a config per run, its folder (dirs None: in memory), and the key its rows come back under."""
    configs: list
    dirs: list | None
    keys: list

    def where(self) -> str:
        """Every run folder (for a failure, which names them all)."""
        return ", ".join(map(str, self.dirs)) if self.dirs is not None else self.label()

    def label(self) -> str:
        where = f"in {os.path.commonpath([str(d) for d in self.dirs])}" if self.dirs else "in memory"
        return f"{len(self.configs)} runs {where}"


def run_stacks(stacks, launcher="local", cpus_per_stack=1.0, progress=True, resume=True, skipped=0,
               train_fn=train) -> dict:
    """Train every stack; return {key: metrics rows} of every run.

    skipped: runs the caller loaded as already finished (for the summary). train_fn: what trains
    one stack (train; experiment passes its own reference so tests can watch the calls).
    Raises StacksFailed after the other stacks have finished if any stack failed."""
    if launcher not in LAUNCHERS:
        raise RunError(f"unknown launcher {launcher!r}; launchers: {', '.join(LAUNCHERS)}")
    if not cpus_per_stack > 0:
        raise RunError(f"--cpus-per-stack must be > 0, got {cpus_per_stack}")
    report = _Report(stacks, skipped, progress, per_stack=launcher == "ray")  # local: train's bar per stack
    if launcher == "local":
        for i, stack in enumerate(stacks):
            try:
                report.finished(i, train_fn(stack.configs, stack.dirs, resume=resume, progress=progress))
            except RunError as err:
                report.failed(i, err)
    elif stacks:
        if not resume:
            raise RunError("the ray launcher always resumes (a retried stack continues from its checkpoints); "
                           "resume=False needs launcher='local'")
        _run_on_ray(stacks, cpus_per_stack, train_fn, report)
    return report.close()


# ---- Ray
def connect():
    """The ray module, initialised: on RAY_ADDRESS's cluster, or on a local instance started for this process."""
    try:
        import ray
    except ImportError:
        raise RunError('--launcher ray needs Ray, the "cluster" extra: pip install -e ".[cluster]"') from None
    if not ray.is_initialized():  # else: the caller's own ray.init() (a notebook, a test) is used as it is
        try:
            if os.environ.get("RAY_ADDRESS"):
                ray.init()  # connects; the cluster's nodes bring their own CPUs and GPUs
            else:
                cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
                ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE)
        except Exception as err:  # an unreachable address, a node that did not start
            raise RunError(f"Ray did not start: {str(err).splitlines()[0]}") from None
    return ray


def resources(cfg, cluster: dict, cpus_per_stack: float) -> dict:
    """What one stack's task asks for: its CPUs, and one GPU when the cluster has GPUs and the config may use one."""
    gpu = cluster.get("GPU", 0) >= 1 and not str(cfg.device).startswith("cpu")
    return {"num_cpus": cpus_per_stack, "num_gpus": 1 if gpu else 0}


def _run_on_ray(stacks, cpus_per_stack, train_fn, report) -> None:
    ray = connect()
    total = ray.cluster_resources()
    if cpus_per_stack > total.get("CPU", 0):
        raise RunError(f"--cpus-per-stack {cpus_per_stack:g} but the Ray cluster has {total.get('CPU', 0):g} CPUs")
    task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(_train_stack)
    threads = max(1, int(cpus_per_stack))  # torch threads = the CPUs reserved: more would spin-wait on neighbours
    pending = {}
    # Largest stacks first (agents x updates): the grid ends sooner when the long ones start early.
    for i in sorted(range(len(stacks)), key=lambda i: -len(stacks[i].configs) * _updates(stacks[i].configs[0])):
        stack = stacks[i]
        ref = task.options(name=f"stack{i + 1}", **resources(stack.configs[0], total, cpus_per_stack)).remote(
            stack.configs, stack.dirs, train_fn, threads)
        pending[ref] = i
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    report.finished(i, ray.get(ref))
                except ray.exceptions.RayTaskError as err:  # raised inside train: the stack's own failure
                    cause = err.cause or err
                    if not isinstance(cause, RunError):  # a bug or a CUDA error: keep its traceback
                        print(f"{report.name(i)} traceback:\n{err}", file=sys.stderr)
                    report.failed(i, cause)
                except ray.exceptions.RayError as err:  # lost RETRIES + 1 times, or cancelled
                    report.failed(i, RunError(f"{type(err).__name__}: {str(err).splitlines()[0]}"))
            report.poll(pending.values())
    finally:  # interrupted: stop the tasks still running (their checkpoints are kept)
        for ref in pending:
            ray.cancel(ref, force=True)


def _updates(cfg) -> int:
    return cfg.steps * cfg.utd + cfg.priming_updates


def _train_stack(configs, dirs, train_fn, threads):
    """One stack inside a Ray worker. A retry finds checkpoints and resumes from them, by stopping step."""
    torch.set_num_threads(threads)
    if dirs is None:
        return train_fn(configs, None, progress=False)
    parts = {}
    for i, folder in enumerate(dirs):
        parts.setdefault(_stopped_at(Path(folder)), []).append(i)
    rows = [None] * len(configs)
    for step, part in parts.items():
        if step not in (0, "finished"):
            print(f"resuming {', '.join(str(dirs[i]) for i in part)} from step {step}", flush=True)
        got = train_fn([configs[i] for i in part], [dirs[i] for i in part], resume=True, progress=False)
        for i, r in zip(part, got):
            rows[i] = r
    return rows


def _stopped_at(folder: Path):
    """'finished', the env step of the folder's checkpoint, or 0 (nothing to resume)."""
    if (folder / "summary.json").exists():
        return "finished"
    if (folder / "checkpoint.pt").exists():  # mmap: only the step is read, not the replay buffer
        return torch.load(folder / "checkpoint.pt", weights_only=False, map_location="cpu", mmap=True)["shared"]["t"]
    return 0


# ---- progress and the summary
class _Report:
    def __init__(self, stacks, skipped, progress, per_stack):
        self.stacks, self.skipped, self.progress, self.per_stack = stacks, skipped, progress, per_stack
        self.rows, self.failures, self.start = {}, [], time.time()
        self.last = {}  # stack -> (time, step) of its last progress line

    def name(self, i) -> str:
        return f"[stack {i + 1}/{len(self.stacks)}]"

    def line(self, text) -> None:
        if self.progress:
            print(text, flush=True)

    def finished(self, i, rows) -> None:
        self.rows.update(zip(self.stacks[i].keys, rows))
        if self.per_stack:
            runs = sum(len(s.keys) for s in self.stacks)
            self.line(f"{self.name(i)} finished: {self.stacks[i].label()}; "
                      f"{len(self.rows)}/{runs} runs done, {_duration(time.time() - self.start)} so far")

    def failed(self, i, err) -> None:
        self.failures.append(f"{self.stacks[i].where()}: {err}")
        self.line(f"{self.name(i)} FAILED ({self.stacks[i].where()}): {err}")

    def poll(self, running) -> None:
        """A line per running stack whose checkpointed step moved, at most every REPORT_EVERY seconds."""
        now = time.time()
        for i in running:
            stack = self.stacks[i]
            if stack.dirs is None or now - self.last.get(i, (0, 0))[0] < REPORT_EVERY:
                continue
            rows = load_metrics(stack.dirs[0])  # written with each checkpoint
            if not rows or rows[-1]["step"] == self.last.get(i, (0, 0))[1]:
                continue
            step, steps = rows[-1]["step"], stack.configs[0].steps
            eta = ""
            if len(rows) > 1 and rows[-1]["step"] > rows[-2]["step"]:
                per_step = (rows[-1]["wall_time"] - rows[-2]["wall_time"]) / (rows[-1]["step"] - rows[-2]["step"])
                eta = f", ETA {_duration(per_step * (steps - step))}"
            self.last[i] = (now, step)
            self.line(f"{self.name(i)} step {step}/{steps} ({stack.label()}){eta}")

    def close(self) -> dict:
        utds = sorted({c.utd for s in self.stacks for c in s.configs})  # experiment runs one grid per UTD
        where = f" at UTD {', '.join(map(str, utds))}" if utds else ""
        self.line(f"grid{where}: {len(self.rows)} runs finished, {sum(len(s.keys) for s in self.stacks) - len(self.rows)} "
                  f"failed, {self.skipped} skipped (already finished) in {_duration(time.time() - self.start)}")
        if self.failures:
            raise StacksFailed(f"{len(self.failures)} of {len(self.stacks)} stacks failed: {'; '.join(self.failures)}. "
                               "The other runs finished and are kept; the same command runs only what is left")
        return self.rows


def _duration(seconds) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
