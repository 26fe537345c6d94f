"""Environment wrapper, replay buffer and the diagnostics' formulas."""

import numpy as np
import pytest
import torch

from minimal_ofn.diagnostics import discounted_returns, srank
from minimal_ofn.envs import make_env, make_vec_env
from minimal_ofn.replay import ReplayBuffer
from minimal_ofn.streams import Stream


@pytest.mark.parametrize("env_id, obs_dim, act_dim", [("dmc:cheetah-run", 17, 6), ("Pendulum-v1", 3, 1)])
def test_env_spaces_and_seeding(env_id, obs_dim, act_dim):
    env = make_env(env_id, seed=0)
    assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    first = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        assert obs.dtype == np.float32 and obs.shape == (obs_dim,)
        step = env.step(np.full(act_dim, 0.5, np.float32))
        first.append((obs, step[0], step[1]))
    np.testing.assert_array_equal(first[0][0], first[1][0])
    np.testing.assert_array_equal(first[0][1], first[1][1])
    other, _ = env.reset(seed=8)
    assert not np.array_equal(other, first[0][0])


def test_dmc_truncates_at_1000_steps_without_terminating():
    env = make_env("dmc:cheetah-run", seed=0)
    env.reset(seed=0)
    for t in range(1000):
        _, _, terminated, truncated, _ = env.step(np.zeros(6, np.float32))
        assert not terminated
        assert truncated == (t == 999)


def test_pendulum_actions_are_rescaled_to_its_torque_bounds():
    env = make_env("Pendulum-v1", seed=0)
    env.reset(seed=0)
    env.step(np.array([1.0], np.float32))
    assert env.unwrapped.last_u == pytest.approx(2.0)  # [-1, 1] maps onto Pendulum's [-2, 2]


def test_vector_env_keeps_final_obs_for_truncated_episodes():
    vec = make_vec_env("Pendulum-v1", [0, 1])
    vec.reset(seed=[0, 1])
    for _ in range(200):
        obs, _, terminated, truncated, info = vec.step(np.zeros((2, 1), np.float32))
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all()
    assert not np.allclose(info["final_obs"][0], obs[0])  # obs already belongs to the next episode


def test_replay_sampling_is_uniform_per_agent_and_reproducible():
    buf = ReplayBuffer(2, 10, 1, 1, "cpu")
    for t in range(15):  # wraps around: holds t = 5..14
        buf.add(np.full((2, 1), t), np.zeros((2, 1)), np.array([t, -t]), np.zeros((2, 1)), np.zeros(2))
    assert buf.size == 10
    batch = buf.sample(20_000, Stream([0, 1], "replay"))
    values = batch["obs"][0, :, 0]
    assert set(values.unique().tolist()) == set(range(5, 15))
    counts = torch.bincount(values.long())[5:].float()
    assert counts.min() > 0.9 * 2000 and counts.max() < 1.1 * 2000
    torch.testing.assert_close(batch["reward"][1], -batch["obs"][1, :, 0])  # fields stay aligned per row
    again = buf.sample(20_000, Stream([0, 1], "replay"))
    assert torch.equal(again["obs"], batch["obs"])
    assert not torch.equal(buf.sample(20_000, Stream([0, 2], "replay"))["obs"][1], batch["obs"][1])


def test_srank_of_a_known_low_rank_matrix():
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(256, 5, generator=g))
    v, _ = torch.linalg.qr(torch.randn(64, 5, generator=g))
    low = u @ torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])) @ v.T  # rank 5; the top 4 hold 14/15 < 99%
    assert int(srank(low)) == 5
    assert int(srank(low, delta=0.1)) == 4
    assert int(srank(torch.eye(64))) == 64  # equal singular values: 99% of the sum needs all 64 (63.36 -> 64)
    sigma = torch.tensor([10.0, 1.0, 0.05])  # 10/11.05 = 0.905, 11/11.05 = 0.9955 >= 0.99
    assert int(srank(torch.diag(sigma))) == 2
    assert int(srank(torch.diag(sigma), delta=0.2)) == 1


