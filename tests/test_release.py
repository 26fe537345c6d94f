"""The student bundle: exercises generated now, tutorials, a wheel without solutions, and the bundle's grader works."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from minimal_ofn.course.release import ReleaseError, main, release, verify

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_release_writes_a_bundle_without_solutions_that_grades(tmp_path):
    out = tmp_path / "bundle"
    wheel = release(ROOT, out)
    assert sorted(p.name for p in (out / "exercises").iterdir()) == sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    for p in (out / "exercises").iterdir():  # generated from solutions/ now, equal to the committed ones
        assert p.read_text() == (ROOT / "exercises" / p.name).read_text()
    assert (out / "tutorials" / "01_sac_utd1.ipynb").exists() and (out / "README.md").exists()
    assert wheel.name in (out / "README.md").read_text()
    names = zipfile.ZipFile(wheel).namelist()
    assert "minimal_ofn/sac.py" in names and "minimal_ofn/course/checks/ex01_sac_utd1.py" in names
    assert not [n for n in names if "solutions" in n or n.endswith(".ipynb")]
    assert verify(out, wheel) == []
    # The bundle's grader, with the package imported from the wheel alone: an untouched exercise scores 0.
    env = {**os.environ, "PYTHONPATH": str(wheel), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", "import minimal_ofn, sys; print(minimal_ofn.__file__); "
                           "from minimal_ofn.course.__main__ import main; sys.exit(main(sys.argv[1:]))",
                           "grade", "exercises/06_priming_resets.ipynb"], cwd=out, env=env, capture_output=True,
                          text=True, timeout=300)
    assert str(wheel) in done.stdout and re.search(r"score 0/[1-9]\d*", done.stdout), done.stdout + done.stderr
    # A planted solution in the bundle is refused, and OUT must be new.
    (out / "solutions").mkdir()
    (out / "solutions" / "x.ipynb").write_text("{}")
    assert verify(out, wheel)
    with pytest.raises(ReleaseError, match="not empty"):
        release(ROOT, out)
    assert main([str(out)]) == 2
