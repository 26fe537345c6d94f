"""Grade exercise notebooks: run each in a fresh kernel, then the package's checks inside that kernel.

    python -m minimal_ofn.grade exercises/01_sac_utd1.ipynb
    python -m minimal_ofn.grade submissions/ --json > grades.json     # every notebook below the folder

For each notebook:
  1. papermill's parameterization injects RUN_EXPERIMENTS = False after the cell tagged
     `parameters`, so the training cells are skipped;
  2. nbclient runs the code cells one by one in a fresh `python3` kernel (working directory:
     the notebook's folder), with a time limit per cell and one for the whole notebook. A cell
     that raises or times out is noted and the next cell runs: one broken scratch cell does not
     cost the functions defined after it. nbgrader's test cells are skipped (the checks below
     are the same tests, run from the package where a learner cannot edit them);
  3. one more cell, added by the grader, imports minimal_ofn.checks.<exercise> and runs every
     check on the functions the notebook defined, writing a JSON report to a file.

Why run the checks inside the kernel instead of extracting the functions' source: a learner's
function may use anything the notebook built (imports, helpers, constants from other cells),
and only the executed kernel has all of it. The cost is that the checks share a process with
the learner's code, as nbgrader's autograder tests do: fine for catching mistakes, not a
defence against a learner who writes code to fool the grader. Run untrusted submissions in a
container.

Exit status: 0 when every check of every notebook passed, 1 otherwise, 2 for a usage error.
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import nbformat

from .checks import EXERCISES

CELL_TIMEOUT = 60  # seconds for one cell of the learner's notebook
TOTAL_TIMEOUT = 300  # seconds for all of them
CHECK_TIMEOUT = 20  # seconds for one check (a learner's function that never returns fails that check)
CHECKS_TIMEOUT = 180  # seconds for the whole checks cell
PARAMETERS = {"RUN_EXPERIMENTS": False}


def find_notebooks(paths) -> list[Path]:
    """The notebooks named, and every notebook below the folders named (checkpoints skipped)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.exists():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return found


def exercise_of(path: Path, nb=None) -> str | None:
    """The exercise a notebook belongs to: its metadata, else the number in its file name (01 ... 07)."""
    if nb is not None:
        name = nb.metadata.get("minimal_ofn", {}).get("exercise")
        if name in EXERCISES:
            return name
    match = re.search(r"(?<!\d)(0\d)(?!\d)", path.name)
    return next((e for e in EXERCISES if match and e.startswith(match.group(1))), None)


def _max_points(exercise: str | None) -> int:
    if exercise is None:
        return 0
    from .checks import parts

    return sum(parts(exercise).values())


