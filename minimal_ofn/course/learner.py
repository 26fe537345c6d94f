"""The grader's side of the sandbox: the learner's functions as callables that run in a child process.

    with Sandbox(source) as box:
        soft_q_target = box.function("soft_q_target")
        y = soft_q_target(reward, ...)     # runs in the child; y is a tensor read back safely

A call sends its arguments to the child (sandbox.py), which runs the learner's function and
sends back the result and the tensors it was given, so an in-place change shows up in the
caller's tensors as it would in one process. Callbacks and other objects stay here: the child
calls them through handles. A call that takes longer than its time limit, or a child that
dies, is an exception in the check that made the call; the next call starts a fresh child.

The child is started inside bubblewrap where the OS allows it (isolation.py). Its statements are
loaded one by one, so one that raises or hangs at load costs only what uses it, and the report
names it by the learner's cell and line.
"""

import dataclasses
import inspect
import io
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from . import isolation, sandbox
from .sandbox import LearnerError, _exception, receive, send

CALL_TIMEOUT = 20.0  # seconds for one call of a learner's function
START_TIMEOUT = 60.0  # seconds for the child to start and compile the learner's cells


class CheckTimeout(Exception):
    pass


class ChildDied(Exception):
    pass


def _site_dirs() -> list[str]:
    """The directories torch and numpy (and what they import) live in: the child's whole path."""
    import numpy

    dirs = {str(Path(torch.__file__).resolve().parent.parent), str(Path(numpy.__file__).resolve().parent.parent)}
    return sorted(dirs)


