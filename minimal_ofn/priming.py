"""Priming (Nikishin et al. 2022, re-examined in section 4 of the paper).

Collect N random transitions, then run K gradient updates on those N alone
before training goes on as usual:

    D = {N uniformly random transitions};   repeat K times: SAC update on a batch from D

Nikishin et al. read the slow learning afterwards as the network over-fitting its
first data ("primacy bias"). The paper reports that the primed critic's Q values
explode during priming, and that with OFN the same priming does little harm: the
damage comes from divergence, not from the early data as such.

What this package measured (docs/story/story.md, part 3, claims 25-28): on
cartpole-swingup, 25,000 priming updates left Q *below* the bound B, and the
return comparisons were unresolved with 5 seeds. On cheetah-run's random buffer
with alpha held at 0.01 (part 1, whose figure tutorial 3 shows, and the demo), the Adam update
went past B. With alpha learned from 1 (part 1's other arm, and tutorial 6's
priming run) peak Q stayed within a few tenths of a decade of B, a bound that
then holds a large entropy term: part 1's Adam runs ended at alpha 0.9 to 14.
"""


def prime(buffer, update, updates, batch_size, generators):
    """Run `updates` updates, each on a new batch sampled from what the buffer holds now."""
    for _ in range(updates):
        update(buffer.sample(batch_size, generators))
