"""The grader: full marks for every solution, zero for every untouched exercise, the planted mistakes caught.

Three kinds of test:
- every notebook (slow, ~2 minutes for all fourteen on 2 cores): each solution is graded with its nbgrader test
  cells and its experiment cells ON at a tiny size (so the code a learner runs is executed too) and must score
  full marks with nothing going wrong; each exercise, graded as a learner would hand it in untouched, must score
  zero;
- wrong answers (milliseconds, no kernel): a plausible mistake per function, passed to the checks directly; the
  check aimed at that mistake must fail with its hint;
- bad input (a few kernels): a notebook that raises, one that never finishes, one that kills its kernel, one
  that is not JSON, one missing a function, one of no known exercise: each is a report, never a crash.
"""

import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from minimal_ofn import checks
from minimal_ofn.grade import format_report, grade_notebook, main, passed, summary_table

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


def tiny(tmp_path) -> dict:
    """Parameters that shrink every solution's experiment to seconds (test_exercises checks none is missed)."""
    return {"RUN_EXPERIMENTS": True, "ENV": "Pendulum-v1", "STEPS": 60, "SEED_STEPS": 30, "LOG_EVERY": 20,
            "UTD": 2, "HIGH_UTD": 2, "PRIMING": 20, "RESET_EVERY": 40, "SEEDS": [0, 1], "RESULTS": None,
            "OUT": str(tmp_path / "runs")}


def test_there_are_seven_pairs():
    assert [p.name for p in SOLUTIONS] == [p.name for p in EXERCISES]
    assert [p.stem for p in SOLUTIONS] == list(checks.EXERCISES)


# ---- every notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_solutions_score_full_marks_and_exercises_zero(path, tmp_path):
    if path.parent.name == "solutions":
        report = grade_notebook(path, parameters=tiny(tmp_path), test_cells=True)
        assert report["status"] == "graded" and report["max_score"] > 0, format_report(report)
        assert report["score"] == report["max_score"], format_report(report)
        assert report["problems"] == [], format_report(report)  # test cells and tiny experiments ran cleanly
    else:
        report = grade_notebook(path)
        assert report["status"] == "graded", format_report(report)
        assert report["max_score"] == sum(checks.parts(path.stem).values()) > 0
        assert report["score"] == 0, format_report(report)
        assert all("not implemented yet" in c["message"] for c in report["checks"]), format_report(report)


# ---- wrong answers, one plausible mistake each
def _soft_target(reward, terminated, next_q, next_log_prob, alpha, gamma, reduce=lambda q: q.min(dim=1).values,
                 mask=True):
    bootstrap = reduce(next_q) - alpha * next_log_prob
    return reward + gamma * ((1.0 - terminated) if mask else 1.0) * bootstrap


@torch.no_grad()
def _polyak_wrong_side(targets, onlines, tau):
    for t, p in zip(targets, onlines):
        t.mul_(tau).add_(p, alpha=1 - tau)


