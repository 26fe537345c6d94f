"""Scores across seeds: what a run finished with, and a robust average of those numbers.

- The final score of a run is the last logged value of a metric (never the best one seen:
  returns go down as well as up, and a "best so far" flatters every method).
- The interquartile mean (Agarwal et al. 2021, rliable) of n scores sorted x_(1) <= ... <= x_(n):

      IQM = mean of x_(k+1) ... x_(n-k),   k = floor(n / 4)

  It drops the quarter of runs at each end, so one lucky or crashed seed moves it less than
  the mean, while it uses more runs than the median. With the 3 seeds of the tutorials k = 0
  and the IQM is the mean; it starts cutting at 4 seeds.
- An effect of arm A over arm B is IQM(A) - IQM(B), with a 95% percentile interval from the
  stratified bootstrap (runs resampled with replacement, each arm on its own; 2,000 resamples),
  computed by `rliable`, the library of Agarwal et al. A claim that A > B is judged from the
  interval alone:

      HOLDS         the whole interval is above 0
      CONTRADICTED  the whole interval is below 0
      UNRESOLVED    the interval contains 0 (these seeds cannot tell)

  No fixed ratio of means decides anything: with 3-10 seeds a mean is at the mercy of one
  lucky or broken seed, and a threshold on it says nothing about chance.
"""

import csv
import math
import warnings
from pathlib import Path

import numpy as np

HOLDS, CONTRADICTED, UNRESOLVED = "HOLDS", "CONTRADICTED", "UNRESOLVED"


def final_scores(folder, metric="eval_return"):
    """{variant: [last logged value of `metric` for each seed]} for folder/<variant>/seed<k>/metrics.csv."""
    scores = {}
    for variant in sorted(Path(folder).iterdir()):
        if not variant.is_dir():
            continue
        for run in sorted(variant.glob("seed*")):
            path = run / "metrics.csv"
            if not path.exists():
                continue
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                value = rows[-1].get(metric)
                scores.setdefault(variant.name, []).append(float(value) if value not in ("", None) else math.nan)
    return scores


def iqm(scores):
    """Interquartile mean: the mean of the sorted scores without floor(n/4) at each end."""
    x = np.sort(np.asarray(scores, dtype=float))
    cut = len(x) // 4
    return float(x[cut:len(x) - cut].mean())


def effect(a, b=None, reps: int = 2_000, seed: int = 0) -> dict:
    """IQM(a) - IQM(b) (b=None: IQM(a) against 0) with its 95% stratified bootstrap interval (rliable)."""
    from rliable import library as rly  # rliable imports pandas and arch: a few seconds, paid only when used

    a = np.asarray(a, dtype=float).reshape(-1, 1)
    b = np.zeros((1, 1)) if b is None else np.asarray(b, dtype=float).reshape(-1, 1)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("effect() needs finite scores; drop failed runs first and say so")

    def difference(x, y):
        return np.array([iqm(x.ravel()) - iqm(y.ravel())])  # rliable hands over [runs, tasks] arrays

    with warnings.catch_warnings():  # arch, under rliable, deprecates the RandomState that rliable passes it
        warnings.simplefilter("ignore", FutureWarning)
        np.random.seed(seed)  # ... and does not draw from it: the global stream is what makes an interval repeatable
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
