"""Rows by stack size: what one learning step costs as the number of agents N grows.

Ops per learning step: the aten operators torch.profiler records in one `lockstep.Lockstep.update()` (a replay
batch drawn for every agent, then one SAC update of all of them), eager, counted two ways:

- "kernels": the leaf ops that do work, the ones a GPU launches a kernel for. Left out: views and other
  metadata ops (select, slice, view, ...: no kernel), and the scalar reads `_fused_adamw_`'s CPU kernel makes
  of each tensor's step count inside the kernel (on a GPU the kernel reads them itself). A count that grows
  with N means launches that grow with N, whatever the arithmetic; the random draws (streams.py) and the update
  keep it flat.
- "aten": every aten event, views and nested ops included (what a CPU's dispatcher pays for); it grows with N
  by the fused optimizer's per-agent slices (a view each: cheaper on a CPU than the written-out step's passes).

Milliseconds per agent-update: one lockstep update of all N agents on a fixed batch, divided by N, eager and
compiled (sac.SAC.compile), for each preset's sizes. A stack amortizes the fixed cost of an update (Python,
dispatch, launches) over its agents; the matrix products grow with N."""

from torch.profiler import ProfilerActivity, profile

from ..config import preset
from ..lockstep import Lockstep
from .timing import interleaved_medians, new_sac, random_batch, stack_configs

SCALING_AGENTS = (1, 8, 64)


VIEWS = {"select", "slice", "view", "as_strided", "unsqueeze", "squeeze", "expand", "alias", "t", "transpose",
         "permute", "_reshape_alias", "unbind", "detach", "reshape", "contiguous", "lift_fresh", "_unsafe_view",
         "split", "chunk", "narrow", "view_as", "result_type"}


def is_kernel(event) -> bool:
    """A leaf aten op that does work (the module docstring's "kernels")."""
    name = event.name.removeprefix("aten::")
    if any(c.name.startswith("aten::") for c in event.cpu_children) or name in VIEWS:
        return False
    parent = event.cpu_parent
    while parent is not None and parent.name != "aten::_fused_adamw_":
        parent = parent.cpu_parent
    return not (name == "_local_scalar_dense" and parent is not None)


def ops_per_learning_step(n, device, env="dmc:cheetah-run", critic_dropout=0.01) -> dict:
    """{"kernels", "aten"} ops in one Lockstep.update() of n agents (tutorial preset, dropout on, eager), past a
    short random phase."""
    batch = 32
    configs = [preset("tutorial", env=env, seed=i, seed_steps=batch, batch_size=batch, critic_dropout=critic_dropout,
                      device=device.type, compile="off") for i in range(n)]
    run = Lockstep(configs, progress=False)
    while run.t < batch:
        run.env_step()
    run.update()  # warm-up: first calls allocate
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run.update()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    return {"kernels": sum(map(is_kernel, events)), "aten": len(events)}


def ms_per_agent_update(preset_name, n, device, repeats, block_seconds, warmup, compiled=True) -> dict:
    """Eager (and compiled) ms per agent-update of an n-agent baseline stack at the preset's sizes, interleaved."""
    configs = stack_configs(preset_name, ("baseline",) * n, device)
    batch = random_batch(n, configs[0].batch_size, device)
    sacs = {"eager": new_sac(configs, device)}
    if compiled:
        sacs["compiled"] = new_sac(configs, device)
        sacs["compiled"].compile()
        sacs["compiled"].update(batch)  # the compile, untimed
    seconds = interleaved_medians({k: (lambda s=s: s.update(batch)) for k, s in sacs.items()}, device, repeats,
                                  block_seconds, warmup)
    return {k: 1e3 * s / n for k, s in zip(sacs, seconds)}


def scaling(device, repeats, block_seconds, warmup, agents=SCALING_AGENTS, compiled=True) -> dict:
    return {"agents": list(agents),
            "ops": {n: ops_per_learning_step(n, device) for n in agents},
            "ms": {p: {n: ms_per_agent_update(p, n, device, repeats, block_seconds, warmup, compiled) for n in agents}
                   for p in ("tutorial", "paper")}}


def format_scaling(r: dict) -> str:
    agents = r["agents"]
    lines = ["by stack size N (ops in one eager lockstep.Lockstep.update(), tutorial preset, dropout 0.01, cheetah-run: "
             "kernels = leaf ops that do work, aten = every aten event; ms per agent-update on a fixed batch):",
             f"  {'':<32}" + "".join(f"{f'N={n}':>10}" for n in agents),
             *(f"  {f'ops per learning step, {k}':<32}" + "".join(f"{r['ops'][n][k]:>10}" for n in agents)
               for k in ("kernels", "aten"))]
    for p, rows in r["ms"].items():
        for path in rows[agents[0]]:
            lines.append(f"  {f'{p}, {path} ms/agent-upd':<32}" + "".join(f"{rows[n][path]:>10.2f}" for n in agents))
    lines.append(f"  (ops for N={agents[-1]} over N={agents[0]}: kernels "
                 f"{r['ops'][agents[-1]]['kernels'] / r['ops'][agents[0]]['kernels']:.2f}x, aten "
                 f"{r['ops'][agents[-1]]['aten'] / r['ops'][agents[0]]['aten']:.2f}x; the module docstring says which)")
    return "\n".join(lines)
