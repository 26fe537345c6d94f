"""Exercise 04, regularization: the dropout mask, decoupled weight decay and the L2 penalty."""

import torch

from . import check, gen, grad_of


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
    """the random numbers come from the generator argument (same seed, same mask, twice in a row)"""
    a, b = _mask(dropout_mask, 0.5, (64, 32), seed=7), _mask(dropout_mask, 0.5, (64, 32), seed=7)
    assert torch.equal(a, b), (
        "draw the random numbers with the generator you are given (torch's random functions take "
        "generator=...): each agent has its own stream, and the global one must stay untouched")
    c = _mask(dropout_mask, 0.5, (64, 32), seed=8)
    assert not torch.equal(a, c), "two different generator seeds gave the same mask"
    g = gen(9)
    u = torch.rand(64, 32, generator=gen(9))
    mask = dropout_mask(0.3, (64, 32), g)
    assert torch.equal((mask == 0), u < 0.3) or torch.equal((mask == 0), u <= 0.3), (
        "the mask should drop exactly the units whose uniform draw torch.rand(shape, generator=generator) is "
        "below p (one draw per unit, in order), so that an agent's stream is the same alone or in a stack")


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
