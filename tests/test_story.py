"""The story's statistics and claim machinery, on synthetic runs whose answers are known."""

import json
import math

import numpy as np
import torch
import pytest
from scipy.stats import trim_mean

from minimal_ofn import fixed_buffer, measures, stats, story
from minimal_ofn.story import Protocol
from minimal_ofn.story.report import _ofn_alignment_evidence


@pytest.mark.parametrize("shift, expected", [(5.0, stats.HOLDS), (-5.0, stats.CONTRADICTED), (0.0, stats.UNRESOLVED)])
def test_effect_interval_and_verdict_follow_the_data(shift, expected):
    rng = np.random.default_rng(0)
    a, b = rng.normal(shift, 1.0, 5), rng.normal(0.0, 1.0, 5)
    e = stats.effect(a, b)
    assert e["effect"] == pytest.approx(trim_mean(a, 0.25) - trim_mean(b, 0.25))
    assert e["low"] <= e["effect"] <= e["high"]
    assert stats.verdict(e) == expected


def test_iqm_ignores_one_wild_seed_and_one_sample_effect_is_against_zero():
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 1e9]) == pytest.approx(3.0)  # middle three of five
    e = stats.effect([0.9, 1.1, 1.0, 1.2, 0.8])
    assert e["n"] == (5, 1) and e["low"] > 0 and stats.verdict(e) == stats.HOLDS
    with pytest.raises(ValueError, match="finite"):
        stats.effect([1.0, math.nan, 2.0], [0.0, 1.0, 2.0])


def _row(step, **values):
    base = dict.fromkeys(("q_replay", "q_ood", "q_rollout", "mc_soft_return", "eval_return", "adam_v_max"), math.nan)
    return {"step": step, "updates": step, "max_reward": 1.0, "temperature": 0.0, "policy_entropy": 1.0, **base,
            **values}


def test_quantities_use_the_right_rows():
    rows = [_row(1000, q_rollout=500.0, mc_soft_return=0.0),  # random phase: not overestimation
            _row(1100, q_rollout=30.0, mc_soft_return=10.0, eval_return=50.0),  # the transient: not counted
            _row(1200, q_rollout=12.0, mc_soft_return=10.0, eval_return=50.0),  # carried-over eval: not counted
            _row(1230, q_rollout=16.0, mc_soft_return=10.0),
            _row(1250, q_rollout=math.nan, mc_soft_return=10.0, eval_return=10.0)]
    assert measures.late_overestimation(rows, seed_steps=1000) == 4.0  # last third (from step 1167): mean of 2 and 6
    assert measures.mean_return(rows, 1000, eval_every=250) == 10.0  # only the step-1250 evaluation
    assert measures.mean_return(rows[:3], 1000, eval_every=250) == 50.0  # the last step is always evaluated
    assert measures.mean_return(rows, 1000, eval_every=50) == pytest.approx(110 / 3)  # a dip is averaged, not maxed
    # B = (r_max + alpha |A| log 2) / (1 - gamma) = 100 here; |Q| 1000 is 10x beyond it
    assert measures.value_bound(rows[0], act_dim=6, gamma=0.99) == pytest.approx(100.0)
    assert measures.log_peak_over_bound([_row(0, q_replay=-1000.0), _row(1, q_replay=5.0)], "q_replay", 6, 0.99) == \
        pytest.approx(1.0)
    assert measures.log_growth([_row(0, adam_v_max=1e-6), _row(1, adam_v_max=math.nan), _row(2, adam_v_max=1e-3)],
                            "adam_v_max") == pytest.approx(3.0)


