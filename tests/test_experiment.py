"""Experiments and plots: stacking, results layout, resume, figures, tables, the story's claim checks, CLI errors."""

import csv
import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from minimal_ofn import experiment as ex  # noqa: E402
from minimal_ofn import plots, story  # noqa: E402
from minimal_ofn.config import VARIANTS, Config  # noqa: E402
from minimal_ofn.runs import METRICS  # noqa: E402
from minimal_ofn.train import RunError, train  # noqa: E402

TINY = Config(env="Pendulum-v1", steps=60, seed_steps=30, utd=1, batch_size=16, hidden=16, log_every=10,
              eval_every=30, checkpoint_every=20)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _spy(monkeypatch, fake=False):
    """Record every train() call experiment makes; fake=True returns one synthetic row per config instead."""
    calls = []

    def spy(configs, out_dirs=None, resume=False, **kw):
        calls.append({"configs": list(configs), "resume": resume})
        if fake:
            return [[{"step": 1, "cfg": c}] for c in configs]
        return train(configs, out_dirs, resume=resume, **kw)

    monkeypatch.setattr(ex, "train", spy)
    return calls


# ---- run_variants
def test_stackable_variants_and_seeds_share_one_train_call(monkeypatch):
    calls = _spy(monkeypatch, fake=True)
    results = ex.run_variants(TINY, dict(VARIANTS), seeds=(0, 1, 2), progress=False)
    assert len(calls) == 1 and len(calls[0]["configs"]) == 3 * len(VARIANTS)
    assert list(results) == list(VARIANTS) and all(len(runs) == 3 for runs in results.values())
    cfg = results["ofn"][2][0]["cfg"]  # each result comes back under its own variant and seed
    assert cfg.ofn and cfg.seed == 2 and not results["baseline"][2][0]["cfg"].ofn


def test_priming_changes_the_stack_so_it_gets_its_own_train_call(monkeypatch):
    calls = _spy(monkeypatch, fake=True)
    names = ["baseline", "ofn", "resets", "baseline+priming", "ofn+priming"]
    ex.run_variants(TINY, {n: ex.variant_changes(n, 40, 7) for n in names}, seeds=(0, 1), progress=False)
    sizes = sorted(len(c["configs"]) for c in calls)
    assert sizes == [4, 6]  # resets only changes per-agent fields: it stacks with baseline and ofn
    primed = next(c["configs"] for c in calls if len(c["configs"]) == 4)
    assert all(c.priming_updates == 7 for c in primed)


def test_variant_names_combine_with_plus_and_unknown_names_are_refused():
    assert ex.variant_changes("ofn+priming", priming_updates=7) == {"ofn": True, "priming_updates": 7}
    assert ex.variant_changes("resets", reset_every=99) == {"reset_every": 99, "reset_kind": "full"}
    with pytest.raises(RunError, match="unknown variant 'nope'"):
        ex.variant_changes("ofn+nope")


def test_layout_then_finished_runs_are_loaded_and_unfinished_resumed(tmp_path, monkeypatch):
    variants = {"baseline": {}, "ofn": {"ofn": True}}
    first = ex.run_variants(TINY, variants, seeds=(0,), out=tmp_path, progress=False)
    for name in variants:
        folder = tmp_path / name / "seed0"
        assert {p.name for p in folder.iterdir()} >= {"config.json", "metrics.csv", "summary.json", "checkpoint.pt"}
    # Make the ofn run unfinished: redo it, stopping after step 40.
    cfg = TINY.replace(ofn=True, seed=0)
    train(cfg, [tmp_path / "ofn" / "seed0"], overwrite=True, progress=False, until=40)
    calls = _spy(monkeypatch)
    again = ex.run_variants(TINY, variants, seeds=(0,), out=tmp_path, progress=False)
    assert len(calls) == 1 and calls[0]["resume"] and [c.ofn for c in calls[0]["configs"]] == [True]
    assert [r["step"] for r in again["ofn"][0]] == [r["step"] for r in first["ofn"][0]]
    loss = lambda runs: [r["critic_loss"] for r in runs[0]]  # noqa: E731
    assert loss(again["baseline"]) == loss(first["baseline"])  # loaded from its folder, not rerun
    calls.clear()
    ex.run_variants(TINY, variants, seeds=(0,), out=tmp_path, progress=False)
    assert calls == []  # everything finished: nothing runs


