"""Critic switches: OFN, dropout, LayerNorm; the stacked layer equals ordinary per-agent linear layers."""

import pytest
import torch

from minimal_ofn import networks
from minimal_ofn.networks import Critic, StackedLinear, Switch
from minimal_ofn.ofn import ofn
from minimal_ofn.streams import Stream


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


@pytest.mark.parametrize("d_out", [6, 1])  # 1: the critic's head, computed as multiply-and-sum
def test_stacked_linear_equals_separate_linear_layers(d_out):
    g = torch.Generator().manual_seed(d_out)
    layer = StackedLinear((3, 2), 4, d_out)
    with torch.no_grad():  # random biases too: reset_agent zeroes them, which would hide a dropped bias
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    x = torch.randn(3, 2, 10, 4, generator=g, requires_grad=True)
    y = layer(x)
    assert y.shape == (3, 2, 10, d_out)
    upstream = torch.randn(y.shape, generator=g)
    grads = torch.autograd.grad((y * upstream).sum(), [x, layer.weight, layer.bias])
    for i in range(3):
        for j in range(2):
            xi = x[i, j].detach().requires_grad_()
            wi, bi = layer.weight[i, j].detach().requires_grad_(), layer.bias[i, j].detach().requires_grad_()
            yi = xi @ wi + bi
            torch.testing.assert_close(y[i, j], yi)
            for got, want in zip(grads, torch.autograd.grad((yi * upstream[i, j]).sum(), [xi, wi, bi])):
                torch.testing.assert_close(got[i, j], want)


def test_dropout_masks_only_for_agents_with_dropout_and_scaled():
    c = _critic(dropout=(0.0, 0.5))
    masks = c.dropout_masks(c.dropout_uniforms(1000, Stream([0, 1], "dropout")))
    assert len(masks) == 2
    assert torch.equal(masks[0][0], torch.ones_like(masks[0][0]))  # agent 0: no dropout
    m1 = masks[0][1]
    assert set(m1.unique().tolist()) == {0.0, 2.0}  # kept units scaled by 1 / (1 - p)
    assert abs(float((m1 == 0).float().mean()) - 0.5) < 0.02
    # Agent 1's masks are its own stream's numbers, whatever else is in its stack.
    alone = Stream([1], "dropout").uniform(2, 2, 1000, 32)[0]
    assert torch.equal(torch.stack(masks)[:, 1], torch.where(alone >= 0.5, 2.0, 0.0))
    # The package's dropout_mask (a learner's stand-in, plug.py) is the same mask given the same uniforms.
    mine = networks.dropout_mask(0.5, (2, 2, 1000, c.hidden), torch.Generator().manual_seed(1))
    u = torch.rand(2, 2, 1000, c.hidden, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mine, torch.where(u >= 0.5, 2.0, 0.0))


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


class _EveryAgent:
    """The switches as they were computed before networks.Switch: `fn` for every agent, then torch.where."""

    def __init__(self, on, fn):
        self.on, self.fn = list(on), fn

    def __call__(self, _, x, *per_agent):
        if not any(self.on):
            return x
        mask = torch.tensor(self.on).view(-1, *[1] * (x.dim() - 1))
        return torch.where(mask, self.fn(x, *per_agent), x)


@pytest.mark.parametrize("switches", [
    [(False, False, 0.0), (True, False, 0.1), (False, True, 0.0), (True, True, 0.1)],  # mixed: some on
    [(True, True, 0.1)] * 3,  # all on
    [(False, False, 0.0)] * 2 + [(False, True, 0.1)],  # no OFN, LayerNorm on one
])
@pytest.mark.parametrize("detach", [False, True])
def test_switches_computed_on_their_agents_only_give_bitwise_what_every_agent_computed_gave(switches, detach):
    from minimal_ofn.networks import Actor

    n = len(switches)
    ofn_on, ln_on, dropout = zip(*switches)
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(n, 16, 5, generator=g) * 3, torch.rand(n, 16, 2, generator=g) * 2 - 1
    masks = [(torch.rand(n, 2, 16, 32, generator=g) > 0.1).float() / 0.9 for _ in range(2)]
    upstream = torch.randn(n, 2, 16, generator=g)
    results = []
    for reference in (False, True):
        critic = _critic(n, ofn_on, dropout, ln_on)
        actor = Actor(n, 5, 2, 32, 2)
        for i in range(n):
            actor.reset_agent(i, torch.Generator().manual_seed(10 + i))
        with torch.no_grad():
            if any(ln_on):  # LayerNorm's affine parameters away from 1 and 0, so that the switch shows
                critic.ln_scale.copy_(torch.rand(critic.ln_scale.shape, generator=torch.Generator().manual_seed(1)) + 0.5)
                critic.ln_shift.copy_(torch.randn(critic.ln_shift.shape, generator=torch.Generator().manual_seed(2)))
        if reference:
            critic._ofn = _EveryAgent(ofn_on, ofn)
            critic._ln = _EveryAgent(ln_on, lambda x, scale, shift: torch.nn.functional.layer_norm(x, (32,)) * scale + shift)
        o, a = obs.clone().requires_grad_(), act.clone().requires_grad_()
        q = critic(o, a, masks, detach=detach)
        pi, logp = actor(o, torch.randn(n, 16, 2, generator=torch.Generator().manual_seed(3)))
        loss = (q * upstream).sum() + logp.sum() + pi.sum()
        params = [p for p in [*critic.parameters(), *actor.parameters()] if p.requires_grad]
        grads = torch.autograd.grad(loss, [o, a, *params], allow_unused=True)
        results.append([q, pi, logp, *[torch.zeros(()) if x is None else x for x in grads]])
    for mine, main in zip(*results):
        assert torch.equal(mine, main)


@pytest.mark.parametrize("seed", range(6))
def test_a_switch_applies_fn_to_the_agents_that_have_it_on_and_only_to_them(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 7, (), generator=g))
    on = (torch.rand(n, generator=g) < 0.5).tolist()
    x, shift = torch.randn(n, 2, 3, 4, generator=g), torch.randn(n, 2, 1, 4, generator=g)
    seen = []

    def fn(x, shift):  # per agent, and it records how many agents it was given
        seen.append(x.shape[0])
        return x * 2 + shift

    y = Switch(on)(fn, x, shift)
    want = torch.where(torch.tensor(on).view(-1, 1, 1, 1), x * 2 + shift, x)
    assert y.shape == x.shape and torch.equal(y, want)
    assert sum(seen) == sum(on)  # fn never ran on an agent with the switch off
