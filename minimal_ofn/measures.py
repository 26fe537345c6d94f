"""The numbers the paper's claims are judged on: the value bound, and one number per run.

The bound. Rewards of a dm_control task lie in [0, 1], and any policy on [-1, 1]^|A| has entropy at
most |A| log 2 (the uniform one's), so each future step adds at most r_max to an honest soft value
and -alpha log pi adds at most alpha |A| log 2:

    B = (r_max + alpha |A| log 2) / (1 - gamma)        (r_max: the largest reward seen)

A critic whose |Q| is above B claims a value no policy can have: that is divergence, not optimism.

Per-run measures (each maps one run's metric rows, runs.METRICS, to one number; stats.py turns the
numbers of two arms' seeds into an effect with its interval and a verdict):

    log_peak_over_bound   log10(max_t |Q_t| / B_t)               above 0: divergence
    log_growth            log10(last / first) of a positive series (e.g. Adam's largest v)
    late_overestimation   mean of Q - soft MC return over the last third of learning
    mean_return           mean evaluation return over learning (area under the curve per evaluation)
"""

import math

import numpy as np


def entropy_allowance(alpha, act_dim: int, gamma: float):
    """The most SAC's entropy bonus can add to an honest soft Q: alpha |A| log 2 / (1 - gamma).

    Any distribution on [-1, 1]^|A| has entropy <= |A| log 2, so each future step's bonus
    -alpha log pi is at most alpha |A| log 2. Works on numbers and numpy arrays."""
    return alpha * act_dim * math.log(2) / (1 - gamma)


def value_bound(row: dict, act_dim: int, gamma: float) -> float:
    """B = (r_max + alpha |A| log 2) / (1 - gamma) at one logged row: no policy's soft value can exceed it."""
    return (row["max_reward"] + row["temperature"] * act_dim * math.log(2)) / (1 - gamma)


def log_over_bound(row: dict, key: str, act_dim: int, gamma: float) -> float:
    """log10(|row[key]| / B) at one row (|Q| floored at 1e-12, so that 0 has a logarithm)."""
    return math.log10(max(abs(row[key]), 1e-12) / value_bound(row, act_dim, gamma))


def log_peak_over_bound(rows, key: str, act_dim: int, gamma: float) -> float:
    """log10(max_t |key_t| / B_t): above 0, the critic claims a value no policy can have (divergence).

    Over the logs where Q is finite: a critic that overflowed keeps the peak it reached before (none: nan)."""
    ratios = [log_over_bound(r, key, act_dim, gamma) for r in rows if math.isfinite(r[key])]
    return float(max(ratios)) if ratios else math.nan


def log_growth(rows, key: str) -> float:
    """log10(last / first) of a positive series (e.g. the critic's largest Adam second moment)."""
    values = [r[key] for r in rows if math.isfinite(r[key]) and r[key] > 0]
    return math.log10(values[-1] / values[0]) if len(values) > 1 else math.nan


def late_rows(rows, seed_steps: int) -> list[dict]:
    """The logs of the last third of the learning phase."""
    last = max(r["step"] for r in rows)
    start = last - (last - seed_steps) / 3
    return [r for r in rows if r["step"] >= start]


def late_overestimation(rows, seed_steps: int) -> float:
    """Mean over the last third of the learning phase's logs of Q(s_t, a_t) - soft MC return, on the
    policy's own rollouts: past the temperature transient, where the soft return is no longer dominated
    by alpha log pi of a policy that has not yet found its entropy."""
    gaps = [r["q_rollout"] - r["mc_soft_return"] for r in late_rows(rows, seed_steps)
            if math.isfinite(r["q_rollout"]) and math.isfinite(r["mc_soft_return"])]
    return float(np.mean(gaps)) if gaps else math.nan


def late_value(rows, seed_steps: int, key: str) -> float:
    """Mean of a metric over the last third of the learning phase's logs (as late_overestimation)."""
    values = [r[key] for r in late_rows(rows, seed_steps) if math.isfinite(r[key])]
    return float(np.mean(values)) if values else math.nan


def mean_return(rows, seed_steps: int, eval_every: int) -> float:
    """Mean evaluation return over the learning phase's evaluations: the area under the return curve per evaluation.

    Evaluations happen every eval_every steps and at the run's last step (train.py); other rows carry the
    last one over and are not counted again."""
    last = max(r["step"] for r in rows) if rows else 0
    values = [r["eval_return"] for r in rows if r["step"] > seed_steps and (r["step"] % eval_every == 0
              or r["step"] == last) and math.isfinite(r["eval_return"])]
    return float(np.mean(values)) if values else math.nan
