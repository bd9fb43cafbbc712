"""Cache-sized chunks of a batch on several CPU threads (conv2d, batch_norm, relu)."""

import concurrent.futures
import os

from .devices import device_of

# ----------------------------------------------------------------------------------------------
# Cache-sized chunks of a batch, on several CPU threads
# ----------------------------------------------------------------------------------------------
# NumPy runs its copies and elementwise loops on one core; only BLAS uses several. So the heavy
# ops share their batch out among threads themselves: conv2d in chunks small enough for a
# core's cache (map_batch_chunks: its column matrices, 9x the images, then never travel to main
# memory), batch_norm and relu in one part per thread (map_batch_parts). NumPy releases the GIL
# inside copies, ufunc loops and BLAS calls, so Python threads really run in parallel there.
# Meanwhile BLAS must run single-threaded, or the cores would be shared twice over;
# threadpoolctl does that switch, and without it the chunks run one after the other.
try:
    from threadpoolctl import ThreadpoolController as _ThreadpoolController
except ImportError:  # pragma: no cover - depends on the environment
    _ThreadpoolController = None

CHUNK_BYTES = 1 << 20  # about a core's L2 cache


def _default_threads():
    for name in ("TINYDM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(name, "").isdigit() and int(os.environ[name]) > 0:
            return int(os.environ[name])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


_num_threads = _default_threads()
_pool = None
_blas = None


def get_num_threads():
    """Threads of :func:`parallel_map`: ``TINYDM_NUM_THREADS``, else ``OMP_NUM_THREADS``, else
    ``OPENBLAS_NUM_THREADS``, else the cores this process may use."""
    return _num_threads


def set_num_threads(n):
    """Use ``n`` threads in :func:`parallel_map` (1: everything on the calling thread)."""
    global _num_threads, _pool
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    if _pool is not None and n != _num_threads:
        _pool.shutdown()
        _pool = None
    _num_threads = n


def thread_settings():
    """What fixes the order of the CPU's floating-point sums, hence a run's exact result:
    ``{"threads": get_num_threads(), "blas": [{"internal_api", "version", "architecture"
    (the kernel), "num_threads"}, ...]}`` (each BLAS library loaded, via threadpoolctl)."""
    blas = []
    if _ThreadpoolController is not None:
        for lib in _ThreadpoolController().info():
            if lib.get("user_api") == "blas":
                blas.append({k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                                     "num_threads")})
    return {"threads": _num_threads, "blas": blas}


def restore_thread_settings(saved):
    """Use the thread counts of ``saved`` (a :func:`thread_settings`): tinydm's threads and
    each BLAS library's. Returns what cannot be restored (another BLAS library, version or
    kernel, or no threadpoolctl), as sentences; empty when the arithmetic is the same."""
    set_num_threads(saved["threads"])
    now = thread_settings()["blas"]
    problems = []
    for lib in saved["blas"]:
        same = [b for b in now if all(b[k] == lib[k] for k in ("internal_api", "version",
                                                               "architecture"))]
        if not same:
            found = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})"
                              for b in now) or "none found"
            problems.append(f"it used {lib['internal_api']} {lib['version']} with the "
                            f"{lib['architecture']} kernel; this process has {found}")
        elif same[0]["num_threads"] != lib["num_threads"]:
            _ThreadpoolController().select(internal_api=lib["internal_api"]).limit(
                limits=lib["num_threads"])
    return problems


def parallel_map(fn, items):
    """``[fn(item) for item in items]``, the items run side by side on up to
    :func:`get_num_threads` threads, with BLAS kept to one thread meanwhile (see above).
    ``fn`` must not call parallel_map itself."""
    global _pool, _blas
    items = list(items)
    if _num_threads == 1 or len(items) < 2 or _ThreadpoolController is None:
        return [fn(item) for item in items]
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(_num_threads, thread_name_prefix="tinydm")
        _blas = _blas or _ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        return list(_pool.map(fn, items))


def map_batch_chunks(fn, array, item_bytes, buffers=None):
    """``[fn(chunk, *scratch) for each chunk]``, ``chunk`` the slices of ``array``'s first axis
    (the batch) that make about :data:`CHUNK_BYTES` at ``item_bytes`` per item, in order.

    On the CPU the chunks are dealt out to :func:`parallel_map`'s threads, each running its share
    in one go (a task per chunk costs more than a small chunk takes); small batches stay on the
    calling thread. ``buffers(size)``, if
    given, is called once per thread and returns that thread's ``scratch`` arrays, big enough
    for ``size`` items and reused from chunk to chunk (allocating them per chunk ran 1.5x slower
    with two threads). On a GPU the whole batch is one chunk: its memory is fast, and every chunk
    would be one more round of kernel launches.
    """
    n = array.shape[0]
    size = n if device_of(array) == "cuda" else max(1, min(n, CHUNK_BYTES // max(1, item_bytes)))
    chunks = [slice(start, min(start + size, n)) for start in range(0, n, size)]
    # a hand-off to a thread costs about a chunk's work: below four chunks a thread, keep them
    threads = max(1, min(_num_threads, len(chunks) // 4))

    def share(t):
        scratch = buffers(size) if buffers else ()
        return [fn(chunk, *scratch) for chunk in chunks[t::threads]]
    shares = parallel_map(share, range(threads))
    return [shares[k % threads][k // threads] for k in range(len(chunks))]


def map_batch_parts(fn, array):
    """``[fn(part) for each part]``, the parts slices that cut ``array``'s first axis (the batch)
    into one part per CPU thread, run side by side by :func:`parallel_map`: for elementwise work
    and reductions over the batch (batch_norm, relu), where cache-sized chunks gained nothing.
    Arrays under :data:`CHUNK_BYTES`, scalars and GPU arrays are one part, ``...`` (a thread
    hand-off would cost more than such work)."""
    if array.ndim == 0 or array.nbytes < CHUNK_BYTES or device_of(array) == "cuda":
        return [fn(...)]
    n = array.shape[0]
    size = -(-n // min(_num_threads, n))
    return parallel_map(fn, [slice(start, min(start + size, n)) for start in range(0, n, size)])


def run_length(a):
    """Images of ``a`` in a cache-sized run (about :data:`CHUNK_BYTES`; a GPU: all of them)."""
    return len(a) if device_of(a) == "cuda" else max(1, CHUNK_BYTES // max(1, a[:1].nbytes))


def in_runs(fn, *arrays):
    """``fn(*runs)`` for each cache-sized run of images (about :data:`CHUNK_BYTES` of the first
    array) of the arrays, in order: a chain of elementwise operations on a run stays in the
    core's cache instead of sweeping main memory once per operation. A GPU takes them whole."""
    n, step = len(arrays[0]), run_length(arrays[0])
    for start in range(0, n, step):
        fn(*[a[start:start + step] for a in arrays])
