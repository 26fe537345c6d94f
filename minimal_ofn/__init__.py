"""minimal_ofn: reproduce 'Dissecting Deep RL with High Update Ratios' (Hussing, Voelcker et al., RLC 2024).

One file per concept: config, envs, replay, networks, ofn, optim, sac, resets,
priming, diagnostics, train (the loop), experiment, plots, demo, bench, grade.
"""

from .config import PRESETS, VARIANTS, Config, preset

__all__ = ["Config", "PRESETS", "VARIANTS", "preset", "train", "load_metrics"]


def __getattr__(name):
    # Imported lazily so that `python -m minimal_ofn.train` does not import train.py twice.
    if name in ("train", "load_metrics"):
        from . import train as _train

        return getattr(_train, name)
    raise AttributeError(name)
