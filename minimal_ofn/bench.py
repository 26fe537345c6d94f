"""How fast is one SAC update? Our stacked SAC against SAC written the usual way.

    python -m minimal_ofn.bench [--threads T] [--repeats R] [--quick] [--json] [--device D] [--no-loop]
                                [--default-malloc]

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
Last, an end-to-end figure: env steps/s of the training loop (train.Lockstep).
"""

import json
import os
import statistics
import time

import torch

from .config import preset
from .plain_sac import PlainSAC
from .sac import SAC
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
    shapes = update_matmuls(batch, hidden, depth, OBS_DIM, ACT_DIM, n)
    operands = [(torch.randn(s, m, k, device=device), torch.randn(s, k, o, device=device),
                 torch.empty(s, m, o, device=device)) for s, m, k, o in shapes]

    def products():
        for a, b, out in operands:
            torch.bmm(a, b, out=out)

    _seconds_per_call(products, 5, device)
    iters = max(2, round(0.2 / _seconds_per_call(products, 3, device)))
    return statistics.median(_seconds_per_call(products, iters, device) for _ in range(repeats))


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


def lockstep_loop(device, updates, seed_steps, max_seconds=20.0) -> dict:
    """Env steps/s of train.Lockstep (tutorial size, 5 agents, UTD 32, dmc:cheetah-run), past the random phase.

    Stops early once max_seconds have been spent in the timed part (a busy machine), and says so."""
    utd = 32
    configs = [preset("tutorial", seed=i, utd=utd, seed_steps=seed_steps, device=device.type) for i in range(5)]
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


def _load():
    """1-minute load average (None where the OS has none): a busy shared CPU slows every row."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def judge(name, speedup, peak_fraction) -> dict:
    """The row's target, and whether the measured speedup (and fraction of peak, where asked) meet it."""
    min_speedup, min_fraction = TARGETS[name]
    met = speedup >= min_speedup and (min_fraction is None or peak_fraction >= min_fraction)
    return {"min_speedup": min_speedup, "min_peak_fraction": min_fraction, "met": met}


def run_bench(threads=None, repeats=5, quick=False, device=None, loop=True, default_malloc=False) -> dict:
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
    if loop:
        result["lockstep_loop"] = lockstep_loop(device, updates=128 if quick else 2000,
                                                seed_steps=128 if quick else 1000, max_seconds=LOOP_SECONDS)
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
    return "\n".join(lines)


def main(argv=None):
    parser = Parser(prog="python -m minimal_ofn.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads for every row (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per row, median taken (default 5)")
    parser.add_argument("--quick", action="store_true", help="few iterations: checks that it runs, not a measurement")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--no-loop", action="store_true", help="skip the end-to-end lockstep loop")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is, to see what train.keep_freed_memory() buys")
    args = parser.parse_args(argv)

    def run():
        if args.threads is not None and args.threads < 1:
            raise RunError(f"--threads must be >= 1, got {args.threads}")
        repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
        if repeats < 1:
            raise RunError(f"--repeats must be >= 1, got {repeats}")
        if args.device is not None and args.device not in ("cpu", "cuda"):
            raise RunError(f"--device must be cpu or cuda, got {args.device!r}")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise RunError("--device cuda, but torch sees no CUDA device")
        result = run_bench(args.threads, repeats, args.quick, args.device, loop=not args.no_loop,
                           default_malloc=args.default_malloc)
        print(json.dumps(result, indent=2) if args.json else format_table(result))

    cli(run)


if __name__ == "__main__":
    main()
