"""The whole SAC update as one compiled graph (as LeanRL does for CleanRL).

sac.py's `SAC.update` is the readable reference: eager PyTorch, one kernel per op,
autograd tape, torch's fused Adam. Here the same update, for the same stack of
agents and on the same tensors, is one pure function of tensors,

    (params, targets, Adam moments, step counts, log alpha, batch, noise, dropout masks)
        -> the same tensors, updated in place

written with `torch.func.functional_call` of the package's own Actor and Critic,
`torch.func.grad_and_value` for both losses, Adam/AdamW/RMSProp/SGD as tensor ops (optim.py's
`step_readable`, per-agent hyperparameters broadcast over the agent axis) and Polyak,
traced once by torch.compile into one graph (fullgraph=True: a graph break is an
error). Inductor then fuses the elementwise work (ReLU and its gradient, LayerNorm,
OFN, the losses, Adam's eight ops per tensor, Polyak) into a few loops, which eager
PyTorch cannot do. What is random (the policy noise, the uniform numbers behind the
dropout masks) is drawn outside the graph from each agent's own generator, in the
order sac.py draws it; the masks themselves are made inside the graph (DropoutNoise).
So the compiled update consumes the same random streams and gives the same updates up
to float rounding (tests/test_compiled.py).

The SAC object keeps its state: the compiled step reads and writes sac.actor's,
sac.critic's and sac.critic_target's parameters, the optimizers' m, v and step counts,
sac.log_alpha and sac.stats in place, so checkpoints, resets (reset_agent writes in
place too) and diagnostics see the same tensors as with the eager update.

Cost: one compile per SAC object and shape (tens of seconds cold on a CPU, a few with
Inductor's cache warm: docs/speed.md). Shapes and strides are fixed (dynamic=False):
the same replay batch shapes every call, so nothing recompiles. On CPU Inductor writes
the code that calls the kernels in C++ (cpp_wrapper), not python.
On a GPU it is compiled with mode="reduce-overhead" (CUDA graphs: one launch for the
whole update instead of a few hundred kernel launches); the state tensors are marked
as static addresses so that the graph may update them in place.
"""

import torch
from torch.func import functional_call, grad_and_value

from .sac import actor_loss, critic_loss, l2_penalty, polyak_update, soft_q_target, temperature_loss


def optimizer_step(params, grads, m, v, step_count, hyper, kind, is_kind=None) -> None:
    """optim.StackedOptimizer.step_readable as a function of its tensors (in place): Adam/AdamW, RMSProp, SGD.

    hyper: per-agent [N, 1] tensors lr, beta1, beta2, weight_decay, and eps (a float); optionally "active",
    [N, 1], 0 for the agents frozen after a failure (their tensors keep their values, as in optim.py).
    kind "rmsprop" or "mixed" (the kind differs per agent): is_kind {kind: [N, 1] bool} picks each agent's formula."""
    active = hyper.get("active")
    step_count += 1 if active is None else active
    n = step_count.shape[0]
    # optim.py keeps the hyperparameters in float32; lerp wants them in the parameters' dtype (float64 runs)
    hyper = {k: h.to(params[0].dtype) if isinstance(h, torch.Tensor) else h for k, h in hyper.items()}
    if kind != "sgd":
        step_size = hyper["lr"] / (1 - hyper["beta1"] ** step_count)
        bias2_sqrt = (1 - hyper["beta2"] ** step_count).sqrt()
    for i, (p, g) in enumerate(zip(params, grads)):
        p, g, mi = p.view(n, -1), g.reshape(n, -1), m[i].view(n, -1)
        decayed = p * (1 - hyper["lr"] * hyper["weight_decay"])  # AdamW's decoupled decay; 1 exactly where wd = 0
        if kind == "sgd":
            new_m = mi * hyper["beta1"] + g
            new = [(p, decayed - hyper["lr"] * new_m), (mi, new_m)]
        else:
            vi = v[i].view(n, -1)
            new_m, new_v = mi.lerp(g, 1 - hyper["beta1"]), vi.lerp(g * g, 1 - hyper["beta2"])
            new_p = decayed.addcdiv(new_m * step_size, new_v.sqrt().div_(bias2_sqrt).add_(hyper["eps"]), value=-1.0)
            if kind != "adam":  # kinds differ per agent: every formula, then each agent's own (the readable where)
                is_rms, is_sgd = is_kind["rmsprop"], is_kind["sgd"]
                rms = decayed - hyper["lr"] * g / (new_v.sqrt() + hyper["eps"])  # Adam's v is RMSProp's v
                sgd_m = hyper["beta1"] * mi + g
                new_p = torch.where(is_rms, rms, torch.where(is_sgd, decayed - hyper["lr"] * sgd_m, new_p))
                new_m = torch.where(is_rms, torch.zeros_like(mi), torch.where(is_sgd, sgd_m, new_m))
                new_v = torch.where(is_sgd, torch.zeros_like(vi), new_v)
            new = [(p, new_p), (mi, new_m), (vi, new_v)]
        for old, value in new:  # Inductor fuses the select into the update's loop
            old.copy_(value if active is None else torch.where(active.bool(), value, old))


