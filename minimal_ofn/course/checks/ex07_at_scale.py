"""Exercise 07, at scale: reading a results folder and the interquartile mean over seeds."""

import csv
import math
import random
import tempfile
from pathlib import Path

from . import check, current_seed as SEED


def _trim_mean(scores):
    # scipy.stats.trim_mean(scores, 0.25): drop int(n / 4) from each end, average the rest.
    x = sorted(scores)
    cut = int(0.25 * len(x))
    kept = x[cut: len(x) - cut]
    return sum(kept) / len(kept)


def _iqm(iqm, scores):
    out = iqm(scores)
    try:
        return float(out)
    except (TypeError, ValueError):
        raise AssertionError(f"iqm should return a number, got {type(out).__name__}") from None


@check("iqm")
def iqm_averages_the_middle_half(iqm):
    """eight scores: the mean of the middle four after sorting"""
    scores = [21.0, 0.0, 100.0, 3.0, 2.0, 20.0, 1.0, 4.0]  # sorted: 0 1 | 2 3 4 20 | 21 100
    got = _iqm(iqm, scores)
    if math.isclose(got, 7.25):
        return
    if math.isclose(got, sum(scores) / 8):
        raise AssertionError("that is the plain mean: drop the lowest and the highest quarter of the scores first")
    if math.isclose(got, 3.5):
        raise AssertionError("that is the median: the IQM averages the whole middle half")
    if math.isclose(got, sum(scores[2:6]) / 4):
        raise AssertionError("sort the scores before cutting off the quarters")
    raise AssertionError(f"the IQM of {scores} is the mean of 2, 3, 4, 20 = 7.25, got {got:g}")


@check("iqm")
def iqm_of_any_number_of_scores(iqm):
    """any count of scores: drop int(n / 4) from each end (scipy.stats.trim_mean(x, 0.25))"""
    few = "with fewer than 4 scores int(n / 4) = 0 are dropped, so the IQM of [3, 3, 3] is 3 (beware x[k:-k] for k = 0)"
    try:
        got = _iqm(iqm, [3.0, 3.0, 3.0])
    except (ArithmeticError, IndexError, ValueError):
        raise AssertionError(few) from None
    assert math.isclose(got, 3.0), few
    rng = random.Random(SEED())
    for n in (3, 4, 5, 10, 13):
        scores = [rng.uniform(0, 100) for _ in range(n)]
        given = list(scores)
        got = _iqm(iqm, given)
        assert given == scores, "iqm reordered the list it was given (sorted it in place): sort a copy"
        assert math.isclose(got, _trim_mean(scores), rel_tol=1e-9), (
            f"with {n} scores the IQM should drop int({n} / 4) = {int(n / 4)} from each end of the sorted scores; "
            f"expected {_trim_mean(scores):.4f}, got {got:.4f}")


def _results_folder(root: Path) -> dict:
    """out/<variant>/seed<k>/metrics.csv, as run_variants writes it; returns the expected final scores."""
    expected = {}
    rng = random.Random(SEED())
    values = {"baseline": [[5.0, 40.0, 80.0], [6.0, 90.0, 70.0], [4.0, 30.0, 90.0]],  # seed 1 ends below its peak
              "ofn": [[7.0, 60.0, 120.0], [3.0, 165.0, 130.0]]}
    values = {k: [[round(x + rng.uniform(0, 5), 3) for x in series] for series in runs] for k, runs in values.items()}
    for variant, runs in values.items():
        expected[variant] = []
        for seed, series in enumerate(runs):
            folder = root / variant / f"seed{seed}"
            folder.mkdir(parents=True)
            with open(folder / "metrics.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", "updates", "episode_return", "eval_return", "q_rollout"])
                for k, value in enumerate(series):
                    w.writerow([1000 * (k + 1), 32000 * k, value / 2, value, 10 * value])
            expected[variant].append(series[-1])
    (root / "README.txt").write_text("not a run\n")
    return expected


def _best(variant, root):
    out = []
    for run in sorted((root / variant).glob("seed*")):
        with open(run / "metrics.csv", newline="") as f:
            out.append(max(float(r["eval_return"]) for r in csv.DictReader(f)))
    return out


@check("final_scores")
def final_scores_reads_the_last_row_of_every_run(final_scores):
    """out/<variant>/seed<k>/metrics.csv -> {variant: [last eval_return of each seed]}"""
    with tempfile.TemporaryDirectory() as tmp:
        expected = _results_folder(Path(tmp))
        got = final_scores(tmp)
        assert isinstance(got, dict), f"final_scores should return a dict variant -> list of scores, got " \
                                      f"{type(got).__name__}"
        assert set(got) == set(expected), f"expected the variants {sorted(expected)}, got {sorted(got)}"
        for variant, want in expected.items():
            have = sorted(float(x) for x in got[variant])
            if have == sorted(want):
                continue
            assert len(have) == len(want), f"{variant} has {len(want)} seeds, you returned {len(have)} scores"
            if have == sorted(_best(variant, Path(tmp))):
                raise AssertionError(f"{variant}: you report each run's best eval_return, not its final one: a run "
                                     "can end below its peak, and the final score is the last row")
            raise AssertionError(f"{variant}: expected the last eval_return of each seed {sorted(want)}, got {have}: "
                                 "the final score is the last row of each run's metrics.csv")


@check("final_scores")
def final_scores_reads_any_metric(final_scores):
    """the metric argument picks the column (here q_rollout)"""
    with tempfile.TemporaryDirectory() as tmp:
        expected = _results_folder(Path(tmp))
        got = final_scores(tmp, metric="q_rollout")
        for variant, want in expected.items():
            assert sorted(float(x) for x in got[variant]) == sorted(10 * v for v in want), (
                f"final_scores(folder, metric='q_rollout') should read the q_rollout column; {variant} is wrong")
