"""The paper's claims, each "effect > 0" for an effect measured on the runs of two arms (or one arm against 0).

claim_scores turns the story's runs into one number per seed and arm (measures.py); judge turns two arms' numbers
into an IQM effect with its 95% interval and a verdict (stats.py). Nothing in the report is typed in.
"""

import math
from dataclasses import dataclass

from .. import stats
from ..measures import (gap_growth, late_overestimation, late_return, log_growth, log_over_bound, log_peak_over_bound,
                        mean_return)
from .protocol import BOUNDS, L2_ARMS, MATCHED_PAIRS, OPT_RESET_ARMS, TEMPERATURES, Protocol, temperature_label



@dataclass(frozen=True)
class Claim:
    key: str
    paper: str  # what the paper says, in short
    measured: str  # what the effect is, in words
    part: str


CLAIMS = (
    Claim("overestimation", "At high UTD the critic overestimates",
          "late (Q - soft MC return), baseline at UTD {utd} minus at UTD 1, equal updates", "online"),
    Claim("diverges_seen", "Q diverges on seen actions (fixed early buffer)",
          "log10(peak |Q| / B) on D's actions, Adam, alpha {alpha}", "dissection"),
    Claim("diverges_unseen", "... and on unseen actions",
          "log10(peak |Q| / B) on uniform actions, Adam, alpha {alpha}", "dissection"),
    Claim("diverges_unseen_narrow", "... on actions the buffer never saw (a narrow behaviour buffer)",
          "log10(peak |Q| / B) on uniform actions, Adam, buffer of N(0, {std}^2) actions, alpha fixed", "narrow"),
    Claim("unseen_above_seen", "... more than on the actions it saw",
          "log10 peak |Q| on uniform actions minus on the buffer's own, Adam, narrow buffer", "narrow"),
    Claim("ofn_stops_narrow", "OFN stops it there too",
          "log10 peak |Q| on uniform actions, Adam minus OFN, narrow buffer", "narrow"),
    Claim("momentum", "Divergence is propelled by optimizer momentum",
          "log10 peak |Q|, critic Adam minus Adam without its first moment (beta1 0), alpha {alpha}", "dissection"),
    Claim("momentum_sgd_small", "... (momentum without Adam's scaling, at a matched effective step)",
          "log10 peak |Q|, critic SGD momentum 0.9 at lr 3e-5 minus plain SGD at 3e-4, alpha {alpha}", "dissection"),
    Claim("momentum_sgd_large", "... (the same at a 10x larger step)",
          "log10 peak |Q|, critic SGD momentum 0.9 at lr 3e-4 minus plain SGD at 3e-3, alpha {alpha}", "dissection"),
    Claim("moments_propel", "The moment estimates propel it (a causal test)",
          "log10 peak |Q|, critic Adam minus Adam whose m, v are reset every {reset} updates, alpha {alpha}",
          "dissection"),
    Claim("second_moment", "... (Adam's second moment alone)",
          "log10(peak |Q| / B) on D's actions, critic RMSProp, alpha {alpha}", "dissection"),
    Claim("second_vs_first", "Adam's second moment drives more than momentum (steps not commensurable)",
          "log10 peak |Q|, critic RMSProp minus SGD momentum 0.9, both at lr 3e-4, alpha {alpha}", "dissection"),
    Claim("adam_vs_first", "... and Adam more than momentum alone (steps not commensurable)",
          "log10 peak |Q|, critic Adam minus SGD momentum 0.9, both at lr 3e-4, alpha {alpha}", "dissection"),
    Claim("moments_grow", "Adam's moment estimates grow during divergence",
          "log10(last / first) of the critic's largest Adam v, Adam, alpha {alpha}", "dissection"),
    Claim("dropout_helps", "Dropout helps a little",
          "log10 peak |Q|, Adam minus dropout 0.01, alpha {alpha}", "dissection"),
    *(Claim(f"l2_helps_{c}", "L2 helps a little" if c == "1e-5" else "...",
            f"log10 peak |Q|, Adam minus L2 loss penalty {c}, alpha {{alpha}}", "dissection")
      for c in ("1e-5", "1e-4", "1e-3")),
    Claim("ofn_beats_dropout", "... but less than OFN",
          "log10 peak |Q|, dropout minus OFN, alpha {alpha}", "dissection"),
    *(Claim(f"ofn_beats_l2_{c}", "...", f"log10 peak |Q|, L2 loss penalty {c} minus OFN, alpha {{alpha}}",
            "dissection") for c in ("1e-5", "1e-4", "1e-3")),
    Claim("ofn_stops_offline", "OFN stops the divergence (fixed buffer)",
          "log10 peak |Q|, Adam minus OFN, alpha {alpha}", "dissection"),
    Claim("ofn_stops_online", "OFN stops the overestimation at high UTD",
          "late (Q - soft MC return) at UTD {utd}, baseline minus OFN", "online"),
    Claim("ofn_stops_online_low_alpha", "... (alpha from 0.1, past OFN's alignment transient)",
          "late (Q - soft MC return) at UTD {utd}, alpha from 0.1, baseline minus OFN", "online"),
    Claim("priming_explodes", "Priming sends Q beyond any possible value",
          "log10(|Q| / B) on D's actions right after priming, primed baseline", "priming"),
    Claim("priming_keeps_growing", "... and the primed critic's overestimation keeps growing while it learns",
          "Q - soft MC return, last minus first log of learning, primed baseline", "priming"),
    Claim("priming_slows", "A primed agent learns more slowly (primacy bias)",
          "late evaluation return, baseline minus primed baseline", "priming"),
    Claim("reset_recovers", "A reset after priming recovers",
          "late evaluation return, primed baseline with a reset minus primed baseline", "priming"),
    Claim("opt_reset_recovers", "... and so does forgetting only the critic's optimizer state (m, v)",
          "late evaluation return, primed baseline with a critic-optimizer reset minus primed baseline", "priming"),
    Claim("ofn_primes_safely", "With OFN, priming does little harm",
          "late evaluation return, primed OFN minus primed baseline", "priming"),
)
# Claims that need hundreds of thousands of environment steps (a GPU): stated in the report with the published
# curves and the command that tests them, never judged on this CPU's short runs (report.gpu_section).
GPU_CLAIMS = (
    Claim("ofn_learns", "With OFN, high-UTD SAC learns", "mean evaluation return at UTD 32, OFN minus baseline", "gpu"),
    Claim("high_utd_hurts", "Past a point, raising the UTD stops SAC learning",
          "mean evaluation return, baseline at UTD 1 minus at UTD 32", "gpu"),
)


