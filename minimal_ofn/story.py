"""The paper's story, measured: three experiments, and every claim an effect with a 95% interval.

Hussing et al. (2024) claim that at high UTD SAC's critic overestimates and diverges early,
on seen and unseen actions, propelled by the optimizer's momentum; that dropout and L2 help a
little; and that OFN stops the divergence. Each claim is tested where it can be on a 2-core CPU:

Part 1, dissection (offline): a fixed early buffer D of `seed_steps` random transitions and
  `dissect_updates` SAC updates on D alone, so nothing but the update rule moves Q. Critic-only
  variants of the optimizer (Adam, Adam without momentum, RMSProp, SGD with and without momentum)
  and of the regularizers, each with the temperature learned (from SAC's usual 1) and fixed at a
  small value (0.01: the entropy bonus then neither confounds the optimizer nor dominates the
  bound below, and what rises above it is the critic's own doing). On D no value can exceed

      B = (r_max + alpha |A| log 2) / (1 - gamma)     (r_max: the largest reward in D; |A| log 2:
                                                       the largest entropy of a policy on [-1, 1]^|A|)

  so divergence is measured as log10(max over updates of |Q| / B) on D's own actions (seen) and on
  uniform actions (unseen), and the optimizer's moments as log10 of the critic's largest v.
Part 2, online: UTD `utd` against UTD 1. Overestimation is the critic's Q on its own rollouts
  minus their *soft* Monte Carlo return (the entropy bonus at the agent's own alpha included: what
  a soft critic estimates, diagnostics.monte_carlo), averaged over the last third of the learning
  phase, i.e. past SAC's temperature transient (alpha falls about 3e-4 per update in log space, so
  the transient is counted in updates). UTD 1 is therefore run twice: for as many environment steps
  as UTD `utd` (the return comparison: same data) and for as many updates (the overestimation
  comparison: same temperature schedule, `utd` times the data per update). Learning is the mean
  evaluation return over the learning phase.
Part 3, priming then learning (Nikishin et al. 2022): `priming_updates` updates on the random
  transitions, then every arm goes on at the same UTD on a task where the unprimed agent learns
  within the budget; learning speed is the area under the evaluation-return curve.

Effects and verdicts are computed by stats.py (IQM over seeds, rliable's stratified bootstrap);
nothing in the report is typed in: `report()` prints what `judge()` measured.

    python -m minimal_ofn.story --out docs/story            # run (resumably) and write docs/story/story.md
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config as cfgmod
from . import stats
from .config import Config
from .runs import committed_story


# ---- the protocol: arms of each part, as Config changes over that part's base
@dataclass(frozen=True)
class Protocol:
    seeds: tuple = (0, 1, 2, 3, 4)
    # Part 1
    dissect_env: str = "dmc:cheetah-run"
    dissect_updates: int = 20_000  # a pilot (alpha 0.01, 2 seeds): Adam's Q passes B near 8k updates, 30-200 B by 20k
    dissect_log_every: int = 500
    dissect_mc_every: int = 4_000  # a Monte Carlo rollout of the policy every this many updates
    dissect_alpha: float = 1.0  # the learned temperature's start: SAC's usual one
    dissect_fixed_alpha: float = 0.01  # the fixed temperature: small, so that B is the rewards' bound, not entropy's
    # Part 2
    online_env: str = "dmc:cheetah-run"
    utd: int = 32
    online_steps: int = 1_000  # learning steps after seed_steps: 32k updates at UTD 32, past alpha's transient
    online_alpha: float = 1.0
    # Part 3
    priming_env: str = "dmc:cartpole-swingup"
    priming_utd: int = 8
    priming_updates: int = 25_000
    priming_steps: int = 1_000
    priming_alpha: float = 0.1  # cartpole-swingup learned within ~1k steps at UTD 8 from 0.1 (shared calibration)
    # shared
    log_every: int = 100
    online_eval_every: int = 250
    priming_eval_every: int = 100
    eval_episodes: int = 5
    seed_steps: int = 1_000
    hidden: int = 64
    batch_size: int = 64
    # Each stack's whole update as one compiled graph (compiled.py): 2.5x on the mixed stacks, and every stack runs
    # 20k-32k updates, far past the ~1.5k-18k that pay for the compile. "off" runs the readable eager update.
    compile: str = "update"


DISSECT_ARMS = {
    "adam": {},
    "critic_beta1=0": {"critic_beta1": 0.0},
    "critic_beta1=0.5": {"critic_beta1": 0.5},
    "rmsprop": {"critic_optimizer": "rmsprop"},  # Adam's second moment alone
    "sgd+momentum": {"critic_optimizer": "sgd", "critic_beta1": 0.9},  # Adam's first moment alone
    "sgd": {"critic_optimizer": "sgd", "critic_beta1": 0.0},  # neither
    "l2": {"critic_l2": 1e-3},
    "adamw": {"critic_weight_decay": 0.1},
    "dropout": {"critic_dropout": 0.01},
    "ln": {"critic_layer_norm": True},
    "dropout+ln": {"critic_dropout": 0.01, "critic_layer_norm": True},
    "ofn": {"ofn": True},
}
ONLINE_ARMS = {
    "baseline": {},
    "ofn": {"ofn": True},
    "ln": {"critic_layer_norm": True},
    "dropout+ln": {"critic_dropout": 0.01, "critic_layer_norm": True},
    "l2": {"critic_l2": 1e-3},
}
ONLINE_UTD1_ARMS = ("baseline", "ofn")
PRIMING_ARMS = {
    "baseline": {},
    "baseline+priming": {"priming": True},
    "baseline+priming+reset": {"priming": True, "reset": True},
    "ofn": {"ofn": True},
    "ofn+priming": {"ofn": True, "priming": True},
}


def dissect_configs(p: Protocol, fixed: bool) -> dict:
    """{arm: [Config per seed]} for part 1; temperature_lr 0 holds alpha at its start."""
    base = cfgmod.preset("tutorial", env=p.dissect_env, steps=p.seed_steps, seed_steps=p.seed_steps,
                         hidden=p.hidden, batch_size=p.batch_size, compile=p.compile,
                         init_temperature=p.dissect_fixed_alpha if fixed else p.dissect_alpha,
                         temperature_lr=0.0 if fixed else cfgmod.Config.temperature_lr)
    return {arm: [base.replace(seed=s, **ch) for s in p.seeds] for arm, ch in DISSECT_ARMS.items()}


def dissect(configs: list[Config], updates: int, log_every: int, progress: bool = True,
            mc_every: int | None = None, checkpoint: Path | None = None, until: int | None = None):
    """Part 1's loop for one stack: seed_steps random transitions into D, then `updates` SAC updates on D.

    Returns each agent's rows (train.METRICS), one every `log_every` updates, with Q on D's
    actions (q_replay), on uniform actions (q_ood), on the policy's actions, Adam's moments and a
    Monte Carlo rollout of the current policy (q_rollout vs mc_soft_return).

    checkpoint: a file that holds the stack and its rows at every Monte Carlo log (and at `until`,
    where it stops and returns None); a stack finds it there and goes on, as if never stopped."""
    import torch

    from .cli import RunError
    from .progress import bar
    from .runs import atomic_write
    from .train import Lockstep

    run = Lockstep(configs, progress=False)
    rows, done = [[] for _ in configs], 0
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["configs"] != [c.to_dict() for c in configs]:
            raise RunError(f"{checkpoint} holds a dissection stack with other settings; use another --out")
        run.load_agent_states(saved["agents"])
        rows, done = saved["rows"], saved["updates"]
    while run.t < run.c0.seed_steps:
        run.env_step()
    mc_every = mc_every or 4 * log_every
    for k in bar(range(done + 1, updates + 1), desc=f"dissection x{run.n}", unit="update", disable=not progress):
        run.sac.update(run.buffer.sample(run.c0.batch_size, run.generators))
        run.updates = k
        if k % log_every == 0:
            for i, row in enumerate(run.metrics(evaluate=False, monte_carlo_rollout=k % mc_every == 0)):
                rows[i].append(row)
        if checkpoint is not None and k < updates and (k % mc_every == 0 or k == until):
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            state = {"configs": [c.to_dict() for c in configs], "updates": k, "rows": rows,
                     "agents": [run.agent_state(i) for i in range(run.n)]}
            atomic_write(checkpoint, lambda tmp: torch.save(state, tmp))
        if k == until:
            return None
    return rows


# ---- the quantities each claim is judged on (one number per run)
def value_bound(row: dict, act_dim: int, gamma: float) -> float:
    """B = (r_max + alpha |A| log 2) / (1 - gamma): no policy's soft value on the data seen can exceed it."""
    return (row["max_reward"] + row["temperature"] * act_dim * math.log(2)) / (1 - gamma)


