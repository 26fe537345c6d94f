"""Actor and twin critic for a stack of N agents trained in lockstep.

Every weight carries a leading agent axis, so one batched matrix product serves
all agents (N = 1 for a single run):

    y[n] = x[n] @ W[n] + b[n]            W: [N, in, out],  b: [N, 1, out]

The twin critic of each agent adds an ensemble axis of 2, flattened into the
batch of matrices, so Q1 and Q2 of all N agents are N*2 products in one call.

Critic (per ensemble member), with the paper's switches:

    h = relu(LN(dropout(W1 [s, a] + b1)))          dropout and LayerNorm: DroQ style
    h = relu(LN(dropout(W2 h + b2)))
    phi = h / ||h||   if ofn                         (see ofn.py)
    Q  = w . phi + b

Actor, tanh-squashed Gaussian (SAC, Haarnoja et al. 2018, appendix C):

    mu, log_std = MLP(s);   u = mu + std * eps,  eps ~ N(0, I);   a = tanh(u)
    log pi(a|s) = log N(u; mu, std) - sum_i log(1 - tanh(u_i)^2)

Switches such as OFN, dropout rate and LayerNorm are per agent, so variants that
differ only in them still share one stacked pass; OFN and LayerNorm are computed
for the agents that have them on only (Switch).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .ofn import ofn as ofn_normalize

LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0  # as in the resets / SR-SAC code (jaxrl's tanh-Gaussian policy)


class StackedLinear(nn.Module):
    """A linear layer per agent (and per ensemble member): weight [*stack, in, out]."""

    def __init__(self, stack: tuple, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(*stack, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(*stack, 1, d_out))
        self.stack = stack

    def reset_agent(self, i: int, generator: torch.Generator) -> None:
        # The init of the resets / SR-SAC code this line of work builds on (jaxrl): orthogonal weights with
        # gain sqrt(2) on every layer, the heads included, and zero biases. With OFN it matters: the head's
        # norm bounds |Q| (ofn.py), and it starts at sqrt(2) here against about 0.58 with nn.Linear's init.
        with torch.no_grad():
            members = self.weight[i].view(-1, *self.weight.shape[-2:])  # [members, in, out]
            for w in members:
                q = torch.empty(w.shape[1], w.shape[0], device=w.device)  # [out, in], as nn.Linear holds it
                nn.init.orthogonal_(q, gain=math.sqrt(2), generator=generator)
                w.copy_(q.T)
            self.bias[i].zero_()

    def forward(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        # x: [*stack, B, in]; the stack axes are flattened into one bmm batch.
        w, b = (self.weight.detach(), self.bias.detach()) if detach else (self.weight, self.bias)
        if w.shape[-1] == 1:
            # One output (the critic's head, Q = w . phi + b): a dot product per row, as multiply and sum. A bmm with
            # one output column takes a slow path of a CPU's BLAS (docs/speed.md), and compiled, the sum is a
            # reduction that fuses with its neighbours.
            return (x * w.transpose(-1, -2)).sum(-1, keepdim=True) + b
        y = torch.baddbmm(b.flatten(0, -3), x.flatten(0, -3), w.flatten(0, -3))
        return y.view(*x.shape[:-1], -1)


def keep_mask(u, p, scale):
    """The inverted-dropout mask made from uniforms u ~ U[0, 1): 0 where u < p, else scale = 1 / (1 - p).

    p and scale are numbers or tensors that broadcast against u (one per agent in a stack). The update makes
    its masks with it (Critic.dropout_masks); dropout_mask below is the same mask, drawn and made in one call,
    in the form the exercise asks for (tests/test_compiled.py holds the two equal bit for bit)."""
    return torch.where(u >= p, scale, 0.0)


def dropout_mask(p, shape, generator):
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p), so that E[mask * x] = x.

    Drawn from `generator` (one per agent), on the generator's device."""
    keep = torch.rand(shape, generator=generator, device=generator.device) >= p
    return keep.float() / (1.0 - p)


