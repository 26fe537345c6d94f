"""Priming (Nikishin et al. 2022, re-examined in section 4 of the paper).

Collect N random transitions, then run K gradient updates on those N alone
before training goes on as usual:

    D = {N uniformly random transitions};   repeat K times: SAC update on a batch from D

Nikishin et al. read the slow learning afterwards as the network over-fitting its
first data ("primacy bias"). The paper shows that the primed critic's Q values
explode during priming, and that with OFN the same priming does little harm: the
damage comes from divergence, not from the early data as such.
"""


def prime(buffer, update, updates, batch_size, generators):
    """Run `updates` updates, each on a new batch sampled from what the buffer holds now."""
    for _ in range(updates):
        update(buffer.sample(batch_size, generators))
