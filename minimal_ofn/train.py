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

One agent's failure stops one agent, and the others go on exactly as if it were not there
(lockstep.py says how).
"""

import json
import math
import shlex
import signal
import sys
import threading
from pathlib import Path

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

import torch  # noqa: E402  (the imports below take seconds)

from . import checkpoints  # noqa: E402
from .lockstep import Lockstep  # noqa: E402
from .progress import bar  # noqa: E402
from .runs import atomic_write, load_metrics, prepare, status, write_metrics  # noqa: E402


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
