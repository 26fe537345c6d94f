"""The paper's central measurement in about a minute on a 2-core CPU: the critic's Q against the Monte Carlo
return its policy actually earns, for SAC (baseline), SAC without Adam's momentum (beta1=0) and SAC with OFN, at UTD 32.

    python -m minimal_ofn.demo                 # baseline, beta1=0, ofn at UTD 32 on dmc:cheetah-run
    python -m minimal_ofn.demo --steps 2000 --out demo.png

All three agents train in one lockstep stack (one train() call): 1000 random steps,
then `utd` SAC updates per environment step. Prints a table and two sentences
computed from the measured numbers, and saves the paper-style figure.

Why 400 learning steps by default: SAC's Q includes an entropy bonus of up to
alpha |A| log 2 / (1 - gamma), and alpha starts at 1. In the run we measured with 250
steps (8,000 updates) that allowance still exceeded the baseline's Q, so no verdict;
with 400 (12,800 updates) alpha had decayed enough for the baseline's Q to be
impossible even counting the bonus.

Why 64 hidden units and batch 64 (the tutorial preset has 128 and 128): half the
time (48 s against 94 s of training on one core) and the same verdict in every seed
we ran (0, 1, 2: the baseline's Q beyond any possible value, OFN's within its entropy
allowance), measured with the previous base SAC (PyTorch's default init, log-std in
[-5, 2]); seed 0 gives the same verdict with the current one (README).
`--hidden 128 --batch-size 128` gives the tutorials' networks.
"""

import math
import time

import matplotlib.pyplot as plt
import numpy as np

from .cli import Parser, RunError, add_flag, cli, set_threads
from .config import preset
from .envs import make_env
from .experiment import run_variants, variant_changes
from .plots import entropy_allowance, seed_curve, story_figure, summary_numbers, summary_table

VARIANTS = ("baseline", "beta1=0", "ofn")


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


def peak_excess(runs, seed_steps, act_dim, gamma) -> float:
    """Peak overestimation: mean over seeds of each seed's max over learning steps of (Q_adj - MC return)^+.

    Clipped at 0: a Q below what the returns could be is not overestimation, and nothing lowers 0."""
    curves = [value_curves([r], seed_steps, act_dim, gamma) for r in runs]
    peaks = [max(0.0, float(np.max(c["q_adj"] - c["mc"]))) for c in curves if len(c["step"])]
    return float(np.mean(peaks)) if peaks else math.nan