class DropoutNoise:
    """The dropout masks of networks.Critic.dropout_masks, with their random numbers drawn outside the graph and
    the masks made inside it, where Inductor fuses them into the layers' loops.

    draw(): U[0, 1) [agents with dropout, depth, 2, B, hidden], each agent's block drawn from its own generator in
    one call: the numbers networks.dropout_mask draws (torch.rand is empty + uniform_). Agents without dropout draw
    nothing, as in eager. masks(u), in the graph: per layer [N, 2, B, hidden], 1 / (1 - p) where u >= p and 0
    elsewhere (the same float32 values as dropout_mask), and ones for the agents without dropout."""

    def __init__(self, critic, batch, generators):
        self.agents = [i for i, p in enumerate(critic.dropout) if p > 0]
        self.shape = (len(critic.layers), 2, batch, critic.hidden)
        self.generators = [generators[i] for i in self.agents]
        device = critic.head.weight.device
        # each agent reads the block of its own row in u (the agents without dropout read row 0 and keep all)
        self.row = torch.tensor([self.agents.index(i) if i in self.agents else 0 for i in range(critic.n)],
                                device=device)
        p = torch.tensor(critic.dropout, device=device)  # float32, as dropout_mask's comparison casts p
        self.p = p.view(-1, 1, 1, 1, 1)
        self.scale = torch.stack([torch.ones((), device=device) / (1.0 - q) for q in critic.dropout]).view_as(self.p)

    def draw(self):
        if not self.agents:
            return None
        u = torch.empty(len(self.agents), *self.shape, device=self.p.device)
        for block, g in zip(u, self.generators):
            block.uniform_(0.0, 1.0, generator=g)
        return u

    def masks(self, u):
        if u is None:
            return None
        return list(torch.where(u[self.row] >= self.p, self.scale, 0.0).unbind(1))


def _optimizer_state(opt) -> dict:
    return {"params": [p.detach() for p in opt.params], "m": opt.m, "v": opt.v, "step_count": opt.step_count,
            "hyper": {"lr": opt.lr, "beta1": opt.beta1, "beta2": opt.beta2, "weight_decay": opt.weight_decay,
                      "eps": opt.eps, "active": opt.active}, "is_kind": opt.is_kind}


