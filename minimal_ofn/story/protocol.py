"""The story's protocol: its three parts' settings (Protocol) and arms, as Config changes over each part's base.

Part 1, dissection: critic-only variants on a fixed early buffer (fixed_buffer.py), each with the temperature
learned (from SAC's usual 1) and held at a small value. Part 2, online: UTD `utd` against UTD 1, the latter for as
many environment steps and for as many updates. Part 3, priming then learning. The arms are names from
config.VARIANTS, the one table of arms; "adam" is the dissection's name for the baseline (an Adam critic).
"""

from dataclasses import dataclass

from .. import config as cfgmod
from ..config import Config
from ..measures import entropy_bound, value_bound


@dataclass(frozen=True)
class Protocol:
    """Every setting of the story; each field is a --flag of `python -m minimal_ofn.story` (its comment the help)."""
    seeds: tuple = (0, 1, 2, 3, 4)  # every arm runs once per seed (3 or more, for an interval)
    # --- part 1, the dissection on a fixed buffer
    dissect_env: str = "dmc:cheetah-run"  # the task whose random transitions fill the fixed buffer
    dissect_updates: int = 20_000  # SAC updates on the fixed buffer: far enough past the onset of divergence
    dissect_log_every: int = 500  # a metrics row every this many updates
    dissect_mc_every: int = 4_000  # a Monte Carlo rollout of the policy every this many updates
    dissect_alpha: float = 1.0  # the learned temperature's start: SAC's usual one
    dissect_fixed_alpha: float = 0.01  # the fixed temperature: small, so that B is the rewards' bound, not entropy's
    narrow_std: float = 0.2  # a second fixed buffer from actions N(0, narrow_std^2): uniform actions are unseen there
    dissect_opt_reset_every: int = 1_000  # adam+critic_opt_reset forgets its critic's m, v every this many updates
    # --- part 2, online
    online_env: str = "dmc:cheetah-run"  # the online task
    utd: int = 32  # the high update-to-data ratio, against UTD 1
    online_steps: int = 1_000  # learning steps after seed_steps (utd updates each): past alpha's transient
    online_alpha: float = 1.0  # the learned temperature's start (the "@alpha=" arms start elsewhere)
    # --- part 3, priming then learning
    priming_env: str = "dmc:cheetah-run"  # a task whose random buffer diverges (6-D actions leave unseen ones)
    priming_utd: int = 8  # UTD of the learning after priming
    priming_updates: int = 20_000  # updates on the seed_steps random transitions before learning goes on
    priming_steps: int = 2_000  # learning steps after priming
    priming_alpha: float = 0.01  # every arm's temperature after priming (held: priming_temperature_lr 0)
    priming_temperature_lr: float = 0.0  # 0 holds alpha, so that every arm learns at the same temperature
    priming_eval_episodes: int = 10  # episodes per evaluation, part 3
    # --- every part
    log_every: int = 100  # a metrics row every this many environment steps (parts 2 and 3)
    online_eval_every: int = 250  # evaluation episodes every this many steps, part 2
    priming_eval_every: int = 250  # ... part 3
    eval_episodes: int = 5  # episodes per evaluation
    seed_steps: int = 1_000  # uniformly random transitions before learning (the fixed buffer of part 1)
    hidden: int = 64  # units per hidden layer (2 layers), actor and critic
    batch_size: int = 64  # transitions per update
    # "update": each stack's whole update as one compiled graph (sac.SAC.learn through torch.compile), which pays on stacks this long;
    # "off": sac.py's readable eager update
    compile: str = "update"


# "adam+critic_opt_reset": Adam whose critic optimizer state is forgotten every dissect_opt_reset_every updates, the
# weights untouched (resets.reset_critic_optimizers, run by fixed_buffer.py; no Config field: only this loop does it).
OPT_RESET_ARMS = ("adam+critic_opt_reset",)
DISSECT_ARMS = {"adam": cfgmod.VARIANTS["baseline"],
                **cfgmod.arms("critic_beta1=0", "rmsprop", "sgd+momentum", "sgd", "sgd+momentum@3e-5", "sgd@3e-3"),
                "adam+critic_opt_reset": cfgmod.VARIANTS["baseline"],
                **cfgmod.arms("l2=1e-5", "l2=1e-4", "l2", "dropout", "ln", "ofn")}
