"""Soft Actor-Critic (Haarnoja et al. 2018) for a stack of N agents in lockstep.

One update, for a replay batch (s, a, r, s', d) with d = 1 on true termination:

    a' ~ pi(.|s'),   y = r + gamma (1 - d) (min_j Qbar_j(s', a') - alpha log pi(a'|s'))
    L_Q   = sum_j mean (Q_j(s, a) - y)^2                       [+ critic_l2 sum ||W||^2]
    a~ ~ pi(.|s),    L_pi  = mean (alpha log pi(a~|s) - min_j Q_j(s, a~))
    L_alpha = mean alpha (-log pi(a~|s) - H_target)            alpha = exp(log_alpha)
    Qbar <- (1 - tau) Qbar + tau Q                             (Polyak)

All N agents' losses are summed: agent n's parameters only touch agent n's loss,
so the gradient of the sum is every agent's own gradient, in one backward pass.

`SAC.learn` is that update, written once. Its random numbers (the policy noise, the
uniforms behind the dropout masks) come in as tensors, drawn by `SAC.update` from each
agent's own streams (streams.py: one draw for the whole stack), so the same function runs eagerly (Config compile="off") and, traced by
torch.compile into one graph (compile="update", `compiled` below), fused: the elementwise
work (activations and their gradients, LayerNorm, OFN, the losses, the optimizer's ops,
Polyak) becomes a few loops, and on a GPU the whole update is one CUDA graph.
"""

import copy
import math

import torch

from .networks import Actor, Critic
from .optim import StackedOptimizer
from .plug import functions as plug_functions, package_function
from .streams import Streams


def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    """y = r + gamma * (1 - terminated) * (min over the twin critics of next_q - alpha * next_log_prob).

    next_q has the twin axis first after the agent axis: [N, 2, B]; the rest are [N, B] or broadcast."""
    soft_value = next_q.min(dim=1).values - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated) * soft_value


def critic_loss(q, y):
    """L_Q = sum over the twins of mean_B (Q_j - y)^2:  q [N, 2, B], y [N, B] -> [N]."""
    return (q - y.unsqueeze(1)).pow(2).mean(-1).sum(1)


def l2_penalty(weights, coef):
    """coef * sum over the tensors of their squared entries, per agent: weights [N, ...] each, coef [N] -> [N]."""
    return coef * sum(w.pow(2).flatten(1).sum(1) for w in weights)


def actor_loss(log_prob, q_new, alpha):
    """L_pi = mean_B (alpha log pi(a~|s) - min_j Q_j(s, a~)):  log_prob [N, B], q_new [N, 2, B], alpha [N, 1] -> [N]."""
    return (alpha * log_prob - q_new.min(dim=1).values).mean(-1)


def temperature_loss(log_alpha, log_prob, target_entropy):
    """L_alpha = mean_B exp(log_alpha) (-log pi - H_target), log pi detached so that only alpha moves.

    log_alpha [N], log_prob [N, B], target_entropy [N] -> [N]."""
    return log_alpha.exp() * (-log_prob.detach() - target_entropy.unsqueeze(-1)).mean(-1)


@torch.no_grad()
def polyak_update(target_params, online_params, tau) -> None:
    """target <- (1 - tau) * target + tau * online, in place; tau [N], one per agent (the leading axis)."""
    for t, p in zip(target_params, online_params):
        t.lerp_(p, tau.view(-1, *([1] * (t.dim() - 1))))


