"""One update, two ways to run it: SAC.learn eager and SAC.learn through torch.compile give the same results, and
both reproduce the golden file (tests/golden.py) recorded before the update was written as one function.

Tiny networks keep the compile short; still, each test compiles once (tens of seconds cold on a busy
2-core machine, a few seconds with Inductor's cache warm)."""

import pytest
import torch

import golden
from minimal_ofn.config import AUTO_COMPILE_UPDATES, Config
from minimal_ofn.diagnostics import critic_diagnostics
from minimal_ofn.networks import Critic, dropout_mask
from minimal_ofn.sac import SAC
from minimal_ofn.streams import Stream

OBS, ACT, BATCH = 5, 3, 8
# The paper's variants side by side in one stack: every switch the compiled graph must honour per agent.
MIXED = [{}, {"ofn": True}, {"critic_dropout": 0.1, "critic_layer_norm": True}, {"critic_beta1": 0.0, "actor_beta1": 0.0},
         {"critic_weight_decay": 0.1}, {"critic_l2": 0.01, "init_temperature": 0.3, "tau": 0.05}]


def _pair(variants, **common):
    configs = [Config(batch_size=BATCH, hidden=16, seed=i, **common, **v) for i, v in enumerate(variants)]

    def make():
        return SAC(configs, OBS, ACT, torch.device("cpu"), [torch.Generator().manual_seed(i) for i in range(len(configs))])

    return make(), make()


def _batch(n, k):
    return golden.batch(n, k)


def _state(sac):
    """Every tensor the update writes, by name, and the last critic gradients."""
    out = golden.state(sac)
    out.update({f"grad{i}": g for i, g in enumerate(sac.critic_grads)})
    return out


def _run_and_compare(eager, compiled, updates, rtol, atol, reset_at=None):
    n = eager.n
    for k in range(updates):
        if k == reset_at:  # resets write the same tensors in place; the compiled step must see them
            for sac in (eager, compiled):
                sac.reset_agent(2, "full")
                sac.reset_agent(0, "actor")
        batch = _batch(n, k)
        assert eager.update(batch) is eager.critic_grads
        compiled.update(batch)
        if k == 0:  # from here on a recompile would be an error (strides, shapes and guards stay stable)
            torch._dynamo.config.error_on_recompile = True
    torch._dynamo.config.error_on_recompile = False
    theirs = _state(compiled)
    for name, mine in _state(eager).items():
        torch.testing.assert_close(theirs[name], mine, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
    e, c = eager.pop_stats(), compiled.pop_stats()
    for key in e:
        torch.testing.assert_close(torch.tensor(c[key]), torch.tensor(e[key]), rtol=rtol, atol=atol)
    # Agents really moved (a step that does nothing would match a reset), and the diagnostics read the grads.
    assert all(abs(x) > 0 for x in e["critic_loss"])
    diag = critic_diagnostics(compiled, _batch(n, 99), Stream(range(n), "diagnostics"), compiled.critic_grads)
    assert diag["grad_norm"][0] > 0


@pytest.mark.parametrize("mode", ["off", "update"])
def test_the_update_reproduces_the_golden_file_recorded_before_it_was_one_function(mode):
    # Eager runs the same ops in the same order as the update it replaced (bitwise here; the tolerance allows
    # for another machine's BLAS). Compiled, Inductor fuses and reorders float32 arithmetic: a few ulps per
    # op, compounded over 4 updates and Adam's division by sqrt(v), stay below 1e-5 absolute on these sizes.
    # The streams' next draws must match exactly: the update consumed the same random numbers.
    want = torch.load(golden.PATH)["eager" if mode == "off" else "compiled"]
    got = golden.run(mode)
    assert got.keys() == want.keys()
    assert torch.equal(got.pop("next_draw"), want.pop("next_draw"))
    tol = dict(rtol=1e-5, atol=1e-6) if mode == "off" else dict(rtol=1e-4, atol=1e-5)
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, **tol, msg=lambda m, name=name: f"{name}: {m}")


def test_compiled_update_equals_eager_for_a_mixed_stack_with_a_reset_mid_run():
    eager, compiled = _pair(MIXED)
    compiled.compile()
    assert compiled.learn_step is not compiled.learn and eager.learn_step == eager.learn
    _run_and_compare(eager, compiled, updates=5, rtol=1e-4, atol=1e-5, reset_at=3)


def test_compiled_update_equals_eager_in_float64_through_the_cuda_graph_code_path():
    # mode="reduce-overhead" is what a GPU gets (CUDA graphs, state marked as static addresses); on CPU Inductor
    # skips the graph capture itself, so this runs the GPU code path's compile and checks its updates.
    torch.set_default_dtype(torch.float64)
    try:
        eager, compiled = _pair(MIXED[:3] + MIXED[4:])
        compiled.compile(mode="reduce-overhead")
        _run_and_compare(eager, compiled, updates=3, rtol=1e-9, atol=1e-10)
    finally:
        torch.set_default_dtype(torch.float32)


def test_config_compile_update_compiles_and_refuses_plugged_functions():
    gens = [torch.Generator().manual_seed(0)]
    cfg = Config(batch_size=8, hidden=8, compile="update")
    sac = SAC([cfg], 3, 1, torch.device("cpu"), gens)
    assert sac.learn_step != sac.learn  # built lazily: compiled at its first call
    off = SAC([cfg.replace(compile="off")], 3, 1, torch.device("cpu"), gens)
    assert off.learn_step == off.learn
    with pytest.raises(ValueError, match="compile='off' to run yours"):
        SAC([cfg], 3, 1, torch.device("cpu"), gens, functions={"ofn": lambda f, eps=1e-12: f})
    with pytest.raises(ValueError, match="compile must be one of auto, off, update"):
        cfg.replace(compile="default").validate()