def log_peak_over_bound(rows, key: str, act_dim: int, gamma: float) -> float:
    """log10(max_t |key_t| / B_t): above 0, the critic claims a value no policy can have (divergence).

    Over the logs where Q is finite: a critic that overflowed keeps the peak it reached before (none: nan)."""
    ratios = [math.log10(max(abs(r[key]), 1e-12) / value_bound(r, act_dim, gamma)) for r in rows
              if math.isfinite(r[key])]
    return float(max(ratios)) if ratios else math.nan


def log_growth(rows, key: str) -> float:
    """log10(last / first) of a positive series (e.g. the critic's largest Adam second moment)."""
    values = [r[key] for r in rows if math.isfinite(r[key]) and r[key] > 0]
    return math.log10(values[-1] / values[0]) if len(values) > 1 else math.nan


def late_overestimation(rows, seed_steps: int) -> float:
    """Mean over the last third of the learning phase's logs of Q(s_t, a_t) - soft MC return, on the
    policy's own rollouts: past the temperature transient, where the soft return is no longer dominated
    by alpha log pi of a policy that has not yet found its entropy."""
    gaps = [r["q_rollout"] - r["mc_soft_return"] for r in late_rows(rows, seed_steps)
            if math.isfinite(r["q_rollout"]) and math.isfinite(r["mc_soft_return"])]
    return float(np.mean(gaps)) if gaps else math.nan


