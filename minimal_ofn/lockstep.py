"""N agents in lockstep: each in its own environment, one replay slice and one SAC stack for all.

Everything a stack needs lives on one object (envs, replay, SAC, random streams, counters), so
the training loop (train.py), the fixed-buffer measurement (fixed_buffer.py), checkpoints and the
bench drive the same thing. Each agent has its own random streams: a training one and a
diagnostics one that logging draws from, so logging more or less often does not change training.

One agent's failure stops one agent. Each log reads the losses summed on the device since the
last log (one host sync, as before) and whether each agent's networks, temperature and optimizer
state are finite. An agent with a non-finite critic loss, actor loss, temperature or state has
failed somewhere since the last log; it is

- rolled back to its state at the last log (its last good state, kept on the device at every log),
  and frozen there: its optimizers skip it and its target critic stays put, so its parameters,
  moments and temperature no longer change, whatever its gradients hold;
- no longer acting: its environment is stepped with zero actions (it is one of the vector env's
  envs) and what that records is never learned from. An action that is not finite is never sent
  to an environment (a NaN policy acts zero until the next log finds it);
- done writing metrics: its metrics end with the failing row (the non-finite losses; its other
  columns NaN). Its folder keeps metrics.csv, checkpoint.pt (from then on its last good state and
  the failure, so that the stack resumes together and it stays frozen), checkpoint_nonfinite.pt
  (its state when found) and, at the end, summary.json, whose "failed" says at which step and
  update it was found, the step its state is frozen at, and why.

The other agents go on exactly as if it were not there: every op of an update is per agent (the
gradient of the summed losses is each agent's own, even where one is NaN), and every agent has its
own random streams and environment. When every agent has failed, the run stops with NonFiniteLoss.
"""

import math
import time

import numpy as np
import torch

from . import config as cfgmod
from . import checkpoints, replay
from .cli import RunError
from .config import Config
from .diagnostics import critic_diagnostics, monte_carlo, rollout
from .envpool import resolve_workers
from .envs import make_env, make_vec_env
from .memory import keep_freed_memory
from .replay import ReplayBuffer
from .resets import reset_agent
from .runs import METRICS
from .sac import SAC
from .streams import Streams
from .progress import bar


EVAL_ENVS = 64  # evaluation envs of a stack beyond one per agent (Lockstep.__init__)


