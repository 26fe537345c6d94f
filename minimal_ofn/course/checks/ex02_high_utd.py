"""Exercise 02, high UTD: the update-to-data loop and the Monte Carlo return."""

import numpy as np
import torch

from . import check, np_rng
from .training import assert_same_run, reference_rows, train_rows


def _record(utd_loop, steps, utd, seed_steps):
    log = []
    returned = utd_loop(lambda: log.append("E"), lambda: log.append("U"), steps, utd, seed_steps)
    return log, returned


def _expected(steps, utd, first_learning_step):
    log = []
    for t in range(1, steps + 1):
        log.append("E")
        if t >= first_learning_step:
            log += ["U"] * utd
    return log


def _package_log(steps, utd, seed_steps):
    """What the package's loop does: learning starts after the seed_steps-th step (at once when seed_steps <= 0)."""
    return _expected(steps, utd, max(seed_steps, 1))


def _show(log) -> str:
    text = "".join(log)
    return text if len(text) <= 60 else text[:57] + "..."


@check("utd_loop")
def utd_loop_runs_utd_updates_after_every_env_step(utd_loop):
    """without a random phase: utd updates right after each environment step"""
    log, _ = _record(utd_loop, 5, 4, 0)
    envs, updates = log.count("E"), log.count("U")
    assert envs == 5, f"env_step should run `steps` = 5 times, it ran {envs} times"
    if updates == 5:
        raise AssertionError("you run one update per environment step: the UTD ratio is the number of updates "
                             "after every environment step")
    if updates == 4:
        raise AssertionError("you run `utd` updates in total: the UTD ratio is the number of updates after "
                             "every environment step")
    assert updates == 20, f"5 steps at UTD 4 should give 20 updates, got {updates}"
    assert log == _expected(5, 4, 1), (
        f"the updates of a step should come right after that step (E = env step, U = update): expected "
        f"{_show(_expected(5, 4, 1))}, got {_show(log)}")


@check("utd_loop")
def utd_loop_waits_for_the_random_phase(utd_loop):
    """no updates before the buffer holds seed_steps transitions"""
    log, _ = _record(utd_loop, 10, 3, 4)
    # Learning may start right after the seed_steps-th step (as the package does) or one step later.
    if log in (_expected(10, 3, 4), _expected(10, 3, 5)):
        return
    envs = log.count("E")
    assert envs == 10, f"env_step should run `steps` = 10 times (random ones included), it ran {envs} times"
    first = log.index("U") if "U" in log else None
    assert first is not None, "with steps = 10 and seed_steps = 4 there should be updates after the random phase"
    steps_before = log[:first].count("E")
    assert steps_before >= 4, (
        f"the first update came after {steps_before} environment steps: no updates until the buffer holds "
        "seed_steps transitions (the random phase)")
    raise AssertionError(f"steps = 10, utd = 3, seed_steps = 4: expected {_show(_expected(10, 3, 4))} "
                         f"(E = env step, U = update), got {_show(log)}")


@check("utd_loop")
def utd_loop_returns_the_number_of_updates(utd_loop):
    """the right steps and updates, and their count returned (0 when the run ends inside the random phase)"""
    for steps, utd, seed in ((10, 3, 4), (6, 1, 0), (3, 8, 5)):
        log, returned = _record(utd_loop, steps, utd, seed)
        want = _package_log(steps, utd, seed)
        assert log in (want, _expected(steps, utd, seed + 1)), (
            f"steps={steps}, utd={utd}, seed_steps={seed}: expected {_show(want)} (E = env step, U = update), got "
            f"{_show(log)}")
        assert returned == log.count("U"), (
            f"with steps={steps}, utd={utd}, seed_steps={seed} you ran {log.count('U')} updates but returned "
            f"{returned!r}: return the number of updates")


@check("utd_loop")
def utd_loop_on_resume(utd_loop):
    """as train() calls it on a resumed run: seed_steps already passed (0 or negative), zero steps left; fresh"""
    rng = np_rng(3)
    cases = [(0, 3, 5), (4, 2, -7), (3, 1, 0), (0, 2, -3)] + [
        (int(rng.integers(1, 12)), int(rng.integers(1, 6)), int(rng.integers(-10, 12))) for _ in range(4)]
    for steps, utd, seed in cases:
        log, returned = _record(utd_loop, steps, utd, seed)
        want = _package_log(steps, utd, seed)
        assert log in (want, _expected(steps, utd, seed + 1)), (
            f"steps={steps}, utd={utd}, seed_steps={seed} (a resumed run passes seed_steps - steps done, which can "
            f"be 0 or negative: learning has started): expected {_show(want) or 'nothing'}, got {_show(log) or 'nothing'}")
        assert returned == log.count("U"), f"steps={steps}, utd={utd}, seed_steps={seed}: returned {returned!r}, " \
                                           f"ran {log.count('U')} updates"


