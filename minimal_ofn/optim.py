"""Adam, AdamW and SGD with one set of hyperparameters per agent in the stack.

Adam (Kingma & Ba 2015), for gradient g at step t:

    m <- beta1 m + (1 - beta1) g              first moment: momentum
    v <- beta2 v + (1 - beta2) g^2            second moment: per-weight scale
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

beta1 = 0 makes m the latest gradient: Adam without momentum, the paper's
ablation. Momentum keeps pushing in the direction of past gradients; when the
critic chases a growing bootstrapped target, every step points up, and momentum
compounds the overestimate.

Decoupled weight decay (AdamW, Loshchilov & Hutter 2019) adds p <- p (1 - lr wd)
before the step (of every kind below); an L2 *loss penalty* is a different thing and lives in sac.py.

Adam's two parts, taken apart (the paper's optimizer dissection), each as in torch.optim:

    kind="rmsprop"  second moment only (torch.optim.RMSprop, decay beta2, no momentum):
                    v <- beta2 v + (1 - beta2) g^2;   p <- p - lr g / (sqrt(v) + eps)
    kind="sgd"      first moment only (torch.optim.SGD, dampening 0; beta1 = 0 is plain SGD):
                    m <- beta1 m + g;                 p <- p - lr m

The kind may differ per agent (a list), so one stack can hold the whole dissection.

Why not torch.optim.Adam itself: its hyperparameters are one number per
parameter group, while here a parameter tensor holds many agents that may each
use a different lr, beta1 or weight decay, and a reset restarts one agent's step
count. So `adam_step` and `decoupled_weight_decay` below are written for tensors
whose per-agent numbers broadcast over the agent axis, and `optimizer_step`, the
step written once as a function of tensors, calls them: the compiled update
(sac.py) runs it, and so does every eager step with a learner's functions (plug.py)
or another kind than Adam. Eager with the package's own Adam, StackedOptimizer.step
takes an optional fast path instead: torch's fused AdamW kernel (what
torch.optim.AdamW(fused=True) runs: one pass over memory instead of eight
elementwise ops per tensor) on each agent's slice of every tensor, one call per
group of agents that share their hyperparameters. tests/test_optim.py holds the
two paths equal; both match torch.optim.Adam/AdamW/SGD.
"""

import torch


def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps=1e-8):
    """One Adam step; returns the new (param, m, v). t counts from 1; lr, betas and t may be per-agent [N, 1]."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def decoupled_weight_decay(param, lr, weight_decay):
    """AdamW's decay, applied to the weights apart from the gradient step: p * (1 - lr * weight_decay)."""
    return param * (1 - lr * weight_decay)


KINDS = ("adam", "rmsprop", "sgd")


def without_momentum(cfg):
    """A copy of cfg whose critic and actor Adam optimizers have no momentum (beta1 = 0): the paper's ablation."""
    return cfg.replace(critic_beta1=0.0, actor_beta1=0.0)


