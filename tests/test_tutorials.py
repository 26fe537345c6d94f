"""The tutorials: every notebook runs top to bottom at a tiny size and produces what it promises.

Two kinds of test:
- static (seconds): the committed notebooks are executed, small, in order, with a `parameters` cell that names
  every knob the slow test shrinks (papermill silently ignores unknown names, so a renamed knob would leave a
  full-size run in the test);
- executed (slow, ~4 minutes for all seven on 2 cores): papermill runs each notebook with tiny parameters, then
  an injected last cell reports the result variables; the test checks their variants, columns and steps, the
  figures, and the numbers each notebook prints. A failure names the notebook and the cell.
  They run as a student runs them: the notebooks of the student bundle (course release), in a fresh virtual
  environment outside the repository with the bundle's wheel installed, so everything a tutorial reads (the
  committed story's runs among it) must come with the wheel.
"""

import ast
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minimal_ofn import VARIANTS
from minimal_ofn.runs import METRICS

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(p.name for p in TUTORIALS.glob("*.ipynb"))

# Tiny runs: 200 random steps, 100 learning steps, 32-wide nets; logs at steps 100, 200, 300.
SMALL = dict(seed_steps=200, steps=300, hidden=32, batch_size=32, log_every=100, eval_every=300)

# Per notebook: papermill parameters, result variables with their expected variants, minimum number of
# figures (image/png outputs), and what the printed text must contain.
CASES = {
    "01_sac_utd1.ipynb": dict(
        params={**SMALL, "n_seeds": 1},
        results={"results": ["SAC, UTD 1"]},
        figures=2,
    ),
    "02_high_utd.ipynb": dict(
        params={**SMALL, "utds": [1, 2]},
        results={"results": ["UTD 1", "UTD 2"]},
        figures=3,
    ),
    "03_momentum.ipynb": dict(
        params={**SMALL, "utd": 2, "beta1s": [0.9, 0.0], "matched_updates": 40},
        results={"results": ["beta1=0.9", "beta1=0.0"]},
        figures=3,
    ),
    "04_regularization.ipynb": dict(
        params={**SMALL, "utd": 2},
        results={"results": ["baseline", "dropout+ln", "L2 penalty", "weight decay"]},
        figures=1,
    ),
    "05_ofn.ipynb": dict(
        params={**SMALL, "utd": 2},
        results={"results": ["baseline", "beta1=0", "dropout+ln", "adamw", "ofn"]},
        figures=4,
    ),
    "06_priming_resets.ipynb": dict(
        params={**SMALL, "priming_updates": 40, "priming_chunks": 2, "high_utd": 2, "high_utd_steps": 300,
                "reset_every": 50},
        results={"results_priming": ["baseline primed", "ofn primed", "baseline primed + reset", "baseline", "ofn"],
                 "results": ["baseline", "resets", "ofn"]},
        figures=4,
    ),
    "07_at_scale.ipynb": dict(
        params={**SMALL, "utd": 2, "seeds": [0, 1], "speed_tasks": ["dmc:cheetah-run"], "probe_agents": 1,
                "probe_steps": 2, "probe_utd": 2},
        results={"results": ["baseline", "ofn"]},
        figures=2,
    ),
}

REPORT = """
import json as _json, math as _math
def _summary(res):
    return {name: [{"columns": sorted(rows[-1]) if rows else [], "steps": [int(r["step"]) for r in rows],
                    "q_rollout": [r["q_rollout"] for r in rows if _math.isfinite(r["q_rollout"])]}
                   for rows in runs] for name, runs in res.items()}
print("@@REPORT@@" + _json.dumps({name: _summary(globals()[name]) for name in NAMES}))
import minimal_ofn as _package
print("@@PACKAGE@@" + _package.__file__)
"""


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cells


def test_every_tutorial_has_a_case():
    assert NOTEBOOKS == sorted(CASES), "tutorials/ and CASES disagree: add the new notebook to CASES"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook(name):
    """Kernel python3; one parameters cell naming every knob the tests shrink; executed in order; small file."""
    path = TUTORIALS / name
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3", f"{name}: kernelspec must be python3"
    cells = _parameters_cell(nb)
    assert len(cells) == 1, f"{name}: needs exactly one cell tagged 'parameters', found {len(cells)}"
    assigned = {t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    missing = set(CASES[name]["params"]) - assigned
    assert not missing, f"{name}: the parameters cell does not define {sorted(missing)}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: not executed top to bottom in a fresh kernel: {counts}"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{name}: committed with an error output"
    pngs = sum("image/png" in o.get("data", {}) for o in outputs)
    assert pngs >= CASES[name]["figures"], f"{name}: committed with {pngs} figures"
    assert path.stat().st_size < 1_000_000, f"{name}: {path.stat().st_size / 1e6:.1f} MB, keep it under 1 MB"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """(tutorials folder, python) of the student bundle, with its wheel installed in a fresh venv outside the repository.

    --system-site-packages reuses this interpreter's torch, jupyter and papermill; the package itself comes only from
    the wheel (the venv's site-packages come first, and nothing points at the repository)."""
    from minimal_ofn.course.release import release

    root = tmp_path_factory.mktemp("bundle")
    wheel = release(TUTORIALS.parent, root / "course")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   env=_outside_env())
    return root / "course" / "tutorials", python


