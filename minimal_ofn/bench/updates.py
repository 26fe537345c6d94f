"""Update rows: ours against the plain reference per agent-update, eager against compiled, and what the
per-agent switches of a mixed stack cost."""

import math
import statistics

import torch

from ..config import preset
from ..plain_sac import PlainSAC
from ..sac import SAC
from .floors import matmul_floor, update_flops
from .timing import (ACT_DIM, OBS_DIM, STORY_MIX, interleaved_medians, new_sac, random_batch, seconds_per_call,
                     stack_configs)


ROWS = [  # name, preset (batch, hidden), agents in lockstep
    ("paper, 1 agent", "paper", 1),
    ("paper, 5 agents", "paper", 5),
    ("tutorial, 5 agents", "tutorial", 5),
]


# Targets: (row, minimum speedup over the reference per agent-update, minimum fraction of peak or None).
TARGETS = {"paper, 1 agent": (1.5, None), "paper, 5 agents": (2.0, 0.60), "tutorial, 5 agents": (3.0, None)}


def measure_row(preset_name, n, device, repeats, block_seconds, warmup, **changes) -> dict:
    """Median seconds per lockstep update of n agents: ours (one stacked SAC) and the reference (n PlainSACs).

    block_seconds=None times blocks of 2 updates (--quick); otherwise blocks are sized to last about that long.
    changes: Config fields over the preset (the fixed-cost row shrinks batch and hidden)."""
    configs = [preset(preset_name, seed=i, device=device.type, **changes) for i in range(n)]
    c = configs[0]
    ours = SAC(configs, OBS_DIM, ACT_DIM, device, [torch.Generator(device).manual_seed(i) for i in range(n)])
    torch.manual_seed(0)
    refs = [PlainSAC(cfg, OBS_DIM, ACT_DIM, device) for cfg in configs]
    batch = random_batch(n, c.batch_size, device)
    ref_batches = [{k: v[i] for k, v in batch.items()} for i in range(n)]

    def ours_update():
        ours.update(batch)

    def ref_update():
        for agent, data in zip(refs, ref_batches):
            agent.update(data)

    iters = {}
    for name, fn in (("ours", ours_update), ("ref", ref_update)):
        seconds_per_call(fn, warmup, device)
        iters[name] = 2 if block_seconds is None else max(2, round(block_seconds / seconds_per_call(fn, 3, device)))
    times = {"ours": [], "ref": []}
    for _ in range(repeats):
        times["ours"].append(seconds_per_call(ours_update, iters["ours"], device))
        times["ref"].append(seconds_per_call(ref_update, iters["ref"], device))
    return {"agents": n, "batch": c.batch_size, "hidden": c.hidden, "depth": c.depth,
            "flops_per_agent_update": update_flops(c.batch_size, c.hidden, c.depth, OBS_DIM, ACT_DIM),
            "ours_s": statistics.median(times["ours"]), "ref_s": statistics.median(times["ref"]),
            "matmul_s": matmul_floor(c.batch_size, c.hidden, c.depth, n, device, repeats), "iters": iters}


COMPILED_ROWS = [  # name, preset, variants (one agent each)
    ("paper, 1 agent", "paper", ("baseline",)),
    ("paper, 5 agents", "paper", ("baseline",) * 5),
    ("tutorial, 1 agent", "tutorial", ("baseline",)),
    ("tutorial, 5 agents", "tutorial", ("baseline",) * 5),
    ("tutorial, story mix", "tutorial", STORY_MIX),
]


