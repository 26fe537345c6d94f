"""Experiments: variants x seeds x UTD values, stacked into as few lockstep runs as possible.

Runs whose configs agree on config.STACK_FIELDS share one train() call (one stack):
five variants x three seeds at one UTD are a single run of 15 agents. Each run keeps
its own folder, so a grid can be stopped and restarted: finished runs are loaded,
unfinished ones resume from their checkpoint.

    python -m minimal_ofn.experiment --preset tutorial --utd 1 32 --variants baseline ofn resets \\
        --seeds 0 1 2 --steps 4000 --out results
    python -m minimal_ofn.experiment plot results          # figures + table for every UTD in results/
    python -m minimal_ofn.experiment story --out docs/story # the paper's story, claims checked

Layout: results/utd<U>/<variant>/seed<k>/{config.json, metrics.csv, checkpoint.pt, summary.json}.
Variant names are those of config.VARIANTS, plus "resets" (full reset every K updates)
and "priming" (K updates on the random seed transitions first); join them with "+",
e.g. "ofn+priming".
"""

import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from . import config as cfgmod
from . import runs
from .cli import Parser, RunError, add_config_args, add_flag, cli, config_from_args
from .cluster import LAUNCHERS, Stack, StacksFailed, run_stacks
from .config import Config
from .envs import make_env
from .plots import entropy_allowance, seed_curve, story_figure, summary_numbers, summary_table
from .runs import load_metrics
from .train import train

RESET_EVERY = 32_000  # updates between full resets: every 1,000 env steps at UTD 32 (tutorial scale)
PRIMING_UPDATES = 20_000  # Nikishin et al. use 100k; 20k is what a shared 2-core CPU does in ~10-20 minutes


def variant_changes(name: str, reset_every: int = RESET_EVERY, priming_updates: int = PRIMING_UPDATES) -> dict:
    """The Config changes for a variant name; parts joined by "+" are combined ("ofn+priming")."""
    extra = {"resets": {"reset_every": reset_every, "reset_kind": "full"},
             "priming": {"priming_updates": priming_updates}}
    changes = {}
    for part in name.split("+"):
        if part in cfgmod.VARIANTS:
            changes.update(cfgmod.VARIANTS[part])
        elif part in extra:
            changes.update(extra[part])
        else:
            known = ", ".join([*cfgmod.VARIANTS, *extra])
            raise RunError(f"unknown variant {part!r}; variants: {known} (join with '+', e.g. ofn+priming)")
    return changes


# ---- running
def _state(folder: Path, cfg: Config):
    """'done', ('resume', step) or 'fresh' for a run folder (runs.reuse decides whether it may be reused)."""
    state = runs.reuse(folder, cfg)
    if state == "finished":
        return "done"
    return ("resume", runs.checkpoint_step(folder)) if state == "started" else "fresh"


def run_variants(base: Config, variants: dict, seeds=(0,), out=None, progress=True, resume=True,
                 launcher="local", cpus_per_stack=1.0) -> dict:
    """Run every variant x seed; return {variant: [rows of each seed]}.

    variants: {name: Config changes}. Everything that can share a stack runs in ONE
    lockstep train() call. With `out`, run (variant, seed) lives in out/<variant>/seed<k>/:
    finished runs are loaded, unfinished ones resumed (resume=False: refuse to touch them).
    launcher, cpus_per_stack: where the stacks run (cluster.run_stacks)."""
    jobs = []
    for name, changes in variants.items():
        for seed in seeds:
            cfg = base.replace(**{**changes, "seed": seed})
            try:
                cfg.validate()
            except ValueError as err:
                raise RunError(f"{name}: {err}") from None
            jobs.append((name, seed, cfg, Path(out) / name / f"seed{seed}" if out is not None else None))
    groups = {}
    for job in jobs:
        groups.setdefault(cfgmod.stack_key(job[2]), []).append(job)
    rows, stacks = {}, []
    for group in groups.values():
        if out is None or not resume:
            batches = [group]
        else:  # one train() call per state: fresh runs together, resumed runs by their checkpoint's step
            batches = {}
            for job in group:
                state = _state(job[3], job[2])
                if state == "done":
                    rows[job[0], job[1]] = load_metrics(job[3])
                else:
                    batches.setdefault(state, []).append(job)
            batches = list(batches.values())
        stacks += [Stack([j[2] for j in batch], [j[3] for j in batch] if out is not None else None,
                         [(j[0], j[1]) for j in batch]) for batch in batches]
    rows.update(run_stacks(stacks, launcher, cpus_per_stack, progress, resume, skipped=len(rows), train_fn=train))
    return {name: [rows[name, seed] for seed in seeds] for name in variants}


