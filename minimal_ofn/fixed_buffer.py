"""The paper's central measurement: K SAC updates on a fixed early buffer, and nothing else.

    D = {seed_steps uniformly random transitions};   for k = 1..K: SAC update on a batch from D

No new data arrives, so nothing but the update rule moves Q: a critic whose |Q| passes the bound B
(measures.py) on D diverged by its own doing. Every `log_every` updates each agent gets a metrics row
(runs.METRICS: Q on D's actions, on uniform actions, at the policy's actions, Adam's moments), and
every `mc_every` updates also a Monte Carlo rollout of its current policy.

The same loop is priming (priming.py: K updates on the first data, then training goes on), the
story's dissection (minimal_ofn/story) and the demo. A checkpoint file makes it resumable: the stack
and its rows are saved at every Monte Carlo log, and a stack that finds them goes on as if never stopped.
"""

import time
import weakref
from pathlib import Path

import torch

from .cli import RunError
from .progress import bar
from .resets import reset_critic_optimizers
from .runs import atomic_write
from .lockstep import Lockstep

_COMPILED = weakref.WeakSet()  # the stacks whose compiled update has run once in this process


def fill(run: Lockstep, behaviour_std: float | None = None) -> Lockstep:
    """Step the stack's environments until D holds seed_steps transitions: with uniformly random actions, or with
    behaviour_std, a narrow behaviour policy a = clip(N(0, behaviour_std^2 I), -1, 1), whose buffer leaves most
    of [-1, 1]^|A| unseen (so that Q at uniform actions is Q at unseen actions)."""
    while run.t < run.c0.seed_steps:
        if behaviour_std is None:
            run.env_step()
        else:
            run.env_step((run.streams.explore.normal(run.act_dim) * behaviour_std).clamp(-1, 1))
    return run


def updates(run: Lockstep, k: int, log_every: int, mc_every: int | None = None, rows: list | None = None,
            progress: bool = True, desc: str | None = None, on_update=None,
            optimizer_resets: list[int] | None = None) -> list[list[dict]]:
    """Make k more SAC updates on what the buffer holds now; a metrics row per agent every log_every updates
    (counted from the run's first update), with a Monte Carlo rollout every mc_every (default 4 log_every).

    rows: each agent's rows so far, appended to. on_update(u): called after update number u; False stops the loop.
    optimizer_resets: per agent, forget its critic optimizer's state every this many updates (0: never; resets.py).
    A compiled update (compile="update") compiles at its first call: that update runs before the progress bar
    starts, after a notice, so that the bar's estimate counts updates, not the compile."""
    rows = rows if rows is not None else [[] for _ in range(run.n)]
    mc_every = mc_every or 4 * log_every

    def update(u):
        run.sac.update(run.buffer.sample(run.c0.batch_size, run.streams.replay))
        run.updates = u
        if u % log_every == 0:
            for i, row in enumerate(run.metrics(evaluate=False, monte_carlo_rollout=u % mc_every == 0)):
                rows[i].append(row)
        if optimizer_resets:  # after the log: a row shows the moments the update ran with, not the emptied ones
            reset_critic_optimizers(run.sac, optimizer_resets, u)
        return on_update is None or on_update(u) is not False

    first, last = run.updates + 1, run.updates + k
    if first <= last and run.compile == "update" and run not in _COMPILED:
        _COMPILED.add(run)
        if progress:
            print(f"compiling the update of {run.n} agents (sac.SAC.learn through torch.compile): up to a minute or two the first time, "
                  "seconds once Inductor's cache is warm ...", flush=True)
        start = time.time()
        going = update(first)
        if progress:
            print(f"compiled and made the first update in {time.time() - start:.0f} s", flush=True)
        first += 1
        if not going:
            return rows
    for u in bar(range(first, last + 1), desc=desc or f"fixed buffer x{run.n}", unit="update", disable=not progress):
        if not update(u):
            break
    return rows


def run(configs, k: int, log_every: int, progress: bool = True, mc_every: int | None = None,
        checkpoint: Path | None = None, until: int | None = None, optimizer_resets: list[int] | None = None,
        behaviour_std: float | None = None):
    """One stack of agents (one Config each): fill D, then k updates on D. Returns each agent's rows.

    checkpoint: a file that holds the stack and its rows at every Monte Carlo log (and at `until`, where it
    stops and returns None); a stack finds it there and goes on, as if never stopped.
    optimizer_resets: see updates; behaviour_std: see fill."""
    stack = Lockstep(configs, progress=False)
    rows, done = [[] for _ in configs], 0
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if (saved["configs"] != [c.to_dict() for c in configs] or saved.get("optimizer_resets") != optimizer_resets
                or saved.get("behaviour_std") != behaviour_std):
            raise RunError(f"{checkpoint} holds a fixed-buffer stack with other settings; use another --out")
        stack.load_agent_states(saved["agents"])
        rows, done = saved["rows"], saved["updates"]
    fill(stack, behaviour_std)
    stack.updates = done
    mc_every = mc_every or 4 * log_every

    def save(u):
        if checkpoint is not None and u < k and (u % mc_every == 0 or u == until):
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            state = {"configs": [c.to_dict() for c in configs], "optimizer_resets": optimizer_resets,
                     "behaviour_std": behaviour_std, "updates": u, "rows": rows,
                     "agents": [stack.agent_state(i) for i in range(stack.n)]}
            atomic_write(checkpoint, lambda tmp: torch.save(state, tmp))
        return u != until

    updates(stack, k - done, log_every, mc_every, rows, progress, f"dissection x{stack.n}", save, optimizer_resets)
    return None if until is not None and stack.updates == until else rows
