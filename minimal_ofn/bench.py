"""How fast is one SAC update? Our stacked SAC against SAC written the usual way.

    python -m minimal_ofn.bench [--threads T] [--repeats R] [--quick] [--json] [--device D] [--no-loop]
                                [--default-malloc] [--compiled]
    python -m minimal_ofn.bench --contention             whole runs per thread setting, beside a busy process
    python -m minimal_ofn.bench --cleanrl SCRIPT --cleanrl-python PY [--pairs P]   CleanRL's own SAC script

Every row times the FULL update (critic, actor, temperature, Polyak) on
cheetah-run shapes (obs 17, act 6), for our `minimal_ofn.sac.SAC` and, in the
same run at the same size, for a PLAIN REFERENCE: SAC as common single-file
scripts write it (CleanRL's sac_continuous_action.py): two nn.Sequential critics,
an actor module, one torch.optim.Adam per network, zero_grad/backward/step, and
Polyak as a python loop over parameters. N agents of the reference are N such
agents updated one after another; ours updates them in one stacked pass.

Reported per row: lockstep updates/s, ms per agent-update (time of one update of
all N agents / N), and the fraction of the machine's float32 matrix-product
peak, measured in the same run with the same threads:

    fraction of peak = update_flops(...) * N / time per update / peak FLOP/s

Timing: warm-up first, time.perf_counter around a block of updates
(torch.cuda.synchronize() on both sides on a GPU), median over --repeats blocks,
ours and the reference interleaved block by block so that a busy neighbour on a
shared CPU slows both alike. On a CPU with more runnable processes than cores,
set OMP_WAIT_POLICY=PASSIVE (or --threads 1): spinning OpenMP threads otherwise
make every figure many times too slow (the table warns when it sees this).
Two figures split an update's time: its matrix products alone, back to back (a
floor no update of these shapes beats), and its fixed cost, the same update with
batch 8 and 2x8 networks (python, dispatch, autograd: paid whatever the sizes).
Then the story's mixed stack against five baseline agents, tutorial size, eager
update only, per agent-update: what the per-agent switches cost.
Last, an end-to-end figure: env steps/s of the training loop (train.Lockstep).

--compiled adds the compiled whole update (compiled.py) beside eager sac.py for
one and five agents at paper and tutorial size and for the story's mixed stack
(baseline, beta1=0, dropout+LayerNorm, AdamW decay, OFN), with compile times, and
the end-to-end split (update / env / diagnostics) of the tutorials' stacks.
--contention and --cleanrl time whole processes (docs/speed.md says how to set
CleanRL up outside the project's environment).
"""

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import threads
from .compiled import compile_update
from .config import VARIANTS, preset
from .plain_sac import PlainSAC
from .sac import SAC, polyak_update
from .train import Lockstep, Parser, RunError, cli, keep_freed_memory

OBS_DIM, ACT_DIM = 17, 6  # dmc:cheetah-run
ROWS = [  # name, preset (batch, hidden), agents in lockstep
    ("paper, 1 agent", "paper", 1),
    ("paper, 5 agents", "paper", 5),
    ("tutorial, 5 agents", "tutorial", 5),
]
LOOP_SECONDS = 20.0  # time budget of the end-to-end loop
# Targets: (row, minimum speedup over the reference per agent-update, minimum fraction of peak or None).
TARGETS = {"paper, 1 agent": (1.5, None), "paper, 5 agents": (2.0, 0.60), "tutorial, 5 agents": (3.0, None)}


def update_flops(batch: int, hidden: int, depth: int, obs_dim: int, act_dim: int) -> int:
    """Matrix-product FLOPs of one full SAC update of ONE agent (2 FLOPs per multiply-add).

    A linear layer of input width i and output width o on B rows costs 2Bio for the
    forward pass, 2Bio for the gradient w.r.t. its input, 2Bio for the gradient
    w.r.t. its weight. Biases, activations, losses, Adam and Polyak are O(B*H) or
    O(parameters), not O(B*H^2), and are left out. With fwd(net) the forward cost,
    first(net) the cost of its first layer, and the twin critic counted twice:

        target critic   fwd(actor) on s'  +  2 fwd(critic) on (s', a')           no backward
        critic          2 fwd(critic) on (s, a)  +  2 fwd  (weight grads)
                        +  2 (fwd - first) (input grads: [s, a] is data, needs none)
        actor           fwd(actor) on s  +  2 fwd(critic) on (s, a~)
                        +  2 fwd(critic)  (input grads down to a~; critic weights get none)
                        +  fwd(actor) (weight grads)  +  fwd(actor) - first(actor) (input grads)
        temperature, Polyak: no matrix products
    """
    return sum(2 * s * m * k * o for s, m, k, o in update_matmuls(batch, hidden, depth, obs_dim, act_dim, 1))


def update_matmuls(batch, hidden, depth, obs_dim, act_dim, n) -> list:
    """Every matrix product of one stacked update of n agents, as (stack, m, k, n_out): [S, m, k] @ [S, k, n_out].

    The passes update_flops describes (twin critics: stack 2n, actor: stack n), in update order."""
    critic, actor = [obs_dim + act_dim] + [hidden] * depth + [1], [obs_dim] + [hidden] * depth + [2 * act_dim]

    def fwd(dims, s):
        return [(s, batch, i, o) for i, o in zip(dims[:-1], dims[1:])]

    def weight_grads(dims, s):
        return [(s, i, batch, o) for i, o in zip(dims[:-1], dims[1:])]

    def input_grads(dims, s, first=True):
        return [(s, batch, o, i) for i, o in list(zip(dims[:-1], dims[1:]))[::-1][: None if first else -1]]

    q, pi = (critic, 2 * n), (actor, n)
    return (fwd(*pi) + fwd(*q)  # target
            + fwd(*q) + weight_grads(*q) + input_grads(*q, first=False)  # critic
            + fwd(*pi) + fwd(*q) + input_grads(*q) + weight_grads(*pi) + input_grads(*pi, first=False))  # actor


