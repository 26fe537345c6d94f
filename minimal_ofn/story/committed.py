"""The committed story (docs/story): its runs read back, and its verdicts judged again from them.

The tutorials print these verdicts beside their own runs' effects (show_committed, claims.live), and the tests
check that docs/story/story.md and the README say what the committed runs say.
"""

import json
from pathlib import Path

from .. import config as cfgmod
from ..envs import make_env
from ..runs import committed_story, load_metrics
from .claims import GPU_CLAIMS, claim_scores, describe, fmt, judge
from .protocol import DISSECT_ARMS, NARROW_ARMS, ONLINE_ARMS, ONLINE_UTD1_ARMS, PRIMING_ARMS, Protocol, online_folder

COMMITTED = committed_story()  # docs/story, or its copy inside an installed wheel


def load(p: Protocol, out: Path) -> dict:
    """Every run of the story, as {part: ...} for claim_scores (see there)."""
    def arms(folder, names):
        return {a: [load_metrics(folder / a / f"seed{s}") for s in p.seeds] for a in names}

    return {
        "dissection": {**{t: arms(out / "dissection" / t, DISSECT_ARMS) for t in ("fixed", "learned")},
                       "narrow": arms(out / "dissection" / "narrow", NARROW_ARMS)},
        "online": {p.utd: arms(out / "online" / f"utd{p.utd}", ONLINE_ARMS),
                   1: arms(out / "online" / "utd1", ONLINE_UTD1_ARMS),
                   "1x": arms(out / "online" / online_folder(p, "1x"), ONLINE_UTD1_ARMS)},
        "priming": arms(out / "priming", PRIMING_ARMS),
    }


def act_dims(p: Protocol) -> dict:
    return {part: make_env(env, 0).action_space.shape[0]
            for part, env in (("dissection", p.dissect_env), ("online", p.online_env), ("priming", p.priming_env))}


def committed(keys, folder=COMMITTED) -> tuple[Protocol, list[dict]]:
    """(protocol, judged claims) of the story in `folder` (default: the repository's docs/story), recomputed from
    the runs there with the protocol they were run with (protocol.json), for the claims with these keys."""
    folder = Path(folder)
    saved = json.loads((folder / "protocol.json").read_text())
    p = Protocol(**{**saved, "seeds": tuple(saved["seeds"])})
    results, dims = load(p, folder / "runs"), act_dims(p)
    return p, judge(claim_scores(results, p, dims, cfgmod.Config.gamma), keys=set(keys))


def show_committed(keys, folder=COMMITTED) -> None:
    """Print the story's verdicts on these claims (see committed), one line each; a claim that needs a GPU says so."""
    p, judged = committed(keys, folder)
    print(f"The story ({len(p.seeds)} seeds per arm; docs/story/story.md), judged again from its committed runs:")
    for j in judged:
        c = j["claim"]
        measured = describe(c, p, j["temperature"])
        print(f"  {j['verdict']:<13} {c.paper}: {measured} = {fmt(j['effect'])} [{fmt(j['low'])}, "
              f"{fmt(j['high'])}]")
    for c in GPU_CLAIMS:
        if c.key in keys:
            print(f"  needs a GPU   {c.paper}: not judged on a CPU (docs/story/story.md, 'Claims that need a GPU')")
