"""The course: exercise notebooks generated from the solutions, graded where the learner's code cannot reach.

    python -m minimal_ofn.course grade exercises/01_sac_utd1.ipynb   # grade.py: check a notebook's functions
    python -m minimal_ofn.course exercises [--check]                 # exercises.py: exercises/ from solutions/
    python -m minimal_ofn.course release OUT                         # release.py: the student bundle, no solutions

The package's concept files (sac.py, optim.py, ...) know nothing of this subpackage: each graded
function is a plain function there, and a run takes a learner's through train(..., functions=...).
"""