def layer_norm(x, scale, shift):
    """LayerNorm over the last axis with per-agent affine parameters: (x - mean) / sqrt(var + 1e-5) * scale + shift."""
    return F.layer_norm(x, x.shape[-1:]) * scale + shift


class Switch:
    """A per-agent switch (OFN, LayerNorm): `switch(fn, x, *per_agent)` is fn(x, *per_agent) for the agents that
    have it on and x for the others (agent axis first). fn runs on those agents' slices only, so a switch costs
    nothing where it is off; every agent's numbers are the ones fn gives on the whole stack.

    The agents are cut into runs of neighbours with the same setting, [off, on, on, off] -> 0:1, 1:3, 3:4, and the
    runs' results are joined again: slices with bounds fixed in advance, which a compiled graph turns into plain
    loops (an index tensor would make it gather and scatter every element)."""

    def __init__(self, on):
        self.on = list(map(bool, on))
        starts = [i for i in range(len(self.on)) if i == 0 or self.on[i] != self.on[i - 1]]
        self.runs = [(a, b, self.on[a]) for a, b in zip(starts, starts[1:] + [len(self.on)])]

    def __call__(self, fn, x, *per_agent):
        if all(self.on):
            return fn(x, *per_agent)
        if not any(self.on):
            return x
        return torch.cat([fn(x[a:b], *(t[a:b] for t in per_agent)) if on else x[a:b] for a, b, on in self.runs])


