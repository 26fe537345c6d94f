"""Generate the learners' exercise notebooks from the solution notebooks.

One source of truth: solutions/NN_topic.ipynb carries the answers between nbgrader's
markers. The exercise is the same notebook with

    ### BEGIN SOLUTION ... ### END SOLUTION    ->  # YOUR CODE HERE
                                                   raise NotImplementedError("<hint>")
    ### BEGIN HIDDEN TESTS ... ### END HIDDEN TESTS  ->  (removed)

and every output cleared. The hint is the region's first line when it reads
`# hint: ...`. Output is deterministic (nbformat's sorted-key JSON, cell ids kept),
so regenerating an up-to-date exercise rewrites the same bytes.

    python -m minimal_ofn.course exercises           # write exercises/ from solutions/
    python -m minimal_ofn.course exercises --check   # exit 1 if an exercise is out of date
    python -m minimal_ofn.course exercises --clean-solutions  # strip outputs from the solution notebooks
"""

import copy
import re
import sys
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HINT = re.compile(r"^\s*#\s*hint:\s*(.*?)\s*$", re.IGNORECASE)


class MarkerError(ValueError):
    pass


def _strip_regions(lines: list[str], where: str) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if BEGIN_HIDDEN in line:
            end = _find(lines, i, END_HIDDEN, where)
            i = end + 1
            continue
        if BEGIN_SOLUTION in line:
            end = _find(lines, i, END_SOLUTION, where)
            indent = line[: len(line) - len(line.lstrip())]
            first = lines[i + 1] if i + 1 < end else ""
            match = HINT.match(first)
            hint = match.group(1) if match else "replace this line with your code"
            out += [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("{_quote(hint)}")']
            i = end + 1
            continue
        if END_SOLUTION in line or END_HIDDEN in line:
            raise MarkerError(f"{where}: '{line.strip()}' without its BEGIN marker")
        out.append(line)
        i += 1
    return out


def _find(lines, start, marker, where) -> int:
    for j in range(start + 1, len(lines)):
        if marker in lines[j]:
            return j
        if "### BEGIN" in lines[j]:
            break
    raise MarkerError(f"{where}: '{lines[start].strip()}' has no matching '{marker}'")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _clean(nb) -> None:
    """Outputs, execution counts and run-time metadata removed; kernelspec python3."""
    nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items()
                                      if k in ("kernelspec", "language_info", "minimal_ofn")})
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None


def to_exercise(solution, name: str = "notebook"):
    """The exercise version of a solution notebook (a new notebook; the argument is left as it was)."""
    nb = nbformat.from_dict(copy.deepcopy(dict(solution)))
    _clean(nb)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            lines = _strip_regions(cell.source.split("\n"), f"{name} cell {k} ({cell.get('id', '?')})")
            cell.source = "\n".join(lines)
    return nb


def dumps(nb) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def generate(solutions: Path, exercises: Path) -> dict[Path, str]:
    """exercise path -> the text it should hold, for every solution notebook."""
    out = {}
    for path in sorted(Path(solutions).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[Path(exercises) / path.name] = dumps(to_exercise(nb, path.name))
    return out


def stale(solutions: Path, exercises: Path) -> list[str]:
    """Problems that make the exercises out of date with the solutions (empty when all is well)."""
    wanted = generate(solutions, exercises)
    problems = [f"{p} is out of date with {Path(solutions) / p.name}" if p.exists() else f"{p} is missing"
                for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    problems += [f"{p} has no solution notebook in {solutions}" for p in sorted(Path(exercises).glob("*.ipynb"))
                 if p not in wanted]
    return problems


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m minimal_ofn.course exercises", description=__doc__.split("\n\n")[0])
    parser.add_argument("--solutions", default="solutions", help="folder of solution notebooks (default: solutions)")
    parser.add_argument("--out", default="exercises", help="folder for the exercises (default: exercises)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if an exercise is out of date")
    parser.add_argument("--clean-solutions", action="store_true", help="strip outputs from the solution notebooks")
    args = parser.parse_args(argv)
    solutions, out = Path(args.solutions), Path(args.out)
    if not solutions.is_dir() or not any(solutions.glob("*.ipynb")):
        print(f"error: no solution notebooks in {solutions}/ (run from the repository root or pass --solutions)",
              file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = stale(solutions, out)
            for p in problems:
                print(p)
            if problems:
                print("regenerate with: python -m minimal_ofn.course exercises", file=sys.stderr)
            return 1 if problems else 0
        if args.clean_solutions:
            for path in sorted(solutions.glob("*.ipynb")):
                nb = nbformat.read(path, as_version=4)
                _clean(nb)
                path.write_text(dumps(nb))
        out.mkdir(parents=True, exist_ok=True)
        written = 0
        for path, text in generate(solutions, out).items():
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                written += 1
                print(f"wrote {path}")
        print(f"{written} exercise(s) written, the rest were up to date")
    except (MarkerError, nbformat.reader.NotJSONError, nbformat.ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
