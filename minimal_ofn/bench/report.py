"""The bench's tables: every result dict as the lines it prints."""

import math
import statistics

from .loops import LOOP_SECONDS
from .processes import CONTENTION_TRAIN


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
    lines = ["whole update compiled (sac.py's update as one torch.compile graph) against it eager, same stack, "
             "interleaved blocks, ms per agent-update:",
             f"  {'row':<22} {'eager':>7} {'compiled':>8} {'speedup':>7} | {'compile s':>9} | "
             f"{'pays off after (updates)':>24}"]
    for name, w in rows.items():
        lines.append(f"  {name:<22} {w['eager_ms_per_agent_update']:>7.2f} {w['compiled_ms_per_agent_update']:>8.2f} "
                     f"{w['speedup']:>6.2f}x | {w['compile_s']:>9.1f} | {w['break_even_updates']:>24.0f}")
    lines.append("  (compile s: the first compiled call, cold or from Inductor's on-disk cache if an earlier process "
                 "compiled the same graph; pays off after: compile time / time saved per lockstep update)")
    return "\n".join(lines)


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


def format_end_to_end(rows: dict) -> str:
    utd = next(iter(rows.values()))["utd"]
    lines = [f"end to end (lockstep.Lockstep, tutorial preset, UTD {utd}, dmc:cheetah-run; eager and compiled "
             "alternating step by step; diagnostics charged at the preset's log/eval intervals), ms per agent-update:",
             f"  {'stack':<28} {'path':>8} {'total':>7} {'update':>7} {'env':>6} {'diag':>6} | "
             f"{'one log s':>9} {'one eval s':>10}"]
    for name, row in rows.items():
        for path, w in row["paths"].items():
            m = w["ms_per_agent_update"]
            lines.append(f"  {name:<28} {path:>8} {w['total_ms_per_agent_update']:>7.2f} {m['update']:>7.2f} "
                         f"{m['env']:>6.3f} {m['diagnostics']:>6.3f} | {w['log_s']:>9.2f} {w['eval_s']:>10.2f}")
    return "\n".join(lines)


def _verdict(w) -> str:
    """'met', or what keeps the target out of reach: an update that were only its matrix products (the floor
    above) would be the reference's time over theirs faster, and no faster."""
    if w["target"]["met"]:
        return "met"
    ceiling = w["ref_s"] / w["matmul_s"]
    if ceiling < w["target"]["min_speedup"]:
        return (f"out of reach here: the matrix products alone allow {ceiling:.2f}x at most "
                "(the reference's time over the floor's)")
    return (f"not reached: the floor allows {ceiling:.2f}x; ours spends "
            f"{100 * (1 - w['matmul_s'] / w['ours_s']):.0f}% of its update outside its matrix products")


def _fmt(x):
    return "n/a" if x is None else f"{x:.1f}"


def _busy_warning(r) -> list:
    # Threads spinning at OpenMP barriers while their core runs someone else make every figure many times too slow
    # (threads.py; docs/speed.md).
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
        lines.append(f"  {name:<20} {want:<36} measured {got:<16} {_verdict(w)}")
    if "lockstep_loop" in r:
        e = r["lockstep_loop"]
        lines += ["", f"lockstep loop (lockstep.Lockstep, tutorial size, {e['agents']} agents, UTD {e['utd']}, "
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


def format_cli_errors(seconds: dict) -> str:
    return ("a bad flag answered in: " + ", ".join(f"{c} {s:.2f} s" for c, s in seconds.items())
            + " (median of 3 whole processes; the aim is under 2 s)")
