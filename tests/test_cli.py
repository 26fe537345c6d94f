"""The command lines as users meet them: one flag style, help lines, one-line errors, Ctrl-C, run folders."""

import json
import subprocess
import sys

import pytest
import torch

from minimal_ofn import cli as cli_mod
from minimal_ofn import experiment, lockstep as lockstep_mod, story, train as train_mod
from minimal_ofn.config import Config, field_help

# The underscore spellings (aliases now): the same flags the command took before dashes.
TINY = ["--env", "Pendulum-v1", "--steps", "60", "--seed_steps", "40", "--batch_size", "16", "--hidden", "16",
        "--log_every", "20", "--eval_every", "60", "--checkpoint_every", "20", "--no-progress"]


def _fails_in_one_line(main, argv, capsys, code=2):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == code and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_config_flags_use_dashes_and_the_underscore_spelling_is_an_alias():
    parser = cli_mod.Parser(prog="p")
    cli_mod.add_config_args(parser)
    dashed = parser.parse_args(["--seed-steps", "7", "--batch-size", "8", "--ofn", "--critic-layer-norm", "false"])
    old = parser.parse_args(["--seed_steps", "7", "--batch_size", "8", "--ofn", "true"])
    assert (dashed.seed_steps, dashed.batch_size, dashed.ofn, dashed.critic_layer_norm) == (7, 8, True, False)
    assert (old.seed_steps, old.batch_size, old.ofn) == (7, 8, True)
    help_text = parser.format_help()
    assert "--seed-steps" in help_text and "--seed_steps" not in help_text  # the alias works but is not listed


def test_every_config_flag_has_the_help_line_of_its_field_comment(capsys):
    helps = field_help()
    assert helps["seed_steps"] == "uniformly random actions before learning starts"
    assert helps["tau"] == "Polyak rate of the target critic"
    assert helps["compile"].startswith("\"update\": the whole SAC update as one compiled graph")  # the lines above it
    assert all(helps[name] for name in Config.__dataclass_fields__), [k for k, v in helps.items() if not v]
    with pytest.raises(SystemExit):
        train_mod.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("seed_steps", "tau", "critic_beta1", "reset_kind"):
        assert " ".join(helps[name].split()) in text, name
    assert "uniformly random actions before learning starts (default: 5000)" in text


def test_help_with_a_preset_shows_the_presets_defaults(capsys):
    for argv in (["--help", "--preset", "tutorial"], ["--preset", "tutorial", "--help"]):
        with pytest.raises(SystemExit):
            train_mod.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: 1000, preset tutorial)" in text and "(default: 2000, preset tutorial)" in text  # seed_steps, steps
        assert "Polyak rate of the target critic (default: 0.005)" in text  # a field the preset leaves alone


def test_experiment_and_story_take_dashed_flags_with_underscore_aliases(capsys):
    for main, argv in ((experiment.main, ["--help"]), (story.main, ["--help"])):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "--seed-steps" in text and "--priming-updates" in text and "_" not in "".join(
            w for w in text.split() if w.startswith("--"))


def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _fails_in_one_line(train_mod.main, [*TINY, "--device", "cuda", "--out", str(tmp_path / "r")], capsys)
    assert "CUDA is not available" in err and "--device cpu" in err
    err = _fails_in_one_line(train_mod.main, [*TINY, "--device", "tpu", "--out", str(tmp_path / "r")], capsys)
    assert "device must be" in err
    assert not (tmp_path / "r").exists()


def test_train_takes_threads_and_refuses_zero_in_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n))
    seen = []
    err = _fails_in_one_line(train_mod.main, [*TINY, "--threads", "0", "--out", str(tmp_path / "r")], capsys)
    assert "--threads must be >= 1" in err and not (tmp_path / "r").exists() and seen == []
    train_mod.main([*TINY, "--threads", "1", "--no-progress", "--out", str(tmp_path / "ok")])
    assert seen == [1] and (tmp_path / "ok" / "summary.json").exists()


