"""The exercise notebooks are generated from the solutions, in step with the grader's checks and the package.

- exercises/ is exactly what `python -m minimal_ofn.course exercises` makes of solutions/ (a stale one fails);
- every part the checks grade has a solution cell and an nbgrader test cell worth the checks' points;
- every graded function is the package's own: same name, signature and body, in the file the notebook names,
  and training calls it (a counting wrapper passed with train(..., functions=...) is called);
- each solution notebook runs top to bottom with its test cells and its experiments at a tiny size;
- the generator's rules on a small notebook: hints, indentation, hidden tests, outputs, marker errors.
"""

import ast
import inspect
from pathlib import Path

import nbformat
import pytest
import torch

from minimal_ofn.course import checks
from minimal_ofn.course.exercises import MarkerError, main, stale, to_exercise

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_exercises_are_up_to_date_with_the_solutions():
    assert stale(ROOT / "solutions", ROOT / "exercises") == [], "run: python -m minimal_ofn.course exercises"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_matches_its_checks(path):
    nb = nbformat.read(path, as_version=4)
    exercise = path.stem
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["minimal_ofn"]["exercise"] == exercise
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit solutions without outputs"
    meta = [c.metadata.get("nbgrader") for c in code]
    solutions = {m["grade_id"] for m in meta if m and m["solution"]}
    tests = {m["grade_id"]: m["points"] for m in meta if m and m["grade"]}
    points = checks.parts(exercise)
    assert solutions == set(points), "one solution cell per graded part, named after the function"
    assert tests == {f"test_{part}": p for part, p in points.items()}, "test cell points must equal the checks'"
    for m in filter(None, meta):
        assert m["schema_version"] == 3 and {"grade", "grade_id", "locked", "points", "solution"} <= set(m)
    for c in code:
        if c.metadata.get("nbgrader", {}).get("solution"):
            assert "### BEGIN SOLUTION" in c.source and "# hint:" in c.source
            defined = {n.name for n in ast.parse(c.source).body if isinstance(n, ast.FunctionDef)}
            assert c.metadata["nbgrader"]["grade_id"] in defined


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_experiment_knob_is_a_parameter_the_tests_shrink(path):
    """The notebooks run below with tiny parameters; papermill ignores unknown names, so a knob missing from
    that list would run full size in CI."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {t.id for node in ast.parse(cell.source).body for t in node.targets}
    assert "RUN_EXPERIMENTS" in names
    assert names <= set(tiny(Path("/tmp"))), f"not shrunk by test_grade.tiny: {names - set(tiny(Path('/tmp')))}"


def test_exercises_hold_no_answers():
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "check_part" not in text
        stubs = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert stubs and all('raise NotImplementedError("' in c.source for c in stubs)


def _nb(*sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for k, c in enumerate(nb.cells):
        c.id = f"c{k}"
        c.outputs = [nbformat.v4.new_output("stream", text="old output")]
        c.execution_count = 3
    return nb


def test_the_generator_replaces_solutions_and_drops_hidden_tests():
    nb = _nb(
        "def f(x):\n    ### BEGIN SOLUTION\n    # hint: double \"it\"\n    return 2 * x\n    ### END SOLUTION\n",
        "### BEGIN SOLUTION\ny = 1\n### END SOLUTION\nz = 2",
        "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS",
    )
    before = nbformat.writes(nb)
    ex = to_exercise(nb)
    assert nbformat.writes(nb) == before, "the solution notebook is left as it was"
    assert ex.cells[0].source == 'def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError("double \\"it\\"")\n'
    assert ex.cells[1].source.startswith('# YOUR CODE HERE\nraise NotImplementedError("') and "z = 2" in ex.cells[1].source
    assert ex.cells[2].source == "assert f(1) == 2"
    assert all(c.outputs == [] and c.execution_count is None for c in ex.cells)
    assert [c.id for c in ex.cells] == ["c0", "c1", "c2"]  # stable ids: a regenerate rewrites the same bytes
    compile(ex.cells[0].source, "cell", "exec")


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                    "### BEGIN HIDDEN TESTS\nassert True", "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS"])
def test_unbalanced_markers_are_an_error(source):
    with pytest.raises(MarkerError, match="cell 0"):
        to_exercise(_nb(source))


def test_check_mode_and_regeneration(tmp_path, capsys):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    nbformat.write(_nb("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"), sol / "01_x.ipynb")
    args = ["--solutions", str(sol), "--out", str(ex)]
    assert main(args + ["--check"]) == 1  # missing
    assert main(args) == 0
    first = (ex / "01_x.ipynb").read_bytes()
    assert main(args + ["--check"]) == 0
    assert main(args) == 0 and (ex / "01_x.ipynb").read_bytes() == first  # deterministic
    nb = nbformat.read(sol / "01_x.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("return 1", "return 2") + "\n# changed"
    nbformat.write(nb, sol / "01_x.ipynb")
    assert main(args + ["--check"]) == 1  # out of date
    assert "out of date" in capsys.readouterr().out
    (ex / "99_orphan.ipynb").write_text(first.decode())
    main(args)
    assert main(args + ["--check"]) == 1  # an exercise without a solution
    assert main(["--solutions", str(tmp_path / "none")]) == 2


# ---- the graded functions are the package's
def _solution_functions():
    """(exercise, name, the def node of the solution cell) for every graded function."""
    out = []
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        for c in nb.cells:
            meta = c.metadata.get("nbgrader", {})
            if c.cell_type == "code" and meta.get("solution"):
                node = next(n for n in ast.parse(c.source).body if isinstance(n, ast.FunctionDef)
                            and n.name == meta["grade_id"])
                out.append((path.stem, meta["grade_id"], node))
    return out


def _package_function(name):
    from minimal_ofn import optim, stats
    from minimal_ofn.plug import HOME, package_function

    return package_function(name) if name in HOME else getattr(stats if name in ("final_scores", "iqm") else optim, name)


def _without_docstring(node):
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def test_there_are_fifteen_graded_functions():
    assert len(_solution_functions()) == 15


@pytest.mark.parametrize("exercise,name,node", _solution_functions(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_graded_function_is_the_package_function(exercise, name, node):
    """Same name, signature, decorators and body as the package's (the exercise is that function, its body removed)."""
    fn = _package_function(name)
    package = ast.parse(inspect.getsource(fn)).body[0]
    assert ast.unparse(node.args) == ast.unparse(package.args), f"{name}: signature differs from the package's"
    assert [ast.unparse(d) for d in node.decorator_list] == [ast.unparse(d) for d in package.decorator_list]
    solution = _without_docstring(node).replace("### BEGIN SOLUTION", "")
    assert solution == _without_docstring(package), f"{name}: the solution's body is not the package's"
    assert ast.get_docstring(node) == inspect.getdoc(fn), f"{name}: the docstring differs from the package's"