def test_a_new_seed_runs_alone_next_to_finished_ones(tmp_path, monkeypatch):
    ex.run_variants(TINY, {"baseline": {}}, seeds=(0,), out=tmp_path, progress=False)
    calls = _spy(monkeypatch)
    results = ex.run_variants(TINY, {"baseline": {}}, seeds=(0, 1), out=tmp_path, progress=False)
    assert len(calls) == 1 and [c.seed for c in calls[0]["configs"]] == [1]
    assert len(results["baseline"]) == 2 and results["baseline"][1][-1]["step"] == 60


def test_a_folder_holding_another_experiment_is_refused(tmp_path):
    ex.run_variants(TINY, {"baseline": {}}, seeds=(0,), out=tmp_path, progress=False)
    with pytest.raises(RunError, match="another config"):
        ex.run_variants(TINY.replace(gamma=0.9), {"baseline": {}}, seeds=(0,), out=tmp_path, progress=False)


# ---- command line
def _one_line_error(capsys, argv, match, main=ex.main):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_cli_bad_input_is_one_line_and_runs_nothing(tmp_path, capsys):
    out = str(tmp_path / "r")
    _one_line_error(capsys, ["--variants", "baseline", "nope", "--out", out], "unknown variant 'nope'")
    _one_line_error(capsys, ["--utd", "32", "0", "--out", out, "--env", "Pendulum-v1"], "utd must be")
    _one_line_error(capsys, ["--utd", "two", "--out", out], "invalid int value")
    _one_line_error(capsys, ["plot", str(tmp_path)], "no runs found")
    _one_line_error(capsys, ["--seed", "3", "--out", out], "not --seed")
    assert not (tmp_path / "r").exists()


def test_story_bad_input_is_one_line_and_the_experiment_has_no_story_alias(tmp_path, capsys):
    out = str(tmp_path / "r")
    _one_line_error(capsys, ["story", "--out", out], "unrecognized arguments: story")  # python -m minimal_ofn.story
    _one_line_error(capsys, ["--seeds", "0", "1", "--out", out], "at least 3 seeds", story.main)
    _one_line_error(capsys, ["--jobs", "0", "--out", out], "--jobs must be >= 1", story.main)
    assert not (tmp_path / "r").exists()


# ---- synthetic metric rows
STEPS = list(range(1000, 4001, 100))


def rows(q, mc=5.0, ret=100.0, bound=50.0, temperature=0.01, **extra):
    """Rows of one run; q, mc, ret may be numbers or functions of the step."""
    out = []
    for s in [0, 500, *STEPS]:
        learning = s >= 1000
        val = (lambda v: v(s) if callable(v) else v)
        row = {k: math.nan for k in METRICS}
        row.update(step=s, updates=max(0, s - 1000) * 32, q_rollout=val(q) if learning else math.nan,
                   mc_return=val(mc) if learning else math.nan, q_bound=bound, temperature=temperature,
                   eval_return=val(ret), srank=50.0, adam_m_max=0.1, **extra)
        out.append(row)
    return out


def test_seed_curve_is_the_mean_and_band_is_min_max_over_seeds():
    a, b = rows(q=10.0), rows(q=30.0)
    b[-1]["q_rollout"] = math.nan  # a seed missing a value: the mean is over the others
    steps, mean, low, high = plots.seed_curve([a, b], "q_rollout")
    assert steps[0] == 1000 and mean[0] == 20 and low[0] == 10 and high[0] == 30
    assert mean[-1] == 10 and high[-1] == 10


