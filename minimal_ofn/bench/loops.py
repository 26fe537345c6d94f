"""Loop rows: the training loop (lockstep.Lockstep) end to end, env steps and diagnostics included."""

import time

from ..config import preset
from ..lockstep import Lockstep
from .timing import STORY_MIX, seconds_per_call, stack_configs, sync


LOOP_SECONDS = 20.0  # time budget of the end-to-end loop


def lockstep_loop(device, updates, seed_steps, max_seconds=20.0) -> dict:
    """Env steps/s of lockstep.Lockstep (tutorial size, 5 agents, UTD 32, dmc:cheetah-run), past the random phase.

    Stops early once max_seconds have been spent in the timed part (a busy machine), and says so."""
    utd = 32
    configs = [preset("tutorial", seed=i, utd=utd, seed_steps=seed_steps, device=device.type, compile="off")
               for i in range(5)]
    run = Lockstep(configs, progress=False)
    while run.t <= seed_steps:  # the random phase, then one step with its first utd updates as warm-up
        run.env_step()
        run.learn()
    planned, steps = max(1, updates // utd), 0
    sync(device)
    start = time.perf_counter()
    while steps < planned and (steps == 0 or time.perf_counter() - start < max_seconds):
        run.env_step()
        run.learn()
        steps += 1
    sync(device)
    seconds = time.perf_counter() - start
    return {"agents": 5, "utd": utd, "env_steps": steps, "updates": steps * utd, "seconds": seconds,
            "stopped_early": steps < planned, "env_steps_per_s": steps / seconds,
            "ms_per_agent_update": 1e3 * seconds / (steps * utd * 5)}


END_TO_END_ROWS = [("tutorial, 5 baseline seeds", ("baseline",) * 5), ("tutorial, story mix", STORY_MIX)]


def end_to_end(variants, device, env_steps=10, utd=32) -> dict:
    """Per agent-update ms of lockstep.Lockstep at the tutorial preset, eager and compiled, split into update, env
    and diagnostics.

    Two identical runs (sac.py's update eager and compiled) go through the preset's random phase and one warm-up step
    (which compiles); then env_steps steps of env_step + learn are timed, alternating between the two runs step
    by step so that a busy neighbour slows both alike. The diagnostics (lockstep.Lockstep.metrics: critic
    diagnostics and Monte Carlo rollouts at every log, an evaluation episode at every eval) are timed once each
    and charged at the preset's log_every / eval_every intervals, as train.train calls them."""
    configs = stack_configs("tutorial", variants, device, utd=utd)
    c, n = configs[0], len(configs)
    runs = {"eager": Lockstep(configs, progress=False), "compiled": Lockstep(configs, progress=False)}
    runs["compiled"].sac.compile()
    out = {"agents": n, "variants": list(variants), "utd": utd, "env_steps": env_steps, "paths": {}}
    for name, run in runs.items():
        while run.t <= c.seed_steps:
            run.env_step()
            run.learn()  # the first utd updates: the warm-up (and the compile)
    spent = {name: {"env": 0.0, "update": 0.0} for name in runs}
    for _ in range(env_steps):
        for name, run in runs.items():
            for part, fn in (("env", run.env_step), ("update", run.learn)):
                sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                spent[name][part] += time.perf_counter() - start
    agent_updates = env_steps * utd * n
    for name, run in runs.items():
        run.metrics(evaluate=True, monte_carlo_rollout=True)  # untimed: a first call pays one-off costs
        log_s = seconds_per_call(lambda: run.metrics(evaluate=False, monte_carlo_rollout=True), 1, device)
        eval_s = max(0.0, seconds_per_call(lambda: run.metrics(evaluate=True, monte_carlo_rollout=True), 1, device)
                     - log_s)
        diag_per_env_step = log_s / c.log_every + eval_s / c.eval_every
        split = {"update": 1e3 * spent[name]["update"] / agent_updates, "env": 1e3 * spent[name]["env"] / agent_updates,
                 "diagnostics": 1e3 * diag_per_env_step / (utd * n)}
        out["paths"][name] = {"log_s": log_s, "eval_s": eval_s, "ms_per_agent_update": split,
                              "total_ms_per_agent_update": sum(split.values())}
    return out
