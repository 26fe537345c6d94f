"""The training loop: N agents in lockstep, `utd` gradient updates per environment step.

    for t = 1 .. steps:
        a_t ~ Uniform[-1, 1]^|A| if t <= seed_steps else pi(.|s_t)     (each agent in its own env)
        store (s_t, a_t, r_t, s_{t+1}, terminated_t)
        if t == seed_steps and priming_updates:  priming_updates updates on the random data
        if t >= seed_steps:  utd SAC updates, each on a fresh uniform batch

A single run is the N = 1 case. Agents with different seeds or with different
switches (OFN, dropout, beta1, ...) but the same shapes share every stacked
update: agent n's result does not depend on who else is in the stack.

Command line:
    python -m minimal_ofn.train --env dmc:cheetah-run --utd 32 --steps 20000 --seed 0 --out runs/NAME
writes runs/NAME/config.json, metrics.csv (one row per log interval), checkpoint.pt
(atomically, every checkpoint_every steps) and summary.json when the run finishes.
"""

import argparse
import csv
import ctypes
import ctypes.util
import json
import math
import os
import pickle
import shutil
import sys
import time
import typing
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config as cfgmod
from .config import Config
from .diagnostics import critic_diagnostics, monte_carlo, rollout
from .envs import make_env, make_vec_env, stack_envs
from .replay import ReplayBuffer
from .sac import SAC

METRICS = [
    "step", "updates", "wall_time", "episode_return", "eval_return", "critic_loss", "actor_loss", "temperature",
    "q_policy", "q_replay", "q_ood", "q_rollout", "mc_return", "q_over_mc", "max_reward", "q_bound",
    "feature_norm", "head_weight_norm", "srank", "adam_m_mean", "adam_m_max", "adam_v_mean", "adam_v_max",
    "grad_norm", "mc_soft_return",
]


class RunError(Exception):
    """A problem with the user's request: the CLI prints it on one line, without a traceback."""


class NonFiniteLoss(RunError):
    pass


def _generator(seed: int, device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks instead of returning them to the OS.

    By default glibc hands every block above its mmap threshold back to the kernel
    when it is freed, so each update's [N, 2, B, H] activations come back as fresh
    pages: at paper size and five agents that is about 2,100 page faults per update,
    7-15% of its time (faults counted with resource.getrusage; time with python -m minimal_ofn.bench).
    Process-wide, only where glibc is the allocator; returns whether it took effect."""
    path = ctypes.util.find_library("c")
    libc = ctypes.CDLL(path) if path else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 256 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))


def _tree(fn, *trees):
    """Apply fn leaf-wise over nested dicts/lists of tensors (the checkpoint layout)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _tree(fn, *(t[k] for t in trees)) for k in first}
    if isinstance(first, (list, tuple)):
        return [_tree(fn, *items) for items in zip(*trees)]
    return fn(*trees)


