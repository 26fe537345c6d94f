"""The paper's central measurement in a few minutes on a 2-core CPU: SAC's critic, trained with
Adam and with OFN on a fixed early buffer, against the largest value any policy could have there.

    python -m minimal_ofn.demo                          # Adam and OFN, 3 seeds, 20,000 updates each
    python -m minimal_ofn.demo --arms adam critic_beta1=0 rmsprop sgd ofn --updates 30000

This is part 1 of the story (minimal_ofn/story, docs/story/story.md) in miniature: uniformly random
transitions of dmc:cheetah-run fill a buffer D, then every agent makes `updates` SAC updates on D
alone (fixed_buffer.py), so nothing but the update rule moves Q. On D no policy's soft value can exceed

    B = (r_max + alpha |A| log 2) / (1 - gamma)         (measures.py; r_max: the largest reward in D)

so log10(peak |Q| / B) > 0 is divergence: a value no policy can have, on D's own actions (seen)
and on uniform random actions (unseen). Each claim is an effect over seeds with a 95% bootstrap
interval (rliable, stats.py), and its verdict is printed by the story's own code.

Why a fixed temperature (0.01 by default): online, SAC's temperature starts at 1 and falls slowly, and
while it is large the entropy bonus alpha |A| log 2 / (1 - gamma) dwarfs the early rewards, so a short
run judges the bonus, not the critic. Held small, B is the rewards' bound and any Q far above it is the
critic's own doing. Why 20,000 updates: well past the onset of divergence, so that no verdict rests on
the update at which Adam's Q first crosses B (docs/measured.md has the runs behind both choices).
"""

import time

import matplotlib.pyplot as plt

from . import fixed_buffer, stats, story
from .cli import Parser, RunError, cli, set_threads
from .envs import make_env
from .measures import log_peak_over_bound, value_bound
from .plots import plot_metric

DEFAULT_ARMS = ("adam", "ofn")


def verdicts(results: dict, act_dim: int, gamma: float = 0.99, reps: int = 2_000) -> list[dict]:
    """The story's part-1 claims on these runs: Adam diverges (seen, unseen), and each other arm lowers Adam's
    peak |Q| (for OFN: the paper's "OFN stops the divergence"). One dict per claim, with its effect and verdict."""
    def log_peak(arm, key="q_replay"):
        return [log_peak_over_bound(rows, key, act_dim, gamma) for rows in results[arm]]

    claims = [("Adam's Q diverges on seen actions", "log10(peak |Q| / B) on D's actions", log_peak("adam"), None),
              ("... and on unseen actions", "log10(peak |Q| / B) on uniform actions", log_peak("adam", "q_ood"), None)]
    for arm in results:
        if arm != "adam":
            what = "OFN stops the divergence" if arm == "ofn" else f"{arm} lowers the peak"
            claims.append((what, f"log10 peak |Q|, adam minus {arm}", log_peak("adam"), log_peak(arm)))
    out = []
    for name, measured, a, b in claims:
        e = stats.effect(a, b, reps=reps)
        out.append({"claim": name, "measured": measured, **e, "verdict": stats.verdict(e)})
    return out


def table(results: dict, act_dim: int, gamma: float = 0.99) -> str:
    """Per arm and seed: peak |Q|, B, and log10 of their ratio on seen and unseen actions."""
    lines = ["seen, unseen: log10(peak |Q| / B) on D's actions and on uniform actions (above 0: divergence)",
             f"{'arm':<16}{'seed':>5}{'peak |Q|':>11}{'B':>8}{'seen':>8}{'unseen':>8}"]
    for arm, runs in results.items():
        for rows in runs:
            peak = max(abs(r["q_replay"]) for r in rows)
            lines.append(f"{arm:<16}{rows[0]['seed']:>5}{peak:>11.3g}{value_bound(rows[-1], act_dim, gamma):>8.3g}"
                         f"{log_peak_over_bound(rows, 'q_replay', act_dim, gamma):>8.2f}"
                         f"{log_peak_over_bound(rows, 'q_ood', act_dim, gamma):>8.2f}")
    return "\n".join(lines)


def explain(judged: list[dict]) -> str:
    """One line per claim: what was measured, the IQM effect with its 95% interval, and the verdict."""
    return "\n".join(f"{j['verdict']:<13} {j['claim']}: {j['measured']} = {j['effect']:.2f} "
                     f"[{j['low']:.2f}, {j['high']:.2f}] over {j['n'][0]} seeds" for j in judged)


