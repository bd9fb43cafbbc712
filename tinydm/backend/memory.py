"""tinydm's pool of host memory: large arrays reused from one op call, and one step, to the next.

A training step makes the same large arrays every time: activations, their gradients, and the
scratch of conv2d and batch_norm (column matrices, padded images, masks). Fresh from NumPy, each
array over 128 KiB may be ``mmap``-ed by glibc and unmapped when freed, so a step page-faults
its memory in again, zeroed by the kernel. Measured on a ResNet-20 step: 6,000-12,000 page
faults at one thread, where they cost little, and 20,000 at two, where they cost a sixth of the
step's time (an unmap in a process with several threads also has to flush the other cores'
TLBs, the likely reason). The pool keeps that memory in the process instead, as CuPy's memory
pool does on the GPU, without changing how the C library allocates for the rest of the process
(raising glibc's mmap and trim thresholds with ``mallopt`` did the same for everything, and was
measured no faster: docs/benchmarks.md).

Ops ask for their large arrays with :func:`empty` (or :func:`zeros`, :func:`empty_like`)
instead of ``xp.empty``. On a GPU or the stand-in these are plain ``xp`` calls.
"""

import sys
import threading
from math import prod

import numpy as np

from .devices import get_array_module


def _refcounts(blocks):
    """Each block's reference count, as seen from here (the list holds one reference)."""
    counts = []
    for b in blocks:
        counts.append(sys.getrefcount(b))
    return counts


# What _refcounts says of a block held by its list alone: measured rather than assumed, since
# how many references a loop and a call add differs between Python versions.
_ALONE = _refcounts([np.empty(0)])[0]


class ArrayPool:
    """Blocks of memory (uint8 arrays) handed out as arrays, and again once nobody uses them.

    Every array :meth:`empty` returns is a view of one of the pool's blocks, so it refers to
    that block, and so does every view made from it (a tensor's data, an op's saved arrays, a
    slice). A block is free when its reference count says the pool's list is its only holder:
    memory still in use is never handed out twice, and nothing has to be given back by hand.

    A request takes a free block of its size or up to twice it (the smallest that fits), else a
    new block. Arrays under ``min_bytes`` come from NumPy as usual (glibc reuses small blocks by
    itself). A free block that no request has taken for ``idle`` requests is let go (checked
    every ``idle // 8``): the evaluation's larger batches do not keep their memory through the
    training that follows (a ResNet-20 step at batch 128 makes 213 requests, a ResNet-56 step
    609, so the blocks of every step are taken far more often than that). The pool holds at
    most ``max_bytes``: past that it lets go of all its free blocks (:meth:`release`), then
    makes arrays it does not keep.
    """

    def __init__(self, min_bytes=1 << 17, max_bytes=4 << 30, idle=1 << 15):
        self.min_bytes, self.max_bytes, self.idle = min_bytes, max_bytes, idle
        self.blocks: dict = {}  # nbytes -> [blocks of that size]
        self.taken: dict = {}  # id(block) -> the request that last took it
        self.bytes = self.requests = 0
        self.lock = threading.RLock()  # worker threads ask for their scratch arrays too

    def empty(self, shape, dtype):
        """An array of ``shape`` and ``dtype`` with undefined values."""
        dtype, shape = np.dtype(dtype), tuple(shape)
        nbytes = prod(shape) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        with self.lock:
            self.requests += 1
            if self.requests % max(1, self.idle // 8) == 0:
                self.release(idle=self.idle)
            block = self._free_block(nbytes)
            if block is None:
                if self.bytes + nbytes > self.max_bytes:
                    self.release()
                block = np.empty(nbytes, np.uint8)
                if self.bytes + nbytes > self.max_bytes:  # still too much: not kept
                    return block.view(dtype).reshape(shape)
                self.blocks.setdefault(nbytes, []).append(block)
                self.bytes += nbytes
            self.taken[id(block)] = self.requests
        return block[:nbytes].view(dtype).reshape(shape)

    def _free_block(self, nbytes):
        for size in sorted(n for n in self.blocks if nbytes <= n <= 2 * nbytes):
            blocks = self.blocks[size]
            for block, refs in zip(blocks, _refcounts(blocks)):
                if refs == _ALONE:
                    return block
        return None

    def release(self, idle=None):
        """Let go of the free blocks, or of those no request has taken for ``idle`` requests (a
        block in use goes when its last array does)."""
        with self.lock:
            self._release(idle)

    def _release(self, idle):
        for nbytes, blocks in list(self.blocks.items()):
            kept = []
            for block, refs in zip(blocks, _refcounts(blocks)):
                if refs != _ALONE or (idle is not None
                                      and self.requests - self.taken[id(block)] <= idle):
                    kept.append(block)
                else:
                    del self.taken[id(block)]
                    self.bytes -= nbytes
            if kept:
                self.blocks[nbytes] = kept
            else:
                del self.blocks[nbytes]

    def stats(self):
        """``{"bytes": held, "in_use": bytes of blocks in use, "blocks": count}``."""
        with self.lock:
            in_use = sum(n * sum(r != _ALONE for r in _refcounts(b)) for n, b in self.blocks.items())
            return {"bytes": self.bytes, "in_use": in_use,
                    "blocks": sum(len(b) for b in self.blocks.values())}


pool = ArrayPool()


def empty(xp, shape, dtype):
    """``xp.empty(shape, dtype)``, from :data:`pool` for host (NumPy) arrays."""
    return pool.empty(shape, dtype) if xp is np else xp.empty(shape, dtype)


def zeros(xp, shape, dtype):
    """``xp.zeros(shape, dtype)``, from :data:`pool` for host arrays."""
    if xp is not np:
        return xp.zeros(shape, dtype)
    out = pool.empty(shape, dtype)
    out.fill(0)
    return out


def add(a, b, shape):
    """``a + b``, broadcast to ``shape``, into an array from :data:`pool` on the host."""
    xp = get_array_module(a, b)
    return xp.add(a, b, out=empty(xp, shape, xp.result_type(a, b)))


def empty_like(a, dtype=None):
    """``xp.empty_like(a, dtype)``, from :data:`pool` for host arrays."""
    if type(a) is not np.ndarray:
        return get_array_module(a).empty_like(a, dtype=dtype)
    return pool.empty(a.shape, a.dtype if dtype is None else dtype)