def load_results(folder) -> dict:
    """{utd: {variant: [rows per seed]}} from a results folder laid out as utd<U>/<variant>/seed<k>/."""
    out = {}
    for utd_dir in sorted(Path(folder).glob("utd*"), key=lambda p: int(p.name[3:]) if p.name[3:].isdigit() else 0):
        variants = {}
        for vdir in sorted(p for p in utd_dir.iterdir() if p.is_dir()):
            runs = [load_metrics(s) for s in sorted(vdir.glob("seed*")) if (s / "metrics.csv").exists()]
            if runs:
                variants[vdir.name] = runs
        if variants:
            out[int(utd_dir.name[3:])] = variants
    if not out:
        raise RunError(f"no runs found under {folder} (expected {folder}/utd<U>/<variant>/seed<k>/metrics.csv)")
    return out


def plot_results(folder) -> list[Path]:
    """One story figure and one table per UTD; returns the files written."""
    import matplotlib.pyplot as plt

    written = []
    for utd, results in load_results(folder).items():
        fig = story_figure(results)
        fig.suptitle(f"UTD {utd}")
        fig.savefig(Path(folder) / f"figure_utd{utd}.png", dpi=120)
        plt.close(fig)
        table = Path(folder) / f"table_utd{utd}.txt"
        table.write_text(summary_table(results) + "\n")
        print(f"UTD {utd}\n{summary_table(results)}\n")
        written += [Path(folder) / f"figure_utd{utd}.png", table]
    return written


# ---- the story: the paper's claims, measured at tutorial scale
# Criteria, fixed before any run (thresholds are round numbers, not fitted to the data).
#
# SAC's critic estimates the *soft* value, which adds the entropy bonus -alpha log pi to
# every future reward; the MC return counts rewards only. Any distribution on [-1, 1]^|A|
# has entropy <= |A| log 2, so the bonus adds at most
#     allowance = alpha |A| log 2 / (1 - gamma)
# to an honest Q. With alpha near its initial 1 (at UTD 1 for thousands of updates) that
# is hundreds, far more than cheetah's rewards: judging raw Q against reward-only returns
# would call an honest entropy bonus a blow-up. So every claim uses
#     Q_adj = Q - allowance        (the least reward-value an honest soft Q could claim)
BLOWUP_RATIO = 10.0  # blow-up: seed-mean Q_adj > 10 x seed-mean MC return AND > max_reward / (1 - gamma)
LOWER = 0.9  # "lowers": peak overestimation (max of Q_adj - MC, >= 0) at most 90% of the baseline's (itself > 0)
SMALL_FACTOR = 3.0  # "within a small factor": seed-mean Q_adj never above 3 x seed-mean MC return
SLOWER = 0.75  # "slow learning": final return below 75% of the same variant unprimed; "learns": at least 75%


def value_curves(runs, seed_steps, act_dim, gamma):
    """Seed-mean Q, Q_adj, MC return and max_reward/(1-gamma) on the learning-phase steps that logged all."""
    names = ("q_rollout", "mc_return", "q_bound", "temperature")
    curves = []
    for m in names:
        steps, mean, _, _ = seed_curve(runs, m)
        curves.append({s: v for s, v in zip(steps, mean) if s >= seed_steps})
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    q, mc, bound, alpha = (np.array([c[s] for s in steps]) for c in curves)
    return {"step": np.array(steps, dtype=int), "q": q, "q_adj": q - entropy_allowance(alpha, act_dim, gamma),
            "mc": mc, "bound": bound}