def late_rows(rows, seed_steps: int) -> list[dict]:
    """The logs of the last third of the learning phase."""
    last = max(r["step"] for r in rows)
    start = last - (last - seed_steps) / 3
    return [r for r in rows if r["step"] >= start]


def mean_return(rows, seed_steps: int, eval_every: int) -> float:
    """Mean evaluation return over the learning phase's evaluations: the area under the return curve per evaluation.

    Evaluations happen every eval_every steps and at the run's last step (train.py); other rows carry the
    last one over and are not counted again."""
    last = max(r["step"] for r in rows) if rows else 0
    values = [r["eval_return"] for r in rows if r["step"] > seed_steps and (r["step"] % eval_every == 0
              or r["step"] == last) and math.isfinite(r["eval_return"])]
    return float(np.mean(values)) if values else math.nan


# ---- the claims: each is "effect > 0" for an effect measured on runs of two arms (or one arm against 0)
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
TEMPERATURES = ("learned", "fixed")  # the dissection's two arms of the temperature: SAC's own, and held at its start


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
        row = next(r for r in rows if r["step"] >= p.seed_steps)
        return math.log10(max(abs(row["q_replay"]), 1e-12) / value_bound(row, act_dim["priming"], gamma))

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


# ---- running the three parts (resumably: finished runs are loaded, unfinished ones resumed or redone)
def online_base(p: Protocol, utd) -> Config:
    """UTD `utd` (or 1) for online_steps learning steps; utd "1x": UTD 1 for as many updates as UTD p.utd,
    its logs and evaluations p.utd times sparser in steps (the same in updates)."""
    scale = p.utd if utd == "1x" else 1
    return cfgmod.preset("tutorial", env=p.online_env, utd=1 if utd == "1x" else utd, compile=p.compile,
                         steps=p.seed_steps + p.online_steps * scale, seed_steps=p.seed_steps, hidden=p.hidden,
                         batch_size=p.batch_size, init_temperature=p.online_alpha, log_every=p.log_every * scale,
                         eval_every=p.online_eval_every * scale, eval_episodes=p.eval_episodes,
                         checkpoint_every=500 * scale)


def online_folder(p: Protocol, utd) -> str:
    return "utd1_equal_updates" if utd == "1x" else f"utd{utd}"


def priming_base(p: Protocol) -> Config:
    return cfgmod.preset("tutorial", env=p.priming_env, utd=p.priming_utd, steps=p.seed_steps + p.priming_steps,
                         seed_steps=p.seed_steps, hidden=p.hidden, batch_size=p.batch_size, compile=p.compile,
                         init_temperature=p.priming_alpha, log_every=p.log_every,
                         eval_every=p.priming_eval_every, eval_episodes=p.eval_episodes, checkpoint_every=500)


