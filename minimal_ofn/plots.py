"""Figures in the style of the paper, from metric rows (see runs.METRICS).

`results` everywhere is {variant name: [rows of seed 0, rows of seed 1, ...]}, as
experiment.run_variants returns it. A curve is the mean over seeds at each logged
environment step, shaded from the lowest to the highest seed:

    mean_t = (1/S) sum_s x_{s,t},   band_t = [min_s x_{s,t}, max_s x_{s,t}]

Every function draws on an Axes you pass (or a new one) and returns it, so the same
code serves notebooks (inline backend) and scripts (headless, Agg). Log axes leave out
values <= 0 rather than drawing them at the bottom edge. Figures are at most 12 inches
wide: at the tutorials' 80 dpi that fits a JupyterLab window with readable legends.

The tutorials' helpers live here too: the soft-value limit (measures.py) and its table, and `explorer`.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from .measures import entropy_allowance

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


WIDTH = 12  # inches: the widest figure here (960 px at the tutorials' 80 dpi)


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
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("environment step")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(title if title is not None else LABELS.get(metric, metric))
    ax.legend(fontsize="small")
    return ax


def plot_q_vs_mc(results: dict, ax=None):
    """Per variant: Q on the policy's rollout states (solid) and their Monte Carlo return (dashed), log axis.

    The dotted line in each variant's colour is its own max_reward / (1 - gamma), the largest
    discounted return any policy could collect given the rewards that run has seen: a Q value
    above it is impossible, not merely optimistic."""
    ax = _new_axes(ax)
    handles = []
    for name, runs in results.items():
        q = _band(ax, runs, "q_rollout", f"{name}: Q")
        _band(ax, runs, "mc_return", f"{name}: MC return", color=q.get_color(), linestyle="--")
        steps, mean, _, _ = seed_curve(runs, "q_bound")
        ax.plot(steps, mean, color=q.get_color(), linestyle=":", label=f"{name}: max reward / (1 - γ)")
        handles.append(Line2D([], [], color=q.get_color(), label=name))
    # A log axis needs a positive value (a very short run may have none yet): matplotlib warns otherwise.
    positive = any(np.any(np.asarray(line.get_ydata(), float) > 0) for line in ax.get_lines())
    if positive:
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("environment step")
    ax.set_ylabel("value (log scale)" if positive else "value")
    ax.set_title("Q vs Monte Carlo return")
    # One entry per variant (its colour) and a key for the line styles, rather than three entries per variant.
    handles += [Line2D([], [], color="gray", label="Q (solid)"),
                Line2D([], [], color="gray", linestyle="--", label="MC return (dashed)"),
                Line2D([], [], color="gray", linestyle=":", label="max reward / (1 - γ) (dotted)")]
    ax.legend(handles=handles, fontsize="small")
    return ax


def story_figure(results: dict, path=None):
    """The paper's panels: Q vs MC return (log), return, effective rank, critic Adam max |m| (log)."""
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 8), constrained_layout=True)
    plot_q_vs_mc(results, axes[0, 0])
    plot_metric(results, "eval_return", axes[0, 1])
    plot_metric(results, "srank", axes[1, 0])
    plot_metric(results, "adam_m_max", axes[1, 1], log=True)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def summary_numbers(runs: list[list[dict]]) -> dict:
    """Peak of the seed-mean Q (q_rollout); at that step the seed-mean MC return and Q minus the soft MC return
    (the discounted rewards plus entropy bonuses of the same rollouts, what an honest soft Q estimates); final return.

    final return: the mean over seeds of each seed's last finite evaluation return."""
    steps, q, _, _ = seed_curve(runs, "q_rollout")
    finals = [next((r["eval_return"] for r in reversed(rows) if math.isfinite(r.get("eval_return", math.nan))),
                   math.nan) for rows in runs]
    out = {"seeds": len(runs), "peak_q": math.nan, "peak_step": None, "mc_at_peak": math.nan,
           "q_minus_soft_mc": math.nan,
           "final_return": float(np.nanmean(finals)) if not all(map(math.isnan, finals)) else math.nan}
    if len(steps):
        j = int(np.argmax(q))
        out.update(peak_q=float(q[j]), peak_step=int(steps[j]))
        for key, metric in (("mc_at_peak", "mc_return"), ("soft_mc_at_peak", "mc_soft_return")):
            at = dict(zip(*seed_curve(runs, metric)[:2]))
            out[key] = float(at.get(steps[j], math.nan))
        out["q_minus_soft_mc"] = out["peak_q"] - out.pop("soft_mc_at_peak")
    return out