def test_plot_q_vs_mc_draws_q_solid_mc_dashed_same_color_log_axis_and_the_bound():
    results = {"baseline": [rows(q=100.0), rows(q=300.0)], "ofn": [rows(q=6.0), rows(q=8.0)]}
    ax = plots.plot_q_vs_mc(results)
    lines = {line.get_label(): line for line in ax.get_lines()}
    bounds = {"baseline: max reward / (1 - γ)", "ofn: max reward / (1 - γ)"}
    assert set(lines) == {"baseline: Q", "baseline: MC return", "ofn: Q", "ofn: MC return", *bounds}
    assert ax.get_yscale() == "log"
    assert np.allclose(lines["baseline: Q"].get_ydata(), 200) and np.allclose(lines["ofn: MC return"].get_ydata(), 5)
    assert lines["ofn: MC return"].get_linestyle() == "--" and lines["ofn: Q"].get_linestyle() == "-"
    assert lines["ofn: Q"].get_color() == lines["ofn: MC return"].get_color() != lines["baseline: Q"].get_color()
    assert np.allclose(lines["ofn: max reward / (1 - γ)"].get_ydata(), 50)
    assert lines["ofn: max reward / (1 - γ)"].get_color() == lines["ofn: Q"].get_color()  # each variant's own
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["baseline", "ofn", "Q (solid)", "MC return (dashed)", "max reward / (1 - γ) (dotted)"]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(100) and band.max() == pytest.approx(300)


def test_plot_metric_labels_scale_and_one_band_per_variant_with_several_seeds():
    fig, ax = plt.subplots()
    results = {"a": [rows(q=1.0, ret=10.0), rows(q=1.0, ret=20.0)], "b": [rows(q=1.0, ret=5.0)]}
    assert plots.plot_metric(results, "eval_return", ax=ax, log=True, title="T") is ax
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    assert len(ax.collections) == 1  # one seed: nothing to shade
    assert ax.get_yscale() == "log" and ax.get_title() == "T" and ax.get_xlabel() == "environment step"
    assert np.allclose(ax.get_lines()[0].get_ydata(), 15)


def test_a_series_of_one_evaluation_is_drawn_as_a_marker_and_a_long_one_as_a_plain_line():
    fig, ax = plt.subplots()
    once = rows(q=1.0, ret=math.nan)
    once[-1]["eval_return"] = 7.0  # evaluated at the last step only
    plots.plot_metric({"once": [once], "always": [rows(q=1.0, ret=3.0)]}, "eval_return", ax=ax)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["once"].get_marker() == "o" and list(lines["once"].get_ydata()) == [7.0]
    assert lines["always"].get_marker() in ("None", None, "")


def test_story_figure_has_the_four_panels_and_saves(tmp_path):
    path = tmp_path / "f.png"
    fig = plots.story_figure({"baseline": [rows(q=100.0)], "ofn": [rows(q=6.0)]}, path)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Q vs Monte Carlo return", "evaluation return", "effective rank of critic features",
                      "critic Adam max |m|"]
    assert fig.axes[0].get_yscale() == "log" and fig.axes[3].get_yscale() == "log"
    assert path.stat().st_size > 10_000


def test_summary_table_numbers():
    peak_at = lambda top: (lambda s: top if s == 2000 else 10.0)  # noqa: E731
    results = {"baseline": [rows(q=peak_at(100.0), mc=2.0, ret=7.0, mc_soft_return=3.0),
                            rows(q=peak_at(300.0), mc=2.0, ret=9.0, mc_soft_return=3.0)],
               "ofn": [rows(q=4.0, mc=2.0, ret=20.0, mc_soft_return=3.0)]}
    table = plots.summary_table(results).splitlines()
    assert table[0].split()[:3] == ["variant", "seeds", "peak"]
    base = table[2].split()
    assert "Q - soft MC" in table[0] and "Q / MC" not in table[0]
    assert base == ["baseline", "2", "200.00", "2000", "2.00", "197.0", "8.0"]  # Q - soft MC: 200 - 3
    assert table[3].split()[2:] == ["4.00", "1000", "2.00", "1.0", "20.0"]


