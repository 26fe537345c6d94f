"""The paper's story, measured: three experiments, and every claim an effect with a 95% interval.

Hussing et al. (2024) claim that at high UTD SAC's critic overestimates and diverges early, on seen and unseen
actions, propelled by the optimizer's momentum; that dropout and L2 help a little; and that OFN stops the
divergence. Each claim is tested where it can be on a 2-core CPU:

Part 1, dissection (offline): a fixed early buffer D of `seed_steps` random transitions and `dissect_updates` SAC
  updates on D alone (fixed_buffer.py), so nothing but the update rule moves Q. Critic-only variants of the
  optimizer (Adam, Adam without its first moment, Adam whose moments are reset every k updates, RMSProp, SGD with
  and without momentum at matched effective steps) and of the regularizers (L2 at three coefficients, dropout,
  LayerNorm, OFN), each with the temperature learned (from SAC's usual 1) and held at a small value. Divergence is
  log10(max over updates of |Q| / B), with B = (r_max + alpha |A| log 2) / (1 - gamma) for a held alpha and
  B_H = (r_max + alpha max(0, H_pi)) / (1 - gamma) for a learned one (measures.py), on D's own actions (seen) and
  on uniform actions (unseen), with its onset and growth rate; the optimizer's moments as log10 of the critic's
  largest v.
Part 2, online: UTD `utd` against UTD 1. Overestimation is the critic's Q on its own rollouts minus their *soft*
  Monte Carlo return (what a soft critic estimates, diagnostics.monte_carlo), averaged over the last third of the
  learning phase, past SAC's temperature transient (counted in updates). UTD 1 therefore runs twice: for as many
  environment steps as UTD `utd` and for as many updates (the same temperature schedule). Baseline and OFN also
  start at alpha 0.1. The learning claims need hundreds of thousands of steps: the report states them with the
  published curves and the GPU command (claims.GPU_CLAIMS), and judges none of them here.
Part 3, priming then learning (Nikishin et al. 2022): `priming_updates` updates on the random transitions, then
  every arm goes on at the same UTD and the same temperature; judged on the returns over the last third of
  learning and on the critic's recovery (Q - soft MC return over learning).

One file per job: protocol.py (settings and arms), running.py (the runs), claims.py (the claims and their
verdicts, stats.py), report.py and figures.py (story.md and its figures), committed.py (the committed runs, read
back for the tutorials and tests), cli.py (the command line).

    python -m minimal_ofn.story --out docs/story            # run (resumably) and write docs/story/story.md
"""

# The story's API in one place (tutorials: story.live, story.show_committed; tests: the rest). The per-run measures
# live in measures.py; the two that tutorial 2 reads through the story are named here too.
from ..measures import late_overestimation, log_growth, log_peak_over_bound, mean_return, value_bound
from .claims import CLAIMS, GPU_CLAIMS, Claim, claim_scores, describe, fmt, judge, judged_claims, live
from .cli import main
from .committed import COMMITTED, act_dims, committed, load, show_committed
from .figures import figures
from .protocol import (BOUNDS, DISSECT_ARMS, L2_ARMS, MATCHED_PAIRS, NARROW_ARMS, ONLINE_ARMS, ONLINE_UTD1_ARMS,
                       OPT_RESET_ARMS,
                       PRIMING_ARMS, TEMPERATURES, Protocol, dissect_configs, dissection_arms, online_base,
                       online_folder,
                       optimizer_resets, priming_arms, priming_base, temperature_label)
from .report import UNVERIFIED, arm_tables, gpu_section, notes, report
from .running import run, run_part, tasks

__all__ = ["NARROW_ARMS", "dissection_arms", "BOUNDS", "GPU_CLAIMS", "L2_ARMS", "MATCHED_PAIRS", "OPT_RESET_ARMS",
           "describe", "gpu_section", "optimizer_resets", "CLAIMS", "COMMITTED", "DISSECT_ARMS", "ONLINE_ARMS", "ONLINE_UTD1_ARMS", "PRIMING_ARMS", "TEMPERATURES",
           "UNVERIFIED", "Claim", "Protocol", "act_dims", "arm_tables", "claim_scores", "committed", "dissect_configs",
           "figures", "fmt", "judge", "judged_claims", "late_overestimation", "live", "load", "log_growth",
           "log_peak_over_bound", "main", "mean_return", "notes", "online_base", "online_folder", "priming_arms",
           "priming_base", "report", "run", "run_part", "show_committed", "tasks", "temperature_label",
           "value_bound"]
