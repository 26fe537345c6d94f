"""Exercise 06, priming and resets: the priming loop and the reset schedule."""

import random

from . import check, current_seed
from .training import assert_same_run, reference_rows, train_rows


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


@check("prime")
def prime_on_fresh_counts(prime):
    """fresh each grading: any number of updates (0 included; a negative count runs none), any batch size"""
    rng = random.Random(current_seed() * 31 + 5)
    for n in (rng.randint(2, 40), 0, -rng.randint(1, 5)):
        buffer, seen, generators = _Buffer(), [], [f"g{k}" for k in range(rng.randint(1, 4))]
        size = rng.randint(1, 512)
        prime(buffer, seen.append, n, size, generators)
        assert [b.get("batch") if isinstance(b, dict) else b for b in seen] == list(range(max(n, 0))), (
            f"prime(..., updates={n}) should run {max(n, 0)} updates, each on a new batch")
        assert all(c == (size, generators) for c in buffer.calls), "sample with the batch size and generators given"


@check("prime", 2)
def prime_inside_training(prime):
    """a few updates of train() with priming and your prime match the package's run"""
    priming = {"priming_updates": 6}
    assert_same_run(train_rows({"prime": prime}, **priming), reference_rows(**priming), "prime")


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
    """reset_every = 0 means never (and no division by zero), while a positive reset_every still resets"""
    assert not any(reset_due(0, u) for u in range(0, 50)), "reset_every = 0 switches resets off: never reset"
    assert [u for u in range(1, 31) if reset_due(10, u)] == [10, 20, 30], (
        "with reset_every = 10 the resets fall on updates 10, 20, 30")


@check("reset_due")
def reset_on_fresh_schedules(reset_due):
    """fresh each grading: any reset_every (1, large, 0) and update counts from 0 on (as the loop passes them)"""
    rng = random.Random(current_seed() * 31 + 6)
    for every in (1, rng.randint(2, 9), rng.randint(100, 5000), 0):
        start = rng.randint(0, 3 * max(every, 1))
        counts = list(range(start, start + 40)) + [0, every * rng.randint(1, 50)]
        want = [u for u in counts if every > 0 and u > 0 and u % every == 0]
        got = [u for u in counts if reset_due(every, u)]
        assert got == want, f"reset_every = {every}: updates {want[:6]} are reset points among those tried, you said {got[:6]}"


@check("reset_due", 2)
def reset_inside_training(reset_due):
    """a few updates of train() with resets and your reset_due match the package's run"""
    resets = {"reset_every": 5}
    assert_same_run(train_rows({"reset_due": reset_due}, **resets), reference_rows(**resets), "reset_due")