def explain(results: dict, utd: int, act_dim: int, gamma: float = 0.99) -> str:
    """Two plain sentences derived from the measured numbers (nothing here is fixed text about the outcome)."""
    s = {k: summary_numbers(v) for k, v in results.items()}
    c = {k: value_curves(v, 0, act_dim, gamma) for k, v in results.items()}
    impossible = {k: bool((v["q_adj"] > v["bound"]).any()) for k, v in c.items()}

    def allowance(k):  # the most SAC's entropy bonus could add to Q at the step of the peak
        j = int(c[k]["q"].argmax())
        return c[k]["q"][j] - c[k]["q_adj"][j]

    base, ofn, b0 = s["baseline"], s["ofn"], s["beta1=0"]

    def against_soft(v):  # Q minus the soft MC return of the same rollouts: > 0 is Q above what they earned
        d = v["q_minus_soft_mc"]
        return f"{abs(d):.1f} {'above' if d > 0 else 'below'} its soft Monte Carlo return" if math.isfinite(d) else \
            "no soft Monte Carlo return at that step"

    ofn_part = (f"OFN's peak was {ofn['peak_q']:.1f} ({against_soft(ofn)}), "
                + ("also more than any policy could collect" if impossible["ofn"] else
                   f"which SAC's entropy bonus (up to {allowance('ofn'):.0f} at its temperature) can account for"))
    if impossible["baseline"]:
        first = (f"At UTD {utd} the baseline critic's Q peaked at {base['peak_q']:.1f} ({against_soft(base)}; its "
                 f"policy's Monte Carlo return was {base['mc_at_peak']:.2f}), more than any policy could collect "
                 f"given the rewards seen, even counting SAC's entropy bonus; {ofn_part}.")
    elif base["q_minus_soft_mc"] > 0:
        first = (f"The baseline's Q peaked at {base['peak_q']:.1f}, {against_soft(base)}, but SAC's entropy bonus "
                 f"could account for up to {allowance('baseline'):.0f} at its temperature, so this run is too short "
                 f"to call it a blow-up ({ofn_part}); try more --steps.")
    else:
        first = (f"In this run the baseline's Q stayed at or below its soft Monte Carlo return (peak "
                 f"{base['peak_q']:.1f}, {against_soft(base)}), so no blow-up showed at UTD {utd}: try more --steps "
                 "or a higher --utd.")
    # "Overestimated": Q above what the returns plus the largest possible entropy bonus allow (experiment.py).
    excess = {k: peak_excess(v, 0, act_dim, gamma) for k, v in results.items()}
    least = min(excess, key=lambda k: excess[k] if math.isfinite(excess[k]) else math.inf)
    within = [k for k in excess if excess[k] == 0]
    best = max(s, key=lambda k: s[k]["final_return"] if math.isfinite(s[k]["final_return"]) else -math.inf)
    change = b0["peak_q"] / base["peak_q"] - 1 if base["peak_q"] > 0 else math.nan
    second = (f"Turning off Adam's momentum (beta1=0) {'lowered' if change < 0 else 'raised'} the peak Q by "
              f"{abs(change):.0%}; "
              + (f"{' and '.join(within)} never put Q beyond what {'its' if len(within) == 1 else 'their'} returns "
                 "and entropy bonus allow" if within else
                 f"{least} overestimated least (peak Q beyond its returns and entropy bonus: {excess[least]:.1f})")
              + f", and {best} earned the highest evaluation return ({s[best]['final_return']:.1f}).")
    return f"{first}\n{second}"


def main(argv=None):
    parser = Parser(prog="python -m minimal_ofn.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_400, help="environment steps, the random ones included")
    add_flag(parser, "seed_steps", type=int, default=1_000, help="uniformly random steps before learning")
    parser.add_argument("--utd", type=int, default=32, help="gradient updates per environment step (default: 32)")
    parser.add_argument("--env", default="dmc:cheetah-run", help="dm_control or gymnasium task (default: cheetah-run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of all three agents (default: 0)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of every layer (2 layers)")
    add_flag(parser, "batch_size", type=int, default=64, help="replay batch per update")
    parser.add_argument("--out", default="minimal_ofn_demo.png", help="where to save the figure")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these small nets gain little from a second thread, and on "
                             "a busy CPU two threads spin-wait on each other)")
    args = parser.parse_args(argv)

    def run():
        set_threads(args.threads)
        if args.steps <= args.seed_steps:
            raise RunError(f"--steps ({args.steps}) must exceed --seed-steps ({args.seed_steps}): "
                           "the first seed steps are random and nothing learns")
        learning = args.steps - args.seed_steps
        base = preset("tutorial", env=args.env, seed=args.seed, steps=args.steps, seed_steps=args.seed_steps,
                      utd=args.utd, hidden=args.hidden, batch_size=args.batch_size,
                      log_every=max(1, learning // 6), eval_every=args.steps,
                      checkpoint_every=args.steps)
        start = time.time()
        print(f"training {', '.join(VARIANTS)} at UTD {args.utd} on {args.env}: {args.seed_steps} random steps, "
              f"then {learning} steps x {args.utd} updates, in one stack "
              f"(2x{args.hidden} networks, batch {args.batch_size})")
        results = run_variants(base, {v: variant_changes(v) for v in VARIANTS}, seeds=(args.seed,))
        seconds = time.time() - start
        print(f"\n{summary_table(results)}\n")
        print(explain(results, args.utd, make_env(args.env, 0).action_space.shape[0], base.gamma))
        fig = story_figure(results)
        fig.suptitle(f"{args.env}, UTD {args.utd}, seed {args.seed}: {args.steps} steps ({args.seed_steps} random)")
        fig.savefig(args.out, dpi=120)
        plt.close(fig)
        print(f"\nfigure: {args.out}   training took {seconds:.0f} s")

    cli(run)


if __name__ == "__main__":
    main()
