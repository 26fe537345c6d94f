"""Experiments: variants x seeds x UTD values, stacked into as few lockstep runs as possible.

Runs whose configs agree on config.STACK_FIELDS share one train() call (one stack):
five variants x three seeds at one UTD are a single run of 15 agents. Each run keeps
its own folder, so a grid can be stopped and restarted: finished runs are loaded,
unfinished ones resume from their checkpoint.

    python -m minimal_ofn.experiment --preset tutorial --utd 1 32 --variants baseline ofn resets \\
        --seeds 0 1 2 --steps 4000 --out results
    python -m minimal_ofn.experiment plot results          # figures + table for every UTD in results/

Layout: results/utd<U>/<variant>/seed<k>/{config.json, metrics.csv, checkpoint.pt, summary.json}.
Variant names are those of config.VARIANTS, plus "resets" (full reset every K updates)
and "priming" (K updates on the random seed transitions first); join them with "+",
e.g. "ofn+priming".
"""

import json
import shlex
import sys
from pathlib import Path


from . import config as cfgmod
from . import runs
from .cli import Parser, RunError, add_config_args, add_flag, cli, config_from_args, explain, set_threads
from .config import Config
from .runs import load_metrics

# cluster.py (torch, train.py, the environments) and plots.py (matplotlib) load where they are used: the command line
# parses its flags first, so that a typo or --help answers in a fraction of a second (cli.py).

RESET_EVERY = 32_000  # updates between full resets: every 1,000 env steps at UTD 32 (tutorial scale)
PRIMING_UPDATES = 20_000  # Nikishin et al. use 100k; 20k is what a shared 2-core CPU does in ~10-20 minutes


def variant_changes(name: str, reset_every: int = RESET_EVERY, priming_updates: int = PRIMING_UPDATES) -> dict:
    """The Config changes for a variant name; parts joined by "+" are combined ("ofn+priming")."""
    extra = {"resets": {"reset_every": reset_every, "reset_kind": "full"},
             "priming": {"priming_updates": priming_updates}}
    changes = {}
    for part in [name] if name in cfgmod.VARIANTS else name.split("+"):  # "sgd+momentum" is one arm
        if part in cfgmod.VARIANTS:
            changes.update(cfgmod.VARIANTS[part])
        elif part in extra:
            changes.update(extra[part])
        else:
            known = ", ".join([*cfgmod.VARIANTS, *extra])
            raise RunError(f"unknown variant {part!r}; variants: {known} (join with '+', e.g. ofn+priming)")
    return changes


def __getattr__(name):  # experiment.train is train.train, loaded when first used (the flags are parsed first)
    if name == "train":
        from .train import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- running
def _state(folder: Path, cfg: Config):
    """'done', ('resume', step) or 'fresh' for a run folder (runs.reuse decides whether it may be reused)."""
    state = runs.reuse(folder, cfg)
    if state == "finished":
        return "done"
    return ("resume", runs.checkpoint_step(folder)) if state == "started" else "fresh"


def run_variants(base: Config, variants: dict, seeds=(0,), out=None, progress=True, resume=True,
                 launcher="local", cpus_per_stack=1.0) -> dict:
    """Run every variant x seed; return {variant: [rows of each seed]}.

    variants: {name: Config changes}. Everything that can share a stack runs in ONE
    lockstep train() call. With `out`, run (variant, seed) lives in out/<variant>/seed<k>/:
    finished runs are loaded, unfinished ones resumed (resume=False: refuse to touch them).
    launcher, cpus_per_stack: where the stacks run (cluster.run_stacks)."""
    from .cluster import Stack, run_stacks

    jobs = []
    for name, changes in variants.items():
        for seed in seeds:
            cfg = base.replace(**{**changes, "seed": seed})
            try:
                cfg.validate()
            except ValueError as err:
                raise RunError(f"{name}: {err}") from None
            jobs.append((name, seed, cfg, Path(out) / name / f"seed{seed}" if out is not None else None))
    groups = {}
    for job in jobs:
        groups.setdefault(cfgmod.stack_key(job[2]), []).append(job)
    rows, stacks = {}, []
    for group in groups.values():
        if out is None or not resume:
            batches = [group]
        else:  # one train() call per state: fresh runs together, resumed runs by their checkpoint's step
            batches = {}
            for job in group:
                state = _state(job[3], job[2])
                if state == "done":
                    rows[job[0], job[1]] = load_metrics(job[3])
                else:
                    batches.setdefault(state, []).append(job)
            batches = list(batches.values())
        stacks += [Stack([j[2] for j in batch], [j[3] for j in batch] if out is not None else None,
                         [(j[0], j[1]) for j in batch]) for batch in batches]
    rows.update(run_stacks(stacks, launcher, cpus_per_stack, progress, resume, skipped=len(rows),
                            train_fn=globals().get("train") or __getattr__("train")))
    return {name: [rows[name, seed] for seed in seeds] for name in variants}


