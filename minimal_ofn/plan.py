"""A plan before a run: what a grid of stacks will cost, from its configs and a short measurement here.

For each stack (agents that share one lockstep update, config.STACK_FIELDS):

    agent-updates   sum over its agents of Config.planned_updates()
    replay memory   replay.planned_bytes(agents, capacity, |S|, |A|, replay_dtype)
    checkpoint disk per agent: the replay once (incremental or full) + networks, targets and optimizer moments
    time            steps x (physics of one lockstep step) + lockstep updates x (one update of this stack),
                    both measured here for a moment (eager update; the compiled one is faster on long runs)

Stacks run one after another on one machine (launcher local), so the peak memory is the largest stack's.
"""

import time

import torch

from . import config as cfgmod
from .envpool import resolve_workers, step_seconds
from .replay import gib, planned_bytes

MEASURED_AGENTS = 8  # at most this many agents are timed; per-agent update time is about flat beyond it


def _random_batch(n, batch, obs_dim, act_dim, device):
    g = torch.Generator(device=device).manual_seed(0)
    r = lambda *s: torch.randn(n, batch, *s, generator=g, device=device)  # noqa: E731
    return {"obs": r(obs_dim), "action": r(act_dim).tanh(), "reward": r(), "next_obs": r(obs_dim),
            "terminated": torch.zeros(n, batch, device=device)}


def update_seconds(configs, obs_dim, act_dim, repeats: int = 10) -> float:
    """Seconds per lockstep update of this stack (eager), timed on up to MEASURED_AGENTS of its agents."""
    from .sac import SAC

    c0, n = configs[0], min(len(configs), MEASURED_AGENTS)
    device = c0.resolved_device()
    gens = [torch.Generator(device=device).manual_seed(i) for i in range(n)]
    sac = SAC([c.replace(compile="off") for c in configs[:n]], obs_dim, act_dim, device, gens)
    batch = _random_batch(n, c0.batch_size, obs_dim, act_dim, device)
    for _ in range(3):
        sac.update(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        sac.update(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_update = (time.perf_counter() - start) / repeats
    state = sum(t.numel() * t.element_size() for t in sac.state_tensors()) / n
    return per_update * len(configs) / n, state


def stack_plan(configs) -> dict:
    """The figures of one stack (module docstring)."""
    from .envs import make_env

    c0, n = configs[0], len(configs)
    env = make_env(c0.env, 0, c0.action_repeat)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    capacity = c0.buffer_size or c0.steps
    workers = resolve_workers(c0.env_workers, n, env)
    physics = step_seconds(env) * n / max(1, workers)
    update, state_bytes = update_seconds(configs, obs_dim, act_dim)
    replay_bytes = planned_bytes(n, capacity, obs_dim, act_dim, c0.replay_dtype)
    disk = n * state_bytes + (replay_bytes if c0.checkpoint_replay != "off" else 0)
    updates = max(c.planned_updates() for c in configs)  # lockstep: the stack makes them together
    return {"agents": n, "env": c0.env, "utd": c0.utd, "agent_updates": sum(c.planned_updates() for c in configs),
            "replay_bytes": replay_bytes, "disk_bytes": disk, "workers": workers,
            "seconds": c0.steps * physics + updates * update, "update_ms": 1e3 * update, "physics_ms": 1e3 * physics}


def grid_plan(configs) -> list[dict]:
    """One stack_plan per stack of these configs (grouped as experiment.run_variants groups them)."""
    groups = {}
    for c in configs:
        groups.setdefault(cfgmod.stack_key(c), []).append(c)
    return [stack_plan(group) for group in groups.values()]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def print_plan(configs) -> list[dict]:
    """Print the plan of these configs (one line per stack, then the totals); return the stacks' figures."""
    stacks = grid_plan(configs)
    device = configs[0].resolved_device()
    print(f"plan on {device} (measured now: physics of one lockstep step, one eager update of each stack)")
    for s in stacks:
        print(f"  {s['env']} utd {s['utd']} x{s['agents']}: {s['agent_updates']:,} agent-updates, replay "
              f"{gib(s['replay_bytes'])}, checkpoints {gib(s['disk_bytes'])}, {s['update_ms']:.1f} ms/update, "
              f"{s['physics_ms']:.2f} ms physics/step ({s['workers'] or 'no'} env workers): about {hours(s['seconds'])}")
    total = sum(s["seconds"] for s in stacks)
    print(f"total: {sum(s['agent_updates'] for s in stacks):,} agent-updates, peak replay memory "
          f"{gib(max(s['replay_bytes'] for s in stacks))} (the largest stack), checkpoint disk "
          f"{gib(sum(s['disk_bytes'] for s in stacks))}, about {hours(total)} run one after another here")
    return stacks
