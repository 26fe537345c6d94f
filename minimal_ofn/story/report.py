"""The story's report: every number and verdict in it is computed here from the runs (claims.py judges them).

A table of the claims with their effects, intervals and verdicts; for the contradicted and the unresolved claims the
seeds' own numbers and what else in the runs bears on them; every arm on its own; the wall times.
"""

import math

from .. import stats
from ..measures import (gap_growth, growth_rate, late_overestimation, late_return, late_value, log_growth,
                        log_over_bound, log_peak_over_bound, mean_return, onset)
from .claims import GPU_CLAIMS, describe, fmt
from .protocol import BOUNDS, DISSECT_ARMS, TEMPERATURES, Protocol, temperature_label


UNVERIFIED = (
    "Not verified from the paper itself (only its abstract and first page were available; no public code): its exact "
    "hyperparameters; its exact optimizer experiment (third-party accounts say it separates Adam's parts with "
    "SGD+momentum and RMSProp; here the critic alone takes Adam, Adam without its first moment, RMSProp, SGD and "
    "SGD+momentum 0.9 at two matched effective steps, and Adam whose m, v are reset, on a fixed buffer), the learning "
    "rates it gave SGD, and which L2 coefficient it used (here 1e-5, 1e-4 and 1e-3); its priming protocol (reported "
    "as 25k-100k updates on 1,000 samples; here 20k on cheetah-run with every arm at one temperature afterwards); "
    "and its results on 2x256 networks over hundreds of thousands of steps and on the dog tasks (GPU scale: tutorial "
    "7 and --preset paper). On the random buffer, uniform actions are the buffer's own distribution; the narrow "
    "behaviour buffer (actions N(0, 0.2^2)) is where they are unseen.")


def _iqm_ci(x) -> str:
    """IQM [95% CI] of one arm's per-seed numbers (non-finite ones dropped and counted)."""
    finite = [v for v in x if math.isfinite(v)]
    if len(finite) < 2:
        return "n/a"
    e = stats.effect(finite, reps=1_000)
    dropped = f" ({len(x) - len(finite)} nan)" if len(finite) < len(x) else ""
    return f"{fmt(e['effect'])} [{fmt(e['low'])}, {fmt(e['high'])}]{dropped}"


def _per_seed(x) -> str:
    return ", ".join(fmt(v) for v in x)