def priming_arms(p: Protocol) -> dict:
    """PRIMING_ARMS as Config changes: priming = K updates on the random transitions; the reset falls
    on update K, i.e. right after priming (and every K updates after, beyond this budget)."""
    out = {}
    for arm, spec in PRIMING_ARMS.items():
        changes = {k: v for k, v in spec.items() if k not in ("priming", "reset")}
        if spec.get("priming"):
            changes["priming_updates"] = p.priming_updates
        if spec.get("reset"):
            changes.update(reset_every=p.priming_updates, reset_kind="full")
        out[arm] = changes
    return out


def _save_dissection(folder: Path, cfg: Config, rows: list[dict]) -> None:
    from .runs import write_metrics

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    write_metrics(folder / "metrics.csv", rows)
    (folder / "summary.json").write_text(json.dumps({"updates": rows[-1]["updates"] if rows else 0}) + "\n")


def run_part(task: tuple, p: Protocol, out: Path, progress: bool) -> str:
    """One of the story's stacks of runs; returns a line for the log. Runs in a worker process."""
    import torch

    from .experiment import run_variants
    from .runs import load_metrics

    torch.set_num_threads(1)  # the story runs two of these side by side on two cores
    start = time.time()
    part, which = task
    label = f"{which[0]}, arms {'first' if which[1] == 0 else 'second'} half" if part == "dissection" else which
    if part == "dissection":
        which, half = which  # a temperature's arms are split into two stacks, so that two cores share them
        configs = dissect_configs(p, fixed=which == "fixed")
        names = list(configs)
        configs = {arm: configs[arm] for arm in names[half * len(names) // 2:(half + 1) * len(names) // 2]}
        folders = {(arm, c.seed): out / "dissection" / which / arm / f"seed{c.seed}"
                   for arm, cs in configs.items() for c in cs}
        todo = [(arm, c) for arm, cs in configs.items() for c in cs
                if not (folders[arm, c.seed] / "summary.json").exists()]
        if todo:  # an interrupted stack goes on from its last checkpoint (every Monte Carlo log)
            checkpoint = out / "dissection" / which / f"stack{half}.pt"
            rows = dissect([c for _, c in todo], p.dissect_updates, p.dissect_log_every, progress, p.dissect_mc_every,
                           checkpoint)
            for (arm, c), r in zip(todo, rows):
                _save_dissection(folders[arm, c.seed], c, r)
            checkpoint.unlink(missing_ok=True)
        for (arm, seed), folder in folders.items():
            if json.loads((folder / "config.json").read_text()) != json.loads(json.dumps(
                    next(c for c in configs[arm] if c.seed == seed).to_dict())):
                raise ValueError(f"{folder} holds a dissection run with other settings; use another --out")
            load_metrics(folder)
    elif part == "online":
        arms = ONLINE_ARMS if which == p.utd else {k: ONLINE_ARMS[k] for k in ONLINE_UTD1_ARMS}
        run_variants(online_base(p, which), arms, p.seeds, out / "online" / online_folder(p, which), progress)
    else:
        run_variants(priming_base(p), priming_arms(p), p.seeds, out / "priming", progress)
    return f"{part} {label}: {time.time() - start:.0f} s"


def tasks(p: Protocol) -> list[tuple]:
    """The story's stacks, longest first (two workers finish together when the long ones start first).

    A temperature's second half of arms (the regularizers: dropout, LayerNorm, OFN) costs about twice its first."""
    return [("priming", None), ("online", p.utd), *[("dissection", (t, h)) for h in (1, 0) for t in TEMPERATURES],
            ("online", "1x"), ("online", 1)]


def load(p: Protocol, out: Path) -> dict:
    """Every run of the story, as {part: ...} for claim_scores (see there)."""
    from .runs import load_metrics

    def arms(folder, names):
        return {a: [load_metrics(folder / a / f"seed{s}") for s in p.seeds] for a in names}

    return {
        "dissection": {t: arms(out / "dissection" / t, DISSECT_ARMS) for t in ("fixed", "learned")},
        "online": {p.utd: arms(out / "online" / f"utd{p.utd}", ONLINE_ARMS),
                   1: arms(out / "online" / "utd1", ONLINE_UTD1_ARMS),
                   "1x": arms(out / "online" / online_folder(p, "1x"), ONLINE_UTD1_ARMS)},
        "priming": arms(out / "priming", PRIMING_ARMS),
    }


def run(p: Protocol = Protocol(), out="docs/story", jobs: int = 2, progress: bool = True) -> list[str]:
    """Run (or finish) every stack of the story, `jobs` at a time in worker processes of one thread each."""
    import concurrent.futures
    import multiprocessing

    runs, start = Path(out) / "runs", time.time()
    if jobs <= 1:
        lines = [run_part(t, p, runs, progress) for t in tasks(p)]
    else:
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(run_part, t, p, runs, False) for t in tasks(p)]
            lines = []
            for f in concurrent.futures.as_completed(futures):
                lines.append(f.result())
                if progress:
                    print(lines[-1], flush=True)
    # The story keeps what it reports (config, metrics, summary), not a checkpoint per finished run.
    for ckpt in runs.glob("**/checkpoint.pt"):
        if (ckpt.parent / "summary.json").exists():
            ckpt.unlink()
    return [*lines, f"the whole story: {time.time() - start:.0f} s on {max(jobs, 1)} worker(s)"]


# ---- the report: every number and verdict in it is computed here from the runs
UNVERIFIED = (
    "Not verified from the paper itself (only its abstract and first page were available to us; no public code): "
    "its exact hyperparameters, its exact momentum experiment (third-party accounts say it separates Adam's parts "
    "with SGD+momentum and RMSProp; here the critic alone takes Adam with beta1 0.9, 0.5 and 0, RMSProp, SGD with "
    "momentum 0.9 and plain SGD, all at lr 3e-4, on a fixed buffer), the learning rates it gave SGD, its "
    "priming length (reported as 25k-100k updates on 1,000 samples), and its results on 2x256 networks over "
    "hundreds of thousands of steps and on the dog tasks (GPU scale: tutorial 7 and --preset paper).")


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def temperature_label(p: Protocol, temp) -> str:
    return {"learned": f"learned from {p.dissect_alpha:g}", "fixed": f"fixed at {p.dissect_fixed_alpha:g}"}.get(temp, "")


def _iqm_ci(x) -> str:
    """IQM [95% CI] of one arm's per-seed numbers (non-finite ones dropped and counted)."""
    finite = [v for v in x if math.isfinite(v)]
    if len(finite) < 2:
        return "n/a"
    e = stats.effect(finite, reps=1_000)
    dropped = f" ({len(x) - len(finite)} nan)" if len(finite) < len(x) else ""
    return f"{_fmt(e['effect'])} [{_fmt(e['low'])}, {_fmt(e['high'])}]{dropped}"


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
                cells.append(_iqm_ci([log_peak_over_bound(rows, key, act_dim["dissection"], gamma) for rows in runs]))
            cells.append(_iqm_ci([log_growth(rows, "adam_v_max") for rows in runs]) if "sgd" not in arm else "-")
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
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
            "log10(|Q| / B) right after the random phase (and priming), the mean evaluation return, and the "
            "temperature at the end.", "",
            "| arm | log10(Q / B) after priming | mean return | final alpha |", "| --- | --- | --- | --- |"]
    for arm, runs in pr.items():
        after = []
        for rows in runs:
            row = next(r for r in rows if r["step"] >= p.seed_steps)
            after.append(math.log10(max(abs(row["q_replay"]), 1e-12) / value_bound(row, act_dim["priming"], gamma)))
        out.append(f"| {arm} | {_iqm_ci(after)} | "
                   f"{_iqm_ci([mean_return(r, p.seed_steps, p.priming_eval_every) for r in runs])} | "
                   f"{_iqm_ci([rows[-1]['temperature'] for rows in runs])} |")
    return out + [""]


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
        measured = c.measured.format(utd=p.utd, alpha=temperature_label(p, t))
        line = f"- **{c.paper}** ({measured}): per seed {_per_seed(a)}" + (f" against {_per_seed(b)}." if b else ".")
        if c.key == "overestimation":
            late = {u: [late_value(r, p.seed_steps, "mc_soft_return") for r in on[u]["baseline"]] for u in (p.utd, "1x")}
            alpha = {u: [r[-1]["temperature"] for r in on[u]["baseline"]] for u in (p.utd, "1x")}
            line += (f" Late soft MC returns: {_per_seed(late[p.utd])} at UTD {p.utd} (final alpha "
                     f"{_per_seed(alpha[p.utd])}), {_per_seed(late['1x'])} at UTD 1 (final alpha "
                     f"{_per_seed(alpha['1x'])}).")
        if c.key == "high_utd_hurts":
            line += (" For comparison (published, not measured here: Nikishin et al. 2022, 10 seeds, 2x256): on "
                     "cheetah-run UTD 32 without resets against UTD 1 gave 109 vs 18 at 20k steps and 869 vs 788 at "
                     "500k; high UTD lost there on humanoid-run (25 vs 105) and quadruped-run (189 vs 515) at 500k, "
                     "budgets beyond this CPU.")
        if c.key == "ofn_learns":
            line += " " + _ofn_alignment_evidence(on[p.utd], p)
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
                 f"{_fmt(e['effect'])} [{_fmt(e['low'])}, {_fmt(e['high'])}] ({stats.verdict(e)}), returns "
                 f"{_per_seed(last['ofn'])} against {_per_seed(last['baseline'])}.")
    return text


