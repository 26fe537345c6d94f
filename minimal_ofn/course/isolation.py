"""The operating system's wall around the learner's code: a child that sees only python, torch and numpy.

On Linux with bubblewrap (`bwrap`, Debian/Ubuntu package `bubblewrap`) and user namespaces, the
child that runs a learner's functions is started as

    bwrap --unshare-all --die-with-parent --new-session  (own user, mount, pid, network, ipc, uts namespaces)
          --ro-bind /usr  (system libraries)   --ro-bind <python's own folders>   --proc --dev --tmpfs /tmp
          --tmpfs <site-packages>, then --ro-bind of the entries of torch, numpy, scipy and what they require only

so the child's file system holds no project, no solutions, no package (not even an installed
minimal_ofn) and no home folder; its process list holds only itself (the grader's process is not
in its pid namespace), and it has no network. The grader talks to it through two pipes only.

Where bwrap is missing, or the kernel refuses unprivileged user namespaces (some laptops, some
containers), the child runs as a plain process: the code filter (source.py) and the restricted
builtins still stand, but they are a filter, not a boundary, and the report says the grade is
self-assessment only.

    MINIMAL_OFN_ISOLATION=off       never use bwrap (tests of the degraded mode)
"""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

# the distributions whose files the child may read; their requirements are added (importlib.metadata)
VISIBLE = ("torch", "numpy", "scipy")


def _python() -> tuple[str, list[str]]:
    """The real interpreter (a venv's python is a link to it) and the folders it needs: its own and the stdlib."""
    exe = os.path.realpath(sys.executable)
    folders = {os.path.dirname(exe)}
    for prefix in {sys.base_prefix, sys.base_exec_prefix}:
        lib = os.path.join(prefix, "lib")
        if os.path.isdir(lib) and not lib.startswith("/usr/"):
            folders.add(lib)
    return exe, sorted(folders)


@functools.lru_cache(maxsize=1)
def visible_entries() -> dict[str, list[str]]:
    """site folder -> the top-level entries of torch, numpy, scipy and their requirements (nothing else)."""
    from importlib import metadata

    import numpy
    import torch

    names, todo = set(), list(VISIBLE)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in names:
            continue
        names.add(name)
        try:
            for req in metadata.requires(name) or []:
                if "extra ==" not in req:
                    todo.append(req.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0]
                                .split("!")[0].split("~")[0].strip())
        except metadata.PackageNotFoundError:
            pass
    sites = {str(Path(m.__file__).resolve().parent.parent) for m in (torch, numpy)}
    out = {site: set() for site in sites}
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        site = str(Path(dist.locate_file("")).resolve())
        if site not in out:
            continue
        for f in dist.files or []:
            top = f.parts[0]
            if top.endswith(".pth") or top.startswith("__editable__") or top.split(".")[0] == "minimal_ofn" \
                    or top in ("..", "__pycache__") or f.parts[0].startswith("/"):
                continue
            out[site].add(top)
    for site in sites:  # what the metadata may miss: the packages themselves and their bundled libraries
        for top in ("torch", "torchgen", "functorch", "numpy", "numpy.libs", "scipy", "scipy.libs"):
            if os.path.exists(os.path.join(site, top)):
                out[site].add(top)
    return {site: sorted(e for e in entries if os.path.exists(os.path.join(site, e))) for site, entries in out.items()}


def bwrap_command(argv: list[str], readable: list[str] = ()) -> list[str]:
    """argv run inside bubblewrap, seeing only python, torch & co., /usr, and the folders in `readable`."""
    exe, folders = _python()
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--ro-bind", "/usr", "/usr"]
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin"), ("/sbin", "usr/sbin")):
        if os.path.islink(link):
            cmd += ["--symlink", target, link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    cmd += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp"]
    for folder in folders:
        cmd += ["--ro-bind", folder, folder]
    for site, entries in visible_entries().items():
        cmd += ["--tmpfs", site]  # hides everything else installed beside torch (the package included)
        for e in entries:
            cmd += ["--ro-bind", os.path.join(site, e), os.path.join(site, e)]
    for folder in readable:
        cmd += ["--ro-bind", folder, folder]
    cmd += ["--chdir", "/tmp", "--setenv", "HOME", "/tmp", "--", exe if argv[0] == sys.executable else argv[0]]
    return cmd + list(argv[1:])


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(True, how) when bwrap can start an isolated python here, else (False, why not, in words)."""
    if os.environ.get("MINIMAL_OFN_ISOLATION", "").lower() == "off":
        return False, "isolation switched off (MINIMAL_OFN_ISOLATION=off)"
    if not sys.platform.startswith("linux"):
        return False, f"no OS isolation on {sys.platform} (bubblewrap needs Linux)"
    if shutil.which("bwrap") is None:
        return False, "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        done = subprocess.run(bwrap_command([sys.executable, "-I", "-S", "-c", "import os; print(os.getpid())"]),
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"bwrap did not start ({type(err).__name__}: {err})"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        if _userns_off():
            why += " (this kernel does not allow unprivileged user namespaces)"
        return False, f"bwrap cannot isolate here: {why}"
    return True, "bubblewrap: no project, solutions or package visible, own pid namespace, no network"


def _userns_off() -> bool:
    for path, off in (("/proc/sys/kernel/unprivileged_userns_clone", "0"), ("/proc/sys/user/max_user_namespaces", "0"),
                      ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")):
        try:
            if Path(path).read_text().strip() == off:
                return True
        except OSError:
            pass
    return False


def describe() -> str:
    """One line for the report: where the learner's code ran, and what that means for the grade."""
    ok, how = available()
    if ok:
        return f"isolated ({how})"
    return f"NOT isolated: {how}; the grade is self-assessment only"
