"""The integration check: a few updates of the real train() with the learner's function plugged in, compared
row by row with the same seeded run on the package's own function. It catches what a probe of one call cannot:
argument types as training passes them, state across calls, in-place changes."""

from . import current_seed, torch_side


def train_rows(functions: dict | None = None, config=None, **fields) -> list[dict]:
    """The metric rows of a tiny seeded run (Pendulum, 2x8 nets, a few dozen updates, eager) of the package's train()."""
    import torch

    from ...config import Config
    from ...train import train

    cfg = config if config is not None else tiny_config(**fields)
    plugged = {name: torch_side(fn) for name, fn in (functions or {}).items()}
    with torch.random.fork_rng():
        torch.manual_seed(current_seed())
        assert isinstance(cfg, Config)
        return train(cfg, progress=False, functions=plugged)[0]


def tiny_config(**fields):
    from ...config import Config

    base = dict(env="Pendulum-v1", steps=12, seed_steps=6, utd=2, batch_size=8, hidden=8, log_every=4,
                eval_every=12, eval_episodes=1, checkpoint_every=12, compile="off", seed=current_seed() % 1000)
    base.update(fields)
    return Config(**base)


_REFERENCE_RUNS = {}


def reference_rows(**fields) -> list[dict]:
    """train_rows with the package's own functions (once per grading seed and config)."""
    key = (current_seed(), tuple(sorted(fields.items())))
    if key not in _REFERENCE_RUNS:
        _REFERENCE_RUNS.clear() if len(_REFERENCE_RUNS) > 16 else None
        _REFERENCE_RUNS[key] = train_rows(None, **fields)
    return _REFERENCE_RUNS[key]


RUN_METRICS = ("critic_loss", "actor_loss", "temperature", "q_replay", "q_policy", "eval_return")


def assert_same_run(mine, reference, what: str, metrics=RUN_METRICS, rtol=1e-4, atol=1e-5):
    """The learner's run and the reference run agree, row by row, on `metrics`."""
    import math

    assert len(mine) == len(reference), (
        f"with your {what} plugged into train(), the run logged {len(mine)} rows where the reference logs "
        f"{len(reference)}")
    for row, ref in zip(mine, reference):
        for key in metrics:
            a, b = row.get(key), ref.get(key)
            if isinstance(b, float) and math.isnan(b) and isinstance(a, float) and math.isnan(a):
                continue
            if a is None or not math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol):
                raise AssertionError(
                    f"with your {what} plugged into train() (a few updates of a tiny Pendulum run), {key} at step "
                    f"{ref['step']} is {a} where the package's gives {b}: your function works on the check's inputs "
                    "but not the way training calls it (argument types, shapes, state across calls, in-place "
                    "changes)")
