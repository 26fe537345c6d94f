"""Priming (Nikishin et al. 2022, re-examined in section 4 of the paper).

Collect N random transitions, then run K gradient updates on those N alone
before training goes on as usual:

    D = {N uniformly random transitions};   repeat K times: SAC update on a batch from D

Nikishin et al. read the slow learning afterwards as the network over-fitting its
first data ("primacy bias"). The paper shows that the primed critic's Q values
explode during priming, and that with OFN the same priming does little harm: the
damage comes from divergence, not from the early data as such.
"""

from tqdm.auto import tqdm


def prime(sac, buffer, updates: int, progress: bool = True) -> None:
    """Run `updates` SAC updates on what the buffer holds now (the random seed transitions)."""
    for _ in tqdm(range(updates), desc="priming", disable=not progress, leave=False, mininterval=1.0):
        sac.update(buffer.sample(sac.batch_size, sac.generators))
