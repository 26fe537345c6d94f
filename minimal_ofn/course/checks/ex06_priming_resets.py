"""Exercise 06, priming and resets: the priming loop and the reset schedule."""

from . import check


class _Buffer:
    """Stands in for the replay buffer: hands out numbered batches, refuses new data."""

    def __init__(self):
        self.calls = []

    def sample(self, batch_size, generators):
        self.calls.append((batch_size, generators))
        return {"batch": len(self.calls) - 1}

    def add(self, *args, **kwargs):
        raise AssertionError("priming trains on the random transitions already in the buffer: it adds no data")


@check("prime")
def prime_runs_exactly_updates_updates(prime):
    """calls update() exactly `updates` times (none for 0)"""
    for n in (7, 0, 1):
        seen = []
        prime(_Buffer(), seen.append, n, 32, ["g"])
        assert len(seen) == n, f"prime(..., updates={n}) should call update {n} times, it called it {len(seen)} times"


@check("prime")
def prime_samples_a_fresh_batch_for_every_update(prime):
    """every update gets its own batch from buffer.sample(batch_size, generators)"""
    buffer, seen, generators = _Buffer(), [], ["g0", "g1"]
    prime(buffer, seen.append, 5, 64, generators)
    assert len(buffer.calls) == 5 and [b.get("batch") if isinstance(b, dict) else b for b in seen] == [0, 1, 2, 3, 4], (
        "each update should get a new batch: sample from the buffer inside the loop, once per update, and pass "
        "that batch to update")
    assert all(c == (64, generators) for c in buffer.calls), (
        "sample with the batch size and the generators you were given: buffer.sample(batch_size, generators)")


@check("reset_due")
def reset_every_k_updates(reset_due):
    """with reset_every = 25, updates 25, 50, 75, 100 (and no others) are reset points"""
    due = [u for u in range(1, 101) if reset_due(25, u)]
    if due == [24, 49, 74, 99] or due == [26, 51, 76]:
        raise AssertionError(f"off by one: with reset_every = 25 the resets fall on updates 25, 50, ...; you have "
                             f"{due}")
    if 0 in due or (due and due[0] == 1):
        raise AssertionError("no reset at the very first update: a fresh network needs no reset")
    assert due == [25, 50, 75, 100], f"with reset_every = 25, resets should fall on 25, 50, 75, 100; got {due[:8]}"


@check("reset_due")
def reset_never_when_switched_off(reset_due):
    """reset_every = 0 means never (and no division by zero)"""
    assert not any(reset_due(0, u) for u in range(1, 50)), "reset_every = 0 switches resets off: never reset"
