"""glibc's malloc, told to keep freed memory: the CPU training loop's one process-wide tweak."""

import ctypes
import ctypes.util


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks instead of returning them to the OS.

    By default glibc hands every block above its mmap threshold back to the kernel
    when it is freed, so each update's [N, 2, B, H] activations come back as fresh
    pages: thousands of page faults per update at paper size, a noticeable part of its time
    (docs/speed.md; `python -m minimal_ofn.bench --default-malloc` shows the difference).
    Process-wide, only where glibc is the allocator; returns whether it took effect."""
    path = ctypes.util.find_library("c")
    libc = ctypes.CDLL(path) if path else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 256 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))