def test_discounted_returns_backwards_recursion():
    np.testing.assert_allclose(discounted_returns([1.0, 0.0, 2.0], 0.5), [1.0 + 0.25 * 2.0, 1.0, 2.0])
    assert discounted_returns([], 0.9).shape == (0,)


def test_soft_monte_carlo_return_adds_the_entropy_bonus_of_later_steps_only(monkeypatch):
    from types import SimpleNamespace

    from minimal_ofn import diagnostics
    from minimal_ofn.plug import functions

    rewards, log_probs, qs = [1.0, 0.0, 2.0, 0.0], [-1.0, -2.0, -3.0, 0.0], [5.0, 5.0, 5.0, 5.0]
    monkeypatch.setattr(diagnostics, "rollout", lambda *a, **k: [(3.0, rewards, qs, log_probs)])
    sac = SimpleNamespace(log_alpha=torch.tensor([np.log(0.5)]), fn=functions())
    out = diagnostics.monte_carlo(sac, None, None, "cpu", [0.5], [0])
    g0 = 1.0 + 0.5 * 0.0 + 0.25 * 2.0  # first half: t = 0, 1
    g1 = 0.0 + 0.5 * 2.0
    s0 = 1.0 + 0.5 * (0.0 + 1.0) + 0.25 * (2.0 + 1.5) + 0.125 * (0.0 + 0.0)  # bonus -alpha log pi from t+1 on
    s1 = 0.0 + 0.5 * (2.0 + 1.5)
    assert out["mc_return"][0] == pytest.approx((g0 + g1) / 2)
    assert out["mc_soft_return"][0] == pytest.approx((s0 + s1) / 2)
    assert out["q_over_mc"][0] == pytest.approx(5.0 / ((g0 + g1) / 2))


def test_the_package_depends_on_what_gymnasiums_mujoco_tasks_need():
    """gymnasium's MuJoCo tasks import imageio (its 'mujoco' extra): a fresh install must bring it."""
    import importlib.metadata
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    ours = [Requirement(r) for r in project["dependencies"]]
    gym = next(r for r in ours if r.name == "gymnasium")
    needed = [Requirement(r) for r in importlib.metadata.requires("gymnasium")
              if Requirement(r).marker and Requirement(r).marker.evaluate({"extra": "mujoco"})]
    assert {r.name for r in needed} >= {"mujoco", "imageio"}
    covered = "mujoco" in gym.extras or {r.name for r in needed} <= {r.name for r in ours}
    assert covered, f"pyproject's dependencies miss gymnasium's mujoco extra: {[str(r) for r in needed]}"
    mujoco = next(r for r in ours if r.name == "mujoco")
    assert not mujoco.specifier.contains("4.0.0") and mujoco.specifier.contains(importlib.metadata.version("mujoco"))
    assert all(r.name != "torch" or r.specifier for r in ours)  # never an unpinned (CUDA-pulling) torch


def test_a_gymnasium_mujoco_task_trains_a_few_steps():
    from minimal_ofn.config import Config
    from minimal_ofn.train import train

    env = make_env("HalfCheetah-v5", 0)
    assert env.observation_space.shape == (17,) and env.action_space.shape == (6,)
    rows = train(Config(env="HalfCheetah-v5", steps=30, seed_steps=20, utd=1, batch_size=8, hidden=8, log_every=30,
                        eval_every=30, mc_every=30), progress=False)[0]
    assert rows[-1]["step"] == 30 and np.isfinite(rows[-1]["critic_loss"])


