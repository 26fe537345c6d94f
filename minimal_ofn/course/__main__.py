"""python -m minimal_ofn.course {grade,exercises,release} ...: see minimal_ofn/course/__init__.py."""

import sys

COMMANDS = {"grade": "grade", "exercises": "exercises", "release": "release"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m minimal_ofn.course {grade,exercises,release} ...  (--help after one for its options)",
              file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(f"minimal_ofn.course.{COMMANDS[argv[0]]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