def test_compiled_update_keeps_a_frozen_agent_frozen_under_nan_gradients_as_eager_does():
    # train.py freezes a failed agent (SAC.freeze): its tensors must not move, whatever its gradients hold.
    eager, compiled = _pair(MIXED[:4])
    compiled.compile()
    for sac in (eager, compiled):
        sac.freeze(1)
    before = [t[1].clone() for t in eager.state_tensors()]
    first = eager.state_tensors()[0][0].clone()
    for k in range(3):
        batch = _batch(4, k)
        batch["obs"][1] = float("nan")
        eager.update(batch)
        compiled.update(batch)
    for sac in (eager, compiled):
        assert all(torch.equal(t[1], b) for t, b in zip(sac.state_tensors(), before))
    for mine, theirs in zip(eager.state_tensors(), compiled.state_tensors()):
        torch.testing.assert_close(theirs[[0, 2, 3]], mine[[0, 2, 3]], rtol=1e-4, atol=1e-5)
    assert not torch.equal(compiled.state_tensors()[0][0], first)  # the others did learn


@pytest.mark.parametrize("seed", range(3))
def test_masks_from_uniforms_are_a_learners_dropout_mask_bit_for_bit_from_the_same_uniforms(seed):
    # The update draws the uniforms before learn (streams.py) and makes the masks inside it (fused, compiled); a
    # learner's dropout_mask draws and makes them in one call from a torch.Generator. Given the same uniforms,
    # the two are the same mask bit for bit, and an agent's masks do not depend on the others of its stack.
    rates = torch.rand(5, generator=torch.Generator().manual_seed(seed)).tolist()
    rates = [0.0, rates[1] * 0.5, 0.0, 0.01, rates[4] * 0.9]  # off, any rate, DroQ's rate, off first
    critic = Critic(5, OBS, ACT, 16, 2, [False] * 5, rates, [False] * 5)
    stream, alone = Stream([10 * seed + i for i in range(5)], "dropout"), Stream([10 * seed + 4], "dropout")
    for _ in range(3):  # as an update draws them: three sets in a row
        u = critic.dropout_uniforms(BATCH, stream)
        masks = critic.dropout_masks(u)
        assert u.shape == (3, 2, 2, BATCH, 16) and len(masks) == 2
        assert torch.equal(u[2], alone.uniform(2, 2, BATCH, 16)[0])  # agent 4's numbers, alone or in a stack
        for k, mask in enumerate(masks):
            assert mask.shape == (5, 2, BATCH, 16) and (mask[[0, 2]] == 1).all()
            for row, i in enumerate((1, 3, 4)):
                g = torch.Generator()
                state = g.get_state()
                learner = dropout_mask(rates[i], (2, 2, BATCH, 16), g)  # the package's dropout_mask ...
                g.set_state(state)
                assert torch.equal(learner, torch.where(torch.rand(2, 2, BATCH, 16, generator=g) >= rates[i],
                                                        torch.ones(()) / (1 - rates[i]), 0.0))  # ... is keep_mask
                want = torch.where(u[row, k] >= rates[i], torch.ones(()) / (1.0 - rates[i]), 0.0)
                assert torch.equal(mask[i], want)
    none = Critic(2, OBS, ACT, 16, 2, [False] * 2, [0.0] * 2, [False] * 2)
    assert none.dropout_uniforms(BATCH, stream) is None and none.dropout_masks(None) is None


@pytest.mark.parametrize("seed", range(4))
def test_planned_updates_counts_what_the_training_loop_runs(seed):
    from minimal_ofn.utd import utd_loop

    g = torch.Generator().manual_seed(seed)
    steps = int(torch.randint(1, 60, (), generator=g))
    cfg = Config(steps=steps, seed_steps=int(torch.randint(0, steps + 1, (), generator=g)),
                 utd=int(torch.randint(1, 5, (), generator=g)), priming_updates=int(torch.randint(0, 3, (), generator=g)))
    assert cfg.planned_updates() == utd_loop(lambda: None, lambda: None, cfg.steps, cfg.utd, cfg.seed_steps) + \
        cfg.priming_updates


def test_compile_auto_compiles_the_long_cpu_runs_of_the_packages_own_functions_only():
    from minimal_ofn.lockstep import Lockstep

    long = Config(env="Pendulum-v1", steps=AUTO_COMPILE_UPDATES // 4 + 10, seed_steps=10, utd=4, batch_size=8, hidden=8)
    short = long.replace(steps=AUTO_COMPILE_UPDATES // 4 + 8)  # one lockstep step short of the threshold
    assert long.compile == "auto" and long.planned_updates() >= AUTO_COMPILE_UPDATES > short.planned_updates()
    assert (long.resolved_compile(), short.resolved_compile()) == ("update", "off")
    assert long.resolved_compile({"ofn": lambda f, eps=1e-12: f}) == "off"  # a learner's function runs eager
    assert long.replace(compile="off").resolved_compile() == "off"
    sac = Lockstep([long], progress=False).sac
    assert sac.learn_step != sac.learn  # built lazily: no compile yet
    for sac in (Lockstep([short], progress=False).sac,
                Lockstep([long], progress=False, functions={"ofn": lambda f, eps=1e-12: f}).sac,
                SAC([long], 3, 1, torch.device("cpu"), [torch.Generator()])):
        assert sac.learn_step == sac.learn
