"""SAC at UTD 1 learns: Pendulum-v1, 5,000 learning steps after 1,000 random ones.

Measured (python /tmp/learn3.py equivalent: seeds 0-2, these settings): eval returns at step 6000 of
-143, -167, -162, from about -1,100 to -1,500 for the random policy at step 1000.
"""

import pytest

from minimal_ofn.config import Config
from minimal_ofn.train import train


@pytest.mark.slow
def test_sac_at_utd1_learns_pendulum():
    cfg = Config(env="Pendulum-v1", steps=6000, seed_steps=1000, utd=1, batch_size=128, hidden=128,
                 log_every=1000, eval_every=1000, eval_episodes=5, seed=0)
    rows = train(cfg, progress=False)[0]
    random_policy, learned = rows[0]["eval_return"], rows[-1]["eval_return"]
    assert learned > -500, f"eval return {learned:.0f} after 5000 updates (random policy: {random_policy:.0f})"
    assert learned - random_policy > 600
