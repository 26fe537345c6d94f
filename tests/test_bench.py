"""The benchmark runs, and its plain reference is the same SAC as ours (so the speedup compares like with like)."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from minimal_ofn.bench import floors as b_floors, processes as b_processes, report as b_report, timing as b_timing
from minimal_ofn.bench import scaling as b_scaling, updates as b_updates
from minimal_ofn.bench.floors import update_flops
from minimal_ofn.bench.updates import ROWS, judge
from minimal_ofn.plain_sac import PlainSAC
from minimal_ofn.streams import Stream
from minimal_ofn.config import Config
from minimal_ofn.sac import SAC

OBS, ACT = 5, 3


def _linears(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def _load_agent(ref: PlainSAC, sac: SAC, i: int) -> None:
    """Copy agent i of our stacked SAC into the plain modules (nn.Linear keeps weight as [out, in])."""
    for j, (q, q_target) in enumerate(((ref.qf1, ref.qf1_target), (ref.qf2, ref.qf2_target))):
        for net, ours in ((q, sac.critic), (q_target, sac.critic_target)):
            for lin, layer in zip(_linears(net), [*ours.layers, ours.head], strict=True):
                lin.weight.copy_(layer.weight[i, j].T)
                lin.bias.copy_(layer.bias[i, j, 0])
    for lin, layer in zip(_linears(ref.actor.trunk), sac.actor.layers, strict=True):
        lin.weight.copy_(layer.weight[i].T)
        lin.bias.copy_(layer.bias[i, 0])
    w, b = sac.actor.head.weight[i], sac.actor.head.bias[i, 0]  # [mu | log_std] side by side
    ref.actor.fc_mean.weight.copy_(w[:, :ACT].T)
    ref.actor.fc_mean.bias.copy_(b[:ACT])
    ref.actor.fc_logstd.weight.copy_(w[:, ACT:].T)
    ref.actor.fc_logstd.bias.copy_(b[ACT:])
    ref.log_alpha.copy_(sac.log_alpha[i : i + 1])


def _critic_as_stacked(qf1, qf2, get):
    """The two plain critics (their weights or grads, via get) in the layout of agent i of ours."""
    out = []
    for l1, l2 in zip(_linears(qf1), _linears(qf2), strict=True):
        out.append(torch.stack([get(l1.weight).T, get(l2.weight).T]))
        out.append(torch.stack([get(l1.bias), get(l2.bias)]).unsqueeze(1))
    return out


def _actor_as_stacked(actor, get):
    out = []
    for lin in _linears(actor.trunk):
        out += [get(lin.weight).T, get(lin.bias).unsqueeze(0)]
    out.append(torch.cat([get(actor.fc_mean.weight), get(actor.fc_logstd.weight)]).T)
    out.append(torch.cat([get(actor.fc_mean.bias), get(actor.fc_logstd.bias)]).unsqueeze(0))
    return out


def _record_grads(opt, log):
    step = opt.step

    def recording_step(grads):
        log.append([g.clone() for g in grads])
        step(grads)

    opt.step = recording_step


def test_plain_reference_is_the_same_sac_update_as_ours():
    # Two stacked agents with different settings; agent 1 is compared, so the slicing is checked too.
    configs = [Config(batch_size=16, hidden=32, seed=0),
               Config(batch_size=16, hidden=32, seed=1, gamma=0.9, tau=0.05, init_temperature=0.3)]
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    sac = SAC(configs, OBS, ACT, torch.device("cpu"), gens)
    ref = PlainSAC(configs[1], OBS, ACT, torch.device("cpu"))
    _load_agent(ref, sac, 1)
    grads = {"critic": [], "actor": [], "alpha": []}
    for name, opt in (("critic", sac.critic_opt), ("actor", sac.actor_opt), ("alpha", sac.alpha_opt)):
        _record_grads(opt, grads[name])
    g = torch.Generator().manual_seed(123)
    for k in range(3):  # three updates: Adam's moments and the target's Polyak average carry over
        batch = {"obs": torch.randn(2, 16, OBS, generator=g), "action": torch.rand(2, 16, ACT, generator=g) * 2 - 1,
                 "reward": torch.rand(2, 16, generator=g), "next_obs": torch.randn(2, 16, OBS, generator=g),
                 "terminated": (torch.rand(2, 16, generator=g) < 0.3).float()}
        # Agent 1's noise for a' and a~: the next numbers of its policy stream (streams.py), drawn by a stream alone
        noise = Stream([configs[1].seed], "policy")
        noise.counter = sac.streams.policy.counter
        noise = noise.normal(2, 16, ACT)[0]
        sac.update(batch)
        critic_loss, actor_loss, _ = ref.update({key: v[1] for key, v in batch.items()}, (noise[0], noise[1]))
        stats = sac.pop_stats()
        assert stats["critic_loss"][1] == pytest.approx(critic_loss.item(), rel=1e-5)
        assert stats["actor_loss"][1] == pytest.approx(actor_loss.item(), rel=1e-5, abs=1e-6)
        # Gradients of every loss (the critic's .grad holds the critic loss alone: frozen in the actor step).
        close = dict(rtol=1e-4, atol=1e-6)
        for ours, theirs in zip(grads["critic"][k], _critic_as_stacked(ref.qf1, ref.qf2, lambda p: p.grad),
                                strict=True):
            torch.testing.assert_close(ours[1], theirs, **close)
        for ours, theirs in zip(grads["actor"][k], _actor_as_stacked(ref.actor, lambda p: p.grad), strict=True):
            torch.testing.assert_close(ours[1], theirs, **close)
        torch.testing.assert_close(grads["alpha"][k][0][1:2], ref.log_alpha.grad, **close)
        # After the step: same weights, targets and temperature.
        for mine, theirs in ((sac.critic, _critic_as_stacked(ref.qf1, ref.qf2, lambda p: p)),
                             (sac.critic_target, _critic_as_stacked(ref.qf1_target, ref.qf2_target, lambda p: p)),
                             (sac.actor, _actor_as_stacked(ref.actor, lambda p: p))):
            for p, q in zip(mine.parameters(), theirs, strict=True):
                torch.testing.assert_close(p[1], q, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(sac.log_alpha[1:2], ref.log_alpha, rtol=1e-4, atol=1e-6)


def test_update_flops_counts_each_matmul_pass():
    # batch 1, depth 1, obs 1, act 1, hidden 1: critic [2 -> 1 -> 1], actor [1 -> 1 -> 2].
    # fwd: critic 2*(2+1) = 6, first 4; actor 2*(1+2) = 6, first 2.
    # target 6 + 2*6; critic 2*6 + 2*6 + 2*(6-4); actor 6 + 2*6 + 2*6 + 6 + (6-2)
    assert update_flops(1, 1, 1, 1, 1) == 18 + 28 + 40
    # Doubling the batch doubles every pass; at paper size the hidden x hidden layers dominate.
    assert update_flops(512, 256, 2, 17, 6) == 2 * update_flops(256, 256, 2, 17, 6)
    assert 0.5e9 < update_flops(256, 256, 2, 17, 6) < 0.7e9


def test_bench_quick_prints_every_row_and_target():
    out = subprocess.run([sys.executable, "-m", "minimal_ofn.bench", "--quick", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "GFLOP/s" in text and "lockstep loop" in text and "env steps/s" in text
    assert text.count("% of peak; ours spends") == len(ROWS)
    assert "fixed cost of one update" in text and "batch 8 and 2x8 networks" in text
    assert "story mix (baseline beta1=0 dropout+ln adamw ofn)" in text and "5 baseline" in text  # mixed vs homogeneous
    for name, _, _ in ROWS:
        assert text.count(name) == 3, name  # its row of figures, its matmul floor and its target line
    verdicts = [line for line in text.splitlines() if line.endswith(" met") or " out of reach here: " in line
                or " not reached: the floor allows " in line]
    assert [line.split()[0:3] for line in verdicts] == [name.split() for name, _, _ in ROWS]
    assert "NOT MET" not in text  # a target out of reach says why; it is no error


def test_bench_bad_argument_is_one_line():
    out = subprocess.run([sys.executable, "-m", "minimal_ofn.bench", "--repeats", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "repeats" in out.stderr


def test_targets_need_speedup_and_peak_fraction():
    assert judge("paper, 1 agent", 1.5, 0.0)["met"] and not judge("paper, 1 agent", 1.49, 0.9)["met"]
    assert judge("paper, 5 agents", 2.0, 0.6)["met"]
    assert not judge("paper, 5 agents", 3.0, 0.59)["met"]  # fast enough, but too far from peak
    assert not judge("paper, 5 agents", 1.9, 0.9)["met"]
    assert not judge("tutorial, 5 agents", 2.9, 1.0)["met"] and judge("tutorial, 5 agents", 3.0, 0.0)["met"]


@pytest.mark.parametrize("batch,hidden,depth,n", [(256, 256, 2, 1), (128, 128, 2, 5), (64, 32, 3, 2)])
def test_matmul_floor_times_exactly_the_products_the_flop_count_counts(batch, hidden, depth, n):
    shapes = b_floors.update_matmuls(batch, hidden, depth, b_timing.OBS_DIM, b_timing.ACT_DIM, n)
    assert sum(2 * s * m * k * o for s, m, k, o in shapes) == n * b_floors.update_flops(
        batch, hidden, depth, b_timing.OBS_DIM, b_timing.ACT_DIM)
    # 3 per critic layer pass of the twins' backward, and so on: as many products as the update runs (sac.py)
    layers = depth + 1
    assert len(shapes) == 2 * layers + (3 * layers - 1) + (3 * layers + layers + layers - 1)


def test_story_mix_rows_are_the_story_variants():
    configs = b_timing.stack_configs("tutorial", b_timing.STORY_MIX, torch.device("cpu"))
    assert [c.seed for c in configs] == [0, 1, 2, 3, 4] and {c.batch_size for c in configs} == {128}
    assert configs[1].critic_beta1 == 0 and configs[2].critic_dropout > 0 and configs[2].critic_layer_norm
    assert configs[3].critic_weight_decay > 0 and configs[4].ofn and not configs[0].ofn


def test_yardstick_learning_phase_is_the_difference_of_long_and_short_runs(monkeypatch, tmp_path):
    script = tmp_path / "cleanrl" / "sac_continuous_action.py"
    script.parent.mkdir()
    script.write_text("")
    seen = []

    def fake_timed(cmd, env, cwd=None):  # whole-process seconds: start-up 5 s + ms per step by kind
        steps = int(cmd[cmd.index("--total-timesteps") + 1] if "--total-timesteps" in cmd else cmd[cmd.index("--steps") + 1])
        seen.append((cmd, env))
        per_step = 0.028 if "--env-id" in cmd else 0.010 if "update" in cmd else 0.014
        if "--mc_every" in cmd:  # the same work as CleanRL's: no rollouts within the run
            per_step -= 0.001
        return 5.0 + per_step * steps

    monkeypatch.setattr(b_processes, "_timed", fake_timed)
    floors = []  # the ceiling's floor: paper size, one agent, measured at one thread
    monkeypatch.setattr(b_processes, "matmul_floor", lambda *a, **k: floors.append((a, torch.get_num_threads())) or 0.007)
    monkeypatch.setattr(b_processes, "step_floor", lambda: floors.append(("step", torch.get_num_threads()))
                        or {"adam_s": 0.0005, "polyak_s": 0.0002, "env_s": 0.0001})
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the bench process's own setting: the floor must still be measured at one thread
    try:
        r = b_processes.yardstick(script, "/venv/python", pairs=2)
        assert torch.get_num_threads() == 2  # and the process's setting comes back
    finally:
        torch.set_num_threads(before)
    # one floor after every timed run, then the step floor: all at one thread
    assert floors == [((256, 256, 2, 1, torch.device("cpu")), 1)] * (2 * 2 * 5) + [("step", 1)]
    assert "no row can beat 4.00x CleanRL" in b_report.format_yardstick(r)  # 28 ms / 7 ms
    assert "7.80 ms, so no row can beat 3.59x CleanRL" in b_report.format_yardstick(r)  # 28 / (7 + 0.5 + 0.2 + 0.1)
    # the ceiling takes the floors' median and names the fastest one seen
    r = {**r, "matmul_floor_ms": 8.0, "matmul_floors_ms": [9.0, 8.0, 7.0]}
    text = b_report.format_yardstick(r)
    assert "median of 3 measurements, one after each run, 7.00 to 9.00" in text
    assert "no row can beat 3.50x CleanRL on this machine (4.00x at the fastest floor seen)" in text
    assert "8.80 ms, so no row can beat 3.18x CleanRL (3.59x at the fastest floor seen)" in text
    assert r["rows"]["cleanrl"]["ms_per_env_step"] == pytest.approx(28.0)
    assert r["rows"]["ours"]["ms_per_env_step"] == pytest.approx(14.0)
    assert r["rows"]["ours compiled"]["ms_per_env_step"] == pytest.approx(10.0)
    assert r["rows"]["ours compiled, same work"]["ms_per_env_step"] == pytest.approx(9.0)
    assert "2.00x CleanRL" in b_report.format_yardstick(r) and "2.80x CleanRL" in b_report.format_yardstick(r)
    assert "3.11x CleanRL" in b_report.format_yardstick(r)
    warm_up, *seen = seen  # one untimed compiled run first, so that no timed run compiles cold
    assert "update" in warm_up[0] and int(warm_up[0][warm_up[0].index("--steps") + 1]) < 2000
    assert len(seen) == 2 * 2 * 5  # pairs x (long, short) x kinds
    for cmd, env in seen:
        if "--mc_every" in cmd:  # past the end of the longest run: no rollout and no evaluation within it
            longest = int(cmd[cmd.index("--steps") + 1])
            assert min(int(cmd[cmd.index(k) + 1]) for k in ("--mc_every", "--eval_every")) > longest >= 2000
        # one thread each, and CleanRL finds its cleanrl_utils one level above the script
        assert env["OMP_NUM_THREADS"] == "1" and "OMP_WAIT_POLICY" not in env
        if "--env-id" in cmd:
            assert cmd[0] == "/venv/python" and env["PYTHONPATH"] == str(tmp_path) and "HalfCheetah-v4" in cmd
        else:
            assert "HalfCheetah-v5" in cmd and cmd[cmd.index("--utd") + 1] == "1"


def test_contention_settings_start_from_a_clean_environment(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    envs = dict(b_processes.CONTENTION_SETTINGS)
    base = b_processes._clean_env()
    assert not set(b_processes.THREAD_VARS) & set(base)
    assert b_processes._clean_env(**envs["torch's default"]) == {**base, "MINIMAL_OFN_THREADS": "torch"}
    assert b_processes._clean_env(**envs["package default (threads.py)"]) == base  # the child applies threads.py itself


@pytest.mark.parametrize("args,word", [(["--pairs", "0"], "pairs"), (["--cleanrl", "/no/such/file.py"], "cleanrl")])
def test_bench_bad_process_arguments_are_one_line(args, word):
    out = subprocess.run([sys.executable, "-m", "minimal_ofn.bench", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and word in out.stderr


def test_a_collapsed_run_is_stopped_at_the_cap_and_shown_as_such():
    assert b_processes._timed([sys.executable, "-c", "import time; time.sleep(30)"], dict(b_processes._clean_env()), cap=1.0) \
        == float("inf")
    r = {"usable_cores": 2, "cap": 180.0, "rows": {"a": {"idle": [], "busy": [float("inf")], "load": [6.0]},
                                                    "b": {"idle": [9.0], "busy": [12.0], "load": [6.0]}}}
    text = b_report.format_contention(r)
    assert "> 180" in text and "> 15.0x" in text and "1.00x" in text


def test_mixed_against_its_members_compares_the_story_mix_with_each_member_stack():
    import statistics

    import torch


    r = b_updates.mixed_vs_members(torch.device("cpu"), repeats=1, block_seconds=None, warmup=1, compiled=False)
    ms = r["ms_per_agent_update"]
    assert set(ms) == {"mixed", *b_timing.STORY_MIX} and all(v > 0 for v in ms.values())
    assert r["members_mean"] == pytest.approx(statistics.mean(ms[v] for v in b_timing.STORY_MIX))
    assert r["mixed_over_members"] == pytest.approx(ms["mixed"] / r["members_mean"])
    assert r["mixed_over_baseline"] == pytest.approx(ms["mixed"] / ms["baseline"])
    assert "members' mean" in b_report.format_members(r)


def test_step_floor_times_adam_polyak_and_one_env_step_of_the_paper_sized_agent(monkeypatch):
    sizes, made = [], []
    real_sac = b_floors.new_sac
    monkeypatch.setattr(b_floors, "new_sac", lambda configs, device: sizes.append(
        (configs[0].batch_size, configs[0].hidden, len(configs))) or real_sac(configs, device))
    import minimal_ofn.envs as envs

    make = envs.make_env
    monkeypatch.setattr(envs, "make_env", lambda env_id, seed=None: made.append(env_id) or make(env_id, seed))
    r = b_floors.step_floor(repeats=1)
    assert sizes == [(256, 256, 1)] and made == ["HalfCheetah-v5"]
    assert set(r) == {"adam_s", "polyak_s", "env_s"} and all(0 < v < 0.1 for v in r.values())


def test_the_kernels_of_one_learning_step_do_not_grow_with_the_stack():
    # streams.py draws every agent's numbers in one pass and the update is stacked: 2 agents or 6, the same kernels
    # (per-agent torch.Generator draws added at least five per agent: indices, noise, three dropout sets)
    ops = {n: b_scaling.ops_per_learning_step(n, torch.device("cpu")) for n in (2, 6)}
    assert ops[2]["kernels"] == ops[6]["kernels"] > 100
    assert ops[6]["aten"] > ops[2]["aten"]  # the views are counted apart (the fused optimizer's slices)


def test_bench_scaling_quick_counts_the_ops_of_one_learning_step_per_stack_size():
    out = subprocess.run([sys.executable, "-m", "minimal_ofn.bench", "--scaling", "--quick", "--threads", "1", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["agents"] == [1, 2] and all(100 < r["ops"][str(n)]["kernels"] < r["ops"][str(n)]["aten"] for n in (1, 2))
    assert set(r["ms"]) == {"tutorial", "paper"} and all(v["eager"] > 0 for p in r["ms"].values() for v in p.values())
    text = b_scaling.format_scaling({**r, "ops": {int(k): v for k, v in r["ops"].items()},
                                     "ms": {p: {int(k): v for k, v in rows.items()} for p, rows in r["ms"].items()}})
    assert "ops per learning step" in text and "paper, eager ms/agent-upd" in text
