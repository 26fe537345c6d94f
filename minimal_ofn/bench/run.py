"""The bench's command line: `python -m minimal_ofn.bench` (its flags in the package docstring)."""

import json
import os
import sys
from pathlib import Path

import torch

from .. import gpu_check
from . import envs as env_bench
from ..cli import Parser, RunError, cli
from ..memory import keep_freed_memory
from .floors import matmul_peak
from .loops import END_TO_END_ROWS, LOOP_SECONDS, end_to_end, lockstep_loop
from .processes import cli_error_seconds, contention, yardstick
from .report import format_cli_errors, format_contention, format_table, format_yardstick
from .scaling import format_scaling, scaling
from .timing import ACT_DIM, OBS_DIM, load_average
from .updates import (COMPILED_ROWS, ROWS, judge, measure_compiled_row, measure_row, mixed_vs_homogeneous,
                      mixed_vs_members)


def run_bench(threads=None, repeats=5, quick=False, device=None, loop=True, default_malloc=False,
              compiled=False) -> dict:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if threads is not None:
        torch.set_num_threads(threads)
    # The training loop does this on CPU (train.keep_freed_memory); in one process it serves ours and the reference.
    kept = False if default_malloc or device.type != "cpu" else keep_freed_memory()
    size = 1024 if quick else 2048 if device.type == "cpu" else 8192
    result = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "load_before": load_average(), "keep_freed_memory": kept,
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
    result["load_after"] = load_average()
    return result


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
                        help="eager against the compiled whole update (SAC.compile), with compile times, and the "
                             "end-to-end split (update / env / diagnostics) of the tutorials' stacks")
    parser.add_argument("--scaling", action="store_true",
                        help="only the rows by stack size: ops per learning step and ms per agent-update for 1, 8 and "
                             "64 agents, eager and compiled, tutorial and paper size (minutes; --quick: 1 and 2, eager)")
    parser.add_argument("--contention", action="store_true",
                        help="whole tutorial runs per thread setting, idle and beside a busy process (2 threads)")
    parser.add_argument("--cleanrl", metavar="SCRIPT", default=None,
                        help="path to CleanRL's sac_continuous_action.py: the external yardstick (docs/speed.md)")
    parser.add_argument("--cleanrl-python", default=sys.executable,
                        help="python of CleanRL's own environment (gymnasium 0.29, mujoco < 3)")
    parser.add_argument("--pairs", type=int, default=1, help="--cleanrl / --contention: rounds of runs")
    parser.add_argument("--busy-only", action="store_true", help="--contention: skip the runs without a neighbour")
    parser.add_argument("--envs", action="store_true", help="only: env steps/s of 16 and 64 dog agents, serial "
                        "against worker processes (python -m minimal_ofn.bench.envs takes --env, --agents, --workers)")
    parser.add_argument("--cli", action="store_true", help="only: how long a command takes to answer a bad flag")
    parser.add_argument("--gpu-check", action="store_true",
                        help="only: the GPU check (python -m minimal_ofn.gpu_check: tests, compiled vs eager, timings, "
                             "end-to-end stacks on CUDA; writes docs/gpu.md); without CUDA it says so in one line")
    args = parser.parse_args(argv)
    if args.gpu_check:
        sys.exit(gpu_check.main([]))
    if args.envs:
        return env_bench.main([])

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
        if args.scaling:
            device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            r = scaling(device, repeats, None if args.quick else 0.4, 1 if args.quick else 3,
                        agents=(1, 2) if args.quick else (1, 8, 64), compiled=not args.quick)
            print(json.dumps(r, indent=2) if args.json else format_scaling(r))
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
