"""Exercise 05, output feature normalization and the effective rank of the critic's features."""

import torch
import torch.nn.functional as F

from . import check, gen, grad_of, tolerance
from .training import assert_same_run, reference_rows, train_rows


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
    assert torch.allclose(out, F.normalize(x, dim=-1, eps=1e-12), atol=1e-5), (
        "the other samples (features not all zero) should come out as phi / ||phi||")


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
    x_ref = x.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(F.normalize(x_ref, dim=-1, eps=1e-12).sum(), x_ref)
    live = x.detach().norm(dim=-1) > 0
    assert torch.allclose(grad[live], ref[live], rtol=1e-4, atol=1e-5), (
        "where the features are not all zero, the gradient should be that of phi / ||phi||")


@check("ofn")
def ofn_on_fresh_features_the_way_the_critic_calls_it(ofn):
    """fresh each grading: [N, 2, B, d] features of tiny, huge and tied values, float64; the meta device"""
    g = gen(7)
    n, b, d = (int(torch.randint(1, k, (1,), generator=g)) for k in (4, 9, 17))
    for dtype, scale in ((torch.float32, 1e-5), (torch.float32, 1e8), (torch.float64, 1.0)):
        x = torch.rand(n, 2, b, d, generator=g, dtype=dtype) * scale
        x[..., -1] = x[..., 0]  # ties
        out = _ofn_out(ofn, x)
        want = F.normalize(x, dim=-1, eps=1e-12)
        assert out.dtype == dtype and torch.allclose(out, want, **tolerance(dtype)), (
            f"on fresh features of size ~{scale:g} ({str(dtype)[6:]}) the output is not phi / ||phi|| (keep the "
            "dtype, and an eps small enough, like the default 1e-12, not to change a tiny feature vector)")
    meta = ofn(torch.empty(n, 2, b, d, device="meta"))
    assert isinstance(meta, torch.Tensor) and meta.device.type == "meta" and meta.shape == (n, 2, b, d), (
        "ofn should work on the device of its input (here the 'meta' device): do not create tensors on the CPU "
        "inside it (torch.tensor(eps) without device=...); clamp_min(eps) works anywhere")


@check("ofn", 2)
def ofn_inside_training(ofn):
    """a few updates of train() with OFN on the critic and your ofn match the package's run"""
    on = {"ofn": True}
    assert_same_run(train_rows({"ofn": ofn}, **on), reference_rows(**on), "ofn")


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


@check("srank")
def srank_on_fresh_spectra(srank):
    """fresh each grading: batches [N, B, d] of known singular values (ties, one dominant, a zero matrix), any delta"""
    g = gen(8)
    n, d = int(torch.randint(2, 5, (1,), generator=g)), int(torch.randint(3, 9, (1,), generator=g))
    spectra = []
    for k in range(n):
        s = torch.rand(d, generator=g).double() * 10 ** float(torch.randint(-3, 3, (1,), generator=g))
        s = s.sort(descending=True).values
        if k == 0:
            s[1:] = s[1]  # ties among some values
        spectra.append(s)
    delta = float(torch.rand(1, generator=g)) * 0.3 + 0.005
    phi = torch.stack([_matrix(sv.tolist(), rows=d + 3, seed=20 + k) for k, sv in enumerate(spectra)]).float()
    sigma = torch.linalg.svdvals(phi.double())
    share = sigma.cumsum(-1) / sigma.sum(-1, keepdim=True)
    margin = (share - (1 - delta)).abs().min()
    want = ((share < 1 - delta).sum(-1) + 1).double()
    out = srank(phi, delta)
    assert isinstance(out, torch.Tensor) and out.shape == (n,), f"features [{n}, {d + 3}, {d}] should give {n} values"
    if margin > 1e-4:  # a share within float32 rounding of the threshold may go either way
        assert out.double().tolist() == want.tolist(), (
            f"on fresh spectra with delta = {delta:.3f} srank should be {want.int().tolist()}, got {out.tolist()}")


@check("srank", 2)
def srank_inside_training(srank):
    """the srank diagnostics of a few updates of train() with your function match the package's"""
    assert_same_run(train_rows({"srank": srank}), reference_rows(), "srank", metrics=("srank", "srank_centered"),
                    rtol=0, atol=0)
