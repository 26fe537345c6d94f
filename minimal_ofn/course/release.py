"""The student bundle: exercises, tutorials and the package as a wheel, without the solutions.

    python -m minimal_ofn.course release OUT      # run from the repository root

writes

    OUT/exercises/NN_topic.ipynb     generated from solutions/ now (never copied: a stale exercise cannot ship)
    OUT/tutorials/                   the tutorial notebooks and their README, as committed
    OUT/dist/minimal_ofn-*.whl       the package, built from a copy of pyproject.toml, README.md, LICENSE and
                                     minimal_ofn/ only, so solutions/ is not even in the build's folder; the wheel
                                     carries the committed story (docs/story: its runs, protocol and report) as
                                     package data, minimal_ofn/story_committed/, which the tutorials judge again
    OUT/README.md                    how to install and grade

and then checks what it wrote: no solution notebook, no nbgrader solution or hidden-test marker, and
no file of the wheel outside minimal_ofn/ (and its metadata). OUT must be new or empty.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..runs import STORY_DATA
from .exercises import BEGIN_HIDDEN, BEGIN_SOLUTION, generate

STUDENT_README = """# minimal_ofn: the course

Install PyTorch, then the package, then open the notebooks:

    pip install torch==2.13.0
    pip install dist/{wheel}
    jupyter lab

From PyPI (pip's default index), `torch==2.13.0` on Linux x86-64 is the CUDA build, about 2.5 GB with its NVIDIA
libraries; it runs on a CPU too. On macOS and Windows it is a CPU build. On a Linux machine without a GPU, take the
CPU wheel from PyTorch's own index instead, as the install selector on pytorch.org gives it (Linux, Pip, CPU):

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

The wheel carries the committed story's runs (docs/story of the repository), which the tutorials' last cells judge
again beside your own run.

- `tutorials/`: seven notebooks, one step of the paper's story each (read and run them).
- `exercises/`: one exercise per tutorial; replace each `raise NotImplementedError(...)` with your code.

Grade an exercise yourself (save it first):

    python -m minimal_ofn.course grade exercises/01_sac_utd1.ipynb

The grader reads your functions from the file and checks them in a separate process against the
package's behaviour on fresh random inputs; the hints point at the mistake without giving the code.
"""


class ReleaseError(Exception):
    pass


def build_wheel(root: Path, dist: Path) -> Path:
    """Build the package's wheel from a copy holding only what the package is made of."""
    with tempfile.TemporaryDirectory(prefix="minimal_ofn_release_") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(root / name, src / name)
        shutil.copytree(root / "minimal_ofn", src / "minimal_ofn",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", STORY_DATA))
        # What the tutorials' "this run beside the story" cells read (runs.committed_story finds it there).
        shutil.copytree(root / "docs" / "story", src / "minimal_ofn" / STORY_DATA,
                        ignore=shutil.ignore_patterns("checkpoint*.pt", "*.tmp"))
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                               "-w", str(dist), str(src)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ReleaseError("building the wheel failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    wheels = sorted(dist.glob("minimal_ofn-*.whl"))
    if not wheels:
        raise ReleaseError("pip wheel made no minimal_ofn wheel")
    return wheels[-1]


def verify(out: Path, wheel: Path) -> list[str]:
    """What in the bundle would hand out an answer (empty when all is well)."""
    problems = []
    for path in out.rglob("*"):
        if "solutions" in path.relative_to(out).parts:
            problems.append(f"{path} is in a solutions folder")
        if path.suffix == ".ipynb":
            text = path.read_text()
            if BEGIN_SOLUTION in text or BEGIN_HIDDEN in text:
                problems.append(f"{path} holds nbgrader solution or hidden-test markers")
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            top = name.split("/")[0]
            if top != "minimal_ofn" and not top.endswith((".dist-info", ".data")):
                problems.append(f"the wheel holds {name}, outside the package")
            if name.endswith(".ipynb") or "solutions" in name.split("/"):
                problems.append(f"the wheel holds {name}")
    return problems


def release(root: Path, out: Path) -> Path:
    root, out = Path(root), Path(out)
    if not (root / "solutions").is_dir() or not (root / "minimal_ofn").is_dir():
        raise ReleaseError(f"{root} is not the repository root (no solutions/ or minimal_ofn/ there)")
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} is not empty: give a new folder")
    (out / "exercises").mkdir(parents=True, exist_ok=True)
    for path, text in generate(root / "solutions", out / "exercises").items():
        path.write_text(text)
    tutorials = out / "tutorials"
    tutorials.mkdir()
    for path in sorted((root / "tutorials").iterdir()):
        if path.suffix in (".ipynb", ".md"):
            shutil.copy2(path, tutorials / path.name)
    wheel = build_wheel(root, out / "dist")
    (out / "README.md").write_text(STUDENT_README.format(wheel=wheel.name))
    problems = verify(out, wheel)
    if problems:
        raise ReleaseError("; ".join(problems))
    return wheel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimal_ofn.course release", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a new (or empty) folder for the bundle")
    parser.add_argument("--root", default=".", help="the repository root (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        wheel = release(Path(args.root), Path(args.out))
    except (ReleaseError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: exercises/, tutorials/, dist/{wheel.name}, README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