# ---- measuring
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds_per_call(fn, iters, device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def random_batch(n, batch, device, seed=0) -> dict:
    """A replay-shaped batch [N, B, ...] of random transitions (cheetah shapes: never terminates)."""
    g = torch.Generator(device).manual_seed(seed)
    return {"obs": torch.randn(n, batch, OBS_DIM, generator=g, device=device),
            "action": torch.rand(n, batch, ACT_DIM, generator=g, device=device) * 2 - 1,
            "reward": torch.rand(n, batch, generator=g, device=device),
            "next_obs": torch.randn(n, batch, OBS_DIM, generator=g, device=device),
            "terminated": torch.zeros(n, batch, device=device)}


def matmul_peak(size, repeats, device) -> float:
    """float32 FLOP/s of a size x size matrix product: the best of `repeats` timings (2 size^3 FLOPs each)."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)  # warm-up
    best = min(_seconds_per_call(lambda: torch.mm(a, b, out=out), 1, device) for _ in range(repeats))
    return 2 * size**3 / best


def matmul_floor(batch, hidden, depth, n, device, repeats) -> float:
    """Seconds for the update's matrix products alone, back to back, operands preallocated (one set per product).

    No update of these shapes can be faster with these kernels: everything else (activations, losses,
    Adam, Polyak, python) comes on top."""
    # The critic head's products (one output column: forward, weight gradient; its input gradient has k = 1) run as
    # multiply-and-sum (networks.StackedLinear), not as BLAS calls: they belong to the elementwise work.
    shapes = [shape for shape in update_matmuls(batch, hidden, depth, OBS_DIM, ACT_DIM, n) if 1 not in shape[2:]]
    operands = [(torch.randn(s, m, k, device=device), torch.randn(s, k, o, device=device),
                 torch.empty(s, m, o, device=device)) for s, m, k, o in shapes]

    def products():
        for a, b, out in operands:
            torch.bmm(a, b, out=out)

    _seconds_per_call(products, 5, device)
    iters = max(2, round(0.2 / _seconds_per_call(products, 3, device)))
    return statistics.median(_seconds_per_call(products, iters, device) for _ in range(repeats))


def step_floor(repeats=5, env_id="HalfCheetah-v5") -> dict:
    """Seconds of the work one UTD-1 learning step cannot skip besides its matrix products, one agent, paper size,
    on the CPU: one Adam step over the actor's and the critic's parameters (torch's fused kernel, the package's
    fast path), one Polyak step of the target critic, one environment step. Each alone, back to back, its operands
    in cache, so each is a lower bound of what it costs inside a real step (activations and losses not counted)."""
    from .envs import make_env

    device = torch.device("cpu")
    sac = _new_sac(stack_configs("paper", ["baseline"], device), device)
    grads = {name: [torch.zeros_like(q) for q in opt.params] for name, opt in sac.optimizers().items()}

    def adam():
        for name, opt in sac.optimizers().items():
            opt.step(grads[name])

    def polyak():
        with torch.no_grad():
            polyak_update(sac.critic_target.parameters(), sac.critic.parameters(), sac.tau)

    env = make_env(env_id, seed=0)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)

    def env_step():  # a new episode where one ends, as the training loop does (the reset's cost is spread thin)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    out = {}
    for name, fn in (("adam_s", adam), ("polyak_s", polyak), ("env_s", env_step)):
        _seconds_per_call(fn, 20, device)  # warm-up
        iters = max(20, round(0.1 / _seconds_per_call(fn, 20, device)))
        out[name] = statistics.median(_seconds_per_call(fn, iters, device) for _ in range(repeats))
    env.close()
    return out


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
        _seconds_per_call(fn, warmup, device)
        iters[name] = 2 if block_seconds is None else max(2, round(block_seconds / _seconds_per_call(fn, 3, device)))
    times = {"ours": [], "ref": []}
    for _ in range(repeats):
        times["ours"].append(_seconds_per_call(ours_update, iters["ours"], device))
        times["ref"].append(_seconds_per_call(ref_update, iters["ref"], device))
    return {"agents": n, "batch": c.batch_size, "hidden": c.hidden, "depth": c.depth,
            "flops_per_agent_update": update_flops(c.batch_size, c.hidden, c.depth, OBS_DIM, ACT_DIM),
            "ours_s": statistics.median(times["ours"]), "ref_s": statistics.median(times["ref"]),
            "matmul_s": matmul_floor(c.batch_size, c.hidden, c.depth, n, device, repeats), "iters": iters}


# The stacks users run: the story's five variants side by side, and the tutorials' homogeneous stacks.
STORY_MIX = ("baseline", "beta1=0", "dropout+ln", "adamw", "ofn")  # names in config.VARIANTS
COMPILED_ROWS = [  # name, preset, variants (one agent each)
    ("paper, 1 agent", "paper", ("baseline",)),
    ("paper, 5 agents", "paper", ("baseline",) * 5),
    ("tutorial, 1 agent", "tutorial", ("baseline",)),
    ("tutorial, 5 agents", "tutorial", ("baseline",) * 5),
    ("tutorial, story mix", "tutorial", STORY_MIX),
]


def stack_configs(preset_name, variants, device, **changes) -> list:
    """One Config per agent: the preset with each named variant (config.VARIANTS), seeds 0, 1, ...

    compile="off" unless changes say otherwise: a row compiles its stack itself where it means to."""
    changes = {"compile": "off", **changes}
    return [preset(preset_name, seed=i, device=device.type, **VARIANTS[v], **changes) for i, v in enumerate(variants)]


def _new_sac(configs, device):
    return SAC(configs, OBS_DIM, ACT_DIM, device, [torch.Generator(device).manual_seed(c.seed) for c in configs])


def _interleaved_medians(fns: dict, device, repeats, block_seconds, warmup) -> list:
    """Median seconds per call of each function, timed in interleaved blocks (a shared CPU slows all alike)."""
    iters = {}
    for name, fn in fns.items():
        _seconds_per_call(fn, warmup, device)
        iters[name] = 2 if block_seconds is None else max(2, round(block_seconds / _seconds_per_call(fn, 3, device)))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_seconds_per_call(fn, iters[name], device))
    return [statistics.median(times[name]) for name in fns]


def measure_compiled_row(preset_name, variants, device, repeats, block_seconds, warmup) -> dict:
    """Seconds per lockstep update: eager sac.SAC.update against compiled.CompiledUpdate, same stack, interleaved.

    compile_s: the first compiled call, trace + Inductor: cold, or from Inductor's on-disk cache when an earlier
    process compiled the same graph (run the bench twice to see both). Within one process a second SAC of the
    same stack reuses the compiled code outright (every tensor is an input of the graph)."""
    configs = stack_configs(preset_name, variants, device)
    eager, compiled = _new_sac(configs, device), _new_sac(configs, device)
    batch = random_batch(len(configs), configs[0].batch_size, device)
    compile_update(compiled)
    compile_s = _seconds_per_call(lambda: compiled.update(batch), 1, device)
    fns = {"eager": lambda: eager.update(batch), "compiled": lambda: compiled.update(batch)}
    n = len(configs)
    eager_s, compiled_s = _interleaved_medians(fns, device, repeats, block_seconds, warmup)
    return {"agents": n, "variants": list(variants), "batch": configs[0].batch_size, "hidden": configs[0].hidden,
            "eager_ms_per_agent_update": 1e3 * eager_s / n, "compiled_ms_per_agent_update": 1e3 * compiled_s / n,
            "speedup": eager_s / compiled_s, "compile_s": compile_s,
            # lockstep updates after which compiling has paid for itself: compile time / time saved per update
            "break_even_updates": compile_s / (eager_s - compiled_s) if eager_s > compiled_s else math.inf}


def _tutorial_stacks_ms(stacks: dict, device, repeats, block_seconds, warmup, compiled=False) -> dict:
    """{name: ms per agent-update} of each stack {name: variants} at tutorial size, update only, interleaved."""
    fns = {}
    for name, variants in stacks.items():
        sac = _new_sac(stack_configs("tutorial", variants, device), device)
        if compiled:
            compile_update(sac)
        batch = random_batch(sac.n, sac.batch_size, device)
        fns[name] = lambda sac=sac, batch=batch: sac.update(batch)
    seconds = _interleaved_medians(fns, device, repeats, block_seconds, warmup)
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


def format_members(r: dict) -> str:
    ms = r["ms_per_agent_update"]
    each = ", ".join(f"{k} {v:.2f}" for k, v in ms.items() if k != "mixed")
    return (f"{'compiled' if r['compiled'] else 'eager'} update only, tutorial size, ms per agent-update: the story mix "
            f"{ms['mixed']:.2f}; homogeneous stacks of 5 of each member: {each} (mean {r['members_mean']:.2f}); "
            f"mixed / members' mean {r['mixed_over_members']:.2f}x, mixed / 5 baseline {r['mixed_over_baseline']:.2f}x")


def format_mixed(r: dict) -> str:
    return (f"eager update only, tutorial size, 5 agents, ms per agent-update: story mix ({' '.join(r['variants'])}) "
            f"{r['mixed_ms_per_agent_update']:.3f}, 5 baseline {r['homogeneous_ms_per_agent_update']:.3f}: "
            f"{r['ratio']:.2f}x")


def format_compiled(rows: dict) -> str:
    lines = ["whole update compiled (compiled.py: one torch.compile graph) against eager sac.py, same stack, "
             "interleaved blocks, ms per agent-update:",
             f"  {'row':<22} {'eager':>7} {'compiled':>8} {'speedup':>7} | {'compile s':>9} | "
             f"{'pays off after (updates)':>24}"]
    for name, w in rows.items():
        lines.append(f"  {name:<22} {w['eager_ms_per_agent_update']:>7.2f} {w['compiled_ms_per_agent_update']:>8.2f} "
                     f"{w['speedup']:>6.2f}x | {w['compile_s']:>9.1f} | {w['break_even_updates']:>24.0f}")
    lines.append("  (compile s: the first compiled call, cold or from Inductor's on-disk cache if an earlier process "
                 "compiled the same graph; pays off after: compile time / time saved per lockstep update)")
    return "\n".join(lines)


def lockstep_loop(device, updates, seed_steps, max_seconds=20.0) -> dict:
    """Env steps/s of train.Lockstep (tutorial size, 5 agents, UTD 32, dmc:cheetah-run), past the random phase.

    Stops early once max_seconds have been spent in the timed part (a busy machine), and says so."""
    utd = 32
    configs = [preset("tutorial", seed=i, utd=utd, seed_steps=seed_steps, device=device.type, compile="off")
               for i in range(5)]
    run = Lockstep(configs, progress=False)
    while run.t <= seed_steps:  # the random phase, then one step with its first utd updates as warm-up
        run.env_step()
        run.learn()
    planned, steps = max(1, updates // utd), 0
    _sync(device)
    start = time.perf_counter()
    while steps < planned and (steps == 0 or time.perf_counter() - start < max_seconds):
        run.env_step()
        run.learn()
        steps += 1
    _sync(device)
    seconds = time.perf_counter() - start
    return {"agents": 5, "utd": utd, "env_steps": steps, "updates": steps * utd, "seconds": seconds,
            "stopped_early": steps < planned, "env_steps_per_s": steps / seconds,
            "ms_per_agent_update": 1e3 * seconds / (steps * utd * 5)}


# ---- whole processes: contention, and the external yardstick (CleanRL's own script)
THREAD_VARS = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", threads.OFF)
CONTENTION_SETTINGS = [  # name, environment of the training process
    ("torch's default", {threads.OFF: "torch"}),
    ("OMP_NUM_THREADS=1", {threads.OFF: "torch", "OMP_NUM_THREADS": "1"}),
    ("OMP_WAIT_POLICY=PASSIVE", {threads.OFF: "torch", "OMP_WAIT_POLICY": "PASSIVE"}),
    ("package default (threads.py)", {}),
]
# The run: tutorial preset, UTD 2, 300 learning steps after the 1000 random ones.
CONTENTION_TRAIN = ["--preset", "tutorial", "--utd", "2", "--steps", "1300", "--seed_steps", "1000"]


def _clean_env(**extra) -> dict:
    """This process's environment without any thread setting (the bench's own import applied the defaults)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    return {**env, **extra}