def test_resume_on_a_folder_without_a_run_is_a_one_line_error(tmp_path, capsys):
    for folder in (tmp_path / "missing", tmp_path):  # absent, and present but holding no run
        err = _fails_in_one_line(train_mod.main, [*TINY, "--out", str(folder), "--resume"], capsys)
        assert "holds no run" in err
    assert not (tmp_path / "missing").exists() and list(tmp_path.iterdir()) == []


def test_ctrl_c_names_the_checkpointed_step_and_the_command_that_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    real = lockstep_mod.Lockstep.env_step

    def interrupted_at_50(self):  # an interrupt that no handler defers (a second Ctrl-C): the last checkpoint stays
        if self.t == 50:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(lockstep_mod.Lockstep, "env_step", interrupted_at_50)
    with pytest.raises(SystemExit) as exit_:
        train_mod.main([*TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 130 and err.startswith("\n") and len(err.strip().splitlines()) == 1, err
    command = f"python -m minimal_ofn.train --out {out} --resume"
    assert f"interrupted at step 50: the checkpoint in {out} holds step 40; resume with: {command}" in err
    monkeypatch.setattr(lockstep_mod.Lockstep, "env_step", real)
    train_mod.main(command.split()[3:] + ["--no-progress"])  # the printed command does resume it
    assert json.loads((out / "summary.json").read_text())["step"] == 60


def _without_wall_time(rows):  # NaN as None, so that equal rows compare equal
    return [{k: None if v != v else v for k, v in r.items() if k != "wall_time"} for r in rows]


def test_ctrl_c_saves_the_step_it_stops_at_and_the_resumed_run_equals_one_never_stopped(tmp_path, capsys, monkeypatch):
    """A real SIGINT between logs and checkpoints: the step finishes, is saved, and --resume loses nothing."""
    import signal

    # train takes Ctrl-C over only from Python's default handler; another test in this worker process may have left
    # its own (a local Ray cluster installs one), so start from the default and put back whatever was there.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_run(tmp_path, capsys, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_run(tmp_path, capsys, monkeypatch):
    import signal

    cfg = Config(env="Pendulum-v1", steps=60, seed_steps=30, batch_size=16, hidden=16, log_every=20, eval_every=60,
                 checkpoint_every=1000, utd=2)
    whole = train_mod.train(cfg, [tmp_path / "whole"], progress=False)[0]
    real = lockstep_mod.Lockstep.env_step

    def ctrl_c_at_45(self):
        if self.t == 45:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C does: the handler asks the loop to stop
        real(self)

    monkeypatch.setattr(lockstep_mod.Lockstep, "env_step", ctrl_c_at_45)
    with pytest.raises(cli_mod.Interrupted) as stop:
        train_mod.train(cfg, [tmp_path / "r"], progress=False)
    assert stop.value.step == stop.value.saved_step == 46  # the step under way was finished, then saved
    assert "holds step 46" in stop.value.describe()
    monkeypatch.setattr(lockstep_mod.Lockstep, "env_step", real)
    capsys.readouterr()
    resumed = train_mod.train(cfg, [tmp_path / "r"], resume=True)[0]
    assert "resuming " + str(tmp_path / "r") + " from its checkpoint at step 46 of 60 (34 updates done)" in \
        capsys.readouterr().out
    assert _without_wall_time(resumed) == _without_wall_time(whole)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_the_update_bar_counts_what_summary_json_counts_and_summary_is_strict_json(tmp_path, monkeypatch):
    bars = []
    real = train_mod.bar

    def recorded(*args, **kwargs):
        bars.append(real(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(train_mod, "bar", recorded)
    cfg = Config(env="Pendulum-v1", steps=50, seed_steps=30, batch_size=16, hidden=16, log_every=10, eval_every=50,
                 utd=3, priming_updates=5)
    train_mod.train(cfg, [tmp_path / "r"])
    text = (tmp_path / "r" / "summary.json").read_text()

    def no_nan(name):
        raise AssertionError(f"summary.json holds {name}")

    summary = json.loads(text, parse_constant=no_nan)
    assert summary["episode_return"] is None  # no 200-step Pendulum episode ended in 50 steps
    learning = [b for b in bars if b.unit == "update" and "priming" not in b.desc]
    assert [(b.n, b.total) for b in learning] == [(63, 63)]  # utd 3 after each of steps 30..50
    assert summary["updates"] == cfg.planned_updates() == 63 + 5  # priming's 5 updates have their own bar
    assert [(b.n, b.total) for b in bars if b.unit == "step"] == [(30, 30)]


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("in the way")
    err = _fails_in_one_line(train_mod.main, [*TINY, "--out", str(tmp_path / "file" / "run")], capsys)
    assert err.startswith("error: cannot create the output folder") and str(tmp_path / "file") in err
    err = _fails_in_one_line(experiment.main, [*TINY, "--out", str(tmp_path / "file" / "grid")], capsys)
    assert err.startswith("error: cannot create the output folder")


def test_a_bad_value_no_flag_gave_says_where_it_came_from(tmp_path, capsys):
    err = _fails_in_one_line(train_mod.main, ["--steps", "500", "--out", str(tmp_path / "r")], capsys)
    assert "got 5000 (seed_steps 5000 is the default: set --seed-steps)" in err
    err = _fails_in_one_line(train_mod.main, ["--preset", "tutorial", "--steps", "500", "--out", str(tmp_path / "r")],
                             capsys)
    assert "(seed_steps 1000 is preset tutorial's: set --seed-steps)" in err
    err = _fails_in_one_line(experiment.main, ["--steps", "500", "--out", str(tmp_path / "g")], capsys)
    assert "seed_steps 5000 is the default" in err
    assert not list(tmp_path.iterdir())


def test_a_bad_flag_is_answered_before_torch_loads():
    """The mechanism behind the speed (bench --cli times it): the flags are parsed before the heavy imports."""
    for argv in (["-m", "minimal_ofn.train", "--no-such-flag"], ["-m", "minimal_ofn.train", "--help"],
                 ["-m", "minimal_ofn.experiment", "--no-such-flag"], ["-m", "minimal_ofn.experiment", "--help"]):
        done = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True)
        assert done.returncode in (0, 2) and ("error:" in done.stderr or "--seed-steps" in done.stdout)
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
        assert "minimal_ofn.cli" in imported and not {"torch", "gymnasium", "numpy"} & imported, sorted(imported)


def test_one_rule_decides_whether_a_run_folder_may_be_reused(tmp_path):
    """train --resume and experiment ask the same question and get the same answer."""
    cfg = Config(env="Pendulum-v1", steps=60, seed_steps=40, batch_size=16, hidden=16, log_every=20, eval_every=60)
    folder = tmp_path / "baseline" / "seed0"
    train_mod.train(cfg, [folder], progress=False)
    for other in (cfg.replace(gamma=0.9), cfg.replace(critic_beta1=0.0)):
        with pytest.raises(train_mod.RunError, match="another config") as by_train:
            train_mod.train(other, [folder], resume=True, progress=False)
        with pytest.raises(train_mod.RunError, match="another config") as by_experiment:
            experiment.run_variants(other, {"baseline": {}}, seeds=(0,), out=tmp_path, progress=False)
        assert str(by_train.value) == str(by_experiment.value)
    for same in (cfg.replace(log_every=10), cfg.replace(compile="update"), cfg.replace(checkpoint_every=7)):
        assert train_mod.train(same, [folder], resume=True, progress=False)[0][-1]["step"] == 60
        assert experiment.run_variants(same, {"baseline": {}}, seeds=(0,), out=tmp_path, progress=False)


def test_subprocesses_run_this_checkout():
    code = "import minimal_ofn.cli, sys; print(minimal_ofn.cli.__file__)"
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert where == cli_mod.__file__


def test_experiment_plot_draws_a_single_train_run(tmp_path, capsys):
    train_mod.main([*TINY, "--out", str(tmp_path / "run")])
    experiment.main(["plot", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert (tmp_path / "run" / "figure.png").stat().st_size > 0 and "run " in (tmp_path / "run" / "table.txt").read_text()
    assert f"wrote {tmp_path / 'run' / 'figure.png'}" in out
