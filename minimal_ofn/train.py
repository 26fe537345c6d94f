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

import json
import math
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from . import config as cfgmod
from .cli import (Interrupted, NonFiniteLoss, Parser, RunError, add_config_args, cli, config_from_args, explain,
                  set_threads)
from .config import Config


def _parser() -> Parser:
    parser = Parser(prog="python -m minimal_ofn.train", description=__doc__.split("\n\n")[0])
    add_config_args(parser)
    parser.add_argument("--out", required=True, help="run folder (config.json, metrics.csv, checkpoint.pt)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="delete what --out holds and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads (default: idle cores, minimal_ofn/threads.py; 1 for bitwise-repeatable runs)")
    return parser


if __name__ == "__main__":  # the flags first: a typo or --help answers before torch and the environments load
    ARGS = _parser().parse_args()

import numpy as np  # noqa: E402  (the imports below take seconds)
import torch  # noqa: E402

from . import checkpoints, replay  # noqa: E402
from .diagnostics import critic_diagnostics, monte_carlo, rollout  # noqa: E402
from .envpool import resolve_workers  # noqa: E402
from .envs import make_env, make_vec_env  # noqa: E402
from .memory import keep_freed_memory  # noqa: E402
from .progress import bar  # noqa: E402
from .replay import ReplayBuffer  # noqa: E402
from .resets import reset_agent  # noqa: E402
from .runs import METRICS, atomic_write, load_metrics, prepare, status, write_metrics  # noqa: E402
from .sac import SAC  # noqa: E402


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
        # Separate streams per agent: training randomness, and diagnostics that must not disturb it.
        self.generators = [_generator(s, self.device) for s in seeds]
        self.diag_generators = [_generator(s + 1_000_003, self.device) for s in seeds]
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
                       self.generators, functions)
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
            action = torch.stack([torch.rand(self.act_dim, generator=g, device=self.device) * 2 - 1
                                  for g in self.generators])
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

                fn.prime(self.buffer, primed_update, c.priming_updates, c.batch_size, self.generators)
            self.updates += c.priming_updates
            self.reset_due_agents()  # priming's updates count toward the reset schedule
        self.sac.update(self.buffer.sample(c.batch_size, self.generators))
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
            diag_batch = self.buffer.sample(max(256, 2 * self.c0.hidden), self.diag_generators)
            grads = self.sac.critic_grads if self.updates else None  # what the last SAC update returned
            columns.update(critic_diagnostics(self.sac, diag_batch, self.diag_generators, grads))
        if evaluate:
            returns = [[] for _ in range(self.n)]
            for first in range(0, self.c0.eval_episodes, len(self.eval_envs[0])):  # rounds of len(eval_envs[0])
                ks = range(first, min(first + len(self.eval_envs[0]), self.c0.eval_episodes))
                seeds = [list(s) for s in zip(*[self.rollout_seeds(1 + k) for k in ks])]
                results = rollout(self.sac, [e[: len(ks)] for e in self.eval_envs], self.diag_generators,
                                  self.device, True, seeds)
                for i, agent in enumerate(results):
                    returns[i] += [episode[0] for episode in agent]
            self.last_eval = [float(np.mean(r)) for r in returns]
        columns["eval_return"] = self.last_eval
        if monte_carlo_rollout:
            columns.update(monte_carlo(self.sac, [e[0] for e in self.eval_envs], self.diag_generators, self.device,
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


def _mean(values) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{sum(finite) / len(finite):.1f}" if finite else "-"


def train(configs, out_dirs=None, resume=False, overwrite=False, progress=True, until=None,
          functions=None) -> list[list[dict]]:
    """Train a stack of agents in lockstep; return each agent's metrics rows.

    configs: one Config per agent (or one Config). out_dirs: one folder per agent, or None
    to keep everything in memory. until: stop (with a checkpoint) after this env step.
    functions: {name: function} run in place of the package's, e.g. {"adam_step": mine} (see plug.py).
    Ctrl-C raises cli.Interrupted, which names the step the folders' checkpoints hold."""
    configs = [configs] if isinstance(configs, Config) else list(configs)
    outs = [Path(o) for o in out_dirs] if out_dirs is not None else None
    if outs is not None and len(outs) != len(configs):
        raise RunError("give one output folder per config")
    for c in configs:
        try:
            c.validate()
        except ValueError as err:
            raise RunError(str(err)) from None
    states = [prepare(o, c, resume, overwrite) for o, c in zip(outs, configs)] if outs else ["fresh"] * len(configs)
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
        checkpoints.load(run, outs)
        rows = [[r for r in load_metrics(o) if r["step"] <= run.t] for o in outs]
        if progress:
            print(f"resuming {outs[0]}{f' and {len(outs) - 1} more' if len(outs) > 1 else ''} from its checkpoint "
                  f"at step {run.t} of {configs[0].steps} ({run.updates:,} updates done)")
    c = run.c0
    end = c.steps if until is None else min(until, c.steps)
    saved_step = run.t if states[0] == "resume" else None  # what the folders' checkpoint.pt holds

    def save_checkpoint(name="checkpoint.pt", agents=None):
        for i, o in enumerate(outs or []):
            write_metrics(o / "metrics.csv", rows[i])
            if agents is None or i in agents:
                checkpoints.save(run, i, o, name, c.checkpoint_replay, atomic_write)

    def where(i):
        return str(outs[i]) if outs else f"agent {i}"

    def on_failure(i):  # its state as found, before the roll-back
        if outs:  # without the replay: the transitions up to here are in checkpoint.pt's (or replay.bin)
            state = run.agent_state(i, "off")
            atomic_write(outs[i] / "checkpoint_nonfinite.pt", lambda tmp: torch.save(state, tmp))
        f = run.failed[i]
        if len(run.failed) < run.n:  # when none is left, the run's one-line NonFiniteLoss says it all
            print(f"{where(i)}: {f['why']} at step {f['step']} (update {f['updates']}); frozen at its state of step "
                  f"{f['frozen_at_step']}, {run.n - len(run.failed)} other agent(s) go on", file=sys.stderr)

    run.on_failure = on_failure

    # Two bars, because the two phases run at speeds 10-100x apart: random steps, then gradient updates.
    name = f"{c.env} utd={c.utd} x{run.n}"
    phase, learning = None, None

    def after_step():  # what the loop measures and saves once a step and its updates are done
        nonlocal saved_step
        t = run.t
        if t % c.log_every == 0 or t == c.steps:
            evaluate = t % c.eval_every == 0 or t == c.steps
            mc = (c.mc_every == 0 or t % c.mc_every == 0) and t >= c.seed_steps
            new = run.metrics(evaluate, mc)
            for i, row in enumerate(new):
                if i not in run.failed or run.failed[i]["step"] == t:  # a failed agent's rows end with its failure
                    rows[i].append(row)
            if len(run.failed) == run.n:
                save_checkpoint("checkpoint_nonfinite.pt", [])  # metrics only: on_failure saved the states
                last = sorted(i for i in run.failed if run.failed[i]["step"] == t)
                raise NonFiniteLoss(f"non-finite loss at step {t} ({', '.join(map(where, last))}): every agent has "
                                    "failed; metrics so far are in metrics.csv, the last good state in checkpoint.pt, "
                                    "the failed one in checkpoint_nonfinite.pt")
            phase.set_postfix(ret=_mean(r["episode_return"] for r in new), q=_mean(r.get("q_policy") for r in new),
                              refresh=False)
        if outs and (t % c.checkpoint_every == 0 or t == end):
            save_checkpoint()
            saved_step = t
        if learning:  # the bar counts updates; say which env step they have reached
            phase.set_description(f"{name} step {t}/{c.steps}", refresh=False)
        phase.update(run.updates - c.priming_updates - phase.n if learning else 1)

    def env_step():  # utd_loop calls this before each step: the step before it is complete
        nonlocal phase, learning, saved_step
        if run.t > start:
            after_step()
        if stop.asked:  # Ctrl-C came during the last step: save it whole, then stop
            if outs and saved_step != run.t:
                save_checkpoint()
                saved_step = run.t
            raise KeyboardInterrupt
        if learning is not (run.t >= c.seed_steps):
            if phase is not None:
                phase.close()
            learning, phase = run.t >= c.seed_steps, _phase_bar(run, name, progress)
        run.env_step()

    start = run.t
    stop = _CtrlC(progress and outs is not None)
    try:
        with stop:
            run.fn.utd_loop(env_step, run.update, end - start, c.utd, c.seed_steps - start)
            if run.t > start:
                after_step()
    except KeyboardInterrupt:
        raise Interrupted(run.t, saved_step, outs or []) from None
    finally:
        run.envs.close()  # worker processes, if any, end here
        if phase is not None:
            phase.close()
    if outs and run.t == c.steps:
        for i, o in enumerate(outs):
            last = rows[i][-1] if rows[i] else {}
            # null, not NaN, where a value is missing (no episode finished yet): strict JSON parsers reject NaN
            summary = {k: _finite_or_none(last.get(k))
                       for k in ("step", "updates", "wall_time", "eval_return", "episode_return")}
            summary["failed"] = run.failed.get(i)
            (o / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    if run.failed and run.t == c.steps:
        print(f"done at step {run.t}: {run.n - len(run.failed)} of {run.n} agents finished; failed: "
              + "; ".join(f"{where(i)} at step {f['step']} (update {f['updates']}, {f['why']})"
                          for i, f in sorted(run.failed.items())), file=sys.stderr)
    return rows


def _phase_bar(run, name, progress):
    """The bar of the phase run.t is in: random steps (fast), or the learning phase counted in updates."""
    c = run.c0
    if run.t < c.seed_steps:
        return bar(total=c.seed_steps, initial=run.t, desc=f"{name} random", unit="step", disable=not progress)
    # The updates of utd_loop (priming has its own bar): utd after every step from seed_steps on, the same count as
    # Config.planned_updates and summary.json's "updates" (less priming).
    return bar(total=c.planned_updates() - c.priming_updates, initial=run.updates - c.priming_updates, desc=name,
               unit="update", disable=not progress, smoothing=0.05)


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _CtrlC:
    """While training: the first Ctrl-C asks the loop to stop once the current step and its updates are done (and
    saved, so no step is lost); a second one stops at once. Only in the main thread (where signals arrive)."""

    def __init__(self, announce: bool):
        self.asked, self.announce, self.previous = False, announce, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        if self.announce:
            print("\nCtrl-C: saving a checkpoint once this step's updates are done (Ctrl-C again stops without it)",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


# ---- command line
def main(argv=None):
    args = ARGS if argv is None and __name__ == "__main__" else _parser().parse_args(argv)
    out = Path(args.out)

    def run():
        set_threads(args.threads)
        if args.resume and status(out) == "empty":
            raise RunError(f"--resume: {out} holds no run to continue (no checkpoint.pt or summary.json); "
                           "leave out --resume to start one there")
        cfg = config_from_args(args, out / "config.json" if args.resume else None)
        try:
            cfg.validate()
        except ValueError as err:  # say where a value no flag gave came from ("5000 is the default")
            raise RunError(explain(err, cfg, args, saved=args.resume)) from None
        rows = train([cfg], [out], resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
        last = rows[0][-1] if rows[0] else {}
        print(f"done: {out} at step {last.get('step')}, eval return {last.get('eval_return')}")

    cli(run, resume_command=shlex.join(["python", "-m", "minimal_ofn.train", "--out", str(out), "--resume"]))


if __name__ == "__main__":
    main()
