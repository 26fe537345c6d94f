"""Statistics for a handful of seeds: the interquartile mean and its bootstrap interval.

With 3-10 runs per arm, a mean is at the mercy of one lucky or broken seed, and a
fixed ratio threshold on means says nothing about chance. Following Agarwal et al.
(2021, "Deep RL at the edge of the statistical precipice"), every effect here is

    effect = IQM(scores of arm A) - IQM(scores of arm B)
    IQM(x) = mean of the middle 50% of x   (scipy's trim_mean(x, 0.25): with 5 seeds, the middle 3)

with a 95% percentile interval from the stratified bootstrap (runs resampled with
replacement, each arm on its own; 2,000 resamples), computed by `rliable`, the library of that paper.
A claim that A > B is judged from the interval alone:

    HOLDS         the whole interval is above 0
    CONTRADICTED  the whole interval is below 0
    UNRESOLVED    the interval contains 0 (these seeds cannot tell)
"""

import warnings

import numpy as np

HOLDS, CONTRADICTED, UNRESOLVED = "HOLDS", "CONTRADICTED", "UNRESOLVED"


def iqm(scores) -> float:
    """Interquartile mean of a 1-d array of per-run scores (NaN-free)."""
    from rliable import metrics  # rliable imports pandas and arch: a few seconds, paid only when used

    return float(metrics.aggregate_iqm(np.asarray(scores, dtype=float).reshape(-1, 1)))


def effect(a, b=None, reps: int = 2_000, seed: int = 0) -> dict:
    """IQM(a) - IQM(b) (b=None: IQM(a) against 0) with its 95% stratified bootstrap interval."""
    from rliable import library as rly
    from rliable import metrics

    a = np.asarray(a, dtype=float).reshape(-1, 1)
    b = np.zeros((1, 1)) if b is None else np.asarray(b, dtype=float).reshape(-1, 1)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("effect() needs finite scores; drop failed runs first and say so")

    def difference(x, y):
        return np.array([metrics.aggregate_iqm(x) - metrics.aggregate_iqm(y)])

    with warnings.catch_warnings():  # arch, under rliable, deprecates the RandomState that rliable passes it
        warnings.simplefilter("ignore", FutureWarning)
        point, interval = rly.get_interval_estimates({"d": (a, b)}, difference, reps=reps,
                                                     random_state=np.random.RandomState(seed))
    low, high = (float(v) for v in interval["d"][:, 0])
    return {"effect": float(point["d"][0]), "low": low, "high": high, "n": (len(a), len(b))}


def verdict(e: dict) -> str:
    """HOLDS / CONTRADICTED / UNRESOLVED for the claim "effect > 0" (see the module docstring)."""
    if e["low"] > 0:
        return HOLDS
    if e["high"] < 0:
        return CONTRADICTED
    return UNRESOLVED