class Lockstep:
    """Everything a stack of agents needs: envs, replay, SAC, random streams, counters."""

    def __init__(self, configs: list[Config], progress: bool = True, functions: dict | None = None):
        for c in configs:
            c.validate()
        keys = {cfgmod.stack_key(c) for c in configs}
        if len(keys) != 1:
            raise RunError(f"agents in one stack must agree on {', '.join(cfgmod.STACK_FIELDS)}")
        self.configs, self.c0, self.n, self.progress = configs, configs[0], len(configs), progress
        self.device = self.c0.resolved_device()
        if self.device.type == "cpu":
            keep_freed_memory()
        seeds = [c.seed for c in configs]
        # Separate streams per agent: training randomness, and diagnostics that must not disturb it.
        self.generators = [_generator(s, self.device) for s in seeds]
        self.diag_generators = [_generator(s + 1_000_003, self.device) for s in seeds]
        self.envs = make_vec_env(self.c0.env, seeds)
        self.eval_envs = [make_env(self.c0.env, s + 2_000_003) for s in seeds]  # for eval and Monte Carlo
        obs_dim = self.envs.single_observation_space.shape[0]
        self.act_dim = self.envs.single_action_space.shape[0]
        torch.manual_seed(seeds[0])  # nothing should draw from the global stream; this pins it if something does
        self.sac = SAC(configs, obs_dim, self.act_dim, self.device, self.generators, functions)
        self.fn = self.sac.fn  # the functions this run uses (plug.py)
        self.buffer = ReplayBuffer(self.n, self.c0.buffer_size or self.c0.steps, obs_dim, self.act_dim, self.device)
        self.obs, _ = self.envs.reset(seed=seeds)
        self.t, self.updates = 0, 0
        self.episode_return = np.zeros(self.n)
        self.finished_returns = [[] for _ in range(self.n)]
        self.max_reward = np.full(self.n, -np.inf)
        self.last_eval = [float("nan")] * self.n
        self.start_time, self.elapsed_before = time.time(), 0.0

    # ---- acting and learning
    def env_step(self) -> None:
        if self.t < self.c0.seed_steps:
            action = torch.stack([torch.rand(self.act_dim, generator=g, device=self.device) * 2 - 1
                                  for g in self.generators])
        else:
            action = self.sac.act(torch.as_tensor(self.obs, device=self.device))
        action = action.cpu().numpy()
        obs, reward, terminated, truncated, info = self.envs.step(action)
        next_obs = obs.copy()
        if "_final_obs" in info:  # same-step autoreset: obs already starts the next episode
            for i in np.flatnonzero(info["_final_obs"]):
                next_obs[i] = info["final_obs"][i]
        self.buffer.add(self.obs, action, reward, next_obs, terminated)
        self.obs = obs
        self.episode_return += reward
        self.max_reward = np.maximum(self.max_reward, reward)
        for i in np.flatnonzero(terminated | truncated):
            self.finished_returns[i].append(float(self.episode_return[i]))
            self.episode_return[i] = 0.0
        self.t += 1

    def update(self) -> None:
        """One SAC update on a fresh batch (priming first, before the first one; resets when due)."""
        c, fn = self.c0, self.fn
        if self.t == c.seed_steps and self.updates == 0 and c.priming_updates:
            fn.prime(self.buffer, self.sac.update, c.priming_updates, c.batch_size, self.generators)
            self.updates += c.priming_updates
        self.sac.update(self.buffer.sample(c.batch_size, self.generators))
        self.updates += 1
        for i, cfg in enumerate(self.configs):
            if fn.reset_due(cfg.reset_every, self.updates):
                self.sac.reset_agent(i, cfg.reset_kind)

    def learn(self) -> None:
        """The updates that follow one environment step, outside utd_loop (bench.py times them this way)."""
        if self.t >= self.c0.seed_steps:
            for _ in range(self.c0.utd):
                self.update()

    # ---- measuring
    def metrics(self, evaluate: bool, monte_carlo_rollout: bool) -> list[dict]:
        losses = self.sac.pop_stats()
        rows = [{**dict.fromkeys(METRICS, float("nan")), "step": self.t, "updates": self.updates,
                 "wall_time": round(self.wall_time(), 3)} for _ in range(self.n)]
        columns = dict(losses)
        columns["episode_return"] = [r[-1] if r else float("nan") for r in self.finished_returns]
        columns["max_reward"] = self.max_reward.tolist()
        columns["q_bound"] = [m / (1 - c.gamma) for m, c in zip(self.max_reward, self.configs)]
        if self.buffer.size:
            diag_batch = self.buffer.sample(max(256, 2 * self.c0.hidden), self.diag_generators)
            columns.update(critic_diagnostics(self.sac, diag_batch, self.diag_generators))
        if evaluate:
            results = [rollout(self.sac, self.eval_envs, self.diag_generators, self.device, True,
                               self.rollout_seeds(1 + k)) for k in range(self.c0.eval_episodes)]
            self.last_eval = [float(np.mean([r[i][0] for r in results])) for i in range(self.n)]
        columns["eval_return"] = self.last_eval
        if monte_carlo_rollout:
            columns.update(monte_carlo(self.sac, self.eval_envs, self.diag_generators, self.device,
                                       [c.gamma for c in self.configs], self.rollout_seeds(0)))
        for name, values in columns.items():
            for row, value in zip(rows, values):
                row[name] = value
        return rows

    def rollout_seeds(self, k: int) -> list[int]:
        # Evaluation episodes start from states fixed by (seed, step, k): nothing to checkpoint.
        return [(c.seed * 1_000_003 + self.t * 101 + k) % 2**31 for c in self.configs]

    def wall_time(self) -> float:
        return self.elapsed_before + time.time() - self.start_time

    # ---- checkpoints: every stateful tensor has the agent axis first, so agent i's state is a slice
    def _stacked_state(self) -> dict:
        opt = {k: o.state_dict() for k, o in self.sac.optimizers().items()}
        return {
            "nets": {k: m.state_dict() for k, m in self.sac.modules().items()},
            "log_alpha": self.sac.log_alpha.detach(),
            "opt": opt,
            "buffer": {k: v for k, v in self.buffer.state_dict().items() if k not in ("pos", "size")},
        }

    def agent_state(self, i: int) -> dict:
        return {
            "stacked": _tree(lambda x: x[i].detach().cpu().clone(), self._stacked_state()),
            "shared": {"t": self.t, "updates": self.updates, "pos": self.buffer.pos, "size": self.buffer.size,
                       "wall_time": self.wall_time()},
            "generators": [self.generators[i].get_state(), self.diag_generators[i].get_state()],
            # The training env mid-episode (MuJoCo's arena is mostly zeros: compresses ~20x).
            "env": zlib.compress(pickle.dumps(self.envs.envs[i]), 1),
            "obs": self.obs[i].copy(),
            "episode_return": float(self.episode_return[i]),
            "finished_returns": list(self.finished_returns[i]),
            "max_reward": float(self.max_reward[i]),
            "last_eval": self.last_eval[i],
            "config": self.configs[i].to_dict(),
        }

    def load_agent_states(self, states: list[dict]) -> None:
        shared = states[0]["shared"]
        if any(s["shared"]["t"] != shared["t"] for s in states):
            raise RunError("the checkpoints of this stack were written at different steps; resume them separately")
        stacked = _tree(lambda *xs: torch.stack(xs).to(self.device), *[s["stacked"] for s in states])
        for k, m in self.sac.modules().items():
            m.load_state_dict(stacked["nets"][k])
        with torch.no_grad():
            self.sac.log_alpha.copy_(stacked["log_alpha"])
        for k, o in self.sac.optimizers().items():
            o.load_state_dict(stacked["opt"][k])
        self.buffer.load_state_dict({**stacked["buffer"], "pos": shared["pos"], "size": shared["size"]})
        self.t, self.updates, self.elapsed_before = shared["t"], shared["updates"], shared["wall_time"]
        self.start_time = time.time()
        envs = []
        for i, s in enumerate(states):
            self.generators[i].set_state(s["generators"][0])
            self.diag_generators[i].set_state(s["generators"][1])
            envs.append(pickle.loads(zlib.decompress(s["env"])))
            self.obs[i] = s["obs"]
            self.episode_return[i] = s["episode_return"]
            self.finished_returns[i] = s["finished_returns"]
            self.max_reward[i] = s["max_reward"]
            self.last_eval[i] = s["last_eval"]
        self.envs = stack_envs(envs)


