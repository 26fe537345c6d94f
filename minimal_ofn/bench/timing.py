"""Timing helpers of the bench, and the stacks it times.

A figure is the median over blocks of calls timed with time.perf_counter (the device synchronized on both
sides); where two paths are compared, their blocks alternate, so that a busy neighbour slows both alike."""

import os
import statistics
import time

import torch

from ..config import BENCH_MIX, VARIANTS, preset
from ..sac import SAC


OBS_DIM, ACT_DIM = 17, 6  # dmc:cheetah-run


# ---- measuring
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, iters, device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def random_batch(n, batch, device, seed=0) -> dict:
    """A replay-shaped batch [N, B, ...] of random transitions (cheetah shapes: never terminates)."""
    g = torch.Generator(device).manual_seed(seed)
    return {"obs": torch.randn(n, batch, OBS_DIM, generator=g, device=device),
            "action": torch.rand(n, batch, ACT_DIM, generator=g, device=device) * 2 - 1,
            "reward": torch.rand(n, batch, generator=g, device=device),
            "next_obs": torch.randn(n, batch, OBS_DIM, generator=g, device=device),
            "terminated": torch.zeros(n, batch, device=device)}


def interleaved_medians(fns: dict, device, repeats, block_seconds, warmup) -> list:
    """Median seconds per call of each function, timed in interleaved blocks (a shared CPU slows all alike)."""
    iters = {}
    for name, fn in fns.items():
        seconds_per_call(fn, warmup, device)
        iters[name] = 2 if block_seconds is None else max(2, round(block_seconds / seconds_per_call(fn, 3, device)))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(seconds_per_call(fn, iters[name], device))
    return [statistics.median(times[name]) for name in fns]


def load_average():
    """1-minute load average (None where the OS has none): a busy shared CPU slows every row."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


# The stacks users run: the story's five variants side by side, and the tutorials' homogeneous stacks.
STORY_MIX = BENCH_MIX  # names in config.VARIANTS


def stack_configs(preset_name, variants, device, **changes) -> list:
    """One Config per agent: the preset with each named variant (config.VARIANTS), seeds 0, 1, ...

    compile="off" unless changes say otherwise: a row compiles its stack itself where it means to."""
    changes = {"compile": "off", **changes}
    return [preset(preset_name, seed=i, device=device.type, **VARIANTS[v], **changes) for i, v in enumerate(variants)]


def new_sac(configs, device):
    return SAC(configs, OBS_DIM, ACT_DIM, device, [torch.Generator(device).manual_seed(c.seed) for c in configs])
