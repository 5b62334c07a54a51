"""Memory-allocation settings for kvmem's own processes: the ``kvmem`` command and the bench.

On Linux every page a process touches for the first time costs a page fault and the
kernel zeroing it. Large CPU workloads allocate and free big temporaries over and over,
and with default settings each new one comes back as fresh 4 KiB pages. In this
project's build VM that cost up to 40 % of a command's CPU time:
``capacity --set protocol=curve --set n_units=160`` took 8.0M faults and 23 s of system
time. These settings remove most of it, and none changes a single number, because they
only decide where memory comes from:

- ``THP_MEM_ALLOC_ENABLE=1`` makes PyTorch's CPU allocator ask for transparent huge pages
  (2 MiB) for buffers of 2 MiB and more. That gives 512x fewer faults for the same
  memory. The curve above drops to 0.34M faults, 8-13 s of system time and 17-21 s of
  computation, from 27 s. PyTorch reads this variable once, at its first allocation, so
  it must be set before ``import torch``.
- glibc's malloc keeps freed memory for reuse instead of handing it back to the kernel:
  it serves every request from its heap (``MALLOC_MMAP_MAX_=0``: no request gets a
  mapping of its own, which ``free`` would unmap), from one pool shared by all threads
  (``MALLOC_ARENA_MAX=1``: a worker thread's own pool is mapped in 64 MiB pieces, so its
  large tensors would be mapped and unmapped anyway), grows that heap in steps of
  ``MALLOC_TOP_PAD_`` (1 GiB of address space; pages cost nothing until touched) and,
  when its free top passes ``MALLOC_TRIM_THRESHOLD_`` (256 MiB), hands back only what
  lies beyond that 1 GiB.
  ``MALLOC_MMAP_THRESHOLD_`` (32 MiB) still fixes the thresholds, where glibc would adapt
  them, for a user who allows mappings again. Without these, a loop that allocates and
  frees large temporaries faults them in, and the kernel zeroes them, on every pass.
  ``ModernHopfield.retrieve`` on X [2000, 64] with 100 cues took 550 faults per call, 2.3x
  slower than with the memory kept. The capacity curve above, with huge pages on, still
  spent 9-15 s in the kernel zeroing fresh huge pages, in a quiet hour: with the memory
  kept 2-9 s, each page touched about once, and its computation fell from 18.3 s to
  13.4-16.3 s.

:func:`configure` sets these as defaults only, so a variable the user has set wins. For
example, ``THP_MEM_ALLOC_ENABLE=0 kvmem run ...`` turns huge pages off. The variables are
inherited by worker processes, such as a sweep's pool. glibc read this process's own
malloc variables when the process started, so :func:`configure` also applies them
through ``mallopt``. Library code never calls it: importing kvmem leaves the caller's
process as it was.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import MutableMapping

__all__ = ["DEFAULTS", "configure"]

DEFAULTS: dict[str, str] = {
    "THP_MEM_ALLOC_ENABLE": "1",
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_TOP_PAD_": str(1 << 30),
}

# the mallopt parameter number of each malloc variable (glibc's <malloc.h>: M_MMAP_THRESHOLD,
# M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX, M_TOP_PAD)
_MALLOPT = {
    "MALLOC_MMAP_THRESHOLD_": -3,
    "MALLOC_TRIM_THRESHOLD_": -1,
    "MALLOC_MMAP_MAX_": -4,
    "MALLOC_ARENA_MAX": -8,
    "MALLOC_TOP_PAD_": -2,
}


def configure(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :data:`DEFAULTS` where unset and apply the malloc ones to this process.

    Does nothing, and returns ``{}``, once torch is imported: its allocator has read its
    setting by then, and a process that loaded torch belongs to the caller. Otherwise
    returns the settings now in effect (the user's own values where they were set).
    """
    if "torch" in sys.modules:
        return {}
    env = os.environ if environ is None else environ
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    if environ is None:
        # (before any thread exists: the arena limit binds the first thread that mallocs)
        for key, param in _MALLOPT.items():
            _mallopt(param, env[key])
    return {key: env[key] for key in DEFAULTS}


def _mallopt(param: int, value: str) -> bool:
    """``mallopt(param, value)`` where the C library has it (glibc); False elsewhere."""
    try:
        number = int(value)
    except ValueError:  # a malformed user value: glibc ignored it at start-up, so do we
        return False
    if not sys.platform.startswith("linux") or not 0 <= number < 2**31:
        return False
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    fn.argtypes = (ctypes.c_int, ctypes.c_int)
    fn.restype = ctypes.c_int
    return bool(fn(param, number))
