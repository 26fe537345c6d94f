"""The files of one run folder, and the one rule that decides whether a folder may be reused.

    OUT/config.json      the Config, written when the run starts
    OUT/metrics.csv      one row per log interval (columns: METRICS), rewritten with each checkpoint
    OUT/checkpoint.pt    everything needed to continue (checkpoints.py), written atomically
    OUT/summary.json     written when the run reaches its last step: the run is finished

`train --resume` and `experiment` both ask `reuse(folder, cfg)`: a folder holding a run may be
continued (or, when finished, read back) only by the same experiment.
"""

import csv
import json
import math
import os
import shutil
from pathlib import Path

from .cli import RunError
from .config import Config

METRICS = [
    "step", "updates", "wall_time", "episode_return", "eval_return", "critic_loss", "actor_loss", "temperature",
    "q_policy", "q_replay", "q_ood", "q_rollout", "mc_return", "q_over_mc", "max_reward", "q_bound",
    "feature_norm", "head_weight_norm", "srank", "adam_m_mean", "adam_m_max", "adam_v_mean", "adam_v_max",
    "grad_norm", "mc_soft_return", "cos_phi_w", "q_spread", "srank_centered", "policy_entropy",
]

# Settings that change neither what the agents learn nor their random streams (speed, bookkeeping,
# how often metrics are written): a run may be continued or read back with other values.
MAY_DIFFER = {"device", "compile", "log_every", "eval_every", "eval_episodes", "mc_every", "checkpoint_every",
              "env_workers", "checkpoint_replay"}


def committed_story() -> Path:
    """The committed story's folder (protocol.json, runs/, story.md): the repository's docs/story, or, in an
    installed wheel, the copy of it that the student bundle's build puts inside the package (course/release.py)."""
    package = Path(__file__).resolve().parent
    packaged = package / STORY_DATA
    return packaged if packaged.is_dir() else package.parent / "docs" / "story"


STORY_DATA = "story_committed"  # minimal_ofn/<this> in a wheel built by course/release.py


def atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: (float(v) if v not in ("", None) else float("nan")) for k, v in row.items()}
                for row in csv.DictReader(f)]
    for row in rows:
        row["step"], row["updates"] = int(row["step"]), int(row["updates"])
    return rows


def write_metrics(path: Path, rows: list[dict]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
            w.writeheader()
            for row in rows:
                w.writerow({k: ("" if isinstance(row.get(k), float) and math.isnan(row[k]) else row.get(k, ""))
                            for k in METRICS})

    atomic_write(path, write)


def load_metrics(out_dir) -> list[dict]:
    """The metrics rows of a run folder, numbers as floats (NaN where a column had no value)."""
    return _read_metrics(Path(out_dir) / "metrics.csv")


def status(folder: Path) -> str:
    """'finished' (summary.json), 'started' (a checkpoint) or 'empty' (no run to continue)."""
    if (folder / "summary.json").exists():
        return "finished"
    return "started" if (folder / "checkpoint.pt").exists() else "empty"


def checkpoint_step(folder: Path) -> int:
    import torch  # here, not at the top: the command line parses its flags before torch loads (cli.py)

    return torch.load(folder / "checkpoint.pt", weights_only=False, map_location="cpu")["shared"]["t"]


def reuse(folder: Path, cfg: Config) -> str:
    """status(folder), after refusing a folder whose run is another experiment than cfg.

    Every setting outside MAY_DIFFER must match the saved config.json; a field the saved run
    predates must hold its default."""
    state = status(folder)
    if state == "empty":
        return state
    saved = json.loads((folder / "config.json").read_text())
    wanted, defaults = (json.loads(json.dumps(c.to_dict())) for c in (cfg, Config()))
    differ = [f"{k} (saved {saved.get(k, defaults[k])!r}, given {v!r})" for k, v in wanted.items()
              if k not in MAY_DIFFER and saved.get(k, defaults[k]) != v]
    if differ:
        raise RunError(f"cannot reuse the {'finished' if state == 'finished' else 'unfinished'} run in {folder}: "
                       f"another config: {'; '.join(differ[:3])}{'; ...' if len(differ) > 3 else ''}. "
                       "Use another folder")
    return state


def prepare(out: Path, cfg: Config, resume: bool, overwrite: bool) -> str:
    """'fresh', 'resume' or 'done' for this folder, refusing to clobber anything by accident.

    Without resume or overwrite, a folder holding a run is refused; with resume, one that is
    empty starts fresh (experiment grids pass resume=True for every run)."""
    state = status(out)
    if overwrite and out.exists():
        shutil.rmtree(out)
    elif resume:
        state = reuse(out, cfg)  # a finished run is checked too: its metrics become the answer for cfg
        if state != "empty":
            return "done" if state == "finished" else "resume"
    elif state == "finished":
        raise RunError(f"{out} already holds a finished run: pass --resume to keep it or --overwrite to replace it")
    elif state == "started":
        raise RunError(f"{out} holds an unfinished run: pass --resume to continue it or --overwrite to start over")
    make_folder(out)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return "fresh"


def check_folder(folder: Path) -> None:
    """The RunError make_folder would raise for what stands in the way (a file, a folder not writable), found
    without making anything (a grid checks its --out before it runs)."""
    there = Path(folder).absolute()
    while not there.exists():
        there = there.parent
    if not there.is_dir() or not os.access(there, os.W_OK | os.X_OK):
        why = "is a file" if not there.is_dir() else "is not writable"
        raise RunError(f"cannot create the output folder {folder}: {there} {why}")


def make_folder(folder: Path) -> None:
    """mkdir -p, or the one-line RunError that says why the folder cannot be made (a file in the way, no permission)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the output folder {folder}: {err.strerror or err}"
                       f"{f' ({err.filename})' if err.filename and str(err.filename) != str(folder) else ''}") from None