def _outside_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"OMP_NUM_THREADS": "1"}


PAPERMILL = """import json, sys, papermill as pm
pm.execute_notebook(sys.argv[1], sys.argv[2], parameters=json.loads(sys.argv[3]), kernel_name="python3",
                    cwd=sys.argv[4], execution_timeout=240, progress_bar=False)"""


def _execute(name, tmp_path, bundle):
    """Run the bundle's notebook with the small parameters plus the report cell, in the bundle's venv (its kernel runs
    on the venv's python: jupyter_client starts the python3 kernel with the interpreter papermill runs on).
    Return (executed nb, stdout text)."""
    tutorials, python = bundle
    case = CASES[name]
    nb = nbformat.read(tutorials / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"NAMES = {list(case['results'])!r}\n" + REPORT))
    source, executed = tmp_path / name, tmp_path / f"out_{name}"
    nbformat.write(nb, source)
    done = subprocess.run([str(python), "-c", PAPERMILL, str(source), str(executed), json.dumps(case["params"]),
                           str(tmp_path)], cwd=tmp_path, env=_outside_env(), capture_output=True, text=True)
    if not executed.exists():
        pytest.fail(f"{name}: papermill did not run: {done.stderr.strip()[-2000:]}", pytrace=False)
    out = nbformat.read(executed, as_version=4)
    for k, cell in enumerate(out.cells):
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                pytest.fail(f"{name}: cell {k} (In [{cell.execution_count}], starting {first!r}) raised "
                            f"{o.ename}: {o.evalue}", pytrace=False)
    assert done.returncode == 0, done.stderr[-2000:]
    text = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")
    package = re.findall(r"^@@PACKAGE@@(.+)$", text, re.M)
    assert package and Path(package[-1]).is_relative_to(python.parent.parent), f"{name}: minimal_ofn from {package}"
    return out, text


# A row of the overestimation table (after the variant name): peak Q, its step, MC return, soft MC return, limit,
# final return, then "k of n logged steps".
ROW = r"-?[\d.]+ +\d+ +-?[\d.]+ +-?[\d.]+ +[\d.]+ +-?[\d.]+ +\d+ of \d+ logged steps"


STORY_LINES = {  # the story's claims each tutorial prints beside its own run (story.show_committed)
    "02_high_utd.ipynb": 5, "03_momentum.ipynb": 8, "04_regularization.ipynb": 6, "05_ofn.ipynb": 4,
    "06_priming_resets.ipynb": 4,
}


def _check_story_lines(name, text):
    """Tutorials 2-7 print this run's effects ("this run: ...") and the committed story's verdicts on the same claims,
    each verdict the one that story.md reports (the committed report is checked against its runs in test_story)."""
    from minimal_ofn import story

    live = re.findall(r"^  this run: (.+)$", text, re.M)
    assert live or name == "07_at_scale.ipynb", f"{name}: no 'this run' line"
    assert all(("no interval" in line) or re.match(r"(HOLDS|CONTRADICTED|UNRESOLVED) ", line) for line in live), live
    verdicts = re.findall(r"^  (HOLDS|CONTRADICTED|UNRESOLVED) +(.+?): (.+) = (\S+) \[", text, re.M)
    expected = STORY_LINES.get(name, len(story.judged_claims()))
    assert len(verdicts) == expected, f"{name}: {len(verdicts)} story verdicts printed, expected {expected}"
    report = (story.COMMITTED / "story.md").read_text()
    for verdict, paper, measured, _ in verdicts:
        row = next((line for line in report.splitlines() if f"| {paper} | {measured.replace('|', chr(92) + '|')} |"
                    in line), None)
        assert row is not None and row.rstrip(" |").endswith(f"**{verdict}**"), f"{name}: {paper!r} {verdict} vs {row}"


