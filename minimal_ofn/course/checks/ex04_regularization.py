"""Exercise 04, regularization: the dropout mask, decoupled weight decay and the L2 penalty."""

import torch

import math

from . import check, gen, grad_of
from .training import assert_same_run, reference_rows, train_rows


def _mask(dropout_mask, p, shape, seed=0):
    out = dropout_mask(p, shape, gen(seed))
    assert isinstance(out, torch.Tensor), f"dropout_mask should return a tensor, got {type(out).__name__}"
    assert tuple(out.shape) == tuple(shape), f"dropout_mask(p, {shape}, ...) should have shape {list(shape)}, " \
                                             f"got {list(out.shape)}"
    return out.float()


@check("dropout_mask")
def mask_scales_the_kept_units(dropout_mask):
    """holds only 0 (dropped) and 1 / (1 - p) (kept), so the expected activation is unchanged"""
    mask = _mask(dropout_mask, 0.25, (200, 50))
    values = set(torch.unique(mask).tolist())
    if values <= {0.0, 1.0}:
        raise AssertionError("the kept units are not scaled: multiply them by 1 / (1 - p), so that the mean "
                             "activation is the same with and without dropout")
    assert all(abs(x) < 1e-6 or abs(x - 1 / 0.75) < 1e-5 for x in values), (
        f"a mask with p = 0.25 should hold only 0 and 1 / (1 - p) = {1 / 0.75:.4f}, got values like "
        f"{sorted(values)[:4]}")
    ones = _mask(dropout_mask, 0.0, (10, 10))
    assert torch.equal(ones, torch.ones(10, 10)), "with p = 0 nothing is dropped: the mask is all ones"


@check("dropout_mask")
def mask_drops_a_fraction_p(dropout_mask):
    """about a fraction p of the units is dropped"""
    for p in (0.1, 0.6):
        dropped = (_mask(dropout_mask, p, (400, 250)) == 0).float().mean().item()
        if abs(dropped - (1 - p)) < 0.01:
            raise AssertionError(f"with p = {p} you drop {dropped:.2f} of the units: p is the probability of "
                                 "dropping a unit, not of keeping it")
        assert abs(dropped - p) < 0.01, f"with p = {p} about {p} of the units should be dropped, got {dropped:.3f}"


@check("dropout_mask")
def mask_draws_from_the_given_generator(dropout_mask):
    """from the generator given (same state, same mask; the global stream untouched), and a new mask on the next call"""
    shape = (2, 2, 16, 32)  # how the critic asks: [layers, twins, batch, hidden]
    a, b = _mask(dropout_mask, 0.5, shape, seed=7), _mask(dropout_mask, 0.5, shape, seed=7)
    assert torch.equal(a, b), (
        "draw the random numbers with the generator you are given (torch's random functions take "
        "generator=...): each agent has its own stream, and the global one must stay untouched")
    c = _mask(dropout_mask, 0.5, shape, seed=8)
    assert not torch.equal(a, c), "two different generator seeds gave the same mask"
    state = torch.random.get_rng_state()
    g = gen(9)
    before = g.get_state()
    first = dropout_mask(0.5, shape, g)
    assert torch.equal(torch.random.get_rng_state(), state), (
        "dropout_mask drew from torch's global random stream: use the generator argument only")
    assert not torch.equal(g.get_state(), before), (
        "the generator did not move on: draw from it (not from a copy of it, and do not restore its state), so "
        "that the next update gets a new mask")
    second = dropout_mask(0.5, shape, g)
    assert not torch.equal(first.float(), second.float()), (
        "two calls in a row with the same generator gave the same mask: every update must draw a new one")