class Critic(nn.Module):
    """Twin Q networks for N agents: forward(s [N,B,ds], a [N,B,da]) -> Q [N, 2, B]."""

    ofn_fn = staticmethod(ofn_normalize)  # SAC puts a run's own OFN function here (plug.py)

    def __init__(self, n, obs_dim, act_dim, hidden, depth, ofn, dropout, layer_norm, device=None):
        super().__init__()
        self.n, self.hidden = n, hidden
        dims = [obs_dim + act_dim] + [hidden] * depth
        self.layers = nn.ModuleList(StackedLinear((n, 2), a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = StackedLinear((n, 2), hidden, 1)
        self.ofn = list(map(bool, ofn))
        self.dropout = [float(p) for p in dropout]
        self.layer_norm = list(map(bool, layer_norm))
        if any(self.layer_norm):  # LayerNorm's affine parameters, used by the agents with layer_norm on
            self.ln_scale = nn.Parameter(torch.ones(n, 2, depth, 1, hidden))
            self.ln_shift = nn.Parameter(torch.zeros(n, 2, depth, 1, hidden))
        self.to(device)
        self._ofn, self._ln = Switch(self.ofn), Switch(self.layer_norm)
        # dropout: which agents draw uniforms, and each agent's p and 1 / (1 - p) (float32, as dropout_mask computes
        # them), shaped to broadcast over [N, depth, 2, B, hidden]
        self.dropout_agents = [i for i, p in enumerate(self.dropout) if p > 0]
        dev = self.head.weight.device
        self._dropout_rows = torch.tensor(self.dropout_agents, dtype=torch.long, device=dev)
        self._dropout_p = torch.tensor(self.dropout, device=dev).view(-1, 1, 1, 1, 1)
        self._dropout_scale = torch.stack([torch.ones((), device=dev) / (1.0 - p) for p in self.dropout]).view(
            -1, 1, 1, 1, 1)

    def reset_agent(self, i, generator):
        for layer in [*self.layers, self.head]:
            layer.reset_agent(i, generator)
        if any(self.layer_norm):
            with torch.no_grad():
                self.ln_scale[i].fill_(1.0)
                self.ln_shift[i].zero_()

    def dropout_uniforms(self, batch: int, stream) -> torch.Tensor | None:
        """The uniforms behind one set of dropout masks: [agents with p > 0, depth, 2, B, hidden], from `stream`
        (streams.Stream, the dropout one) in one draw for the stack. Only the agents with p > 0 hash numbers; the
        stream's counter moves the same either way, so an agent's masks are the same alone or in any stack."""
        if not self.dropout_agents:
            return None
        return stream.uniform(len(self.layers), 2, batch, self.hidden, rows=self._dropout_rows)

    def dropout_masks(self, u) -> list | None:
        """One mask per hidden layer, [N, 2, B, hidden] each, from dropout_uniforms' numbers (keep_mask); the
        agents without dropout get ones."""
        if u is None:
            return None
        if len(self.dropout_agents) == self.n:
            return list(keep_mask(u, self._dropout_p, self._dropout_scale).unbind(1))
        masks = torch.ones(self.n, *u.shape[1:], device=u.device)
        masks[self._dropout_rows] = keep_mask(u, self._dropout_p[self._dropout_rows],
                                              self._dropout_scale[self._dropout_rows])
        return list(masks.unbind(1))

    def learner_dropout_masks(self, batch: int, generators, mask_fn) -> list | None:
        """The masks drawn by a learner's dropout_mask(p, shape, generator) (plug.py), per agent with p > 0."""
        if not self.dropout_agents:
            return None
        depth = len(self.layers)
        masks = torch.ones(depth, self.n, 2, batch, self.hidden, device=self.head.weight.device)
        for i in self.dropout_agents:
            masks[:, i] = mask_fn(self.dropout[i], (depth, 2, batch, self.hidden), generators[i])
        return list(masks.unbind(0))

    def features(self, obs, act, masks=None, detach=False):
        """Last hidden features phi [N, 2, B, hidden] (after OFN where it is on)."""
        x = torch.cat([obs, act], -1).unsqueeze(1).expand(-1, 2, -1, -1)
        for k, layer in enumerate(self.layers):
            x = layer(x, detach)
            if masks is not None:
                x = x * masks[k]
            if any(self.layer_norm):
                scale, shift = self.ln_scale[:, :, k], self.ln_shift[:, :, k]
                if detach:
                    scale, shift = scale.detach(), shift.detach()
                x = self._ln(layer_norm, x, scale, shift)  # where layer_norm is on (computed for those agents only)
            x = F.relu(x)
        return self._ofn(self.ofn_fn, x)  # phi / ||phi|| where ofn is on

    def forward(self, obs, act, masks=None, detach=False):
        return self.head(self.features(obs, act, masks, detach), detach).squeeze(-1)


class Actor(nn.Module):
    """Tanh-Gaussian policy for N agents: obs [N, B, ds] -> action [N, B, da], log pi [N, B]."""

    def __init__(self, n, obs_dim, act_dim, hidden, depth, device=None):
        super().__init__()
        self.n, self.act_dim = n, act_dim
        dims = [obs_dim] + [hidden] * depth
        self.layers = nn.ModuleList(StackedLinear((n,), a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = StackedLinear((n,), hidden, 2 * act_dim)
        self.to(device)

    def reset_agent(self, i, generator):
        for layer in [*self.layers, self.head]:
            layer.reset_agent(i, generator)

    def forward(self, obs, noise=None, log_prob=True):
        """Sample a = tanh(mu + std * noise) with its log-probability; noise=None gives tanh(mu).

        log_prob=False skips the log-probability (None in its place): acting needs the action only."""
        x = obs
        for layer in self.layers:
            x = F.relu(layer(x))
        mu, log_std = self.head(x).chunk(2, dim=-1)
        # Squash log_std smoothly into [LOG_STD_MIN, LOG_STD_MAX] (keeps gradients alive).
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        if noise is None:
            return torch.tanh(mu), None
        u = mu + log_std.exp() * noise
        if not log_prob:
            return torch.tanh(u), None
        # log N(u; mu, std) - log|det da/du|, with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).
        logp = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), logp