def _check_numbers(name, text, tmp_path):
    """Notebook-specific: the numbers each notebook prints mean what the notebook says they mean."""
    if name != "01_sac_utd1.ipynb":
        _check_story_lines(name, text)
    if name != "01_sac_utd1.ipynb":
        assert "Q > limit at" in text, f"{name}: no overestimation table printed"
    if name == "01_sac_utd1.ipynb":
        alpha = re.search(r"temperature alpha: ([\d.]+) at step \d+\s+->\s+([\d.]+)", text)
        assert alpha, "01: no temperature line printed"
        # The temperature starts at 1 and is learned: it moves (up while the fresh policy, log-std near -4 with this
        # init, is less random than the target -|A|/2; down once it is more random).
        assert float(alpha.group(1)) == 1.0 and float(alpha.group(2)) != 1.0, f"01: temperature {alpha.groups()}"
        assert "tensor([[4.1680, 1.0000]])" in text, "01: the hand-checked soft target is wrong"
    elif name == "02_high_utd.ipynb":
        for utd in (1, 2):
            assert re.search(rf"^UTD {utd} +{ROW}", text, re.M), f"02: no overestimation row for UTD {utd}"
    elif name == "03_momentum.ipynb":
        turns = dict(re.findall(r"beta1 = ([\d.]+): gradient flips at step 50; the weight keeps falling until step (\d+)",
                                text))
        # Without momentum Adam turns the moment the gradient does; with momentum it overshoots.
        assert turns.keys() == {"0.9"} and int(turns["0.9"]) > 50, f"03: momentum's toy line missing: {turns}"
        assert re.search(r"beta1 = 0\.0: gradient flips at step 50; the weight turns at once, with the gradient: "
                         r"no overshoot", text), "03: the toy line without momentum is missing"
        assert re.search(r"^beta1=0\.0: peak Q -?[\d.]+ is -?\d+% of beta1=0\.9's \(-?[\d.]+\): (lower|not lower) in this run",
                         text, re.M), "03: no verdict line"
    elif name == "04_regularization.ipynb":
        for variant in ("dropout+ln", "L2 penalty", "weight decay"):
            assert re.search(rf"^{re.escape(variant)} +peak Q is +[\d.]+% of the baseline's", text, re.M), f"04: no line for {variant}"
    elif name == "05_ofn.ipynb":
        rows = re.findall(r"input x +(\d+): max \|Q\| plain +([\d.]+) +with OFN ([\d.]+) +\(bound \|\|w\|\| \+ \|b\| = ([\d.]+)\)",
                          text)
        assert len(rows) == 5, f"05: bound check printed {len(rows)} rows"
        for scale, plain, normed, bound in rows:
            assert float(normed) <= float(bound) + 1e-6, f"05: OFN critic broke its bound at scale {scale}"
        assert float(rows[-1][1]) > 10 * float(rows[-1][3]), "05: the plain critic should grow far past the bound"
        for variant in CASES[name]["results"]["results"]:
            assert variant in VARIANTS
            assert re.search(rf"^{re.escape(variant)} +{ROW}", text, re.M), f"05: no overestimation row for {variant}"
        for variant in ("baseline", "ofn"):  # the alignment transient's numbers, first and last log
            for which in ("first", "last"):
                assert re.search(rf"^{variant} +{which} log \(step \d+\): cos\(phi, w\) +-?[\d.]+ +std Q +[\d.]+ +"
                                 r"srank +[\d.]+ +centered +[\d.]+ +alpha [\d.]+", text, re.M), f"05: no {which} line"
    elif name == "06_priming_resets.ipynb":
        for variant in ("baseline primed", "ofn primed"):
            assert re.search(rf"^{variant} +Q at the policy's actions after 20 updates: +[-\d.]+;  after 40:", text,
                             re.M), f"06: no priming line for {variant}"
        assert "re-initialized after updates [50, 100, 150, 200]" in text, "06: reset schedule"
    elif name == "07_at_scale.ipynb":
        assert "exit status 0" in text, "07: the command line run failed"
        assert (tmp_path / "runs/07_at_scale/figure_utd2.png").exists(), "07: the command line wrote no figure"
        assert re.search(r"dmc:cheetah-run +[\d.]+ +[\d.]+ +[\d.]+ hours", text), "07: no speed line"
        for variant in ("baseline", "ofn"):
            assert re.search(rf"^  {variant} +per seed \[[-\d., ]+\] +IQM +[-\d.]+", text, re.M), f"07: no IQM for {variant}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_tutorial_runs_small_from_the_bundle(name, tmp_path, bundle):
    case = CASES[name]
    out, text = _execute(name, tmp_path, bundle)
    pngs = sum("image/png" in o.get("data", {}) for c in out.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs >= case["figures"], f"{name}: {pngs} figures drawn, expected at least {case['figures']}"
    report = [line for line in text.splitlines() if line.startswith("@@REPORT@@")]
    assert report, f"{name}: the report cell printed nothing"
    report = json.loads(report[-1][len("@@REPORT@@"):])
    steps = case["params"].get("high_utd_steps", case["params"]["steps"])
    for var, variants in case["results"].items():
        assert list(report[var]) == variants, f"{name}: {var} holds {list(report[var])}, expected {variants}"
        for variant, seeds in report[var].items():
            for run in seeds:
                assert set(METRICS) <= set(run["columns"]), f"{name}: {var}[{variant!r}] lacks columns"
                assert run["steps"][-1] == (steps if var == "results" else case["params"]["steps"]), \
                    f"{name}: {var}[{variant!r}] ended at step {run['steps'][-1]}"
                assert run["q_rollout"] and all(map(math.isfinite, run["q_rollout"])), \
                    f"{name}: {var}[{variant!r}] has no finite Monte Carlo check"
    _check_numbers(name, text, tmp_path)


# ---- what an untrusted JupyterLab shows: each widget output's text/plain fallback
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
BARE_REPRS = ("ToggleButtons(", "Output()", "HBox(", "VBox(", "Button(", "Checkbox(", "SelectionSlider(",
              "IntProgress(", "FloatProgress(", "Dropdown(", "Tab(")


def unfinished_widget_text(nb) -> list[str]:
    """The text fallbacks of widget outputs that read as an unfinished run: a bar short of its total, or a bare repr."""
    bad = []
    for k, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            counts = [(int(n), int(total)) for n, total in re.findall(r"(\d+)/(\d+) \[", text)]
            if "0%|" in text.replace("100%|", "") or any(n < total for n, total in counts) or \
                    any(r in text for r in BARE_REPRS):
                bad.append(f"cell {k}: {text[:80]!r}")
    return bad


def test_the_untrusted_check_flags_what_the_issue_saw():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    view = {"model_id": "x", "version_major": 2, "version_minor": 0}
    for text in ("dmc:cheetah-run utd=1 x1:   0%|          | 0/1500 [00:00<?, ?step/s]",
                 "x: 100%|##| 1400/1500 [00:10<00:01, 2step/s]", "ToggleButtons(description='variant')", "Output()",
                 "x: 100%|##| 1500/1500 [00:10<00:00, 2step/s]", "[variant: ofn is drawn above]"):
        cell.outputs.append(nbformat.v4.new_output("display_data", data={WIDGET_VIEW: view, "text/plain": text}))
    nb.cells.append(cell)
    assert len(unfinished_widget_text(nb)) == 4


@pytest.mark.slow
def test_a_run_executed_headless_reads_as_finished_untrusted(tmp_path):
    """The mechanism, in a small notebook executed the way the tutorials are: train's bars, explorer, show_widget."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "import torch; torch.set_num_threads(1)\n"
        "import matplotlib.pyplot as plt, ipywidgets as widgets\n"
        "from minimal_ofn import preset\nfrom minimal_ofn.experiment import run_variants\n"
        "from minimal_ofn.plots import explorer, plot_metric, show_widget",
        "base = preset('tutorial', env='Pendulum-v1', steps=60, seed_steps=40, hidden=16, batch_size=16, "
        "log_every=20, eval_every=60)\nresults = run_variants(base, {'baseline': {}, 'ofn': {'ofn': True}})",
        "explorer(list(results), lambda v: plot_metric({v: results[v]}, 'eval_return'), 'ofn', 'variant')",
        "show_widget(widgets.HBox([widgets.Button(description='go')]), '[a button]')",
    )]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    widgets_out = [o for c in nb.cells for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    texts = [o["data"]["text/plain"] for o in widgets_out]
    # A finished bar is no widget any more (restored without a kernel, ipywidgets draws it with broken-link icons):
    # its output is the final bar as HTML and text, the same trusted or not.
    bars = [o["data"] for c in nb.cells for o in c.outputs if "<progress" in o.get("data", {}).get("text/html", "")]
    assert not [o for o in widgets_out if "|" in o["data"]["text/plain"]], "a finished bar is still a widget"
    bar_texts = [b["text/plain"] for b in bars]
    assert any("random" in t and "40/40" in t for t in bar_texts) and \
        any("update" in t and "21/21" in t for t in bar_texts), bar_texts
    assert any("ofn is drawn above" in t for t in texts) and "[a button]" in texts
    assert unfinished_widget_text(nb) == []
    assert sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.outputs) >= 1  # the static figure


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_reads_as_a_finished_run_untrusted(name):
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    assert unfinished_widget_text(nb) == [], f"{name}: untrusted, these read as unfinished"