def test_alignment_and_the_centered_srank_see_a_collapse_that_srank_misses():
    """Features that all point along the head vector w have cos(phi, w) = 1. One shared vector plus small
    per-sample differences has srank 1 (the shared direction swamps the sum of singular values), while the
    centered srank still sees the differences: it tells a collapse of information from a large common mean."""
    from minimal_ofn.diagnostics import alignment, srank

    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 2, 8, generator=g)
    scale = torch.rand(1, 2, 32, 1, generator=g) + 0.5
    aligned = scale * w.unsqueeze(2)  # [1, 2, 32, 8], every sample a positive multiple of w
    torch.testing.assert_close(alignment(aligned, w), torch.ones(1, 2, 32))
    torch.testing.assert_close(alignment(-aligned, w), -torch.ones(1, 2, 32))
    random = torch.randn(1, 2, 32, 8, generator=g)
    assert alignment(random, w).abs().mean() < 0.5
    same = w[0, 0].expand(32, 8) + 1e-3 * torch.randn(32, 8, generator=g)  # one feature vector for every sample
    assert srank(same) == 1 and srank(same - same.mean(0)) > 1  # centered, only the noise is left: not a collapse
    spread = torch.randn(32, 8, generator=g)
    assert srank(spread - spread.mean(0)) >= 6


def test_a_diverged_actor_rolls_out_without_stopping_the_physics():
    """NaN weights give NaN actions; the rollout acts zero for that agent (dm_control raises on a NaN control),
    its Q comes back NaN, and the healthy agent beside it is unaffected."""
    from minimal_ofn.config import Config
    from minimal_ofn.diagnostics import rollout
    from minimal_ofn.sac import SAC

    env = make_env("dmc:cartpole-swingup", 0)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    sac = SAC([Config(hidden=8, batch_size=8, seed=i) for i in range(2)], env.observation_space.shape[0],
              env.action_space.shape[0], torch.device("cpu"), gens)
    with torch.no_grad():
        for p in sac.actor.parameters():
            p[0].fill_(float("nan"))
    out = rollout(sac, [make_env("dmc:cartpole-swingup", 0), make_env("dmc:cartpole-swingup", 0)], sac.streams.explore,
                  torch.device("cpu"), False, [0, 0], max_steps=20)
    assert len(out[0][1]) == len(out[1][1]) == 20
    assert np.isnan(out[0][2]).all() and np.isfinite(out[1][2]).all()


@pytest.mark.parametrize("env_id", ["dmc:cheetah-run", "dmc:cartpole-swingup", "dmc:walker-walk", "dmc:lqr-lqr_2_1"])
def test_reseeding_a_used_dmc_env_gives_the_episode_of_a_new_env_with_that_seed(env_id):
    """reset(seed=s) on an env that has run episodes (it keeps its compiled model) starts the same episode, step
    for step, as an env built with seed s; lqr, whose model is drawn from the seed, is rebuilt."""
    rng = np.random.default_rng(0)

    def episode(env, seed, actions):
        out = [env.reset(seed=seed)[0]]
        for a in actions:
            obs, reward, *_ = env.step(a)
            out += [obs, np.array([reward])]
        return np.concatenate(out)

    used = make_env(env_id, seed=123)
    used.reset()
    for _ in range(int(rng.integers(10, 80))):
        used.step(used.action_space.sample())
    for seed in rng.integers(0, 10_000, size=2).tolist():
        actions = rng.uniform(-1, 1, size=(30, used.action_space.shape[0])).astype(np.float32)
        assert np.array_equal(episode(make_env(env_id, seed=seed), seed, actions), episode(used, seed, actions))


def _reference_run(buf, steps=40, obs_dim=3, seed=0):
    """Add random transitions with random episode ends; return the explicit (obs, next_obs) of each one."""
    rng = np.random.default_rng(seed)
    n = buf.n
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    kept = []
    for _ in range(steps):
        ended = rng.random(n) < 0.3
        final = rng.normal(size=(n, obs_dim)).astype(np.float32)  # s' of the ending episodes
        following = rng.normal(size=(n, obs_dim)).astype(np.float32)  # the next state (a reset where ended)
        next_obs = np.where(ended[:, None], final, following)
        buf.add(obs, rng.normal(size=(n, 1)), rng.normal(size=n), next_obs, ended & (rng.random(n) < 0.5), ended)
        kept.append((obs, next_obs))
        obs = following
    return kept