def measure_compiled_row(preset_name, variants, device, repeats, block_seconds, warmup) -> dict:
    """Seconds per lockstep update: eager sac.SAC.update against the same update compiled (SAC.compile), same stack, interleaved.

    compile_s: the first compiled call, trace + Inductor: cold, or from Inductor's on-disk cache when an earlier
    process compiled the same graph (run the bench twice to see both). Within one process a second SAC of the
    same stack reuses the compiled code outright (every tensor is an input of the graph)."""
    configs = stack_configs(preset_name, variants, device)
    eager, compiled = new_sac(configs, device), new_sac(configs, device)
    batch = random_batch(len(configs), configs[0].batch_size, device)
    compiled.compile()
    compile_s = seconds_per_call(lambda: compiled.update(batch), 1, device)
    fns = {"eager": lambda: eager.update(batch), "compiled": lambda: compiled.update(batch)}
    n = len(configs)
    eager_s, compiled_s = interleaved_medians(fns, device, repeats, block_seconds, warmup)
    return {"agents": n, "variants": list(variants), "batch": configs[0].batch_size, "hidden": configs[0].hidden,
            "eager_ms_per_agent_update": 1e3 * eager_s / n, "compiled_ms_per_agent_update": 1e3 * compiled_s / n,
            "speedup": eager_s / compiled_s, "compile_s": compile_s,
            # lockstep updates after which compiling has paid for itself: compile time / time saved per update
            "break_even_updates": compile_s / (eager_s - compiled_s) if eager_s > compiled_s else math.inf}


def _tutorial_stacks_ms(stacks: dict, device, repeats, block_seconds, warmup, compiled=False) -> dict:
    """{name: ms per agent-update} of each stack {name: variants} at tutorial size, update only, interleaved."""
    fns = {}
    for name, variants in stacks.items():
        sac = new_sac(stack_configs("tutorial", variants, device), device)
        if compiled:
            sac.compile()
        batch = random_batch(sac.n, sac.batch_size, device)
        fns[name] = lambda sac=sac, batch=batch: sac.update(batch)
    seconds = interleaved_medians(fns, device, repeats, block_seconds, warmup)
    return {name: 1e3 * t / len(stacks[name]) for name, t in zip(fns, seconds)}


def mixed_vs_homogeneous(device, repeats, block_seconds, warmup) -> dict:
    """Eager update only, ms per agent-update: the story's mixed stack against 5 baseline agents, interleaved.

    The mixed stack's extra cost is its switches: OFN and LayerNorm run on the agents that have them on
    only (networks.Switch), and dropout multiplies by per-agent masks."""
    stacks = {"homogeneous": ("baseline",) * len(STORY_MIX), "mixed": STORY_MIX}
    ms = _tutorial_stacks_ms(stacks, device, repeats, block_seconds, warmup)
    return {"variants": list(STORY_MIX), **{f"{k}_ms_per_agent_update": v for k, v in ms.items()},
            "ratio": ms["mixed"] / ms["homogeneous"]}


def mixed_vs_members(device, repeats, block_seconds, warmup, compiled=True) -> dict:
    """ms per agent-update of the story's mixed stack against a homogeneous stack of 5 of each of its members.

    A mixed stack cannot cost less than its members' own work (LayerNorm, dropout masks, OFN's norm are
    arithmetic a baseline agent does not do): the mean over the members' homogeneous stacks is the cost of that
    work with no mixing at all, so mixed / that mean is what mixing itself adds."""
    stacks = {"mixed": STORY_MIX, **{v: (v,) * len(STORY_MIX) for v in dict.fromkeys(STORY_MIX)}}
    ms = _tutorial_stacks_ms(stacks, device, repeats, block_seconds, warmup, compiled)
    members = statistics.mean(ms[v] for v in STORY_MIX)
    return {"compiled": compiled, "ms_per_agent_update": ms, "members_mean": members,
            "mixed_over_members": ms["mixed"] / members, "mixed_over_baseline": ms["mixed"] / ms["baseline"]}


def judge(name, speedup, peak_fraction) -> dict:
    """The row's target, and whether the measured speedup (and fraction of peak, where asked) meet it."""
    min_speedup, min_fraction = TARGETS[name]
    met = speedup >= min_speedup and (min_fraction is None or peak_fraction >= min_fraction)
    return {"min_speedup": min_speedup, "min_peak_fraction": min_fraction, "met": met}
