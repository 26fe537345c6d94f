"""The paper's claims, each "effect > 0" for an effect measured on the runs of two arms (or one arm against 0).

claim_scores turns the story's runs into one number per seed and arm (measures.py); judge turns two arms' numbers
into an IQM effect with its 95% interval and a verdict (stats.py). Nothing in the report is typed in.
"""

import math
from dataclasses import dataclass

from .. import stats
from ..measures import late_overestimation, log_growth, log_over_bound, log_peak_over_bound, mean_return
from .protocol import TEMPERATURES, Protocol



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
    Claim("momentum", "Divergence is propelled by optimizer momentum",
          "log10 peak |Q|, critic Adam beta1 0.9 minus beta1 0, alpha {alpha}", "dissection"),
    Claim("momentum_sgd", "... (momentum without Adam's scaling)",
          "log10 peak |Q|, critic SGD momentum 0.9 minus plain SGD, alpha {alpha}", "dissection"),
    Claim("second_moment", "... (Adam's second moment alone)",
          "log10(peak |Q| / B) on D's actions, critic RMSProp, alpha {alpha}", "dissection"),
    Claim("moments_grow", "Adam's moment estimates grow during divergence",
          "log10(last / first) of the critic's largest Adam v, Adam, alpha {alpha}", "dissection"),
    Claim("dropout_helps", "Dropout helps a little",
          "log10 peak |Q|, Adam minus dropout, alpha {alpha}", "dissection"),
    Claim("l2_helps", "L2 helps a little",
          "log10 peak |Q|, Adam minus L2 loss penalty, alpha {alpha}", "dissection"),
    Claim("ofn_beats_dropout", "... but less than OFN",
          "log10 peak |Q|, dropout minus OFN, alpha {alpha}", "dissection"),
    Claim("ofn_stops_offline", "OFN stops the divergence (fixed buffer)",
          "log10 peak |Q|, Adam minus OFN, alpha {alpha}", "dissection"),
    Claim("ofn_stops_online", "OFN stops the overestimation at high UTD",
          "late (Q - soft MC return) at UTD {utd}, baseline minus OFN", "online"),
    Claim("ofn_learns", "With OFN, high-UTD SAC learns",
          "mean evaluation return at UTD {utd}, OFN minus baseline", "online"),
    Claim("high_utd_hurts", "Past a point, raising the UTD stops SAC learning",
          "mean evaluation return, baseline at UTD 1 minus at UTD {utd}", "online"),
    Claim("priming_explodes", "Priming sends Q beyond any possible value",
          "log10(|Q| / B) on D's actions right after priming, primed baseline", "priming"),
    Claim("priming_slows", "A primed agent learns more slowly (primacy bias)",
          "mean evaluation return, baseline minus primed baseline", "priming"),
    Claim("reset_recovers", "A reset after priming recovers",
          "mean evaluation return, primed baseline with a reset minus primed baseline", "priming"),
    Claim("ofn_primes_safely", "With OFN, priming does little harm",
          "mean evaluation return, primed OFN minus primed baseline", "priming"),
)


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
        return each(d[temp][arm], lambda rows: log_peak_over_bound(rows, key, act_dim["dissection"], gamma))

    def over(utd, arm):
        return each(on[utd][arm], lambda rows: late_overestimation(rows, p.seed_steps))

    def ret(runs, part):
        every = p.online_eval_every if part == "online" else p.priming_eval_every
        return each(runs, lambda rows: mean_return(rows, p.seed_steps, every))

    def after_priming(rows):
        return log_over_bound(next(r for r in rows if r["step"] >= p.seed_steps), "q_replay", act_dim["priming"], gamma)

    u = p.utd
    out = {
        ("overestimation", None): (over(u, "baseline"), over("1x", "baseline")),
        ("ofn_stops_online", None): (over(u, "baseline"), over(u, "ofn")),
        ("ofn_learns", None): (ret(on[u]["ofn"], "online"), ret(on[u]["baseline"], "online")),
        ("high_utd_hurts", None): (ret(on[1]["baseline"], "online"), ret(on[u]["baseline"], "online")),
        ("priming_explodes", None): (each(pr["baseline+priming"], after_priming), None),
        ("priming_slows", None): (ret(pr["baseline"], "priming"), ret(pr["baseline+priming"], "priming")),
        ("reset_recovers", None): (ret(pr["baseline+priming+reset"], "priming"),
                                   ret(pr["baseline+priming"], "priming")),
        ("ofn_primes_safely", None): (ret(pr["ofn+priming"], "priming"), ret(pr["baseline+priming"], "priming")),
    }
    for t in TEMPERATURES:
        out.update({
            ("diverges_seen", t): (log_peak(t, "adam"), None),
            ("diverges_unseen", t): (log_peak(t, "adam", "q_ood"), None),
            ("momentum", t): (log_peak(t, "adam"), log_peak(t, "critic_beta1=0")),
            ("momentum_sgd", t): (log_peak(t, "sgd+momentum"), log_peak(t, "sgd")),
            ("second_moment", t): (log_peak(t, "rmsprop"), None),
            ("moments_grow", t): (each(d[t]["adam"], lambda rows: log_growth(rows, "adam_v_max")), None),
            ("dropout_helps", t): (log_peak(t, "adam"), log_peak(t, "dropout")),
            ("l2_helps", t): (log_peak(t, "adam"), log_peak(t, "l2")),
            ("ofn_beats_dropout", t): (log_peak(t, "dropout"), log_peak(t, "ofn")),
            ("ofn_stops_offline", t): (log_peak(t, "adam"), log_peak(t, "ofn")),
        })
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
