"""The story's command line: run every part (resumably) and write the report, or judge the finished runs again.

    python -m minimal_ofn.story --out docs/story                  # run, then write docs/story/story.md
    python -m minimal_ofn.story --out docs/story --report-only    # judge the runs there again; run nothing
"""

import dataclasses
import json
import sys
from pathlib import Path

from .. import config as cfgmod
from .. import stats
from ..cli import Parser, cli
from ..config import field_help
from ..envs import DMC_PREFIX
from .claims import claim_scores, judge
from .committed import act_dims, load
from .figures import figures
from .protocol import Protocol
from .report import arm_tables, gpu_section, notes, report
from .running import run

DESCRIPTION = "The paper's story, measured: three experiments, and every claim an effect with a 95% interval."


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="python -m minimal_ofn.story", description=DESCRIPTION)
    parser.add_argument("--out", default="docs/story",
                        help="story folder: runs/, story.md, figures (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="stacks run side by side, one thread each (default: %(default)s)")
    parser.add_argument("--report-only", action="store_true", help="judge the finished runs in --out; run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    helps, defaults = field_help(Protocol), Protocol()
    for f in dataclasses.fields(Protocol):
        kind = int if f.type in (int, "int") else float if f.type in (float, "float") else str
        default = getattr(defaults, f.name)
        text = f"{helps[f.name]} (default: {' '.join(map(str, default)) if f.name == 'seeds' else default})"
        if f.name == "seeds":
            parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help=text.replace("%", "%%"))
        elif f.type not in (bool, "bool"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, metavar=f.name.upper(),
                                help=text.replace("%", "%%"))
    args = parser.parse_args(argv)
    # The report names the command that makes its runs (--report-only only judges them again).
    command = " ".join(["python -m minimal_ofn.story", *(a for a in argv if a != "--report-only")])

    def go():
        changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Protocol)
                   if getattr(args, f.name, None) is not None}
        if "seeds" in changes:
            changes["seeds"] = tuple(changes["seeds"])
        p = Protocol(**changes)
        for env in (p.dissect_env, p.online_env, p.priming_env):
            if not env.startswith(DMC_PREFIX):  # B = (r_max + alpha |A| log 2) / (1 - gamma) needs rewards in [0, 1]
                raise ValueError(f"the story runs on dm_control tasks (dmc:<domain>-<task>), whose rewards lie in "
                                 f"[0, 1] so that B bounds every value; got {env!r}")
        if len(p.seeds) < 3:
            raise ValueError("the story needs at least 3 seeds per arm for an interval")
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        out = Path(args.out)
        # The wall times are those of the run that made the runs: --report-only keeps the ones it saved.
        times = out / "wall_times.json"
        if args.report_only:
            lines = json.loads(times.read_text()) if times.exists() else []
        else:
            lines = run(p, out, args.jobs, not args.no_progress)
            times.write_text(json.dumps(lines, indent=1) + "\n")
        (out / "protocol.json").write_text(json.dumps(dataclasses.asdict(p), indent=2) + "\n")
        results, dims = load(p, out / "runs"), act_dims(p)
        gamma = cfgmod.Config.gamma
        scores = claim_scores(results, p, dims, gamma)
        judged = judge(scores)
        text = report(p, judged, command, lines, arm_tables(results, p, dims, gamma),
                      notes(judged, scores, results, p, dims, gamma),
                      notes(judged, scores, results, p, dims, gamma, stats.UNRESOLVED),
                      gpu_section(results["online"], p))
        (out / "story.md").write_text(text)
        figures(results, p, dims, out, gamma)
        print(text)

    cli(go)