def _timed(cmd, env, cwd=None, cap=None) -> float:
    """Wall seconds of a whole process; a failure is one line with the end of its stderr.

    cap: stop the process after that many seconds and return inf (a collapsed setting must not stall the bench)."""
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return math.inf
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RunError(f"{' '.join(map(str, cmd[:4]))} ... failed ({out.returncode}): {tail}")
    return seconds


def cli_error_seconds(repeats=3) -> dict:
    """Wall seconds until `python -m minimal_ofn.<command> --no-such-flag` has answered (median of whole processes):
    the commands parse their flags before torch and the environments load (cli.py)."""
    seconds = {}
    for command in ("train", "experiment"):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", f"minimal_ofn.{command}", "--no-such-flag"], capture_output=True)
            times.append(time.perf_counter() - start)
        seconds[command] = statistics.median(times)
    return seconds


def format_cli_errors(seconds: dict) -> str:
    return ("a bad flag answered in: " + ", ".join(f"{c} {s:.2f} s" for c, s in seconds.items())
            + " (median of 3 whole processes; the aim is under 2 s)")


def _train_cmd(args, out, compiled=False) -> list:
    # Ours as users run it: `python -m minimal_ofn.train`, eager (sac.py) or the compiled whole update (compiled.py).
    entry = ["-m", "minimal_ofn.train", "--compile", "update" if compiled else "off"]
    return [sys.executable, *entry, *args, "--out", str(out), "--no-progress"]