def describe(c: Claim, p: Protocol, temperature=None) -> str:
    """What a claim's effect measures, in words, with the protocol's numbers filled in."""
    return c.measured.format(utd=p.utd, alpha=temperature_label(p, temperature), reset=p.dissect_opt_reset_every,
                             std=p.narrow_std)


def judged_claims() -> list[tuple]:
    """Every (claim, temperature) as judged: dissection claims once per temperature, the rest once (None)."""
    return [(c, t) for c in CLAIMS for t in (TEMPERATURES if c.part == "dissection" else (None,))]


def claim_scores(results: dict, p: Protocol, act_dim: dict, gamma: float = 0.99) -> dict:
    """{(claim key, temperature): (scores of arm A, scores of arm B or None)}: one number per seed.

    results["online"] holds UTD `p.utd`, 1 (as many steps) and "1x" (UTD 1 for as many updates)."""
    d, on, pr = results["dissection"], results["online"], results["priming"]

    def each(runs, fn):
        return [fn(rows) for rows in runs]

    def log_peak(temp, arm, key="q_replay"):
        return each(d[temp][arm], lambda rows: log_peak_over_bound(rows, key, act_dim["dissection"], gamma,
                                                                   BOUNDS[temp]))

    def over(utd, arm):
        return each(on[utd][arm], lambda rows: late_overestimation(rows, p.seed_steps))

    def ret(runs, part):
        every = p.online_eval_every if part == "online" else p.priming_eval_every
        return each(runs, lambda rows: mean_return(rows, p.seed_steps, every))

    def after_priming(rows):
        return log_over_bound(next(r for r in rows if r["step"] >= p.seed_steps), "q_replay", act_dim["priming"], gamma)

    def late(runs):
        return each(runs, lambda rows: late_return(rows, p.seed_steps, p.priming_eval_every))

    u, low = p.utd, "@alpha=0.1"
    out = {
        ("overestimation", None): (over(u, "baseline"), over("1x", "baseline")),
        ("ofn_stops_online", None): (over(u, "baseline"), over(u, "ofn")),
        ("ofn_stops_online_low_alpha", None): (over(u, "baseline" + low), over(u, "ofn" + low)),
        ("ofn_learns", None): (ret(on[u]["ofn"], "online"), ret(on[u]["baseline"], "online")),
        ("high_utd_hurts", None): (ret(on[1]["baseline"], "online"), ret(on[u]["baseline"], "online")),
        ("priming_explodes", None): (each(pr["baseline+priming"], after_priming), None),
        ("priming_keeps_growing", None): (each(pr["baseline+priming"], lambda r: gap_growth(r, p.seed_steps)), None),
        ("priming_slows", None): (late(pr["baseline"]), late(pr["baseline+priming"])),
        ("reset_recovers", None): (late(pr["baseline+priming+reset"]), late(pr["baseline+priming"])),
        ("opt_reset_recovers", None): (late(pr["baseline+priming+opt_reset"]), late(pr["baseline+priming"])),
        ("ofn_primes_safely", None): (late(pr["ofn+priming"]), late(pr["baseline+priming"])),
    }
    def narrow(arm, key):
        return each(d["narrow"][arm], lambda rows: log_peak_over_bound(rows, key, act_dim["dissection"], gamma))

    out.update({
        ("diverges_unseen_narrow", None): (narrow("adam", "q_ood"), None),
        ("unseen_above_seen", None): ([u - s for u, s in zip(narrow("adam", "q_ood"), narrow("adam", "q_replay"))],
                                      None),
        ("ofn_stops_narrow", None): (narrow("adam", "q_ood"), narrow("ofn", "q_ood")),
    })
    (small, plain), (large, fast) = MATCHED_PAIRS
    for t in TEMPERATURES:
        out.update({
            ("diverges_seen", t): (log_peak(t, "adam"), None),
            ("diverges_unseen", t): (log_peak(t, "adam", "q_ood"), None),
            ("momentum", t): (log_peak(t, "adam"), log_peak(t, "critic_beta1=0")),
            ("momentum_sgd_small", t): (log_peak(t, small), log_peak(t, plain)),
            ("momentum_sgd_large", t): (log_peak(t, large), log_peak(t, fast)),
            ("moments_propel", t): (log_peak(t, "adam"), log_peak(t, OPT_RESET_ARMS[0])),
            ("second_moment", t): (log_peak(t, "rmsprop"), None),
            ("second_vs_first", t): (log_peak(t, "rmsprop"), log_peak(t, "sgd+momentum")),
            ("adam_vs_first", t): (log_peak(t, "adam"), log_peak(t, "sgd+momentum")),
            ("moments_grow", t): (each(d[t]["adam"], lambda rows: log_growth(rows, "adam_v_max")), None),
            ("dropout_helps", t): (log_peak(t, "adam"), log_peak(t, "dropout")),
            ("ofn_beats_dropout", t): (log_peak(t, "dropout"), log_peak(t, "ofn")),
            ("ofn_stops_offline", t): (log_peak(t, "adam"), log_peak(t, "ofn")),
        })
        for c, arm in zip(("1e-5", "1e-4", "1e-3"), L2_ARMS):
            out[f"l2_helps_{c}", t] = (log_peak(t, "adam"), log_peak(t, arm))
            out[f"ofn_beats_l2_{c}", t] = (log_peak(t, arm), log_peak(t, "ofn"))
    return out


