"""One agent's failure stops one agent (train.py's docstring): the others go on exactly as without it."""

import json
import math

import numpy as np
import pytest
import torch
from gymnasium.vector import SyncVectorEnv

from minimal_ofn import sac as sac_mod
from minimal_ofn.config import Config
from minimal_ofn.train import NonFiniteLoss, load_metrics, train

TINY = dict(env="Pendulum-v1", steps=240, seed_steps=120, utd=2, batch_size=32, hidden=32,
            log_every=40, eval_every=120, checkpoint_every=80)
# A mixed stack: agent 1 (OFN) is the one made to fail; agent 2's dropout draws from its own stream.
STACK = [Config(**TINY, seed=3), Config(**TINY, seed=4, ofn=True),
         Config(**TINY, seed=5, critic_dropout=0.1, critic_layer_norm=True)]


def _poisoned(name, after):
    """The package's loss `name`, times NaN for agent i from its call number after[i] on: its gradients are NaN,
    so its parameters turn NaN at that update (the others' losses are multiplied by 1.0: unchanged)."""
    package, calls = getattr(sac_mod, name), [0]

    def loss(*args):
        out = package(*args)
        calls[0] += 1
        scale = torch.ones_like(out)
        for i, k in after.items():
            if calls[0] > k:
                scale[i] = float("nan")
        return out * scale

    return {name: loss}


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def _identical(a, b):
    assert len(a) == len(b) and a
    for ra, rb in zip(_strip(a), _strip(b)):
        assert ra.keys() == rb.keys()
        for k in ra:  # bitwise: one thread on a CPU
            assert ra[k] == rb[k] or (math.isnan(ra[k]) and math.isnan(rb[k])), (k, ra[k], rb[k])


@pytest.mark.parametrize("name, why", [("critic_loss", "critic_loss"), ("actor_loss", "actor_loss"),
                                       ("temperature_loss", "temperature")])
def test_a_failing_agent_leaves_the_others_identical_to_a_stack_without_it(tmp_path, monkeypatch, name, why):
    outs = [tmp_path / f"agent{i}" for i in range(3)]
    sent, step = [], SyncVectorEnv.step
    monkeypatch.setattr(SyncVectorEnv, "step", lambda self, action: sent.append(action.copy()) or step(self, action))
    # 150 updates: inside the log interval (160, 200] at UTD 2 after 120 random steps; found at step 200.
    rows = train(STACK, outs, progress=False, functions=_poisoned(name, {1: 150}))
    acts = np.stack(sent)
    without = train([STACK[0], STACK[2]], progress=False)
    _identical(rows[0], without[0])
    _identical(rows[2], without[1])
    assert [r["step"] for r in rows[0]] == [40, 80, 120, 160, 200, 240]
    # No NaN ever reached an environment; after its failure was found, the failed agent acted zero.
    assert len(acts) == 240 and np.isfinite(acts).all() and not acts[200:, 1].any() and acts[200:, 0].all()
    # The failed agent: its rows end with the failing one, which shows why; its summary says where and why.
    assert [r["step"] for r in rows[1]] == [40, 80, 120, 160, 200]
    assert math.isfinite(rows[1][-2]["critic_loss"]) and not math.isfinite(rows[1][-1][why])
    assert math.isnan(rows[1][-1]["q_policy"])
    assert [r["step"] for r in load_metrics(outs[1])] == [40, 80, 120, 160, 200]
    failed = json.loads((outs[1] / "summary.json").read_text())["failed"]
    assert failed == {"step": 200, "updates": 162, "frozen_at_step": 160, "why": failed["why"]}
    assert why in failed["why"]
    assert all(json.loads((o / "summary.json").read_text())["failed"] is None for o in (outs[0], outs[2]))
    # Its checkpoint holds its last good state, finite, and stays frozen: the state found is kept beside it.
    good = torch.load(outs[1] / "checkpoint.pt", weights_only=False)
    found = torch.load(outs[1] / "checkpoint_nonfinite.pt", weights_only=False)
    assert good["shared"]["t"] == 240 and good["failed"] == failed
    actor = {k: v for k, v in good["stacked"]["nets"]["actor"].items()}
    assert all(torch.isfinite(v).all() for v in actor.values())
    assert not all(torch.isfinite(v).all() for v in found["stacked"]["nets"]["actor"].values()) or \
        not all(torch.isfinite(v).all() for v in found["stacked"]["nets"]["critic"].values()) or \
        not math.isfinite(found["stacked"]["log_alpha"])


class _NaNGradient(torch.autograd.Function):
    """The identity, whose gradient is NaN for one agent: a finite loss that turns that agent's parameters NaN."""

    @staticmethod
    def forward(ctx, x, agent):
        ctx.agent = agent
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        g[ctx.agent] = float("nan")
        return g, None


