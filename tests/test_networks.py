"""Critic switches: OFN, dropout, LayerNorm; the stacked layer equals ordinary per-agent linear layers."""

import torch

from minimal_ofn.networks import Critic, StackedLinear
from minimal_ofn.ofn import ofn


def _critic(n=2, ofn_on=(False, True), dropout=(0.0, 0.0), ln=(False, False), hidden=32):
    c = Critic(n, 5, 2, hidden, 2, list(ofn_on), list(dropout), list(ln))
    for i in range(n):
        c.reset_agent(i, torch.Generator().manual_seed(i))
    return c


def test_ofn_rows_have_unit_norm_and_differ_from_batch_normalization():
    x = torch.randn(7, 16) * torch.arange(1, 8).unsqueeze(1)  # rows of very different scale
    y = ofn(x)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(7))
    over_batch = x / x.norm(dim=0, keepdim=True)
    assert not torch.allclose(y, over_batch)
    torch.testing.assert_close(ofn(3.0 * x), y)  # scale-free per sample


def test_critic_ofn_is_per_agent_and_bounds_q_by_head_weights():
    c = _critic()
    obs, act = torch.randn(2, 64, 5) * 100, torch.rand(2, 64, 2) * 2 - 1  # huge, out-of-distribution inputs
    phi = c.features(obs, act)
    torch.testing.assert_close(phi[1].norm(dim=-1), torch.ones(2, 64))  # agent 1 has OFN on
    assert phi[0].norm(dim=-1).mean() > 10  # agent 0 does not
    q = c(obs, act)
    bound = c.head.weight[1].flatten(1).norm(dim=-1) + c.head.bias[1].flatten(1).abs().squeeze(-1)
    assert (q[1].abs() <= bound.unsqueeze(-1) + 1e-5).all()


def test_stacked_linear_equals_separate_linear_layers():
    layer = StackedLinear((3, 2), 4, 6)
    for i in range(3):
        layer.reset_agent(i, torch.Generator().manual_seed(i))
    x = torch.randn(3, 2, 10, 4)
    y = layer(x)
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(y[i, j], x[i, j] @ layer.weight[i, j] + layer.bias[i, j])


def test_dropout_masks_only_for_agents_with_dropout_and_scaled():
    c = _critic(dropout=(0.0, 0.5))
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    masks = c.dropout_masks(1000, gens)
    assert len(masks) == 2
    assert torch.equal(masks[0][0], torch.ones_like(masks[0][0]))  # agent 0: no dropout
    m1 = masks[0][1]
    assert set(m1.unique().tolist()) == {0.0, 2.0}  # kept units scaled by 1 / (1 - p)
    assert abs(float((m1 == 0).float().mean()) - 0.5) < 0.02
    # Agent 0 drew nothing from its stream: its next draw equals a fresh generator's.
    assert torch.equal(torch.rand(3, generator=gens[0]), torch.rand(3, generator=torch.Generator().manual_seed(0)))


def test_layer_norm_normalizes_hidden_activations_of_its_agent_only():
    c = _critic(ofn_on=(False, False), ln=(False, True))
    obs, act = torch.randn(2, 64, 5) * 50, torch.rand(2, 64, 2)
    x = torch.cat([obs, act], -1).unsqueeze(1).expand(-1, 2, -1, -1)
    pre = c.layers[0](x)
    ln = torch.nn.functional.layer_norm(pre, (32,))
    phi = c.features(obs, act)
    assert phi[1].norm(dim=-1).mean() < 10 < phi[0].norm(dim=-1).mean()
    # With unit LayerNorm affine parameters, agent 1's first layer is relu(LN(W x + b)).
    h1 = torch.relu(ln[1])
    expected = torch.relu(torch.nn.functional.layer_norm(c.layers[1](h1.unsqueeze(0).expand(2, -1, -1, -1))[1], (32,)))
    torch.testing.assert_close(phi[1], expected)


def test_init_is_orthogonal_with_gain_sqrt2_and_zero_bias_per_agent_and_member():
    layer = StackedLinear((3, 2), 7, 5)
    for i in range(3):
        layer.reset_agent(i, torch.Generator().manual_seed(i))
    w = layer.weight.detach()  # [3, 2, in 7, out 5]: columns orthogonal, each of norm sqrt(2)
    gram = w.transpose(-1, -2) @ w
    torch.testing.assert_close(gram, 2 * torch.eye(5).expand_as(gram), atol=1e-5, rtol=0)
    assert (layer.bias == 0).all()
    assert not torch.allclose(w[0, 0], w[0, 1]) and not torch.allclose(w[0], w[1])  # members and agents differ
    again = StackedLinear((3, 2), 7, 5)
    again.reset_agent(1, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.weight[1], layer.weight[1])  # seeded: the same draw
