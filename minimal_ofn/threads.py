"""Thread defaults that do not collapse when the CPU is shared.

torch's CPU kernels run on an OpenMP pool of one thread per core. Between parallel
regions, OpenMP's default (active) wait policy keeps every pool thread spinning on
its core. When another process wants that core too (a second notebook, the grader,
an experiment beside a tutorial), the spinning threads and the neighbour take turns
by the scheduler's time slices, and every barrier of every small kernel waits for a
thread that is not running: beside one busy process a run can take several times
as long with torch's default as with one thread, while sleeping waiters (PASSIVE)
lose little (`python -m minimal_ofn.bench --contention` measures it; figures in
docs/speed.md). So the defaults here are:

    OMP_WAIT_POLICY = PASSIVE                   waiting threads sleep instead of spinning
    threads = usable cores - busy cores (>= 1)  usable: os.sched_getaffinity; busy: the
                                                1-minute load average, rounded down

both only where the user has not chosen (OMP_WAIT_POLICY / OMP_NUM_THREADS already set,
or MINIMAL_OFN_THREADS=torch, leave torch's own behaviour). The wait policy is read
once, when the OpenMP runtime loads with torch: it must be in the environment before
the first `import torch` of the process, which is why `import minimal_ofn` calls
apply_thread_defaults() before importing anything that imports torch, and why child
processes (grader kernels, Ray workers) inherit it through the environment. The load
average is a snapshot at start: a neighbour that starts later is met by the passive
wait policy, which keeps the loss bounded.
"""

import math
import os
import sys

OFF = "MINIMAL_OFN_THREADS"  # set to "torch" to keep torch's defaults untouched


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's or taskset's), else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """Threads for torch: the usable cores minus those kept busy by other processes (load average), at least 1."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - math.floor(load)))


def apply_thread_defaults(environ=os.environ) -> dict:
    """Set OMP_WAIT_POLICY=PASSIVE and a free-core thread count where the user has not chosen; returns what it set.

    Call it before the first `import torch` (the wait policy is read when OpenMP loads). If torch is already
    imported, the wait policy cannot change any more; the thread count is still applied, with torch.set_num_threads.
    """
    if environ.get(OFF) == "torch":
        return {}
    done = {}
    torch_loaded = "torch" in sys.modules
    if "OMP_WAIT_POLICY" not in environ and not torch_loaded:
        environ["OMP_WAIT_POLICY"] = done["OMP_WAIT_POLICY"] = "PASSIVE"
    if "OMP_NUM_THREADS" not in environ:
        threads = default_threads()
        if torch_loaded:
            import torch

            torch.set_num_threads(threads)
            done["torch.set_num_threads"] = threads
        else:
            environ["OMP_NUM_THREADS"] = done["OMP_NUM_THREADS"] = str(threads)
    return done