def _generator(seed: int, device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


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
        # Each agent's random numbers (streams.py): one stream per purpose, the diagnostics' apart so that logging
        # does not disturb training; a torch.Generator per agent for its initial and reset weights.
        self.streams = Streams(seeds, self.device)
        self.generators = [_generator(s, self.device) for s in seeds]
        repeat = self.c0.action_repeat
        # Eval and Monte Carlo: up to eval_episodes envs per agent, stepped together (diagnostics.rollout); at most
        # EVAL_ENVS in all beyond one per agent (a dog env holds ~100 MB), the other episodes run in rounds.
        per_agent = max(1, min(self.c0.eval_episodes, EVAL_ENVS // self.n))
        self.eval_envs = [[make_env(self.c0.env, s + 2_000_003, repeat) for _ in range(per_agent)] for s in seeds]
        obs_dim = self.eval_envs[0][0].observation_space.shape[0]
        self.act_dim = self.eval_envs[0][0].action_space.shape[0]
        capacity = self.c0.buffer_size or self.c0.steps
        if progress:  # before anything big is allocated
            per = replay.planned_bytes(1, capacity, obs_dim, self.act_dim, self.c0.replay_dtype)
            print(f"replay: {per / capacity:,.0f} bytes per transition ({self.c0.replay_dtype} observations, each "
                  f"stored once), {replay.gib(per)} per agent, {replay.gib(per * self.n)} for {self.n} on "
                  f"{self.device}")
        self.buffer = ReplayBuffer(self.n, capacity, obs_dim, self.act_dim, self.device, self.c0.replay_dtype)
        self.env_workers = resolve_workers(self.c0.env_workers, self.n, self.eval_envs[0][0])
        self.envs = make_vec_env(self.c0.env, seeds, repeat, self.env_workers)
        self.replay_saved = {}  # agent -> what its folder's replay.bin holds (checkpoints.save)
        torch.manual_seed(seeds[0])  # nothing should draw from the global stream; this pins it if something does
        self.compile = self.c0.resolved_compile(functions)  # "auto": compiled where the run is long enough to pay
        if self.c0.compile == "auto" and self.compile == "update" and progress:
            print(f"compile='auto': {self.c0.planned_updates():,} updates planned, so the whole update runs compiled "
                  "(sac.py's update through torch.compile; the compile takes up to a minute at the first update; "
                  "compile='off' runs it eagerly)")  # stdout: a notice, not an error (notebooks box stderr in red)
        self.sac = SAC([c.replace(compile=self.compile) for c in configs], obs_dim, self.act_dim, self.device,
                       self.generators, functions, self.streams)
        self.fn = self.sac.fn  # the functions this run uses (plug.py)
        self.obs, _ = self.envs.reset(seed=seeds)
        self.t, self.updates = 0, 0
        self.episode_return = np.zeros(self.n)
        self.finished_returns = [[] for _ in range(self.n)]
        self.max_reward = np.full(self.n, -np.inf)
        self.last_eval = [float("nan")] * self.n
        self.start_time, self.elapsed_before = time.time(), 0.0
        self.failed = {}  # agent -> {"step", "updates", "frozen_at_step", "why"} (see the module docstring)
        self.on_failure = lambda i: None  # called with a failed agent's state still in place (train saves it)
        self.keep_good_state()

    # ---- acting and learning
    def env_step(self, action: torch.Tensor | None = None) -> None:
        """One step of every env; `action` [N, da] in [-1, 1] replaces the random / policy action (fixed_buffer.py)."""
        if action is not None:
            pass
        elif self.t < self.c0.seed_steps:
            action = self.streams.explore.uniform(self.act_dim) * 2 - 1
        else:
            action = self.sac.act(torch.as_tensor(self.obs, device=self.device))
        action = action.cpu().numpy()
        if self.failed or not np.isfinite(action).all():  # failed agents act zero, and NaN never reaches an env
            acting = np.isfinite(action).all(1)
            acting[list(self.failed)] = False
            action = np.where(acting[:, None], action, 0).astype(action.dtype)
        obs, reward, terminated, truncated, info = self.envs.step(action)
        next_obs = obs.copy()
        if "_final_obs" in info:  # same-step autoreset: obs already starts the next episode
            for i in np.flatnonzero(info["_final_obs"]):
                next_obs[i] = info["final_obs"][i]
        self.buffer.add(self.obs, action, reward, next_obs, terminated, terminated | truncated)
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
            with bar(total=c.priming_updates, desc="priming", unit="update", disable=not self.progress,
                     leave=False) as ticks:
                def primed_update(batch):  # priming takes minutes: show its progress
                    self.sac.update(batch)
                    ticks.update(1)

                fn.prime(self.buffer, primed_update, c.priming_updates, c.batch_size, self.streams.replay)
            self.updates += c.priming_updates
            self.reset_due_agents()  # priming's updates count toward the reset schedule
        self.sac.update(self.buffer.sample(c.batch_size, self.streams.replay))
        self.updates += 1
        self.reset_due_agents()

    def reset_due_agents(self) -> None:
        for i, cfg in enumerate(self.configs):
            if i not in self.failed and self.fn.reset_due(cfg.reset_every, self.updates):
                reset_agent(self.sac, i, cfg.reset_kind)  # resets.py: "critic_optimizer" is not SAC's own

    def learn(self) -> None:
        """The updates that follow one environment step, outside utd_loop (the bench times them this way)."""
        if self.t >= self.c0.seed_steps:
            for _ in range(self.c0.utd):
                self.update()

    # ---- measuring
    def metrics(self, evaluate: bool, monte_carlo_rollout: bool) -> list[dict]:
        losses = self.sac.pop_stats()
        failing = self.find_failures(losses)
        rows = [{**dict.fromkeys(METRICS, float("nan")), "step": self.t, "updates": self.updates,
                 "wall_time": round(self.wall_time(), 3)} for _ in range(self.n)]
        columns = dict(losses)
        columns["episode_return"] = [r[-1] if r else float("nan") for r in self.finished_returns]
        columns["max_reward"] = self.max_reward.tolist()
        columns["q_bound"] = [m / (1 - c.gamma) for m, c in zip(self.max_reward, self.configs)]
        if self.buffer.size:
            diag_batch = self.buffer.sample(max(256, 2 * self.c0.hidden), self.streams.diagnostics)
            grads = self.sac.critic_grads if self.updates else None  # what the last SAC update returned
            columns.update(critic_diagnostics(self.sac, diag_batch, self.streams.diagnostics, grads))
        if evaluate:
            returns = [[] for _ in range(self.n)]
            for first in range(0, self.c0.eval_episodes, len(self.eval_envs[0])):  # rounds of len(eval_envs[0])
                ks = range(first, min(first + len(self.eval_envs[0]), self.c0.eval_episodes))
                seeds = [list(s) for s in zip(*[self.rollout_seeds(1 + k) for k in ks])]
                results = rollout(self.sac, [e[: len(ks)] for e in self.eval_envs], self.streams.diagnostics,
                                  self.device, True, seeds)
                for i, agent in enumerate(results):
                    returns[i] += [episode[0] for episode in agent]
            self.last_eval = [float(np.mean(r)) for r in returns]
        columns["eval_return"] = self.last_eval
        if monte_carlo_rollout:
            columns.update(monte_carlo(self.sac, [e[0] for e in self.eval_envs], self.streams.diagnostics, self.device,
                                       [c.gamma for c in self.configs], self.rollout_seeds(0)))
        for name, values in columns.items():
            for row, value in zip(rows, values):
                row[name] = value
        for i in failing:  # its losses say why; what was measured of its rolled-back state is left out
            rows[i].update({k: float("nan") for k in columns if k not in ("episode_return", "max_reward", "q_bound")})
            rows[i].update({k: losses[k][i] for k in ("critic_loss", "actor_loss", "temperature")})
        if len(self.failed) < self.n:
            self.keep_good_state()
        return rows

    # ---- failures (the module docstring)
    @torch.no_grad()
    def keep_good_state(self) -> None:
        """Remember every agent's state as its last good one (a failed agent's is its frozen one)."""
        self.good = [t.clone() for t in self.sac.state_tensors()], self.t

    @torch.no_grad()
    def find_failures(self, stats: dict) -> list[int]:
        """The agents whose stats (SAC.pop_stats) show a failure since the last log: each is marked failed,
        handed to on_failure, rolled back to its last good state and frozen."""
        finite = stats.pop("finite")
        new = []
        for i in range(self.n):
            why = [k for k in ("critic_loss", "actor_loss", "temperature") if not math.isfinite(stats[k][i])]
            if i in self.failed or (finite[i] and not why):
                continue
            self.failed[i] = {"step": self.t, "updates": self.updates, "frozen_at_step": self.good[1],
                              "why": "non-finite " + (", ".join(why) or "parameters or optimizer state")}
            self.on_failure(i)
            for t, good in zip(self.sac.state_tensors(), self.good[0]):
                t[i].copy_(good[i])
            self.sac.freeze(i)
            new.append(i)
        return new

    def rollout_seeds(self, k: int) -> list[int]:
        # Evaluation episodes start from states fixed by (seed, step, k): nothing to checkpoint.
        return [(c.seed * 1_000_003 + self.t * 101 + k) % 2**31 for c in self.configs]

    def wall_time(self) -> float:
        return self.elapsed_before + time.time() - self.start_time

    # ---- checkpoints (checkpoints.py): agent i's state is slice i of every stacked tensor
    agent_state = checkpoints.agent_state
    load_agent_states = checkpoints.load_agent_states
