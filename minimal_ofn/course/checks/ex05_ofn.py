"""Exercise 05, output feature normalization and the effective rank of the critic's features."""

import torch
import torch.nn.functional as F

from . import check, gen, grad_of


def _features(seed=0, shape=(2, 2, 6, 5)):
    g = gen(seed)
    x = torch.rand(*shape, generator=g)  # ReLU features are >= 0
    return x * torch.logspace(-2, 2, shape[-2]).view(-1, 1)  # samples of very different scales


def _ofn_out(ofn, x):
    out = ofn(x)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape, (
        f"ofn should return a tensor shaped like its input {list(x.shape)}")
    return out


@check("ofn")
def ofn_gives_each_sample_unit_norm(ofn):
    """every sample's feature vector comes out with L2 norm 1 (features [N, 2, B, d])"""
    x = _features()
    out = _ofn_out(ofn, x)
    norms = out.norm(dim=-1)
    if torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        return
    if torch.allclose(out.norm(dim=-2), torch.ones_like(out.norm(dim=-2)), atol=1e-4):
        raise AssertionError("you normalized over the batch: OFN divides each sample's features by that "
                             "sample's own norm, taken over the feature axis (the last one)")
    if torch.allclose(out, x / x.norm(dim=-1, keepdim=True) ** 2, atol=1e-5):
        raise AssertionError("divide by the norm, not by its square")
    raise AssertionError(f"each sample's features should have L2 norm 1 after OFN; norms range from "
                         f"{norms.min().item():.3g} to {norms.max().item():.3g}")


@check("ofn")
def ofn_keeps_direction_and_treats_samples_alone(ofn):
    """phi / ||phi||: same direction, and a sample's output does not depend on the other samples"""
    x = _features(1)
    out = _ofn_out(ofn, x)
    assert torch.allclose(out, x / x.norm(dim=-1, keepdim=True), atol=1e-5), (
        "the output should point the same way as the input, scaled to unit L2 norm over the features")
    y = x.clone()
    y[..., 0, :] *= 1000.0  # change one sample only
    other = _ofn_out(ofn, y)
    assert torch.allclose(other[..., 1:, :], out[..., 1:, :], atol=1e-5), (
        "changing one sample changed the output of the others: the normalization must not mix the samples")


@check("ofn")
def ofn_survives_all_zero_features(ofn):
    """a sample whose features are all zero (every ReLU off) gives zeros, not NaN"""
    x = _features(2)
    x[0, 0, 3] = 0.0
    before = x.clone()
    out = _ofn_out(ofn, x)
    assert torch.equal(x, before), "ofn changed its input in place: the critic's activations are needed as they are"
    assert torch.isfinite(out).all(), ("an all-zero feature vector gave NaN or inf: guard the division with a "
                                       "small eps (the function has an eps argument)")
    assert torch.allclose(out[0, 0, 3], torch.zeros(x.shape[-1])), "an all-zero feature vector should stay zero"


@check("ofn")
def ofn_passes_gradients_through_the_norm(ofn):
    """the gradient flows through the division by the norm as well"""
    x = (_features(3) * torch.randn(5, generator=gen(4)).sign()).requires_grad_(True)
    out, (grad,) = grad_of(ofn, x)
    assert grad is not None, "the output is cut off from autograd: no .detach() or torch.no_grad() inside ofn"
    x_ref = x.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(F.normalize(x_ref, dim=-1).sum(), x_ref)
    assert torch.allclose(grad, ref, rtol=1e-4, atol=1e-5), (
        "the gradient differs from that of phi / ||phi||: the norm depends on phi too, so do not detach it")


