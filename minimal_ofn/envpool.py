"""Environments stepped in worker processes: a stack's envs split over W workers, stepped at once.

Physics runs on the CPU, one env after another in the main process by default
(SyncVectorEnv). With N agents a lockstep step then costs N physics steps in a row;
W workers holding N / W envs each bring that to about N / W, plus one pipe round trip
per worker. Each env is the same object it would be in the main process and is called
in the same order (step, then reset on the episode's end, as SyncVectorEnv's same-step
autoreset does), so the results are those of serial stepping, bit for bit.

    env_workers = "auto": workers when the physics of one lockstep step is slow enough to
                          pay for the round trips (auto_workers), else serial
    env_workers = "0":    serial, in the main process; "W": W workers

Bench (physics alone, steps per second of the whole stack):
    python -m minimal_ofn.envpool --env dmc:dog-run --agents 16 64 --workers 0 2
"""

import multiprocessing as mp
import os
import time

import numpy as np

# Parallel stepping pays when one lockstep step's physics (serially) takes this long: a pipe round trip to a
# worker costs 50-150 us, and the update that follows each step is never shorter than about a millisecond.
AUTO_MIN_SERIAL_S = 2e-3


def _worker(conn, envs):
    """Hold envs; answer ("step", actions), ("reset", seeds), ("env", k), ("close", None)."""
    while True:
        cmd, arg = conn.recv()
        if cmd == "step":
            out = []
            for env, action in zip(envs, arg):
                obs, reward, terminated, truncated, _ = env.step(action)
                final = None
                if terminated or truncated:  # same-step autoreset, as SyncVectorEnv does it
                    final, (obs, _) = obs, env.reset()
                out.append((obs, reward, terminated, truncated, final))
            conn.send(out)
        elif cmd == "reset":
            conn.send([env.reset(seed=s)[0] for env, s in zip(envs, arg)])
        elif cmd == "env":
            conn.send(envs[arg])
        else:
            for env in envs:
                env.close()
            conn.send(None)
            return


class EnvPool:
    """envs (gymnasium.Env, picklable) split over `workers` processes, with SyncVectorEnv's step/reset interface."""

    def __init__(self, envs: list, workers: int):
        self.num_envs = len(envs)
        self.single_observation_space, self.single_action_space = envs[0].observation_space, envs[0].action_space
        workers = max(1, min(workers, len(envs)))
        self.splits = np.array_split(np.arange(len(envs)), workers)
        ctx = mp.get_context("spawn")  # no fork of a process that holds torch's thread pools
        self.conns, self.procs = [], []
        for part in self.splits:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, [envs[i] for i in part]), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _all(self, cmd, per_env):
        for conn, part in zip(self.conns, self.splits):
            conn.send((cmd, [per_env[i] for i in part]))
        return [x for conn in self.conns for x in conn.recv()]

    def reset(self, seed=None, options=None):
        seeds = seed if isinstance(seed, (list, tuple)) else [seed] * self.num_envs
        return np.stack(self._all("reset", seeds)), {}

    def step(self, actions):
        out = self._all("step", list(actions))
        obs, reward, terminated, truncated, final = zip(*out)
        ended = np.array([f is not None for f in final])
        info = {}
        if ended.any():
            info = {"final_obs": np.array([f for f in final] + [None], dtype=object)[:-1], "_final_obs": ended}
        return np.stack(obs), np.array(reward), np.array(terminated), np.array(truncated), info

    def env(self, i: int):
        """A copy of env i as it is now (for checkpoints)."""
        w = next(k for k, part in enumerate(self.splits) if i in part)
        self.conns[w].send(("env", int(np.flatnonzero(self.splits[w] == i)[0])))
        return self.conns[w].recv()

    def close(self):
        for conn, proc in zip(self.conns, self.procs):
            if proc.is_alive():
                try:
                    conn.send(("close", None))
                    conn.recv()
                except (EOFError, BrokenPipeError, OSError):
                    pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self.conns, self.procs = [], []

    def __del__(self):
        self.close()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def step_seconds(env, steps: int = 30) -> float:
    """Seconds per physics step of one env (random actions; the env is reset with seed 0 first)."""
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / steps


def auto_workers(n: int, seconds_per_step: float, cores: int | None = None) -> int:
    """Workers for n envs of this physics speed: 0 (serial) unless one lockstep step's physics takes at least
    AUTO_MIN_SERIAL_S and a core is left for the main process beside two workers or more."""
    cores = usable_cores() if cores is None else cores
    if n < 2 or n * seconds_per_step < AUTO_MIN_SERIAL_S or cores < 3:
        return 0
    return min(n, cores - 1)


def resolve_workers(setting: str, n: int, probe_env) -> int:
    """env_workers ("auto" or a number) -> the number of worker processes (0: serial in the main process)."""
    if str(setting) != "auto":
        return int(setting)
    if n < 2 or usable_cores() < 3:  # no probe needed: serial either way
        return 0
    return auto_workers(n, step_seconds(probe_env))
