"""The per-agent optimizer matches torch.optim's Adam, AdamW and SGD, and beta1 = 0 means no momentum."""

import pytest
import torch

from minimal_ofn.optim import StackedOptimizer, adam_step, decoupled_weight_decay


def _run(kind, torch_opt, lr, beta1, wd=0.0, steps=5, atol=1e-6):
    """Three agents, each with a [4, 5] weight, against torch optimizers; kind and torch_opt may be one per agent."""
    torch.manual_seed(0)
    init = torch.randn(3, 4, 5)
    ours = init.clone().requires_grad_(True)
    opt = StackedOptimizer([ours], 3, lr=lr, beta1=beta1, weight_decay=wd, kind=kind)
    refs = [init[i].clone().requires_grad_(True) for i in range(3)]
    makers = torch_opt if isinstance(torch_opt, list) else [torch_opt] * 3
    ref_opts = [makers[i]([refs[i]], lr[i], beta1[i], wd[i] if isinstance(wd, list) else wd) for i in range(3)]
    for step in range(steps):
        grads = torch.randn(3, 4, 5) * (step + 1)
        opt.step([grads])
        for i in range(3):
            refs[i].grad = grads[i].clone()
            ref_opts[i].step()
    for i in range(3):
        torch.testing.assert_close(ours[i].detach(), refs[i].detach(), rtol=1e-5, atol=atol)
    return opt


def test_adam_matches_torch_per_agent():
    _run("adam", lambda p, lr, b1, wd: torch.optim.Adam(p, lr=lr, betas=(b1, 0.999)),
         lr=[1e-3, 3e-4, 1e-2], beta1=[0.9, 0.0, 0.5])


def test_adamw_matches_torch_decoupled_weight_decay():
    _run("adam", lambda p, lr, b1, wd: torch.optim.AdamW(p, lr=lr, betas=(b1, 0.999), weight_decay=wd),
         lr=[1e-3, 1e-3, 1e-2], beta1=[0.9, 0.9, 0.0], wd=[0.0, 0.1, 0.5])


def test_sgd_with_and_without_momentum_matches_torch():
    _run("sgd", lambda p, lr, b1, wd: torch.optim.SGD(p, lr=lr, momentum=b1),
         lr=[0.1, 0.01, 0.05], beta1=[0.9, 0.0, 0.5])


def test_rmsprop_matches_torch_and_keeps_no_first_moment():
    opt = _run("rmsprop", lambda p, lr, b1, wd: torch.optim.RMSprop(p, lr=lr, alpha=0.999),
               lr=[1e-3, 3e-4, 1e-2], beta1=[0.9, 0.0, 0.5], atol=2e-5)  # beta1 is ignored: no momentum
    # (its unbiased first steps are 30x lr: float32 rounding of g / sqrt(v) differs from torch's by ~1e-5)
    assert not opt.m[0].any()


def test_kinds_per_agent_each_match_their_torch_optimizer():
    """One stack holding the optimizer dissection: each agent is its own torch optimizer, decay included."""
    makers = [lambda p, lr, b1, wd: torch.optim.SGD(p, lr=lr, momentum=b1),
              lambda p, lr, b1, wd: torch.optim.RMSprop(p, lr=lr, alpha=0.999),
              lambda p, lr, b1, wd: torch.optim.AdamW(p, lr=lr, betas=(b1, 0.999), weight_decay=wd)]
    _run(["sgd", "rmsprop", "adam"], makers, lr=[0.05, 1e-3, 1e-2], beta1=[0.9, 0.0, 0.5], wd=[0.0, 0.0, 0.3],
         steps=6, atol=2e-5)


def test_beta1_zero_leaves_first_moment_equal_to_last_gradient():
    p = torch.zeros(2, 6, requires_grad=True)
    opt = StackedOptimizer([p], 2, lr=1e-3, beta1=[0.0, 0.9])
    for k in range(4):
        g = torch.randn(2, 6)
        opt.step([g])
    torch.testing.assert_close(opt.m[0][0], g[0])  # no momentum: m is the latest gradient
    assert not torch.allclose(opt.m[0][1], g[1])  # with momentum it is not


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer"):
        StackedOptimizer([torch.zeros(1, 2)], 1, lr=1.0, beta1=0.0, kind="adagrad")


