"""The grader's tests, one module per exercise notebook (ex01_sac_utd1.py, ...).

A check tests one property of one function the learner writes (a "part") and is
worth some points. It is a plain function whose parameters are named after the
learner's functions; the runner passes each as a callable, calls the check, and
reads an AssertionError as a failure whose message is a hint: it points at the
mistake without giving the code.

When grading (grade.py) the callables are the learner's functions running in a
sandboxed child process (learner.py): the check itself, its reference values and
the score stay in the grader's process. The checks carry their own reference
implementations, written independently of the package's.

Random inputs come from gen(k) / np_rng(k), seeded from SEED, which the grader draws
anew for every grading (and writes in the report): a learner cannot special-case
the values a check uses, and a report can be reproduced with its seed.

    run(exercise, functions, seed)    -> one result dict per check (functions: name -> callable)
    check_part(exercise, part, ns)    -> for an nbgrader test cell: raises if a check fails (feedback
                                         in the learner's own kernel, which can fool it: not a grade)
"""

import importlib
import inspect
import traceback
import warnings

import numpy as np

EXERCISES = ("01_sac_utd1", "02_high_utd", "03_momentum", "04_regularization", "05_ofn", "06_priming_resets",
             "07_at_scale")
SEED = 0  # set by run() for one grading


class Refused(Exception):
    """A graded function the grader will not run (missing, imported, or using what grading forbids)."""


def check(part: str, points: int = 1):
    """Mark a function as a check of `part` worth `points`; its docstring says what it tests."""
    def mark(fn):
        fn.part, fn.points = part, points
        return fn
    return mark


def gen(k: int):
    """A torch.Generator for a check's k-th random draw, seeded from this grading's SEED."""
    import torch

    return torch.Generator().manual_seed(SEED * 7919 + k)


def np_rng(k: int):
    return np.random.default_rng(SEED * 7919 + k)


def grad_of(fn, *args):
    """(fn(*args), d sum(fn(*args)) / d each tensor argument that requires grad), wherever fn runs."""
    import torch

    if hasattr(fn, "grad"):  # a learner function in the sandbox: the backward pass runs there
        return fn.grad(*args)
    out = fn(*args)
    wrt = [a for a in _flat(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return out, [None] * len(wrt)
    return out, list(torch.autograd.grad(out.sum(), wrt, allow_unused=True))


def _flat(tree):
    if isinstance(tree, (list, tuple)):
        return [x for item in tree for x in _flat(item)]
    return [tree]


def module(exercise: str):
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; exercises: {', '.join(EXERCISES)}")
    return importlib.import_module(f"{__name__}.ex{exercise}")


def checks_of(exercise: str) -> list:
    """The checks of an exercise, in the order they are written."""
    return [f for f in vars(module(exercise)).values() if callable(f) and hasattr(f, "part")]


def parts(exercise: str) -> dict:
    """part name -> total points."""
    out = {}
    for c in checks_of(exercise):
        out[c.part] = out.get(c.part, 0) + c.points
    return out


def graded_names(exercise: str) -> list[str]:
    """The learner functions an exercise's checks call."""
    names = []
    for fn in checks_of(exercise):
        names += [n for n in inspect.signature(fn).parameters if n not in names]
    return names


def _message(err: BaseException, fn) -> str:
    from ..learner import CheckTimeout, ChildDied

    if isinstance(err, AssertionError):
        return str(err) or "assertion failed"
    if isinstance(err, Refused):
        return str(err)
    if isinstance(err, NotImplementedError):
        return f"`{fn.part}` is not implemented yet (it raises NotImplementedError)"
    if isinstance(err, (CheckTimeout, ChildDied)):
        return f"`{fn.part}` {err}" if isinstance(err, CheckTimeout) else str(err)
    where = getattr(err, "where", "")
    if not where:  # run in this process (check_part): the learner's frame is an ipython cell
        frames = traceback.extract_tb(err.__traceback__)
        where = next((f"line {f.lineno}" for f in reversed(frames) if f.filename.startswith("<ipython")
                      or f.filename.startswith("/tmp/ipykernel")), "")
    text = " ".join(f"{type(err).__name__}: {err}".split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"raised {text}{' at ' + where if where else ''} (testing: {_describe(fn)})"


def _describe(fn) -> str:
    return (inspect.getdoc(fn) or fn.__name__).split("\n")[0]


def run_check(fn, functions: dict) -> dict:
    import torch

    result = {"part": fn.part, "check": fn.__name__, "description": _describe(fn), "max_points": fn.points}
    try:
        args = []
        for name in inspect.signature(fn).parameters:
            value = functions.get(name)
            if isinstance(value, Refused):
                raise value
            if not callable(value):
                raise Refused(f"`{name}` is not defined: run the cell that defines it, and keep its name")
            args.append(value)
        with torch.enable_grad(), torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a learner's NaN warning is not the report; the failed check is
            torch.manual_seed(SEED)
            fn(*args)
        result.update(passed=True, points=fn.points, message="")
    except Exception as err:  # anything the learner's code raises is a failed check, never a crash
        result.update(passed=False, points=0, message=_message(err, fn))
    return result


def run(exercise: str, functions: dict, seed: int = 0, only_part: str | None = None) -> list[dict]:
    global SEED
    SEED = int(seed)
    return [run_check(fn, functions) for fn in checks_of(exercise) if only_part in (None, fn.part)]


def check_part(exercise: str, part: str, namespace: dict) -> None:
    """What an nbgrader test cell calls: print each check of `part`, raise AssertionError if one fails."""
    results = run(exercise, namespace, only_part=part)
    if not results:
        raise ValueError(f"exercise {exercise} has no part {part!r}")
    for r in results:
        mark = "ok  " if r["passed"] else "FAIL"
        print(f"{mark} {r['description']}" + ("" if r["passed"] else f"\n     hint: {r['message']}"))
    failed = [r for r in results if not r["passed"]]
    if failed:
        raise AssertionError(f"{len(failed)} of {len(results)} checks of {part} failed (hints above)")


def current_seed() -> int:
    return SEED
