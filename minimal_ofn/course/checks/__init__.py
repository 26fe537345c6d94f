"""The grader's tests, one module per exercise notebook (ex01_sac_utd1.py, ...).

A check tests one property of one function the learner writes (a "part") and is
worth some points. It is a plain function whose parameters are named after the
learner's functions; the runner looks those names up in the namespace the
learner's notebook built, calls the check, and reads an AssertionError as a
failure whose message is a hint: it points at the mistake without giving the code.

    run(exercise, namespace)          -> one result dict per check
    report(exercise, namespace, path) -> the same, written as JSON (what grade.py reads)
    check_part(exercise, part, ns)    -> for an nbgrader test cell: raises if a check fails

The checks run inside the learner's kernel (see grade.py), so they carry their own
reference implementations instead of reading the package's functions, which an
experiment cell may have replaced with the learner's.
"""

import importlib
import inspect
import json
import os
import signal
import threading
import traceback
import warnings
from contextlib import contextmanager

EXERCISES = ("01_sac_utd1", "02_high_utd", "03_momentum", "04_regularization", "05_ofn", "06_priming_resets",
             "07_at_scale")
# Seconds per check: a learner's endless loop fails one check, not the grading (grade.py sets it per run).
CHECK_TIMEOUT = float(os.environ.get("MINIMAL_OFN_CHECK_TIMEOUT", 20))


class Missing(Exception):
    pass


class CheckTimeout(Exception):
    pass


def check(part: str, points: int = 1):
    """Mark a function as a check of `part` worth `points`; its docstring says what it tests."""
    def mark(fn):
        fn.part, fn.points = part, points
        return fn
    return mark


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


@contextmanager
def _time_limit(seconds: float):
    # SIGALRM works only in the main thread (where a kernel runs cells); elsewhere: no limit.
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum, frame):
        raise CheckTimeout()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _lookup(namespace: dict, name: str):
    if name not in namespace:
        raise Missing(f"`{name}` is not defined: run the cell that defines it, and keep its name")
    value = namespace[name]
    if not callable(value):
        raise Missing(f"`{name}` should be a function, but it is a {type(value).__name__}")
    return value


def _message(err: BaseException, fn, timeout: float) -> str:
    if isinstance(err, AssertionError):
        return str(err) or "assertion failed"
    if isinstance(err, Missing):
        return str(err)
    if isinstance(err, NotImplementedError):
        return f"`{fn.part}` is not implemented yet (it raises NotImplementedError)"
    if isinstance(err, CheckTimeout):
        return f"`{fn.part}` did not return within {timeout:g} s (an endless loop?)"
    # An exception from the learner's code: name where it happened and what was being tested.
    frames = traceback.extract_tb(err.__traceback__)
    where = next((f"line {f.lineno}" for f in reversed(frames) if f.filename.startswith("<ipython")
                  or f.filename.startswith("/tmp/ipykernel")), "")
    text = " ".join(f"{type(err).__name__}: {err}".split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"raised {text}{' at ' + where if where else ''} (testing: {_describe(fn)})"


def _describe(fn) -> str:
    return (inspect.getdoc(fn) or fn.__name__).split("\n")[0]


def run_check(fn, namespace: dict, timeout: float | None = None) -> dict:
    import torch

    result = {"part": fn.part, "check": fn.__name__, "description": _describe(fn), "max_points": fn.points}
    try:
        args = [_lookup(namespace, name) for name in inspect.signature(fn).parameters]
        with _time_limit(timeout or CHECK_TIMEOUT), torch.enable_grad(), torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a learner's NaN warning is not the report; the failed check is
            torch.manual_seed(0)
            fn(*args)
        result.update(passed=True, points=fn.points, message="")
    except Exception as err:  # anything the learner's code raises is a failed check, never a crash
        result.update(passed=False, points=0, message=_message(err, fn, timeout or CHECK_TIMEOUT))
    return result


def run(exercise: str, namespace: dict, only_part: str | None = None) -> list[dict]:
    return [run_check(fn, namespace) for fn in checks_of(exercise) if only_part in (None, fn.part)]


def report(exercise: str, namespace: dict, path: str) -> None:
    """Run every check of `exercise` on `namespace` and write {"exercise", "checks"} (or "error") to path."""
    try:
        out = {"exercise": exercise, "checks": run(exercise, namespace)}
    except Exception as err:
        out = {"exercise": exercise, "error": f"the checks could not run: {type(err).__name__}: {err}"}
    with open(path, "w") as f:
        json.dump(out, f)


def check_part(exercise: str, part: str, namespace: dict) -> None:
    """What an nbgrader test cell calls: print each check of `part`, raise AssertionError if one fails."""
    results = run(exercise, namespace, part)
    if not results:
        raise ValueError(f"exercise {exercise} has no part {part!r}")
    for r in results:
        mark = "ok  " if r["passed"] else "FAIL"
        print(f"{mark} {r['description']}" + ("" if r["passed"] else f"\n     hint: {r['message']}"))
    failed = [r for r in results if not r["passed"]]
    if failed:
        raise AssertionError(f"{len(failed)} of {len(results)} checks of {part} failed (hints above)")