def load_results(folder) -> dict:
    """{utd: {variant: [rows per seed]}} from a results folder laid out as utd<U>/<variant>/seed<k>/."""
    out = {}
    for utd_dir in sorted(Path(folder).glob("utd*"), key=lambda p: int(p.name[3:]) if p.name[3:].isdigit() else 0):
        variants = {}
        for vdir in sorted(p for p in utd_dir.iterdir() if p.is_dir()):
            runs = [load_metrics(s) for s in sorted(vdir.glob("seed*")) if (s / "metrics.csv").exists()]
            if runs:
                variants[vdir.name] = runs
        if variants:
            out[int(utd_dir.name[3:])] = variants
    if not out:
        raise RunError(f"no runs found under {folder} (expected {folder}/utd<U>/<variant>/seed<k>/metrics.csv)")
    return out


def failed_runs(utd_dir) -> dict:
    """{variant: {seed: why and where}} for the runs under utd_dir whose summary.json says they failed."""
    out = {}
    for path in sorted(Path(utd_dir).glob("*/seed*/summary.json")):
        failure = json.loads(path.read_text()).get("failed")
        seed = path.parent.name[4:]
        if failure:
            out.setdefault(path.parent.parent.name, {})[int(seed) if seed.isdigit() else seed] = failure
    return out


def plot_results(folder) -> list[Path]:
    """One story figure and one table per UTD (for a single train run's folder: its figure and table); returns the
    files written."""
    import matplotlib.pyplot as plt

    from .plots import story_figure, summary_table

    written = []
    if (Path(folder) / "metrics.csv").exists():  # one run of python -m minimal_ofn.train
        return _plot_run(Path(folder))
    for utd, results in load_results(folder).items():
        fig = story_figure(results)
        fig.suptitle(f"UTD {utd}")
        fig.savefig(Path(folder) / f"figure_utd{utd}.png", dpi=120)
        plt.close(fig)
        table = Path(folder) / f"table_utd{utd}.txt"
        text = summary_table(results, failed_runs(Path(folder) / f"utd{utd}"))
        table.write_text(text + "\n")
        print(f"UTD {utd}\n{text}\n")
        written += [Path(folder) / f"figure_utd{utd}.png", table]
    return written