def test_training_calls_every_graded_function():
    """Each function a run can take (plug.py) is called when given to train(..., functions=...)."""
    from minimal_ofn.config import Config
    from minimal_ofn.plug import HOME, package_function
    from minimal_ofn.train import RunError, train

    calls = {}

    def counting(name):
        fn = package_function(name)

        def wrapped(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)
        return wrapped

    graded = {name for _, name, _ in _solution_functions()}
    assert graded - {"without_momentum", "final_scores", "iqm"} <= set(HOME), "a graded function a run cannot take"
    cfg = Config(env="Pendulum-v1", steps=24, seed_steps=8, batch_size=8, hidden=8, log_every=8, eval_every=24,
                 checkpoint_every=24, ofn=True, critic_dropout=0.1, critic_weight_decay=0.1, critic_l2=0.01,
                 priming_updates=2, reset_every=5)
    torch.manual_seed(0)
    rows = train(cfg, progress=False, functions={name: counting(name) for name in HOME})[0]
    assert set(calls) == set(HOME), f"never called: {set(HOME) - set(calls)}"
    assert calls["utd_loop"] == 1 and calls["prime"] == 1 and calls["critic_loss"] == rows[-1]["updates"]
    with pytest.raises(RunError, match="unknown function"):
        train(cfg, progress=False, functions={"adam": counting("adam_step")})


def test_a_learners_functions_change_the_run_and_the_package_is_untouched():
    """A wrong function given to train() changes that run only; the next run uses the package's again."""
    from minimal_ofn.config import Config
    from minimal_ofn.train import train

    cfg = Config(env="Pendulum-v1", steps=20, seed_steps=8, batch_size=8, hidden=8, log_every=10, eval_every=20,
                 checkpoint_every=20)
    base = train(cfg, progress=False)[0]
    wrong = train(cfg, progress=False, functions={"critic_loss": lambda q, y: (q - y.unsqueeze(1)).abs().mean(-1).sum(1)})[0]
    again = train(cfg, progress=False)[0]
    assert wrong[-1]["critic_loss"] != base[-1]["critic_loss"]
    assert again[-1]["critic_loss"] == base[-1]["critic_loss"]


# ---- each solution notebook runs, with its test cells and its experiments, at a tiny size
def tiny(tmp_path) -> dict:
    """Parameters that shrink every solution's experiment to seconds (test above: none is missed)."""
    return {"RUN_EXPERIMENTS": True, "ENV": "Pendulum-v1", "STEPS": 60, "SEED_STEPS": 30, "LOG_EVERY": 20,
            "UTD": 2, "HIGH_UTD": 2, "PRIMING": 20, "RESET_EVERY": 40, "SEEDS": [0, 1], "RESULTS": None,
            "OUT": str(tmp_path / "runs")}


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_runs_with_its_test_cells_and_a_tiny_experiment(path, tmp_path):
    import papermill

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import minimal_ofn\nprint('PACKAGE', minimal_ofn.__file__)"))
    src, out = tmp_path / f"in_{path.name}", tmp_path / path.name
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), parameters=tiny(tmp_path), kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, log_output=False)
    printed = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "FAIL" not in printed, printed
    assert f"PACKAGE {ROOT / 'minimal_ofn' / '__init__.py'}" in printed, "the kernel ran another copy of the package"