class StackedOptimizer:
    """One optimizer over stacked parameters [N, ...], hyperparameters per agent.

    adam_step, decoupled_weight_decay: the functions the step runs (a learner's, through plug.py);
    the package's own ones take the fused fast path."""

    def __init__(self, params, n, lr, beta1, beta2=0.999, eps=1e-8, weight_decay=0.0, kind="adam",
                 adam_step=adam_step, decoupled_weight_decay=decoupled_weight_decay):
        self.kinds = [kind] * n if isinstance(kind, str) else list(kind)  # one per agent
        for k in self.kinds:
            if k not in KINDS:
                raise ValueError(f"unknown optimizer {k!r}: use one of {', '.join(KINDS)}")
        if len(self.kinds) != n:
            raise ValueError(f"{len(self.kinds)} optimizer kinds for {n} agents")
        self.kind = self.kinds[0] if len(set(self.kinds)) == 1 else "mixed"
        self.params, self.n, self.eps = list(params), n, eps
        self.adam_step, self.decoupled_weight_decay = adam_step, decoupled_weight_decay
        self.fused = self.kind == "adam" and adam_step is globals()["adam_step"] and (
            decoupled_weight_decay is globals()["decoupled_weight_decay"])
        device = self.params[0].device

        def per_agent(x):
            return torch.as_tensor(x, dtype=torch.float32, device=device).expand(n).reshape(n, 1).clone()

        self.lr, self.beta1, self.beta2, self.weight_decay = map(per_agent, (lr, beta1, beta2, weight_decay))
        self.use_decay = bool((self.weight_decay != 0).any())
        # [N, 1] masks of the agents of each kind, for the readable step's per-agent choice
        self.is_kind = {k: torch.tensor([[x == k] for x in self.kinds], device=device) for k in KINDS}
        self.step_count = torch.zeros(n, 1, device=device)  # per agent: a reset restarts one agent's count
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params] if self.kind != "sgd" else []
        # Agents frozen after a failure (train.py): their parameters, moments and step count stop changing.
        self.frozen, self.active = set(), torch.ones(n, 1, device=device)
        self._group()

    def _group(self) -> None:
        # Fast path: agents that share (lr, beta1, beta2, weight decay) as python numbers get one kernel call,
        # over their slices [params, m, v, step counts]. A slice of a tensor is contiguous, and each agent's
        # step count is read from step_count (no host sync). Frozen agents are in no group.
        self.groups = []
        if self.fused:
            live = [i for i in range(self.n) if i not in self.frozen]
            hyper = {i: tuple(float(x[i]) for x in (self.lr, self.beta1, self.beta2, self.weight_decay)) for i in live}
            for h in dict.fromkeys(hyper.values()):
                agents = [i for i in live if hyper[i] == h]
                slices = [(p.detach()[i], self.m[k][i], self.v[k][i], self.step_count[i, 0])
                          for i in agents for k, p in enumerate(self.params)]
                self.groups.append((h, agents, [list(x) for x in zip(*slices)]))

    @torch.no_grad()
    def freeze(self, i: int) -> None:
        """Stop updating agent i (its parameters, moments and step count stay as they are); the others go on."""
        self.frozen.add(i)
        self.active[i] = 0.0
        self._group()

    @torch.no_grad()
    def step(self, grads) -> None:
        """One step of every agent (frozen agents keep their values). Compiled (sac.py), or with a learner's
        functions, it is optimizer_step; eager with the package's Adam, torch's fused AdamW kernel, which
        tests/test_optim.py holds equal to it."""
        if not self.fused or torch.compiler.is_compiling():
            return optimizer_step(self.params, grads, self.m, self.v, self.step_count, self)
        self.step_count += self.active  # + 1 for every agent that is not frozen
        for (lr, beta1, beta2, wd), agents, (p, m, v, t) in self.groups:
            g = [grad[i].contiguous() for i in agents for grad in grads]  # the kernel reads memory in order
            # AdamW's kernel applies p <- p (1 - lr wd) first; with wd = 0 it is Adam's.
            torch._fused_adamw_(p, g, m, v, [], t, lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd, eps=self.eps,
                                amsgrad=False, maximize=False)

    def step_readable(self, grads) -> None:
        """The written-out step (optimizer_step) whatever the path step() would take."""
        optimizer_step(self.params, grads, self.m, self.v, self.step_count, self)

    @torch.no_grad()
    def reset_agent(self, i: int) -> None:
        """Forget agent i's moments and step count, as a freshly built optimizer would."""
        self.step_count[i] = 0
        for buf in self.m + self.v:
            buf[i].zero_()

    def state_dict(self):
        return {"step_count": self.step_count, "m": self.m, "v": self.v}

    def load_state_dict(self, state):
        self.step_count.copy_(state["step_count"])
        for dst, src in zip(self.m + self.v, state["m"] + state["v"]):
            dst.copy_(src)


@torch.no_grad()
def optimizer_step(params, grads, m, v, step_count, opt) -> None:
    """The step on every tensor viewed as [agent, everything else], in place: opt.adam_step (after
    opt.decoupled_weight_decay) for Adam's agents, the formulas in the module docstring for RMSProp's and SGD's.

    opt holds the per-agent hyperparameters [N, 1] (lr, beta1, beta2, weight_decay, eps), the kinds, and `active`
    (0 for the agents frozen after a failure: their tensors keep their values even where a gradient is NaN)."""
    step_count += opt.active
    n, live = opt.n, opt.active.bool()
    # [N, 1] each, kept in float32; a float64 run computes in float64 (as the fused kernel does)
    lr, beta1, beta2, wd = (x.to(params[0].dtype) for x in (opt.lr, opt.beta1, opt.beta2, opt.weight_decay))
    for i, (p, g) in enumerate(zip(params, grads)):
        p, g, mi = p.view(n, -1), g.reshape(n, -1), m[i].view(n, -1)
        decayed = opt.decoupled_weight_decay(p, lr, wd) if opt.use_decay else p
        if opt.kind == "sgd":  # torch.optim.SGD with dampening 0: m <- beta1 m + g;  p <- p - lr m
            new_m = mi * beta1 + g
            new = [(p, decayed - lr * new_m), (mi, new_m)]
        else:
            vi = v[i].view(n, -1)
            new_p, new_m, new_v = opt.adam_step(decayed, g, mi, vi, step_count, lr, beta1, beta2, opt.eps)
            if opt.kind != "adam":  # the other kinds' agents take their own formula (where: per agent)
                rms_v = beta2 * vi + (1 - beta2) * g * g
                rms = decayed - lr * g / (rms_v.sqrt() + opt.eps)
                sgd_m = beta1 * mi + g
                sgd = decayed - lr * sgd_m
                is_rms, is_sgd = opt.is_kind["rmsprop"], opt.is_kind["sgd"]
                new_p = torch.where(is_rms, rms, torch.where(is_sgd, sgd, new_p))
                new_m = torch.where(is_rms, torch.zeros_like(mi), torch.where(is_sgd, sgd_m, new_m))
                new_v = torch.where(is_rms, rms_v, torch.where(is_sgd, torch.zeros_like(vi), new_v))
            new = [(p, new_p), (mi, new_m), (vi, new_v)]
        for old, value in new:  # a frozen agent keeps its old values (even if its gradient is NaN)
            old.copy_(torch.where(live, value, old) if opt.frozen else value)
