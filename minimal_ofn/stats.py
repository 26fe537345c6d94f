"""Scores across seeds: what a run finished with, and a robust average of those numbers.

- The final score of a run is the last logged value of a metric (never the best one seen:
  returns go down as well as up, and a "best so far" flatters every method).
- The interquartile mean (Agarwal et al. 2021, rliable) of n scores sorted x_(1) <= ... <= x_(n):

      IQM = mean of x_(k+1) ... x_(n-k),   k = floor(n / 4)

  It drops the quarter of runs at each end, so one lucky or crashed seed moves it less than
  the mean, while it uses more runs than the median. With the 3 seeds of the tutorials k = 0
  and the IQM is the mean; it starts cutting at 4 seeds.
"""

import csv
import math
from pathlib import Path

import numpy as np


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
