"""The golden update: a mixed stack's state after a few eager and a few compiled updates, from fixed seeds.

`python -m tests.golden` (from the repository root) writes tests/data/golden_update.pt; tests/test_compiled.py
checks the update against it. Recorded once before a change that must keep the update's numbers, and again
(said in the commit) where the random streams change on purpose."""

import pathlib

import torch

from minimal_ofn.config import Config
from minimal_ofn.sac import SAC
from minimal_ofn.streams import NAMES

PATH = pathlib.Path(__file__).parent / "data" / "golden_update.pt"
OBS, ACT, BATCH, UPDATES = 5, 3, 8, 4
# adam, beta1 0, rmsprop, sgd (with momentum), ofn, dropout + layer norm, l2, weight decay
MIXED = [{}, {"critic_beta1": 0.0, "actor_beta1": 0.0}, {"critic_optimizer": "rmsprop"},
         {"critic_optimizer": "sgd", "critic_beta1": 0.9, "critic_lr": 1e-2}, {"ofn": True},
         {"critic_dropout": 0.1, "critic_layer_norm": True}, {"critic_l2": 0.01, "tau": 0.05},
         {"critic_weight_decay": 0.1, "init_temperature": 0.3}]


def make_sac(compile_mode="off"):
    configs = [Config(batch_size=BATCH, hidden=16, seed=i, compile=compile_mode, **v) for i, v in enumerate(MIXED)]
    return SAC(configs, OBS, ACT, torch.device("cpu"), [torch.Generator().manual_seed(i) for i in range(len(MIXED))])


def batch(n, k):
    g = torch.Generator().manual_seed(100 + k)
    return {"obs": torch.randn(n, BATCH, OBS, generator=g), "action": torch.rand(n, BATCH, ACT, generator=g) * 2 - 1,
            "reward": torch.rand(n, BATCH, generator=g), "next_obs": torch.randn(n, BATCH, OBS, generator=g),
            "terminated": (torch.rand(n, BATCH, generator=g) < 0.2).float()}


def state(sac) -> dict:
    """Every tensor an update writes, by name, and the streams' next numbers (the random draws consumed)."""
    out = {f"{k}.{name}": p.detach().clone() for k, m in sac.modules().items() for name, p in m.state_dict().items()}
    for k, opt in sac.optimizers().items():
        out[f"{k}.step_count"] = opt.step_count.clone()
        out.update({f"{k}.m{i}": t.clone() for i, t in enumerate(opt.m)})
        out.update({f"{k}.v{i}": t.clone() for i, t in enumerate(opt.v)})
    out["log_alpha"] = sac.log_alpha.detach().clone()
    out["next_draw"] = torch.cat([getattr(sac.streams, name).bits(4) for name in NAMES], 1)
    return out


def run(compile_mode="off") -> dict:
    sac = make_sac(compile_mode)
    for k in range(UPDATES):
        sac.update(batch(sac.n, k))
    return state(sac)


if __name__ == "__main__":
    torch.manual_seed(0)
    PATH.parent.mkdir(exist_ok=True)
    torch.save({"eager": run("off"), "compiled": run("update")}, PATH)
    print(f"wrote {PATH}")