def test_plot_cli_reads_a_results_folder(tmp_path, capsys):
    for seed, q in enumerate((100.0, 300.0)):
        folder = tmp_path / "utd32" / "baseline" / f"seed{seed}"
        folder.mkdir(parents=True)
        with open(folder / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS)
            w.writeheader()
            w.writerows(rows(q=q))
    ex.main(["plot", str(tmp_path)])
    assert (tmp_path / "figure_utd32.png").stat().st_size > 10_000
    assert "200.00" in (tmp_path / "table_utd32.txt").read_text()
    assert "failed" not in (tmp_path / "table_utd32.txt").read_text()


def test_the_table_marks_a_failed_run_and_says_where_and_why(tmp_path, capsys):
    import json

    for seed in range(3):
        folder = tmp_path / "utd32" / "baseline" / f"seed{seed}"
        folder.mkdir(parents=True)
        with open(folder / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS)
            w.writeheader()
            w.writerows(rows(q=100.0))
        failure = {"step": 2000, "updates": 32000, "frozen_at_step": 1000, "why": "critic_loss is nan"}
        (folder / "summary.json").write_text(json.dumps({"failed": failure if seed == 1 else None}))
    ex.main(["plot", str(tmp_path)])
    table = (tmp_path / "table_utd32.txt").read_text().splitlines()
    assert table[2].startswith("baseline") and "3 (1 failed)" in table[2]
    assert table[3:] == ["failed: baseline seed 1 at step 2000 (frozen at step 1000): critic_loss is nan"]
    assert "3 (1 failed)" in capsys.readouterr().out


# ---- the command line's variant flags (each run's config.json read back)
GRID = ["--env", "Pendulum-v1", "--steps", "40", "--seed-steps", "30", "--utd", "1", "--batch-size", "16",
        "--hidden", "16", "--log-every", "20", "--eval-every", "40", "--checkpoint-every", "40", "--no-progress"]


def _saved(out, variant):
    import json

    return json.loads((out / "utd1" / variant / "seed0" / "config.json").read_text())


def test_reset_and_priming_flags_apply_to_their_variants_only(tmp_path, capsys):
    ex.main([*GRID, "--variants", "baseline", "ofn", "resets", "ofn+priming", "--reset-every", "7",
             "--priming-updates", "5", "--out", str(tmp_path)])
    for variant in ("baseline", "ofn"):
        assert (_saved(tmp_path, variant)["reset_every"], _saved(tmp_path, variant)["priming_updates"]) == (0, 0)
    assert (_saved(tmp_path, "resets")["reset_every"], _saved(tmp_path, "resets")["reset_kind"]) == (7, "full")
    assert _saved(tmp_path, "resets")["priming_updates"] == 0
    assert (_saved(tmp_path, "ofn+priming")["priming_updates"], _saved(tmp_path, "ofn+priming")["ofn"]) == (5, True)
    assert _saved(tmp_path, "ofn+priming")["reset_every"] == 0


def test_resets_and_priming_without_their_flags_take_the_defaults(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ex, "RESET_EVERY", 11)  # the defaults, shrunk: 20,000 priming updates take too long here
    monkeypatch.setattr(ex, "PRIMING_UPDATES", 3)
    ex.main([*GRID, "--variants", "resets", "priming", "--out", str(tmp_path)])
    assert _saved(tmp_path, "resets")["reset_every"] == 11
    assert _saved(tmp_path, "priming")["priming_updates"] == 3
    assert "Traceback" not in capsys.readouterr().err
