"""The demo: runs end to end, writes its figure, explains what it measured, rejects bad input."""

import math

import pytest

from minimal_ofn import demo
from minimal_ofn.train import METRICS


@pytest.mark.slow  # ~10 s idle, ~30 s on a busy CPU: Monte Carlo rollouts are 1000-step cheetah episodes
def test_demo_runs_end_to_end_and_writes_its_figure(tmp_path, capsys):
    out = tmp_path / "demo.png"
    demo.main(["--steps", "130", "--seed-steps", "100", "--utd", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    table = [line.split()[0] for line in printed.splitlines() if line.split()[:1] in (["baseline"], ["beta1=0"],
                                                                                    ["ofn"])]
    assert table == ["baseline", "beta1=0", "ofn"]
    assert "Turning off Adam's momentum (beta1=0)" in printed and str(out) in printed


def _rows(q, mc=5.0, ret=10.0, temperature=0.01):
    out = []
    for s in (1000, 1100, 1200):
        row = {k: math.nan for k in METRICS}
        row.update(step=s, q_rollout=q, mc_return=mc, q_bound=50.0, temperature=temperature, eval_return=ret,
                   mc_soft_return=20.0)
        out.append(row)
    return out


def test_the_explanation_follows_the_numbers():
    blown = {"baseline": [_rows(500.0)], "beta1=0": [_rows(250.0)], "ofn": [_rows(6.0, ret=30.0)]}
    text = demo.explain(blown, 32, act_dim=6)
    assert "peaked at 500.0 (480.0 above its soft Monte Carlo return" in text
    assert "more than any policy could collect" in text and "x its" not in text  # no Q / MC ratio in the verdicts
    assert "OFN's peak was 6.0 (14.0 below its soft Monte Carlo return), which SAC's entropy bonus (up to 4" in text
    assert "lowered the peak Q by 50%" in text and "ofn never put Q beyond what its returns" in text
    assert "return (30.0)" in text
    half = {**blown, "ofn": [_rows(60.0, ret=30.0)]}
    assert "ofn overestimated least (peak Q beyond its returns and entropy bonus: 50.8)" in demo.explain(half, 32, 6)

    calm = {"baseline": [_rows(6.0, ret=40.0)], "beta1=0": [_rows(9.0)], "ofn": [_rows(7.0)]}
    text = demo.explain(calm, 32, act_dim=6)
    assert "no blow-up showed" in text and "raised the peak Q by 50%" in text
    assert "baseline earned the highest" in text

    entropy = {"baseline": [_rows(200.0, temperature=1.0)], "beta1=0": [_rows(9.0)], "ofn": [_rows(90.0)]}
    text = demo.explain(entropy, 32, act_dim=6)
    assert "baseline and beta1=0 never put Q beyond what their returns and entropy bonus allow" in text
    assert "entropy bonus could account for up to 416" in text
    assert "OFN's peak was 90.0 (70.0 above its soft Monte Carlo return), also more" in text


@pytest.mark.parametrize("argv, match", [
    (["--steps", "500"], "must exceed --seed-steps"),
    (["--utd", "0", "--steps", "1010"], "utd must be"),
    (["--utd", "x"], "invalid int value"),
    (["--threads", "0", "--steps", "1010"], "--threads must be >= 1"),
    (["--hidden", "0", "--steps", "1010"], "must be positive"),
])
def test_bad_input_is_one_line(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        demo.main([*argv, "--out", str(tmp_path / "d.png")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not (tmp_path / "d.png").exists()
