"""Priming (Nikishin et al. 2022, re-examined in section 4 of the paper).

Collect N random transitions, then run K gradient updates on those N alone
before training goes on as usual:

    D = {N uniformly random transitions};   repeat K times: SAC update on a batch from D

Nikishin et al. read the slow learning afterwards as the network over-fitting its
first data ("primacy bias"). The paper reports that the primed critic's Q values
explode during priming, and that with OFN the same priming does little harm: the
damage comes from divergence, not from the early data as such. The K updates are
the fixed-buffer measurement (fixed_buffer.py); what the package measured is in
docs/story/story.md (part 3) and docs/measured.md.
"""

from .progress import bar


def prime(buffer, update, updates, batch_size, generators):
    """Run `updates` updates, each on a new batch sampled from what the buffer holds now."""
    for _ in range(updates):
        update(buffer.sample(batch_size, generators))


def go_on(run, steps: int, log_every: int, eval_every: int, progress: bool = True) -> list[list[dict]]:
    """After priming, training as usual: a stack (lockstep.Lockstep) steps its environments up to step `steps`, with
    its utd updates after each; each agent's metrics row every log_every steps (and at the last), an evaluation every
    eval_every. Returns each agent's rows."""
    rows = [[] for _ in range(run.n)]
    with bar(total=steps - run.t, desc="training after priming", unit="step", disable=not progress) as ticks:
        while run.t < steps:
            run.env_step()
            run.learn()
            if run.t % log_every == 0 or run.t == steps:
                for i, row in enumerate(run.metrics(evaluate=run.t % eval_every == 0 or run.t == steps,
                                                    monte_carlo_rollout=True)):
                    rows[i].append(row)
            ticks.update(1)
    return rows