def contention(repeats=1, cap=180.0, idle=True) -> dict:
    """Whole-process seconds of the issue's tutorial run per thread setting, idle and beside one busy process.

    "Idle" is whatever the machine runs besides (the load average is printed); "busy" adds one process of
    ours spinning in pure python (started and killed here). Settings alternate within each round. A run
    still going after cap seconds is stopped and shown as "> cap"."""
    result = {"cpu_count": os.cpu_count(), "usable_cores": threads.usable_cores(), "cap": cap, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for neighbour in (False, True) if idle else (True,):
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
            try:
                time.sleep(1.0 if neighbour else 0.0)
                for r in range(repeats):
                    for k, (name, extra) in enumerate(CONTENTION_SETTINGS):
                        load = _load()
                        seconds = _timed(_train_cmd(CONTENTION_TRAIN, Path(tmp) / f"{neighbour}{r}{k}"),
                                         _clean_env(**extra), cap=cap)
                        row = result["rows"].setdefault(name, {"idle": [], "busy": [], "load": []})
                        row["busy" if neighbour else "idle"].append(seconds)
                        row["load"].append(load)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    return result


def format_contention(r: dict) -> str:
    lines = [f"contention: `python -m minimal_ofn.train {' '.join(CONTENTION_TRAIN)}`, whole process, wall seconds "
             f"(median), {r['usable_cores']} usable cores; busy = beside one `python -c 'while True: pass'`:",
             f"  {'setting':<30} {'idle s':>7} {'busy s':>7} {'busy / best busy':>16}"]
    best = min(statistics.median(w["busy"]) for w in r["rows"].values())

    def show(values):
        if not values:
            return "n/a"
        x = statistics.median(values)
        return f"> {r['cap']:.0f}" if math.isinf(x) else f"{x:.1f}"

    for name, w in r["rows"].items():
        busy = statistics.median(w["busy"])
        ratio = f"> {r['cap'] / best:.1f}x" if math.isinf(busy) else f"{busy / best:.2f}x"
        lines.append(f"  {name:<30} {show(w['idle']):>7} {show(w['busy']):>7} {ratio:>16}")
    loads = [x for w in r["rows"].values() for x in w["load"] if x is not None]
    if loads:
        lines.append(f"  (1-min load average at the starts: {min(loads):.1f} to {max(loads):.1f}; the package "
                     "default: OMP_WAIT_POLICY=PASSIVE, threads = free cores, see threads.py)")
    return "\n".join(lines)


# CleanRL's script measures nothing while it trains: no evaluation episodes, no Monte Carlo rollouts (it logs
# losses every 100 steps). "same work" runs ours with those two past the end of the run; the other rows keep
# our defaults (a Monte Carlo rollout of up to 1000 steps at every log, every 1000 steps).
SAME_WORK = ["--mc_every", "1000000000", "--eval_every", "1000000000"]
YARDSTICK_KINDS = {  # name: (compiled, extra train args)
    "ours": (False, []), "ours compiled": (True, []), "ours, same work": (False, SAME_WORK),
    "ours compiled, same work": (True, SAME_WORK)}


def yardstick(cleanrl_script, cleanrl_python, pairs=1, compiled=True, long_steps=6000, short_steps=2000) -> dict:
    """CleanRL's own sac_continuous_action.py against `minimal_ofn.train`, whole processes, one thread each.

    HalfCheetah (CleanRL: -v4 with its gymnasium 0.29; ours: -v5), UTD 1, 2x256, batch 256, 1000 random steps.
    The learning phase costs (t(long_steps) - t(short_steps)) / (long_steps - short_steps) per env step: start-up,
    imports, the random phase, the final evaluation and (ours) the compile drop out of the difference. Runs
    alternate within a pair. Ours runs as users run it, and with the work CleanRL's script does (SAME_WORK)."""
    script = Path(cleanrl_script).resolve()
    env = _clean_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **{threads.OFF: "torch"})
    # CleanRL imports cleanrl_utils from its repository's root, one level above the script.
    clean_env = {**env, "PYTHONPATH": str(script.parent.parent)}
    batch, hidden, depth = 256, 256, 2  # the runs' sizes, and the ceiling's
    ours_args = ["--env", "HalfCheetah-v5", "--utd", "1", "--batch_size", str(batch), "--hidden", str(hidden),
                 "--depth", str(depth), "--seed_steps", "1000", "--device", "cpu"]
    kinds = ["cleanrl"] + [k for k, (c, _) in YARDSTICK_KINDS.items() if compiled or not c]
    times = {k: {long_steps: [], short_steps: []} for k in kinds}
    # The ceiling: a learning step of ours does at least one update, and no update beats its matrix products alone
    # (matmul_floor, one thread, as the runs had). So CleanRL's ms / the floor's ms bounds every row's ratio. The
    # floor drifts with the machine (8.2-9.8 ms within a minute, idle): it is measured after every run.
    floors = []

    def measure_floor():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            floors.append(1e3 * matmul_floor(batch, hidden, depth, 1, torch.device("cpu"), repeats=3))
        finally:
            torch.set_num_threads(before)

    with tempfile.TemporaryDirectory() as tmp:
        if compiled:  # untimed: fills Inductor's on-disk cache, so that no timed run pays a cold compile
            _timed(_train_cmd([*ours_args, "--steps", "1002"], Path(tmp) / "warm-up", compiled=True), env)
        for p in range(pairs):
            for steps in (long_steps, short_steps):
                for kind in kinds:
                    if kind == "cleanrl":
                        cmd = [cleanrl_python, str(script), "--env-id", "HalfCheetah-v4", "--total-timesteps",
                               str(steps), "--learning-starts", "1000", "--batch-size", str(batch), "--seed", str(p + 1),
                               "--no-cuda"]
                        times[kind][steps].append(_timed(cmd, clean_env, cwd=tmp))
                    else:
                        out = Path(tmp) / f"{kind.replace(' ', '_').replace(',', '')}{p}_{steps}"
                        is_compiled, extra = YARDSTICK_KINDS[kind]
                        cmd = _train_cmd([*ours_args, *extra, "--steps", str(steps), "--seed", str(p + 1)], out,
                                         compiled=is_compiled)
                        times[kind][steps].append(_timed(cmd, env))
                    measure_floor()
    span = long_steps - short_steps
    rows = {k: {"long_s": t[long_steps], "short_s": t[short_steps],
                "ms_per_env_step": 1e3 * statistics.median(a - b for a, b in zip(t[long_steps], t[short_steps])) / span}
            for k, t in times.items()}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step_ms = {k[:-2] + "_ms": 1e3 * v for k, v in step_floor().items()}
    finally:
        torch.set_num_threads(before)
    return {"pairs": pairs, "long_steps": long_steps, "short_steps": short_steps, "rows": rows,
            "matmul_floor_ms": statistics.median(floors), "matmul_floors_ms": floors, "step_floor_ms": step_ms}


