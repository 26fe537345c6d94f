"""Exercise 01, SAC at UTD 1: the soft Q target and the Polyak update."""

import torch

from . import check, gen, tolerance
from .training import assert_same_run, reference_rows, train_rows

N, B = 3, 4  # three agents, so the twin axis (size 2) cannot be confused with the agent axis


def _target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    # y = r + gamma (1 - d) (min_j Qbar_j(s', a') - alpha log pi(a'|s'))
    return reward + gamma * (1.0 - terminated) * (next_q.min(dim=1).values - alpha * next_log_prob)


def _call_target(soft_q_target, *args):
    try:
        y = soft_q_target(*args)
    except RuntimeError as err:
        if "size of tensor" not in str(err):
            raise
        raise AssertionError(f"the shapes do not line up ({err}): next_q is [N, 2, B], with the twin critics on "
                             "axis 1, and the target is one number per agent and sample, [N, B]") from None
    assert isinstance(y, torch.Tensor), f"soft_q_target should return a tensor, got {type(y).__name__}"
    assert y.shape == (N, B), (
        f"soft_q_target should return one target per agent and sample, shape [N, B] = [{N}, {B}], got "
        f"{list(y.shape)}: next_q is [N, 2, B], with the twin critics on axis 1")
    return y


def _inputs(terminated):
    g = gen(1)
    reward = torch.rand(N, B, generator=g)
    next_q = 20 + 10 * torch.rand(N, 2, B, generator=g)
    next_log_prob = torch.randn(N, B, generator=g)
    return reward, terminated, next_q, next_log_prob, torch.full((N, 1), 0.2), torch.full((N, 1), 0.99)


@check("soft_q_target")
def target_does_not_bootstrap_from_terminal_states(soft_q_target):
    """terminated = 1 gives the reward alone; terminated = 0 bootstraps"""
    args = _inputs(torch.ones(N, B))
    y = _call_target(soft_q_target, *args)
    assert torch.allclose(y, args[0], atol=1e-5), (
        "where terminated = 1 there is no next state: the target must be the reward alone. "
        "Mask the bootstrapped part with the terminated flag.")
    mixed = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    args = _inputs(mixed)
    y = _call_target(soft_q_target, *args)
    assert torch.allclose(y, _target(*args), atol=1e-4), (
        "with a mix of terminal and live transitions, the live ones (terminated = 0) must bootstrap and "
        "the terminal ones must not: check which way round the mask goes")


@check("soft_q_target")
def target_takes_the_smaller_twin(soft_q_target):
    """the target uses the smaller of the two target critics"""
    low, high = torch.full((N, B), 1.0), torch.full((N, B), 5.0)
    high[:, 1] = 0.0  # the second critic is the smaller one on sample 1
    low[:, 1] = 4.0
    next_q = torch.stack([low, high], dim=1)  # [N, 2, B]
    zeros = torch.zeros(N, B)
    y = _call_target(soft_q_target, zeros, zeros, next_q, zeros, torch.zeros(N, 1), torch.ones(N, 1))
    expected = next_q.min(dim=1).values
    if torch.allclose(y, next_q.max(dim=1).values):
        raise AssertionError("you took the larger of the twin critics: clipped double Q takes the smaller one, "
                             "which is what counters overestimation")
    if torch.allclose(y, next_q.mean(dim=1)):
        raise AssertionError("you averaged the twin critics: clipped double Q takes the smaller one")
    if torch.allclose(y, low) or torch.allclose(y, high):
        raise AssertionError("the target uses only one of the twin critics: take the smaller of the two, "
                             "per sample")
    assert torch.allclose(y, expected, atol=1e-5), "the target should be the per-sample minimum over the twin axis"


@check("soft_q_target")
def target_subtracts_the_entropy_term(soft_q_target):
    """the soft value is min Q minus alpha * log pi, discounted together"""
    reward, terminated = torch.ones(N, B), torch.zeros(N, B)
    next_q = torch.full((N, 2, B), 2.0)
    log_prob = torch.tensor([-1.5, 0.5, 2.0, -3.0]).expand(N, B)
    alpha, gamma = torch.full((N, 1), 0.3), torch.full((N, 1), 0.9)
    y = _call_target(soft_q_target, reward, terminated, next_q, log_prob, alpha, gamma)
    if torch.allclose(y, reward + gamma * (2.0 + alpha * log_prob)):
        raise AssertionError("the sign of the entropy term is flipped: the soft value subtracts alpha * log pi "
                             "(an entropy bonus, since log pi is low for a spread-out policy)")
    if torch.allclose(y, reward + gamma * 2.0 - alpha * log_prob):
        raise AssertionError("the entropy term belongs to the next state, so it is discounted with min Q: "
                             "put it inside the gamma * (...)")
    if torch.allclose(y, reward + gamma * (2.0 - log_prob)):
        raise AssertionError("the entropy term is scaled by the temperature alpha")
    assert torch.allclose(y, _target(reward, terminated, next_q, log_prob, alpha, gamma), atol=1e-5), (
        "with equal twins the target should be r + gamma * (Q - alpha * log pi)")