def test_replay_stores_each_observation_once_and_gives_back_every_next_state():
    """s' comes from the next row, from the side store where an episode ended, and from newest_next for the newest
    row, through wrap-around and the side store's growth (ends at 30% of steps, 8 slots to start)."""
    buf = ReplayBuffer(2, 7, 3, 1, "cpu")
    assert "next_obs" not in buf.data
    kept = _reference_run(buf, steps=60)
    rows = [(buf.count - buf.size + r) % buf.capacity for r in range(buf.size)]
    got = buf.gather(torch.tensor([rows, rows]))
    for r in range(buf.size):
        obs, next_obs = kept[buf.count - buf.size + r]
        torch.testing.assert_close(got["obs"][:, r], torch.as_tensor(obs))
        torch.testing.assert_close(got["next_obs"][:, r], torch.as_tensor(next_obs))
    long = ReplayBuffer(1, 200, 3, 1, "cpu")
    _reference_run(long, steps=200)
    assert long.final_obs.shape[1] > 8  # about 60 live ends: the side store grew


def test_replay_rows_extend_rebuild_the_same_buffer_in_pieces():
    a, b = ReplayBuffer(2, 9, 3, 1, "cpu"), ReplayBuffer(2, 9, 3, 1, "cpu")
    _reference_run(a, steps=4)
    b.extend(a.rows(0))
    _reference_run(a, steps=21, seed=1)
    b.extend(a.rows(4))  # clamped to the 9 still held: 16 .. 24
    idx = torch.arange(9).repeat(2, 1)
    for key, value in a.gather(idx).items():
        assert torch.equal(value, b.gather(idx)[key]), key


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sixteen_bit_replay_halves_observations_and_samples_float32(dtype):
    from minimal_ofn.replay import planned_bytes

    buf = ReplayBuffer(1, 50, 223, 38, "cpu", dtype)
    assert buf.data["obs"].dtype == getattr(torch, dtype) and buf.data["obs"].element_size() == 2
    assert planned_bytes(1, 1000, 223, 38, dtype) < 0.7 * planned_bytes(1, 1000, 223, 38)
    kept = _reference_run(buf, steps=10, obs_dim=223)
    batch = buf.sample(16, Stream([0], "replay"))
    assert batch["obs"].dtype == torch.float32
    torch.testing.assert_close(buf.gather(torch.tensor([[0]]))["obs"][0, 0], torch.as_tensor(kept[0][0][0]),
                               rtol=1e-2, atol=1e-2)


def test_a_replay_bigger_than_memory_fails_in_one_line_before_allocating():
    with pytest.raises(ValueError, match=r"needs .* GiB, more than the .* free on cpu") as err:
        ReplayBuffer(60, 10**9, 223, 38, "cpu")  # ~120 TB: would be an allocation error, not this message
    assert "\n" not in str(err.value)


def test_action_repeat_applies_each_action_k_times_and_sums_rewards():
    plain, repeated = make_env("dmc:cartpole-swingup", 3), make_env("dmc:cartpole-swingup", 3, action_repeat=2)
    action = np.full(1, 0.5, np.float32)
    r1 = plain.step(action)[1] + plain.step(action)[1]
    obs, r2, *_ = repeated.step(action)
    assert r2 == pytest.approx(r1)
    steps = 1
    while not any(repeated.step(action)[2:4]):
        steps += 1
    assert steps + 1 == 500  # 1000 physics steps, two per agent step (the last one ended it)
    with pytest.raises(ValueError, match="action_repeat"):
        make_env("Pendulum-v1", 0, action_repeat=0)


