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
SCRATCH = None  # a folder the learner's child may read (grade.py binds it into the sandbox), else the system's
# argument positions the package's contract changes in place; any other in-place change of an input costs the check
# (adam_step's param, m and v, and the decayed param, are overwritten by the optimizer after the call: harmless)
IN_PLACE = {"polyak_update": (0,), "adam_step": (0, 2, 3), "decoupled_weight_decay": (0,)}


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


def tolerance(dtype) -> dict:
    """rtol/atol of a comparison that any correct float computation of that dtype passes (rounding, other order)."""
    import torch

    if dtype in (torch.float64, np.float64, float):
        return {"rtol": 1e-9, "atol": 1e-12}
    if dtype in (torch.float16, torch.bfloat16, np.float16):
        return {"rtol": 1e-2, "atol": 1e-3}
    return {"rtol": 2e-5, "atol": 1e-6}


def scratch_dir():
    """A temporary folder the learner's code can read: inside the sandbox's own view when grading."""
    import tempfile

    return tempfile.TemporaryDirectory(dir=SCRATCH)


def _flat(tree):
    if isinstance(tree, (list, tuple)):
        return [x for item in tree for x in _flat(item)]
    return [tree]


class Pristine:
    """A learner's function whose inputs must come back unchanged: snapshots before the call, compared after.

    Generators among the arguments (net.parameters()) are read into a list first, so their items
    are compared too, and the function still gets a generator."""

    def __init__(self, fn, name):
        self.fn, self.__name__ = fn, name
        if hasattr(fn, "grad"):
            self.grad = lambda *args: self._guarded(fn.grad, args, {})
            self.vjp = lambda grad_output, *args: self._guarded(lambda *a: fn.vjp(grad_output, *a), args, {})

    def __call__(self, *args, **kwargs):
        return self._guarded(self.fn, args, kwargs)

    def _guarded(self, call, args, kwargs):
        import types

        lists = {k: list(a) for k, a in enumerate(args) if isinstance(a, types.GeneratorType)}
        args = tuple((x for x in lists[k]) if k in lists else a for k, a in enumerate(args))
        before = [_snapshot(lists.get(k, a)) for k, a in enumerate(args)]
        before_kw = {k: _snapshot(v) for k, v in kwargs.items()}
        out = call(*args, **kwargs)
        allowed = IN_PLACE.get(self.__name__, ())
        for k, a in enumerate(args):
            if k not in allowed and not _same(lists.get(k, a), before[k]):
                raise AssertionError(f"`{self.__name__}` changed its argument {k + 1} ({_param(self.__name__, k)}) "
                                     "in place: the package uses its inputs again after the call, so leave them "
                                     "as they were (work on a copy, and avoid in-place operations like += on them)")
        for k, v in kwargs.items():
            if not _same(v, before_kw[k]):
                raise AssertionError(f"`{self.__name__}` changed its argument {k} in place: leave it as it was")
        return out


_PARAMS = {"without_momentum": ["cfg"], "iqm": ["scores"], "final_scores": ["folder", "metric"]}


def _param(name, k) -> str:
    if name in _PARAMS and k < len(_PARAMS[name]):
        return _PARAMS[name][k]
    try:
        from ...plug import HOME, package_function

        if name in HOME:
            return list(inspect.signature(package_function(name)).parameters)[k]
    except Exception:  # the package's signature is only a nicer message
        pass
    return f"number {k + 1}"


_SKIP = object()


