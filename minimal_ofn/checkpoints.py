"""Checkpoints of a lockstep stack, one file per agent.

Every stateful tensor has the agent axis first (networks, log alpha, optimizer moments,
replay), so agent i's checkpoint is slice i of each, plus its random streams, its training
environment mid-episode and its counters. Agents saved from different stacks can be
loaded into one stack, as long as they were written at the same step.

The replay part is the biggest (a whole run's transitions). Written by train.py with
checkpoint_replay="incremental", each checkpoint appends only the transitions added since the last
one to replay.bin beside checkpoint.pt, and checkpoint.pt records how many bytes of it belong to
it (a crash between the two leaves a tail that the next save cuts off). "full" puts the whole
filled replay in checkpoint.pt; "off" leaves it out (the networks only: such a run cannot resume).
"""

import os
import pickle
import time
import zlib

import torch

from .cli import RunError
from .envs import env_at, stack_envs

REPLAY_FILE = "replay.bin"


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
    }


def agent_rows(run, i: int, start: int = 0) -> dict:
    """Agent i's replay transitions number start onwards (ReplayBuffer.rows, sliced to agent i)."""
    return run.buffer.rows(start, agents=[i])


def agent_state(run, i: int, replay: str = "full") -> dict:
    """Everything agent i of the Lockstep `run` needs to continue, on the CPU (replay: "full" or "off";
    save() writes the incremental form)."""
    return {
        "stacked": _tree(lambda x: x[i].detach().cpu().clone(), _stacked_state(run)),
        "replay": agent_rows(run, i) if replay == "full" else None,
        "shared": {"t": run.t, "updates": run.updates, "wall_time": run.wall_time()},
        "generators": [run.generators[i].get_state()],
        "streams": run.streams.state_dict(),  # the stack's counters (streams.py), the same in every agent's file
        # The training env mid-episode (MuJoCo's arena is mostly zeros: compresses ~20x).
        "env": zlib.compress(pickle.dumps(env_at(run.envs, i)), 1),
        "obs": run.obs[i].copy(),
        "episode_return": float(run.episode_return[i]),
        "finished_returns": list(run.finished_returns[i]),
        "max_reward": float(run.max_reward[i]),
        "last_eval": run.last_eval[i],
        "config": run.configs[i].to_dict(),
        "failed": run.failed.get(i),  # a failed agent stays frozen when the stack resumes (train.py)
        # the losses summed since the last log: a Ctrl-C checkpoint can fall between two logs
        "stats": {k: v[i].detach().cpu().clone() for k, v in run.sac.stats.items()},
    }


def save(run, i: int, folder, name: str, replay: str, atomic_write) -> None:
    """Write agent i's checkpoint to folder/name, its replay as `replay` says (module docstring)."""
    state = agent_state(run, i, "full" if replay == "full" else "off")
    if replay == "incremental":
        saved = run.replay_saved.setdefault(i, {"stop": 0, "bytes": 0})  # what folder's replay.bin holds for us
        chunk = agent_rows(run, i, saved["stop"])
        with open(folder / REPLAY_FILE, "r+b" if saved["bytes"] else "wb") as f:
            f.truncate(saved["bytes"])
            f.seek(saved["bytes"])
            pickle.dump({k: v for k, v in chunk.items() if k != "newest_next"}, f, protocol=4)
            f.flush()
            os.fsync(f.fileno())
            saved = {"stop": chunk["stop"], "bytes": f.tell()}
        state["replay"] = {"file": REPLAY_FILE, **saved, "newest_next": chunk["newest_next"]}
    atomic_write(folder / name, lambda tmp: torch.save(state, tmp))
    if replay == "incremental":
        run.replay_saved[i] = saved


def load(run, folders) -> None:
    """Resume the Lockstep `run` from each folder's checkpoint.pt (and replay.bin)."""
    states = [torch.load(f / "checkpoint.pt", weights_only=False) for f in folders]
    for i, (f, s) in enumerate(zip(folders, states)):
        part = s.get("replay")
        if part is None:
            raise RunError(f"{f / 'checkpoint.pt'} was written with checkpoint_replay='off' (no replay): it holds "
                           "the networks, not a run that can go on")
        if "file" in part:
            s["replay"] = {**_read_chunks(f / part["file"], part["bytes"]), "newest_next": part["newest_next"]}
            run.replay_saved[i] = {"stop": part["stop"], "bytes": part["bytes"]}
    load_agent_states(run, states)


def _read_chunks(path, size: int) -> dict:
    """The transitions of replay.bin's first `size` bytes, joined into one agent_rows dict."""
    joined = None
    with open(path, "rb") as f:
        while f.tell() < size:
            chunk = pickle.load(f)
            if joined is None or chunk["start"] > joined["stop"]:  # rows before it were overwritten: start there
                joined = chunk
                continue
            joined = {**{k: torch.cat([joined[k], v], 1) for k, v in chunk.items() if isinstance(v, torch.Tensor)},
                      "start": joined["start"], "stop": chunk["stop"]}
    return joined


def _stack_rows(parts: list[dict]) -> dict:
    """One agent_rows dict per agent -> the stack's (final observations padded to the most ends)."""
    m = max(p["final_obs"].shape[1] for p in parts)
    pad = lambda x: torch.cat([x, x.new_zeros(1, m - x.shape[1], *x.shape[2:])], 1)  # noqa: E731
    out = {k: torch.cat([p[k] for p in parts]) for k, v in parts[0].items() if isinstance(v, torch.Tensor)}
    out["final_obs"] = torch.cat([pad(p["final_obs"]) for p in parts])
    return {**out, "start": parts[0]["start"], "stop": parts[0]["stop"]}


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
    if all("stats" in s for s in states):  # older checkpoints lack them (they were written at a log)
        for k, v in run.sac.stats.items():
            v.copy_(torch.stack([s["stats"][k] for s in states]).to(v.device))
    run.buffer.load_state_dict(_stack_rows([s["replay"] for s in states]))
    run.t, run.updates, run.elapsed_before = shared["t"], shared["updates"], shared["wall_time"]
    run.start_time = time.time()
    if all("streams" in s for s in states):  # the largest counter: a stack without dropout never moves that one
        run.streams.load_state_dict({k: max(s["streams"][k] for s in states) for k in states[0]["streams"]})
    else:  # written before streams.py: its torch.Generator streams have no counter to carry on from
        print("resume: this checkpoint predates the counter-based random streams (streams.py), so its random "
              "numbers start afresh: the run goes on correctly, but is not the one an uninterrupted run would give")
    envs = []
    for i, s in enumerate(states):
        run.generators[i].set_state(s["generators"][0])
        envs.append(pickle.loads(zlib.decompress(s["env"])))
        run.obs[i] = s["obs"]
        run.episode_return[i] = s["episode_return"]
        run.finished_returns[i] = s["finished_returns"]
        run.max_reward[i] = s["max_reward"]
        run.last_eval[i] = s["last_eval"]
    run.envs.close()
    run.envs = stack_envs(envs, run.env_workers)
    for i, s in enumerate(states):
        if s.get("failed"):
            run.failed[i] = s["failed"]
            run.sac.freeze(i)
    run.keep_good_state()