def judge(scores: dict, reps: int = 2_000, keys=None) -> list[dict]:
    """Each (claim, temperature) with its effect, 95% interval and verdict (stats.effect / stats.verdict);
    keys: only the claims with these keys."""
    out = []
    for claim, temp in judged_claims():
        if keys is not None and claim.key not in keys:
            continue
        a, b = scores[claim.key, temp]
        finite = [x for x in a if math.isfinite(x)], None if b is None else [x for x in b if math.isfinite(x)]
        dropped = len(a) - len(finite[0]) + (0 if b is None else len(b) - len(finite[1]))
        if not finite[0] or (b is not None and not finite[1]):  # e.g. runs from before a metric was logged
            e = {"effect": math.nan, "low": math.nan, "high": math.nan, "n": (0, 0 if b is not None else 1)}
        else:
            e = stats.effect(*finite, reps=reps)
        out.append({"claim": claim, "temperature": temp, **e, "verdict": stats.verdict(e), "dropped": dropped,
                    "one_sample": b is None})
    return out


def fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def live(name: str, a, b=None) -> str:
    """A live run's effect IQM(a) - IQM(b) (b None: against 0) as one line: with its interval and verdict when
    every arm has 3 seeds or more, else the bare difference, marked as one that no seed count can judge."""
    a = [x for x in a if math.isfinite(x)]
    b = None if b is None else [x for x in b if math.isfinite(x)]
    if not a or (b is not None and not b):
        return f"  this run: {name} = nan (no finite value)"
    if len(a) >= 3 and (b is None or len(b) >= 3):
        e = stats.effect(a, b)
        return (f"  this run: {stats.verdict(e):<13} {name} = {fmt(e['effect'])} [{fmt(e['low'])}, "
                f"{fmt(e['high'])}] over {len(a)} seeds")
    d = stats.iqm(a) - (0.0 if b is None else stats.iqm(b))
    return f"  this run: {name} = {fmt(d)} ({len(a)} seed{'s' if len(a) > 1 else ''}: no interval; 3 or more give one)"
