"""Exercise 07, at scale: reading a results folder and the interquartile mean over seeds."""

import csv
import math
import random
from pathlib import Path

import numpy as np

from . import check, current_seed as SEED, scratch_dir


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
    if math.isclose(got, 7.25, rel_tol=1e-6):
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
        assert math.isclose(got, _trim_mean(scores), rel_tol=1e-5, abs_tol=1e-9), (  # float32 results pass
            f"with {n} scores the IQM should drop int({n} / 4) = {int(n / 4)} from each end of the sorted scores; "
            f"expected {_trim_mean(scores):.4f}, got {got:.4f}")


@check("iqm")
def iqm_of_fresh_scores(iqm):
    """fresh each grading: numpy arrays and lists, ties, negatives, one score, float32 (a float32 result is fine)"""
    rng = np.random.default_rng(SEED() * 13 + 7)
    for n in (1, 2, int(rng.integers(4, 9)), int(rng.integers(9, 40))):
        scores = np.round(rng.normal(0, 100, n), 1)
        if n > 3:
            scores[: n // 2] = scores[0]  # ties among some, not all
        for given in (scores.copy(), scores.tolist(), scores.astype(np.float32)):
            want = _trim_mean(np.asarray(given, dtype=np.float64).tolist())
            got = _iqm(iqm, given)
            tol = 1e-5  # a float32 computation is a correct one, whatever the input's dtype
            assert math.isclose(got, want, rel_tol=tol, abs_tol=tol * float(np.abs(scores).max())), (
                f"the IQM of {n} fresh scores given as a {type(given).__name__}"
                f"{' of ' + str(given.dtype) if isinstance(given, np.ndarray) else ''} should be {want:.6g}, got "
                f"{got:.6g}")


def _fresh_folder(root: Path) -> dict:
    """A results folder of fresh variants and seeds, with a seed whose metrics.csv has no rows yet, a seed folder
    without metrics.csv, and a non-run file; returns {variant: [last value per seed]} (empty runs left out)."""
    rng = random.Random(SEED() * 17 + 3)
    expected = {}
    for v in range(rng.randint(1, 4)):
        name = rng.choice(["baseline", "ofn", "reset", "l2", "dropout"]) + f"_{v}"
        for seed in range(rng.randint(1, 5)):
            folder = root / name / f"seed{seed}"
            folder.mkdir(parents=True)
            rows = rng.randint(0, 4) if seed else rng.randint(1, 4)
            with open(folder / "metrics.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", "updates", "eval_return", "q_rollout"])
                values = [round(rng.uniform(-50, 900), 3) for _ in range(rows)]  # not monotone
                for k, value in enumerate(values):
                    w.writerow([100 * (k + 1), 200 * k, value, -value])
            if values:
                expected.setdefault(name, []).append(values[-1])
        (root / name / "seed_partial").mkdir()  # a run that has not written its metrics yet
    (root / "notes.txt").write_text("not a run\n")
    return expected


@check("final_scores")
def final_scores_of_a_fresh_folder(final_scores):
    """fresh each grading: other variants and seed counts, a seed with no rows yet, a seed folder without metrics"""
    with scratch_dir() as tmp:
        expected = _fresh_folder(Path(tmp))
        got = final_scores(tmp)
        assert isinstance(got, dict), "final_scores should return a dict"
        got = {k: sorted(float(x) for x in v) for k, v in got.items() if len(v)}
        want = {k: sorted(v) for k, v in expected.items()}
        assert got == want, (
            f"on a fresh results folder expected {want}, got {got}: every seed folder with at least one row counts "
            "(its last row), a run without rows or without metrics.csv is skipped")


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
    with scratch_dir() as tmp:
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
    with scratch_dir() as tmp:
        expected = _results_folder(Path(tmp))
        got = final_scores(tmp, metric="q_rollout")
        for variant, want in expected.items():
            assert sorted(float(x) for x in got[variant]) == sorted(10 * v for v in want), (
                f"final_scores(folder, metric='q_rollout') should read the q_rollout column; {variant} is wrong")
