"""Exercise 03, momentum: Adam by hand, and the config switch for Adam without momentum."""

import dataclasses

import torch

from . import check, gen, tolerance
from .training import assert_same_run, reference_rows, train_rows


def _adam(p, g, m, v, t, lr, beta1, beta2, eps=1e-8):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    p = p - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    return p, m, v


def _run_against_torch(adam_step, beta1, steps=5, lr=0.01):
    g = gen(0)
    start = torch.randn(4, 3, generator=g)
    grads = [torch.randn(4, 3, generator=g) * (k + 1) for k in range(steps)]
    ref = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=lr, betas=(beta1, 0.999), eps=1e-8)
    p, m, v = start.clone(), torch.zeros(4, 3), torch.zeros(4, 3)
    for t, grad in enumerate(grads, start=1):
        out = adam_step(p, grad.clone(), m, v, t, lr, beta1, 0.999, 1e-8)
        assert isinstance(out, tuple) and len(out) == 3, "adam_step should return (param, m, v)"
        p, m, v = out
        ref.grad = grad.clone()
        opt.step()
    return p, m, v, ref.detach(), grads


@check("adam_step")
def adam_matches_torch_with_momentum(adam_step):
    """five steps with beta1 = 0.9 match torch.optim.Adam"""
    p, _, _, ref, grads = _run_against_torch(adam_step, 0.9)
    if torch.allclose(p, ref, rtol=1e-4, atol=1e-6):
        return
    raise AssertionError("five Adam steps with beta1 = 0.9 do not match torch.optim.Adam: check both moment "
                         "updates, the bias correction (divide by 1 - beta^t, with t counting from 1) and that "
                         "eps is added after the square root")


@check("adam_step")
def adam_without_momentum_uses_the_current_gradient(adam_step):
    """beta1 = 0: the first moment is the latest gradient alone (matches torch.optim.Adam)"""
    p, m, _, ref, grads = _run_against_torch(adam_step, 0.0)
    assert torch.allclose(m, grads[-1], rtol=1e-5, atol=1e-6), (
        "with beta1 = 0 the first moment m must be the latest gradient alone, but yours still remembers earlier "
        "gradients: this Adam still has momentum (is beta1 used where m is updated?)")
    assert torch.allclose(p, ref, rtol=1e-4, atol=1e-6), "five steps with beta1 = 0 do not match torch.optim.Adam"


@check("adam_step")
def adam_first_step_has_size_lr(adam_step):
    """the first step moves every weight by about lr, against its gradient (bias correction)"""
    p0 = torch.zeros(10)
    grad = torch.linspace(-3, 3, 10) + 0.05  # no zero gradients
    out = adam_step(p0.clone(), grad, torch.zeros(10), torch.zeros(10), 1, 0.1, 0.9, 0.999, 1e-8)
    p1 = out[0]
    assert torch.allclose(p1, -0.1 * grad.sign(), rtol=1e-3), (
        "at t = 1 the bias-corrected moments are g and g^2, so the first step is lr * g / |g|: every weight "
        f"should move by lr = 0.1 against its gradient, yours moved by {(p1 - p0).abs().min().item():.3g} to "
        f"{(p1 - p0).abs().max().item():.3g}")


@check("adam_step")
def adam_takes_hyperparameters_per_agent(adam_step):
    """lr, beta1, beta2 and t as [N, 1] tensors, one row per agent (how the package calls it)"""
    g = gen(1)
    p, grad = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    m, v = torch.randn(3, 6, generator=g) * 0.1, torch.rand(3, 6, generator=g) * 0.1
    lr, beta1 = torch.tensor([[1e-3], [1e-2], [3e-4]]), torch.tensor([[0.9], [0.0], [0.5]])
    beta2, t = torch.full((3, 1), 0.999), torch.tensor([[3.0], [1.0], [7.0]])
    out = adam_step(p.clone(), grad.clone(), m.clone(), v.clone(), t, lr, beta1, beta2, 1e-8)
    expected = _adam(p, grad, m, v, t, lr, beta1, beta2)
    for name, got, want in zip(("param", "m", "v"), out, expected):
        assert isinstance(got, torch.Tensor) and got.shape == want.shape, (
            f"with per-agent tensors the returned {name} should keep the shape {list(want.shape)}")
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7), (
            f"with lr, beta1, beta2 and t given per agent as [N, 1] tensors the returned {name} is wrong: use "
            "tensor arithmetic (**, .sqrt()) rather than math functions, so every row gets its own numbers")


@check("adam_step")
def adam_survives_exact_zero_gradients(adam_step):
    """a unit whose gradient is exactly 0 from the first step on (a dead ReLU) stays put, with no NaN"""
    g = gen(6)
    p = torch.randn(3, 8, generator=g)
    grad = torch.randn(3, 8, generator=g)
    grad[:, 2] = 0.0  # a dead unit
    grad[1] = 0.0  # an agent whose whole gradient is zero at its first update
    m, v = torch.zeros(3, 8), torch.zeros(3, 8)
    lr, beta1, beta2 = torch.full((3, 1), 1e-2), torch.full((3, 1), 0.9), torch.full((3, 1), 0.999)
    expected = _adam(p, grad, m, v, torch.ones(3, 1), lr, beta1, beta2)[0]
    out = adam_step(p.clone(), grad.clone(), m.clone(), v.clone(), torch.ones(3, 1), lr, beta1, beta2, 1e-8)
    new_p = out[0]
    assert torch.isfinite(new_p).all(), (
        "a zero gradient at the first step gave NaN: m and v are both 0 there, so 0 / 0 unless eps is added to "
        "the square root of v before dividing")
    assert torch.equal(new_p[:, 2], p[:, 2]) and torch.equal(new_p[1], p[1]), (
        "a weight whose gradient is exactly 0 (with m and v still 0) must not move")
    assert torch.allclose(new_p, expected, rtol=1e-4, atol=1e-7), "the other weights should take a normal Adam step"


