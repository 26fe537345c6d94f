"""Checkpoints of a lockstep stack, one file per agent.

Every stateful tensor has the agent axis first (networks, log alpha, optimizer moments,
replay), so agent i's checkpoint is slice i of each, plus its random streams, its training
environment mid-episode and its counters. Agents saved from different stacks can be
loaded into one stack, as long as they were written at the same step.
"""

import pickle
import time
import zlib

import torch

from .cli import RunError
from .envs import stack_envs


def _tree(fn, *trees):
    """Apply fn leaf-wise over nested dicts/lists of tensors (the checkpoint layout)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _tree(fn, *(t[k] for t in trees)) for k in first}
    if isinstance(first, (list, tuple)):
        return [_tree(fn, *items) for items in zip(*trees)]
    return fn(*trees)


def _stacked_state(run) -> dict:
    return {
        "nets": {k: m.state_dict() for k, m in run.sac.modules().items()},
        "log_alpha": run.sac.log_alpha.detach(),
        "opt": {k: o.state_dict() for k, o in run.sac.optimizers().items()},
        "buffer": {k: v for k, v in run.buffer.state_dict().items() if k not in ("pos", "size")},
    }


def agent_state(run, i: int) -> dict:
    """Everything agent i of the Lockstep `run` needs to continue, on the CPU."""
    return {
        "stacked": _tree(lambda x: x[i].detach().cpu().clone(), _stacked_state(run)),
        "shared": {"t": run.t, "updates": run.updates, "pos": run.buffer.pos, "size": run.buffer.size,
                   "wall_time": run.wall_time()},
        "generators": [run.generators[i].get_state(), run.diag_generators[i].get_state()],
        # The training env mid-episode (MuJoCo's arena is mostly zeros: compresses ~20x).
        "env": zlib.compress(pickle.dumps(run.envs.envs[i]), 1),
        "obs": run.obs[i].copy(),
        "episode_return": float(run.episode_return[i]),
        "finished_returns": list(run.finished_returns[i]),
        "max_reward": float(run.max_reward[i]),
        "last_eval": run.last_eval[i],
        "config": run.configs[i].to_dict(),
        "failed": run.failed.get(i),  # a failed agent stays frozen when the stack resumes (train.py)
    }


def load_agent_states(run, states: list[dict]) -> None:
    """Put one agent_state per agent back into the Lockstep `run` (built with the same configs)."""
    shared = states[0]["shared"]
    if any(s["shared"]["t"] != shared["t"] for s in states):
        raise RunError("the checkpoints of this stack were written at different steps; resume them separately")
    stacked = _tree(lambda *xs: torch.stack(xs).to(run.device), *[s["stacked"] for s in states])
    for k, m in run.sac.modules().items():
        m.load_state_dict(stacked["nets"][k])
    with torch.no_grad():
        run.sac.log_alpha.copy_(stacked["log_alpha"])
    for k, o in run.sac.optimizers().items():
        o.load_state_dict(stacked["opt"][k])
    run.buffer.load_state_dict({**stacked["buffer"], "pos": shared["pos"], "size": shared["size"]})
    run.t, run.updates, run.elapsed_before = shared["t"], shared["updates"], shared["wall_time"]
    run.start_time = time.time()
    envs = []
    for i, s in enumerate(states):
        run.generators[i].set_state(s["generators"][0])
        run.diag_generators[i].set_state(s["generators"][1])
        envs.append(pickle.loads(zlib.decompress(s["env"])))
        run.obs[i] = s["obs"]
        run.episode_return[i] = s["episode_return"]
        run.finished_returns[i] = s["finished_returns"]
        run.max_reward[i] = s["max_reward"]
        run.last_eval[i] = s["last_eval"]
    run.envs = stack_envs(envs)
    for i, s in enumerate(states):
        if s.get("failed"):
            run.failed[i] = s["failed"]
            run.sac.freeze(i)
    run.keep_good_state()
