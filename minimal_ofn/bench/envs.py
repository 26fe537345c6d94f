"""Environment steps per second for a stack of agents: serial stepping against worker processes (envpool.py).

    python -m minimal_ofn.bench --envs [--env dmc:dog-run --agents 16 64 --workers 0 2]
"""

import argparse
import os
import time

import numpy as np

from ..envpool import auto_workers, step_seconds, usable_cores
from ..envs import make_env, stack_envs


def lockstep_rate(env_id: str, agents: int, workers: int, steps: int = 200) -> float:
    """Lockstep env steps per second (each one step of every agent's env) with `workers` (0: serial)."""
    vec = stack_envs([make_env(env_id, s) for s in range(agents)], workers)
    try:
        vec.reset(seed=list(range(agents)))
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, (steps, agents, *vec.single_action_space.shape)).astype(np.float32)
        vec.step(actions[0])  # warm: the workers' first answer
        start = time.perf_counter()
        for a in actions[1:]:
            vec.step(a)
        return (steps - 1) / (time.perf_counter() - start)
    finally:
        vec.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minimal_ofn.bench.envs", description="Bench: physics steps/s, "
                                     "serial (workers 0) against worker processes.")
    parser.add_argument("--env", default="dmc:dog-run")
    parser.add_argument("--agents", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--steps", type=int, default=100, help="lockstep steps timed per row")
    args = parser.parse_args(argv)
    per_step = step_seconds(make_env(args.env, 0))
    print(f"{args.env}: {1 / per_step:,.0f} physics steps/s for one env in this process; {usable_cores()} usable "
          f"cores (os.sched_getaffinity), load {os.getloadavg()[0]:.1f}")
    for n in args.agents:
        for w in args.workers:
            rate = lockstep_rate(args.env, n, w, args.steps)
            print(f"{n:>4} agents  workers {w:>2}  {rate:8.1f} lockstep steps/s  {rate * n:9,.0f} env steps/s"
                  f"  (auto would pick {auto_workers(n, per_step)})")


if __name__ == "__main__":
    main()