@check("adam_step")
def adam_over_many_steps_on_fresh_tiny_and_huge_gradients(adam_step):
    """fresh each grading: gradients between 0 and 1e-4 (where eps matters), huge ones, zeros, ties; steps chained"""
    g = gen(7)
    for case, scale in enumerate((1e-5, 1e4, 1.0)):
        n, d = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g))
        p, m, v = torch.randn(n, 2, d, generator=g), torch.zeros(n, 2, d), torch.zeros(n, 2, d)
        lr = 10 ** (-4 * torch.rand(n, 1, 1, generator=g) - 1)
        beta1 = torch.rand(n, 1, 1, generator=g) * 0.99
        beta2 = 0.9 + 0.0999 * torch.rand(n, 1, 1, generator=g)
        ref = (p.clone(), m.clone(), v.clone())
        for t in range(1, 5):
            grad = scale * torch.rand(n, 2, d, generator=g)
            grad[..., 0] = 0.0 if t % 2 else grad[..., -1]  # zeros, then a tie
            tt = torch.full((n, 1, 1), float(t))
            ref = _adam(ref[0], grad, ref[1], ref[2], tt, lr, beta1, beta2)
            out = adam_step(p, grad, m, v, tt, lr, beta1, beta2, 1e-8)
            assert isinstance(out, tuple) and len(out) == 3, "adam_step should return (param, m, v)"
            p, m, v = out
            for name, got, want in zip(("param", "m", "v"), out, ref):
                assert isinstance(got, torch.Tensor) and got.shape == want.shape, (
                    f"the returned {name} should keep the parameter's shape {list(want.shape)}")
                tol = tolerance(torch.float32)
                assert torch.allclose(got, want, rtol=1e-4, atol=tol["atol"] * scale ** (2 if name == "v" else 1)
                                      if name != "param" else 1e-6), (
                    f"at step {t} with gradients of size ~{scale:g} (fresh, per-agent lr and betas, steps chained "
                    f"on your own outputs) the returned {name} is wrong"
                    + (": with gradients below ~1e-4 eps matters: add it after the square root of v-hat"
                       if scale < 1 and name == "param" else ""))


@check("adam_step", 2)
def adam_inside_training(adam_step):
    """a few updates of the real train() with your adam_step match the same run with the package's"""
    assert_same_run(train_rows({"adam_step": adam_step}), reference_rows(), "adam_step")


def _config():
    from minimal_ofn.config import Config

    g = gen(8)
    b1, b1a, b2 = (0.5 + 0.49 * torch.rand(3, generator=g)).tolist()
    return Config(utd=int(torch.randint(1, 64, (1,), generator=g)), critic_beta1=round(b1, 4), actor_beta1=round(b1a, 4),
                  beta2=round(0.99 + b2 / 100, 5), critic_lr=float(10 ** -torch.randint(2, 5, (1,), generator=g)))


@check("without_momentum")
def without_momentum_zeroes_beta1_of_critic_and_actor(without_momentum):
    """critic_beta1 and actor_beta1 become 0"""
    out = without_momentum(_config())
    assert dataclasses.is_dataclass(out), f"without_momentum should return a Config, got {type(out).__name__}"
    if out.beta2 == 0:
        raise AssertionError("beta2 is the second moment (the per-weight step scale), not momentum: leave it as is")
    assert out.critic_beta1 == 0 and out.actor_beta1 == 0, (
        f"both the critic's and the actor's Adam should lose momentum; got critic_beta1 = {out.critic_beta1}, "
        f"actor_beta1 = {out.actor_beta1}")


@check("without_momentum")
def without_momentum_changes_nothing_else(without_momentum):
    """every other field as it was, and the config passed in is left unchanged (a copy is returned)"""
    cfg = _config()
    before = dataclasses.asdict(cfg)
    out = without_momentum(cfg)
    assert dataclasses.asdict(cfg) == before, (
        "the config you were given changed: return a changed copy (Config.replace) and keep the original, "
        "which the baseline run still uses")
    assert dataclasses.is_dataclass(out), f"without_momentum should return a Config, got {type(out).__name__}"
    changed = {k for k, v in dataclasses.asdict(out).items() if before[k] != v} - {"critic_beta1", "actor_beta1"}
    assert not changed, f"only the two beta1 fields should change, but so did: {', '.join(sorted(changed))}"
    assert out.critic_beta1 == 0 and out.actor_beta1 == 0, "both beta1 fields should become 0"


@check("without_momentum")
def without_momentum_inside_training(without_momentum):
    """train() on your config matches the package's run with both beta1 = 0"""
    cfg = tiny_config_for_momentum()
    out = without_momentum(cfg)
    assert dataclasses.is_dataclass(out), f"without_momentum should return a Config, got {type(out).__name__}"
    assert_same_run(train_rows(config=out), reference_rows(critic_beta1=0.0, actor_beta1=0.0), "without_momentum")


def tiny_config_for_momentum():
    from .training import tiny_config

    return tiny_config()