def _mean(values) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{sum(finite) / len(finite):.1f}" if finite else "-"


# ---- files of one run
def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: (float(v) if v not in ("", None) else float("nan")) for k, v in row.items()}
                for row in csv.DictReader(f)]
    for row in rows:
        row["step"], row["updates"] = int(row["step"]), int(row["updates"])
    return rows


def _write_metrics(path: Path, rows: list[dict]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
            w.writeheader()
            for row in rows:
                w.writerow({k: ("" if isinstance(row.get(k), float) and math.isnan(row[k]) else row.get(k, ""))
                            for k in METRICS})

    _atomic_write(path, write)


def load_metrics(out_dir) -> list[dict]:
    """The metrics rows of a run folder, numbers as floats (NaN where a column had no value)."""
    return _read_metrics(Path(out_dir) / "metrics.csv")


# Bookkeeping that may change when a run is resumed; everything else must match the saved config.json.
RESUME_MAY_CHANGE = {"device", "compile", "log_every", "eval_every", "eval_episodes", "mc_every", "checkpoint_every"}


def _prepare(out: Path, cfg: Config, resume: bool, overwrite: bool) -> str:
    """Return 'fresh', 'resume' or 'done' for this folder, refusing to clobber anything by accident."""
    finished, ckpt = (out / "summary.json").exists(), (out / "checkpoint.pt").exists()
    if overwrite and out.exists():
        shutil.rmtree(out)
    elif resume and (finished or ckpt):
        # A finished run is checked too: its saved metrics are returned as the answer to this config.
        saved = json.loads((out / "config.json").read_text())
        wanted = json.loads(json.dumps(cfg.to_dict()))
        differ = [f"{k} (saved {saved.get(k)!r}, given {v!r})" for k, v in wanted.items()
                  if k not in RESUME_MAY_CHANGE and saved.get(k, v) != v]
        if differ:
            raise RunError(f"cannot resume {'the finished run in ' if finished else ''}{out} with other settings: "
                           f"{'; '.join(differ)}")
        return "done" if finished else "resume"
    elif finished:
        raise RunError(f"{out} already holds a finished run: pass --resume to keep it or --overwrite to replace it")
    elif ckpt:
        raise RunError(f"{out} holds an unfinished run: pass --resume to continue it or --overwrite to start over")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return "fresh"


def train(configs, out_dirs=None, resume=False, overwrite=False, progress=True, until=None,
          functions=None) -> list[list[dict]]:
    """Train a stack of agents in lockstep; return each agent's metrics rows.

    configs: one Config per agent (or one Config). out_dirs: one folder per agent, or None
    to keep everything in memory. until: stop (with a checkpoint) after this env step.
    functions: {name: function} run in place of the package's, e.g. {"adam_step": mine} (see plug.py)."""
    configs = [configs] if isinstance(configs, Config) else list(configs)
    outs = [Path(o) for o in out_dirs] if out_dirs is not None else None
    if outs is not None and len(outs) != len(configs):
        raise RunError("give one output folder per config")
    for c in configs:
        try:
            c.validate()
        except ValueError as err:
            raise RunError(str(err)) from None
    states = [_prepare(o, c, resume, overwrite) for o, c in zip(outs, configs)] if outs else ["fresh"] * len(configs)
    if set(states) == {"done"}:
        return [load_metrics(o) for o in outs]
    if len(set(states)) > 1:
        raise RunError(f"some of these runs are finished or started and some are not: {dict(zip(map(str, outs), states))}")
    try:
        run = Lockstep(configs, progress, functions)
    except ValueError as err:
        raise RunError(str(err)) from None
    rows = [[] for _ in configs]
    if states[0] == "resume":
        run.load_agent_states([torch.load(o / "checkpoint.pt", weights_only=False) for o in outs])
        rows = [[r for r in load_metrics(o) if r["step"] <= run.t] for o in outs]
    c = run.c0
    end = c.steps if until is None else min(until, c.steps)
    bar = tqdm(total=c.steps, initial=run.t, desc=f"{c.env} utd={c.utd} x{run.n}", disable=not progress,
               unit="step", mininterval=1.0, smoothing=0.05)

    def save_checkpoint(name="checkpoint.pt"):
        for i, o in enumerate(outs or []):
            _write_metrics(o / "metrics.csv", rows[i])
            state = run.agent_state(i)
            _atomic_write(o / name, lambda tmp: torch.save(state, tmp))

    def after_step():  # what the loop measures and saves once a step and its updates are done
        t = run.t
        if t % c.log_every == 0 or t == c.steps:
            evaluate = t % c.eval_every == 0 or t == c.steps
            mc = (c.mc_every == 0 or t % c.mc_every == 0) and t >= c.seed_steps
            new = run.metrics(evaluate, mc)
            for i, row in enumerate(new):
                rows[i].append(row)
            bad = [i for i, row in enumerate(new) if not all(map(math.isfinite, (row["critic_loss"], row["actor_loss"])))]
            if bad:
                save_checkpoint("checkpoint_nonfinite.pt")
                where = ", ".join(str(outs[i]) if outs else f"agent {i}" for i in bad)
                raise NonFiniteLoss(f"non-finite loss at step {t} ({where}); metrics so far are in metrics.csv, "
                                    "the last good state in checkpoint.pt, the failed one in checkpoint_nonfinite.pt")
            bar.set_postfix(ret=_mean(r["episode_return"] for r in new), q=_mean(r.get("q_policy") for r in new),
                            refresh=False)
        if outs and (t % c.checkpoint_every == 0 or t == end):
            save_checkpoint()
        bar.update(1)

    def env_step():
        if run.t > start:
            after_step()
        run.env_step()

    start = run.t
    run.fn.utd_loop(env_step, run.update, end - start, c.utd, c.seed_steps - start)
    if run.t > start:
        after_step()
    bar.close()
    if outs and run.t == c.steps:
        for i, o in enumerate(outs):
            last = rows[i][-1] if rows[i] else {}
            summary = {k: last.get(k) for k in ("step", "updates", "wall_time", "eval_return", "episode_return")}
            (o / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rows


# ---- command line
def config_from_args(args, saved: Path | None = None) -> Config:
    """Flags over a preset over the defaults; with `saved` (a config.json), flags over that run's settings."""
    if saved is not None and saved.exists():
        base = Config(**json.loads(saved.read_text()))
    else:
        base = cfgmod.preset(args.preset) if args.preset else Config()
    changes = {k: v for k, v in vars(args).items() if k in Config.__dataclass_fields__ and v is not None}
    return base.replace(**changes)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """One --flag per Config field (defaults come from the preset, or Config)."""
    parser.add_argument("--preset", choices=sorted(cfgmod.PRESETS), help="start from a named preset")
    for name, hint in typing.get_type_hints(Config).items():
        kind = next(k for k in (bool, int, float, str) if k == hint or k in typing.get_args(hint))
        parser.add_argument(f"--{name}", type=_bool if kind is bool else kind, default=None,
                            help=f"(default {Config.__dataclass_fields__[name].default})")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def cli(main):
    """Run main(); turn RunError/ValueError into a one-line message and exit status, never a traceback."""
    try:
        main()
    except (RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1 if isinstance(err, NonFiniteLoss) else 2)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; continue with --resume", file=sys.stderr)
        sys.exit(130)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line on stderr (no usage dump)."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = Parser(prog="python -m minimal_ofn.train", description=__doc__.split("\n\n")[0])
    add_config_args(parser)
    parser.add_argument("--out", required=True, help="run folder (config.json, metrics.csv, checkpoint.pt)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="delete what --out holds and start over")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    def run():
        cfg = config_from_args(args, Path(args.out) / "config.json" if args.resume else None)
        rows = train([cfg], [args.out], resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
        last = rows[0][-1] if rows[0] else {}
        print(f"done: {args.out} at step {last.get('step')}, eval return {last.get('eval_return')}")

    cli(run)


if __name__ == "__main__":
    main()