def figure(results: dict, act_dim: int, title: str, gamma: float = 0.99):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    for ax, key, where in zip(axes, ("q_replay", "q_ood"), ("D's actions (seen)", "uniform actions (unseen)")):
        curves = {arm: [[{**r, "step": r["updates"],
                          "ratio": abs(r[key]) / value_bound(r, act_dim, gamma)} for r in rows] for rows in runs]
                  for arm, runs in results.items()}
        plot_metric(curves, "ratio", ax=ax, log=True, title=f"|Q| / B on {where}")
        ax.axhline(1.0, color="gray", lw=1, ls="--")
        ax.set_xlabel("updates on the fixed buffer")
        ax.set_ylabel("|Q| / B  (above 1: no policy has this value)")
    fig.suptitle(title)
    return fig


def main(argv=None):
    parser = Parser(prog="python -m minimal_ofn.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), metavar="ARM",
                        help=f"critic variants from the story's part 1 (adam first): {', '.join(story.DISSECT_ARMS)}")
    parser.add_argument("--updates", type=int, default=20_000, help="SAC updates on the fixed buffer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="at least 3, for an interval")
    parser.add_argument("--alpha", type=float, default=0.01, help="the fixed temperature (default 0.01)")
    parser.add_argument("--env", default="dmc:cheetah-run", help="dm_control or gymnasium task")
    parser.add_argument("--seed-steps", "--seed_steps", dest="seed_steps", type=int, default=1_000,
                        help="random transitions in the fixed buffer")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of every layer (2 layers)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=64,
                        help="replay batch per update")
    parser.add_argument("--out", default="minimal_ofn_demo.png", help="where to save the figure")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these small nets gain little from a second thread, and on "
                             "a busy CPU two threads spin-wait on each other)")
    args = parser.parse_args(argv)

    def run():
        set_threads(args.threads)
        unknown = [a for a in args.arms if a not in story.DISSECT_ARMS]
        if unknown:
            raise RunError(f"unknown arm {unknown[0]!r}; arms: {', '.join(story.DISSECT_ARMS)}")
        if args.arms[0] != "adam" or len(set(args.arms)) != len(args.arms):
            raise RunError("--arms must start with adam (every claim is against it) and name each arm once")
        if len(args.seeds) < 3 or len(set(args.seeds)) != len(args.seeds):
            raise RunError(f"--seeds needs at least 3 different seeds for an interval, got {args.seeds}")
        if args.updates < 1 or args.alpha <= 0:
            raise RunError(f"--updates must be >= 1 and --alpha > 0, got {args.updates} and {args.alpha}")
        p = story.Protocol(seeds=tuple(args.seeds), dissect_env=args.env, seed_steps=args.seed_steps,
                           dissect_fixed_alpha=args.alpha, hidden=args.hidden, batch_size=args.batch_size)
        configs = story.dissect_configs(p, fixed=True)
        stack = [(arm, c.validate()) for arm in args.arms for c in configs[arm]]
        act_dim = make_env(args.env, 0).action_space.shape[0]
        print(f"{len(args.arms)} critics x {len(args.seeds)} seeds in one stack: {args.seed_steps} random transitions "
              f"of {args.env}, then {args.updates} SAC updates on them alone (alpha fixed at {args.alpha:g}, "
              f"2x{args.hidden} networks, batch {args.batch_size})")
        start = time.time()
        rows = fixed_buffer.run([c for _, c in stack], args.updates, max(1, args.updates // 24),
                                mc_every=args.updates + 1,  # no Monte Carlo rollouts: B is the bound used here
                                optimizer_resets=[story.optimizer_resets(p, arm) for arm, _ in stack])
        seconds = time.time() - start
        results = {}
        for (arm, c), r in zip(stack, rows):
            results.setdefault(arm, []).append([{**x, "seed": c.seed} for x in r])
        print(f"\n{table(results, act_dim)}\n")
        print(explain(verdicts(results, act_dim)))
        fig = figure(results, act_dim, f"{args.env}: {args.updates} updates on {args.seed_steps} random transitions, "
                                       f"alpha {args.alpha:g}, seeds {' '.join(map(str, args.seeds))}")
        fig.savefig(args.out, dpi=120)
        plt.close(fig)
        print(f"\nfigure: {args.out}   training took {seconds:.0f} s")

    cli(run)


if __name__ == "__main__":
    main()
