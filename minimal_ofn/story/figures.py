"""The story's figures: the curves behind its claims (story_dissection.png, story_online.png, story_priming.png)."""

from pathlib import Path

import matplotlib.pyplot as plt

from ..measures import value_bound
from ..plots import LABELS, plot_metric, seed_curve
from .protocol import Protocol


def figures(results: dict, p: Protocol, act_dim: dict, out: Path, gamma: float = 0.99) -> list[Path]:
    """story_dissection.png, story_online.png, story_priming.png: the curves behind the claims."""
    def by_updates(runs):  # the dissection logs at one env step: put updates on the x axis
        return [[{**r, "step": r["updates"]} for r in rows] for rows in runs]

    def over_bound(runs, key):
        return [[{**r, "ratio": abs(r[key]) / value_bound(r, act_dim["dissection"], gamma)} for r in rows]
                for rows in runs]

    written = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for ax, (temp, key) in zip(axes, [("fixed", "q_replay"), ("fixed", "q_ood"), ("learned", "q_replay")]):
        arms = {a: by_updates(over_bound(runs, key)) for a, runs in results["dissection"][temp].items()}
        plot_metric(arms, "ratio", ax=ax, log=True,
                    title=f"|Q| / B on {'D' if key == 'q_replay' else 'uniform'} actions, alpha {temp}")
        ax.axhline(1.0, color="gray", lw=1, ls="--")
        ax.set_xlabel("updates on the fixed buffer")
    axes[0].legend(fontsize=7)
    written.append(out / "story_dissection.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
    label = {p.utd: f"utd{p.utd}", 1: "utd1", "1x": "utd1 (equal updates)"}
    gap = {f"{a} {label[u]}": [[{**r, "step": r["updates"], "gap": r["q_rollout"] - r["mc_soft_return"]}
                               for r in rows] for rows in runs]
           for u, arms in results["online"].items() for a, runs in arms.items()}
    plot_metric(gap, "gap", ax=axes[0], title="Q - soft MC return on the policy's rollouts")
    axes[0].set_xlabel("gradient updates")
    axes[0].set_xscale("symlog", linthresh=1000)
    returns = {f"{a} {label[u]}": runs for u, arms in results["online"].items() if u != "1x"
               for a, runs in arms.items()}
    _offset_bars(axes[1], returns, "eval_return", p.online_eval_every, p.seed_steps)
    axes[1].set_title("evaluation return (mean over seeds, bar: lowest to highest seed)")
    axes[1].set_xlabel("environment steps")
    axes[1].set_ylabel(LABELS["eval_return"])
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0].legend(fontsize=7)
    written.append(out / "story_online.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    plot_metric(results["priming"], "eval_return", ax=axes[0], title=f"{p.priming_env}: evaluation return")
    plot_metric(results["priming"], "q_replay", ax=axes[1], log=True, title="Q on replay actions")
    axes[0].legend(fontsize=7)
    written.append(out / "story_priming.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def _offset_bars(ax, results: dict, metric: str, every: int, seed_steps: int) -> None:
    """Per arm: the mean over seeds at each evaluation of the learning phase (a line with markers) and a bar from the
    lowest to the highest seed, each arm shifted a little along x so that arms evaluated at the same steps do not
    hide each other."""
    shift = 0.5 * every / max(len(results), 1)
    for k, (name, runs) in enumerate(results.items()):
        evaluated = [[r for r in rows if r["step"] >= seed_steps and (r["step"] % every == 0 or r is rows[-1])]
                     for rows in runs]  # the evaluations themselves, not the rows that carry one over
        steps, mean, low, high = seed_curve(evaluated, metric)
        x = steps + (k - (len(results) - 1) / 2) * shift
        (line,) = ax.plot(x, mean, "o-", ms=3, lw=1.2, label=name)
        ax.vlines(x, low, high, color=line.get_color(), lw=1, alpha=0.6)
    ax.margins(x=0.03)