@check("utd_loop", 2)
def utd_loop_inside_training(utd_loop):
    """a few updates of the real train() with your utd_loop match the same run with the package's"""
    mine = train_rows({"utd_loop": utd_loop})
    try:
        assert_same_run(mine, reference_rows(), "utd_loop")
    except AssertionError:  # learning one step after the random phase is accepted (utd_loop_waits_for_...)
        try:
            assert_same_run(mine, train_rows({"utd_loop": _one_step_later}), "utd_loop")
        except AssertionError:
            raise AssertionError("with your utd_loop plugged into train() (a tiny Pendulum run that logs every 4 "
                                 "steps, so the loop is called once per stretch, with seed_steps - steps done) the "
                                 "run differs from the package's: check the counts the loop is given on later "
                                 "stretches (0 or negative seed_steps mean learning has started)") from None


def _one_step_later(env_step, update, steps, utd, seed_steps):
    n = 0
    for t in range(steps):
        env_step()
        if t >= seed_steps:
            for _ in range(utd):
                update()
                n += 1
    return n


def _returns_reference(rewards, gamma):
    out, running = np.zeros(len(rewards)), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def _as_array(value, n):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise AssertionError(f"discounted_returns should return an array of numbers, got {type(value).__name__}") from None
    assert arr.shape == (n,), f"discounted_returns should give one return per reward ({n}), got shape {arr.shape}"
    return arr


@check("discounted_returns")
def returns_by_hand(discounted_returns):
    """rewards [1, 0, 0, 2] with gamma 0.5 give [1.25, 0.5, 1, 2]"""
    rewards, gamma = [1.0, 0.0, 0.0, 2.0], 0.5
    got = _as_array(discounted_returns(rewards, gamma), 4)
    expected = _returns_reference(rewards, gamma)
    if np.allclose(got, expected):
        return
    forward = np.array([1.0, 0.5, 0.25, 2.125])  # G accumulated from the start instead of to the end
    if np.allclose(got, [3.0, 2.0, 2.0, 2.0]):
        raise AssertionError("the rewards are summed without discount: a reward k steps ahead counts gamma^k")
    if any(np.allclose(got, x) for x in (expected[::-1], forward, forward[::-1])):
        raise AssertionError("the returns come out in the wrong order or sum the wrong rewards: G_t sums the "
                             "rewards from step t to the end, so work backwards from the last reward and store "
                             "G_t at position t")
    if np.allclose(got, [1.25, 0.25, 0.25, 0.25]):
        raise AssertionError("discount relative to t: in G_t the reward at step t + k counts gamma^k, not "
                             "gamma^(t + k)")
    raise AssertionError(f"rewards [1, 0, 0, 2] with gamma 0.5 should give {expected.tolist()}, got {got.tolist()}")


@check("discounted_returns")
def returns_match_the_recursion(discounted_returns):
    """G_t = r_t + gamma * G_{t+1} on a long random episode; gamma 0 and 1"""
    rng = np_rng(0)
    rewards = rng.uniform(0, 1, 300).tolist()
    given = list(rewards)
    got = _as_array(discounted_returns(given, 0.99), 300)
    assert given == rewards, "discounted_returns changed the list of rewards it was given: leave its input alone"
    assert np.allclose(got, _returns_reference(rewards, 0.99), rtol=1e-5, atol=1e-6), (
        "on a 300-step episode with gamma 0.99 the returns do not follow G_t = r_t + gamma * G_(t+1)")
    got = _as_array(discounted_returns(rewards[:5], 0.0), 5)
    assert np.allclose(got, rewards[:5]), "with gamma = 0 each return is its own reward"
    got = _as_array(discounted_returns([1.0, 2.0, 3.0], 1.0), 3)
    assert np.allclose(got, [6.0, 5.0, 3.0]), "with gamma = 1, G_t is the sum of the rewards from t on"


@check("discounted_returns")
def returns_of_numpy_arrays_on_fresh_episodes(discounted_returns):
    """numpy float arrays in (as the package passes them), an array out it can subtract from; fresh episodes"""
    rng = np_rng(4)
    for n, scale in ((1, 1.0), (2, 1e-6), (int(rng.integers(5, 60)), 1e3), (int(rng.integers(5, 60)), 1.0)):
        rewards = scale * rng.standard_normal(n)  # signs change: not a monotone series
        gamma = float(rng.choice([0.0, 1.0, rng.uniform(0.5, 0.999)]))
        given = rewards.copy()
        out = discounted_returns(given, gamma)
        try:
            shifted = out - np.float64(0.5)  # the package subtracts an entropy bonus from the returns
            float(np.mean(out[: max(1, n // 2)]))  # ... and averages the first half
        except TypeError:
            raise AssertionError(f"discounted_returns returned a {type(out).__name__}: the package computes "
                                 "returns - bonus and np.mean(returns[:half]) with it, so return a numpy array") from None
        got = _as_array(shifted, n) + 0.5
        want = _returns_reference(rewards, gamma)
        assert np.allclose(got, want, rtol=1e-6, atol=1e-9 * scale), (
            f"on a fresh {n}-step episode given as a numpy array (gamma {gamma:g}) the returns do not follow "
            "G_t = r_t + gamma * G_(t+1)")


@check("discounted_returns", 2)
def returns_inside_training(discounted_returns):
    """the Monte Carlo diagnostics of a few updates of train() with your function match the package's"""
    metrics = ("mc_return", "mc_soft_return", "q_over_mc")
    assert_same_run(train_rows({"discounted_returns": discounted_returns}), reference_rows(), "discounted_returns",
                    metrics=metrics, rtol=1e-6, atol=1e-6)
