"""Grade exercise notebooks where the learner's code cannot change the result.

    python -m minimal_ofn.course grade exercises/01_sac_utd1.ipynb
    python -m minimal_ofn.course grade submissions/ --json > grades.json   # every notebook below the folder

For each notebook:
  1. the grader reads the file and keeps only the definitions of its code cells (imports of
     allowed modules, defs, classes, constants: source.py). Nothing of the notebook is executed
     in the grader's process, and the notebook is never run as a whole: a cell's side effects
     (patches, IPython event hooks, files it writes, what it prints) never happen;
  2. a graded function that is missing, imported from the package, or uses what grading
     forbids (exec, open, __import__, the sys/os modules, ...) scores 0 for its part, saying why;
  3. the kept definitions are loaded one statement at a time (named by cell and line) in a child
     process (sandbox.py), inside bubblewrap where the OS allows it (isolation.py: no project,
     solutions or package visible, own pid namespace, no network; elsewhere the report says the
     grade is self-assessment only). The checks (checks/) run here, in the grader's process, and
     call the learner's functions in the child, which only sends back values (read with
     torch.load(weights_only=True)); an integration check runs a few updates of train() with
     each function. The comparisons, the points and the report are made here. A call that
     hangs or kills its process fails that check only.

The random inputs of the checks are drawn from a seed chosen anew for each grading (--seed
fixes it; the report records it).

Exit status: 0 when every check of every notebook passed, 1 otherwise, 2 for a usage error.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import nbformat

from . import checks, isolation
from .checks import EXERCISES, Refused
from .learner import CALL_TIMEOUT, Sandbox
from .source import extract


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
    return sum(checks.parts(exercise).values()) if exercise else 0


def _first_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def grade_notebook(path, check_timeout: float = CALL_TIMEOUT, seed: int | None = None,
                   require_isolation: bool = False) -> dict:
    """Check one notebook's functions. Never raises: every failure is part of the report."""
    path = Path(path)
    start = time.monotonic()
    seed = int.from_bytes(os.urandom(4), "little") % 1_000_000 if seed is None else int(seed)
    report = {"notebook": str(path), "exercise": None, "status": "error", "score": 0, "max_score": 0,
              "error": None, "problems": [], "checks": [], "seed": seed, "seconds": 0.0,
              "isolation": isolation.describe()}
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
        names = checks.graded_names(exercise)
        found = extract(nb, names)
        report["problems"] = list(found.problems)
        with tempfile.TemporaryDirectory(prefix="minimal_ofn_grading_") as scratch, \
                Sandbox(found.units, check_timeout, readable=[scratch]) as box:
            report["isolation"] = isolation.describe()
            if require_isolation and not box.isolated:
                raise _Fail(f"isolation was required (--isolation require) but {box.isolation}")
            box.start()
            report["problems"] += box.load_errors
            functions = {name: Refused(found.refused[name]) if name in found.refused else box.function(name)
                         for name in names}
            report["checks"] = checks.run(exercise, functions, seed, scratch=scratch)
        report["score"] = sum(c["points"] for c in report["checks"])
        report["status"] = "graded"
    except _Fail as err:
        report["error"] = str(err)
    except Exception as err:  # a bug or an environment problem: still one clear line, never a crash
        report["error"] = f"grading failed: {type(err).__name__}: {_first_line(err)}"
    report["seconds"] = round(time.monotonic() - start, 1)
    return report


class _Fail(Exception):
    pass


# ---- reports
def format_report(r: dict) -> str:
    head = (f"{r['notebook']}  exercise {r['exercise'] or '?'}  score {r['score']}/{r['max_score']}  "
            f"({r['seconds']} s, seed {r.get('seed')})")
    lines = [head]
    if r.get("isolation"):
        lines.append(f"  {r['isolation']}")
    if r["error"]:
        lines.append(f"  NOT GRADED: {r['error']}")
    for part in dict.fromkeys(c["part"] for c in r["checks"]):  # each part once, its checks under it
        mine = [c for c in r["checks"] if c["part"] == part]
        lines.append(f"  {part}: {sum(c['points'] for c in mine)}/{sum(c['max_points'] for c in mine)}")
        for c in mine:
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
    parser = argparse.ArgumentParser(prog="python -m minimal_ofn.course grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks, or folders to search for notebooks")
    parser.add_argument("--json", action="store_true", help="print a JSON list of reports instead of text")
    parser.add_argument("--check-timeout", type=float, default=CALL_TIMEOUT,
                        help=f"seconds for one call of a learner's function ({CALL_TIMEOUT:g})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the checks' random inputs (default: a new one)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at the same time (1)")
    parser.add_argument("--isolation", choices=("auto", "require", "off"), default="auto",
                        help="auto: isolate the learner's code with bubblewrap where the OS allows it, else grade "
                             "without (the report says: self-assessment only); require: refuse to grade without "
                             "it (for instructors); off: never isolate")
    args = parser.parse_args(argv)
    if args.isolation == "off":
        os.environ["MINIMAL_OFN_ISOLATION"] = "off"
        isolation.available.cache_clear()
    if args.isolation == "require" and not isolation.available()[0]:
        print(f"error: --isolation require, but {isolation.available()[1]}", file=sys.stderr)
        return 2
    try:
        notebooks = find_notebooks(args.paths)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks in {' '.join(args.paths)}", file=sys.stderr)
        return 2
    jobs = [(p, args.check_timeout, args.seed, args.isolation == "require") for p in notebooks]
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
