"""python -m minimal_ofn.story: see cli.py."""

from .cli import main

main()