def format_yardstick(r: dict) -> str:
    ref = r["rows"]["cleanrl"]["ms_per_env_step"]
    lines = [f"external yardstick: HalfCheetah, UTD 1, 2x256, batch 256, 1 thread, 1000 random steps, whole "
             f"processes; learning phase = (t({r['long_steps']}) - t({r['short_steps']})) / "
             f"{r['long_steps'] - r['short_steps']} steps, median of {r['pairs']} pair(s):"]
    for name, w in r["rows"].items():
        lines.append(f"  {name:<24} {w['ms_per_env_step']:>6.2f} ms per env step   {ref / w['ms_per_env_step']:>5.2f}x "
                     f"CleanRL   (runs: {', '.join(f'{x:.0f}' for x in w['long_s'])} s and "
                     f"{', '.join(f'{x:.0f}' for x in w['short_s'])} s)")
    if "matmul_floor_ms" in r:
        floor, seen = r["matmul_floor_ms"], r.get("matmul_floors_ms") or [r["matmul_floor_ms"]]
        lines.append(f"  ceiling: one update's matrix products alone take {floor:.2f} ms here (bench.matmul_floor, "
                     f"paper size, 1 agent, 1 thread; median of {len(seen)} measurements, one after each run, "
                     f"{min(seen):.2f} to {max(seen):.2f}); a learning step of ours does an update, so no row can "
                     f"beat {ref / floor:.2f}x CleanRL on this machine ({ref / min(seen):.2f}x at the fastest floor "
                     "seen), whatever else gets faster")
        if "step_floor_ms" in r:
            f = r["step_floor_ms"]
            rest = sum(f.values())
            lines.append(f"  with what else every learning step must do (bench.step_floor, each alone and in cache: "
                         f"Adam {f['adam_ms']:.2f} ms, Polyak {f['polyak_ms']:.2f} ms, one env step "
                         f"{f['env_ms']:.2f} ms): {floor + rest:.2f} ms, so no row can beat "
                         f"{ref / (floor + rest):.2f}x CleanRL ({ref / (min(seen) + rest):.2f}x at the fastest floor "
                         "seen), less only in so far as Adam and Polyak share one pass over the critic's weights")
    if any("same work" in name for name in r["rows"]):
        lines.append("  (same work: ours without evaluation episodes and Monte Carlo rollouts during the run, which "
                     "CleanRL's script does not do; the other rows run ours with its defaults)")
    return "\n".join(lines)


