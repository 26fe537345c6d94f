"""minimal_ofn: reproduce 'Dissecting Deep RL with High Update Ratios' (Hussing, Voelcker et al., RLC 2024).

One file per concept: config, envs, replay, networks, ofn, optim, sac, resets,
priming, diagnostics, train (the loop), experiment, plots, demo, bench, grade.
Train with `from minimal_ofn.train import train` (kept out of this file so that
`python -m minimal_ofn.train` runs the module exactly once).
"""

# Before anything imports torch: OpenMP reads its wait policy once, when it loads (see threads.py).
from .threads import apply_thread_defaults

apply_thread_defaults()

from .config import PRESETS, VARIANTS, Config, preset  # noqa: E402  (after the thread defaults, on purpose)

__all__ = ["Config", "PRESETS", "VARIANTS", "preset"]
