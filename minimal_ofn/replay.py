"""Uniform experience replay for N agents, preallocated on the training device.

Agent n stores transitions (s, a, r, s', terminated) in its own slice of tensors
shaped [N, capacity, ...]; an update draws, for each agent independently,

    i_1 .. i_B ~ Uniform{0, ..., size - 1}

from that agent's own random stream. Each observation is stored once: s' of row i
is s of row i + 1, except where an episode ended at row i (the next row starts a
new episode) and at the newest row (its s' is the current observation, not yet a
row). Those final observations are kept apart, so that a truncated episode's last
state survives the reset; `terminated` is kept apart from truncation: only a true
termination stops the bootstrap in the soft target. Observations may be stored in
16 bits (replay_dtype); a batch always comes out in float32.
"""

import os
from collections import deque

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def planned_bytes(n: int, capacity: int, obs_dim: int, act_dim: int, dtype: str = "float32") -> int:
    """Bytes the buffers of n agents take: per row one observation, the action, reward, terminated, end slot."""
    per_row = obs_dim * DTYPES[dtype].itemsize + act_dim * 4 + 4 + 4 + 4
    return n * (capacity * per_row + obs_dim * 4)


def free_bytes(device) -> int:
    """Memory a new allocation can take: the GPU's free memory, or on the CPU the RAM available (Linux)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


class ReplayBuffer:
    FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def __init__(self, n: int, capacity: int, obs_dim: int, act_dim: int, device, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ValueError(f"replay_dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.n, self.capacity, self.device, self.dtype = n, capacity, torch.device(device), dtype
        need, free = planned_bytes(n, capacity, obs_dim, act_dim, dtype), free_bytes(self.device)
        if need > free:
            raise ValueError(f"replay for {n} agents x {capacity:,} transitions needs {gib(need)}, more than the "
                             f"{gib(free)} free on {self.device}: lower buffer_size, replay_dtype float16, or agents")
        z = dict(device=self.device)
        self.data = {"obs": torch.zeros(n, capacity, obs_dim, dtype=DTYPES[dtype], **z),
                     "action": torch.zeros(n, capacity, act_dim, **z), "reward": torch.zeros(n, capacity, **z),
                     "terminated": torch.zeros(n, capacity, **z)}
        self.end_slot = torch.full((n, capacity), -1, dtype=torch.int32, **z)  # row -> slot in final_obs, or -1
        self.final_obs = torch.zeros(n, 8, obs_dim, dtype=DTYPES[dtype], **z)  # grows when more episodes end
        self.newest_next = torch.zeros(n, obs_dim, **z)  # s' of the newest row
        self.ends = [deque() for _ in range(n)]  # per agent: (transition number, end number) of live ends
        self.end_count = [0] * n
        self.count = 0  # transitions added so far; lockstep agents add together, so one count serves all

    @property
    def pos(self) -> int:
        return self.count % self.capacity

    @property
    def size(self) -> int:
        return min(self.count, self.capacity)

    def add(self, obs, action, reward, next_obs, terminated, ended=None) -> None:
        """Add one transition per agent; each argument has leading axis N (numpy or tensor). ended[n]: agent n's
        episode ended here (terminated or truncated), so next_obs[n] is kept; default: where terminated."""
        as_t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float32), device=self.device)  # noqa: E731
        pos, self.count = self.pos, self.count + 1
        self.data["obs"][:, pos] = as_t(obs).to(self.data["obs"].dtype)
        for key, value in (("action", action), ("reward", reward), ("terminated", terminated)):
            self.data[key][:, pos] = as_t(value)
        self.end_slot[:, pos] = -1
        ended = np.asarray(terminated if ended is None else ended, bool)
        next_obs = as_t(next_obs)
        for i in np.flatnonzero(ended):
            self.end_slot[i, pos] = self._new_end(i)
            self.final_obs[i, self.end_slot[i, pos]] = next_obs[i].to(self.final_obs.dtype)
        self.newest_next.copy_(next_obs)

    def _new_end(self, i: int) -> int:
        """A slot in final_obs for agent i's newest end; the slots double when every one holds a live end."""
        live, oldest = self.ends[i], self.count - self.capacity  # transitions before `oldest` are overwritten
        while live and live[0][0] < oldest:
            live.popleft()
        slots = self.final_obs.shape[1]
        if len(live) == slots:
            grown = torch.zeros(self.n, 2 * slots, *self.final_obs.shape[2:], dtype=self.final_obs.dtype,
                                device=self.device)
            for a, ends in enumerate(self.ends):
                for j, k in ends:
                    grown[a, k % (2 * slots)] = self.final_obs[a, k % slots]
                    if j >= oldest:
                        self.end_slot[a, j % self.capacity] = k % (2 * slots)
            self.final_obs, slots = grown, 2 * slots
        k = self.end_count[i]
        self.end_count[i] += 1
        live.append((self.count - 1, k))
        return k % slots

    def sample(self, batch_size: int, stream) -> dict:
        """A batch [N, B, ...] per field, agent n's indices drawn from its slice of `stream` (streams.Stream)."""
        return self.gather(stream.integers(self.size, batch_size))

    def gather(self, idx) -> dict:
        """The transitions at rows idx [N, B], s' included, observations in float32."""
        rows = torch.arange(self.n, device=self.device).unsqueeze(1)
        out = {k: v[rows, idx].float() for k, v in self.data.items()}
        slot = self.end_slot[rows, idx].long()
        following = self.data["obs"][rows, (idx + 1) % self.capacity].float()
        newest = (idx == (self.count - 1) % self.capacity).unsqueeze(-1)
        following = torch.where(newest, self.newest_next.unsqueeze(1), following)
        final = self.final_obs[rows, slot.clamp_min(0)].float()
        out["next_obs"] = torch.where((slot >= 0).unsqueeze(-1), final, following)
        return {k: out[k] for k in self.FIELDS}

    # ---- checkpoints: transitions in the order they were added, so a run can save only the new ones
    def rows(self, start: int, stop: int | None = None, agents=None) -> dict:
        """Transitions number start .. stop-1 (those still held), on the CPU, for `agents` (default all): the
        stored fields, `ended` [N, K], their final observations `final_obs` [N, M, D] in order (padded to the
        most ends of any agent), the count and s' of the newest row."""
        stop = self.count if stop is None else stop
        start = max(start, self.count - self.capacity)
        agents = torch.arange(self.n) if agents is None else torch.as_tensor(agents)
        at = torch.arange(start, stop, device=self.device) % self.capacity
        rows = agents.to(self.device).unsqueeze(1)
        pick = lambda v: v[rows, at]  # noqa: E731  (only these agents' rows are copied)
        out = {k: pick(v).cpu() for k, v in self.data.items()}
        slot = pick(self.end_slot)
        out["ended"] = (slot >= 0).cpu()
        m = int(out["ended"].sum(1).max()) if len(at) else 0
        final = torch.zeros(len(agents), m, self.final_obs.shape[2], dtype=self.final_obs.dtype)
        for row, i in enumerate(agents.tolist()):
            mine = slot[row][slot[row] >= 0].long()
            final[row, : len(mine)] = self.final_obs[i, mine].cpu()
        out.update(final_obs=final, start=start, stop=stop, newest_next=self.newest_next[rows[:, 0]].cpu())
        return out

    def extend(self, rows: dict) -> None:
        """Append what rows() returned (for the same agents), as if each transition were add()ed again."""
        start, stop = rows["start"], rows["stop"]
        if start < self.count or (start > self.count and stop - start < self.capacity):
            raise ValueError(f"replay rows start at transition {start}, the buffer holds {self.count}")
        k = stop - start
        keep = min(k, self.capacity)  # of more rows than fit, only the last capacity stay
        at = torch.arange(stop - keep, stop, device=self.device) % self.capacity
        for key, v in self.data.items():
            v[:, at] = rows[key][:, k - keep:].to(self.device, v.dtype)
        self.end_slot[:, at] = -1
        ended = rows["ended"]
        seen = ended[:, : k - keep].sum(1).tolist()  # each agent's ends before the rows that stay
        for j, i in torch.nonzero(ended[:, k - keep:].T).tolist():  # in order of rows, so the n-th end meets its row
            self.count = stop - keep + j + 1
            slot = self._new_end(i)
            self.end_slot[i, (self.count - 1) % self.capacity] = slot
            self.final_obs[i, slot] = rows["final_obs"][i, seen[i]].to(self.device, self.final_obs.dtype)
            seen[i] += 1
        self.count = stop
        self.newest_next.copy_(rows["newest_next"])

    def state_dict(self) -> dict:
        # Only the filled part: a checkpoint early in a long run stays small.
        return self.rows(0)

    def load_state_dict(self, state: dict) -> None:
        self.count = state["start"]
        self.extend(state)