def test_an_env_pool_steps_exactly_as_the_serial_stack():
    from minimal_ofn.envpool import EnvPool
    from minimal_ofn.envs import stack_envs

    serial = make_vec_env("Pendulum-v1", [0, 1, 2])
    pool = EnvPool([make_env("Pendulum-v1", s) for s in (0, 1, 2)], 2)
    try:
        a, b = serial.reset(seed=[0, 1, 2])[0], pool.reset(seed=[0, 1, 2])[0]
        assert np.array_equal(a, b)
        rng = np.random.default_rng(0)
        for t in range(205):  # through the truncation at 200
            act = rng.uniform(-1, 1, (3, 1)).astype(np.float32)
            (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) = serial.step(act), pool.step(act)
            assert all(np.array_equal(x, y) for x, y in ((o1, o2), (r1, r2), (te1, te2), (tr1, tr2)))
            if "_final_obs" in i1:
                assert np.array_equal(i1["_final_obs"], i2["_final_obs"]) and t == 199
                assert np.array_equal(np.stack(i1["final_obs"]), np.stack(i2["final_obs"]))
        copy = pool.env(2)  # a checkpoint's copy continues as the env in the worker does
        zero = np.zeros((3, 1), np.float32)
        assert np.array_equal(stack_envs([copy]).step(zero[:1])[0][0], pool.step(zero)[0][2])
    finally:
        pool.close()


def test_auto_env_workers_only_where_physics_is_slow_and_cores_are_free():
    from minimal_ofn.envpool import auto_workers

    assert auto_workers(16, 1.3e-3, cores=16) == 15  # dog: 21 ms of physics per lockstep step
    assert auto_workers(16, 1.3e-3, cores=2) == 0  # no core beside the main process for two workers
    assert auto_workers(4, 5e-5, cores=16) == 0  # Pendulum: 0.2 ms, less than the round trips
    assert auto_workers(1, 1.0, cores=16) == 0


def test_evaluation_episodes_stepped_together_equal_one_at_a_time():
    from minimal_ofn.config import Config
    from minimal_ofn.diagnostics import rollout
    from minimal_ofn.sac import SAC

    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    sac = SAC([Config(hidden=8, batch_size=8, seed=i) for i in range(2)], 3, 1, torch.device("cpu"), gens)
    envs = [[make_env("Pendulum-v1", 0) for _ in range(3)] for _ in range(2)]
    together = rollout(sac, envs, sac.streams.diagnostics, torch.device("cpu"), True, [[5, 6, 7], [8, 9, 10]],
                       max_steps=30)
    for k in range(3):
        alone = rollout(sac, [e[k] for e in envs], sac.streams.diagnostics, torch.device("cpu"), True, [5 + k, 8 + k],
                        max_steps=30)
        for i in range(2):
            assert together[i][k][0] == alone[i][0] and together[i][k][2] == alone[i][2]


def test_a_run_prints_replay_bytes_and_refuses_a_buffer_past_memory_in_one_line(capsys):
    from minimal_ofn.config import Config
    from minimal_ofn.lockstep import Lockstep
    from minimal_ofn.train import RunError, train

    tiny = dict(env="Pendulum-v1", steps=40, seed_steps=20, batch_size=8, hidden=8)
    Lockstep([Config(**tiny, replay_dtype="float16")], progress=True)
    # Pendulum: 3-D observations in 16 bits, a 1-D action, reward, terminated, end slot: 6 + 4 + 12 bytes
    assert "replay: 22 bytes per transition (float16 observations" in capsys.readouterr().out
    with pytest.raises(RunError, match=r"^replay for 2 agents x 100,000,000,000 transitions needs .* GiB, more than"):
        train([Config(**tiny, buffer_size=10**11, seed=s) for s in (0, 1)], progress=False)


def test_halfcheetah_builds_without_the_settotalmass_note_or_a_mujoco_log_file(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from minimal_ofn.envs import make_env; make_env('HalfCheetah-v5', 0)"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "settotalmass" not in out.stderr and not (tmp_path / "MUJOCO_LOG.TXT").exists()