END_TO_END_ROWS = [("tutorial, 5 baseline seeds", ("baseline",) * 5), ("tutorial, story mix", STORY_MIX)]


def end_to_end(variants, device, env_steps=10, utd=32) -> dict:
    """Per agent-update ms of train.Lockstep at the tutorial preset, eager and compiled, split into update, env
    and diagnostics.

    Two identical runs (eager sac.py and compiled.py) go through the preset's random phase and one warm-up step
    (which compiles); then env_steps steps of env_step + learn are timed, alternating between the two runs step
    by step so that a busy neighbour slows both alike. The diagnostics (train.Lockstep.metrics: critic
    diagnostics and Monte Carlo rollouts at every log, an evaluation episode at every eval) are timed once each
    and charged at the preset's log_every / eval_every intervals, as train.train calls them."""
    configs = stack_configs("tutorial", variants, device, utd=utd)
    c, n = configs[0], len(configs)
    runs = {"eager": Lockstep(configs, progress=False), "compiled": Lockstep(configs, progress=False)}
    compile_update(runs["compiled"].sac)
    out = {"agents": n, "variants": list(variants), "utd": utd, "env_steps": env_steps, "paths": {}}
    for name, run in runs.items():
        while run.t <= c.seed_steps:
            run.env_step()
            run.learn()  # the first utd updates: the warm-up (and the compile)
    spent = {name: {"env": 0.0, "update": 0.0} for name in runs}
    for _ in range(env_steps):
        for name, run in runs.items():
            for part, fn in (("env", run.env_step), ("update", run.learn)):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                spent[name][part] += time.perf_counter() - start
    agent_updates = env_steps * utd * n
    for name, run in runs.items():
        run.metrics(evaluate=True, monte_carlo_rollout=True)  # untimed: a first call pays one-off costs (1.9 s vs 1.2)
        log_s = _seconds_per_call(lambda: run.metrics(evaluate=False, monte_carlo_rollout=True), 1, device)
        eval_s = max(0.0, _seconds_per_call(lambda: run.metrics(evaluate=True, monte_carlo_rollout=True), 1, device)
                     - log_s)
        diag_per_env_step = log_s / c.log_every + eval_s / c.eval_every
        split = {"update": 1e3 * spent[name]["update"] / agent_updates, "env": 1e3 * spent[name]["env"] / agent_updates,
                 "diagnostics": 1e3 * diag_per_env_step / (utd * n)}
        out["paths"][name] = {"log_s": log_s, "eval_s": eval_s, "ms_per_agent_update": split,
                              "total_ms_per_agent_update": sum(split.values())}
    return out


def format_end_to_end(rows: dict) -> str:
    utd = next(iter(rows.values()))["utd"]
    lines = [f"end to end (train.Lockstep, tutorial preset, UTD {utd}, dmc:cheetah-run; eager and compiled "
             "alternating step by step; diagnostics charged at the preset's log/eval intervals), ms per agent-update:",
             f"  {'stack':<28} {'path':>8} {'total':>7} {'update':>7} {'env':>6} {'diag':>6} | "
             f"{'one log s':>9} {'one eval s':>10}"]
    for name, row in rows.items():
        for path, w in row["paths"].items():
            m = w["ms_per_agent_update"]
            lines.append(f"  {name:<28} {path:>8} {w['total_ms_per_agent_update']:>7.2f} {m['update']:>7.2f} "
                         f"{m['env']:>6.3f} {m['diagnostics']:>6.3f} | {w['log_s']:>9.2f} {w['eval_s']:>10.2f}")
    return "\n".join(lines)


def _load():
    """1-minute load average (None where the OS has none): a busy shared CPU slows every row."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def judge(name, speedup, peak_fraction) -> dict:
    """The row's target, and whether the measured speedup (and fraction of peak, where asked) meet it."""
    min_speedup, min_fraction = TARGETS[name]
    met = speedup >= min_speedup and (min_fraction is None or peak_fraction >= min_fraction)
    return {"min_speedup": min_speedup, "min_peak_fraction": min_fraction, "met": met}


