"""Freed memory kept for the next window instead of handed back to the kernel (glibc only).

Why: every window allocates the same large buffers again (the decoded frames, the float input,
each activation of the backbone: about 2 GB per SparseSync window). glibc serves a request
above its mmap threshold (32 MiB at most) with a fresh ``mmap`` and unmaps it on ``free``, so
for every window the kernel faults in and zeroes all of it again: on a 2-core CPU ~490,000
minor page faults and ~1.3 s of system time per window, about 17 % of the model's CPU time,
and more when the decode thread faults at the same time (the faults of both threads take the
same address-space lock). While :func:`heap_reuse` is active, glibc serves large blocks from
its heap and keeps what is freed there, so the next window reuses pages already mapped: system
time per window falls to a few hundredths of a second (``bench/run.py`` measures it).

The cost is memory kept between windows: peak RSS grows by the freed blocks that cannot be
merged (0.3-0.4 GB for SparseSync on CPU), and stays at that level rather than growing. On exit
the glibc defaults are restored and the kept memory is returned (``malloc_trim``). Set
``AVSYNC_HEAP_REUSE=0`` to turn this off. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt parameters (glibc's malloc.h) and their defaults
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_KEEP_ALL = 2**31 - 1  # the largest trim threshold mallopt takes: never trim while active

_lock = threading.Lock()
_active = 0  # nesting depth over all threads: settings change on the first enter, last exit
_libc: ctypes.CDLL | bool | None = False  # False: not looked up yet


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is False:
        _libc = None
        if sys.platform.startswith("linux") and os.environ.get("AVSYNC_HEAP_REUSE", "1") != "0":
            try:
                libc = ctypes.CDLL("libc.so.6")
                if not hasattr(libc, "gnu_get_libc_version"):  # musl: mallopt means nothing
                    return None
                _libc = libc
            except (OSError, AttributeError):
                _libc = None
    return _libc  # type: ignore[return-value]


def heap_reuse_available() -> bool:
    """Whether :func:`heap_reuse` changes anything here (glibc, not turned off by the environment)."""
    return _glibc() is not None


@contextmanager
def heap_reuse() -> Iterator[None]:
    """Inside: large blocks come from the heap and freed memory stays for reuse (see the module
    docstring). Re-entrant and thread-safe; the process's settings change on the first enter and
    are restored on the last exit."""
    global _active
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        if _active == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
