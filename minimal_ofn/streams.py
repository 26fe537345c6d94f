"""Counter-based random streams: every agent's random numbers for a whole stack, in a fixed number of tensor ops.

A torch.Generator is one stream, so N agents with their own streams cost N draws (N kernel launches on a GPU)
for every batch of indices, every noise tensor and every dropout mask. A counter-based generator (Salmon et al.
2011, "Parallel random numbers: as easy as 1, 2, 3") has no state to advance: its k-th number is a hash of a key
and k. Agent n's key comes from its seed and the stream's name; the stack's draws are one elementwise pass:

    x[n, k] = mix(key_n + (c + k) * gamma)          k = 0 .. K-1, for a draw of K numbers per agent
    c <- c + K                                      one host counter per stream, the same for every agent

gamma = 0x9E3779B97F4A7C15 (2^64 over the golden ratio) and mix is SplitMix64's output function (Steele, Lea &
Flood 2014), a bijection of 64-bit words, all arithmetic mod 2^64:

    z <- (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;   z <- (z ^ (z >> 27)) * 0x94D049BB133111EB;   z ^ (z >> 31)

Agent n's numbers depend on (its seed, the stream, k) only: not on the other agents of its stack, nor on how
many there are. The counter advances by the per-agent count K, whatever N is. A checkpoint saves the counters.

torch has no unsigned 64-bit arithmetic, so the words live in int64: multiplication wraps mod 2^64 (two's
complement, tests/test_streams.py checks it eagerly and compiled against Python's exact integers), and a right
shift is made logical by masking off the copies of the sign bit.
"""

import math

import torch

GAMMA = 0x9E3779B97F4A7C15
MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
MASK64 = (1 << 64) - 1
NAMES = ("replay", "policy", "dropout", "explore", "diagnostics")  # a stream per purpose, so one never shifts another


def _signed(x: int) -> int:
    """A 64-bit word as the int64 that holds the same bits."""
    return x - (1 << 64) if x >= 1 << 63 else x


def mix64(z: int) -> int:
    """SplitMix64's output function on a Python integer (the exact reference for mix)."""
    z = ((z ^ (z >> 30)) * MIX[0]) & MASK64
    z = ((z ^ (z >> 27)) * MIX[1]) & MASK64
    return z ^ (z >> 31)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """z >> k on 64-bit words (a logical shift: the sign bit's copies masked off)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(z: torch.Tensor) -> torch.Tensor:
    """mix64 elementwise on int64 tensors."""
    z = (z ^ _shr(z, 30)) * _signed(MIX[0])
    z = (z ^ _shr(z, 27)) * _signed(MIX[1])
    return z ^ _shr(z, 31)


def key(seed: int, name: str) -> int:
    """Agent `seed`'s key for stream `name`: distinct for distinct (seed, name) (mix64 is a bijection)."""
    return mix64(((seed & ((1 << 56) - 1)) << 8 | NAMES.index(name)) * GAMMA & MASK64)


class Stream:
    """One stream of every agent of a stack: draws [N, *shape], agent n's from its own key."""

    def __init__(self, seeds, name: str, device="cpu"):
        self.name, self.device, self.n = name, torch.device(device), len(seeds)
        self.keys = torch.tensor([[_signed(key(int(s), name))] for s in seeds], dtype=torch.int64, device=device)
        self.counter = 0

    def bits(self, *shape, rows=None) -> torch.Tensor:
        """The next prod(shape) 64-bit words of each agent: int64 [N, *shape]; rows (an index tensor): those
        agents' words only, [len(rows), *shape] (the counter moves the same)."""
        count = math.prod(shape)
        k = torch.arange(self.counter, self.counter + count, dtype=torch.int64, device=self.device)
        self.counter += count
        keys = self.keys if rows is None else self.keys[rows]
        return mix(keys + k * _signed(GAMMA)).view(len(keys), *shape)

    def uniform(self, *shape, dtype=None, rows=None) -> torch.Tensor:
        """U[0, 1) in steps of 2^-24 (the top 24 bits), [N, *shape] (rows: as in bits)."""
        return _shr(self.bits(*shape, rows=rows), 40).to(dtype or torch.get_default_dtype()) * 2.0 ** -24

    def normal(self, *shape, dtype=None) -> torch.Tensor:
        """N(0, 1) by Box and Muller's transform of the word's two 32-bit halves: sqrt(-2 log u1) cos(2 pi u2),
        u1 in (0, 1], u2 in [0, 1); |z| <= 6.7."""
        x = self.bits(*shape)
        dtype = dtype or torch.get_default_dtype()
        u1 = (_shr(x, 32) + 1).to(torch.float64) * 2.0 ** -32  # float64: 32 bits survive the conversion
        u2 = (x & 0xFFFFFFFF).to(torch.float64) * 2.0 ** -32
        return ((-2 * u1.log()).sqrt() * torch.cos(2 * math.pi * u2)).to(dtype)

    def integers(self, high, *shape) -> torch.Tensor:
        """Integers uniform on 0 .. high-1 (high < 2^31), [N, *shape]: the top 32 bits times high, over 2^32."""
        return (_shr(self.bits(*shape), 32) * int(high)) >> 32


class Streams:
    """A stack's streams, one per purpose (NAMES), each keyed by every agent's seed."""

    def __init__(self, seeds, device="cpu"):
        for name in NAMES:
            setattr(self, name, Stream(seeds, name, device))

    def state_dict(self) -> dict:
        return {name: getattr(self, name).counter for name in NAMES}

    def load_state_dict(self, state: dict) -> None:
        for name in NAMES:
            getattr(self, name).counter = int(state[name])