def run_bench(threads=None, repeats=5, quick=False, device=None, loop=True, default_malloc=False,
              compiled=False) -> dict:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if threads is not None:
        torch.set_num_threads(threads)
    # The training loop does this on CPU (train.keep_freed_memory); in one process it serves ours and the reference.
    kept = False if default_malloc or device.type != "cpu" else keep_freed_memory()
    size = 1024 if quick else 2048 if device.type == "cpu" else 8192
    result = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "load_before": _load(), "keep_freed_memory": kept,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "obs_dim": OBS_DIM, "act_dim": ACT_DIM, "quick": quick, "repeats": repeats,
              "peak_matmul_size": size, "peak_flops": matmul_peak(size, 3 if quick else 5, device), "rows": {}}
    for name, preset_name, n in ROWS:
        row = measure_row(preset_name, n, device, repeats, block_seconds=None if quick else 0.4,
                          warmup=1 if quick else 10)
        row["ours_ms_per_agent_update"] = 1e3 * row["ours_s"] / n
        row["ref_ms_per_agent_update"] = 1e3 * row["ref_s"] / n
        row["speedup"] = row["ref_s"] / row["ours_s"]
        row["ours_peak_fraction"] = row["flops_per_agent_update"] * n / row["ours_s"] / result["peak_flops"]
        row["ref_peak_fraction"] = row["flops_per_agent_update"] * n / row["ref_s"] / result["peak_flops"]
        row["matmul_ms_per_agent_update"] = 1e3 * row["matmul_s"] / n
        row["matmul_peak_fraction"] = row["flops_per_agent_update"] * n / row["matmul_s"] / result["peak_flops"]
        row["target"] = judge(name, row["speedup"], row["ours_peak_fraction"])
        result["rows"][name] = row
    # The same update with 8-wide everything: what python, dispatch, autograd and launching ~300 ops cost
    # whatever the sizes. At paper size it comes on top of the matrix products.
    tiny = measure_row("paper", 1, device, repeats, block_seconds=None if quick else 0.4, warmup=1 if quick else 10,
                       batch_size=8, hidden=8)
    result["fixed_cost"] = {k: tiny[k] for k in ("batch", "hidden", "ours_s", "ref_s")}
    result["mixed"] = mixed_vs_homogeneous(device, repeats, None if quick else 0.4, 1 if quick else 10)
    if loop:
        result["lockstep_loop"] = lockstep_loop(device, updates=128 if quick else 2000,
                                                seed_steps=128 if quick else 1000, max_seconds=LOOP_SECONDS)
    if compiled:
        rows = COMPILED_ROWS[-2:] if quick else COMPILED_ROWS
        if quick:  # tiny shapes: checks that it runs
            rows = [(name, preset_name, variants[:2]) for name, preset_name, variants in rows]
        result["compiled"] = {name: measure_compiled_row(preset_name, variants, device, repeats,
                                                         None if quick else 0.4, 1 if quick else 10)
                              for name, preset_name, variants in rows}
        # quick: eager, so that a test run compiles nothing more
        result["members"] = mixed_vs_members(device, repeats, None if quick else 0.4, 1 if quick else 10,
                                             compiled=not quick)
        result["end_to_end"] = {name: end_to_end(variants[:2] if quick else variants, device,
                                                 env_steps=1 if quick else 10, utd=4 if quick else 32)
                                for name, variants in END_TO_END_ROWS}
    result["load_after"] = _load()
    return result


def _fmt(x):
    return "n/a" if x is None else f"{x:.1f}"


def _busy_warning(r) -> list:
    # Measured here: 5 tutorial agents took 1089 ms per update with 2 threads at load 7 on 2 cores, 19 ms with
    # OMP_WAIT_POLICY=PASSIVE (threads spinning at OpenMP barriers while their core runs someone else).
    busy = r["device"] == "cpu" and r["threads"] > 1 and (r.get("load_before") or 0) > (r.get("cpu_count") or 1)
    if not busy or r.get("omp_wait_policy"):
        return []
    return ["WARNING: more runnable processes than cores, and several torch threads: OpenMP threads spin while "
            "waiting and every figure below can be many times too slow; rerun with OMP_WAIT_POLICY=PASSIVE "
            "or --threads 1, or on an idle machine"]


