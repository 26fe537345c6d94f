"""The grader: full marks for every solution, zero for every untouched exercise and for every cheat, each planted
mistake caught, each correct alternative kept at full marks.

- every notebook: each solution is graded and must score full marks; each exercise, handed in untouched,
  must score zero;
- planted mistakes (tests/mistakes.py): a plausible mistake per function, given to the checks directly and
  graded through the sandbox; the check aimed at it must fail with its hint, and the part must lose marks;
- correct alternatives written unlike the package: full marks, directly and through the sandbox;
- cheats: notebooks that patch the checks, hook IPython, import or exec the package's answers, write a fake
  result file, print a fake report, end the process or monkeypatch torch: 0 marks for the cheated part;
- bad input: a function that never returns, one that ends its process, a cell that does not parse, a file
  that is not a notebook, one of no known exercise: each is a report, never a crash.
"""

import json
import time
from pathlib import Path

import nbformat
import pytest

from minimal_ofn.course import checks, isolation
from minimal_ofn.course.grade import format_report, grade_notebook, main, passed, summary_table
from minimal_ofn.course.learner import Sandbox
from minimal_ofn.course.source import extract

from mistakes import CLASSES, HEADER, RIGHT, WRONG

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


def _nb_of(source: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    return nb


def _define(source: str) -> dict:
    namespace = {}
    exec(compile(HEADER + source, "<learner>", "exec"), namespace)
    return namespace


def test_there_are_seven_pairs():
    assert [p.name for p in SOLUTIONS] == [p.name for p in EXERCISES]
    assert [p.stem for p in SOLUTIONS] == list(checks.EXERCISES)


# ---- every notebook
@pytest.mark.parametrize("path", SOLUTIONS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_solutions_score_full_marks_and_exercises_zero(path):
    report = grade_notebook(path)
    assert report["status"] == "graded" and report["max_score"] == sum(checks.parts(path.stem).values()) > 0
    if path.parent.name == "solutions":
        assert report["score"] == report["max_score"], format_report(report)
        assert report["problems"] == [], format_report(report)
    else:
        assert report["score"] == 0, format_report(report)
        assert all("not implemented yet" in c["message"] for c in report["checks"]), format_report(report)


# ---- planted mistakes
def _assert_caught(results, exercise, part, check_name, phrase):
    by_name = {r["check"]: r for r in results}
    assert check_name in by_name, f"no check {check_name} for {part}"
    r = by_name[check_name]
    assert not r["passed"] and r["points"] == 0, f"{check_name} passed a wrong {part}"
    assert phrase.lower() in r["message"].lower(), f"hint for {check_name}: {r['message']!r}"
    assert sum(x["points"] for x in results) < checks.parts(exercise)[part]  # (results may be of this check only)


@pytest.mark.parametrize("exercise,part,source,check_name,phrase", WRONG,
                         ids=[f"{w[0][:2]}-{w[3]}-{k}" for k, w in enumerate(WRONG)])
def test_a_planted_mistake_fails_its_check_with_a_hint(exercise, part, source, check_name, phrase):
    results = checks.run(exercise, {part: _define(source)[part]}, seed=3, only_part=part, only_check=check_name)
    _assert_caught(results, exercise, part, check_name, phrase)


@pytest.mark.parametrize("exercise", checks.EXERCISES)
def test_planted_mistakes_are_caught_through_the_sandbox(exercise):
    """The same mistakes, graded as the grader does: compiled in the child, compared here (one child each)."""
    wrong = [(k, w) for k, w in enumerate(WRONG) if w[0] == exercise]
    source = HEADER + "\n".join(src.replace(f"def {part}(", f"def {part}_{k}(") for k, (_, part, src, _, _) in wrong)
    with Sandbox(source) as box:
        for k, (_, part, _, check_name, phrase) in wrong:
            results = checks.run(exercise, {part: box.function(f"{part}_{k}")}, seed=4, only_part=part,
                                 only_check=check_name)
            _assert_caught(results, exercise, part, check_name, phrase)


def test_every_function_has_planted_mistakes_of_several_kinds():
    for exercise in checks.EXERCISES:
        for part in checks.parts(exercise):
            aimed = {w[3] for w in WRONG if w[0] == exercise and w[1] == part}
            assert len(aimed) >= 2 or len(checks.parts(exercise)) == 1, f"{part}: {aimed}"


# ---- correct alternatives
@pytest.mark.parametrize("exercise,source", RIGHT, ids=[f"{r[0]}-{k}" for k, r in enumerate(RIGHT)])
def test_other_correct_answers_keep_full_marks(exercise, source):
    namespace = _define(source.replace("from minimal_ofn.train import load_metrics", ""))
    if "load_metrics" in source:
        from minimal_ofn.train import load_metrics

        namespace["final_scores"].__globals__["load_metrics"] = load_metrics
    failed = [r for r in checks.run(exercise, namespace, seed=5) if not r["passed"]]
    assert not failed, failed
    found = extract(_nb_of(HEADER + source), checks.graded_names(exercise))  # what the grader keeps
    assert not found.refused and not found.problems, (found.refused, found.problems)
    with Sandbox(found.source) as box:
        functions = {name: box.function(name) for name in checks.graded_names(exercise)}
        failed = [r for r in checks.run(exercise, functions, seed=6) if not r["passed"]]
        assert not failed, failed


# ---- cheats
def _notebook(path: Path, sources, exercise="01_sac_utd1") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "minimal_ofn": {"exercise": exercise} if exercise else {}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def _exercise_with(tmp_path, exercise, cells, name="cheat"):
    """The untouched exercise notebook of `exercise`, with the cells added at the end."""
    nb = nbformat.read(ROOT / "exercises" / f"{exercise}.ipynb", as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / f"{name}_{exercise}.ipynb"
    nbformat.write(nb, path)
    return path


CHEATS = {
    "patch the checks": ["import minimal_ofn.course.checks as c\n"
                         "c.run_check = lambda fn, functions: {'part': fn.part, 'check': fn.__name__, 'description': '',"
                         " 'max_points': fn.points, 'passed': True, 'points': fn.points, 'message': ''}\n"
                         "import minimal_ofn.checks as old\nold.run = lambda *a, **k: []"],
    "IPython event hook": ["ip = get_ipython()\n"
                           "def fake(result):\n    open('checks.json', 'w').write('{\"checks\": []}')\n"
                           "ip.events.register('post_run_cell', fake)"],
    "import the package's functions": ["from minimal_ofn.sac import soft_q_target, polyak_update"],
    "import inside the function": ["def soft_q_target(*args):\n    from minimal_ofn.sac import soft_q_target as f\n"
                                   "    return f(*args)\n\n"
                                   "def polyak_update(*args):\n    import minimal_ofn.sac\n"
                                   "    return minimal_ofn.sac.polyak_update(*args)"],
    "exec the solutions": ["import json\nfor cell in json.load(open('../solutions/01_sac_utd1.ipynb'))['cells']:\n"
                           "    exec(''.join(cell['source']))",
                           "def soft_q_target(*args):\n    ns = {}\n"
                           "    exec(open('/work/main/minimal_ofn/sac.py').read(), ns)\n"
                           "    return ns['soft_q_target'](*args)\n\n"
                           "polyak_update = __import__('minimal_ofn.sac').sac.polyak_update"],
    "reach the package through modules": ["import torch\n"
                                          "def soft_q_target(*args):\n"
                                          "    return torch.sys.modules['minimal_ofn.sac'].soft_q_target(*args)\n\n"
                                          "def polyak_update(*args):\n"
                                          "    return getattr(torch, 'sys').modules['minimal_ofn.sac'].polyak_update(*args)"],
    "write a fake result file": ["import json, tempfile, pathlib\n"
                                 "for d in pathlib.Path(tempfile.gettempdir()).glob('minimal_ofn_grade_*'):\n"
                                 "    (d / 'checks.json').write_text(json.dumps({'checks': [{'points': 99}]}))\n"
                                 "open('checks.json', 'w').write('{}')"],
    "print a fake report": ["print('exercises/01_sac_utd1.ipynb  exercise 01_sac_utd1  score 7/7')\n"
                            "def soft_q_target(*a):\n    print('score 7/7')\n    raise NotImplementedError"],
    "end the process": ["import sys\nsys.exit(0)",
                        "def soft_q_target(*a):\n    raise SystemExit(0)\n\n"
                        "def polyak_update(*a):\n    import os\n    os._exit(0)"],
    "monkeypatch torch": ["import torch\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True",
                          "def soft_q_target(reward, *a):\n    torch.allclose = lambda *a, **k: True\n"
                          "    torch.Tensor.__eq__ = lambda *a: True\n    return reward\n\n"
                          "def polyak_update(t, o, tau):\n    torch.equal = lambda *a, **k: True"],
    "a result object that claims to be right": [
        "class Anything(float):\n    def __eq__(self, other):\n        return True\n\n"
        "def soft_q_target(reward, *a):\n    return Anything(1.0)\n\n"
        "def polyak_update(t, o, tau):\n    return Anything(0.0)"],
}


@pytest.mark.parametrize("name", list(CHEATS))
def test_a_cheat_scores_zero(name, tmp_path):
    path = _exercise_with(tmp_path, "01_sac_utd1", CHEATS[name])
    report = grade_notebook(path)
    assert report["status"] == "graded" and report["score"] == 0, format_report(report)
    if name.startswith("import") or name == "exec the solutions":
        messages = " ".join(c["message"] for c in report["checks"])
        assert "package" in messages or "does not allow" in messages, messages


def test_a_cheat_beside_a_correct_function_does_not_help_the_other_part(tmp_path):
    """A real soft_q_target next to an imported polyak_update: the first part scores, the second does not."""
    right = ("def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):\n"
             "    return reward + gamma * (1 - terminated) * (next_q.min(dim=1).values - alpha * next_log_prob)")
    path = _exercise_with(tmp_path, "01_sac_utd1", [right, "from minimal_ofn.sac import polyak_update"])
    report = grade_notebook(path)
    parts = checks.parts("01_sac_utd1")
    assert report["score"] == parts["soft_q_target"], format_report(report)
    polyak = [c for c in report["checks"] if c["part"] == "polyak_update"]
    assert all("imported from the package" in c["message"] for c in polyak), polyak


def test_the_child_process_cannot_import_the_package():
    """Even code that got past the source checks (here: given to the sandbox directly) cannot import it: the
    guarded import refuses, and the package is neither loaded nor findable on the child's path."""
    source = ("import typing\n"
              "def probe():\n"
              "    try:\n"
              "        import minimal_ofn\n"
              "    except ImportError as err:\n"
              "        refused = str(err)\n"
              "    sys = typing.sys\n"
              "    util = sys.modules.get('importlib.util') or sys.modules['importlib'].util\n"
              "    loaded = [m for m in sys.modules if m.startswith('minimal_ofn')]\n"
              "    return refused, loaded, util.find_spec('minimal_ofn') is None\n")
    with Sandbox(source) as box:
        refused, loaded, unfindable = box.function("probe")()
    assert "not allowed" in refused and loaded == [] and unfindable


# ---- bad input
TARGET = """
def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return reward + gamma * (1 - terminated) * (next_q.min(dim=1).values - alpha * next_log_prob)
"""


def test_a_cell_that_does_not_parse_a_cell_that_raises_and_a_missing_function(tmp_path):
    path = _notebook(tmp_path / "alice.ipynb", ["raise RuntimeError('boom')", "def broken(:\n  pass", TARGET,
                                                "%matplotlib inline\nimport torch"])
    report = grade_notebook(path)
    assert report["status"] == "graded" and report["exercise"] == "01_sac_utd1"
    assert report["score"] == checks.parts("01_sac_utd1")["soft_q_target"] < report["max_score"]
    assert any("cell 2 does not parse" in p for p in report["problems"]), report["problems"]  # cells count from 1
    missing = [c for c in report["checks"] if c["part"] == "polyak_update"]
    assert missing and all("`polyak_update` is not defined" in c["message"] for c in missing)
    assert "hint:" in format_report(report)


def test_a_function_that_never_returns_or_runs_out_of_memory_fails_its_checks_only(tmp_path):
    forever = "def polyak_update(targets, onlines, tau):\n    while True:\n        pass"
    path = _notebook(tmp_path / "bob_01.ipynb", ["import torch", TARGET, forever], exercise=None)
    start = time.monotonic()
    report = grade_notebook(path, check_timeout=1)
    assert time.monotonic() - start < 600  # a bound only against an endless wait, not a speed target
    assert report["status"] == "graded" and report["exercise"] == "01_sac_utd1"  # from the file name
    assert report["score"] == checks.parts("01_sac_utd1")["soft_q_target"], format_report(report)
    stuck = [c for c in report["checks"] if c["part"] == "polyak_update"]
    assert stuck and all("did not return within 1 s" in c["message"] for c in stuck), stuck
    dies = "def polyak_update(targets, onlines, tau):\n    x = [0] * 10 ** 12"
    report = grade_notebook(_notebook(tmp_path / "carol_01.ipynb", ["import torch", TARGET, dies]))
    assert report["score"] == checks.parts("01_sac_utd1")["soft_q_target"], format_report(report)


def test_an_exception_in_learner_code_is_reported_with_what_was_tested():
    r = checks.run("01_sac_utd1", {"soft_q_target": lambda *a: 1 / 0}, only_part="soft_q_target")[0]
    assert not r["passed"] and "ZeroDivisionError" in r["message"] and "testing:" in r["message"]
    with Sandbox("def soft_q_target(*a):\n    return 1 / 0\n") as box:
        r = checks.run("01_sac_utd1", {"soft_q_target": box.function("soft_q_target")}, only_part="soft_q_target")[0]
    assert "ZeroDivisionError" in r["message"] and "cell 1, line 2" in r["message"], r["message"]


def test_random_inputs_change_with_the_seed_and_are_reproducible(tmp_path):
    seen = []

    def spy(*args):
        seen.append(args[0].clone())
        return args[0]

    for seed in (1, 1, 2):
        checks.run("01_sac_utd1", {"soft_q_target": spy}, seed=seed, only_part="soft_q_target")
    per_run = len(seen) // 3
    last = per_run - 1  # the check on random inputs
    assert (seen[last] == seen[per_run + last]).all() and not (seen[last] == seen[2 * per_run + last]).all()


def test_a_file_that_is_not_a_notebook_and_one_of_no_known_exercise(tmp_path, capsys):
    (tmp_path / "03_momentum.ipynb").write_text("{ this is not json")
    _notebook(tmp_path / "homework.ipynb", ["x = 1"], exercise=None)
    broken = grade_notebook(tmp_path / "03_momentum.ipynb")
    assert broken["status"] == "error" and "not a readable notebook" in broken["error"]
    assert broken["exercise"] == "03_momentum" and broken["max_score"] == sum(checks.parts("03_momentum").values())
    unknown = grade_notebook(tmp_path / "homework.ipynb")
    assert unknown["status"] == "error" and "which exercise" in unknown["error"]
    # The whole folder in one command: a JSON list, exit status 1.
    assert main([str(tmp_path), "--json"]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert [Path(r["notebook"]).name for r in reports] == ["03_momentum.ipynb", "homework.ipynb"]
    assert main([str(tmp_path / "missing")]) == 2


def test_the_readme_command_from_the_repository_root(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    from minimal_ofn.course.__main__ import main as course_main

    assert course_main(["grade", "solutions/06_priming_resets.ipynb", "--seed", "0"]) == 0
    total = sum(checks.parts("06_priming_resets").values())
    assert f"score {total}/{total}" in capsys.readouterr().out


def test_exit_status_and_summary(monkeypatch, capsys):
    def fake(path, *args):
        full = Path(path).name.startswith("a")
        return {"notebook": str(path), "exercise": "05_ofn", "status": "graded", "score": 7 if full else 3,
                "max_score": 7, "error": None, "problems": [], "checks": [], "seconds": 0.1}

    monkeypatch.setattr("minimal_ofn.course.grade.grade_notebook", fake)
    monkeypatch.setattr("minimal_ofn.course.grade.find_notebooks", lambda paths: [Path(p) for p in paths])
    assert main(["a.ipynb"]) == 0
    assert main(["a.ipynb", "b.ipynb"]) == 1
    table = capsys.readouterr().out
    assert "all passed" in table and "10/14" in table
    assert not passed({"status": "error", "score": 0, "max_score": 0})
    assert "total" in summary_table([fake("a.ipynb")])


# ---- the classes of what slipped through (tests/mistakes.py CLASSES)
CLASS_CASES = [(name, *case) for name, cases in CLASSES.items() for case in cases]


@pytest.mark.parametrize("cls,exercise,part,source", CLASS_CASES,
                         ids=[f"{c[0][:1]}-{c[2]}-{k}" for k, c in enumerate(CLASS_CASES)])
def test_each_class_of_slipped_mistakes_costs_its_part(cls, exercise, part, source):
    results = checks.run(exercise, {part: _define(source)[part]}, seed=8, only_part=part)
    got = sum(r["points"] for r in results)
    if cls.startswith("5"):  # a function that does nothing earns nothing from side properties
        assert got == 0, [r["check"] for r in results if r["passed"]]
    else:
        assert got < checks.parts(exercise)[part], "not caught"


@pytest.mark.parametrize("cls", list(CLASSES))
def test_each_class_is_caught_through_the_sandbox(cls):
    """The same answers, graded the way the grader does (the learner's child, isolated where the OS allows)."""
    cases = list(enumerate(CLASSES[cls]))
    source = HEADER + "\n".join(src.replace(f"def {part}(", f"def {part}_{k}(") for k, (_, part, src) in cases)
    with Sandbox(source) as box:
        for k, (exercise, part, _) in cases:
            results = checks.run(exercise, {part: box.function(f"{part}_{k}")}, seed=9, only_part=part)
            got = sum(r["points"] for r in results)
            assert got < checks.parts(exercise)[part] and (got == 0 or not cls.startswith("5")), (part, results)


def test_every_class_has_several_mistakes():
    assert all(len(cases) >= 3 for cases in CLASSES.values()) and len(CLASSES) == 5


# ---- isolation: the learner's child cannot read the project, the solutions, the package or the grader's process
needs_isolation = pytest.mark.skipif(not isolation.available()[0], reason=isolation.available()[1])

ESCAPES = f"""
import torch

def probe():
    # 1. walk to the real builtins and sys through an ordinary library object (the filter is bypassed here)
    real = torch.nn.Module.__init__.__globals__["__builtins__"]
    sys = real["__import__"]("sys")
    os = real["__import__"]("os")
    found = {{}}
    # 2. the project, its solutions and the package's reference, by name and through the parent process
    for path in ("{ROOT}", "{ROOT}/solutions/01_sac_utd1.ipynb", "{ROOT}/minimal_ofn/sac.py", "/work"):
        found[path] = os.path.exists(path)
    # each folder on the way to the project, where the child has one of that name (it has its own /tmp): what it holds
    found["on the way"] = {{path: sorted(os.listdir(path)) for path in {[str(p) for p in ROOT.parents]!r}
                           if os.path.isdir(path)}}
    ppid = os.getppid()
    for what in ("cwd", "environ", "cmdline", "root"):
        try:
            found["parent " + what] = str(os.readlink(f"/proc/{{ppid}}/{{what}}") if what in ("cwd", "root")
                                          else real["open"](f"/proc/{{ppid}}/{{what}}", "rb").read()[:4000])
        except OSError as err:
            found["parent " + what] = "refused: " + type(err).__name__
    found["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    sys.path[:0] = ["{ROOT}", "{ROOT}/solutions"]
    try:
        real["__import__"]("minimal_ofn.sac")
        found["import"] = "imported"
    except ImportError as err:
        found["import"] = "refused"
    socket = real["__import__"]("socket")
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        found["network"] = "open"
    except OSError:
        found["network"] = "none"
    return found
"""


@needs_isolation
def test_isolation_holds_against_each_escape_route():
    """Code that got past the filter (given to the child directly) still finds nothing: no project, solutions or
    package by name, nothing of the grader through the parent process, no other process, no import, no network."""
    with Sandbox(ESCAPES.replace("import torch\n", "import torch\n", 1)) as box:
        assert box.isolated
        found = box.function("probe")()
    assert not any(found[p] for p in (str(ROOT), f"{ROOT}/solutions/01_sac_utd1.ipynb", f"{ROOT}/minimal_ofn/sac.py",
                                      "/work")), found
    # the deepest folder towards the project that the child has (its own / or /tmp) does not hold the next one
    seen = found["on the way"]
    deepest = next(p for p in ROOT.parents if str(p) in seen)  # ROOT.parents runs from the nearest folder to /
    assert ROOT.relative_to(deepest).parts[0] not in seen[str(deepest)], seen
    assert str(ROOT) not in found["parent cwd"] + found["parent environ"] + found["parent cmdline"], found
    assert found["import"] == "refused" and found["network"] == "none", found
    assert max(found["pids"]) < 10, found["pids"]  # its own pid namespace: the grader's process is not there


def _cheat_cells(root: Path):
    """Notebook cheats that pass the code filter: read the solutions or the package's source from disk (by a
    path, or found through the parent process), then run it with TorchScript, which the filter does not know."""
    read = f"""
import json
import torch
from pathlib import Path

def steal(name):
    places = [Path("{root}"), Path.cwd()]
    status = Path("/proc/self/status").read_text()
    ppid = [line.split()[1] for line in status.splitlines() if line.startswith("PPid")][0]
    try:
        places.append(Path("/proc/" + ppid + "/cwd").resolve())
        env = Path("/proc/" + ppid + "/environ").read_bytes().decode()
        places += [Path(p) for item in env.split(chr(0)) if item.startswith("PYTHONPATH=") for p in item[11:].split(":")]
    except OSError:
        pass
    for place in places:
        for rel in ("solu" + "tions/01_sac_utd1.ipynb", "minimal" + "_ofn/sac.py"):
            f = place / rel
            if f.is_file():
                text = f.read_text()
                if f.suffix == ".ipynb":
                    cells = json.JSONDecoder().decode(text)["cells"]
                    text = "\\n\\n\\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
                start = text.index("def " + name + "(")
                body = text[start:].split("\\n\\n\\n")[0].split("\\n\\n@")[0]
                body = "\\n".join(l for l in body.split("\\n") if not l.strip().startswith(("@", "#")))
                return getattr_free(torch.jit.CompilationUnit(body + chr(10)), name)
    raise RuntimeError("nothing to steal")

def getattr_free(unit, name):
    return {{"soft_q_target": lambda: unit.soft_q_target, "polyak_update": lambda: unit.polyak_update}}[name]()

def soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):
    return steal("soft_q_target")(reward, terminated, next_q, next_log_prob, alpha, gamma)
"""
    return [read]


@needs_isolation
def test_reading_the_solutions_or_the_package_from_disk_scores_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the grader's folder holds the solutions and the package
    path = _exercise_with(tmp_path, "01_sac_utd1", _cheat_cells(ROOT), name="steal")
    report = grade_notebook(path)
    target = [c for c in report["checks"] if c["part"] == "soft_q_target"]
    assert report["isolation"].startswith("isolated") and sum(c["points"] for c in target) == 0, format_report(report)


def test_without_isolation_the_same_cheat_is_only_self_assessment(tmp_path, monkeypatch):
    """Where the OS offers no isolation (here switched off), the report says that the grade is self-assessment."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MINIMAL_OFN_ISOLATION", "off")
    isolation.available.cache_clear()
    try:
        report = grade_notebook(_exercise_with(tmp_path, "01_sac_utd1", _cheat_cells(ROOT), name="steal"))
        assert "NOT isolated" in report["isolation"] and "self-assessment only" in report["isolation"]
        target = [c for c in report["checks"] if c["part"] == "soft_q_target"]
        assert sum(c["points"] for c in target) > 0, "the cheat is real: the filter alone does not stop it"
        assert "self-assessment only" in format_report(report)
        assert main([str(ROOT / "solutions" / "07_at_scale.ipynb"), "--isolation", "require"]) == 2
    finally:
        monkeypatch.delenv("MINIMAL_OFN_ISOLATION")
        isolation.available.cache_clear()


# ---- messages a learner can act on
def test_one_broken_definition_costs_only_what_uses_it(tmp_path):
    """A class body and a default argument that raise at load: the other functions keep full marks, and the
    problems name the cell and line."""
    polyak = ("@torch.no_grad()\ndef polyak_update(target_params, online_params, tau):\n"
              "    for t, p in zip(target_params, online_params):\n"
              "        t.lerp_(p, tau.view(-1, *([1] * (t.dim() - 1))))")
    broken = "import torch\n\nclass Helper:\n    size = 1 / 0\n\ndef later(x=[][1]):\n    return x"
    path = _notebook(tmp_path / "dana_01.ipynb", [broken, TARGET, polyak], exercise=None)
    report = grade_notebook(path)
    assert report["score"] == report["max_score"], format_report(report)
    assert any("cell 1, line 3" in p and "ZeroDivisionError" in p for p in report["problems"]), report["problems"]
    assert any("cell 1, line 6" in p and "IndexError" in p for p in report["problems"]), report["problems"]


def test_a_hang_at_load_names_its_cell_and_says_it_timed_out(tmp_path):
    hang = "import itertools\n\nclass Table:\n    total = sum(itertools.count())"
    path = _notebook(tmp_path / "erin_01.ipynb", ["import torch", hang, TARGET], exercise=None)
    report = grade_notebook(path, check_timeout=2)
    assert report["status"] == "graded", format_report(report)
    assert report["score"] == checks.parts("01_sac_utd1")["soft_q_target"], format_report(report)
    assert any("cell 2, line 3" in p and "timed out" in p for p in report["problems"]), report["problems"]


def test_errors_cite_the_learners_cell_and_line(tmp_path):
    wrong = "import torch\n\n\ndef soft_q_target(reward, terminated, next_q, next_log_prob, alpha, gamma):\n" \
            "    x = reward\n    return x[99]\n"
    report = grade_notebook(_notebook(tmp_path / "fay_01.ipynb", ["# notes", "x = 1", wrong], exercise=None))
    messages = [c["message"] for c in report["checks"] if c["part"] == "soft_q_target"]
    assert any("cell 3, line 6" in m for m in messages), messages


def test_course_help_exits_0_with_each_subcommands_help(capsys):
    from minimal_ofn.course.__main__ import main as course_main

    assert course_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"== {name} ==" in out for name in ("grade", "exercises", "release")), out
    assert "--isolation" in out and "--seed" in out and "--check" in out and "out" in out
    assert course_main([]) == 2 and course_main(["nope"]) == 2
