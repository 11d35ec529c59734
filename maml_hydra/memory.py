"""Where freed memory goes: back to the operating system, or kept in the process for reuse.

The learner makes and drops tensors of tens of megabytes many times an iteration (at the paper's
locomotion batch every [40 tasks x 4,000 steps x 100] activation is 64 MB; the paper's
finite-difference Fisher product builds two full adaptations per product). glibc serves each
such block with its own ``mmap`` and hands it back with ``munmap`` when freed, so the next one
is fresh memory: a page fault and a zeroed page per 4 KiB, every time. Keeping freed memory in
the heap (``mallopt``: no ``mmap`` for large blocks, never trimming the heap's top) removes
those faults; the process's resident memory then stays at its high-water mark. The arithmetic
is the same either way: only where a tensor's memory comes from changes.

The closed-form products keep their own large tensors from one use to the next
(``closed_form.Scratch``); what is left to this setting is the rest of an iteration (the
meta-gradient's first use of them, autograd's line search). ``docs/RESULTS.md`` ("The learner's
share at the paper's locomotion batch") gives the time and the peak resident memory both ways,
from ``scripts/bench.py --paper``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt's parameters (malloc.h); mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming
# completely", and an M_MMAP_MAX of 0 "disables the use of mmap(2) for servicing large
# allocation requests"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


@functools.cache
def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc.mallopt


_KEPT = False  # whether this process has kept freed memory since it called keep_freed_memory


def keep_freed_memory() -> bool:
    """From now on, freed memory stays in this process for its next allocations. Returns
    whether that applies here: glibc only (elsewhere the C library's own policy stays). It
    lasts for the process; a process that never calls it keeps glibc's defaults."""
    global _KEPT
    mallopt = _mallopt()
    if mallopt is None:
        return False
    _KEPT = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))
    return _KEPT


def kept() -> bool:
    """Whether freed memory is kept in this process (``keep_freed_memory`` applied)."""
    return _KEPT