class Sandbox:
    def __init__(self, units, call_timeout: float = CALL_TIMEOUT, readable=()):
        """units: (filename, code) per kept statement (source.Extracted.units), or one source string."""
        self.units = [("<cell 1>", units)] if isinstance(units, str) else list(units)
        self.call_timeout, self.readable = call_timeout, list(readable)
        if not self.readable:  # a folder of its own the child can read (the checks write results folders there)
            self._own_scratch = tempfile.TemporaryDirectory(prefix="minimal_ofn_sandbox_")
            self.readable = [self._own_scratch.name]
        self.scratch = self.readable[0]
        self.proc = None
        self.load_errors = []  # one line each: a statement that raised or hung when loaded (first start only)
        self.skipped = set()  # statements left out after they hung
        self.isolated, self.isolation = isolation.available()
        self._started = False

    @property
    def load_error(self):
        return self.load_errors[0] if self.load_errors else None

    # ---- the child's life
    def _spawn(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # The child's program is sandbox.py's text (read through its loader: the package may be a zipped wheel).
        bootstrap = "import sys; sys.path[:0] = sys.argv[3:]; sys.argv = sys.argv[:3]\n" + inspect.getsource(sandbox)
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": os.environ.get("PATH", ""),
               "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
        argv = [sys.executable, "-I", "-S", "-c", bootstrap, str(to_child_r), str(from_child_w), *_site_dirs()]
        if self.isolated:
            argv, env["HOME"] = isolation.bwrap_command(argv, self.readable), "/tmp"
        self.proc = subprocess.Popen(
            argv, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("MINIMAL_OFN_SANDBOX_DEBUG") else subprocess.DEVNULL, env=env, cwd="/",
            start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self.w, self.r = to_child_w, from_child_r
        self.handles, self.dataclasses = {}, {}
        self._iterated, self._generators, self._sent_states = [], [], []

    def start(self) -> None:
        """Start a child and load every kept statement, one at a time: one that raises or hangs costs itself only."""
        first, restarts = not self._started, 0
        self._started = True
        while True:
            self.close()
            self._spawn()
            hung, timeout = None, self.call_timeout
            self._ask(("ping",), START_TIMEOUT)  # the child has imported torch (seconds on a busy machine)
            for k, (filename, code) in enumerate(self.units):
                if k in self.skipped:
                    continue
                try:
                    status, value = self._ask(("load", filename, code), timeout)
                except CheckTimeout:
                    hung = k
                    break
                except ChildDied as err:
                    if first:
                        self.load_errors.append(f"{_label(filename, code)}: {err} while loading: left out")
                    hung = k
                    break
                if status == "error" and first:
                    kind, message, where = value
                    self.load_errors.append(f"{_label(filename, code)} raised {kind} when loaded: "
                                            f"{' '.join(str(message).split())[:200]}{' at ' + where if where else ''}"
                                            " (only what uses it is affected)")
            if hung is None:
                return
            self.skipped.add(hung)
            filename, code = self.units[hung]
            if first and not any(_label(filename, code) in e for e in self.load_errors):
                self.load_errors.append(f"{_label(filename, code)} timed out when loaded (did not finish within "
                                        f"{timeout:g} s: an endless loop or a long computation at top level?): "
                                        "left out")
            restarts += 1
            if restarts > 3:
                self.units = [u for k, u in enumerate(self.units) if k not in self.skipped]
                self.skipped = set()
                return

    def close(self) -> None:
        if self.proc is None:
            return
        for fd in (self.w, self.r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def function(self, name: str) -> "LearnerFunction":
        return LearnerFunction(self, name)

    # ---- one call
    def call(self, name, args, kwargs=None, want_grad=False):
        """Run the learner's `name` on args in the child; returns its result, or (result, grads) with want_grad."""
        if self.proc is None:
            self.start()
        kwargs = kwargs or {}
        self._iterated, self._generators, self._sent_states = [], [], []
        status, value = self._ask(("call", name, self._encode(args), self._encode(kwargs), want_grad),
                                  self.call_timeout)
        if status == "error":
            raise _exception(*value)
        out, given, grads, generators, iterated = value
        _copy_back((args, kwargs), self._decode(given))  # in-place changes the learner made to its arguments
        _copy_back(self._iterated, self._decode(iterated))  # ... and to the items of generators it was given
        for g, sent, state in zip(self._generators, self._sent_states, generators):
            if isinstance(state, torch.Tensor) and state.dtype == torch.uint8 and not torch.equal(state, sent):
                g.set_state(state)  # the learner drew from the agent's generator: the agent's stream moves on
        out = self._decode(out)
        return out if want_grad is False else (out, self._decode(grads))

    def _ask(self, message, timeout):
        import pickle

        try:
            send(self.w, pickle.dumps(message))
            deadline = time.monotonic() + timeout
            while True:
                reply = torch.load(io.BytesIO(receive(self.r, deadline)), weights_only=True)
                if not (isinstance(reply, tuple) and len(reply) == 2):
                    raise ChildDied("the child sent something that is not a reply")
                if reply[0] != "request":
                    return reply
                send(self.w, pickle.dumps(self._serve(reply[1])))
        except TimeoutError:
            self.close()
            raise CheckTimeout(f"did not return within {timeout:g} s (an endless loop?)") from None
        except (EOFError, BrokenPipeError, OSError):
            self.close()
            raise ChildDied("the process running your code ended (out of memory, or the code ended it)") from None
        except Exception as err:  # an unreadable reply: the child sent what weights_only loading refuses
            self.close()
            raise ChildDied(f"your code's result could not be read back ({type(err).__name__})") from None

    def _serve(self, request):
        """A callback or attribute read from the child, run here on the grader's own object."""
        try:
            kind, ident = request[0], request[1]
            target = self.handles[ident]
            if kind == "getattr":
                name = request[2]
                if not isinstance(name, str) or name.startswith("_"):
                    raise AttributeError(f"{name!r} is not readable")
                value = getattr(target, name)
            elif kind == "callback":
                value = target(*self._decode(request[2]), **self._decode(request[3]))
            else:
                raise ValueError(f"unknown request {kind!r}")
            return ("return", self._encode(value))
        except Exception as err:  # the grader's callback raised (say, the learner called it wrongly)
            return ("raise", (type(err).__name__, str(err), ""))

    # ---- values in both directions
    def _encode(self, value):
        """A grader value as the child will see it: data by value, everything else as a handle."""
        if isinstance(value, torch.Generator):
            self._generators.append(value)
            self._sent_states.append(value.get_state())
            return {"__generator__": self._sent_states[-1], "device": str(value.device)}
        if isinstance(value, types.GeneratorType):  # net.parameters(): the child gets a generator of the items
            items = list(value)
            self._iterated.append(items)
            return {"__iterator__": [self._encode(v) for v in items]}
        if isinstance(value, (torch.Tensor, np.ndarray, np.generic, Path)) or value is None or type(value) in sandbox.DATA:
            return value
        if type(value) in (list, tuple):
            return type(value)(self._encode(v) for v in value)
        if type(value) is dict and all(type(k) in sandbox.DATA for k in value):
            return {k: self._encode(v) for k, v in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a Config: sent by value
            self.dataclasses[type(value).__name__] = type(value)
            return {"__dataclass__": type(value).__name__,
                    "fields": {f.name: self._encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
        ident = len(self.handles)
        self.handles[ident] = value
        return {"__handle__": ident}

    def _decode(self, tree):
        """A child-sent tree (already read with weights_only) as grader values."""
        if type(tree) in (list, tuple):
            return type(tree)(self._decode(v) for v in tree)
        if type(tree) is not dict:
            return tree
        kind = tree.get("__kind__")
        if kind == "tensor" and isinstance(tree.get("value"), torch.Tensor):
            return tree["value"]
        if kind == "ndarray" and isinstance(tree.get("value"), torch.Tensor):
            return tree["value"].numpy().astype(np.dtype(_dtype(tree.get("dtype"))), copy=False)
        if kind == "npscalar":
            return np.dtype(_dtype(tree.get("dtype"))).type(tree.get("value"))
        if kind in ("list", "tuple"):
            items = [self._decode(v) for v in tree.get("items", [])]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            out = {}
            for k, v in tree.get("items", []):
                k = self._decode(k)
                try:
                    out[k] = self._decode(v)
                except TypeError:
                    raise LearnerError("a dict with an unhashable key") from None
            return out
        if kind == "path":
            return Path(str(tree.get("value")))
        if kind == "handle":
            return self.handles.get(tree.get("id"))
        if kind == "generator" and isinstance(tree.get("index"), int) and 0 <= tree["index"] < len(self._generators):
            return self._generators[tree["index"]]
        if kind == "dataclass" and tree.get("type") in self.dataclasses:
            fields = self._decode(tree.get("fields"))
            if not isinstance(fields, dict):
                raise LearnerError("an unreadable value")
            try:
                return self.dataclasses[tree["type"]](**fields)
            except (TypeError, ValueError) as err:
                raise LearnerError(f"a {tree['type']} that cannot be rebuilt: {err}") from None
        if kind == "object":
            return Opaque(str(tree.get("type")))
        raise LearnerError("an unreadable value")


class LearnerFunction:
    """One of the learner's functions: call it as usual; .grad(*args) also returns d sum(out) / d inputs."""

    def __init__(self, box: Sandbox, name: str):
        self.box, self.__name__ = box, name

    def __call__(self, *args, **kwargs):
        return self.box.call(self.__name__, args, kwargs)

    def grad(self, *args):
        return self.box.call(self.__name__, args, {}, want_grad=True)

    def vjp(self, grad_output, *args):
        """(out, d <out, grad_output> / d each input that requires grad): a backward pass through the child."""
        return self.box.call(self.__name__, args, {}, want_grad=grad_output)


def _label(filename: str, code: str) -> str:
    """'cell 7, line 3 (`def soft_q_target(...`)': where a statement is, in the learner's own numbering."""
    lines = code.split("\n")
    first = next((k for k, line in enumerate(lines) if line.strip()), 0)
    text = lines[first].strip() if lines else ""
    return f"{filename[1:-1]}, line {first + 1} (`{text[:40]}{'...' if len(text) > 40 else ''}`)"


def _dtype(text):
    allowed = {"|b1", "|i1", "|u1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8"}
    return text if text in allowed else "<f8"


class Opaque:
    """A value of a type the child could not send (its type name only)."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"


@torch.no_grad()
def _copy_back(mine, theirs) -> None:
    """Make the grader's arguments what the child's became: tensors changed in place, lists reordered."""
    if isinstance(mine, torch.Tensor):
        if mine.device.type == "meta" or (isinstance(theirs, torch.Tensor) and theirs.device.type == "meta"):
            return  # no values to compare
        if isinstance(theirs, torch.Tensor) and theirs.shape == mine.shape and not torch.equal(theirs, mine):
            mine.copy_(theirs.to(mine.dtype))
    elif type(mine) in (list, tuple) and type(theirs) in (list, tuple):
        if type(mine) is list and len(mine) == len(theirs) and all(
                type(x) in sandbox.DATA and type(y) in sandbox.DATA for x, y in zip(mine, theirs)):
            if mine != list(theirs):
                mine[:] = theirs
            return
        for a, b in zip(mine, theirs):
            _copy_back(a, b)
    elif dataclasses.is_dataclass(mine) and type(theirs) is type(mine) and theirs != mine:
        for f in dataclasses.fields(mine):
            object.__setattr__(mine, f.name, getattr(theirs, f.name))
    elif type(mine) is dict and type(theirs) is dict:
        for k in mine:
            if k in theirs:
                _copy_back(mine[k], theirs[k])

