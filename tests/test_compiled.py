"""The compiled whole update (compiled.py) is sac.py's update: same tensors, same results, no recompiles.

Tiny networks keep the compile short; still, each test compiles once (tens of seconds cold on a busy
2-core machine, a few seconds with Inductor's cache warm)."""

import pytest
import torch

from minimal_ofn.compiled import CompiledUpdate, DropoutNoise, compile_update, optimizer_step
from minimal_ofn.config import AUTO_COMPILE_UPDATES, Config
from minimal_ofn.diagnostics import critic_diagnostics
from minimal_ofn.networks import Critic
from minimal_ofn.optim import StackedOptimizer
from minimal_ofn.sac import SAC

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
    g = torch.Generator().manual_seed(100 + k)
    return {"obs": torch.randn(n, BATCH, OBS, generator=g), "action": torch.rand(n, BATCH, ACT, generator=g) * 2 - 1,
            "reward": torch.rand(n, BATCH, generator=g), "next_obs": torch.randn(n, BATCH, OBS, generator=g),
            "terminated": (torch.rand(n, BATCH, generator=g) < 0.2).float()}


def _state(sac):
    """Every tensor the update writes, by name."""
    out = {f"{k}.{name}": p for k, m in sac.modules().items() for name, p in m.state_dict().items()}
    for k, opt in sac.optimizers().items():
        out[f"{k}.step_count"] = opt.step_count
        out.update({f"{k}.m{i}": t for i, t in enumerate(opt.m)})
        out.update({f"{k}.v{i}": t for i, t in enumerate(opt.v)})
    out["log_alpha"] = sac.log_alpha
    out.update({f"grad{i}": g for i, g in enumerate(sac.last_critic_grads)})
    return out


def _run_and_compare(eager, compiled, updates, rtol, atol, reset_at=None):
    n = eager.n
    for k in range(updates):
        if k == reset_at:  # resets write the same tensors in place; the compiled step must see them
            for sac in (eager, compiled):
                sac.reset_agent(2, "full")
                sac.reset_agent(0, "actor")
        batch = _batch(n, k)
        eager.update(batch)
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
    assert critic_diagnostics(compiled, _batch(n, 99), [torch.Generator().manual_seed(7)] * n)["grad_norm"][0] > 0


def test_compiled_update_equals_eager_for_a_mixed_stack_with_a_reset_mid_run():
    eager, compiled = _pair(MIXED)
    assert isinstance(compile_update(compiled), CompiledUpdate) and compiled.update.mode is None  # CPU: plain
    _run_and_compare(eager, compiled, updates=5, rtol=1e-4, atol=1e-5, reset_at=3)


def test_compiled_update_equals_eager_in_float64_through_the_cuda_graph_code_path():
    # mode="reduce-overhead" is what a GPU gets (CUDA graphs, state marked as static addresses); on CPU Inductor
    # skips the graph capture itself, so this runs the GPU code path's compile and checks its updates.
    torch.set_default_dtype(torch.float64)
    try:
        eager, compiled = _pair(MIXED[:3] + MIXED[4:])
        compile_update(compiled, mode="reduce-overhead")
        _run_and_compare(eager, compiled, updates=3, rtol=1e-9, atol=1e-10)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("kind", ["adam", "sgd", "rmsprop", ["rmsprop", "adam", "sgd"], ["sgd", "sgd", "adam"]])
def test_optimizer_step_is_the_stacked_optimizers_step(kind):
    # The tensor-op optimizer of the compiled graph against optim.py, here uncompiled: per-agent lr, beta1, decay.
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(3, 4, 5, generator=g), torch.randn(3, 1, 5, generator=g)]
    mine = [p.clone() for p in params]
    opt = StackedOptimizer(params, 3, [1e-2, 3e-3, 1e-3], [0.9, 0.0, 0.5], 0.99, weight_decay=[0.0, 0.1, 0.0],
                           kind=kind)
    m, v = [torch.zeros_like(p) for p in mine], [torch.zeros_like(p) for p in mine] if kind != "sgd" else []
    steps = torch.zeros(3, 1)
    hyper = {"lr": opt.lr, "beta1": opt.beta1, "beta2": opt.beta2, "weight_decay": opt.weight_decay, "eps": opt.eps}
    for _ in range(4):
        grads = [torch.randn(p.shape, generator=g) for p in params]
        opt.step(grads)
        optimizer_step(mine, grads, m, v, steps, hyper, opt.kind, opt.is_kind)
    for p, q in zip(params, mine):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(steps, opt.step_count)