def summary_table(results: dict, failed: dict | None = None) -> str:
    """Plain-text table, one line per variant: peak Q, and at that step the MC return and Q - soft MC return
    (> 0: Q above what the policy's rollouts earned, entropy bonus included); final return.

    failed: {variant: {seed: summary.json's "failed"}} for runs that stopped on a non-finite value. Their rows
    end where they failed and still count in the means; the seeds column says how many failed, and a line
    under the table says where and why, so that a number built on a failed run is never read as a finished one."""
    failed = failed or {}
    header = ("variant", "seeds", "peak Q", "at step", "MC return", "Q - soft MC", "final return")
    lines = [header]
    for name, runs in results.items():
        s = summary_numbers(runs)
        seeds = str(s["seeds"]) + (f" ({len(failed[name])} failed)" if failed.get(name) else "")
        lines.append((name, seeds, f"{s['peak_q']:.2f}", str(s["peak_step"]), f"{s['mc_at_peak']:.2f}",
                      f"{s['q_minus_soft_mc']:.1f}", f"{s['final_return']:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    notes = [f"failed: {name} seed {seed} at step {f['step']} (frozen at step {f['frozen_at_step']}): {f['why']}"
             for name in results for seed, f in sorted(failed.get(name, {}).items())]
    return "\n".join([text[0], "-" * len(text[0]), *text[1:], *notes])


# ---- the tutorials' helpers
def seed_mean(runs, metric) -> dict:
    """{step: seed-mean value} of one metric, at the steps where it was logged."""
    steps, mean, _, _ = seed_curve(runs, metric)
    return dict(zip(steps.tolist(), mean.tolist()))


def value_limit(runs, act_dim, gamma=0.99) -> dict:
    """{step: max reward seen / (1 - gamma) + entropy_allowance}: no policy's soft value can be higher."""
    r, alpha = seed_mean(runs, "max_reward"), seed_mean(runs, "temperature")
    return {s: r[s] / (1 - gamma) + entropy_allowance(alpha[s], act_dim, gamma) for s in r if s in alpha}


def overestimation(results, act_dim, gamma=0.99) -> None:
    """Print, per variant: the peak of Q on the policy's states, the Monte Carlo returns and the limit at that step
    ("limit then": the limit moves with the rewards seen and the temperature, so it is the one at the peak's step),
    the final evaluation return, and at how many logged learning steps Q was above the limit (impossible even with
    the entropy bonus). Seed means throughout."""
    w = max(map(len, results))
    print(f"{'':{w}s} {'peak Q':>8s} {'at step':>8s} {'MC return':>10s} {'soft MC':>8s} {'limit then':>10s} "
          f"{'final return':>13s}   Q > limit at")
    for name, runs in results.items():
        q, mc, soft = (seed_mean(runs, m) for m in ("q_rollout", "mc_return", "mc_soft_return"))
        limit, ret = value_limit(runs, act_dim, gamma), seed_mean(runs, "eval_return")
        peak = max(q, key=q.get)
        above = [s for s in q if s in limit and q[s] > limit[s]]
        print(f"{name:{w}s} {q[peak]:8.2f} {peak:8d} {mc.get(peak, math.nan):10.2f} {soft.get(peak, math.nan):8.2f} "
              f"{limit.get(peak, math.nan):10.1f} {ret[max(ret)] if ret else math.nan:13.1f}   "
              f"{len(above)} of {len(q)} logged steps" + (f" (first: step {above[0]})" if above else ""))


def draw_limit(ax, results, act_dim, gamma=0.99):
    """Add each variant's limit including the entropy bonus (dash-dot, in its colour) to a plot_q_vs_mc axis."""
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    for name, runs in results.items():
        limit = value_limit(runs, act_dim, gamma)
        ax.plot(list(limit), list(limit.values()), color=colours.get(f"{name}: Q", "gray"), linestyle="-.",
                label=f"{name}: limit incl. entropy bonus")
    key = Line2D([], [], color="gray", linestyle="-.", label="limit incl. entropy bonus (dash-dot)")
    ax.legend(handles=[*ax.get_legend().legend_handles, key], fontsize="small")
    return ax


def show_widget(widget, text: str) -> None:
    """Display a widget whose saved text fallback is `text`, not its repr ("ToggleButtons(...)", "Output()"):
    an untrusted notebook (or one opened without its kernel) shows only that text."""
    from IPython.display import display

    display({**widget._repr_mimebundle_(), "text/plain": text}, raw=True)


def explorer(options, draw, value, description):
    """Draw the default figure now; the buttons below draw any other option underneath them.

    The default figure is a plain image, so a saved notebook shows it even untrusted (or headless,
    e.g. papermill); the buttons' saved text says what they offer instead of a widget's repr."""
    import ipywidgets as widgets

    options = list(options)
    draw(value)
    plt.show()
    control = widgets.ToggleButtons(options=options, value=value, description=description)
    out = widgets.Output()

    def redraw(change):
        with out:
            out.clear_output(wait=True)
            draw(change["new"])
            plt.show()

    control.observe(redraw, names="value")
    others = ", ".join(str(o) for o in options if o != value)
    show_widget(widgets.VBox([control, out]), f"[{description}: {value} is drawn above. Buttons for the others "
                f"({others}) appear once the notebook is trusted (jupyter trust) and its kernel runs.]")
