"""Resets (Nikishin et al. 2022; D'Oro et al. 2023), the comparison the paper measures OFN against.

Every K gradient updates, re-initialize the agent and keep its replay buffer:

    kind="full":  actor, critic, target critic, temperature and every optimizer's state
    kind="actor": the actor and its optimizer only
    kind="critic_optimizer": the critic's optimizer state (Adam's m, v and step count) and nothing
        else; the weights stay (reset_critic_optimizers does it on a fixed buffer). A causal test of
        "the moment estimates propel the divergence": if they do, a critic that forgets them diverges less.

A reset throws away whatever the networks over-fitted (the primacy-bias story) but
also everything they learned; the replay buffer lets them relearn quickly. The
paper's point is that OFN removes the need: the divergence resets fight is
prevented instead of periodically undone. The re-initialization itself is
SAC.reset_agent in sac.py (the same code that initializes a fresh agent).
"""


def reset_due(reset_every, updates):
    """True when `updates` is a positive multiple of reset_every (never when reset_every is 0)."""
    return reset_every > 0 and updates > 0 and updates % reset_every == 0


def reset_critic_optimizers(sac, every: list[int], updates: int) -> None:
    """Forget the critic optimizer's state of each agent i whose every[i] is due at `updates` (weights untouched)."""
    for i, k in enumerate(every):
        if reset_due(k, updates):
            sac.critic_opt.reset_agent(i)


def reset_agent(sac, i: int, kind: str) -> None:
    """Reset agent i as `kind` says: "critic_optimizer" forgets the critic optimizer's state only, the others are
    SAC.reset_agent's."""
    if kind == "critic_optimizer":
        sac.critic_opt.reset_agent(i)
    else:
        sac.reset_agent(i, kind)