def blowup(runs, seed_steps, act_dim, gamma, until=None) -> dict:
    """First logged step (<= until) where seed-mean Q_adj > BLOWUP_RATIO x MC return and > max_reward/(1-gamma).

    Without a blow-up, the figures at the step of the largest Q_adj."""
    c = value_curves(runs, seed_steps, act_dim, gamma)
    hit = (c["q_adj"] > BLOWUP_RATIO * c["mc"]) & (c["q_adj"] > c["bound"])
    hit &= c["step"] <= (until if until is not None else np.inf)
    if not len(c["step"]):
        return {"blowup": False, "step": None, **{k: math.nan for k in ("q", "q_adj", "mc", "bound")}}
    j = int(np.argmax(hit)) if hit.any() else int(np.argmax(c["q_adj"]))
    return {"blowup": bool(hit.any()), **{k: (int(v[j]) if k == "step" else float(v[j])) for k, v in c.items()}}


def peak_excess(runs, seed_steps, act_dim, gamma) -> float:
    """Peak overestimation: mean over seeds of each seed's max over learning steps of (Q_adj - MC return)^+.

    Clipped at 0: a Q below what the returns could be is not overestimation, and nothing lowers 0."""
    curves = [value_curves([r], seed_steps, act_dim, gamma) for r in runs]
    peaks = [max(0.0, float(np.max(c["q_adj"] - c["mc"]))) for c in curves if len(c["step"])]
    return float(np.mean(peaks)) if peaks else math.nan


def max_ratio(runs, seed_steps, act_dim, gamma) -> float:
    """Largest seed-mean Q_adj / seed-mean MC return over the learning phase."""
    c = value_curves(runs, seed_steps, act_dim, gamma)
    return float(np.max(c["q_adj"] / np.maximum(c["mc"], 1e-8))) if len(c["step"]) else math.nan