def _plot_run(folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from .plots import story_figure, summary_table

    saved = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    results = {folder.name: [load_metrics(folder)]}
    fig = story_figure(results)
    fig.suptitle(f"{folder.name}: {saved.get('env', '?')}, UTD {saved.get('utd', '?')}")
    fig.savefig(folder / "figure.png", dpi=120)
    plt.close(fig)
    summary = folder / "summary.json"
    failure = json.loads(summary.read_text()).get("failed") if summary.exists() else None
    text = summary_table(results, {folder.name: {0: failure}} if failure else {})
    (folder / "table.txt").write_text(text + "\n")
    print(text + "\n")
    return [folder / "figure.png", folder / "table.txt"]


# ---- command line
GRID_FLAGS = ("utd", "reset_every", "priming_updates")  # Config fields the experiment command sets per grid


def _run_main(argv):
    parser = Parser(prog="python -m minimal_ofn.experiment",
                    description="Run variants x seeds x UTD values (also: 'plot RESULTS').")
    # These three are per-grid here, not one Config value: --utd takes a list, and the reset and
    # priming settings belong to the 'resets' / 'priming' variants only.
    add_config_args(parser, skip=GRID_FLAGS)
    parser.add_argument("--utd", type=int, nargs="+", default=[32], help="UTD values, one run each (default: 32)")
    parser.add_argument("--variants", nargs="+", default=["baseline", "ofn"],
                        help=f"names from {', '.join(cfgmod.VARIANTS)}, resets, priming; '+' combines "
                             "(default: baseline ofn)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every variant (default: 0)")
    add_flag(parser, "reset_every", type=int, default=RESET_EVERY,
             help=f"gradient updates between full resets, in the 'resets' variants only (default: {RESET_EVERY})")
    add_flag(parser, "priming_updates", type=int, default=PRIMING_UPDATES,
             help=f"updates on the random transitions, in the 'priming' variants only (default: {PRIMING_UPDATES})")
    parser.add_argument("--out", required=True, help="results folder: OUT/utd<U>/<variant>/seed<k>/")
    parser.add_argument("--threads", type=int, help="torch threads (1 is far faster when the CPU is shared)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--launcher", choices=("local", "ray"), default="local",  # cluster.LAUNCHERS
                        help="where the stacks run: here in turn (local), or as Ray tasks (ray; RAY_ADDRESS: a cluster)")
    parser.add_argument("--cpus-per-stack", type=float, default=1.0, help="CPUs a Ray task reserves (default 1)")
    parser.add_argument("--plan", action="store_true", help="print agent-updates, replay memory, checkpoint disk and "
                        "an estimated time (measured here for a moment) for this grid, and run nothing (plan.py)")
    args = parser.parse_args(argv)

    def run():
        from .cluster import StacksFailed

        set_threads(args.threads)
        if args.seed is not None:
            raise RunError("experiments take --seeds (one or more), not --seed")
        base = config_from_args(args, skip=GRID_FLAGS)
        variants = {v: variant_changes(v, args.reset_every, args.priming_updates) for v in args.variants}
        utds = args.utd
        for u in utds:  # check the whole grid before running any of it
            for name, changes in variants.items():
                try:
                    base.replace(utd=u, **changes).validate()
                except ValueError as err:
                    raise RunError(f"{name} at utd {u}: {explain(err, base.replace(utd=u, **changes), args)}") from None
        if args.plan:
            from .plan import print_plan

            return print_plan([base.replace(utd=u, **changes, seed=seed) for u in utds
                               for changes in variants.values() for seed in args.seeds])
        runs.check_folder(Path(args.out))  # a folder that cannot be made: one line, before anything runs
        failed = []
        for u in utds:
            try:
                run_variants(base.replace(utd=u), variants, args.seeds, Path(args.out) / f"utd{u}", not args.no_progress,
                             launcher=args.launcher, cpus_per_stack=args.cpus_per_stack)
            except StacksFailed as err:  # the other UTD values still run
                failed.append(str(err))
        if failed:
            raise StacksFailed(" ".join(failed))
        for path in plot_results(args.out):
            print(f"wrote {path}")

    # A grid resumes what its folders hold: the same command continues it.
    cli(run, resume_command=shlex.join(["python", "-m", "minimal_ofn.experiment", *argv]))


def _plot_main(argv):
    parser = Parser(prog="python -m minimal_ofn.experiment plot", description="Figures and tables of a results folder, "
                    "or of one run's folder.")
    parser.add_argument("results", help="a folder written by python -m minimal_ofn.experiment --out, or the --out "
                        "folder of one python -m minimal_ofn.train run")
    args = parser.parse_args(argv)

    def run():
        for path in plot_results(args.results):
            print(f"wrote {path}")

    cli(run)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "plot":
        _plot_main(argv[1:])
    else:
        _run_main(argv)


if __name__ == "__main__":
    main()