def _per_seed(x) -> str:
    return ", ".join(_fmt(v) for v in x)


def _learned_alpha_evidence(d: dict, p: Protocol, act_dim: int, gamma: float) -> str:
    """How far apart the arms end up with the temperature learned, against held (the dissection's own numbers)."""
    def spread(t):
        iqms = [stats.iqm([x for x in (log_peak_over_bound(r, "q_replay", act_dim, gamma) for r in runs)
                           if math.isfinite(x)] or [math.nan]) for runs in d[t].values()]
        return min(iqms), max(iqms)

    (lo, hi), (flo, fhi) = spread("learned"), spread("fixed")
    alphas = [r[-1]["temperature"] for r in d["learned"]["adam"]]
    return (f"With alpha learned, every arm's IQM log10(peak |Q| / B) lies in [{_fmt(lo)}, {_fmt(hi)}] (held at "
            f"{p.dissect_fixed_alpha:g}: [{_fmt(flo)}, {_fmt(fhi)}]); Adam's alpha ended at "
            f"{', '.join(_fmt(a) for a in alphas)} (B counts alpha |A| log 2 / (1 - gamma)).")


def late_value(rows, seed_steps: int, key: str) -> float:
    """Mean of a metric over the last third of the learning phase's logs (as late_overestimation)."""
    values = [r[key] for r in late_rows(rows, seed_steps) if math.isfinite(r[key])]
    return float(np.mean(values)) if values else math.nan