class CompiledUpdate:
    """`CompiledUpdate(sac)(batch)` does what `sac.update(batch)` does, as one compiled graph.

    `compile_update(sac)` installs it as sac.update (so the training loop, priming and the bench call it)."""

    def __init__(self, sac, mode: str | None = "auto"):
        self.sac = sac
        if mode == "auto":
            mode = "reduce-overhead" if sac.device.type == "cuda" else None
        names = {"actor": [k for k, _ in sac.actor.named_parameters()],
                 "critic": [k for k, _ in sac.critic.named_parameters()]}
        critic_params = [p.detach() for p in sac.critic.parameters()]
        weights = [i for i, k in enumerate(names["critic"]) if k.endswith("weight") and "ln_" not in k]
        # The last critic gradients, kept for the diagnostics' gradient norm (sac.last_critic_grads in eager).
        self.critic_grads = [torch.zeros_like(p) for p in critic_params]
        self.state = {
            "actor_opt": _optimizer_state(sac.actor_opt), "critic_opt": _optimizer_state(sac.critic_opt),
            "alpha_opt": _optimizer_state(sac.alpha_opt),
            "target": [p.detach() for p in sac.critic_target.parameters()],
            "gamma": sac.gamma, "tau": sac.tau, "critic_l2": sac.critic_l2, "target_entropy": sac.target_entropy,
            "stats": sac.stats, "critic_grads": self.critic_grads,
        }
        # The params of critic_opt and alpha_opt are the critic's tensors and log_alpha themselves (same storage).
        if mode == "reduce-overhead":  # CUDA graphs may then update these tensors in place, not copies of them
            for t in torch.utils._pytree.tree_leaves(self.state):
                if isinstance(t, torch.Tensor):
                    torch._dynamo.mark_static_address(t)
        kinds = (sac.actor_opt.kind, sac.critic_opt.kind)
        use_l2, actor, critic = sac.use_l2, sac.actor, sac.critic
        self.dropout = dropout = DropoutNoise(critic, sac.batch_size, sac.generators)

        def step(state, batch, noise, uniforms):
            masks = [dropout.masks(u) for u in uniforms]
            s, a, r, s2, d = (batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated"))
            a_opt, c_opt, t_opt = state["actor_opt"], state["critic_opt"], state["alpha_opt"]
            actor_p = dict(zip(names["actor"], a_opt["params"]))
            critic_p = dict(zip(names["critic"], c_opt["params"]))
            target_p = dict(zip(names["critic"], state["target"]))
            log_alpha = t_opt["params"][0]
            alpha = log_alpha.exp().unsqueeze(1)  # [N, 1], before this update's temperature step

            # --- critic
            a2, logp2 = functional_call(actor, actor_p, (s2, noise[:, 0]))
            next_q = functional_call(critic, target_p, (s2, a2, masks[0]))
            y = soft_q_target(r, d, next_q, logp2, alpha, state["gamma"].unsqueeze(1))

            def critic_objective(p):
                loss = critic_loss(functional_call(critic, p, (s, a, masks[1])), y)
                if use_l2:
                    loss = loss + l2_penalty([p[names["critic"][i]] for i in weights], state["critic_l2"])
                return loss.sum(), loss

            grads, (_, c_loss) = grad_and_value(critic_objective, has_aux=True)(critic_p)
            grads = [grads[k] for k in names["critic"]]
            optimizer_step(c_opt["params"], grads, c_opt["m"], c_opt["v"], c_opt["step_count"], c_opt["hyper"],
                           kinds[1], c_opt["is_kind"])

            # --- actor and temperature, through the just-updated critic (whose weights get no gradient here)
            def actor_objective(p, log_alpha):
                a_new, logp = functional_call(actor, p, (s, noise[:, 1]))
                q_new = functional_call(critic, critic_p, (s, a_new, masks[2]))
                pi_loss = actor_loss(logp, q_new, alpha)
                return (pi_loss + temperature_loss(log_alpha, logp, state["target_entropy"])).sum(), pi_loss

            (actor_g, alpha_g), (_, pi_loss) = grad_and_value(actor_objective, argnums=(0, 1), has_aux=True)(
                actor_p, log_alpha)
            optimizer_step(a_opt["params"], [actor_g[k] for k in names["actor"]], a_opt["m"], a_opt["v"],
                           a_opt["step_count"], a_opt["hyper"], kinds[0], a_opt["is_kind"])
            optimizer_step([log_alpha], [alpha_g], t_opt["m"], t_opt["v"], t_opt["step_count"], t_opt["hyper"],
                           "adam")

            # --- target critic, logging sums, gradients for the diagnostics
            polyak_update(state["target"], c_opt["params"], state["tau"])
            state["stats"]["critic_loss"] += c_loss
            state["stats"]["actor_loss"] += pi_loss
            state["stats"]["updates"] += 1
            for buf, g in zip(state["critic_grads"], grads):
                buf.copy_(g)

        self.mode = mode
        # On CPU, Inductor's C++ wrapper calls the kernels from C++ instead of a generated python function: 2-15% less
        # per update (most for mixed stacks, whose graphs have more kernels), a few seconds more compile.
        options = {"cpp_wrapper": True} if mode is None and sac.device.type == "cpu" else None
        self.step = torch.compile(step, fullgraph=True, dynamic=False, mode=mode, options=options)

    def __call__(self, batch: dict) -> None:
        sac = self.sac
        noise = sac.noise(2, sac.batch_size, sac.act_dim)  # drawn as sac.update draws it: noise, then 3 masks
        uniforms = [self.dropout.draw() for _ in range(3)]
        with torch.no_grad():
            self.step(self.state, batch, noise, uniforms)
        sac.last_critic_grads = self.critic_grads


def compile_update(sac, mode: str | None = "auto") -> CompiledUpdate:
    """Replace sac.update by the compiled whole update (Config compile="update"); returns it."""
    sac.update = CompiledUpdate(sac, mode)
    return sac.update
