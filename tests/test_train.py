"""The training loop: determinism, resume, lockstep equivalence, priming, resets, bad input, NaN."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from minimal_ofn import lockstep as lockstep_mod, memory, sac as sac_mod, train as train_mod
from minimal_ofn.config import Config, preset
from minimal_ofn.runs import METRICS
from minimal_ofn.train import RunError, load_metrics, train

TINY = dict(env="Pendulum-v1", steps=240, seed_steps=120, utd=2, batch_size=32, hidden=32,
            log_every=40, eval_every=120, checkpoint_every=80)


def _cfg(**changes):
    return Config(**{**TINY, **changes})


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def _same(a, b, rtol=0.0):
    assert len(a) == len(b)
    for ra, rb in zip(_strip(a), _strip(b)):
        assert ra.keys() == rb.keys()
        for k in ra:
            x, y = float(ra[k]), float(rb[k])
            assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rtol, abs_tol=rtol), (k, x, y)


def test_same_seed_same_metrics_and_different_seed_differs():
    a = train(_cfg(), progress=False)[0]
    b = train(_cfg(), progress=False)[0]
    c = train(_cfg(seed=1), progress=False)[0]
    _same(a, b)
    assert [r["critic_loss"] for r in a] != [r["critic_loss"] for r in c]


def test_resume_gives_the_uninterrupted_run(tmp_path):
    cfg = _cfg(utd=3)
    whole = train(cfg, [tmp_path / "whole"], progress=False)[0]
    train(cfg, [tmp_path / "split"], progress=False, until=100)  # stops after the checkpoint at 80... and 100
    assert not (tmp_path / "split" / "summary.json").exists()
    resumed = train(cfg, [tmp_path / "split"], resume=True, progress=False)[0]
    _same(whole, resumed)
    _same(load_metrics(tmp_path / "whole"), load_metrics(tmp_path / "split"))
    assert json.loads((tmp_path / "split" / "summary.json").read_text())["step"] == 240


def test_incremental_replay_checkpoints_append_only_new_rows_and_resume_exactly(tmp_path):
    cfg = _cfg(utd=3)  # checkpoint_replay="incremental", the default
    whole = train(cfg.replace(checkpoint_replay="full"), [tmp_path / "whole"], progress=False)[0]
    run = tmp_path / "split"
    train(cfg, [run], progress=False, until=80)
    first = (run / "replay.bin").stat().st_size
    train(cfg, [run], resume=True, progress=False, until=160)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)["replay"]
    assert saved["stop"] == 160 and saved["bytes"] == (run / "replay.bin").stat().st_size
    assert 1.8 * first < saved["bytes"] < 2.2 * first  # the second checkpoint appended 80 rows, not 160
    with open(run / "replay.bin", "ab") as f:
        f.write(b"a crash between replay.bin and checkpoint.pt leaves a tail")
    _same(whole, train(cfg, [run], resume=True, progress=False)[0])
    off = tmp_path / "off"
    train(cfg.replace(checkpoint_replay="off"), [off], progress=False, until=80)
    assert not (off / "replay.bin").exists()
    with pytest.raises(RunError, match="checkpoint_replay='off'"):
        train(cfg.replace(checkpoint_replay="off"), [off], resume=True, progress=False)


def test_envs_in_worker_processes_give_the_metrics_of_serial_stepping():
    serial = train([_cfg(seed=s, env_workers="0") for s in (0, 1, 2)], progress=False)
    parallel = train([_cfg(seed=s, env_workers="2") for s in (0, 1, 2)], progress=False)
    for a, b in zip(serial, parallel):
        _same(a, b)


def test_evaluation_in_rounds_equals_all_episodes_at_once(monkeypatch):
    cfg = [_cfg(steps=120, seed_steps=120, eval_every=120, eval_episodes=3, seed=s) for s in (0, 1)]
    together = train(cfg, progress=False)
    monkeypatch.setattr(lockstep_mod, "EVAL_ENVS", 0)  # one eval env per agent: three rounds
    rounds = train(cfg, progress=False)
    assert [r[-1]["eval_return"] for r in together] == [r[-1]["eval_return"] for r in rounds]


def test_resume_with_other_settings_is_refused(tmp_path):
    train(_cfg(), [tmp_path / "r"], progress=False, until=80)
    with pytest.raises(RunError, match=r"utd \(saved 2, given 4\)"):
        train(_cfg(utd=4), [tmp_path / "r"], resume=True, progress=False)
    rows = train(_cfg(log_every=20), [tmp_path / "r"], resume=True, progress=False)[0]  # bookkeeping may change
    assert rows[-1]["step"] == 240
    # Finished now: resuming returns its metrics, but only for the settings it was run with.
    with pytest.raises(RunError, match=r"finished run in .* steps \(saved 240, given 480\)"):
        train(_cfg(steps=480), [tmp_path / "r"], resume=True, progress=False)
    again = train(_cfg(), [tmp_path / "r"], resume=True, progress=False)[0]
    assert [r["critic_loss"] for r in again] == [r["critic_loss"] for r in rows] and again[-1]["step"] == 240


def test_an_agent_alone_equals_the_same_agent_in_a_stack():
    variants = [_cfg(seed=3), _cfg(seed=4, ofn=True), _cfg(seed=5, critic_dropout=0.1, critic_layer_norm=True),
                _cfg(seed=6, critic_beta1=0.0, critic_weight_decay=0.1)]
    stacked = train(variants, progress=False)
    for cfg, rows in zip(variants, stacked):
        alone = train(cfg, progress=False)[0]
        _same(alone, rows, rtol=1e-4)


def test_priming_runs_the_stated_number_of_updates_on_the_random_data():
    from minimal_ofn.priming import prime

    seen = []

    def spy(buffer, update, updates, batch_size, generators):
        seen.append((buffer.size, updates))
        prime(buffer, update, updates, batch_size, generators)

    rows = train(_cfg(priming_updates=50, utd=1), progress=False, functions={"prime": spy})[0]
    assert seen == [(120, 50)]  # once, right after the 120 random steps, on those alone
    assert rows[-1]["updates"] == 50 + (240 - 120 + 1)


def test_resets_happen_on_schedule(monkeypatch):
    calls = []
    real_reset = sac_mod.SAC.reset_agent

    def spy(self, i, kind="full"):
        calls.append((i, kind))
        real_reset(self, i, kind)

    monkeypatch.setattr(sac_mod.SAC, "reset_agent", spy)
    train([_cfg(reset_every=60, reset_kind="actor"), _cfg(seed=1)], progress=False)
    # The constructor initializes both agents; then agent 0 at updates 60, 120, 180, 240 (242 in all).
    assert calls[:2] == [(0, "full"), (1, "full")]
    assert calls[2:] == [(0, "actor")] * 4


def test_a_reset_due_at_the_end_of_priming_happens_right_after_priming(monkeypatch):
    from minimal_ofn.priming import prime

    events = []
    real_reset = sac_mod.SAC.reset_agent
    monkeypatch.setattr(sac_mod.SAC, "reset_agent",
                        lambda self, i, kind="full": (events.append((i, kind)), real_reset(self, i, kind)))

    def spy(*args):
        events.append("primed")
        prime(*args)

    train(_cfg(priming_updates=50, reset_every=50, utd=1), progress=False, functions={"prime": spy})
    # init, priming's 50 updates, the reset due at update 50, then every 50 of the 121 learning updates
    assert events == [(0, "full"), "primed", (0, "full"), (0, "full"), (0, "full")]  # at 50, 100, 150


def test_replay_keeps_the_final_state_of_a_truncated_episode_not_the_reset_state():
    run = lockstep_mod.Lockstep([_cfg(seed_steps=240)], progress=False)
    for _ in range(201):
        run.env_step()
    stored = run.buffer.gather(torch.arange(201).unsqueeze(0))
    obs, next_obs = stored["obs"][0], stored["next_obs"][0]
    torch.testing.assert_close(next_obs[:199], obs[1:200])  # within an episode s' is the next row's s
    assert not torch.allclose(next_obs[199], obs[200])  # Pendulum truncates at 200: obs[200] is a reset state
    # The true final state continues the dynamics: cos/sin of the angle barely move in one step.
    assert (next_obs[199][:2] - obs[199][:2]).abs().max() < 0.5


def test_utd_sets_the_number_of_updates():
    rows = train(_cfg(utd=5), progress=False)[0]
    assert rows[-1]["updates"] == 5 * (240 - 120 + 1)


@pytest.mark.parametrize("bad, message", [
    (dict(utd=0), "utd must be"), (dict(steps=0), "steps must be"), (dict(env="dmc:cheetah-fly"), "unknown dm_control"),
    (dict(env="NoSuchEnv-v0"), "unknown environment"), (dict(critic_dropout=1.0), "critic_dropout"),
])
def test_bad_input_is_a_clear_error(bad, message):
    with pytest.raises(RunError, match=message):
        train(_cfg(**bad), progress=False)


def test_cli_refuses_a_finished_run_and_keeps_it(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "minimal_ofn.train", "--env", "Pendulum-v1", "--steps", "60", "--seed_steps", "40",
            "--batch_size", "16", "--hidden", "16", "--log_every", "20", "--eval_every", "60", "--out", str(out),
            "--no-progress"]
    assert subprocess.run(args, capture_output=True).returncode == 0
    before = (out / "metrics.csv").read_text()
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already holds a finished run" in again.stderr
    assert "Traceback" not in again.stderr
    assert (out / "metrics.csv").read_text() == before
    bad = subprocess.run(args[:-3] + ["--utd", "0", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "utd must be" in bad.stderr and "Traceback" not in bad.stderr


def test_nonfinite_loss_stops_with_metrics_and_checkpoints(tmp_path, monkeypatch):
    real_update = sac_mod.SAC.update

    def poisoned(self, batch):
        real_update(self, batch)
        if self.stats["updates"][0] > 20:
            self.stats["critic_loss"][0] = float("nan")

    monkeypatch.setattr(sac_mod.SAC, "update", poisoned)
    with pytest.raises(train_mod.NonFiniteLoss, match="non-finite loss at step 160"):
        train(_cfg(), [tmp_path / "r"], progress=False)
    rows = load_metrics(tmp_path / "r")
    assert [r["step"] for r in rows] == [40, 80, 120, 160]
    assert math.isnan(rows[-1]["critic_loss"])
    assert (tmp_path / "r" / "checkpoint.pt").exists() and (tmp_path / "r" / "checkpoint_nonfinite.pt").exists()
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["shared"]["t"] == 80


def test_metrics_file_has_every_column(tmp_path):
    train(_cfg(), [tmp_path / "r"], progress=False)
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == METRICS
    last = load_metrics(tmp_path / "r")[-1]
    for k in ("q_policy", "q_ood", "mc_return", "srank", "adam_m_max", "adam_v_mean", "grad_norm", "eval_return"):
        assert np.isfinite(last[k]), k
    assert json.loads((tmp_path / "r" / "config.json").read_text())["utd"] == 2


def test_presets_are_valid_and_sized():
    tut, paper = preset("tutorial"), preset("paper")
    assert tut.validate() and paper.validate()
    assert (paper.batch_size, paper.hidden, paper.gamma, paper.tau, paper.critic_lr) == (256, 256, 0.99, 0.005, 3e-4)
    assert tut.hidden < paper.hidden and tut.steps < paper.steps
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_keep_freed_memory_stops_the_page_faults_of_every_update():
    """glibc by default unmaps big freed blocks, so each update's activations page-fault back in (hundreds a time)."""
    resource = pytest.importorskip("resource")
    from minimal_ofn.bench.timing import random_batch
    from minimal_ofn.sac import SAC

    if not memory.keep_freed_memory():
        pytest.skip("malloc is not glibc's here")
    sac = SAC([preset("paper")], 17, 6, torch.device("cpu"), [torch.Generator().manual_seed(0)])
    batch = random_batch(1, 256, torch.device("cpu"))
    for _ in range(5):
        sac.update(batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        sac.update(batch)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    assert faults < 50, f"{faults:.0f} minor page faults per paper-size update: freed memory goes back to the OS"


def test_progress_counts_random_steps_then_gradient_updates(monkeypatch, tmp_path):
    """Two bars, so each one's rate and ETA reflect its own work (the phases run at speeds 10-100x apart)."""
    bars = []

    class Recording:
        def __init__(self, **kw):
            self.kw, self.n = kw, kw.get("initial", 0)
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix(self, **kw):
            pass

        def set_description(self, text, refresh=True):
            self.desc = text

        def close(self):
            pass

    monkeypatch.setattr(train_mod, "bar", Recording)
    train(_cfg(utd=3), [tmp_path / "r"], progress=True, until=200)
    # utd updates after every step from seed_steps (120) on: 121 steps of them in all, 81 by step 200
    assert [(b.kw["unit"], b.kw["total"], b.n) for b in bars] == [("step", 120, 120), ("update", 3 * 121, 3 * 81)]
    bars.clear()
    train(_cfg(utd=3), [tmp_path / "r"], resume=True, progress=True)  # resumed from the checkpoint of step 200
    assert [(b.kw["unit"], b.kw["initial"], b.n) for b in bars] == [("update", 3 * 81, 3 * 121)]
    assert bars[0].desc.endswith("step 240/240")
