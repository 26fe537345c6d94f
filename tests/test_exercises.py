"""The exercise notebooks are generated from the solutions, in step with the grader's checks (no kernels here).

- exercises/ is exactly what `python -m minimal_ofn.exercises` makes of solutions/ (a stale exercise fails);
- every part the checks grade has a solution cell and an nbgrader test cell worth the checks' points;
- the generator's rules on a small notebook: hints, indentation, hidden tests, outputs, marker errors;
- the package names the experiment cells patch are the ones the package really calls.
"""

import ast
from pathlib import Path
from unittest import mock

import nbformat
import pytest
import torch

from minimal_ofn import checks
from minimal_ofn.exercises import MarkerError, main, stale, to_exercise

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_exercises_are_up_to_date_with_the_solutions():
    assert stale(ROOT / "solutions", ROOT / "exercises") == [], "run: python -m minimal_ofn.exercises"


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
    """test_grade runs the experiments with tiny parameters; papermill ignores unknown names, so a knob missing
    from that list would run full size in CI."""
    from test_grade import tiny

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


def test_the_names_the_experiments_patch_are_the_ones_the_package_calls():
    """Each exercise's experiment swaps a learner function in with mock.patch.object; if the package stopped
    calling that name, the experiment would silently run the package's code instead of the learner's."""
    import minimal_ofn.sac
    import minimal_ofn.train as training
    from minimal_ofn import diagnostics, networks
    from minimal_ofn.config import Config
    from minimal_ofn.optim import StackedOptimizer

    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapped

    class SpyOptimizer(StackedOptimizer):
        def step(self, grads):
            calls.append("StackedOptimizer")
            super().step(grads)

    cfg = Config(env="Pendulum-v1", steps=24, seed_steps=8, batch_size=8, hidden=8, log_every=8, eval_every=24,
                 checkpoint_every=24, ofn=True, critic_dropout=0.1, priming_updates=2, reset_every=5)
    patches = [
        mock.patch.object(minimal_ofn.sac, "soft_q_target", spy("soft_q_target", minimal_ofn.sac.soft_q_target)),
        mock.patch.object(minimal_ofn.sac, "polyak_update", spy("polyak_update", minimal_ofn.sac.polyak_update)),
        mock.patch.object(minimal_ofn.sac, "StackedOptimizer", SpyOptimizer),
        mock.patch.object(diagnostics, "discounted_returns", spy("discounted_returns", diagnostics.discounted_returns)),
        mock.patch.object(diagnostics, "srank", spy("srank", diagnostics.srank)),
        mock.patch.object(networks, "ofn_normalize", spy("ofn_normalize", networks.ofn_normalize)),
        mock.patch.object(networks.Critic, "dropout_masks", spy("dropout_masks", networks.Critic.dropout_masks)),
        mock.patch.object(training, "prime", spy("prime", training.prime)),
        mock.patch.object(training, "reset_due", spy("reset_due", training.reset_due)),
    ]
    for p in patches:
        p.start()
    try:
        torch.manual_seed(0)
        training.train(cfg, progress=False)
    finally:
        for p in patches:
            p.stop()
    expected = {"soft_q_target", "polyak_update", "StackedOptimizer", "discounted_returns", "srank", "ofn_normalize",
                "dropout_masks", "prime", "reset_due"}
    assert expected <= set(calls), f"never called: {expected - set(calls)}"