def arm_tables(results: dict, p: Protocol, act_dim: dict, gamma: float = 0.99) -> list[str]:
    """Every arm of every part on its own: IQM over seeds [95% CI] of the numbers the claims compare."""
    d, on, pr = results["dissection"], results["online"], results["priming"]
    out = ["## Every arm on its own (IQM over seeds [95% CI])", "",
           f"Part 1, the fixed buffer ({p.dissect_env}, {p.seed_steps} random transitions, {p.dissect_updates} "
           "critic-only variants' updates): log10(peak |Q| / B) on D's actions (seen) and on uniform actions "
           "(unseen; above 0 = a value no policy can have), and log10(last / first) of the critic's largest Adam "
           "second moment v (RMSProp's v for RMSProp; none for SGD).", ""]
    head = " | ".join(f"alpha {temperature_label(p, t)}: {k}" for t in TEMPERATURES for k in ("seen", "unseen", "v"))
    out += [f"| arm | {head} |", "| --- |" + " --- |" * 6]
    for arm in DISSECT_ARMS:
        cells = []
        for t in TEMPERATURES:
            runs = d[t][arm]
            for key in ("q_replay", "q_ood"):
                cells.append(_iqm_ci([log_peak_over_bound(rows, key, act_dim["dissection"], gamma, BOUNDS[t])
                                      for rows in runs]))
            cells.append(_iqm_ci([log_growth(rows, "adam_v_max") for rows in runs]) if "sgd" not in arm else "-")
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    out += ["", "Onset (the first logged update with |Q| > B on D's actions; nan: never) and growth (decades of "
            "|Q| / B "
            "per 1,000 updates from the onset to the peak), besides the peak above: a larger step can peak lower "
            "within a fixed budget while it diverges as early, so the peak alone mixes speed and size.", "",
            "| arm | " + " | ".join(f"alpha {temperature_label(p, t)}: {k}" for t in TEMPERATURES
                                   for k in ("onset", "growth")) + " |", "| --- |" + " --- |" * 4]
    for arm in DISSECT_ARMS:
        cells = [_iqm_ci([fn(rows, "q_replay", act_dim["dissection"], gamma, BOUNDS[t]) for rows in d[t][arm]])
                 for t in TEMPERATURES for fn in (onset, growth_rate)]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    out += _alpha_trajectories(d["learned"], p)
    out += ["", f"The narrow buffer ({p.seed_steps} transitions from actions N(0, {p.narrow_std:g}^2), alpha fixed at "
            f"{p.dissect_fixed_alpha:g}): log10(peak |Q| / B) on the buffer's own actions and on uniform actions, "
            "which it never saw.", "", "| arm | seen | unseen |", "| --- | --- | --- |"]
    for arm, runs in d["narrow"].items():
        out.append(f"| {arm} | " + " | ".join(_iqm_ci([log_peak_over_bound(rows, key, act_dim["dissection"], gamma)
                                                      for rows in runs]) for key in ("q_replay", "q_ood")) + " |")
    out += ["", f"Part 2, online ({p.online_env}): Q - soft MC return over the last third of learning, the soft "
            "MC return itself, the temperature at the end, and the mean evaluation return.", "",
            "| run | Q - soft MC (late) | soft MC return (late) | final alpha | mean return |",
            "| --- | --- | --- | --- | --- |"]
    names = {p.utd: f"UTD {p.utd}, {p.online_steps} learning steps", 1: f"UTD 1, {p.online_steps} learning steps",
             "1x": f"UTD 1, {p.online_steps * p.utd} learning steps (as many updates as UTD {p.utd})"}
    for utd, arms in on.items():
        every = p.online_eval_every * (p.utd if utd == "1x" else 1)
        for arm, runs in arms.items():
            late_mc = [late_value(rows, p.seed_steps, "mc_soft_return") for rows in runs]
            out.append(f"| {arm}, {names[utd]} | {_iqm_ci([late_overestimation(r, p.seed_steps) for r in runs])} | "
                       f"{_iqm_ci(late_mc)} | {_iqm_ci([rows[-1]['temperature'] for rows in runs])} | "
                       f"{_iqm_ci([mean_return(r, p.seed_steps, every) for r in runs])} |")
    out += ["", f"Part 3, priming ({p.priming_env}, UTD {p.priming_utd}, {p.priming_updates} priming updates): "
            f"every arm at alpha {p.priming_alpha:g} after priming "
            f"({'held' if p.priming_temperature_lr == 0 else 'learned'})"
            ": log10(|Q| / B) right after the random phase (and priming), the mean evaluation return over learning "
            "and over its last third, the critic's recovery (Q - soft MC return at the last log of learning minus at "
            "the first: below 0, it recovers), and the temperature at the end.", "",
            "| arm | log10(Q / B) after priming | mean return | late return | Q - soft MC: last minus first | "
            "final alpha |", "| --- | --- | --- | --- | --- | --- |"]
    for arm, runs in pr.items():
        after = [log_over_bound(next(r for r in rows if r["step"] >= p.seed_steps), "q_replay", act_dim["priming"],
                                gamma) for rows in runs]
        out.append(f"| {arm} | {_iqm_ci(after)} | "
                   f"{_iqm_ci([mean_return(r, p.seed_steps, p.priming_eval_every) for r in runs])} | "
                   f"{_iqm_ci([late_return(r, p.seed_steps, p.priming_eval_every) for r in runs])} | "
                   f"{_iqm_ci([gap_growth(r, p.seed_steps) for r in runs])} | "
                   f"{_iqm_ci([rows[-1]['temperature'] for rows in runs])} |")
    return out + [""]


