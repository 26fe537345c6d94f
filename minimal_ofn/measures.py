"""The numbers the paper's claims are judged on: the value bound, and one number per run.

The bound. Rewards of a dm_control task lie in [0, 1], and any policy on [-1, 1]^|A| has entropy at
most |A| log 2 (the uniform one's), so each future step adds at most r_max to an honest soft value
and -alpha log pi adds at most alpha |A| log 2:

    B = (r_max + alpha |A| log 2) / (1 - gamma)        (r_max: the largest reward seen)

A critic whose |Q| is above B claims a value no policy can have: that is divergence, not optimism.

With the temperature learned, alpha rises when the policy's entropy falls below its target (a saturated actor),
so B would grow with the very symptom it should detect. The entropy-aware bound counts the entropy the policy
has (H_pi, measured on the buffer: diagnostics.critic_diagnostics), and never a negative bonus:

    B_H = (r_max + alpha max(0, H_pi)) / (1 - gamma)

It is a bound for the current policy's soft value (H_pi <= |A| log 2, so B_H <= B), and it does not grow when
alpha grows because the entropy fell below target.

Per-run measures (each maps one run's metric rows, runs.METRICS, to one number; stats.py turns the
numbers of two arms' seeds into an effect with its interval and a verdict):

    log_peak_over_bound   log10(max_t |Q_t| / B_t)               above 0: divergence
    onset                 the first update at which |Q| passes B
    growth_rate           decades of |Q| / B per 1,000 updates from the onset to the peak
    log_growth            log10(last / first) of a positive series (e.g. Adam's largest v)
    late_overestimation   mean of Q - soft MC return over the last third of learning
    mean_return           mean evaluation return over learning (area under the curve per evaluation)
    late_return           mean evaluation return over the last third of learning
    gap_growth            Q - soft MC return at the last log of learning minus at the first (recovery: below 0)
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


def entropy_bound(row: dict, act_dim: int, gamma: float) -> float:
    """B_H = (r_max + alpha max(0, H_pi)) / (1 - gamma) at one row (nan where the entropy was not logged).
    act_dim is unused: the signature of value_bound, so that either can be passed as `bound`."""
    entropy = row.get("policy_entropy", math.nan)
    return (row["max_reward"] + row["temperature"] * max(0.0, entropy)) / (1 - gamma) if math.isfinite(entropy) \
        else math.nan


def log_over_bound(row: dict, key: str, act_dim: int, gamma: float, bound=value_bound) -> float:
    """log10(|row[key]| / B) at one row (|Q| floored at 1e-12, so that 0 has a logarithm); nan without a positive
    bound (none logged, or B <= 0: no reward above 0 seen yet and no entropy bonus, where no ratio measures)."""
    b = bound(row, act_dim, gamma)
    return math.log10(max(abs(row[key]), 1e-12) / b) if math.isfinite(b) and b > 0 else math.nan


def log_peak_over_bound(rows, key: str, act_dim: int, gamma: float, bound=value_bound) -> float:
    """log10(max_t |key_t| / B_t): above 0, the critic claims a value no policy can have (divergence).

    Over the logs where Q is finite: a critic that overflowed keeps the peak it reached before (none: nan)."""
    ratios = [x for x in (log_over_bound(r, key, act_dim, gamma, bound) for r in rows if math.isfinite(r[key]))
              if math.isfinite(x)]
    return float(max(ratios)) if ratios else math.nan


def onset(rows, key: str, act_dim: int, gamma: float, bound=value_bound) -> float:
    """The first logged update at which |key| passes the bound (nan: it never does)."""
    return next((float(r["updates"]) for r in rows if math.isfinite(r[key])
                 and log_over_bound(r, key, act_dim, gamma, bound) > 0), math.nan)


def growth_rate(rows, key: str, act_dim: int, gamma: float, bound=value_bound) -> float:
    """Decades of |key| / B gained per 1,000 updates from the onset to the peak (nan: no onset, or the peak is it)."""
    start = onset(rows, key, act_dim, gamma, bound)
    after = [r for r in rows if math.isfinite(r[key]) and r["updates"] >= start]
    if not after:
        return math.nan
    first = log_over_bound(after[0], key, act_dim, gamma, bound)
    peak = max(after, key=lambda r: log_over_bound(r, key, act_dim, gamma, bound))
    span = peak["updates"] - after[0]["updates"]
    return (log_over_bound(peak, key, act_dim, gamma, bound) - first) / span * 1_000 if span > 0 else math.nan


def log_growth(rows, key: str) -> float:
    """log10(last / first) of a positive series (e.g. the critic's largest Adam second moment)."""
    values = [r[key] for r in rows if math.isfinite(r[key]) and r[key] > 0]
    return math.log10(values[-1] / values[0]) if len(values) > 1 else math.nan


def late_rows(rows, seed_steps: int) -> list[dict]:
    """The logs of the last third of the learning phase (none for a run without logs)."""
    if not rows:
        return []
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


def late_return(rows, seed_steps: int, eval_every: int) -> float:
    """Mean evaluation return over the evaluations of the last third of the learning phase (as mean_return)."""
    late = late_rows(rows, seed_steps) if rows else []
    start = late[0]["step"] if late else math.inf
    return mean_return([r for r in rows if r["step"] >= start], seed_steps, eval_every) if late else math.nan


def gap_growth(rows, seed_steps: int) -> float:
    """Q - soft MC return on the policy's rollouts at the last log of learning minus at the first one."""
    gaps = [r["q_rollout"] - r["mc_soft_return"] for r in rows if r["step"] > seed_steps
            and math.isfinite(r["q_rollout"]) and math.isfinite(r["mc_soft_return"])]
    return gaps[-1] - gaps[0] if len(gaps) > 1 else math.nan