def _is_test_cell(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def _first_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def grade_notebook(path, cell_timeout: float = CELL_TIMEOUT, total_timeout: float = TOTAL_TIMEOUT,
                   check_timeout: float = CHECK_TIMEOUT, parameters: dict | None = None,
                   test_cells: bool = False) -> dict:
    """Execute one notebook and check it. Never raises: every failure is part of the report.

    parameters: injected after the notebook's `parameters` cell (default RUN_EXPERIMENTS = False).
    test_cells: also run nbgrader's test cells (skipped by default: the checks are the same tests)."""
    path = Path(path)
    start = time.monotonic()
    report = {"notebook": str(path), "exercise": None, "status": "error", "score": 0, "max_score": 0,
              "error": None, "problems": [], "checks": [], "seconds": 0.0}
    try:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # not JSON, not a notebook, unreadable
            report["exercise"] = exercise_of(path)
            report["max_score"] = _max_points(report["exercise"])
            raise _Fail(f"not a readable notebook ({type(err).__name__}: {_first_line(err)})") from None
        exercise = report["exercise"] = exercise_of(path, nb)
        if exercise is None:
            raise _Fail("cannot tell which exercise this is: keep the notebook's metadata or put its number "
                        f"(01 to {EXERCISES[-1][:2]}) in the file name")
        report["max_score"] = _max_points(exercise)
        with tempfile.TemporaryDirectory(prefix="minimal_ofn_grade_") as tmp:
            result_file = Path(tmp) / "checks.json"
            report["problems"] = _execute(nb, path.parent, exercise, result_file, cell_timeout, total_timeout,
                                          check_timeout, {**PARAMETERS, **(parameters or {})}, test_cells)
            if not result_file.exists():
                raise _Fail("the checks did not run: " + (report["problems"][-1] if report["problems"]
                                                           else "no report from the kernel"))
            result = json.loads(result_file.read_text())
        if result.get("error"):
            raise _Fail(result["error"])
        report["checks"] = result["checks"]
        report["score"] = sum(c["points"] for c in result["checks"])
        report["status"] = "graded"
    except _Fail as err:
        report["error"] = str(err)
    except Exception as err:  # a bug or an environment problem: still one clear line, never a crash
        report["error"] = f"grading failed: {type(err).__name__}: {_first_line(err)}"
    report["seconds"] = round(time.monotonic() - start, 1)
    return report


class _Fail(Exception):
    pass


def _execute(nb, folder: Path, exercise: str, result_file: Path, cell_timeout, total_timeout, check_timeout,
             parameters: dict, test_cells: bool):
    """Run the notebook's code cells, then the checks cell; return the problems met (one line each)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
    from papermill.parameterize import parameterize_notebook

    logging.getLogger("papermill").setLevel(logging.ERROR)  # "no cell tagged parameters" is fine: injected on top
    nb.metadata.setdefault("papermill", {})
    for k, cell in enumerate(nb.cells):
        cell.metadata.setdefault("tags", [])  # what papermill's own loader ensures before it parameterizes
        cell.metadata["_grader_index"] = k  # the cell's number in the learner's file, for the report
    nb = parameterize_notebook(nb, parameters, kernel_name="python3", language="python")
    learner_cells = [(k, c) for k, c in enumerate(nb.cells)
                     if c.cell_type == "code" and (test_cells or not _is_test_cell(c))]
    checks_cell = nbformat.v4.new_code_cell(
        "import minimal_ofn.checks as _minimal_ofn_checks\n"
        f"_minimal_ofn_checks.report({exercise!r}, globals(), {str(result_file)!r})")
    nb.cells.append(checks_cell)
    # One thread per kernel: graders often run side by side, and the checks are small.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "MINIMAL_OFN_GRADING": "1", "MINIMAL_OFN_CHECK_TIMEOUT": str(check_timeout)}
    client = NotebookClient(
        nb, timeout=cell_timeout, kernel_name="python3", allow_errors=False, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": "", "traceback": []}, startup_timeout=60,
        resources={"metadata": {"path": str(folder)}}, record_timing=False, log=_QUIET)
    problems = []

    def run(k, cell, limit, what) -> bool:
        """Run one cell; note what went wrong; False when the kernel is gone."""
        client.timeout = max(1, int(limit))
        try:
            client.execute_cell(cell, k)
        except CellExecutionError as err:
            if err.ename == "CellTimeout":
                problems.append(f"{what} did not finish within {client.timeout} s and was interrupted")
            else:
                problems.append(f"{what} raised {err.ename}: {_first_line(err.evalue)}")
        except DeadKernelError:
            problems.append(f"the kernel died while running {what} (out of memory, or the code ended the process)")
            return False
        return True

    try:
        # The kernel's own stderr is only its log (a TCP warning); the learner's errors come back as messages.
        with client.setup_kernel(env=env, stderr=subprocess.DEVNULL):
            deadline = time.monotonic() + total_timeout  # the kernel's start-up does not count
            for k, cell in learner_cells:
                remaining = deadline - time.monotonic()
                if remaining < 1:
                    problems.append(f"the notebook ran longer than {total_timeout:g} s in total; cells from "
                                    f"{_label(k, cell)} on were not run")
                    break
                if not run(k, cell, min(cell_timeout, remaining), _label(k, cell)):
                    return problems
            run(len(nb.cells) - 1, checks_cell, max(CHECKS_TIMEOUT, 12 * check_timeout), "the checks")
    except DeadKernelError:
        problems.append("the kernel died (out of memory, or the code ended the process)")
    except RuntimeError as err:  # the kernel did not start
        problems.append(f"the kernel could not start: {_first_line(err)}")
    return problems


_QUIET = logging.getLogger("minimal_ofn.grade.kernel")  # nbclient's own timeout messages: the report has them
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _label(k: int, cell) -> str:
    if "_grader_index" not in cell.metadata:
        return "the injected parameters cell"
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {cell.metadata['_grader_index']} ({_first_line(first, 50)!r})"


# ---- reports
def format_report(r: dict) -> str:
    head = f"{r['notebook']}  exercise {r['exercise'] or '?'}  score {r['score']}/{r['max_score']}  ({r['seconds']} s)"
    lines = [head]
    if r["error"]:
        lines.append(f"  NOT GRADED: {r['error']}")
    part = None
    for c in r["checks"]:
        if c["part"] != part:
            part = c["part"]
            got = sum(x["points"] for x in r["checks"] if x["part"] == part)
            total = sum(x["max_points"] for x in r["checks"] if x["part"] == part)
            lines.append(f"  {part}: {got}/{total}")
        lines.append(f"    {'ok  ' if c['passed'] else 'FAIL'} {c['description']} [{c['points']}/{c['max_points']}]")
        if not c["passed"]:
            lines.append(f"         hint: {c['message']}")
    if r["problems"]:
        lines.append("  while running the notebook:")
        lines += [f"    - {p}" for p in r["problems"]]
    return "\n".join(lines)


def summary_table(reports: list[dict]) -> str:
    width = max([len("notebook")] + [len(r["notebook"]) for r in reports])
    lines = [f"{'notebook':<{width}}  {'exercise':<18} {'score':>9}  status"]
    for r in reports:
        status = "all passed" if r["status"] == "graded" and r["score"] == r["max_score"] else (
            "graded" if r["status"] == "graded" else "not graded")
        lines.append(f"{r['notebook']:<{width}}  {r['exercise'] or '?':<18} {r['score']:>4}/{r['max_score']:<4}  {status}")
    total, best = sum(r["score"] for r in reports), sum(r["max_score"] for r in reports)
    lines.append(f"{'total':<{width}}  {'':<18} {total:>4}/{best:<4}")
    return "\n".join(lines)


def passed(r: dict) -> bool:
    return r["status"] == "graded" and r["max_score"] > 0 and r["score"] == r["max_score"]


def _grade_args(args):
    return grade_notebook(*args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimal_ofn.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks, or folders to search for notebooks")
    parser.add_argument("--json", action="store_true", help="print a JSON list of reports instead of text")
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, help=f"seconds per cell ({CELL_TIMEOUT})")
    parser.add_argument("--timeout", type=float, default=TOTAL_TIMEOUT,
                        help=f"seconds for one notebook's cells in total ({TOTAL_TIMEOUT})")
    parser.add_argument("--check-timeout", type=float, default=CHECK_TIMEOUT,
                        help=f"seconds for one check of a learner's function ({CHECK_TIMEOUT})")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at the same time (1)")
    args = parser.parse_args(argv)
    try:
        notebooks = find_notebooks(args.paths)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks in {' '.join(args.paths)}", file=sys.stderr)
        return 2
    jobs = [(p, args.cell_timeout, args.timeout, args.check_timeout) for p in notebooks]
    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(args.jobs, len(jobs)), mp_context=get_context("spawn")) as pool:
            reports = list(pool.map(_grade_args, jobs))
    else:
        reports = []
        for job in jobs:
            reports.append(grade_notebook(*job))
            if not args.json:
                print(format_report(reports[-1]) + "\n", flush=True)
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        if args.jobs > 1 and len(jobs) > 1:
            print("\n\n".join(map(format_report, reports)) + "\n")
        if len(reports) > 1:
            print(summary_table(reports))
    return 0 if all(map(passed, reports)) else 1


if __name__ == "__main__":
    sys.exit(main())