def _synthetic(p: Protocol, diverging: set) -> dict:
    """Runs where the arms in `diverging` have huge Q (and OFN-free arms overestimate online)."""
    def runs(q, over=0.0, ret=10.0):  # seed s has the same noise in every arm: equal arms are equal
        out = []
        for s in p.seeds:
            noise = np.random.default_rng(s).normal(0, 0.05)
            rows = [_row(p.seed_steps, q_replay=q * (1 + noise), q_ood=q * (1 + noise), adam_v_max=1e-6,
                         q_rollout=0.0, mc_soft_return=0.0, eval_return=0.0)]
            rows += [_row(p.seed_steps + k * p.online_eval_every * p.priming_eval_every, q_replay=q,
                          q_ood=q, adam_v_max=1e-3 if q > 1e3 else 1e-6, q_rollout=over * (1 + noise),
                          mc_soft_return=0.0, eval_return=ret * (1 + noise)) for k in (1, 2)]
            out.append(rows)
        return out

    d = {t: {a: runs(1e6 if a in diverging else 1.0) for a in story.DISSECT_ARMS} for t in ("fixed", "learned")}
    d["narrow"] = {a: runs(1e6 if a in diverging else 1.0) for a in story.NARROW_ARMS}

    def is_ofn(arm):
        return arm.startswith("ofn")

    online = {p.utd: {a: runs(1.0, over=0.0 if is_ofn(a) else 100.0, ret=20.0 if is_ofn(a) else 10.0)
                      for a in story.ONLINE_ARMS},
              1: {a: runs(1.0, over=1.0, ret=15.0) for a in story.ONLINE_UTD1_ARMS},
              "1x": {a: runs(1.0, over=1.0, ret=30.0) for a in story.ONLINE_UTD1_ARMS}}
    priming = {a: runs(1e6 if a == "baseline+priming" else 1.0, ret=1.0 if a == "baseline+priming" else 10.0)
               for a in story.PRIMING_ARMS}
    return {"dissection": d, "online": online, "priming": priming}


def test_verdicts_and_report_follow_synthetic_runs():
    p = Protocol(seeds=(0, 1, 2, 3, 4))
    # without momentum (Adam beta1=0, SGD) and with OFN nothing diverges
    results = _synthetic(p, diverging={"adam", "dropout", *story.L2_ARMS, "sgd+momentum", "sgd+momentum@3e-5",
                                       "rmsprop"})
    judged = story.judge(story.claim_scores(results, p, {"dissection": 6, "online": 6, "priming": 1}), reps=300)
    verdict = {(j["claim"].key, j["temperature"]): j["verdict"] for j in judged}
    n_dissection = sum(c.part == "dissection" for c in story.CLAIMS)
    assert len(judged) == len(story.CLAIMS) + n_dissection  # the dissection claims are judged at both temperatures
    assert not {c.key for c in story.GPU_CLAIMS} & {j["claim"].key for j in judged}  # not judged on a CPU
    assert verdict["overestimation", None] == stats.HOLDS
    for t in story.TEMPERATURES:
        assert verdict["diverges_seen", t] == verdict["diverges_unseen", t] == stats.HOLDS
        assert verdict["momentum", t] == verdict["moments_grow", t] == stats.HOLDS
        assert verdict["momentum_sgd_small", t] == verdict["momentum_sgd_large", t] == stats.HOLDS
        assert verdict["moments_propel", t] == verdict["second_moment", t] == stats.HOLDS
        assert verdict["second_vs_first", t] == verdict["adam_vs_first", t] == stats.UNRESOLVED  # equally diverged
        assert verdict["dropout_helps", t] == stats.UNRESOLVED  # as diverged as Adam
        for c in ("1e-5", "1e-4", "1e-3"):
            assert verdict[f"l2_helps_{c}", t] == stats.UNRESOLVED and verdict[f"ofn_beats_l2_{c}", t] == stats.HOLDS
        assert verdict["ofn_stops_offline", t] == stats.HOLDS
    assert verdict["ofn_stops_online", None] == verdict["ofn_stops_online_low_alpha", None] == stats.HOLDS
    assert verdict["priming_explodes", None] == verdict["priming_slows", None] == stats.HOLDS
    assert verdict["reset_recovers", None] == verdict["opt_reset_recovers", None] == stats.HOLDS
    assert verdict["diverges_unseen_narrow", None] == verdict["ofn_stops_narrow", None] == stats.HOLDS
    assert verdict["unseen_above_seen", None] == stats.UNRESOLVED  # the same |Q| on both here
    text = story.report(p, judged, "python -m minimal_ofn.story")
    for k, j in enumerate(judged, 1):
        line = next(t for t in text.splitlines() if t.startswith(f"| {k} |"))
        assert line.endswith(f"**{j['verdict']}** |")
    counts = [sum(j["verdict"] == v for j in judged) for v in (stats.HOLDS, stats.CONTRADICTED, stats.UNRESOLVED)]
    assert f"{counts[0]} hold, {counts[1]} are contradicted, {counts[2]} are unresolved" in text

    dims = {"dissection": 6, "online": 6, "priming": 1}
    tables = "\n".join(story.arm_tables(results, p, dims))
    for arm in [*story.DISSECT_ARMS, *story.PRIMING_ARMS]:
        assert f"| {arm} |" in tables
    assert story.notes(judged, story.claim_scores(results, p, dims), results, p, dims) == []  # nothing contradicted

    flipped = _synthetic(p, diverging={"critic_beta1=0", "ofn", "sgd"})  # the opposite world
    scores = story.claim_scores(flipped, p, dims)
    judged = story.judge(scores, reps=300)
    verdict = {(j["claim"].key, j["temperature"]): j["verdict"] for j in judged}
    notes = story.notes(judged, scores, flipped, p, dims)
    assert len(notes) == sum(j["verdict"] == stats.CONTRADICTED for j in judged) > 0
    assert any(n.startswith("- **Divergence is propelled by optimizer momentum**") for n in notes)
    open_notes = story.notes(judged, scores, flipped, p, dims, verdict=stats.UNRESOLVED)
    assert len(open_notes) == sum(j["verdict"] == stats.UNRESOLVED for j in judged)
    learned = [n for n in open_notes if "alpha learned" in n]
    assert learned and all("With alpha learned, every arm's IQM log10(peak |Q| / B) lies in [" in n for n in learned)
    text = story.report(p, judged, "cmd", tables=[tables], notes=notes, open_notes=open_notes)
    assert "## Why the contradicted claims fail here" in text and notes[0] in text
    assert ("## What the unresolved claims' seeds say" in text) == bool(open_notes)
    assert verdict["momentum", "fixed"] == verdict["ofn_stops_offline", "learned"] == stats.CONTRADICTED
    assert verdict["momentum_sgd_small", "learned"] == verdict["second_moment", "fixed"] == stats.CONTRADICTED
    assert verdict["diverges_seen", "fixed"] == stats.CONTRADICTED  # Adam itself stays below the bound here