@check("ofn")
def ofn_gradients_stay_finite_on_all_zero_features(ofn):
    """gradients through a sample whose features are all zero are finite (no 0 / 0 in the backward pass)"""
    x = _features(6)
    x[1, 0, 2] = 0.0
    x[0, 1, :] = 0.0  # a whole batch of dead features
    x.requires_grad_(True)
    out, (grad,) = grad_of(ofn, x)
    assert grad is not None and torch.isfinite(grad).all(), (
        "the gradient through an all-zero feature vector is NaN or inf: the forward pass is guarded, but the "
        "backward pass of sqrt at 0 is not; take the norm with torch's norm (or torch.linalg.vector_norm) and "
        "clamp it, so that no 1 / sqrt(0) is ever formed")


def _matrix(singular_values, rows=8, seed=0):
    """A [rows, d] matrix with the given singular values."""
    d = len(singular_values)
    g = gen(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, d, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return (u * torch.tensor(singular_values, dtype=torch.float64)) @ v.T


def _value(out):
    return torch.as_tensor(out).double()


def _srank_variants(phi, delta):
    """What srank would give under the usual mistakes, to name the one made."""
    sigma = torch.linalg.svdvals(phi.double())
    share = sigma.cumsum(-1) / sigma.sum(-1)
    energy = (sigma**2).cumsum(-1) / (sigma**2).sum(-1)
    right = int((share < 1 - delta - 1e-9).sum()) + 1
    return {
        "off by one: srank is how many singular values it takes (k counts from 1) to reach (1 - delta) of their "
        "sum": right - 1,
        "the top singular values must cover (1 - delta) of the total, not delta of it": int((share < delta).sum()) + 1,
        "use the singular values themselves, not their squares (srank is not an energy share)":
            int((energy < 1 - delta - 1e-9).sum()) + 1,
        "srank is not the number of nonzero singular values: count how many of the largest it takes to reach "
        "(1 - delta) of their sum": int((sigma > 1e-9).sum()),
    }


@check("srank")
def srank_counts_singular_values_to_cover_1_minus_delta(srank):
    """singular values [5, 3, 1, 1]: srank is 2, 3, 4 for delta 0.25, 0.15, 0.01"""
    phi = _matrix([5.0, 3.0, 1.0, 1.0]).float()  # cumulative share: 0.5, 0.8, 0.9, 1.0
    deltas = (0.25, 0.15, 0.01)
    got = [_value(srank(phi, delta)).item() for delta in deltas]
    if got == [2, 3, 4]:
        return
    variants = [_srank_variants(phi, d) for d in deltas]
    for hint in variants[0]:
        if got == [v[hint] for v in variants]:
            raise AssertionError(hint)
    raise AssertionError(f"for singular values [5, 3, 1, 1] (cumulative share 0.5, 0.8, 0.9, 1.0) srank should be "
                         f"2, 3, 4 at delta 0.25, 0.15, 0.01; got {got}")


@check("srank")
def srank_of_a_low_rank_matrix(srank):
    """a rank-2 feature matrix of 64 samples x 16 features has srank 2"""
    g = gen(5)
    phi = torch.randn(64, 2, generator=g) @ torch.randn(2, 16, generator=g)
    got = _value(srank(phi)).item()
    assert got == 2, f"a [64, 16] matrix of rank 2 should have srank 2 (default delta 0.01), got {got:g}"


@check("srank")
def srank_is_batched_over_leading_axes(srank):
    """features [N, B, d] give one srank per agent, as a tensor"""
    phi = torch.stack([_matrix(s, rows=10, seed=k).float() for k, s in
                       enumerate(([1.0, 0, 0, 0], [1.0, 1.0, 0, 0], [1.0, 1.0, 1.0, 1.0]))])
    out = srank(phi)
    assert isinstance(out, torch.Tensor), ("srank of a batch should return a tensor (the package calls .float() "
                                           "on it)")
    assert out.shape == (3,), (f"features [3, 10, 4] should give 3 values, one per matrix, got shape "
                               f"{list(out.shape)}: torch.linalg.svdvals works on batches of matrices")
    assert out.double().tolist() == [1.0, 2.0, 4.0], f"expected [1, 2, 4], got {out.tolist()}"