def _snapshot(value):
    import dataclasses

    import torch

    if isinstance(value, torch.Tensor):
        return _SKIP if value.device.type == "meta" else value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value) in (list, tuple):
        return type(value)(_snapshot(v) for v in value)
    if type(value) is dict:
        return {k: _snapshot(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ("dataclass", dataclasses.asdict(value))
    if isinstance(value, (int, float, str, bool, bytes)) or value is None:
        return value
    return _SKIP  # callbacks, buffers, generators: theirs to use


def _same(value, snap) -> bool:
    import dataclasses

    import torch

    if snap is _SKIP:
        return True
    if isinstance(snap, torch.Tensor):
        return isinstance(value, torch.Tensor) and value.shape == snap.shape and value.dtype == snap.dtype and (
            torch.equal(value.detach(), snap) or bool(torch.equal(value.detach().isnan(), snap.isnan()) and torch.equal(
                torch.nan_to_num(value.detach()), torch.nan_to_num(snap))))
    if isinstance(snap, np.ndarray):
        return isinstance(value, np.ndarray) and value.shape == snap.shape and np.array_equal(
            value, snap, equal_nan=snap.dtype.kind == "f")
    if type(snap) is tuple and len(snap) == 2 and snap[0] == "dataclass":
        return dataclasses.is_dataclass(value) and dataclasses.asdict(value) == snap[1]
    if type(snap) in (list, tuple):
        return type(value) is type(snap) and len(value) == len(snap) and all(map(_same, value, snap))
    if type(snap) is dict:
        return type(value) is dict and value.keys() == snap.keys() and all(_same(value[k], snap[k]) for k in snap)
    if isinstance(snap, float) and snap != snap:
        return value != value
    return value == snap


def torch_side(fn):
    """A learner function as train() can use it: a sandboxed one gets a backward pass through its child."""
    if not hasattr(fn, "vjp"):
        return fn
    import torch

    def through(*args, **kwargs):
        if kwargs:
            args = args + tuple(kwargs.values())
        flat = [t for t in _tensor_leaves(args)]
        if not torch.is_grad_enabled() or not any(t.requires_grad for t in flat):
            return fn(*_detached(args))
        return _Through.apply(fn, args, *flat)

    return through


def _tensor_leaves(tree, out=None):
    import torch

    out = [] if out is None else out
    if isinstance(tree, torch.Tensor):
        out.append(tree)
    elif type(tree) in (list, tuple):
        for v in tree:
            _tensor_leaves(v, out)
    elif type(tree) is dict:
        for v in tree.values():
            _tensor_leaves(v, out)
    return out


def _detached(tree, requires=None):
    import torch

    if isinstance(tree, torch.Tensor):
        t = tree.detach()
        return t.requires_grad_(True) if requires is not None and tree.requires_grad else t
    if type(tree) in (list, tuple):
        return type(tree)(_detached(v, requires) for v in tree)
    if type(tree) is dict:
        return {k: _detached(v, requires) for k, v in tree.items()}
    return tree


def _make_through():
    import torch

    class Through(torch.autograd.Function):
        """out = fn(*args) computed in the child; backward asks the child for the vector-Jacobian product."""

        @staticmethod
        def forward(ctx, fn, args, *flat):
            ctx.fn, ctx.args = fn, args
            out = fn(*_detached(args))
            if not isinstance(out, torch.Tensor):
                raise AssertionError(f"`{fn.__name__}` should return a tensor inside training, got {type(out).__name__}")
            return out

        @staticmethod
        def backward(ctx, grad_output):
            args = _detached(ctx.args, requires=True)
            _, grads = ctx.fn.vjp(grad_output.contiguous(), *args)
            wanting = [t.requires_grad for t in _tensor_leaves(ctx.args)]
            grads, it = list(grads or []), iter(grads or [])
            out = [next(it, None) if w else None for w in wanting]
            return (None, None, *out)

    return Through


class _LazyThrough:
    _cls = None

    def apply(self, *args):
        if _LazyThrough._cls is None:
            _LazyThrough._cls = _make_through()
        return _LazyThrough._cls.apply(*args)


_Through = _LazyThrough()


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
    """One check: its learner functions are wrapped (Pristine) so that changing an input in place costs it."""
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
            args.append(Pristine(value, name))
        with torch.enable_grad(), torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a learner's NaN warning is not the report; the failed check is
            torch.manual_seed(SEED)
            fn(*args)
        result.update(passed=True, points=fn.points, message="")
    except Exception as err:  # anything the learner's code raises is a failed check, never a crash
        result.update(passed=False, points=0, message=_message(err, fn))
    return result


def run(exercise: str, functions: dict, seed: int = 0, only_part: str | None = None, scratch=None,
        only_check: str | None = None) -> list[dict]:
    global SEED, SCRATCH
    if scratch is None:  # learner functions in a sandbox: the folder its child can read
        # (a notebook's globals hold other things with a .box, such as matplotlib's pyplot)
        scratch = next((f.box.scratch for f in functions.values() if hasattr(getattr(f, "box", None), "scratch")),
                       None)
    SEED, SCRATCH = int(seed), scratch
    return [run_check(fn, functions) for fn in checks_of(exercise)
            if only_part in (None, fn.part) and only_check in (None, fn.__name__)]


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
