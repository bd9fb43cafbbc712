"""Memory allocation (Linux, glibc): an opt-in speed-up for training on the CPU."""

import ctypes
import os
import sys

_applied = False


def tune_malloc():
    """Keep freed array memory in the process instead of handing it back to the kernel.

    glibc serves allocations above 128 KiB with fresh ``mmap`` pages and unmaps them on free, so
    every new activation, gradient or column buffer of a training step is page-faulted in again,
    zeroed by the kernel first: measured on a ResNet-20 step with 2 threads, ~22,000 page faults
    and a quarter of the step's time. Raising the mmap threshold to 32 MiB (glibc's largest)
    and the trim threshold to 1 GiB makes freed blocks reusable: the faults fall to ~90 per step.
    The cost: memory freed by the process stays reserved for it, up to the trim threshold.

    Opt-in: ``import tinydm`` leaves malloc alone; the training command lines call this once at
    start. ``TINYDM_MALLOC_TUNING=0`` turns the call into a no-op. Returns whether the tuning is
    in force (False on other platforms and C libraries).
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("TINYDM_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    _applied = bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))
    return _applied


def malloc_tuned():
    """Whether :func:`tune_malloc` has been applied in this process."""
    return _applied
