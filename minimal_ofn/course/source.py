"""What of a learner's notebook gets graded: its own definitions, read from the file, never from a kernel.

The grader parses every code cell of the notebook (nothing is executed to do it) and keeps,
in cell order, only the top-level statements that define things:

    import / from ... import  of an allowed module (torch, numpy, math, pathlib, ...)
    def and class             every one (a later definition replaces an earlier one, as in the kernel)
    NAME = <constant>         numbers, strings and tuples/lists/dicts of them

Everything else (experiment cells, prints, calls) is left out. The kept statements are then
checked before anything runs: they may not import other modules (the package included: a
graded function must be written in the notebook, not imported), nor use what reaches outside
the code (open, exec, eval, __import__, getattr, globals, attributes that start with _,
the sys/os modules, pickled-file loaders). A graded function that is missing, imported, or
fails these checks scores 0 for its part, with the reason.
"""

import ast

from .sandbox import ALLOWED_IMPORTS, BLOCKED_BUILTINS

FORBIDDEN_ATTRIBUTES = {"sys", "os", "modules", "system", "popen", "subprocess", "builtins", "importlib",
                        "f_globals", "f_locals", "f_back", "f_builtins", "gi_frame", "tb_frame", "cr_frame",
                        "load", "loads", "fromfile", "from_file", "load_state_dict", "cpp_extension", "hub",
                        "library", "load_library", "multiprocessing", "distributed", "ctypes", "setprofile", "settrace",
                        "get_type_hints", "package", "serialization", "utils", "ctypeslib", "attrgetter", "methodcaller"}
FORBIDDEN_NAMES = set(BLOCKED_BUILTINS) | {"__import__", "__builtins__"}
PACKAGE = "minimal_ofn"


def _allowed_module(name: str | None) -> bool:
    return bool(name) and name.split(".")[0] in ALLOWED_IMPORTS


def _is_constant(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


class Extracted:
    """The kept source, what each graded name is, and notes on what was left out."""

    def __init__(self):
        self.statements = []  # (cell index, ast node, its code padded to its line in the cell)
        self.defined = {}  # name -> cell index of its last def
        self.imported_from_package = {}  # name -> "from minimal_ofn.x import name"
        self.problems = []  # one line each: cells that do not parse, disallowed code
        self.refused = {}  # name -> why the function cannot be graded

    @property
    def units(self) -> list[tuple[str, str]]:
        """(filename, code) per kept statement: filename "<cell K>" (K counts the notebook's cells from 1), code
        padded with blank lines so that an error's line number is the line of the learner's cell."""
        return [(f"<cell {k + 1}>", code) for k, _, code in self.statements]

    @property
    def source(self) -> str:
        return "\n\n".join(ast.unparse(node) for _, node, _ in self.statements) + "\n"


def extract(nb, graded_names) -> Extracted:
    """Keep the definitions of a notebook (see the module docstring) and vet them."""
    out = Extracted()
    for k, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        # magics and shell lines become blank lines: the line numbers stay those of the cell
        text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.split("\n"))
        try:
            tree = ast.parse(text)
        except SyntaxError as err:
            out.problems.append(f"cell {k + 1} does not parse ({err.msg}, line {err.lineno}): its definitions are "
                                "not graded")
            continue
        lines = text.split("\n")
        for node in tree.body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            code = "\n" * (first - 1) + "\n".join(lines[first - 1: node.end_lineno]) + "\n"
            _keep(out, k, node, code)
    for k, node, _ in out.statements:  # in cell order: the last definition of a name decides
        name = getattr(node, "name", None)
        why = _forbidden(node)
        if why:
            why += f" (cell {k + 1}, line {node.lineno})"
        if name:
            if why:
                out.refused[name] = why
            else:
                out.refused.pop(name, None)
        elif why:
            out.problems.append(why)
    out.statements = [(k, n, c) for k, n, c in out.statements if not _forbidden(n)]
    for name in graded_names:
        if name in out.imported_from_package:
            out.refused[name] = (f"`{name}` is imported from the package ({out.imported_from_package[name]}), "
                                 "not written in your notebook: define it yourself in its exercise cell")
        elif name not in out.defined:
            out.refused[name] = f"`{name}` is not defined in your notebook: write it as a def, and keep its name"
    return out


def _keep(out: Extracted, k: int, node, code: str) -> None:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        module = node.module if isinstance(node, ast.ImportFrom) else None
        names = [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            for a in node.names:
                if a.name == "load_metrics" and node.module == f"{PACKAGE}.train":
                    continue  # the grader provides it: reading a run's metrics is not what is graded
                name = a.asname or a.name
                out.imported_from_package[name] = f"from {node.module} import {a.name}"
                out.defined.pop(name, None)  # as in the kernel: the import replaces an earlier def
            return
        if isinstance(node, ast.ImportFrom):
            if node.level or not _allowed_module(module):
                return
        elif not all(_allowed_module(n) for n in names):
            return
        out.statements.append((k, node, code))
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        out.statements.append((k, node, code))
        out.defined[node.name] = k
        out.imported_from_package.pop(node.name, None)
    elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _is_constant(node.value):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if all(isinstance(t, ast.Name) for t in targets):
            out.statements.append((k, node, code))


def _forbidden(node) -> str | None:
    """Why this statement may not run when grading, or None."""
    what = f"`{node.name}`" if hasattr(node, "name") else "a statement"
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Import, ast.ImportFrom)):
            modules = [sub.module] if isinstance(sub, ast.ImportFrom) else [a.name for a in sub.names]
            bad = [m for m in modules if not _allowed_module(m)] + (["a relative import"] if getattr(sub, "level", 0) else [])
            if bad:
                if any(m and m.split(".")[0] == PACKAGE for m in bad):
                    return f"{what} imports from the package ({bad[0]}): write the code yourself"
                return (f"{what} imports {bad[0]}, which grading does not allow (allowed: "
                        f"{', '.join(ALLOWED_IMPORTS)})")
        elif isinstance(sub, ast.Name) and sub.id in FORBIDDEN_NAMES:
            return f"{what} uses {sub.id}, which grading does not allow"
        elif isinstance(sub, ast.Name) and sub.id == PACKAGE:
            return f"{what} uses the package ({PACKAGE}): write the code yourself"
        elif isinstance(sub, ast.Attribute) and (sub.attr.startswith("_") or sub.attr in FORBIDDEN_ATTRIBUTES):
            return f"{what} uses .{sub.attr}, which grading does not allow"
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and (
                PACKAGE in sub.value or "solutions" in sub.value.split("/")):
            return f"{what} names the package or its solutions in a string, which grading does not allow"
    return None