def check_claims(results: dict, seed_steps: int, early: int, act_dim: int, gamma: float = 0.99) -> list:
    """The six claims of the story as (claim, holds, measured figures).

    results keys: "baseline", "beta1=0", "dropout", "l2", "ofn" (high UTD), "baseline utd1",
    "ofn utd1", "baseline primed", "ofn primed" (UTD 1 after priming). early: the last env
    step that still counts as early for claim 1. act_dim, gamma: for the entropy allowance."""
    out = []
    f = lambda x: f"{x:.3g}"  # noqa: E731
    env = (act_dim, gamma)

    def at(b):
        return f"step {b['step']}: Q {f(b['q'])}, Q_adj {f(b['q_adj'])}, MC return {f(b['mc'])}, bound {f(b['bound'])}"

    b = blowup(results["baseline"], seed_steps, *env, until=early)
    out.append(("(1) baseline Q > 10x MC return and > max_reward/(1-gamma), early", b["blowup"],
                f"{'first' if b['blowup'] else 'no blow-up by step ' + str(early) + '; largest'} at {at(b)}"))
    base_peak = peak_excess(results["baseline"], seed_steps, *env)
    peaks = {k: peak_excess(results[k], seed_steps, *env) for k in ("beta1=0", "dropout", "l2", "ofn")}
    out.append(("(2) beta1=0 lowers peak overestimation vs baseline",
                0 < base_peak and peaks["beta1=0"] <= LOWER * base_peak,
                f"peak Q_adj - MC: baseline {f(base_peak)}, beta1=0 {f(peaks['beta1=0'])}"))
    partly = [peaks["ofn"] < peaks[k] <= LOWER * base_peak for k in ("dropout", "l2")]
    out.append(("(3) dropout and L2 lower it partly (below baseline, above OFN)", all(partly),
                f"peak Q_adj - MC: baseline {f(base_peak)}, dropout {f(peaks['dropout'])}, l2 {f(peaks['l2'])}, "
                f"ofn {f(peaks['ofn'])}"))
    ratio = max_ratio(results["ofn"], seed_steps, *env)
    ofn_ret, base_ret = (summary_numbers(results[k])["final_return"] for k in ("ofn", "baseline"))
    out.append(("(4) OFN keeps Q within 3x MC return, final return >= baseline's",
                ratio <= SMALL_FACTOR and ofn_ret >= base_ret,
                f"OFN max Q_adj/MC {f(ratio)}; final return OFN {f(ofn_ret)}, baseline {f(base_ret)}"))
    u1 = blowup(results["baseline utd1"], seed_steps, *env)
    out.append(("(5) UTD-1 baseline shows no blow-up", not u1["blowup"],
                f"{'blow-up first' if u1['blowup'] else 'largest Q_adj'} at {at(u1)}"))
    pb, po = (blowup(results[k], seed_steps, *env) for k in ("baseline primed", "ofn primed"))
    ret = {k: summary_numbers(results[k])["final_return"]
           for k in ("baseline primed", "baseline utd1", "ofn primed", "ofn utd1")}
    holds = (pb["blowup"] and ret["baseline primed"] < SLOWER * ret["baseline utd1"]
             and ret["ofn primed"] >= SLOWER * ret["ofn utd1"])
    out.append(("(6) primed baseline: Q explodes, learns slowly after; primed OFN learns right after", holds,
                f"primed baseline blow-up {pb['blowup']} ({at(pb)}); primed OFN blow-up {po['blowup']} ({at(po)}); "
                f"final return primed vs unprimed: baseline {f(ret['baseline primed'])} vs {f(ret['baseline utd1'])}, "
                f"ofn {f(ret['ofn primed'])} vs {f(ret['ofn utd1'])}"))
    return out


