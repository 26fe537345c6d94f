"""Resets (Nikishin et al. 2022; D'Oro et al. 2023), the comparison the paper measures OFN against.

Every K gradient updates, re-initialize the agent and keep its replay buffer:

    kind="full":  actor, critic, target critic, temperature and every optimizer's state
    kind="actor": the actor and its optimizer only

A reset throws away whatever the networks over-fitted (the primacy-bias story) but
also everything they learned; the replay buffer lets them relearn quickly. The
paper's point is that OFN removes the need: the divergence resets fight is
prevented instead of periodically undone. The re-initialization itself is
SAC.reset_agent in sac.py (the same code that initializes a fresh agent).
"""


def reset_due(reset_every, updates):
    """True when `updates` is a positive multiple of reset_every (never when reset_every is 0)."""
    return reset_every > 0 and updates > 0 and updates % reset_every == 0
