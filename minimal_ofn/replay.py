"""Uniform experience replay for N agents, preallocated on the training device.

Agent n stores transitions (s, a, r, s', terminated) in its own slice of tensors
shaped [N, capacity, ...]; an update draws, for each agent independently,

    i_1 .. i_B ~ Uniform{0, ..., size - 1}

from that agent's own random stream. s' is stored explicitly (not read from the
next row) so that a truncated episode's final state survives the reset, and
`terminated` is kept apart from truncation: only a true termination stops the
bootstrap in the soft target.
"""

import numpy as np
import torch


class ReplayBuffer:
    FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def __init__(self, n: int, capacity: int, obs_dim: int, act_dim: int, device):
        self.n, self.capacity, self.device = n, capacity, torch.device(device)
        shapes = {"obs": (obs_dim,), "action": (act_dim,), "reward": (), "next_obs": (obs_dim,), "terminated": ()}
        self.data = {k: torch.zeros(n, capacity, *s, device=self.device) for k, s in shapes.items()}
        self.pos = 0  # lockstep agents add together, so one write position serves all
        self.size = 0

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Add one transition per agent; each argument has leading axis N (numpy or tensor)."""
        for key, value in zip(self.FIELDS, (obs, action, reward, next_obs, terminated)):
            self.data[key][:, self.pos] = torch.as_tensor(np.asarray(value, dtype=np.float32), device=self.device)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generators) -> dict:
        """A batch [N, B, ...] per field, agent n's indices drawn with generators[n]."""
        idx = torch.stack([torch.randint(self.size, (batch_size,), generator=g, device=self.device)
                           for g in generators])
        rows = torch.arange(self.n, device=self.device).unsqueeze(1)
        return {k: v[rows, idx] for k, v in self.data.items()}

    def state_dict(self) -> dict:
        # Only the filled part: a checkpoint early in a long run stays small.
        return {"pos": self.pos, "size": self.size, **{k: v[:, : self.size].cpu() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.size = state["pos"], state["size"]
        for k in self.FIELDS:
            self.data[k][:, : self.size] = state[k].to(self.device)
