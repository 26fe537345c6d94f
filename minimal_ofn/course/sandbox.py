"""Run a learner's functions in a child process that can only send values back.

The grader (the parent) starts this file as a separate python program,

    python -I -S sandbox.py FD_IN FD_OUT SITE_DIR...

with only the directories that hold torch and numpy on its path (not the package, not the
user's site-packages), stdout and stderr thrown away, and two pipes as its only link to the
grader. It imports nothing from minimal_ofn: the package's reference functions are not
even importable in it. It then waits for requests:

    ("load", filename, code)      run one kept statement of the learner's cells (filename "<cell 7>", the
                                  code padded so that line numbers are those of the cell) in the namespace
    ("call", name, args, kwargs, want_grad)
                                  call one learner function and send back its result, the
                                  tensors it was given (to see in-place changes) and, with
                                  want_grad, d(sum of the result)/d(each input that requires grad)

Arguments that are not plain data (a callback, a buffer object, a config) stay in the
parent: the child gets a handle whose calls and attribute reads go back to the parent, so a
learner's utd_loop calls the grader's own env_step. Everything the child sends is written
with torch.save and read by the parent with torch.load(weights_only=True): tensors, numbers,
strings and containers only, never an object that runs code when it is read. The parent
compares the values with the reference; nothing the child says is a score.

The restricted builtins and the import allow-list here, and the code filter of source.py, are a
first line only: the boundary is the operating system's (isolation.py), where it offers one.
"""

import io
import os
import pickle
import struct
import sys

DATA = (int, float, bool, str, bytes, type(None), complex)