def _alpha_trajectories(arms: dict, p: Protocol) -> list[str]:
    """With alpha learned: each arm's temperature and policy entropy (median over seeds) at five points of part 1,
    beside the bound B_H they enter (a rising alpha with a falling entropy must not raise the bound)."""
    def at(runs, key, share):
        values = []
        for rows in filter(None, runs):  # a run without logs has no trajectory
            row = rows[min(len(rows) - 1, round(share * (len(rows) - 1)))]
            values.append(row.get(key, math.nan))
        finite = [v for v in values if math.isfinite(v)]
        return fmt(float(sorted(finite)[len(finite) // 2])) if finite else "nan"

    shares = (0, 0.25, 0.5, 0.75, 1)
    out = ["", f"With alpha learned (from {p.dissect_alpha:g}), each arm's temperature alpha and its policy's entropy "
           "H_pi on the buffer (median over seeds) at 0, 1/4, 1/2, 3/4 and all of the updates: alpha rises when H_pi "
           "falls below its target, which is why the learned rows are judged against B_H, which counts only "
           "max(0, H_pi).", "", "| arm | alpha | H_pi |", "| --- | --- | --- |"]
    for arm, runs in arms.items():
        out.append(f"| {arm} | {' -> '.join(at(runs, 'temperature', x) for x in shares)} | "
                   f"{' -> '.join(at(runs, 'policy_entropy', x) for x in shares)} |")
    return out


def notes(judged: list[dict], scores: dict, results: dict, p: Protocol, act_dim: dict, gamma: float = 0.99,
          verdict: str = stats.CONTRADICTED) -> list[str]:
    """For each claim with this verdict: the two arms' numbers per seed, and what else in the runs bears on it."""
    out, learned_evidence = [], None
    d, on = results["dissection"], results["online"]

    for j in judged:
        if j["verdict"] != verdict:
            continue
        c, t = j["claim"], j["temperature"]
        a, b = scores[c.key, t]
        measured = describe(c, p, t)
        line = f"- **{c.paper}** ({measured}): per seed {_per_seed(a)}" + (f" against {_per_seed(b)}." if b else ".")
        if c.key == "overestimation":
            late = {u: [late_value(r, p.seed_steps, "mc_soft_return") for r in on[u]["baseline"]]
                    for u in (p.utd, "1x")}
            alpha = {u: [r[-1]["temperature"] for r in on[u]["baseline"]] for u in (p.utd, "1x")}
            line += (f" Late soft MC returns: {_per_seed(late[p.utd])} at UTD {p.utd} (final alpha "
                     f"{_per_seed(alpha[p.utd])}), {_per_seed(late['1x'])} at UTD 1 (final alpha "
                     f"{_per_seed(alpha['1x'])}).")
        if c.key == "priming_explodes":
            fixed = [log_peak_over_bound(r, "q_replay", act_dim["dissection"], gamma) for r in d["fixed"]["adam"]]
            line += (f" The same Adam update on {p.dissect_env}'s random buffer with alpha fixed at "
                     f"{p.dissect_fixed_alpha:g} reached log10(peak |Q| / B) of {_per_seed(fixed)} in "
                     f"{p.dissect_updates} updates (part 1).")
        if verdict == stats.UNRESOLVED and c.part == "dissection" and t == "learned":
            learned_evidence = learned_evidence or _learned_alpha_evidence(d, p, act_dim["dissection"], gamma)
            line += " " + learned_evidence
        out.append(line)
    return out


# Published, not measured here: means over 10 seeds of the per-seed evaluation files in evgenii-nikishin/rl_with_resets
# (its folder curves/sac/; Nikishin et al. 2022, 2x256, resets every 200k env steps).
PUBLISHED = (("cheetah-run", "109 vs 18", "502 vs 314", "869 / 788 / 891"),
             ("quadruped-run", "84 vs 92", "130 vs 63", "189 / 515 / 749"),
             ("humanoid-run", "1 vs 1", "1 vs 1", "25 / 105 / 112"),
             ("humanoid-stand", "5 vs 5", "11 vs 6", "87 / 428 / 537"))
GPU_COMMAND = ("python -m minimal_ofn.experiment --preset paper --env dmc:humanoid-run --utd 1 32 "
               "--variants baseline ofn resets --seeds 0 1 2 3 4 --out results_paper")


def gpu_section(online: dict, p: Protocol) -> list[str]:
    """The learning claims that need hundreds of thousands of steps: stated, with the published curves (marked as
    such) and the command that tests them on a GPU; what the CPU runs show of OFN is evidence, not a verdict."""
    from_claims = [f"- **{c.paper}** ({c.measured})." for c in GPU_CLAIMS]
    rows = [f"| {task} | {a} | {b} | {c} |" for task, a, b, c in PUBLISHED]
    return ["## Claims that need a GPU (not judged here)", "",
            "The paper's learning claims show after hundreds of thousands of environment steps; a CPU-sized online run "
            f"({p.online_steps} learning steps here) ends before either arm has learned, so these are not verdicts:",
            "", *from_claims, "",
            "Published, not measured here (Nikishin et al. 2022, `evgenii-nikishin/rl_with_resets`, `curves/sac/`, "
            "means over 10 seeds, 2x256; evaluation return of UTD 32 without resets vs UTD 1): on DMC high UTD is "
            "not worse early; the failure without resets shows at 200k-500k steps on humanoid and quadruped.", "",
            "| task | 20k steps | 100k steps | 500k: UTD 32 / UTD 1 / UTD 32 + resets |", "| --- | --- | --- | --- |",
            *rows, "", f"The command that tests them on a GPU (500k steps per run, 30 runs): `{GPU_COMMAND}` "
            "(docs/cluster.md runs it on a cluster; this story does not time it).", "",
            "What this story's own UTD " + str(p.utd) + " runs show of OFN meanwhile: " +
            _ofn_alignment_evidence(online[p.utd], p), ""]


def _ofn_alignment_evidence(arms: dict, p: Protocol) -> str:
    """What OFN's runs did while learning: the alignment (diagnostics.py) against the baseline's numbers, and the two
    arms compared at the last evaluation instead of over the whole run."""
    def over_learning(runs, key, pick):
        return [pick((r[key] for r in rows if r["step"] > p.seed_steps and math.isfinite(r.get(key, math.nan))),
                     default=math.nan) for rows in runs]  # nan: a run from before that metric was logged

    def last_eval(runs):
        return [next((r["eval_return"] for r in reversed(rows) if math.isfinite(r["eval_return"])), math.nan)
                for rows in runs]

    def both(key, pick):
        ofn, base = (_per_seed(over_learning(arms[arm], key, pick)) for arm in ("ofn", "baseline"))
        return f"{ofn} (baseline {base})"

    text = (f"How far OFN's critic aligned its features with its head while learning (tutorial 5's transient): the "
            f"largest batch-mean cos(phi, w) was {both('cos_phi_w', max)}, the smallest spread of Q over a batch "
            f"{both('q_spread', min)}, and the lowest evaluation return {both('eval_return', min)}.")
    last = {arm: last_eval(arms[arm]) for arm in ("ofn", "baseline")}
    if all(math.isfinite(v) for x in last.values() for v in x):
        e = stats.effect(last["ofn"], last["baseline"])
        text += (f" At the last evaluation (step {arms['ofn'][0][-1]['step']}), OFN minus baseline is "
                 f"{fmt(e['effect'])} [{fmt(e['low'])}, {fmt(e['high'])}] ({stats.verdict(e)}), returns "
                 f"{_per_seed(last['ofn'])} against {_per_seed(last['baseline'])}.")
    return text


def _learned_alpha_evidence(d: dict, p: Protocol, act_dim: int, gamma: float) -> str:
    """How far apart the arms end up with the temperature learned, against held (the dissection's own numbers)."""
    def spread(t):
        iqms = [stats.iqm([x for x in (log_peak_over_bound(r, "q_replay", act_dim, gamma, BOUNDS[t]) for r in runs)
                           if math.isfinite(x)] or [math.nan]) for runs in d[t].values()]
        return min(iqms), max(iqms)

    (lo, hi), (flo, fhi) = spread("learned"), spread("fixed")
    alphas = [r[-1]["temperature"] for r in d["learned"]["adam"]]
    return (f"With alpha learned, every arm's IQM log10(peak |Q| / B) lies in [{fmt(lo)}, {fmt(hi)}] (held at "
            f"{p.dissect_fixed_alpha:g}: [{fmt(flo)}, {fmt(fhi)}]); Adam's alpha ended at "
            f"{', '.join(fmt(a) for a in alphas)} (learned rows: B_H = (r_max + alpha max(0, H_pi)) / (1 - gamma)).")


def report(p: Protocol, judged: list[dict], command: str, lines: list[str] = (), tables: list[str] = (),
           notes: list[str] = (), open_notes: list[str] = (), gpu: list[str] = ()) -> str:
    counts = {v: sum(j["verdict"] == v for j in judged) for v in (stats.HOLDS, stats.CONTRADICTED, stats.UNRESOLVED)}
    out = [f"# The paper's claims, measured (`{command}`)", "",
           f"Protocol: {p}.", "",
           "Each effect is IQM(arm A) - IQM(arm B) over seeds with a 95% stratified bootstrap interval (rliable); "
           "HOLDS = the interval lies above 0, CONTRADICTED = below 0, UNRESOLVED = it contains 0 "
           "(see minimal_ofn/stats.py, minimal_ofn/measures.py and minimal_ofn/story/ for every definition).", "",
           f"{counts[stats.HOLDS]} hold, {counts[stats.CONTRADICTED]} are contradicted, "
           f"{counts[stats.UNRESOLVED]} are unresolved at this scale.", "",
           "| # | the paper says | effect measured | IQM effect [95% CI] | seeds | verdict |",
           "| --- | --- | --- | --- | --- | --- |"]
    for k, j in enumerate(judged, 1):
        c = j["claim"]
        seeds = str(j["n"][0]) if j["one_sample"] else f"{j['n'][0]} vs {j['n'][1]}"
        dropped = f" ({j['dropped']} non-finite dropped)" if j["dropped"] else ""
        measured = describe(c, p, j["temperature"]).replace("|", "\\|")
        out.append(f"| {k} | {c.paper} | {measured} | {fmt(j['effect'])} "
                   f"[{fmt(j['low'])}, {fmt(j['high'])}] | {seeds}{dropped} | **{j['verdict']}** |")
    out += ["", UNVERIFIED, ""]
    if notes:
        out += ["## Why the contradicted claims fail here (computed from the same runs)", "", *notes, ""]
    if open_notes:
        out += ["## What the unresolved claims' seeds say (computed from the same runs)", "",
                "Each interval contains 0: the seeds' numbers below straddle it or differ too little for 5 seeds.", "",
                *open_notes, ""]
    out += [*gpu, *tables]
    if lines:
        out += ["Wall time of each stack (--jobs worker processes side by side, one thread each; a stack whose runs "
                "were already finished takes seconds): " + "; ".join(lines) + ".", ""]
    out += ["Figures: story_dissection.png, story_online.png, story_priming.png.", ""]
    return "\n".join(out)