def test_config_compile_update_installs_the_compiled_update_and_refuses_plugged_functions():
    gens = [torch.Generator().manual_seed(0)]
    cfg = Config(batch_size=8, hidden=8, compile="update")
    sac = SAC([cfg], 3, 1, torch.device("cpu"), gens)
    assert isinstance(sac.update, CompiledUpdate)  # built lazily: compiled at its first call
    assert not isinstance(SAC([cfg.replace(compile="off")], 3, 1, torch.device("cpu"), gens).update, CompiledUpdate)
    with pytest.raises(ValueError, match="compile='off' to run yours"):
        SAC([cfg], 3, 1, torch.device("cpu"), gens, functions={"ofn": lambda f, eps=1e-12: f})


def test_compiled_update_keeps_a_frozen_agent_frozen_under_nan_gradients_as_eager_does():
    # train.py freezes a failed agent (SAC.freeze): its tensors must not move, whatever its gradients hold.
    eager, compiled = _pair(MIXED[:4])
    compile_update(compiled)
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
def test_dropout_noise_gives_the_masks_of_dropout_mask_bit_for_bit_from_the_same_streams(seed):
    # The compiled update draws the uniforms outside its graph and makes the masks inside it: every value and
    # every agent's random stream must be what sac.py's dropout_masks gives (the story's runs depend on it).
    rates = torch.rand(5, generator=torch.Generator().manual_seed(seed)).tolist()
    rates = [0.0, rates[1] * 0.5, 0.0, 0.01, rates[4] * 0.9]  # off, any rate, DroQ's rate, off first
    critic = Critic(5, OBS, ACT, 16, 2, [False] * 5, rates, [False] * 5)
    streams = [[torch.Generator().manual_seed(100 * seed + i) for i in range(5)] for _ in range(2)]
    noise = DropoutNoise(critic, BATCH, streams[1])
    for _ in range(3):  # as an update draws them: three sets in a row
        mine, theirs = critic.dropout_masks(BATCH, streams[0]), noise.masks(noise.draw())
        assert len(mine) == len(theirs) == 2
        for a, b in zip(mine, theirs):
            assert a.shape == b.shape == (5, 2, BATCH, 16) and torch.equal(a, b)
            assert (a[[0, 2]] == 1).all() and set(a[3].unique().tolist()) <= {0.0, torch.tensor(1.0 / 0.99).item()}
    for g0, g1 in zip(*streams):  # the same numbers were used up
        assert torch.equal(torch.rand(4, generator=g0), torch.rand(4, generator=g1))
    no_dropout = DropoutNoise(Critic(2, OBS, ACT, 16, 2, [False] * 2, [0.0] * 2, [False] * 2), BATCH, streams[0])
    assert no_dropout.draw() is None and no_dropout.masks(None) is None


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
    from minimal_ofn.train import Lockstep

    long = Config(env="Pendulum-v1", steps=AUTO_COMPILE_UPDATES // 4 + 10, seed_steps=10, utd=4, batch_size=8, hidden=8)
    short = long.replace(steps=AUTO_COMPILE_UPDATES // 4 + 8)  # one lockstep step short of the threshold
    assert long.compile == "auto" and long.planned_updates() >= AUTO_COMPILE_UPDATES > short.planned_updates()
    assert (long.resolved_compile(), short.resolved_compile()) == ("update", "off")
    assert long.resolved_compile({"ofn": lambda f, eps=1e-12: f}) == "off"  # a learner's function runs eager
    assert long.replace(compile="off").resolved_compile() == "off"
    assert long.replace(compile="default").resolved_compile() == "default"
    assert isinstance(Lockstep([long], progress=False).sac.update, CompiledUpdate)  # built lazily: no compile yet
    assert not isinstance(Lockstep([short], progress=False).sac.update, CompiledUpdate)
    mine = Lockstep([long], progress=False, functions={"ofn": lambda f, eps=1e-12: f})
    assert not isinstance(mine.sac.update, CompiledUpdate)
    assert not isinstance(SAC([long], 3, 1, torch.device("cpu"), [torch.Generator()]).update, CompiledUpdate)