# ---- framing: 8-byte length, then the payload
def send(fd, payload: bytes) -> None:
    data = struct.pack("<Q", len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd, n: int, deadline=None) -> bytes:
    import select
    import time

    out = b""
    while len(out) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def receive(fd, deadline=None) -> bytes:
    (n,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    if n > 1 << 30:
        raise EOFError  # nothing honest is a gigabyte
    return _read_exact(fd, n, deadline)


# ---- values the child sends: only what torch.load(weights_only=True) reads back
class Handle:
    """A parent object, seen from the child: attribute reads and calls go back to the parent."""

    __slots__ = ("_id",)

    def __init__(self, ident):
        object.__setattr__(self, "_id", ident)

    def __getattr__(self, name):
        return _CHILD.request(("getattr", self._id, name))

    def __call__(self, *args, **kwargs):
        return _CHILD.request(("callback", self._id, args, kwargs))

    def __setattr__(self, name, value):
        raise AttributeError("grader objects are read-only")


def encode(value, depth=0):
    """A child-side value as a tree that weights_only loading accepts."""
    import numpy as np
    import torch

    if depth > 20:
        return {"__kind__": "object", "type": "deeply nested value"}
    if isinstance(value, torch.Tensor):
        return {"__kind__": "tensor", "value": torch.Tensor.detach(value).clone().as_subclass(torch.Tensor)}
    if isinstance(value, torch.Generator) and any(value is g for g in _GENERATORS):  # one the parent sent
        return {"__kind__": "generator", "index": next(k for k, g in enumerate(_GENERATORS) if g is value)}
    if isinstance(value, bool) or value is None or type(value) in DATA:
        return value
    if isinstance(value, Handle):
        return {"__kind__": "handle", "id": object.__getattribute__(value, "_id")}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"__kind__": "ndarray", "value": torch.from_numpy(np.array(value, copy=True)), "dtype": value.dtype.str}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return {"__kind__": "npscalar", "value": value.item(), "dtype": value.dtype.str}
    if type(value) in (list, tuple):
        return {"__kind__": type(value).__name__, "items": [encode(v, depth + 1) for v in value]}
    if type(value) is dict:
        return {"__kind__": "dict", "items": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, os.PathLike):
        return {"__kind__": "path", "value": os.fspath(value)}
    if getattr(type(value), "_grader_dataclass", False):
        import dataclasses

        return {"__kind__": "dataclass", "type": type(value).__name__,
                "fields": encode({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)}
    return {"__kind__": "object", "type": type(value).__name__}


def dumps_safe(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---- the child
_CHILD = None
ALLOWED_IMPORTS = ("torch", "numpy", "math", "pathlib", "csv", "json", "collections", "itertools", "functools",
                   "dataclasses", "statistics", "typing", "copy", "re", "glob", "random", "heapq",
                   "bisect", "fractions", "decimal", "numbers", "enum", "abc", "scipy")
BLOCKED_BUILTINS = ("open", "exec", "eval", "compile", "input", "breakpoint", "globals", "locals", "vars",
                    "getattr", "setattr", "delattr", "exit", "quit", "help", "memoryview", "__loader__", "__spec__")


def load_metrics(out_dir):
    """The rows of out_dir/metrics.csv, numbers as floats (what minimal_ofn.train.load_metrics returns)."""
    import csv
    from pathlib import Path

    path = Path(out_dir) / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [{k: (float(v) if v not in ("", None) else float("nan")) for k, v in row.items()}
                for row in csv.DictReader(f)]
    for row in rows:
        for k in ("step", "updates"):
            if k in row:
                row[k] = int(row[k])
    return rows


class Child:
    def __init__(self, fd_in, fd_out):
        self.fd_in, self.fd_out, self.namespace = fd_in, fd_out, None

    def request(self, message):
        """Ask the parent to run a callback (or read an attribute) and wait for its answer."""
        send(self.fd_out, dumps_safe(("request", _encode_message(message))))
        kind, value = pickle.loads(receive(self.fd_in))
        if kind == "raise":
            raise _exception(*value)
        return _decode(value)

    def serve(self):
        while True:
            try:
                message = pickle.loads(receive(self.fd_in))
            except EOFError:
                return
            if message[0] == "ping":  # torch is imported: ready
                reply = ("ok", None)
            elif message[0] == "load":
                reply = self.load(message[1], message[2])
            elif message[0] == "call":
                reply = self.call(*message[1:])
            else:
                reply = ("error", ("ValueError", f"unknown request {message[0]!r}", ""))
            send(self.fd_out, dumps_safe(reply))

    def load(self, filename, code):
        """Run one kept statement (a def, an import, a constant) of the learner's cells in the shared namespace."""
        import builtins

        if self.namespace is None:
            safe = {k: v for k, v in vars(builtins).items() if k not in BLOCKED_BUILTINS}
            real_import = builtins.__import__

            def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
                if level or name.split(".")[0] not in ALLOWED_IMPORTS:
                    raise ImportError(f"import {name} is not allowed when grading")
                return real_import(name, globals, locals, fromlist, level)

            safe["__import__"] = guarded_import
            self.namespace = {"__builtins__": safe, "__name__": "learner", "load_metrics": load_metrics}
        try:
            exec(compile(code, filename, "exec"), self.namespace)
        except BaseException as err:  # noqa: BLE001 - anything the cells raise is the learner's
            return ("error", _describe(err))
        return ("ok", None)

    def call(self, name, args, kwargs, want_grad):
        """want_grad: False, True (d sum(out) / d inputs) or the gradient of the output (a vector-Jacobian product)."""
        import torch

        fn = self.namespace.get(name) if self.namespace else None
        if not callable(fn):
            return ("error", ("NameError", f"{name} is not defined", ""))
        del _ITERATED[:], _GENERATORS[:]
        args, kwargs = _decode(args), _decode(kwargs)
        iterated = list(_ITERATED)
        tensors = _leaves((args, kwargs, iterated), torch.Tensor)
        try:
            with torch.enable_grad():
                out = fn(*args, **kwargs)
                grads = None
                if want_grad is not False:
                    wrt = [t for t in tensors if t.requires_grad]
                    if not isinstance(out, torch.Tensor) or not out.requires_grad or not wrt:
                        grads = [None] * len(wrt)
                    elif want_grad is True:
                        grads = list(torch.autograd.grad(out.sum(), wrt, allow_unused=True))
                    else:
                        grads = list(torch.autograd.grad(out, wrt, grad_outputs=want_grad, allow_unused=True))
        except BaseException as err:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are the learner's too
            return ("error", _describe(err))
        generators = [g.get_state() for g in _GENERATORS]
        return ("ok", (encode(out), encode((args, kwargs)), None if grads is None else encode(grads), generators,
                       encode(iterated)))


def _describe(err):
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<cell ")]
    if isinstance(err, SyntaxError) and str(getattr(err, "filename", "")).startswith("<cell "):
        where = f"{err.filename[1:-1]}, line {err.lineno}"
    else:
        where = f"{frames[-1].filename[1:-1]}, line {frames[-1].lineno}" if frames else ""
    return (type(err).__name__, " ".join(str(err).split())[:300], where)


def _exception(name, message, where=""):
    import builtins

    kind = getattr(builtins, name, None)
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        kind, message = LearnerError, f"{name}: {message}"
    err = kind(message)
    err.where = where
    return err


class LearnerError(Exception):
    """An exception of a type the grader does not know, raised by the learner's code."""


def _leaves(tree, kind, out=None):
    """The values of type `kind` in a tree of lists, tuples and dicts, in order."""
    out = [] if out is None else out
    if isinstance(tree, kind):
        out.append(tree)
    elif type(tree) in (list, tuple):
        for v in tree:
            _leaves(v, kind, out)
    elif type(tree) is dict:
        for v in tree.values():
            _leaves(v, kind, out)
    return out


# ---- what the parent sends: plain pickles of data (stdlib, torch and numpy types only), with
# {"__handle__": id} for an object that stays in the parent and {"__generator__": state} for a torch.Generator
def _decode(tree):
    """Parent-sent tree -> child values (handles and generators rebuilt)."""
    import torch

    if type(tree) is dict and "__handle__" in tree:
        return Handle(tree["__handle__"])
    if type(tree) is dict and "__generator__" in tree:
        g = torch.Generator(device=tree["device"])
        g.set_state(tree["__generator__"])
        _GENERATORS.append(g)
        return g
    if type(tree) is dict and "__iterator__" in tree:  # the package passes net.parameters(): a generator
        items = [_decode(v) for v in tree["__iterator__"]]
        _ITERATED.append(items)
        return (x for x in items)
    if type(tree) is dict and "__dataclass__" in tree:
        return _dataclass(tree["__dataclass__"], tuple(tree["fields"]))(**_decode(tree["fields"]))
    if type(tree) in (list, tuple):
        return type(tree)(_decode(v) for v in tree)
    if type(tree) is dict:
        return {k: _decode(v) for k, v in tree.items()}
    return tree


_DATACLASSES = {}
_GENERATORS = []  # the generators of the current call's arguments, in the order the parent sent them
_ITERATED = []  # the items of the generators of one call's arguments, to send back


def _dataclass(name, fields):
    """A stand-in for a grader dataclass (a Config): same fields, .replace, copyable and changeable."""
    import dataclasses

    key = (name, fields)
    if key not in _DATACLASSES:
        cls = dataclasses.make_dataclass(name, fields, namespace={
            "replace": lambda self, **changes: dataclasses.replace(self, **changes), "_grader_dataclass": True})
        _DATACLASSES[key] = cls
    return _DATACLASSES[key]


def _encode_message(message):
    return tuple(encode(m) if not isinstance(m, str) else m for m in message)


def main(argv):
    global _CHILD
    fd_in, fd_out = int(argv[1]), int(argv[2])
    import torch

    torch.set_num_threads(1)
    sys.modules.pop("minimal_ofn", None)
    _CHILD = Child(fd_in, fd_out)
    _CHILD.serve()


if __name__ == "__main__":
    main(sys.argv)
