"""The demo: runs end to end, writes its figure, prints verdicts that follow its numbers, agrees with the story,
and rejects bad input in one line."""

import math
import re
from pathlib import Path

import pytest

from minimal_ofn import demo, stats
from minimal_ofn.runs import METRICS

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end_and_writes_its_figure(tmp_path, capsys):
    out = tmp_path / "demo.png"
    demo.main(["--updates", "60", "--seed-steps", "100", "--hidden", "16", "--batch-size", "16",
               "--arms", "adam", "critic_beta1=0", "ofn", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    arms = [line.split()[0] for line in printed.splitlines() if re.match(r"^\S+\s+\d+\s+[-\d.e+]+\s", line)]
    assert arms == ["adam"] * 3 + ["critic_beta1=0"] * 3 + ["ofn"] * 3
    verdict_lines = [line for line in printed.splitlines() if line.split()[:1] in ([stats.HOLDS], [stats.CONTRADICTED],
                                                                                  [stats.UNRESOLVED])]
    assert [line.split(None, 1)[1].split(":")[0] for line in verdict_lines] == [
        "Adam's Q diverges on seen actions", "... and on unseen actions", "critic_beta1=0 lowers the peak",
        "OFN stops the divergence"]
    assert str(out) in printed


def _runs(peaks, bound_reward=0.1, alpha=0.01):
    """One run per peak: |Q| rises to `peak` on D's and on uniform actions; B = (0.1 + 0.01 * 6 log 2) / 0.01."""
    out = []
    for s, peak in enumerate(peaks):
        rows = []
        for k, q in enumerate((1.0, peak / 2, peak)):
            row = {m: math.nan for m in METRICS}
            row.update(step=1000, updates=100 * (k + 1), q_replay=q, q_ood=-q, max_reward=bound_reward,
                       temperature=alpha, seed=s)
            rows.append(row)
        out.append(rows)
    return out


def test_the_verdicts_follow_the_numbers():
    b = (0.1 + 0.01 * 6 * math.log(2)) / 0.01  # 14.2
    world = {"adam": _runs([b * 100, b * 30, b * 300]), "sgd": _runs([b * 90, b * 40, b * 250]),
             "ofn": _runs([b / 5, b / 4, b / 6])}
    judged = {j["claim"]: j for j in demo.verdicts(world, act_dim=6, reps=300)}
    assert judged["Adam's Q diverges on seen actions"]["verdict"] == stats.HOLDS
    assert judged["Adam's Q diverges on seen actions"]["effect"] == pytest.approx(  # IQM of 3 = their mean
        (2 + math.log10(30) + math.log10(300)) / 3)
    assert judged["... and on unseen actions"]["verdict"] == stats.HOLDS  # |Q|: a negative blow-up is one too
    assert judged["sgd lowers the peak"]["verdict"] == stats.UNRESOLVED
    assert judged["OFN stops the divergence"]["verdict"] == stats.HOLDS
    text = demo.explain(list(judged.values()))
    assert "HOLDS         OFN stops the divergence: log10 peak |Q|, adam minus ofn = " in text

    calm = {"adam": _runs([b / 3, b / 2, b / 4]), "ofn": _runs([b * 10, b * 20, b * 30])}
    judged = {j["claim"]: j["verdict"] for j in demo.verdicts(calm, act_dim=6, reps=300)}
    assert judged["Adam's Q diverges on seen actions"] == judged["OFN stops the divergence"] == stats.CONTRADICTED


def _verdict_lines(text):
    return {m.group(2).strip(): m.group(1) for m in re.finditer(r"^(HOLDS|CONTRADICTED|UNRESOLVED) +([^:]+):", text,
                                                                   re.MULTILINE)}


def test_the_readmes_demo_output_agrees_with_the_story():
    """The demo's committed output (README) and the story's report (docs/story/story.md) give the same verdicts
    on the claims they share: Adam's divergence on seen and unseen actions and OFN's stopping it, alpha fixed."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- demo output -->")[1]
    printed = _verdict_lines(block)
    story = (ROOT / "docs" / "story" / "story.md").read_text()

    def story_verdict(paper, measured_start):
        row = next(line for line in story.splitlines() if f"| {paper} | {measured_start}" in line
                   and "alpha fixed" in line)
        return row.rstrip(" |").rsplit("**", 2)[-2]

    assert printed["Adam's Q diverges on seen actions"] == story_verdict(
        "Q diverges on seen actions (fixed early buffer)", "log10(peak")
    assert printed["... and on unseen actions"] == story_verdict("... and on unseen actions", "log10(peak")
    assert printed["OFN stops the divergence"] == story_verdict("OFN stops the divergence (fixed buffer)", "log10")


@pytest.mark.parametrize("argv, match", [
    (["--arms", "ofn", "adam"], "must start with adam"),
    (["--arms", "adam", "dropout", "resnet"], "unknown arm 'resnet'"),
    (["--seeds", "0", "1"], "at least 3 different seeds"),
    (["--updates", "0"], "--updates must be >= 1"),
    (["--updates", "x"], "invalid int value"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--hidden", "0"], "must be positive"),
    (["--env", "dmc:nope-nope"], "nope"),
])
def test_bad_input_is_one_line(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        demo.main([*argv, "--out", str(tmp_path / "d.png")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not (tmp_path / "d.png").exists()