def report(p: Protocol, judged: list[dict], command: str, lines: list[str] = (), tables: list[str] = (),
           notes: list[str] = (), open_notes: list[str] = ()) -> str:
    counts = {v: sum(j["verdict"] == v for j in judged) for v in (stats.HOLDS, stats.CONTRADICTED, stats.UNRESOLVED)}
    out = [f"# The paper's claims, measured (`{command}`)", "",
           f"Protocol: {p}.", "",
           "Each effect is IQM(arm A) - IQM(arm B) over seeds with a 95% stratified bootstrap interval (rliable); "
           "HOLDS = the interval lies above 0, CONTRADICTED = below 0, UNRESOLVED = it contains 0 "
           "(see minimal_ofn/stats.py and minimal_ofn/story.py for every definition).", "",
           f"{counts[stats.HOLDS]} hold, {counts[stats.CONTRADICTED]} are contradicted, "
           f"{counts[stats.UNRESOLVED]} are unresolved at this scale.", "",
           "| # | the paper says | effect measured | IQM effect [95% CI] | seeds | verdict |",
           "| --- | --- | --- | --- | --- | --- |"]
    for k, j in enumerate(judged, 1):
        c = j["claim"]
        seeds = str(j["n"][0]) if j["one_sample"] else f"{j['n'][0]} vs {j['n'][1]}"
        dropped = f" ({j['dropped']} non-finite dropped)" if j["dropped"] else ""
        measured = c.measured.format(utd=p.utd, alpha=temperature_label(p, j["temperature"])).replace("|", "\\|")
        out.append(f"| {k} | {c.paper} | {measured} | {_fmt(j['effect'])} "
                   f"[{_fmt(j['low'])}, {_fmt(j['high'])}] | {seeds}{dropped} | **{j['verdict']}** |")
    out += ["", UNVERIFIED, ""]
    if notes:
        out += ["## Why the contradicted claims fail here (computed from the same runs)", "", *notes, ""]
    if open_notes:
        out += ["## What the unresolved claims' seeds say (computed from the same runs)", "",
                "Each interval contains 0: the seeds' numbers below straddle it or differ too little for 5 seeds.", "",
                *open_notes, ""]
    out += list(tables)
    if lines:
        out += ["Wall time of each stack (--jobs worker processes side by side, one thread each; a stack whose runs "
                "were already finished takes seconds): " + "; ".join(lines) + ".", ""]
    out += ["Figures: story_dissection.png, story_online.png, story_priming.png.", ""]
    return "\n".join(out)