def run_story(out="docs/story", seeds=(0, 1, 2), steps=4_000, seed_steps=1_000, utd=32,
              priming_updates=PRIMING_UPDATES, progress=True, command=None) -> str:
    """The issue's experiment: run it (resumably) under out/runs/, write table + figures to out/, return the report."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = cfgmod.preset("tutorial", env="dmc:cheetah-run", steps=steps, seed_steps=seed_steps,
                         log_every=100, eval_every=500, checkpoint_every=250)
    names = {k: variant_changes(k) for k in ("baseline", "beta1=0", "dropout", "l2", "ofn")}
    primed = {f"{k}+priming": variant_changes(f"{k}+priming", priming_updates=priming_updates)
              for k in ("baseline", "ofn")}
    # Cheap stacks first (UTD 1), then the 15-agent UTD-32 stack that takes most of the time.
    low = run_variants(base.replace(utd=1), {k: names[k] for k in ("baseline", "ofn")}, seeds,
                       out / "runs" / "utd1", progress)
    low.update(run_variants(base.replace(utd=1), primed, seeds, out / "runs" / "utd1", progress))
    high = run_variants(base.replace(utd=utd), names, seeds, out / "runs" / f"utd{utd}", progress)
    results = {**high, "baseline utd1": low["baseline"], "ofn utd1": low["ofn"],
               "baseline primed": low["baseline+priming"], "ofn primed": low["ofn+priming"]}
    # The story keeps what it reports (config, metrics, summary), not a 2.5 MB checkpoint per finished run.
    for ckpt in (out / "runs").glob("utd*/*/seed*/checkpoint.pt"):
        if (ckpt.parent / "summary.json").exists():
            ckpt.unlink()
    early = seed_steps + (steps - seed_steps) // 3  # the first third of the learning phase
    act_dim = make_env(base.env, 0).action_space.shape[0]
    claims = check_claims(results, seed_steps, early, act_dim, base.gamma)

    fig = story_figure({k: results[k] for k in (*names, "baseline utd1")})
    fig.suptitle(f"dmc:cheetah-run, UTD {utd} (and baseline at UTD 1), {len(seeds)} seeds")
    fig.savefig(out / "story_utd.png", dpi=120)
    plt.close(fig)
    fig = story_figure({k: results[k] for k in ("baseline utd1", "ofn utd1", "baseline primed", "ofn primed")})
    fig.suptitle(f"priming: {priming_updates} updates on {seed_steps} random transitions, then UTD 1")
    fig.savefig(out / "story_priming.png", dpi=120)
    plt.close(fig)

    def seconds(*keys):  # training wall time per seed: its stack's, shared by the agents trained together with it
        per_seed = [max(results[k][i][-1]["wall_time"] for k in keys if results[k][i]) for i in range(len(seeds))]
        return " / ".join(f"{t:.0f}" for t in per_seed) + " s"

    command = command or f"run_story(out={str(out)!r}, seeds={list(seeds)}, steps={steps}, seed_steps={seed_steps}, " \
                         f"utd={utd}, priming_updates={priming_updates})"
    lines = [f"# The story, measured ({command})", "",
             f"dmc:cheetah-run, tutorial preset (batch 128, 2x128), {steps} env steps of which {seed_steps} random, "
             f"seeds {list(seeds)}; UTD {utd} unless named; priming = {priming_updates} updates on the random "
             f"transitions, then UTD 1. Training wall time of the stack each seed ran in (seeds "
             f"{' / '.join(map(str, seeds))}; seeds run in one call share a stack): UTD {utd} ({len(names)} variants) "
             f"{seconds(*names)}, UTD 1 "
             f"{seconds('baseline utd1', 'ofn utd1')}, primed {seconds('baseline primed', 'ofn primed')} (the CPU "
             "was shared with other work). "
             "Peak Q in the table is the critic's raw soft Q (entropy bonus included).", "",
             "```", summary_table(results), "```", "",
             f"Criteria: blow-up = seed-mean Q_adj > {BLOWUP_RATIO:g}x MC return and > max_reward/(1-gamma); "
             f"'lowers' = peak (Q_adj - MC) at most {LOWER:g}x baseline's; 'small factor' = Q_adj <= "
             f"{SMALL_FACTOR:g}x MC return at every logged step; "
             f"'slow' = final return < {SLOWER:g}x the same variant unprimed. "
             "Q_adj = Q - alpha |A| log 2 / (1 - gamma), the most an entropy bonus can add to an honest soft Q "
             "(see experiment.py).", ""]
    lines += [f"- {'HOLDS' if ok else 'DOES NOT HOLD'}: {claim} -- {figures}" for claim, ok, figures in claims]
    lines += ["", "Figures: story_utd.png, story_priming.png"]
    report = "\n".join(lines) + "\n"
    (out / "story.md").write_text(report)
    return report


# ---- command line
def set_threads(n) -> None:
    """torch intra-op threads; None keeps torch's default. On a busy 2-core CPU one thread was 20x faster
    than two for a 15-agent tutorial stack (6 vs 133 ms per agent-update): two threads spin-wait on each other."""
    if n is not None:
        if n < 1:
            raise RunError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


GRID_FLAGS = ("utd", "reset_every", "priming_updates")  # Config fields the experiment command sets per grid


def _run_main(argv):
    parser = Parser(prog="python -m minimal_ofn.experiment",
                    description="Run variants x seeds x UTD values (also: 'plot RESULTS', 'story').")
    # These three are per-grid here, not one Config value: --utd takes a list, and the reset and
    # priming settings belong to the 'resets' / 'priming' variants only.
    add_config_args(parser, skip=GRID_FLAGS)
    parser.add_argument("--utd", type=int, nargs="+", default=[32], help="UTD values, one run each (default: 32)")
    parser.add_argument("--variants", nargs="+", default=["baseline", "ofn"],
                        help=f"names from {', '.join(cfgmod.VARIANTS)}, resets, priming; '+' combines "
                             "(default: baseline ofn)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every variant (default: 0)")
    add_flag(parser, "reset_every", type=int, default=RESET_EVERY,
             help=f"gradient updates between full resets, in the 'resets' variants only (default: {RESET_EVERY})")
    add_flag(parser, "priming_updates", type=int, default=PRIMING_UPDATES,
             help=f"updates on the random transitions, in the 'priming' variants only (default: {PRIMING_UPDATES})")
    parser.add_argument("--out", required=True, help="results folder: OUT/utd<U>/<variant>/seed<k>/")
    parser.add_argument("--threads", type=int, help="torch threads (1 is far faster when the CPU is shared)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="local",
                        help="where the stacks run: here in turn (local), or as Ray tasks (ray; RAY_ADDRESS: a cluster)")
    parser.add_argument("--cpus-per-stack", type=float, default=1.0, help="CPUs a Ray task reserves (default 1)")
    args = parser.parse_args(argv)

    def run():
        set_threads(args.threads)
        if args.seed is not None:
            raise RunError("experiments take --seeds (one or more), not --seed")
        base = config_from_args(args, skip=GRID_FLAGS)
        variants = {v: variant_changes(v, args.reset_every, args.priming_updates) for v in args.variants}
        utds = args.utd
        for u in utds:  # check the whole grid before running any of it
            for name, changes in variants.items():
                try:
                    base.replace(utd=u, **changes).validate()
                except ValueError as err:
                    raise RunError(f"{name} at utd {u}: {err}") from None
        failed = []
        for u in utds:
            try:
                run_variants(base.replace(utd=u), variants, args.seeds, Path(args.out) / f"utd{u}", not args.no_progress,
                             launcher=args.launcher, cpus_per_stack=args.cpus_per_stack)
            except StacksFailed as err:  # the other UTD values still run
                failed.append(str(err))
        if failed:
            raise StacksFailed(" ".join(failed))
        for path in plot_results(args.out):
            print(f"wrote {path}")

    # A grid resumes what its folders hold: the same command continues it.
    cli(run, resume_command=shlex.join(["python", "-m", "minimal_ofn.experiment", *argv]))


def _plot_main(argv):
    parser = Parser(prog="python -m minimal_ofn.experiment plot", description="Figures and tables of a results folder.")
    parser.add_argument("results", help="a folder written by python -m minimal_ofn.experiment --out")
    args = parser.parse_args(argv)

    def run():
        for path in plot_results(args.results):
            print(f"wrote {path}")

    cli(run)


def _story_main(argv):
    parser = Parser(prog="python -m minimal_ofn.experiment story", description="The paper's story, claims checked.")
    helps = cfgmod.field_help()
    parser.add_argument("--out", default="docs/story", help="report, figures and runs/ go here (default: docs/story)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of every variant (default: 0 1 2)")
    for name, default in (("steps", 4_000), ("seed_steps", 1_000), ("utd", 32)):
        add_flag(parser, name, type=int, default=default, help=f"{helps[name]} (default: {default})")
    add_flag(parser, "priming_updates", type=int, default=PRIMING_UPDATES,
             help=f"updates on the random transitions in the primed runs (default: {PRIMING_UPDATES})")
    parser.add_argument("--threads", type=int, help="torch threads (1 is far faster when the CPU is shared)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    command = " ".join(["python -m minimal_ofn.experiment story", *argv])

    def run():
        set_threads(args.threads)
        print(run_story(args.out, args.seeds, args.steps, args.seed_steps, args.utd, args.priming_updates,
                        not args.no_progress, command))

    cli(run, resume_command=shlex.join(["python", "-m", "minimal_ofn.experiment", "story", *argv]))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "plot":
        _plot_main(argv[1:])
    elif argv and argv[0] == "story":
        _story_main(argv[1:])
    else:
        _run_main(argv)


if __name__ == "__main__":
    main()
