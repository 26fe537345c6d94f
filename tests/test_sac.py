"""The SAC update's pieces against hand-computed values."""

import math

import torch

from minimal_ofn.config import Config
from minimal_ofn import networks
from minimal_ofn.networks import Actor
from minimal_ofn.sac import SAC, polyak_update, soft_q_target


def test_soft_target_hand_computed():
    # Two agents, twin critics, batch 2. Agent 0: sample 0 live, sample 1 terminal.
    reward = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    terminated = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    next_q = torch.tensor([[[10.0, 4.0], [7.0, 9.0]],  # agent 0: Q1 (per sample), Q2
                           [[3.0, -2.0], [5.0, -3.0]]])
    next_log_prob = torch.tensor([[-1.0, 0.5], [2.0, 0.0]])
    alpha = torch.tensor([[0.2], [0.1]])
    gamma = torch.tensor([[0.9], [0.5]])
    y = soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma)
    expected = torch.tensor([
        [1.0 + 0.9 * (min(10.0, 7.0) - 0.2 * -1.0), 2.0],  # terminal: no bootstrap at all
        [0.5 + 0.5 * (min(3.0, 5.0) - 0.1 * 2.0), -1.0 + 0.5 * (min(-2.0, -3.0) - 0.0)],
    ])
    torch.testing.assert_close(y, expected)


def test_polyak_moves_target_by_tau_toward_online():
    target = [torch.zeros(2, 3)]
    online = [torch.ones(2, 3) * 10]
    polyak_update(target, online, torch.tensor([0.005, 0.5]))
    torch.testing.assert_close(target[0][0], torch.full((3,), 0.05))  # (1 - tau) * 0 + tau * 10
    torch.testing.assert_close(target[0][1], torch.full((3,), 5.0))
    torch.testing.assert_close(online[0], torch.ones(2, 3) * 10)  # the online net is untouched


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    actor = Actor(1, 3, 2, 16, 2)
    for layer in [*actor.layers, actor.head]:
        layer.reset_agent(0, torch.Generator().manual_seed(1))
    obs, noise = torch.randn(1, 5, 3), torch.randn(1, 5, 2)
    action, log_prob = actor(obs, noise)
    # Recompute with torch.distributions: Normal(mu, std) pushed through tanh.
    x = obs
    for layer in actor.layers:
        x = torch.relu(layer(x))
    mu, log_std = actor.head(x).chunk(2, -1)
    lo, hi = networks.LOG_STD_MIN, networks.LOG_STD_MAX
    log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mu, log_std.exp()), [torch.distributions.TanhTransform()])
    u = mu + log_std.exp() * noise
    torch.testing.assert_close(action, torch.tanh(u))
    torch.testing.assert_close(log_prob, dist.log_prob(torch.tanh(u)).sum(-1), atol=1e-3, rtol=1e-4)
    assert action.abs().max() < 1


def _sac(n=2, **changes):
    configs = [Config(batch_size=8, hidden=16, seed=i, **changes) for i in range(n)]
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    return SAC(configs, 4, 2, torch.device("cpu"), gens)


def _batch(n=2, b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(n, b, 4, generator=g), "action": torch.rand(n, b, 2, generator=g) * 2 - 1,
            "reward": torch.rand(n, b, generator=g), "next_obs": torch.randn(n, b, 4, generator=g),
            "terminated": (torch.rand(n, b, generator=g) < 0.2).float()}


def test_update_changes_critic_actor_temperature_and_target_as_sac_should():
    sac = _sac()
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in sac.modules().items()}
    alpha0 = sac.log_alpha.detach().clone()
    sac.update(_batch())
    for k in ("actor", "critic", "critic_target"):
        moved = [not torch.equal(a, b) for a, b in zip(before[k], sac.modules()[k].parameters())]
        assert all(moved), f"{k} did not move"
    assert not torch.equal(alpha0, sac.log_alpha)
    # The target moved by exactly tau toward the *updated* critic.
    for t0, t, p in zip(before["critic_target"], sac.critic_target.parameters(), sac.critic.parameters()):
        torch.testing.assert_close(t, t0 + 0.005 * (p - t0))


def test_agents_in_a_stack_do_not_influence_each_other():
    a, b = _sac(2), _sac(2)
    batch_a, batch_b = _batch(seed=0), _batch(seed=0)
    batch_b = {k: v.clone() for k, v in batch_b.items()}
    batch_b["reward"][1] += 100.0  # only agent 1 sees different data
    a.update(batch_a)
    b.update(batch_b)
    for pa, pb in zip(a.critic.parameters(), b.critic.parameters()):
        torch.testing.assert_close(pa[0], pb[0])  # agent 0 identical
        assert not torch.allclose(pa[1], pb[1])


def test_reset_reinitializes_networks_and_optimizer_state():
    sac = _sac()
    fresh = [p.detach().clone() for p in sac.critic.parameters()]
    for _ in range(3):
        sac.update(_batch())
    sac.generators[0].manual_seed(0)  # the same stream that built agent 0
    sac.reset_agent(0, "full")
    for p, p0 in zip(sac.critic.parameters(), fresh):
        torch.testing.assert_close(p[0], p0[0])  # back to the initial weights
        assert not torch.allclose(p[1], p0[1])  # agent 1 untouched
    assert all(float(m[0].abs().sum()) == 0 for m in sac.critic_opt.m)
    assert float(sac.critic_opt.step_count[0]) == 0 and float(sac.critic_opt.step_count[1]) == 3
    assert math.isclose(float(sac.log_alpha.detach()[0]), 0.0)
    for t, p in zip(sac.critic_target.parameters(), sac.critic.parameters()):
        torch.testing.assert_close(t[0], p[0])


def test_actor_only_reset_keeps_the_critic():
    sac = _sac()
    for _ in range(2):
        sac.update(_batch())
    critic = [p.detach().clone() for p in sac.critic.parameters()]
    actor = [p.detach().clone() for p in sac.actor.parameters()]
    sac.reset_agent(1, "actor")
    assert all(torch.equal(a, b) for a, b in zip(critic, sac.critic.parameters()))
    assert all(not torch.equal(a[1], b[1]) for a, b in zip(actor, sac.actor.parameters()))
    assert all(float(m[1].abs().sum()) == 0 for m in sac.actor_opt.m)
    assert float(sac.critic_opt.step_count[1]) == 2


def test_l2_penalty_adds_weight_norm_to_the_critic_loss():
    sac, sac_l2 = _sac(1), _sac(1, critic_l2=0.5)
    sac.update(_batch(1))
    sac_l2.update(_batch(1))
    weights = sum(float(layer.weight.detach().pow(2).sum()) for layer in [*sac_l2.critic.layers, sac_l2.critic.head])
    assert weights > 0
    # Same start, same batch: after one update the losses differ by about 0.5 * sum ||W||^2.
    diff = float(sac_l2.stats["critic_loss"][0] - sac.stats["critic_loss"][0])
    assert abs(diff - 0.5 * weights) < 0.05 * 0.5 * weights