class SAC:
    """N independent SAC agents whose networks are stacked (see networks.py).

    generators: one torch.Generator per agent, seeded with its seed: it draws the agent's initial (and reset)
    weights, and a learner's dropout masks. streams: the stack's streams.Streams for everything an update and
    acting draw (default: keyed by each generator's seed).
    functions: {name: function} to run in place of the package's (see plug.py), e.g. {"critic_loss": mine}."""

    def __init__(self, configs, obs_dim, act_dim, device, generators, functions=None, streams=None):
        n, c0 = len(configs), configs[0]
        self.fn = fn = plug_functions(functions)
        self.n, self.configs, self.generators, self.device = n, configs, generators, device
        self.streams = streams or Streams([g.initial_seed() for g in generators], device)
        self.act_dim, self.batch_size = act_dim, c0.batch_size

        def per_agent(name):
            return torch.tensor([float(getattr(c, name)) for c in configs], device=device)

        self.actor = Actor(n, obs_dim, act_dim, c0.hidden, c0.depth, device)
        self.critic = Critic(n, obs_dim, act_dim, c0.hidden, c0.depth, [c.ofn for c in configs],
                             [c.critic_dropout for c in configs], [c.critic_layer_norm for c in configs], device)
        self.critic.ofn_fn = fn.ofn
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros(n, device=device, requires_grad=True)
        self.gamma, self.tau, self.critic_l2 = per_agent("gamma"), per_agent("tau"), per_agent("critic_l2")
        self.use_l2 = any(c.critic_l2 > 0 for c in configs)  # a python bool: no host sync in update()
        self.target_entropy = torch.tensor(
            [-act_dim / 2 if c.target_entropy is None else c.target_entropy for c in configs], device=device)
        self.actor_opt = StackedOptimizer(self.actor.parameters(), n, per_agent("actor_lr"), per_agent("actor_beta1"),
                                          per_agent("beta2"), kind=[c.optimizer for c in configs],
                                          adam_step=fn.adam_step)
        self.critic_opt = StackedOptimizer(self.critic.parameters(), n, per_agent("critic_lr"),
                                           per_agent("critic_beta1"), per_agent("beta2"),
                                           weight_decay=per_agent("critic_weight_decay"),
                                           kind=[c.critic_optimizer or c.optimizer for c in configs],
                                           adam_step=fn.adam_step, decoupled_weight_decay=fn.decoupled_weight_decay)
        # The temperature is one number per agent; plain Adam, as in every SAC implementation.
        self.alpha_opt = StackedOptimizer([self.log_alpha], n, per_agent("temperature_lr"), 0.9, 0.999,
                                          adam_step=fn.adam_step)
        for i in range(n):
            self.reset_agent(i, "full")
        # Running sums for logging, kept on the device: reading them forces a host sync.
        self.stats = {k: torch.zeros(n, device=device) for k in ("critic_loss", "actor_loss", "updates")}
        # The last update's critic gradients (learn returns them), for the diagnostics' gradient norm.
        self.critic_grads = [torch.zeros_like(p) for p in self.critic_opt.params]
        # A learner's dropout_mask draws its own masks (eager only); the package's masks are made inside learn.
        self.learner_dropout = fn.dropout_mask is not package_function("dropout_mask")
        # compile "auto" is decided by the training loop, which knows how many updates the run plans
        # (Config.resolved_compile); a SAC built on its own runs eager.
        self.learn_step = self.learn
        if c0.compile == "update":
            self.compile()

    def compile(self, mode: str | None = "auto") -> None:
        """From now on update() runs learn compiled (Config compile="update"), on the same tensors; mode "auto":
        "reduce-overhead" (CUDA graphs) on a GPU, Inductor's default elsewhere."""
        if self.fn != plug_functions():
            raise ValueError("compile='update' compiles the package's own functions; "
                             "train with compile='off' to run yours")
        if mode == "auto":
            mode = "reduce-overhead" if self.device.type == "cuda" else None
        self.learn_step = compiled(self.learn, [*self.state_tensors(), *self.stats.values(), *self.critic_grads],
                                   mode)

    @torch.no_grad()
    def reset_agent(self, i: int, kind: str = "full") -> None:
        """Re-initialize agent i: "full" = actor, critic, target, temperature and all optimizer state."""
        g = self.generators[i]
        self.actor.reset_agent(i, g)
        self.actor_opt.reset_agent(i)
        if kind == "full":
            self.critic.reset_agent(i, g)
            for t, p in zip(self.critic_target.parameters(), self.critic.parameters()):
                t[i].copy_(p[i])
            self.critic_opt.reset_agent(i)
            self.log_alpha[i] = math.log(self.configs[i].init_temperature)
            self.alpha_opt.reset_agent(i)

    def noise(self, *shape) -> torch.Tensor:
        """Standard normal noise [N, *shape] for an update, agent n's slice from its own policy stream."""
        return self.streams.policy.normal(*shape)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """obs [N, ds] -> action [N, da] (a stochastic one's noise from the explore stream)."""
        noise = None if deterministic else self.streams.explore.normal(1, self.act_dim)
        return self.actor(obs.unsqueeze(1), noise, log_prob=False)[0].squeeze(1)

    def update(self, batch: dict) -> list:
        """One SAC update of all N agents on a batch [N, B, ...]: draws its random numbers, runs learn (eager or
        compiled); returns the critic's gradients (one tensor per parameter, agent axis first)."""
        B = self.batch_size
        noise = self.noise(2, B, self.act_dim)  # for a' (target) and a~ (actor)
        if self.learner_dropout:  # three sets, in learn's order: target, critic, actor
            masks = [self.critic.learner_dropout_masks(B, self.generators, self.fn.dropout_mask) for _ in range(3)]
            return self.learn(batch, noise, None, masks)
        uniforms = [self.critic.dropout_uniforms(B, self.streams.dropout) for _ in range(3)]
        return self.learn_step(batch, noise, uniforms)

    def learn(self, batch: dict, noise, uniforms, masks=None) -> list:
        """The update of the module docstring, in place, given its random numbers: noise [N, 2, B, da] and the
        dropout uniforms of three sets of masks (or the masks themselves). Returns the critic's gradients."""
        fn = self.fn
        if masks is None:
            masks = [self.critic.dropout_masks(u) for u in uniforms]
        s, a, r, s2, d = (batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated"))
        alpha = self.log_alpha.exp().detach().unsqueeze(1)  # [N, 1]

        # --- critic
        with torch.no_grad():
            a2, logp2 = self.actor(s2, noise[:, 0])
            next_q = self.critic_target(s2, a2, masks[0])
            y = fn.soft_q_target(r, d, next_q, logp2, alpha, self.gamma.unsqueeze(1))
        q = self.critic(s, a, masks[1])
        loss_q = fn.critic_loss(q, y)
        if self.use_l2:
            loss_q = loss_q + fn.l2_penalty([layer.weight for layer in [*self.critic.layers, self.critic.head]],
                                            self.critic_l2)
        critic_grads = torch.autograd.grad(loss_q.sum(), self.critic_opt.params)
        self.critic_opt.step(critic_grads)

        # --- actor, through the just-updated critic (detach=True: its weights get no gradient here), and the
        # temperature on the same a~; one backward for both losses
        a_new, logp = self.actor(s, noise[:, 1])
        q_new = self.critic(s, a_new, masks[2], detach=True)
        loss_pi = fn.actor_loss(logp, q_new, alpha)
        loss_alpha = fn.temperature_loss(self.log_alpha, logp, self.target_entropy)
        *actor_grads, alpha_grad = torch.autograd.grad((loss_pi + loss_alpha).sum(),
                                                       [*self.actor_opt.params, self.log_alpha])
        self.actor_opt.step(actor_grads)
        self.alpha_opt.step([alpha_grad])

        # --- target critic, and the sums for logging
        fn.polyak_update(self.critic_target.parameters(), self.critic.parameters(), self.tau)
        with torch.no_grad():
            self.stats["critic_loss"] += loss_q
            self.stats["actor_loss"] += loss_pi
            self.stats["updates"] += 1
            for buf, g in zip(self.critic_grads, critic_grads):  # kept in place: a CUDA graph reuses its outputs
                buf.copy_(g)
        return self.critic_grads

    def pop_stats(self) -> dict:
        """Mean losses since the last call, the temperature, and whether every tensor of each agent's state
        is finite ("finite", 1.0 or 0.0), as python floats per agent (one host sync)."""
        count = self.stats["updates"].clamp(min=1)
        finite = torch.stack([t.isfinite().reshape(self.n, -1).all(1) for t in self.state_tensors()]).all(0)
        values = torch.stack([self.stats["critic_loss"] / count, self.stats["actor_loss"] / count,
                              self.log_alpha.detach().exp(), finite.to(self.log_alpha.dtype)]).tolist()
        for v in self.stats.values():
            v.zero_()
        return dict(zip(("critic_loss", "actor_loss", "temperature", "finite"), values))

    def state_tensors(self) -> list:
        """Every tensor an update writes (agent axis first): networks, log alpha, optimizer state."""
        return [*(p.detach() for m in self.modules().values() for p in m.parameters()), self.log_alpha.detach(),
                *(t for o in self.optimizers().values() for t in (o.step_count, *o.m, *o.v))]

    @torch.no_grad()
    def freeze(self, i: int) -> None:
        """Agent i stops learning: its optimizers skip it and its target critic stays put (Polyak with tau 0).

        The others' updates are unchanged: every op is per agent, and the sum of the losses gives each
        agent its own gradient even where agent i's is NaN."""
        for opt in self.optimizers().values():
            opt.freeze(i)
        self.tau[i] = 0.0

    def modules(self) -> dict:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}

    def optimizers(self) -> dict:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}


def compiled(step, state, mode=None):
    """torch.compile of `step` (SAC.learn) as one graph: fullgraph=True (a graph break is an error), fixed shapes
    (nothing recompiles while the batch shapes stay), torch.autograd.grad traced into the graph.

    mode="reduce-overhead" (a GPU's) runs it as a CUDA graph, with the tensors it updates in place (`state`) marked
    as static addresses so that the graph writes them and not copies of them; mode None (a CPU's): Inductor's C++
    wrapper calls the kernels (less Python per update)."""
    if mode == "reduce-overhead":
        for t in state:
            torch._dynamo.mark_static_address(t)
    graph = torch.compile(step, fullgraph=True, dynamic=False, mode=mode,
                          options={"cpp_wrapper": True} if mode is None else None)

    def run(*args):
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return graph(*args)

    return run
