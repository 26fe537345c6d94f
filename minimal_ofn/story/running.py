"""Running the story's three parts, resumably: finished runs are loaded, unfinished ones resumed or redone.

Each part is split into stacks (one lockstep run of many agents each, lockstep.Lockstep); `run` gives them to
`jobs` worker processes of one thread each, longest first, so that two workers finish together.
"""

import concurrent.futures
import json
import multiprocessing
import time
from pathlib import Path

import torch

from .. import fixed_buffer
from ..config import Config
from ..experiment import run_variants
from ..runs import load_metrics, write_metrics
from .protocol import (ONLINE_ARMS, ONLINE_UTD1_ARMS, TEMPERATURES, Protocol, dissection_arms, online_base,
                       online_folder, optimizer_resets, priming_arms, priming_base)


def _save_dissection(folder: Path, cfg: Config, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    write_metrics(folder / "metrics.csv", rows)
    (folder / "summary.json").write_text(json.dumps({"updates": rows[-1]["updates"] if rows else 0}) + "\n")


def run_part(task: tuple, p: Protocol, out: Path, progress: bool) -> str:
    """One of the story's stacks of runs; returns a line for the log. Runs in a worker process."""
    torch.set_num_threads(1)  # the story runs two of these side by side on two cores
    start = time.time()
    part, which = task
    label = (("narrow buffer" if which[0] == "narrow" else f"{which[0]}, arms {'first' if which[1] == 0 else 'second'}"
              " half") if part == "dissection" else which)
    if part == "dissection":
        which, half = which  # a temperature's arms are split into two stacks, so that two cores share them
        configs, parts = dissection_arms(p, which), 1 if which == "narrow" else 2
        names = list(configs)
        configs = {arm: configs[arm] for arm in names[half * len(names) // parts:(half + 1) * len(names) // parts]}
        folders = {(arm, c.seed): out / "dissection" / which / arm / f"seed{c.seed}"
                   for arm, cs in configs.items() for c in cs}
        todo = [(arm, c) for arm, cs in configs.items() for c in cs
                if not (folders[arm, c.seed] / "summary.json").exists()]
        if todo:  # an interrupted stack goes on from its last checkpoint (every Monte Carlo log)
            checkpoint = out / "dissection" / which / f"stack{half}.pt"
            rows = fixed_buffer.run([c for _, c in todo], p.dissect_updates, p.dissect_log_every, progress,
                                    p.dissect_mc_every, checkpoint,
                                    optimizer_resets=[optimizer_resets(p, arm) for arm, _ in todo],
                                    behaviour_std=p.narrow_std if which == "narrow" else None)
            for (arm, c), r in zip(todo, rows):
                _save_dissection(folders[arm, c.seed], c, r)
            checkpoint.unlink(missing_ok=True)
        for (arm, seed), folder in folders.items():
            if json.loads((folder / "config.json").read_text()) != json.loads(json.dumps(
                    next(c for c in configs[arm] if c.seed == seed).to_dict())):
                raise ValueError(f"{folder} holds a dissection run with other settings; use another --out")
            load_metrics(folder)
    elif part == "online":
        arms = ONLINE_ARMS if which == p.utd else {k: ONLINE_ARMS[k] for k in ONLINE_UTD1_ARMS}
        run_variants(online_base(p, which), arms, p.seeds, out / "online" / online_folder(p, which), progress)
    else:
        run_variants(priming_base(p), priming_arms(p), p.seeds, out / "priming", progress)
    return f"{part} {label}: {time.time() - start:.0f} s"


def tasks(p: Protocol) -> list[tuple]:
    """The story's stacks, longest first (two workers finish together when the long ones start first).

    A temperature's second half of arms (the regularizers: dropout, LayerNorm, OFN) costs about twice its first."""
    return [("priming", None), ("online", p.utd), *[("dissection", (t, h)) for h in (1, 0) for t in TEMPERATURES],
            ("online", "1x"), ("dissection", ("narrow", 0)), ("online", 1)]


def run(p: Protocol = Protocol(), out="docs/story", jobs: int = 2, progress: bool = True) -> list[str]:
    """Run (or finish) every stack of the story, `jobs` at a time in worker processes of one thread each."""
    runs, start = Path(out) / "runs", time.time()
    if jobs <= 1:
        lines = [run_part(t, p, runs, progress) for t in tasks(p)]
    else:
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(run_part, t, p, runs, False) for t in tasks(p)]
            lines = []
            for f in concurrent.futures.as_completed(futures):
                lines.append(f.result())
                if progress:
                    print(lines[-1], flush=True)
    # The story keeps what it reports (config, metrics, summary), not a checkpoint per finished run.
    for ckpt in runs.glob("**/checkpoint.pt"):
        if (ckpt.parent / "summary.json").exists():
            ckpt.unlink()
    return [*lines, f"the whole story: {time.time() - start:.0f} s on {max(jobs, 1)} worker(s)"]