# The matched pairs of effective step (SGD+momentum at lr, SGD at lr / (1 - 0.9)), as (with momentum, without).
MATCHED_PAIRS = (("sgd+momentum@3e-5", "sgd"), ("sgd+momentum", "sgd@3e-3"))
L2_ARMS = ("l2=1e-5", "l2=1e-4", "l2")  # the L2 loss penalty at 1e-5, 1e-4 and 1e-3
NARROW_ARMS = ("adam", "ofn")  # the arms on the narrow behaviour buffer (alpha held, as the "fixed" arms)
ONLINE_ARMS = {**cfgmod.arms("baseline", "ofn", "ln", "dropout+ln", "l2"),
               # alpha from 0.1: OFN's alignment transient (its targets out of reach while alpha is large) apart
               "baseline@alpha=0.1": {"init_temperature": 0.1}, "ofn@alpha=0.1": {"ofn": True, "init_temperature": 0.1}}
ONLINE_UTD1_ARMS = ("baseline", "ofn")
PRIMING_ARMS = {  # "priming" and "reset" are filled in by priming_arms (their sizes come from the protocol)
    "baseline": {},
    "baseline+priming": {"priming": True},
    "baseline+priming+reset": {"priming": True, "reset": True},
    "baseline+priming+opt_reset": {"priming": True, "reset": "critic_optimizer"},  # the critic's m, v only
    "ofn": {"ofn": True},
    "ofn+priming": {"ofn": True, "priming": True},
}
TEMPERATURES = ("learned", "fixed")  # the dissection's two arms of the temperature: SAC's own, and held at its start


# The bound each temperature's rows are judged against (measures.py): with alpha learned, alpha rises when the policy's
# entropy falls below its target, so the bound counts the entropy the policy has, B_H, not the largest one.
BOUNDS = {"learned": entropy_bound, "fixed": value_bound}


def temperature_label(p: Protocol, temp) -> str:
    return {"learned": f"learned from {p.dissect_alpha:g} (B_H: alpha max(0, H_pi))",
            "fixed": f"fixed at {p.dissect_fixed_alpha:g}"}.get(temp, "")


def dissect_configs(p: Protocol, fixed: bool) -> dict:
    """{arm: [Config per seed]} for part 1; temperature_lr 0 holds alpha at its start."""
    base = cfgmod.preset("tutorial", env=p.dissect_env, steps=p.seed_steps, seed_steps=p.seed_steps,
                         hidden=p.hidden, batch_size=p.batch_size, compile=p.compile,
                         init_temperature=p.dissect_fixed_alpha if fixed else p.dissect_alpha,
                         temperature_lr=0.0 if fixed else cfgmod.Config.temperature_lr)
    return {arm: [base.replace(seed=s, **ch) for s in p.seeds] for arm, ch in DISSECT_ARMS.items()}


def dissection_arms(p: Protocol, which: str) -> dict:
    """{arm: [Config per seed]} of one of part 1's buffers: "learned" / "fixed" (the random buffer, alpha learned or
    held) or "narrow" (the narrow behaviour buffer, alpha held)."""
    configs = dissect_configs(p, fixed=which != "learned")
    return {arm: configs[arm] for arm in NARROW_ARMS} if which == "narrow" else configs


def optimizer_resets(p: Protocol, arm: str) -> int:
    """Updates between an arm's critic-optimizer resets in part 1 (0: never)."""
    return p.dissect_opt_reset_every if arm in OPT_RESET_ARMS else 0


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
    """Part 3's base: every arm at the same temperature when priming ends (held at priming_alpha by default)."""
    return cfgmod.preset("tutorial", env=p.priming_env, utd=p.priming_utd, steps=p.seed_steps + p.priming_steps,
                         seed_steps=p.seed_steps, hidden=p.hidden, batch_size=p.batch_size, compile=p.compile,
                         init_temperature=p.priming_alpha, temperature_lr=p.priming_temperature_lr,
                         log_every=p.log_every, eval_every=p.priming_eval_every,
                         eval_episodes=p.priming_eval_episodes, checkpoint_every=500)


def priming_arms(p: Protocol) -> dict:
    """PRIMING_ARMS as Config changes: priming = K updates on the random transitions; the reset falls
    on update K, i.e. right after priming (and every K updates after, beyond this budget)."""
    out = {}
    for arm, spec in PRIMING_ARMS.items():
        changes = {k: v for k, v in spec.items() if k not in ("priming", "reset")}
        if spec.get("priming"):
            changes["priming_updates"] = p.priming_updates
        if spec.get("reset"):
            changes.update(reset_every=p.priming_updates,
                           reset_kind="full" if spec["reset"] is True else spec["reset"])
        out[arm] = changes
    return out