def figures(results: dict, p: Protocol, act_dim: dict, out: Path, gamma: float = 0.99) -> list[Path]:
    """story_dissection.png, story_online.png, story_priming.png: the curves behind the claims."""
    import matplotlib.pyplot as plt

    from .plots import plot_metric

    def by_updates(runs):  # the dissection logs at one env step: put updates on the x axis
        return [[{**r, "step": r["updates"]} for r in rows] for rows in runs]

    def over_bound(runs, key):
        return [[{**r, "ratio": abs(r[key]) / value_bound(r, act_dim["dissection"], gamma)} for r in rows]
                for rows in runs]

    written = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for ax, (temp, key) in zip(axes, [("fixed", "q_replay"), ("fixed", "q_ood"), ("learned", "q_replay")]):
        arms = {a: by_updates(over_bound(runs, key)) for a, runs in results["dissection"][temp].items()}
        plot_metric(arms, "ratio", ax=ax, log=True,
                    title=f"|Q| / B on {'D' if key == 'q_replay' else 'uniform'} actions, alpha {temp}")
        ax.axhline(1.0, color="gray", lw=1, ls="--")
        ax.set_xlabel("updates on the fixed buffer")
    axes[0].legend(fontsize=7)
    written.append(out / "story_dissection.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    label = {p.utd: f"utd{p.utd}", 1: "utd1", "1x": "utd1 (equal updates)"}
    gap = {f"{a} {label[u]}": [[{**r, "step": r["updates"], "gap": r["q_rollout"] - r["mc_soft_return"]}
                               for r in rows] for rows in runs]
           for u, arms in results["online"].items() for a, runs in arms.items()}
    plot_metric(gap, "gap", ax=axes[0], title="Q - soft MC return on the policy's rollouts")
    axes[0].set_xlabel("gradient updates")
    axes[0].set_xscale("symlog", linthresh=1000)
    plot_metric({f"{a} {label[u]}": runs for u, arms in results["online"].items() if u != "1x"
                 for a, runs in arms.items()}, "eval_return", ax=axes[1], title="evaluation return")
    axes[1].set_xlabel("environment steps")
    axes[0].legend(fontsize=7)
    written.append(out / "story_online.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    plot_metric(results["priming"], "eval_return", ax=axes[0], title=f"{p.priming_env}: evaluation return")
    plot_metric(results["priming"], "q_replay", ax=axes[1], log=True, title="Q on replay actions")
    axes[0].legend(fontsize=7)
    written.append(out / "story_priming.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


# ---- the committed story, for the tutorials: its verdicts judged again from its runs, beside a live run's
COMMITTED = committed_story()  # docs/story, or its copy inside an installed wheel


def committed(keys, folder=COMMITTED) -> tuple[Protocol, list[dict]]:
    """(protocol, judged claims) of the story in `folder` (default: the repository's docs/story), recomputed from
    the runs there with the protocol they were run with (protocol.json), for the claims with these keys."""
    folder = Path(folder)
    saved = json.loads((folder / "protocol.json").read_text())
    p = Protocol(**{**saved, "seeds": tuple(saved["seeds"])})
    results, dims = load(p, folder / "runs"), act_dims(p)
    return p, judge(claim_scores(results, p, dims, cfgmod.Config.gamma), keys=set(keys))


def show_committed(keys, folder=COMMITTED) -> None:
    """Print the story's verdicts on these claims (see committed), one line each."""
    p, judged = committed(keys, folder)
    print(f"The story ({len(p.seeds)} seeds per arm; docs/story/story.md), judged again from its committed runs:")
    for j in judged:
        c = j["claim"]
        measured = c.measured.format(utd=p.utd, alpha=temperature_label(p, j["temperature"]))
        print(f"  {j['verdict']:<13} {c.paper}: {measured} = {_fmt(j['effect'])} [{_fmt(j['low'])}, "
              f"{_fmt(j['high'])}]")


def live(name: str, a, b=None) -> str:
    """A live run's effect IQM(a) - IQM(b) (b None: against 0) as one line: with its interval and verdict when
    every arm has 3 seeds or more, else the bare difference, marked as one that no seed count can judge."""
    a = [x for x in a if math.isfinite(x)]
    b = None if b is None else [x for x in b if math.isfinite(x)]
    if not a or (b is not None and not b):
        return f"  this run: {name} = nan (no finite value)"
    if len(a) >= 3 and (b is None or len(b) >= 3):
        e = stats.effect(a, b)
        return (f"  this run: {stats.verdict(e):<13} {name} = {_fmt(e['effect'])} [{_fmt(e['low'])}, "
                f"{_fmt(e['high'])}] over {len(a)} seeds")
    d = stats.iqm(a) - (0.0 if b is None else stats.iqm(b))
    return f"  this run: {name} = {_fmt(d)} ({len(a)} seed{'s' if len(a) > 1 else ''}: no interval; 3 or more give one)"


def act_dims(p: Protocol) -> dict:
    from .envs import make_env

    return {part: make_env(env, 0).action_space.shape[0]
            for part, env in (("dissection", p.dissect_env), ("online", p.online_env), ("priming", p.priming_env))}


def main(argv=None):
    import dataclasses
    import sys

    from .cli import Parser, cli
    from .envs import DMC_PREFIX

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="python -m minimal_ofn.story", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/story", help="story folder: runs/, story.md, figures")
    parser.add_argument("--jobs", type=int, default=2, help="stacks run side by side, one thread each")
    parser.add_argument("--report-only", action="store_true", help="judge the finished runs in --out; run nothing")
    parser.add_argument("--no-progress", action="store_true")
    for f in dataclasses.fields(Protocol):
        kind = int if f.type in (int, "int") else float if f.type in (float, "float") else str
        if f.name == "seeds":
            parser.add_argument("--seeds", type=int, nargs="+")
        elif f.type not in (bool, "bool"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind)
    args = parser.parse_args(argv)
    # The report names the command that makes its runs (--report-only only judges them again).
    command = " ".join(["python -m minimal_ofn.story", *(a for a in argv if a != "--report-only")])

    def go():
        changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Protocol)
                   if getattr(args, f.name, None) is not None}
        if "seeds" in changes:
            changes["seeds"] = tuple(changes["seeds"])
        p = Protocol(**changes)
        for env in (p.dissect_env, p.online_env, p.priming_env):
            if not env.startswith(DMC_PREFIX):  # B = (r_max + alpha |A| log 2) / (1 - gamma) needs rewards in [0, 1]
                raise ValueError(f"the story runs on dm_control tasks (dmc:<domain>-<task>), whose rewards lie in "
                                 f"[0, 1] so that B bounds every value; got {env!r}")
        if len(p.seeds) < 3:
            raise ValueError("the story needs at least 3 seeds per arm for an interval")
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        out = Path(args.out)
        # The wall times are those of the run that made the runs: --report-only keeps the ones it saved.
        times = out / "wall_times.json"
        if args.report_only:
            lines = json.loads(times.read_text()) if times.exists() else []
        else:
            lines = run(p, out, args.jobs, not args.no_progress)
            times.write_text(json.dumps(lines, indent=1) + "\n")
        (out / "protocol.json").write_text(json.dumps(dataclasses.asdict(p), indent=2) + "\n")
        results, dims = load(p, out / "runs"), act_dims(p)
        gamma = cfgmod.Config.gamma
        scores = claim_scores(results, p, dims, gamma)
        judged = judge(scores)
        text = report(p, judged, command, lines, arm_tables(results, p, dims, gamma),
                      notes(judged, scores, results, p, dims, gamma),
                      notes(judged, scores, results, p, dims, gamma, stats.UNRESOLVED))
        (out / "story.md").write_text(text)
        figures(results, p, dims, out, gamma)
        print(text)

    cli(go)


if __name__ == "__main__":
    main()