def test_parameters_turned_nan_by_the_last_update_before_a_log_are_found_at_that_log():
    calls = [0]

    def actor_loss(*args):  # the last loss of an update: nothing after it in that update sees the NaN
        calls[0] += 1
        out = sac_mod.actor_loss(*args)
        return _NaNGradient.apply(out, 1) if calls[0] == 82 else out  # update 82: the last one before step 160

    rows = train(STACK, progress=False, functions={"actor_loss": actor_loss})
    without = train([STACK[0], STACK[2]], progress=False)
    _identical(rows[0], without[0])
    _identical(rows[2], without[1])
    assert all(math.isfinite(r[k]) for r in rows[1] for k in ("critic_loss", "actor_loss", "temperature"))
    assert [r["step"] for r in rows[1]] == [40, 80, 120, 160]


def test_a_failed_agent_is_frozen_at_its_last_good_state_and_stays_frozen_on_resume(tmp_path):
    outs = [tmp_path / f"agent{i}" for i in range(3)]
    poison = _poisoned("critic_loss", {1: 150})
    train(STACK, outs, progress=False, functions=poison, until=200)  # fails at 200, checkpoint at 200
    frozen = torch.load(outs[1] / "checkpoint.pt", weights_only=False)["stacked"]
    rows = train(STACK, outs, resume=True, progress=False, functions=poison)
    without = train([STACK[0], STACK[2]], progress=False)
    _identical(rows[0], without[0])
    _identical(rows[2], without[1])
    after = torch.load(outs[1] / "checkpoint.pt", weights_only=False)["stacked"]
    for part in ("nets", "opt"):  # parameters, targets, Adam moments and step counts: unchanged
        flat = zip(torch.utils._pytree.tree_leaves(frozen[part]), torch.utils._pytree.tree_leaves(after[part]))
        assert all(torch.equal(a, b) for a, b in flat)
    assert torch.equal(frozen["log_alpha"], after["log_alpha"])
    assert [r["step"] for r in rows[1]] == [40, 80, 120, 160, 200]


def test_when_every_agent_has_failed_the_run_stops_with_one_line_keeping_the_metrics(tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    poison = _poisoned("critic_loss", {0: 50, 1: 150})  # agent 0 is found at step 160, agent 1 at 200
    with pytest.raises(NonFiniteLoss) as err:
        train(STACK[:2], outs, progress=False, functions=poison)
    assert "\n" not in str(err.value) and "non-finite loss at step 200" in str(err.value)
    assert str(outs[1]) in str(err.value) and str(outs[0]) not in str(err.value)
    assert [r["step"] for r in load_metrics(outs[1])] == [40, 80, 120, 160, 200]
    assert (outs[1] / "checkpoint_nonfinite.pt").exists() and not (outs[1] / "summary.json").exists()


def _nan_for_agent(batch, i):
    batch = {k: v.clone() for k, v in batch.items()}
    batch["obs"][i] = float("nan")  # NaN losses and gradients for agent i only
    return batch


@pytest.mark.parametrize("path", ["fused", "readable", "sgd"])
def test_a_frozen_agent_keeps_its_state_under_nan_gradients_and_the_others_are_untouched(path):
    from minimal_ofn import optim
    from test_compiled import MIXED, _batch

    fns = {"adam_step": lambda *args: optim.adam_step(*args)} if path == "readable" else None  # not fused
    configs = [Config(batch_size=8, hidden=16, seed=i, optimizer="sgd" if path == "sgd" else "adam", **v)
               for i, v in enumerate(MIXED[1:4])]

    def make():
        return sac_mod.SAC(configs, 5, 3, torch.device("cpu"), [torch.Generator().manual_seed(i) for i in range(3)],
                           fns)

    frozen, free = make(), make()
    assert frozen.critic_opt.fused is (path == "fused")
    for sac in (frozen, free):  # the target critic is now apart from the critic: Polyak would move it
        sac.update(_batch(3, 9))
    frozen.freeze(1)
    before = [t[1].clone() for t in frozen.state_tensors()]
    for k in range(3):
        frozen.update(_nan_for_agent(_batch(3, k), 1))
        free.update(_batch(3, k))
    assert not all(math.isfinite(x) for x in frozen.pop_stats()["critic_loss"])  # it really saw NaN
    mine, theirs = frozen.state_tensors(), free.state_tensors()
    assert all(torch.equal(t[1], b) for t, b in zip(mine, before))  # parameters, targets, moments, steps, alpha
    assert not all(torch.equal(t[1], b) for t, b in zip(theirs, before))  # (the same agent, not frozen, moves)
    assert all(torch.equal(t[[0, 2]], u[[0, 2]]) for t, u in zip(mine, theirs))  # bitwise