@check("soft_q_target")
def target_matches_the_reference_per_agent(soft_q_target):
    """random inputs, a different alpha and gamma per agent ([N, 1]), and plain floats"""
    g = gen(2)
    reward, log_prob = torch.randn(N, B, generator=g), torch.randn(N, B, generator=g)
    terminated = (torch.rand(N, B, generator=g) < 0.3).float()
    next_q = 10 * torch.randn(N, 2, B, generator=g)
    alpha, gamma = torch.tensor([[0.1], [0.5], [1.0]]), torch.tensor([[0.9], [0.99], [0.5]])
    inputs = [x.clone() for x in (reward, terminated, next_q, log_prob)]
    y = _call_target(soft_q_target, reward, terminated, next_q, log_prob, alpha, gamma)
    assert all(torch.equal(a, b) for a, b in zip(inputs, (reward, terminated, next_q, log_prob))), (
        "soft_q_target changed one of its inputs in place: the batch is used again after the target")
    assert torch.allclose(y, _target(reward, terminated, next_q, log_prob, alpha, gamma), atol=1e-4), (
        "with a different alpha and gamma per agent (tensors of shape [N, 1]) the target is wrong: "
        "does gamma multiply the whole bootstrapped part, and do alpha and gamma broadcast per agent?")
    y = _call_target(soft_q_target, reward, terminated, next_q, log_prob, 0.2, 0.99)
    assert torch.allclose(y, _target(reward, terminated, next_q, log_prob, 0.2, 0.99), atol=1e-4), (
        "with alpha and gamma given as plain floats the target is wrong")


@check("soft_q_target")
def target_matches_the_reference_on_fresh_edge_cases(soft_q_target):
    """fresh inputs each grading: zeros, tiny and huge values, tied twins, all or no terminals, float64"""
    g = gen(11)
    for case in range(6):
        n, b = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 9, (1,), generator=g))
        dtype = torch.float64 if case == 5 else torch.float32
        scale = (1.0, 1e-6, 1e4, 0.0, 1.0, 1.0)[case]
        reward = scale * torch.randn(n, b, generator=g, dtype=dtype)
        next_q = scale * torch.randn(n, 2, b, generator=g, dtype=dtype)
        if case == 4:
            next_q[:, 1] = next_q[:, 0]  # tied twins
        terminated = (torch.rand(n, b, generator=g) < (0.0, 0.5, 0.5, 1.0, 0.5, 0.3)[case]).to(dtype)
        log_prob = torch.randn(n, b, generator=g, dtype=dtype) * (10.0 if case == 2 else 1.0)
        alpha = torch.rand(n, 1, generator=g, dtype=dtype) * (case != 3)
        gamma = torch.rand(n, 1, generator=g, dtype=dtype)
        want = _target(reward, terminated, next_q, log_prob, alpha, gamma)
        y = soft_q_target(reward, terminated, next_q, log_prob, alpha, gamma)
        assert isinstance(y, torch.Tensor) and y.shape == want.shape, (
            f"with N = {n} agents and B = {b} samples the target should be [N, B] = {list(want.shape)}, got "
            f"{list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        assert torch.allclose(y.to(dtype), want, **tolerance(dtype)) and y.dtype == dtype, (
            f"on fresh inputs (case {case}: {('ordinary', 'tiny', 'huge', 'zeros, all terminal', 'tied twins', 'float64')[case]}"
            f" values, seed of this grading) the target differs from r + gamma (1 - d) (min_j Q_j - alpha log pi)"
            f"{' or changes the dtype' if y.dtype != dtype else ''}")


@check("soft_q_target", 2)
def target_inside_training(soft_q_target):
    """a few updates of the real train() with your soft_q_target match the same run with the package's"""
    assert_same_run(train_rows({"soft_q_target": soft_q_target}), reference_rows(), "soft_q_target")


def _lists(k=3):
    g = gen(k)
    shapes = [(N, 4, 3), (N, 3), (N, 2, 2, 2)]
    return [torch.randn(s, generator=g) for s in shapes], [torch.randn(s, generator=g) for s in shapes]