def _utd_once_per_step(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(1, steps + 1):
        env_step()
        if t >= seed_steps:
            update()
            n += 1
    return n


def _returns_undiscounted(rewards, gamma):
    return np.cumsum(np.asarray(rewards)[::-1])[::-1]


def _returns_forward(rewards, gamma):
    out, running = [], 0.0
    for r in rewards:
        running = r + gamma * running
        out.append(running)
    return np.array(out)


def _adam_keeps_momentum(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = 0.9 * m + 0.1 * grad  # beta1 ignored
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * (m / (1 - 0.9**t)) / ((v / (1 - beta2**t)).sqrt() + eps), m, v


def _adam_no_bias_correction(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * m / (v.sqrt() + eps), m, v


def _ofn_over_batch(features, eps=1e-12):
    return features / features.norm(dim=-2, keepdim=True).clamp_min(eps)


def _ofn_without_eps(features, eps=1e-12):
    return features / features.norm(dim=-1, keepdim=True)


def _ofn_detached(features, eps=1e-12):
    return features / features.norm(dim=-1, keepdim=True).clamp_min(eps).detach()


def _srank(features, delta=0.01, off_by_one=False, squared=False, threshold=None):
    sigma = torch.linalg.svdvals(features)
    if squared:
        sigma = sigma**2
    share = sigma.cumsum(-1) / sigma.sum(-1, keepdim=True)
    level = (1 - delta) if threshold is None else threshold(delta)
    return (share < level).sum(-1) + (0 if off_by_one else 1)


def _dropout_keep_p(p, shape, generator):
    return (torch.rand(shape, generator=generator) < p).float() / (1 - p)


def _dropout_unscaled(p, shape, generator):
    return (torch.rand(shape, generator=generator) >= p).float()


def _dropout_global_rng(p, shape, generator):
    return (torch.rand(shape) >= p).float() / (1 - p)


def _prime_one_batch(buffer, update, updates, batch_size, generators):
    batch = buffer.sample(batch_size, generators)
    for _ in range(updates):
        update(batch)


def _iqm_unsorted(scores):
    cut = len(scores) // 4
    kept = list(scores)[cut: len(scores) - cut]
    return sum(kept) / len(kept)


def _final_first_row(folder, metric="eval_return"):
    from minimal_ofn.train import load_metrics

    return {v.name: [load_metrics(r)[0][metric] for r in sorted(v.glob("seed*"))]
            for v in Path(folder).iterdir() if v.is_dir()}


def _without_momentum_in_place(cfg):
    cfg.critic_beta1 = cfg.actor_beta1 = 0.0
    return cfg


WRONG = [
    # exercise, part, wrong function, the check that must fail, a phrase of its hint
    ("01_sac_utd1", "soft_q_target", lambda *a: _soft_target(*a, mask=False),
     "target_does_not_bootstrap_from_terminal_states", "reward alone"),
    ("01_sac_utd1", "soft_q_target", lambda *a: _soft_target(*a, reduce=lambda q: q.max(dim=1).values),
     "target_takes_the_smaller_twin", "larger"),
    ("01_sac_utd1", "soft_q_target", lambda *a: _soft_target(*a, reduce=lambda q: q.mean(dim=1)),
     "target_takes_the_smaller_twin", "averaged"),
    ("01_sac_utd1", "soft_q_target", lambda *a: _soft_target(*a, reduce=lambda q: q.min(dim=0).values),
     "target_takes_the_smaller_twin", "twin critics on axis 1"),
    ("01_sac_utd1", "soft_q_target", lambda r, d, q, lp, al, g: r + g * (1 - d) * (q.min(1).values + al * lp),
     "target_subtracts_the_entropy_term", "sign"),
    ("01_sac_utd1", "polyak_update", _polyak_wrong_side,
     "polyak_moves_the_target_a_step_tau_toward_the_online_network", "wrong side"),
    ("01_sac_utd1", "polyak_update", lambda ts, ps, tau: [(1 - tau) * t + tau * p for t, p in zip(ts, ps)],
     "polyak_moves_the_target_a_step_tau_toward_the_online_network", "in place"),
    ("02_high_utd", "utd_loop", _utd_once_per_step, "utd_loop_runs_utd_updates_after_every_env_step",
     "one update per environment step"),
    ("02_high_utd", "utd_loop", lambda e, u, steps, utd, seed: [e() for _ in range(steps)] and
     [u() for _ in range(steps * utd)] and steps * utd,
     "utd_loop_runs_utd_updates_after_every_env_step", "right after that step"),
    ("02_high_utd", "utd_loop", lambda e, u, steps, utd, seed: sum(
        [e(), *[u() for _ in range(utd)]] and utd for _ in range(steps)),
     "utd_loop_waits_for_the_random_phase", "no updates until"),
    ("02_high_utd", "discounted_returns", _returns_undiscounted, "returns_by_hand", "without discount"),
    ("02_high_utd", "discounted_returns", _returns_forward, "returns_by_hand", "wrong order"),
    ("02_high_utd", "discounted_returns", lambda rs, g: _returns_forward(rs, g)[::-1].copy(), "returns_by_hand",
     "wrong order"),
    ("03_momentum", "adam_step", _adam_keeps_momentum, "adam_without_momentum_uses_the_current_gradient",
     "still has momentum"),
    ("03_momentum", "adam_step", _adam_no_bias_correction, "adam_first_step_has_size_lr", "bias-corrected"),
    ("03_momentum", "without_momentum", lambda cfg: cfg.replace(critic_beta1=0.0),
     "without_momentum_zeroes_beta1_of_critic_and_actor", "both the critic's and the actor's"),
    ("03_momentum", "without_momentum", lambda cfg: cfg.replace(critic_beta1=0.0, actor_beta1=0.0, beta2=0.0),
     "without_momentum_zeroes_beta1_of_critic_and_actor", "beta2"),
    ("03_momentum", "without_momentum", _without_momentum_in_place, "without_momentum_changes_nothing_else",
     "changed copy"),
    ("04_regularization", "dropout_mask", _dropout_keep_p, "mask_drops_a_fraction_p", "probability of dropping"),
    ("04_regularization", "dropout_mask", _dropout_unscaled, "mask_scales_the_kept_units", "not scaled"),
    ("04_regularization", "dropout_mask", _dropout_global_rng, "mask_draws_from_the_given_generator", "generator"),
    ("04_regularization", "decoupled_weight_decay", lambda p, lr, wd: p * (1 - wd),
     "decay_shrinks_each_weight_by_lr_times_wd", "learning rate"),
    ("04_regularization", "decoupled_weight_decay", lambda p, lr, wd: p - lr * wd,
     "decay_shrinks_each_weight_by_lr_times_wd", "proportion"),
    ("04_regularization", "l2_penalty", lambda ws, c: c * sum(w.norm() for w in ws),
     "penalty_is_coef_times_the_squared_norm", "squared norm"),
    ("04_regularization", "l2_penalty", lambda ws, c: torch.tensor(c * sum(float((w**2).sum()) for w in ws)),
     "penalty_gradient_is_two_coef_w", "differentiable"),
    ("05_ofn", "ofn", _ofn_over_batch, "ofn_gives_each_sample_unit_norm", "over the batch"),
    ("05_ofn", "ofn", _ofn_over_batch, "ofn_keeps_direction_and_treats_samples_alone", "same way"),
    ("05_ofn", "ofn", lambda x, eps=1e-12: x / x.norm(dim=-1, keepdim=True) ** 2, "ofn_gives_each_sample_unit_norm",
     "not by its square"),
    ("05_ofn", "ofn", _ofn_without_eps, "ofn_survives_all_zero_features", "eps"),
    ("05_ofn", "ofn", _ofn_detached, "ofn_passes_gradients_through_the_norm", "do not detach"),
    ("05_ofn", "srank", lambda f, delta=0.01: _srank(f, delta, off_by_one=True),
     "srank_counts_singular_values_to_cover_1_minus_delta", "off by one"),
    ("05_ofn", "srank", lambda f, delta=0.01: _srank(f, delta, threshold=lambda d: d),
     "srank_counts_singular_values_to_cover_1_minus_delta", "(1 - delta)"),
    ("05_ofn", "srank", lambda f, delta=0.01: _srank(f, delta, squared=True),
     "srank_counts_singular_values_to_cover_1_minus_delta", "not their squares"),
    ("05_ofn", "srank", lambda f, delta=0.01: int(_srank(f.reshape(-1, f.shape[-1]), delta)),
     "srank_is_batched_over_leading_axes", "tensor"),
    ("06_priming_resets", "prime", _prime_one_batch, "prime_samples_a_fresh_batch_for_every_update", "new batch"),
    ("06_priming_resets", "prime", lambda b, u, n, bs, g: [u(b.sample(bs, g)) for _ in range(n + 1)],
     "prime_runs_exactly_updates_updates", "should call update"),
    ("06_priming_resets", "reset_due", lambda k, u: k > 0 and (u + 1) % k == 0, "reset_every_k_updates",
     "off by one"),
    ("06_priming_resets", "reset_due", lambda k, u: u % k == 0, "reset_never_when_switched_off", "ZeroDivisionError"),
    ("07_at_scale", "iqm", lambda s: float(np.median(s)), "iqm_averages_the_middle_half", "median"),
    ("07_at_scale", "iqm", lambda s: float(np.mean(s)), "iqm_averages_the_middle_half", "plain mean"),
    ("07_at_scale", "iqm", _iqm_unsorted, "iqm_averages_the_middle_half", "sort"),
    ("07_at_scale", "iqm", lambda s: float(np.mean(sorted(s)[len(s) // 4: -(len(s) // 4)])),
     "iqm_of_any_number_of_scores", "fewer than 4"),  # [k:-k] is empty when k = 0
    ("07_at_scale", "final_scores", _final_first_row, "final_scores_reads_the_last_row_of_every_run", "last row"),
]


@pytest.mark.parametrize("exercise,part,wrong,check_name,phrase", WRONG,
                         ids=[f"{w[0][:2]}-{w[3]}-{k}" for k, w in enumerate(WRONG)])
def test_a_planted_mistake_fails_its_check_with_a_hint(exercise, part, wrong, check_name, phrase):
    results = checks.run(exercise, {part: wrong}, only_part=part)
    by_name = {r["check"]: r for r in results}
    assert check_name in by_name, f"no check {check_name} for {part}"
    r = by_name[check_name]
    assert not r["passed"] and r["points"] == 0, f"{check_name} passed a wrong {part}"
    assert phrase.lower() in r["message"].lower(), f"hint for {check_name}: {r['message']!r}"
    assert sum(x["points"] for x in results) < checks.parts(exercise)[part]


# ---- other correct answers: the checks must not insist on one way of writing them
def _returns_list(rewards, gamma):
    out, g = [], 0.0
    for r in reversed(rewards):
        g = r + gamma * g
        out.append(g)
    return out[::-1]


def _returns_torch(rewards, gamma):
    r = torch.tensor(rewards, dtype=torch.float32)
    out, running = torch.zeros_like(r), torch.tensor(0.0)
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running
        out[t] = running
    return out


def _utd_zero_based(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(steps):
        env_step()
        if t >= seed_steps:  # learning starts one step later than the package's: accepted
            for _ in range(utd):
                update()
                n += 1
    return n


def _adam_in_place(p, g, m, v, t, lr, b1, b2, eps=1e-8):
    m.mul_(b1).add_((1 - b1) * g)
    v.mul_(b2).add_((1 - b2) * g * g)
    p.sub_(lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps))
    return p, m, v


def _without_momentum_copy(cfg):
    import copy

    c = copy.copy(cfg)
    c.critic_beta1 = c.actor_beta1 = 0
    return c


def _srank_argmax(f, delta=0.01):
    s = torch.linalg.svdvals(f)
    share = torch.cumsum(s, -1) / torch.sum(s, -1, keepdim=True)
    return (share >= 1 - delta).float().argmax(-1) + 1


def _final_scores_csv(folder, metric="eval_return"):
    import csv

    out = {}
    for f in sorted(Path(folder).rglob("metrics.csv")):
        with open(f) as fh:
            out.setdefault(f.parent.parent.name, []).append(list(csv.DictReader(fh))[-1][metric])  # strings
    return out


RIGHT = [
    ("02_high_utd", {"utd_loop": _utd_zero_based, "discounted_returns": _returns_list}),
    ("02_high_utd", {"utd_loop": _utd_zero_based, "discounted_returns": _returns_torch}),
    ("03_momentum", {"adam_step": _adam_in_place, "without_momentum": _without_momentum_copy}),
    ("04_regularization", {
        "dropout_mask": lambda p, shape, g: torch.bernoulli(torch.full(shape, 1 - p), generator=g) / (1 - p),
        "decoupled_weight_decay": lambda p, lr, wd: p.mul_(1 - lr * wd),
        "l2_penalty": lambda ws, c: c * torch.stack([(w**2).sum() for w in ws]).sum()}),
    ("05_ofn", {"ofn": lambda x, eps=1e-12: x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + eps),
                "srank": _srank_argmax}),
    ("06_priming_resets", {"reset_due": lambda k, u: bool(k) and u % k == 0,
                           "prime": lambda b, u, n, bs, g: [u(b.sample(bs, g)) for _ in range(n)]}),
    ("07_at_scale", {"iqm": lambda s: __import__("scipy.stats").stats.trim_mean(s, 0.25),
                     "final_scores": _final_scores_csv}),
]


@pytest.mark.parametrize("exercise,namespace", RIGHT, ids=[f"{r[0]}-{k}" for k, r in enumerate(RIGHT)])
def test_other_correct_answers_pass(exercise, namespace):
    failed = [r for r in checks.run(exercise, namespace) if not r["passed"]]
    assert not failed, failed


def test_the_checks_pass_the_package_reference_functions():
    """The checks' own expectations agree with the package's implementations (no drift between them)."""
    from minimal_ofn import diagnostics, ofn, priming, sac

    def polyak(targets, onlines, tau):
        sac.polyak_update(targets, onlines, torch.tensor([float(tau)]).expand(1))

    def prime(buffer, update, updates, batch_size, generators):
        fake_sac = type("S", (), {"update": staticmethod(update), "batch_size": batch_size, "generators": generators})
        priming.prime(fake_sac, buffer, updates, progress=False)

    namespaces = {
        "01_sac_utd1": {"soft_q_target": sac.soft_q_target, "polyak_update": polyak},
        "05_ofn": {"ofn": ofn.ofn, "srank": diagnostics.srank},
    }
    for exercise, ns in namespaces.items():
        failed = [r for r in checks.run(exercise, ns) if not r["passed"]]
        assert not failed, failed
    mc = checks.run("02_high_utd", {"discounted_returns": diagnostics.discounted_returns}, only_part="discounted_returns")
    assert all(r["passed"] for r in mc), mc
    primed = checks.run("06_priming_resets", {"prime": prime}, only_part="prime")
    assert all(r["passed"] for r in primed), primed


def test_a_learner_function_that_never_returns_fails_one_check():
    def forever(*args):
        while True:
            pass

    fn = checks.checks_of("01_sac_utd1")[0]
    start = time.monotonic()
    r = checks.run_check(fn, {"soft_q_target": forever}, timeout=0.5)
    assert "within 0.5 s" in r["message"]
    assert time.monotonic() - start < 5
    assert not r["passed"] and "did not return" in r["message"]


def test_an_exception_in_learner_code_is_reported_with_what_was_tested():
    r = checks.run("01_sac_utd1", {"soft_q_target": lambda *a: 1 / 0}, only_part="soft_q_target")[0]
    assert not r["passed"] and "ZeroDivisionError" in r["message"] and "testing:" in r["message"]


# ---- bad input
def _notebook(path: Path, sources, exercise="01_sac_utd1") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "minimal_ofn": {"exercise": exercise} if exercise else {}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


TARGET = """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * (next_q.min(dim=1).values - alpha * next_log_prob)
"""


@pytest.mark.slow
def test_a_cell_that_raises_and_a_missing_function(tmp_path):
    path = _notebook(tmp_path / "alice.ipynb", ["raise RuntimeError('boom')", TARGET])
    report = grade_notebook(path)
    assert report["status"] == "graded" and report["exercise"] == "01_sac_utd1"
    assert report["score"] == checks.parts("01_sac_utd1")["soft_q_target"] < report["max_score"]
    assert any("RuntimeError: boom" in p for p in report["problems"]), report["problems"]
    missing = [c for c in report["checks"] if c["part"] == "polyak_update"]
    assert missing and all("`polyak_update` is not defined" in c["message"] for c in missing)
    assert "hint:" in format_report(report)


@pytest.mark.slow
def test_a_notebook_that_never_finishes_is_cut_off_and_still_graded(tmp_path):
    forever = "def polyak_update(targets, onlines, tau):\n    while True:\n        pass"
    path = _notebook(tmp_path / "bob_01.ipynb", [TARGET, forever, "while True: pass", "while True: pass", "x = 1"],
                     exercise=None)
    start = time.monotonic()
    report = grade_notebook(path, cell_timeout=2, total_timeout=3, check_timeout=1)
    assert time.monotonic() - start < 60
    assert report["status"] == "graded" and report["exercise"] == "01_sac_utd1"  # from the file name
    assert any("did not finish within 2 s" in p for p in report["problems"]), report["problems"]
    assert any("longer than 3 s in total" in p for p in report["problems"]), report["problems"]
    assert report["score"] == checks.parts("01_sac_utd1")["soft_q_target"]
    stuck = [c for c in report["checks"] if c["part"] == "polyak_update"]
    assert stuck and all("did not return within 1 s" in c["message"] for c in stuck), stuck


@pytest.mark.slow
def test_a_notebook_that_kills_its_kernel(tmp_path):
    path = _notebook(tmp_path / "carol.ipynb", [TARGET, "import os; os._exit(1)"])
    report = grade_notebook(path)
    assert report["status"] == "error" and report["score"] == 0 and report["max_score"] > 0
    assert "kernel died" in report["error"], report


def test_a_file_that_is_not_a_notebook_and_one_of_no_known_exercise(tmp_path, capsys):
    (tmp_path / "03_momentum.ipynb").write_text("{ this is not json")
    _notebook(tmp_path / "homework.ipynb", ["x = 1"], exercise=None)
    broken = grade_notebook(tmp_path / "03_momentum.ipynb")
    assert broken["status"] == "error" and "not a readable notebook" in broken["error"]
    assert broken["exercise"] == "03_momentum" and broken["max_score"] == sum(checks.parts("03_momentum").values())
    unknown = grade_notebook(tmp_path / "homework.ipynb")
    assert unknown["status"] == "error" and "which exercise" in unknown["error"]
    # The whole folder in one command: a JSON list, exit status 1.
    assert main([str(tmp_path), "--json"]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert [Path(r["notebook"]).name for r in reports] == ["03_momentum.ipynb", "homework.ipynb"]
    assert main([str(tmp_path / "missing")]) == 2


def test_exit_status_and_summary(monkeypatch, capsys):
    def fake(path, *args):
        full = Path(path).name.startswith("a")
        return {"notebook": str(path), "exercise": "05_ofn", "status": "graded", "score": 7 if full else 3,
                "max_score": 7, "error": None, "problems": [], "checks": [], "seconds": 0.1}

    monkeypatch.setattr("minimal_ofn.grade.grade_notebook", fake)
    monkeypatch.setattr("minimal_ofn.grade.find_notebooks", lambda paths: [Path(p) for p in paths])
    assert main(["a.ipynb"]) == 0
    assert main(["a.ipynb", "b.ipynb"]) == 1
    table = capsys.readouterr().out
    assert "all passed" in table and "10/14" in table
    assert not passed({"status": "error", "score": 0, "max_score": 0})
    assert "total" in summary_table([fake("a.ipynb")])
