import math

import pytest
import torch

from minimal_ofn import streams
from minimal_ofn.streams import GAMMA, MASK64, NAMES, Stream, Streams, key, mix, mix64


def _reference(seed, name, start, count):
    """Agent `seed`'s words start .. start+count-1 of stream `name`, in Python's exact integers."""
    return [mix64((key(seed, name) + k * GAMMA) & MASK64) for k in range(start, start + count)]


def test_mix64_is_splitmix64():
    # SplitMix64 from state 0: its published first outputs (Vigna's splitmix64.c: state += gamma, then mix)
    state, out = 0, []
    for _ in range(3):
        state = (state + GAMMA) & MASK64
        out.append(mix64(state))
    assert out == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("compiled", [False, True])
def test_the_tensor_hash_is_the_exact_integer_one_eager_and_compiled(compiled):
    # int64 multiplication must wrap mod 2^64 and the shifts must be logical, on every path the update takes
    words = torch.tensor([0, 1, -1, 2**63 - 1, -(2**63), 12345678901234567, -98765432109876543], dtype=torch.int64)
    fn = torch.compile(mix, fullgraph=True) if compiled else mix
    got = [x & MASK64 for x in fn(words).tolist()]
    assert got == [mix64(x & MASK64) for x in words.tolist()]


def test_an_agents_numbers_depend_on_its_seed_and_the_counter_only():
    stack, alone = Stream([3, 11, 5], "replay"), Stream([11], "replay")
    a, b = stack.bits(2, 3), stack.bits(4)
    assert [x & MASK64 for x in a[1].flatten().tolist()] == _reference(11, "replay", 0, 6)
    assert [x & MASK64 for x in b[1].tolist()] == _reference(11, "replay", 6, 4)
    assert torch.equal(alone.bits(2, 3)[0], a[1]) and torch.equal(alone.bits(4)[0], b[1])
    assert stack.counter == alone.counter == 10  # the per-agent count, whatever the stack's size
    assert not torch.equal(a[0], a[2])
    assert not torch.equal(Stream([11], "policy").bits(6), alone.keys)  # another stream, other numbers


def test_rows_draw_those_agents_numbers_and_move_the_counter_the_same():
    full, part = Stream([1, 2, 3], "dropout"), Stream([1, 2, 3], "dropout")
    u = full.uniform(50)
    v = part.uniform(50, rows=torch.tensor([0, 2]))
    assert torch.equal(v, u[[0, 2]]) and full.counter == part.counter == 50


def test_the_distributions():
    s = Stream(range(4), "policy")
    u = s.uniform(200_000)
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.005
    z = s.normal(200_000)
    assert z.dtype == torch.float32 and abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z.abs() < 1).float().mean()) - math.erf(1 / math.sqrt(2))) < 0.005
    i = s.integers(7, 70_000)
    counts = torch.bincount(i.flatten(), minlength=7)
    assert i.min() >= 0 and i.max() <= 6 and counts.min() > 0.95 * 40_000 and counts.max() < 1.05 * 40_000
    assert s.integers(1, 10).eq(0).all()


def test_the_counters_are_the_state_a_checkpoint_carries():
    a = Streams([0, 1], "cpu")
    for name in NAMES:
        getattr(a, name).bits(5 + len(name))
    b = Streams([0, 1], "cpu")
    b.load_state_dict(a.state_dict())
    for name in NAMES:
        assert torch.equal(getattr(a, name).bits(3), getattr(b, name).bits(3))
    assert streams.NAMES == ("replay", "policy", "dropout", "explore", "diagnostics")
