"""The update-to-data ratio (UTD): how many gradient updates follow each environment step.

    for t = 1 .. steps:
        one environment step
        if t >= seed_steps:  utd updates, each on a fresh batch from the replay buffer

At UTD 1 SAC does one update per step; at UTD 32 it fits the same data 32 times as
hard, and that is where the paper's divergence shows. The training loop in train.py
calls utd_loop with its own environment step and update.
"""


def utd_loop(env_step, update, steps, utd, seed_steps):
    """Run `steps` environment steps; after each one (once seed_steps transitions exist) run `utd` updates.

    Returns the number of updates."""
    updates = 0
    for t in range(1, steps + 1):
        env_step()
        if t >= seed_steps:
            for _ in range(utd):
                update()
                updates += 1
    return updates
