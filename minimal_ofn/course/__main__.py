"""python -m minimal_ofn.course {grade,exercises,release} ...: see minimal_ofn/course/__init__.py."""

import contextlib
import io
import sys

COMMANDS = {"grade": "grade", "exercises": "exercises", "release": "release"}
USAGE = "usage: python -m minimal_ofn.course {grade,exercises,release} ...  (--help after one for its options)"


def _help() -> str:
    """The help of every subcommand, each from its own parser (so it cannot drift from the options)."""
    import importlib

    parts = [USAGE, "", "The course: exercises graded where the learner's code cannot reach. Subcommands:"]
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"minimal_ofn.course.{module_name}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            module.main(["--help"])
        parts += ["", f"== {name} ==", out.getvalue().rstrip()]
    return "\n".join(parts)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(_help())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(USAGE if not argv else f"{USAGE}\nerror: unknown subcommand {argv[0]!r}", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(f"minimal_ofn.course.{COMMANDS[argv[0]]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
