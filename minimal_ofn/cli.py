"""The command-line kit every `python -m minimal_ofn.<command>` shares.

- one flag per Config field, spelled with dashes (`--seed-steps`); the underscore spelling
  (`--seed_steps`) still works as a hidden alias;
- each flag's help line is the comment beside its field in config.py, with its default,
  and `--help --preset tutorial` shows that preset's defaults;
- a bad request (RunError, ValueError) is one line on stderr and an exit status, never a traceback;
  Ctrl-C says which step the checkpoint holds and the exact command that resumes.
"""

import argparse
import json
import re
import sys
import typing
from pathlib import Path

from . import config as cfgmod
from .config import Config


class RunError(Exception):
    """A problem with the user's request: the CLI prints it on one line, without a traceback."""


class NonFiniteLoss(RunError):
    pass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C inside train(): where it stopped and what its run folders' checkpoints hold."""

    def __init__(self, step: int, saved_step: int | None, folders: list):
        super().__init__(step)
        self.step, self.saved_step, self.folders = step, saved_step, folders

    def describe(self) -> str:
        where = f"{self.folders[0]}" + (f" and {len(self.folders) - 1} more" if len(self.folders) > 1 else "")
        if not self.folders:
            return f"interrupted at step {self.step}; nothing was saved (the run kept no folder)"
        if self.saved_step is None:
            return f"interrupted at step {self.step}, before the first checkpoint: {where} holds nothing to resume"
        return f"interrupted at step {self.step}: the checkpoint in {where} holds step {self.saved_step}"


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> argparse.Action:
    """--name-with-dashes, plus --name_with_underscores as a hidden alias of the same flag."""
    action = parser.add_argument("--" + name.replace("_", "-"), dest=name, **kwargs)
    if "_" in name:
        parser.add_argument("--" + name, dest=name, **{**kwargs, "help": argparse.SUPPRESS})
    return action


def add_config_args(parser: argparse.ArgumentParser, skip=()) -> None:
    """--preset and one flag per Config field (except those in skip); unset flags stay None."""
    parser.add_argument("--preset", choices=sorted(cfgmod.PRESETS), help="start from a named preset "
                        "(--help --preset NAME shows its defaults)")
    helps, actions = cfgmod.field_help(), {}
    for name, hint in typing.get_type_hints(Config).items():
        if name in skip:
            continue
        kind = next(k for k in (bool, int, float, str) if k == hint or k in typing.get_args(hint))
        metavar = {bool: "BOOL", int: "N", float: "X", str: "TEXT"}[kind]
        extra = {"type": _bool, "nargs": "?", "const": True} if kind is bool else {"type": kind}
        extra["metavar"] = metavar
        actions[name] = add_flag(parser, name, default=None, **extra)
        actions[name].base_help = helps[name].replace("%", "%%")
    parser.config_actions = actions
    show_defaults(parser, Config(), None)


def show_defaults(parser, defaults: Config, preset: str | None) -> None:
    """Rewrite the config flags' help lines to show the defaults of `defaults` (a preset's, or Config's)."""
    for name, action in getattr(parser, "config_actions", {}).items():
        value = getattr(defaults, name)
        source = f", preset {preset}" if preset and value != Config.__dataclass_fields__[name].default else ""
        action.help = f"{action.base_help} (default: {value}{source})".lstrip()


def config_from_args(args, saved: Path | None = None, skip=()) -> Config:
    """Flags over a preset over the defaults; with `saved` (a config.json), flags over that run's settings.

    skip: attributes of args that are not Config flags (the same names as add_config_args' skip)."""
    if saved is not None and saved.exists():
        base = Config.from_dict(json.loads(saved.read_text()))
    else:
        base = cfgmod.preset(args.preset) if getattr(args, "preset", None) else Config()
    changes = {k: v for k, v in vars(args).items()
               if k in Config.__dataclass_fields__ and k not in skip and v is not None}
    return base.replace(**changes)


def explain(err: ValueError, cfg: Config, args, saved: bool = False) -> str:
    """Config.validate's message, plus where each setting it names came from when no flag gave it:
    "seed_steps must be in [0, steps], got 5000 (seed_steps 5000 is the default: set --seed-steps)"."""
    given = {k for k, v in vars(args).items() if v is not None}
    notes = []
    for name in Config.__dataclass_fields__:
        if name in given or not re.search(rf"\b{name}\b", str(err)):
            continue
        value, default = getattr(cfg, name), Config.__dataclass_fields__[name].default
        source = ("the saved run's" if saved else f"preset {args.preset}'s" if getattr(args, "preset", None)
                  and value != default else "the default")
        notes.append(f"{name} {value} is {source}: set --{name.replace('_', '-')}")
    return f"{err} ({'; '.join(notes)})" if notes else str(err)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line on stderr (no usage dump), and --help shows the
    defaults of the preset named by --preset (wherever the two flags stand)."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        if getattr(self, "config_actions", None) and {"-h", "--help"} & set(args):
            first = argparse.ArgumentParser(add_help=False)
            first.add_argument("--preset")
            preset = first.parse_known_args(args)[0].preset
            if preset in cfgmod.PRESETS:
                show_defaults(self, cfgmod.PRESETS[preset], preset)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def cli(main, resume_command: str | None = None):
    """Run main(); turn RunError/ValueError into a one-line message and exit status, never a traceback.

    resume_command: the exact command that continues after Ctrl-C (printed with the step the checkpoint holds)."""
    try:
        main()
    except (RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1 if isinstance(err, NonFiniteLoss) else 2)
    except KeyboardInterrupt as err:
        where = err.describe() if isinstance(err, Interrupted) else "interrupted"
        can_resume = not isinstance(err, Interrupted) or err.saved_step is not None
        then = f"; resume with: {resume_command}" if resume_command and can_resume else ""
        print(f"\n{where}{then}", file=sys.stderr)  # on its own line, below any progress bar
        sys.exit(130)


def set_threads(n) -> None:
    """torch intra-op threads; None keeps the default (threads.py). On a busy 2-core CPU one thread was 20x faster
    than two for a 15-agent tutorial stack (6 vs 133 ms per agent-update): two threads spin-wait on each other."""
    if n is not None:
        if n < 1:
            raise RunError(f"--threads must be >= 1, got {n}")
        import torch  # not at the top: every command parses its flags before torch loads (seconds)

        torch.set_num_threads(n)