def test_priming_arms_prime_and_reset_right_after_priming():
    p = Protocol(priming_updates=123)
    arms = story.priming_arms(p)
    assert arms["baseline"] == {} and arms["ofn"] == {"ofn": True}
    assert arms["baseline+priming"] == {"priming_updates": 123}
    assert arms["baseline+priming+reset"] == {"priming_updates": 123, "reset_every": 123, "reset_kind": "full"}
    assert arms["baseline+priming+opt_reset"] == {"priming_updates": 123, "reset_every": 123,
                                                  "reset_kind": "critic_optimizer"}
    assert arms["ofn+priming"] == {"ofn": True, "priming_updates": 123}


def test_an_interval_is_repeatable():
    a, b = [1.0, 2.0, 0.5, 3.0, 1.5], [0.9, 1.1, 0.2, 2.0, 1.0]
    assert stats.effect(a, b, reps=500) == stats.effect(a, b, reps=500)


def test_the_committed_report_and_the_readme_say_what_the_committed_runs_say():
    """docs/story/story.md (and the README's copy of its table) hold the verdicts, effects and intervals that the
    committed runs give when judged again now, with the protocol they were run with."""
    from pathlib import Path

    p, judged = story.committed([c.key for c in story.CLAIMS])
    report = (story.COMMITTED / "story.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == len(judged) == len(story.judged_claims())
    for k, (row, j) in enumerate(zip(rows, judged), 1):
        assert row.startswith(f"| {k} | {j['claim'].paper} |"), row
        assert f"| {story.fmt(j['effect'])} [{story.fmt(j['low'])}, {story.fmt(j['high'])}] |" in row, row
        assert row.endswith(f"**{j['verdict']}** |"), row
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert [line for line in readme.splitlines() if line in rows] == rows, "README's story table differs from story.md"


TINY_STORY = ["--seeds", "0", "1", "2", "--priming-env", "dmc:cheetah-run", "--utd", "2", "--priming-utd", "2",
              "--dissect-updates", "12", "--dissect-log-every", "6", "--dissect-mc-every", "12", "--online-steps", "12",
              "--priming-updates", "10", "--priming-steps", "12", "--seed-steps", "30", "--hidden", "8",
              "--batch-size", "8", "--log-every", "12", "--online-eval-every", "12", "--priming-eval-every", "12",
              "--eval-episodes", "1", "--priming-eval-episodes", "1", "--compile", "off", "--jobs", "1",
              "--no-progress"]  # few 1000-step rollouts


def _without_wall_time(rows):  # NaN (not measured at that log) as None, so that equal rows compare equal
    return [[{k: None if v != v else v for k, v in r.items() if k != "wall_time"} for r in agent] for agent in rows]


def test_an_interrupted_dissection_stack_goes_on_as_if_never_stopped(tmp_path):
    p = Protocol(dissect_env="Pendulum-v1", seeds=(0, 1), hidden=8, batch_size=8, seed_steps=40, compile="off")
    configs = story.dissect_configs(p, fixed=False)
    stack = [c for arm in ("adam", "sgd+momentum", "dropout", "ofn") for c in configs[arm]]
    whole = fixed_buffer.run(stack, 12, 3, False, 6)
    checkpoint = tmp_path / "stack.pt"
    assert fixed_buffer.run(stack, 12, 3, False, 6, checkpoint, until=9) is None
    assert checkpoint.exists()
    resumed = fixed_buffer.run(stack, 12, 3, False, 6, checkpoint)
    assert len(resumed[0]) == 4 and _without_wall_time(resumed) == _without_wall_time(whole)
    other = [c.replace(critic_lr=1e-3) for c in stack]
    with pytest.raises(Exception, match="other settings"):
        fixed_buffer.run(other, 12, 3, False, 6, checkpoint)


def test_the_story_runs_end_to_end_writes_its_report_and_resumes_without_rerunning(tmp_path, capsys):
    out = tmp_path / "story"
    story.main([*TINY_STORY, "--out", str(out)])
    text = (out / "story.md").read_text()
    claims = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(claims) == len(story.judged_claims())
    assert "the whole story:" in text and list(out.glob("runs/**/stack*.pt")) == []
    assert {f.name for f in out.iterdir()} >= {"story.md", "protocol.json", "story_dissection.png"}
    metrics = sorted(out.glob("runs/**/metrics.csv"))
    n_runs = len(story.PRIMING_ARMS) + len(story.ONLINE_ARMS) + 2 * len(story.ONLINE_UTD1_ARMS) \
        + 2 * len(story.DISSECT_ARMS) + len(story.NARROW_ARMS)
    assert len(metrics) == 3 * n_runs
    before = {m: m.stat().st_mtime_ns for m in metrics}
    story.main([*TINY_STORY, "--out", str(out)])  # everything is there: nothing runs again, the report is the same
    assert {m: m.stat().st_mtime_ns for m in metrics} == before
    again = (out / "story.md").read_text()
    assert again.split("Wall time of each stack")[0] == text.split("Wall time of each stack")[0]
    # --report-only judges the runs again and keeps the wall times of the run that made them, and the report names
    # the command that makes the runs, not the one that re-judged them.
    timed = json.loads((out / "wall_times.json").read_text())
    assert timed[-1].startswith("the whole story:") and "; ".join(timed) in again
    story.main([*TINY_STORY, "--out", str(out), "--report-only"])
    assert (out / "story.md").read_text() == again and "--report-only" not in again
    (out / "wall_times.json").unlink()
    story.main([*TINY_STORY, "--out", str(out), "--report-only"])
    assert "Wall time of each stack" not in (out / "story.md").read_text()


def test_the_story_refuses_a_task_whose_rewards_it_cannot_bound(tmp_path, capsys):
    with pytest.raises(SystemExit):
        story.main([*TINY_STORY, "--online-env", "Pendulum-v1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dm_control" in err[0] and "Pendulum-v1" in err[0]
    assert not (tmp_path / "runs").exists()


def test_ofn_learns_evidence_reports_the_alignment_and_the_last_evaluation_from_the_runs():
    p = Protocol(seeds=(0, 1, 2), seed_steps=10)

    def run(cos, spread, returns, seed):  # one row per 10 steps; the first is in the random phase and must not count
        rows = [dict(step=10 * (k + 1), cos_phi_w=c, q_spread=q, eval_return=r)
                for k, (c, q, r) in enumerate(zip(cos, spread, returns))]
        rows[0].update(cos_phi_w=1.0, q_spread=0.0, eval_return=-99.0)
        rows[-1]["eval_return"] += seed
        return rows

    arms = {"ofn": [run([0, 0.2, 0.99, 0.5], [0, 0.5, 0.001, 0.3], [0, 5.0, 0.3, 30.0], s) for s in range(3)],
            "baseline": [run([0, 0.1, 0.6, 0.4], [0, 1.0, 0.8, 0.9], [0, 20.0, 25.0, 10.0], s) for s in range(3)]}
    text = _ofn_alignment_evidence(arms, p)
    assert "cos(phi, w) was 0.99, 0.99, 0.99 (baseline 0.6, 0.6, 0.6)" in text
    assert "spread of Q over a batch 0.001, 0.001, 0.001 (baseline 0.8, 0.8, 0.8)" in text
    assert "lowest evaluation return 0.3, 0.3, 0.3 (baseline 10, 11, 12)" in text
    assert "At the last evaluation (step 40), OFN minus baseline is 20 [" in text and "(HOLDS)" in text
    assert "returns 30, 31, 32 against 10, 11, 12." in text
    for rows in arms["ofn"]:  # runs from before cos_phi_w was logged: nan, no crash
        for r in rows:
            del r["cos_phi_w"]
    assert "cos(phi, w) was nan, nan, nan" in _ofn_alignment_evidence(arms, p)


def test_the_committed_report_gives_the_alignment_evidence_where_ofn_learns_is_not_shown():
    # "OFN learns" needs a GPU: it is listed in that section, not judged, and the section gives what the CPU runs
    # did show of OFN (its alignment transient, and the arms at the last evaluation).
    p, judged = story.committed(["ofn_learns"])
    assert judged == []
    report = (story.COMMITTED / "story.md").read_text()
    gpu = report.split("## Claims that need a GPU")[1].split("\n## ")[0]
    assert "- **With OFN, high-UTD SAC learns**" in gpu
    line = next(t for t in gpu.splitlines() if t.startswith("What this story's own UTD"))
    assert "cos(phi, w) was" in line and "At the last evaluation" in line


def test_story_help_gives_every_setting_its_help_and_default(capsys):
    import dataclasses

    with pytest.raises(SystemExit):
        story.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(Protocol):
        flag = f"--{f.name.replace('_', '-')}"
        after = text.split(flag + " ")[2]  # usage first, then the help entry
        default = " ".join(map(str, f.default)) if f.name == "seeds" else str(f.default)
        assert f"(default: {default})" in after.split(" --")[0], flag


def test_fixed_buffer_logs_every_k_updates_and_compiles_outside_the_bar():
    from minimal_ofn.lockstep import Lockstep

    p = Protocol(dissect_env="Pendulum-v1", seeds=(0, 1), hidden=8, batch_size=8, seed_steps=40, compile="off")
    run = fixed_buffer.fill(Lockstep(story.dissect_configs(p, fixed=True)["adam"], progress=False))
    assert run.t == 40 and run.buffer.size == 40
    rows = fixed_buffer.updates(run, 10, log_every=4, mc_every=8, progress=False)
    assert [r["updates"] for r in rows[0]] == [4, 8] and run.updates == 10
    assert math.isnan(rows[0][0]["q_rollout"]) and math.isfinite(rows[0][1]["q_rollout"])  # Monte Carlo at 8 only
    rows = fixed_buffer.updates(run, 6, log_every=4, rows=rows, progress=False)  # goes on: counted from the start
    assert [r["updates"] for r in rows[1]] == [4, 8, 12, 16] and run.buffer.size == 40  # D never grows
    narrow = fixed_buffer.fill(Lockstep(story.dissect_configs(p, fixed=True)["adam"], progress=False), 0.2)
    actions = narrow.buffer.data["action"][:, :narrow.buffer.size]
    assert 0.15 < float(actions.std()) < 0.25 and float(actions.abs().max()) <= 1.0  # uniform's std is 0.58


def test_the_critic_optimizer_reset_forgets_m_and_v_and_keeps_the_weights():
    from minimal_ofn.lockstep import Lockstep

    p = Protocol(dissect_env="Pendulum-v1", seeds=(0, 1), hidden=8, batch_size=8, seed_steps=40, compile="off")
    run = fixed_buffer.fill(Lockstep(story.dissect_configs(p, fixed=True)["adam"], progress=False))
    fixed_buffer.updates(run, 2, log_every=100, progress=False)
    opt = run.sac.critic_opt
    weights = [w.detach().clone() for w in opt.params]
    fixed_buffer.updates(run, 1, log_every=100, progress=False, optimizer_resets=[3, 0])  # update 3: agent 0 is due
    assert opt.step_count.flatten().tolist() == [0, 3]
    assert all(float(m[0].abs().max()) == 0 and float(m[1].abs().max()) > 0 for m in opt.m)
    assert all(float(v[0].abs().max()) == 0 for v in opt.v)
    assert not any(torch.equal(w[0], w0[0]) for w, w0 in zip(opt.params, weights))  # update 3 moved it, then kept
    from minimal_ofn import resets

    before = [w[1].clone() for w in opt.params]
    resets.reset_agent(run.sac, 1, "critic_optimizer")  # the training loop's kind (the priming arm): the same reset
    assert opt.step_count.flatten().tolist() == [0, 0] and all(float(m[1].abs().max()) == 0 for m in opt.m)
    assert all(torch.equal(w[1], b) for w, b in zip(opt.params, before))  # weights untouched
    assert story.optimizer_resets(p, "adam+critic_opt_reset") == p.dissect_opt_reset_every
    assert story.optimizer_resets(p, "adam") == 0