def test_fused_step_equals_the_written_out_step_across_groups_and_a_reset():
    """Agents 0 and 2 share hyperparameters (one kernel call), agent 1 has its own; agent 2 is reset mid-way,
    so its step count (and bias correction) restarts while agent 0's does not."""
    torch.manual_seed(0)
    shapes = [(3, 2, 4, 5), (3, 1, 5)]
    fused_params = [torch.randn(*s) for s in shapes]
    plain_params = [p.clone() for p in fused_params]
    kw = dict(lr=[1e-2, 3e-3, 1e-2], beta1=[0.9, 0.0, 0.9], weight_decay=[0.1, 0.0, 0.1])
    fused, plain = StackedOptimizer(fused_params, 3, **kw), StackedOptimizer(plain_params, 3, **kw)
    assert len(fused.groups) == 2
    for step in range(6):
        if step == 3:
            fused.reset_agent(2)
            plain.reset_agent(2)
        grads = [torch.randn(*s) for s in shapes]
        fused.step(grads)
        plain.step_readable(grads)
    assert fused.step_count.flatten().tolist() == [6, 6, 3]
    for a, b in zip(fused_params + fused.m + fused.v, plain_params + plain.m + plain.v):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_transposed_gradient_is_read_by_index_not_by_memory_order():
    """The fused kernel walks raw memory: a gradient that is a transposed view must be made contiguous first."""
    torch.manual_seed(0)
    init = torch.randn(2, 4, 5)
    grad = torch.randn(2, 5, 4).transpose(1, 2)  # [2, 4, 5], not contiguous
    a, b = init.clone(), init.clone()
    StackedOptimizer([a], 2, lr=0.1, beta1=0.9).step([grad])
    StackedOptimizer([b], 2, lr=0.1, beta1=0.9).step([grad.contiguous()])
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def _counting(fn, calls):
    def wrapped(*args):
        calls.append(fn.__name__)
        return fn(*args)
    return wrapped


def test_fused_path_equals_the_readable_functions_on_zeros_a_dead_unit_and_a_reset():
    """The default (fused) step and StackedOptimizer running adam_step/decoupled_weight_decay themselves agree,
    with exact-zero gradients at the first update (0/0 in a careless step), a unit whose gradient is always 0,
    weight decay on some agents and a mid-run reset of one agent."""
    g = torch.Generator().manual_seed(5)
    shapes = [(3, 4, 6), (3, 1, 6)]
    init = [torch.randn(*s, generator=g) for s in shapes]
    kw = dict(lr=[1e-2, 3e-3, 1e-2], beta1=[0.9, 0.0, 0.9], weight_decay=[0.1, 0.0, 0.0])
    calls = []
    fused = StackedOptimizer([p.clone() for p in init], 3, **kw)
    readable = StackedOptimizer([p.clone() for p in init], 3, **kw, adam_step=_counting(adam_step, calls),
                                decoupled_weight_decay=_counting(decoupled_weight_decay, calls))
    assert fused.fused and not readable.fused
    for step in range(6):
        if step == 3:
            fused.reset_agent(1)
            readable.reset_agent(1)
        grads = [torch.randn(*s, generator=g) for s in shapes]
        if step == 0:
            grads = [torch.zeros(*s) for s in shapes]  # exact zeros at the first update
        grads[0][:, :, 2] = 0.0  # a dead unit: never any gradient
        fused.step(grads)
        readable.step(grads)
    assert calls.count("adam_step") == 6 * 2 and calls.count("decoupled_weight_decay") == 6 * 2
    for a, b in zip(fused.params + fused.m + fused.v, readable.params + readable.m + readable.v):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_learner_adam_step_is_the_one_that_runs():
    """A step function given to the optimizer is used (no fused path), and a wrong one changes the result."""
    p = torch.ones(2, 3)
    opt = StackedOptimizer([p], 2, lr=0.1, beta1=0.9, adam_step=lambda p, g, m, v, *rest: (p + 1, m, v))
    opt.step([torch.ones(2, 3)])
    assert torch.equal(p, torch.full((2, 3), 2.0))