def format_table(r: dict) -> str:
    lines = [f"SAC update benchmark: {r['device']}, torch {r['torch']}, {r['threads']} threads"
             f"{', OMP_WAIT_POLICY=' + r['omp_wait_policy'] if r.get('omp_wait_policy') else ''}, "
             f"obs {r['obs_dim']} act {r['act_dim']} (cheetah-run shapes), median of {r['repeats']} blocks"
             + (" [--quick: too few iterations for real figures]" if r["quick"] else ""),
             f"CPU load average (1 min) before / after: {_fmt(r.get('load_before'))} / {_fmt(r.get('load_after'))} "
             f"on {r.get('cpu_count')} cores (other processes running share the cores and slow every figure)",
             f"malloc keeps freed memory (train.keep_freed_memory, for ours and the reference): "
             f"{'yes' if r.get('keep_freed_memory') else 'no'}",
             *_busy_warning(r),
             f"float32 matmul peak ({r['peak_matmul_size']}^2, best of runs): {r['peak_flops'] / 1e9:.1f} GFLOP/s", "",
             f"{'row':<20} {'batch':>5} {'hidden':>6} {'MFLOP/agent-upd':>15} | {'ours upd/s':>10} "
             f"{'ms/agent-upd':>12} {'% peak':>6} | {'ref upd/s':>9} {'ms/agent-upd':>12} {'% peak':>6} | "
             f"{'speedup':>7}"]
    for name, w in r["rows"].items():
        lines.append(f"{name:<20} {w['batch']:>5} {w['hidden']:>6} {w['flops_per_agent_update'] / 1e6:>15.1f} | "
                     f"{1 / w['ours_s']:>10.1f} {w['ours_ms_per_agent_update']:>12.2f} "
                     f"{100 * w['ours_peak_fraction']:>5.1f}% | {1 / w['ref_s']:>9.1f} "
                     f"{w['ref_ms_per_agent_update']:>12.2f} {100 * w['ref_peak_fraction']:>5.1f}% | "
                     f"{w['speedup']:>6.2f}x")
    lines += ["", "(upd/s: lockstep updates of all the row's agents per second; ref = plain CleanRL-style SAC, "
                  "its agents updated one after another; speedup = ref / ours per agent-update)", "",
              "the update's matrix products alone (bench.update_matmuls: its bmm shapes back to back, operands "
              "preallocated; a floor that no update of these shapes beats with these kernels):"]
    for name, w in r["rows"].items():
        lines.append(f"  {name:<20} {w['matmul_ms_per_agent_update']:>6.2f} ms/agent-upd "
                     f"{100 * w['matmul_peak_fraction']:>5.1f}% of peak; ours spends "
                     f"{100 * (1 - w['matmul_s'] / w['ours_s']):.0f}% of its update outside them")
    if "fixed_cost" in r:
        f, p = r["fixed_cost"], r["rows"].get("paper, 1 agent")
        lines += ["", f"fixed cost of one update, whatever the sizes (paper preset with batch {f['batch']} and "
                      f"2x{f['hidden']} networks: python, dispatch, autograd, launching each op): "
                      f"ours {1e3 * f['ours_s']:.2f} ms, ref {1e3 * f['ref_s']:.2f} ms"]
        if p:
            lines.append(f"  one agent at paper size: matrix products {1e3 * p['matmul_s']:.2f} ms + fixed cost "
                         f"{1e3 * f['ours_s']:.2f} ms leave {1e3 * (p['ours_s'] - p['matmul_s'] - f['ours_s']):.2f} ms "
                         f"of ours' {1e3 * p['ours_s']:.2f} ms for elementwise work (ReLU, losses, Adam, Polyak) "
                         "and for operands that are no longer in cache")
    lines += ["", "targets:"]
    for name, w in r["rows"].items():
        t = w["target"]
        want = f"speedup >= {t['min_speedup']:g}x" + (
            f" and >= {100 * t['min_peak_fraction']:.0f}% of peak" if t["min_peak_fraction"] else "")
        got = f"{w['speedup']:.2f}x" + (f", {100 * w['ours_peak_fraction']:.1f}%" if t["min_peak_fraction"] else "")
        lines.append(f"  {name:<20} {want:<36} measured {got:<16} {'met' if t['met'] else 'NOT MET'}")
    if "lockstep_loop" in r:
        e = r["lockstep_loop"]
        lines += ["", f"lockstep loop (train.Lockstep, tutorial size, {e['agents']} agents, UTD {e['utd']}, "
                      f"dmc:cheetah-run): {e['env_steps']} env steps + {e['updates']} updates in {e['seconds']:.1f} s"
                      f" = {e['env_steps_per_s']:.2f} env steps/s, {e['ms_per_agent_update']:.2f} ms per "
                      "agent-update all included"
                      + (f" (stopped at the {LOOP_SECONDS:g} s budget)" if e["stopped_early"] else "")]
    if "mixed" in r:
        lines += ["", format_mixed(r["mixed"])]
    if "compiled" in r:
        lines += ["", format_compiled(r["compiled"]), "", format_members(r["members"]), "",
                  format_end_to_end(r["end_to_end"])]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="python -m minimal_ofn.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads for every row (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per row, median taken (default 5)")
    parser.add_argument("--quick", action="store_true", help="few iterations: checks that it runs, not a measurement")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--no-loop", action="store_true", help="skip the end-to-end lockstep loop")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is, to see what train.keep_freed_memory() buys")
    parser.add_argument("--compiled", action="store_true",
                        help="eager against the compiled whole update (compiled.py), with compile times, and the "
                             "end-to-end split (update / env / diagnostics) of the tutorials' stacks")
    parser.add_argument("--contention", action="store_true",
                        help="whole tutorial runs per thread setting, idle and beside a busy process (2 threads)")
    parser.add_argument("--cleanrl", metavar="SCRIPT", default=None,
                        help="path to CleanRL's sac_continuous_action.py: the external yardstick (docs/speed.md)")
    parser.add_argument("--cleanrl-python", default=sys.executable,
                        help="python of CleanRL's own environment (gymnasium 0.29, mujoco < 3)")
    parser.add_argument("--pairs", type=int, default=1, help="--cleanrl / --contention: rounds of runs")
    parser.add_argument("--busy-only", action="store_true", help="--contention: skip the runs without a neighbour")
    parser.add_argument("--cli", action="store_true", help="only: how long a command takes to answer a bad flag")
    args = parser.parse_args(argv)

    def run():
        if args.threads is not None and args.threads < 1:
            raise RunError(f"--threads must be >= 1, got {args.threads}")
        repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
        if repeats < 1:
            raise RunError(f"--repeats must be >= 1, got {repeats}")
        if args.pairs < 1:
            raise RunError(f"--pairs must be >= 1, got {args.pairs}")
        if args.device is not None and args.device not in ("cpu", "cuda"):
            raise RunError(f"--device must be cpu or cuda, got {args.device!r}")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise RunError("--device cuda, but torch sees no CUDA device")
        if args.cleanrl is not None and not Path(args.cleanrl).is_file():
            raise RunError(f"--cleanrl: no such file {args.cleanrl!r} (CleanRL's cleanrl/sac_continuous_action.py)")
        if args.cli:
            print(format_cli_errors(cli_error_seconds()))
            return
        if args.contention or args.cleanrl:
            if args.contention:
                print(format_contention(contention(args.pairs, idle=not args.busy_only)), flush=True)
            if args.cleanrl:
                print(format_yardstick(yardstick(args.cleanrl, args.cleanrl_python, args.pairs)))
            return
        result = run_bench(args.threads, repeats, args.quick, args.device, loop=not args.no_loop,
                           default_malloc=args.default_malloc, compiled=args.compiled)
        print(json.dumps(result, indent=2) if args.json else format_table(result))

    cli(run)


if __name__ == "__main__":
    main()
