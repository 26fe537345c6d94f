"""Training with your own functions: every function an exercise grades can replace the package's in a run.

    from minimal_ofn.train import train
    rows = train(cfg, functions={"adam_step": my_adam_step, "ofn": my_ofn})

Each name is the package function of the same name and signature (the exercise is that
function with its body removed); any left out stay the package's. The functions travel
with the run's SAC object (`sac.fn.<name>`), so nothing is patched: another run in the same
process, or the package's own tests, still use the package's code.
"""

import importlib
import inspect
from types import SimpleNamespace

# name -> the module that defines it (and documents its equation)
HOME = {
    "soft_q_target": "sac", "polyak_update": "sac", "critic_loss": "sac", "actor_loss": "sac",
    "temperature_loss": "sac", "l2_penalty": "sac",
    "adam_step": "optim", "decoupled_weight_decay": "optim",
    "dropout_mask": "networks", "ofn": "ofn",
    "srank": "diagnostics", "discounted_returns": "diagnostics",
    "utd_loop": "utd", "prime": "priming", "reset_due": "resets",
}


def package_function(name: str):
    return getattr(importlib.import_module(f"minimal_ofn.{HOME[name]}"), name)


def functions(overrides: dict | None = None) -> SimpleNamespace:
    """The package's functions by name, with `overrides` put in their place (checked: known name, callable)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(HOME))
    if unknown:
        raise ValueError(f"unknown function(s) {', '.join(unknown)}: the ones a run can take are {', '.join(HOME)}")
    for name, fn in overrides.items():
        if not callable(fn):
            raise ValueError(f"functions[{name!r}] should be a function, got a {type(fn).__name__}")
        wanted = len(inspect.signature(package_function(name)).parameters)
        try:
            inspect.signature(fn).bind(*range(wanted))
        except TypeError:
            raise ValueError(f"functions[{name!r}] should take the arguments of minimal_ofn.{HOME[name]}.{name}"
                             f"{inspect.signature(package_function(name))}") from None
        except ValueError:  # a builtin without a signature: let the call tell
            pass
    return SimpleNamespace(**{name: overrides.get(name) or package_function(name) for name in HOME})
