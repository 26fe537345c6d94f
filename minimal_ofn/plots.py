"""Figures in the style of the paper, from metric rows (see train.METRICS).

`results` everywhere is {variant name: [rows of seed 0, rows of seed 1, ...]}, as
experiment.run_variants returns it. A curve is the mean over seeds at each logged
environment step, shaded from the lowest to the highest seed:

    mean_t = (1/S) sum_s x_{s,t},   band_t = [min_s x_{s,t}, max_s x_{s,t}]

Every function draws on an Axes you pass (or a new one) and returns it, so the same
code serves notebooks (inline backend) and scripts (headless, Agg).
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

LABELS = {
    "q_rollout": "Q on the policy's own states",
    "mc_return": "Monte Carlo return",
    "eval_return": "evaluation return",
    "episode_return": "episode return",
    "srank": "effective rank of critic features",
    "adam_m_max": "critic Adam max |m|",
    "adam_v_max": "critic Adam max v",
    "q_over_mc": "Q / Monte Carlo return",
}


def seed_curve(runs: list[list[dict]], metric: str):
    """(steps, mean, low, high) over seeds; NaN where no seed logged a finite value at a step."""
    steps = sorted({int(r["step"]) for rows in runs for r in rows})
    table = np.full((len(runs), len(steps)), np.nan)
    where = {s: j for j, s in enumerate(steps)}
    for i, rows in enumerate(runs):
        for r in rows:
            value = r.get(metric)
            if value is not None and math.isfinite(value):
                table[i, where[int(r["step"])]] = value
    seen = ~np.isnan(table).all(0)
    table = table[:, seen]
    return (np.array(steps)[seen], np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0))


def _new_axes(ax):
    return ax if ax is not None else plt.subplots(figsize=(5, 3.5))[1]


def _band(ax, runs, metric, label, **line):
    steps, mean, low, high = seed_curve(runs, metric)
    if len(steps) <= 3:  # a line needs two points: mark sparse series (e.g. one final evaluation)
        line = {"marker": "o", **line}
    (drawn,) = ax.plot(steps, mean, label=label, **line)
    if len(runs) > 1:
        ax.fill_between(steps, low, high, color=drawn.get_color(), alpha=0.2, linewidth=0)
    return drawn


def plot_metric(results: dict, metric: str, ax=None, log: bool = False, title: str | None = None):
    """One line per variant: mean over seeds vs environment step, shaded min-max over seeds."""
    ax = _new_axes(ax)
    for name, runs in results.items():
        _band(ax, runs, metric, name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("environment step")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(title if title is not None else LABELS.get(metric, metric))
    ax.legend(fontsize="small")
    return ax


def plot_q_vs_mc(results: dict, ax=None):
    """Per variant: Q on the policy's rollout states (solid) and their Monte Carlo return (dashed), log axis.

    The dotted black line is max_reward / (1 - gamma), the largest discounted return any
    policy could collect given the rewards seen so far (the highest over all runs):
    a Q value above it is impossible, not merely optimistic."""
    ax = _new_axes(ax)
    handles = []
    for name, runs in results.items():
        q = _band(ax, runs, "q_rollout", f"{name}: Q")
        _band(ax, runs, "mc_return", f"{name}: MC return", color=q.get_color(), linestyle="--")
        handles.append(Line2D([], [], color=q.get_color(), label=name))
    everything = [rows for runs in results.values() for rows in runs]
    steps, _, _, highest = seed_curve(everything, "q_bound")
    bound = ax.plot(steps, highest, color="black", linestyle=":", label="max reward / (1 - γ)")[0]
    ax.set_yscale("log")
    ax.set_xlabel("environment step")
    ax.set_ylabel("value (log scale)")
    ax.set_title("Q vs Monte Carlo return")
    # One entry per variant (its colour) and a key for the line styles, rather than two entries per variant.
    handles += [Line2D([], [], color="gray", label="Q (solid)"),
                Line2D([], [], color="gray", linestyle="--", label="MC return (dashed)"), bound]
    ax.legend(handles=handles, fontsize="x-small")
    return ax


def story_figure(results: dict, path=None):
    """The paper's panels: Q vs MC return (log), return, effective rank, critic Adam max |m| (log)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    plot_q_vs_mc(results, axes[0, 0])
    plot_metric(results, "eval_return", axes[0, 1])
    plot_metric(results, "srank", axes[1, 0])
    plot_metric(results, "adam_m_max", axes[1, 1], log=True)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def summary_numbers(runs: list[list[dict]]) -> dict:
    """Peak of the seed-mean Q (q_rollout), the seed-mean MC return at that step, their ratio, final return.

    final return: the mean over seeds of each seed's last finite evaluation return."""
    steps, q, _, _ = seed_curve(runs, "q_rollout")
    mc_steps, mc, _, _ = seed_curve(runs, "mc_return")
    finals = [next((r["eval_return"] for r in reversed(rows) if math.isfinite(r.get("eval_return", math.nan))),
                   math.nan) for rows in runs]
    out = {"seeds": len(runs), "peak_q": math.nan, "peak_step": None, "mc_at_peak": math.nan, "ratio": math.nan,
           "final_return": float(np.nanmean(finals)) if not all(map(math.isnan, finals)) else math.nan}
    if len(steps):
        j = int(np.argmax(q))
        out.update(peak_q=float(q[j]), peak_step=int(steps[j]))
        k = np.flatnonzero(mc_steps == steps[j])
        if len(k):
            out["mc_at_peak"] = float(mc[k[0]])
            out["ratio"] = out["peak_q"] / out["mc_at_peak"] if abs(out["mc_at_peak"]) > 1e-8 else math.nan
    return out


def summary_table(results: dict) -> str:
    """Plain-text table, one line per variant: peak Q, MC return at that step, their ratio, final return."""
    header = ("variant", "seeds", "peak Q", "at step", "MC return", "Q / MC", "final return")
    lines = [header]
    for name, runs in results.items():
        s = summary_numbers(runs)
        lines.append((name, str(s["seeds"]), f"{s['peak_q']:.2f}", str(s["peak_step"]), f"{s['mc_at_peak']:.2f}",
                      f"{s['ratio']:.1f}", f"{s['final_return']:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    return "\n".join([text[0], "-" * len(text[0]), *text[1:]])