def _tau(*values):
    return torch.tensor(values if len(values) == N else values * N, dtype=torch.float32)


@check("polyak_update")
def polyak_moves_the_target_a_step_tau_toward_the_online_network(polyak_update):
    """target <- (1 - tau) target + tau online, in place"""
    targets, onlines = [torch.zeros(N, 3)], [torch.full((N, 3), 10.0)]
    returned = polyak_update(targets, onlines, _tau(0.1))
    value = targets[0][0, 0].item()
    if abs(value - 9.0) < 1e-4:
        raise AssertionError("tau is on the wrong side: tau is the (small) weight of the online network, "
                             "so the target moves a step tau toward it")
    if value == 0.0:
        hint = " (you return new tensors: the package keeps the target tensors and expects them changed)" \
            if returned is not None else ""
        raise AssertionError("the target tensors did not change: update them in place, rebinding a loop "
                             "variable changes nothing" + hint)
    assert torch.allclose(onlines[0], torch.full((N, 3), 10.0)), "the online network must not change"
    assert abs(value - 1.0) < 1e-4, f"with target 0, online 10 and tau 0.1 the target should become 1, got {value:g}"


@check("polyak_update")
def polyak_updates_every_tensor_with_each_agents_tau(polyak_update):
    """every pair of tensors, tau [N] one per agent (broadcast over the leading axis); tau = 1 copies, 0 keeps"""
    targets, onlines = _lists()
    before = [t.clone() for t in targets]
    online_before = [p.clone() for p in onlines]
    tau = _tau(0.25, 0.005, 1.0)
    try:
        polyak_update(targets, onlines, tau)
    except RuntimeError as err:
        if "size of tensor" in str(err) or "broadcast" in str(err):
            raise AssertionError("tau holds one number per agent [N]: view it as [N, 1, ...] so it lines up with "
                                 "the leading (agent) axis of every tensor") from None
        raise
    for t, t0, p, p0 in zip(targets, before, onlines, online_before):
        assert torch.allclose(p, p0), "the online network must not change"
        w = tau.view(-1, *([1] * (t.dim() - 1)))
        assert torch.allclose(t, (1 - w) * t0 + w * p, atol=1e-6), (
            "not every target tensor moved by its agent's tau toward its online tensor: loop over all pairs, and "
            "let tau[i] act on agent i (the leading axis)")
    targets, onlines = _lists(4)
    before = [t.clone() for t in targets]
    polyak_update(targets, onlines, _tau(0.0))
    assert all(torch.allclose(t, t0) for t, t0 in zip(targets, before)), "with tau = 0 the target must not move"


@check("polyak_update")
def polyak_works_on_network_parameters(polyak_update):
    """works on net.parameters() (generators of tensors that require grad, as the package passes them), fresh tau"""
    g = gen(5)
    n = int(torch.randint(1, 6, (1,), generator=g))
    shapes = [(n, 3, 2), (n, 1, 2), (n, 2, 5, 4)]
    target = [torch.randn(s, generator=g).requires_grad_(True) for s in shapes]
    online = [torch.randn(s, generator=g).requires_grad_(True) for s in shapes]
    tau = torch.rand(n, generator=g)
    tau[0] = 0.005
    w = [tau.view(-1, *([1] * (len(s) - 1))) for s in shapes]
    expected = [(1 - wk) * t.detach() + wk * p.detach() for t, p, wk in zip(target, online, w)]
    try:
        polyak_update((t for t in target), (p for p in online), tau)
    except RuntimeError as err:
        if "in-place" in str(err) or "inplace" in str(err) or "requires grad" in str(err):
            raise AssertionError("changing a parameter that requires grad in place needs autograd switched off: "
                                 "the target update is not something to differentiate") from None
        raise
    except TypeError as err:
        raise AssertionError(f"the package passes net.parameters(), a generator, not a list ({err}): loop over the "
                             "pairs with zip, without len() or indexing") from None
    for t, e in zip(target, expected):
        assert torch.allclose(t.detach(), e, rtol=1e-5, atol=1e-6), (
            "the target network's parameters did not move by each agent's tau (given as net.parameters() "
            "generators, tau [N] fresh each grading)")


@check("polyak_update", 2)
def polyak_inside_training(polyak_update):
    """a few updates of the real train() with your polyak_update match the same run with the package's"""
    fast = {"tau": 0.3}  # a target that moves enough in a few updates for a do-nothing update to show
    assert_same_run(train_rows({"polyak_update": polyak_update}, **fast), reference_rows(**fast), "polyak_update")
