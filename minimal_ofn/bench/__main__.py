"""python -m minimal_ofn.bench"""

from .run import main

main()