def _binomial_ok(dropped: int, n: int, p: float) -> bool:
    return abs(dropped - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 1


@check("dropout_mask")
def mask_on_fresh_rates_and_shapes(dropout_mask):
    """fresh p and shapes each grading (tiny p, p near 1, one unit): values 0 or 1/(1-p), a fraction p dropped"""
    g = gen(10)
    rates = [float(torch.rand(1, generator=g)) * 0.9 + 0.05, 0.001, 0.97, float(torch.rand(1, generator=g)) * 0.3]
    shapes = [(3, 2, 64, 40), (1, 2, 128, 256), (2, 2, 50, 64), (1, 1, 1, 1)]
    for p, shape in zip(rates, shapes):
        mask = _mask(dropout_mask, p, shape, seed=11)
        kept = 1 / (1 - p)
        ok = ((mask == 0) | ((mask - kept).abs() <= 1e-5 * kept)).all()
        assert ok, f"with p = {p:.4g} the mask should hold only 0 and 1 / (1 - p) = {kept:.5g}"
        n = mask.numel()
        if n > 1:
            dropped = int((mask == 0).sum())
            assert _binomial_ok(dropped, n, p), (
                f"with p = {p:.4g} about {p * n:.0f} of {n} units should be dropped, got {dropped}: p is the "
                "probability of dropping a unit")


@check("dropout_mask", 2)
def mask_inside_training(dropout_mask):
    """in a few updates of train() with critic dropout: each mask drawn as the package asks, new every update"""
    seen = []

    def recording(p, shape, generator):
        out = dropout_mask(p, shape, generator)
        seen.append((p, tuple(shape), out))
        return out

    p = 0.1 + 0.3 * float(torch.rand(1, generator=gen(12)))
    rows = train_rows({"dropout_mask": recording}, critic_dropout=round(p, 3))
    assert seen, "train() with critic dropout never called your dropout_mask"
    assert bool(torch.isfinite(torch.tensor([r["critic_loss"] for r in rows])).all()), "the run's loss became NaN"
    for k, (pk, shape, mask) in enumerate(seen):
        assert isinstance(mask, torch.Tensor) and tuple(mask.shape) == shape, (
            f"train() asked for a mask of shape {list(shape)}, got "
            f"{list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        kept = 1 / (1 - pk)
        assert ((mask == 0) | ((mask.float() - kept).abs() <= 1e-5 * kept)).all(), (
            "inside training the mask holds values other than 0 and 1 / (1 - p)")
    masks = torch.stack([m.float() for _, _, m in seen])
    assert _binomial_ok(int((masks == 0).sum()), masks.numel(), seen[0][0]), (
        "inside training the masks do not drop a fraction p of the units")
    assert all(not torch.equal(a, b) for a, b in zip(masks[:-1], masks[1:])), (
        "inside training two updates in a row got the same mask: draw from the agent's generator itself (it must "
        "move on), not from a copy or a restored state")


@check("decoupled_weight_decay")
def decay_shrinks_each_weight_by_lr_times_wd(decoupled_weight_decay):
    """p <- p * (1 - lr * weight_decay)"""
    p = torch.tensor([2.0, -4.0, 0.5])
    out = decoupled_weight_decay(p.clone(), 0.1, 0.5)
    assert isinstance(out, torch.Tensor), "decoupled_weight_decay should return the decayed tensor"
    if torch.allclose(out, p * 0.5):
        raise AssertionError("the decay is scaled by the learning rate too: a step of size lr toward zero")
    if torch.allclose(out, p - 0.05):
        raise AssertionError("weight decay shrinks each weight in proportion to itself (a multiplication), it "
                             "does not subtract a constant")
    assert torch.allclose(out, p * 0.95), f"with lr 0.1 and weight decay 0.5, {p.tolist()} should become " \
                                          f"{(p * 0.95).tolist()}, got {out.tolist()}"


@check("decoupled_weight_decay")
def decay_matches_adamw_per_agent(decoupled_weight_decay):
    """matches torch.optim.AdamW's decay, with lr and weight_decay as [N, 1] tensors (one per agent)"""
    g = gen(2)
    p = torch.randn(3, 5, generator=g)
    lr, wd = torch.tensor([[1e-3], [3e-4], [1e-2]]), torch.tensor([[0.1], [0.0], [1.0]])
    out = decoupled_weight_decay(p.clone(), lr, wd)
    for i in range(3):
        # AdamW with a zero gradient moves only by its decay.
        ref = p[i].clone().requires_grad_(True)
        opt = torch.optim.AdamW([ref], lr=lr[i].item(), weight_decay=wd[i].item())
        ref.grad = torch.zeros_like(ref)
        opt.step()
        assert torch.allclose(out[i], ref.detach(), rtol=1e-5, atol=1e-7), (
            "with lr and weight decay given per agent ([N, 1] tensors) agent "
            f"{i} does not match torch.optim.AdamW's decay")


N = 3


def _weights(k=3):
    g = gen(k)
    # shaped like the critic's weights: agent, twin, in, out
    return [torch.randn(N, 2, 4, 3, generator=g, requires_grad=True), torch.randn(N, 2, 3, 1, generator=g, requires_grad=True)]


def _reference_penalty(ws, coef):
    return coef * sum(w.detach().pow(2).flatten(1).sum(1) for w in ws)


@check("l2_penalty")
def penalty_is_coef_times_the_squared_norm(l2_penalty):
    """coef * the sum of squared entries of all weight tensors, one number per agent"""
    ws, coef = _weights(), torch.tensor([0.01, 0.1, 0.0])
    shape = (f"l2_penalty should give one penalty per agent, shape [N] = [{N}]: sum over every axis but the "
             "first (agent) one (the critic's weights are [N, 2, in, out])")
    try:
        out = l2_penalty(ws, coef)
    except RuntimeError as err:
        if "size of tensor" in str(err):
            raise AssertionError(shape) from None
        raise
    assert isinstance(out, torch.Tensor), ("l2_penalty should return a tensor (it is added to the loss and "
                                           "differentiated)")
    want = _reference_penalty(ws, coef)
    if out.shape != want.shape:
        raise AssertionError(f"{shape}; got {list(out.shape)}")
    total = sum(w.detach().pow(2).flatten(1).sum(1) for w in ws)
    if torch.allclose(out, coef * total.sqrt(), atol=1e-6) or torch.allclose(
            out, coef * sum(w.detach().flatten(1).norm(dim=1) for w in ws), atol=1e-6):
        raise AssertionError("the L2 penalty uses the squared norm (no square root)")
    if torch.allclose(out, coef * sum(w.detach().pow(2).flatten(1).mean(1) for w in ws), atol=1e-6):
        raise AssertionError("sum the squared entries, do not average them")
    if torch.allclose(out, total, atol=1e-5):
        raise AssertionError("the penalty is scaled by coef")
    if torch.allclose(out, coef * total.sum(), atol=1e-5) or torch.allclose(out, want.sum().expand(N), atol=1e-5):
        raise AssertionError("each agent's penalty uses its own coef and its own weights: agents must not mix")
    assert torch.allclose(out, want, rtol=1e-5, atol=1e-6), f"expected {want.tolist()}, got {out.tolist()}"


@check("l2_penalty")
def penalty_gradient_is_two_coef_w(l2_penalty):
    """its gradient is 2 * coef * W, so it can be added to the critic's loss"""
    ws, coef = _weights(4), torch.tensor([0.5, 0.25, 1.0])
    out, grads = grad_of(l2_penalty, ws, coef)
    assert isinstance(out, torch.Tensor) and all(g is not None for g in grads), (
        "the penalty must stay differentiable: no .item(), float() or .detach() on the way")
    for w, grad in zip(ws, grads):
        want = 2 * coef.view(-1, *([1] * (w.dim() - 1))) * w.detach()
        assert torch.allclose(grad, want, rtol=1e-5, atol=1e-6), (
            "the gradient of coef * ||W||^2 should be 2 * coef * W (each agent's own coef)")


@check("decoupled_weight_decay")
def decay_on_fresh_values(decoupled_weight_decay):
    """fresh each grading: [N, 2, in, out] weights, per-agent lr and decay (zeros included), float64"""
    g = gen(13)
    n = int(torch.randint(1, 5, (1,), generator=g))
    for dtype in (torch.float32, torch.float64):
        p = torch.randn(n, 2, 3, 4, generator=g, dtype=dtype) * 10 ** float(torch.randint(-3, 4, (1,), generator=g))
        lr = torch.rand(n, 1, 1, 1, generator=g, dtype=dtype) * 0.1
        wd = torch.rand(n, 1, 1, 1, generator=g, dtype=dtype)
        wd[0] = 0.0
        want = p * (1 - lr * wd)
        out = decoupled_weight_decay(p.clone(), lr, wd)
        assert isinstance(out, torch.Tensor) and out.shape == p.shape, "decoupled_weight_decay should return the " \
                                                                       "decayed tensor, shaped like the weights"
        assert torch.allclose(out, want, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0), (
            "on fresh per-agent values the decay is not p * (1 - lr * weight_decay)")


@check("decoupled_weight_decay", 2)
def decay_inside_training(decoupled_weight_decay):
    """a few updates of train() with critic weight decay and your function match the package's run"""
    wd = {"critic_weight_decay": 50.0}  # lr * decay = 0.015 a step: a decay that does nothing shows
    assert_same_run(train_rows({"decoupled_weight_decay": decoupled_weight_decay}, **wd), reference_rows(**wd),
                    "decoupled_weight_decay")


@check("l2_penalty")
def penalty_on_fresh_values(l2_penalty):
    """fresh each grading: how the package passes them (the critic's weight tensors, coef [N]), zeros and huge"""
    g = gen(14)
    n = int(torch.randint(1, 5, (1,), generator=g))
    ws = [torch.randn(n, 2, 5, 7, generator=g) * 1e3, torch.zeros(n, 2, 7, 7), torch.randn(n, 2, 7, 1, generator=g)]
    coef = torch.rand(n, generator=g)
    want = coef * sum(w.pow(2).flatten(1).sum(1) for w in ws)
    out = l2_penalty(ws, coef)
    assert isinstance(out, torch.Tensor) and out.shape == want.shape, f"l2_penalty should give one number per " \
                                                                      f"agent, [N] = [{n}]"
    assert torch.allclose(out, want, rtol=1e-5, atol=0), "on fresh weights the penalty is not coef * sum of squares"


@check("l2_penalty", 2)
def penalty_inside_training(l2_penalty):
    """a few updates of train() with an L2 penalty on the critic and your function match the package's run"""
    l2 = {"critic_l2": 1.0}
    assert_same_run(train_rows({"l2_penalty": l2_penalty}, **l2), reference_rows(**l2), "l2_penalty")
