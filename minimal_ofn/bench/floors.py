"""Floors: what no update of these shapes can beat.

update_flops counts an update's floating-point work; matmul_peak is the machine's float32 matrix-product rate;
matmul_floor runs an update's matrix products alone, back to back; step_floor times what else a learning
step cannot skip (the optimizer's pass, Polyak, one env step)."""

import statistics

import numpy as np
import torch

from .. import envs
from ..sac import polyak_update
from .timing import ACT_DIM, OBS_DIM, new_sac, seconds_per_call, stack_configs


def update_flops(batch: int, hidden: int, depth: int, obs_dim: int, act_dim: int) -> int:
    """Matrix-product FLOPs of one full SAC update of ONE agent (2 FLOPs per multiply-add).

    A linear layer of input width i and output width o on B rows costs 2Bio for the
    forward pass, 2Bio for the gradient w.r.t. its input, 2Bio for the gradient
    w.r.t. its weight. Biases, activations, losses, Adam and Polyak are O(B*H) or
    O(parameters), not O(B*H^2), and are left out. With fwd(net) the forward cost,
    first(net) the cost of its first layer, and the twin critic counted twice:

        target critic   fwd(actor) on s'  +  2 fwd(critic) on (s', a')           no backward
        critic          2 fwd(critic) on (s, a)  +  2 fwd  (weight grads)
                        +  2 (fwd - first) (input grads: [s, a] is data, needs none)
        actor           fwd(actor) on s  +  2 fwd(critic) on (s, a~)
                        +  2 fwd(critic)  (input grads down to a~; critic weights get none)
                        +  fwd(actor) (weight grads)  +  fwd(actor) - first(actor) (input grads)
        temperature, Polyak: no matrix products
    """
    return sum(2 * s * m * k * o for s, m, k, o in update_matmuls(batch, hidden, depth, obs_dim, act_dim, 1))


def update_matmuls(batch, hidden, depth, obs_dim, act_dim, n) -> list:
    """Every matrix product of one stacked update of n agents, as (stack, m, k, n_out): [S, m, k] @ [S, k, n_out].

    The passes update_flops describes (twin critics: stack 2n, actor: stack n), in update order."""
    critic, actor = [obs_dim + act_dim] + [hidden] * depth + [1], [obs_dim] + [hidden] * depth + [2 * act_dim]

    def fwd(dims, s):
        return [(s, batch, i, o) for i, o in zip(dims[:-1], dims[1:])]

    def weight_grads(dims, s):
        return [(s, i, batch, o) for i, o in zip(dims[:-1], dims[1:])]

    def input_grads(dims, s, first=True):
        return [(s, batch, o, i) for i, o in list(zip(dims[:-1], dims[1:]))[::-1][: None if first else -1]]

    q, pi = (critic, 2 * n), (actor, n)
    return (fwd(*pi) + fwd(*q)  # target
            + fwd(*q) + weight_grads(*q) + input_grads(*q, first=False)  # critic
            + fwd(*pi) + fwd(*q) + input_grads(*q) + weight_grads(*pi) + input_grads(*pi, first=False))  # actor


def matmul_peak(size, repeats, device) -> float:
    """float32 FLOP/s of a size x size matrix product: the best of `repeats` timings (2 size^3 FLOPs each)."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)  # warm-up
    best = min(seconds_per_call(lambda: torch.mm(a, b, out=out), 1, device) for _ in range(repeats))
    return 2 * size**3 / best


def matmul_floor(batch, hidden, depth, n, device, repeats) -> float:
    """Seconds for the update's matrix products alone, back to back, operands preallocated (one set per product).

    No update of these shapes can be faster with these kernels: everything else (activations, losses,
    Adam, Polyak, python) comes on top."""
    # The critic head's products (one output column: forward, weight gradient; its input gradient has k = 1) run as
    # multiply-and-sum (networks.StackedLinear), not as BLAS calls: they belong to the elementwise work.
    shapes = [shape for shape in update_matmuls(batch, hidden, depth, OBS_DIM, ACT_DIM, n) if 1 not in shape[2:]]
    operands = [(torch.randn(s, m, k, device=device), torch.randn(s, k, o, device=device),
                 torch.empty(s, m, o, device=device)) for s, m, k, o in shapes]

    def products():
        for a, b, out in operands:
            torch.bmm(a, b, out=out)

    seconds_per_call(products, 5, device)
    iters = max(2, round(0.2 / seconds_per_call(products, 3, device)))
    return statistics.median(seconds_per_call(products, iters, device) for _ in range(repeats))


def step_floor(repeats=5, env_id="HalfCheetah-v5") -> dict:
    """Seconds of the work one UTD-1 learning step cannot skip besides its matrix products, one agent, paper size,
    on the CPU: one Adam step over the actor's and the critic's parameters (torch's fused kernel, the package's
    fast path), one Polyak step of the target critic, one environment step. Each alone, back to back, its operands
    in cache, so each is a lower bound of what it costs inside a real step (activations and losses not counted)."""
    device = torch.device("cpu")
    sac = new_sac(stack_configs("paper", ["baseline"], device), device)
    grads = {name: [torch.zeros_like(q) for q in opt.params] for name, opt in sac.optimizers().items()}

    def adam():
        for name, opt in sac.optimizers().items():
            opt.step(grads[name])

    def polyak():
        with torch.no_grad():
            polyak_update(sac.critic_target.parameters(), sac.critic.parameters(), sac.tau)

    env = envs.make_env(env_id, seed=0)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)

    def env_step():  # a new episode where one ends, as the training loop does (the reset's cost is spread thin)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    out = {}
    for name, fn in (("adam_s", adam), ("polyak_s", polyak), ("env_s", env_step)):
        seconds_per_call(fn, 20, device)  # warm-up
        iters = max(20, round(0.1 / seconds_per_call(fn, 20, device)))
        out[name] = statistics.median(seconds_per_call(fn, iters, device) for _ in range(repeats))
    env.close()
    return out
