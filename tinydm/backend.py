"""Devices and array modules: the only file in tinydm that knows NumPy from CuPy.

Three devices:

* ``"cpu"``     -- NumPy.
* ``"cuda"``    -- CuPy on an NVIDIA GPU (``pip install tinydm[gpu]``).
* ``"standin"`` -- a CPU stand-in for ``"cuda"`` used by CI: NumPy underneath, but every array is
  wrapped in :class:`StandInArray`, which fails exactly where CuPy fails: mixing a host NumPy
  array into device computation, or converting device data to host implicitly
  (``np.asarray(x)``, ``np.exp(x)``). Running the whole op suite on it proves that op code keeps
  data on the device, without a GPU.

Op code never imports numpy or cupy. It asks for the array module of its inputs,
``xp = get_array_module(x)``, and calls ``xp.exp``, ``xp.matmul``, ... The few places where
NumPy and CuPy differ are hidden behind helpers here: :func:`scatter_add`, :func:`as_strided`,
:func:`to_numpy`, :func:`to_device`, :func:`rng`.
"""

import concurrent.futures
import contextlib
import ctypes
import functools
import os
import sys
import types

import numpy as np

try:  # CuPy is optional: the package must import and work without it.
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None

DEVICES = ("cpu", "cuda", "standin")


# ----------------------------------------------------------------------------------------------
# The CPU stand-in for CuPy
# ----------------------------------------------------------------------------------------------
class StandInError(TypeError):
    """Raised where CuPy would refuse: host data mixed into device work, or implicit host copies."""


def _unwrap(obj, where):
    """Replace StandInArrays by their NumPy data; refuse host arrays (as CuPy does)."""
    if isinstance(obj, StandInArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise StandInError(
            f"{where}: a host NumPy array of shape {obj.shape} was mixed into device computation; "
            "move it to the device first (tinydm.backend.to_device / Tensor(...))")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, where) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """Wrap NumPy results (arrays and NumPy scalars, as CuPy returns 0-d arrays) as device data."""
    if isinstance(obj, np.ndarray):
        return StandInArray(obj)
    if isinstance(obj, np.generic):
        return StandInArray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _standin_call(fn, name):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args, name), **_unwrap(kwargs, name)))
    return call


class StandInArray:
    """A NumPy array pretending to live on a GPU. See the module docstring."""

    __slots__ = ("_a",)
    __array_priority__ = 1000
    __array_ufunc__ = None  # NumPy ufuncs refuse it, and `ndarray + StandInArray` defers to us

    def __init__(self, a):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise StandInError(
            "implicit conversion of device data to a host NumPy array is not allowed "
            "(CuPy refuses it too); use tinydm.backend.to_numpy(x) or Tensor.numpy()")

    def get(self):
        """Explicit copy to the host, as ``cupy.ndarray.get``."""
        return self._a.copy()

    # Attributes: plain values are returned as they are, methods are wrapped.
    def __getattr__(self, name):
        if name.startswith("__"):  # never leak __array_interface__ & co: NumPy would copy silently
            raise AttributeError(name)
        attr = getattr(self._a, name)
        return _standin_call(attr, f"ndarray.{name}") if callable(attr) else _wrap(attr)

    @property
    def T(self):
        return StandInArray(self._a.T)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"standin_array({self._a!r})"

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "__getitem__")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "__setitem__")] = _unwrap(value, "__setitem__")

    # Scalars out of size-1 arrays are explicit in CuPy too (they synchronise).
    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return self._a.__index__()


def _binary(name):
    method = getattr(np.ndarray, name)

    def op(self, other):
        return _wrap(method(self._a, _unwrap(other, name)))
    op.__name__ = name
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__pow__", "__rpow__",
              "__matmul__", "__rmatmul__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
              "__ge__", "__and__", "__rand__", "__or__", "__ror__", "__xor__",
              "__iadd__", "__isub__", "__imul__", "__itruediv__"):
    setattr(StandInArray, _name, _binary(_name))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(StandInArray, _name, (lambda m: lambda self: _wrap(m(self._a)))(getattr(np.ndarray, _name)))


class _StandInModule(types.ModuleType):
    """``xp`` for the stand-in device: NumPy's namespace, refusing host arrays."""

    # Creating device data from host data is an explicit transfer, allowed as in CuPy.
    _transfers = ("asarray", "array", "ascontiguousarray")

    def __init__(self, namespace, name):
        super().__init__(name)
        self._ns = namespace

    def __getattr__(self, name):
        attr = getattr(self._ns, name)
        if name in self._transfers:
            return lambda a, *args, **kw: StandInArray(
                np.array(_unwrap_allow_host(a), *args, **kw) if name == "array"
                else getattr(np, name)(_unwrap_allow_host(a), *args, **kw))
        if isinstance(attr, types.ModuleType):
            return _StandInModule(attr, f"{self.__name__}.{name}")
        if callable(attr) and not isinstance(attr, type):
            return _standin_call(attr, f"xp.{name}")
        return attr

    @staticmethod
    def get_array_module(*args):
        return standin_xp


def _unwrap_allow_host(obj):
    if isinstance(obj, StandInArray):
        return obj._a
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap_allow_host(o) for o in obj)
    return obj


standin_xp = _StandInModule(np, "standin_numpy")


# ----------------------------------------------------------------------------------------------
# Device selection
# ----------------------------------------------------------------------------------------------
def _check_device(name):
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {DEVICES}")
    if name == "cuda":
        if _cupy is None:
            raise RuntimeError(
                "device 'cuda' needs CuPy, which is not installed: pip install 'tinydm[gpu]' "
                "(or the cupy-cudaXXx wheel matching your CUDA)")
        try:
            count = _cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # pragma: no cover - depends on the machine
            raise RuntimeError(f"device 'cuda': CuPy is installed but no GPU is usable ({e})") from e
        if count == 0:  # pragma: no cover
            raise RuntimeError("device 'cuda': CuPy is installed but no GPU was found")
    return name


_current = _check_device(os.environ.get("TINYDM_DEVICE", "cpu"))


def set_device(name):
    """Make ``name`` ("cpu", "cuda" or "standin") the device new tensors are created on."""
    global _current
    _current = _check_device(name)


def get_device():
    """The device new tensors are created on."""
    return _current


@contextlib.contextmanager
def device(name):
    """``with device("standin"): ...`` -- use a device for a block, then restore the previous one."""
    previous = get_device()
    set_device(name)
    try:
        yield
    finally:
        set_device(previous)


def module_for(device_name):
    """The array module of a device."""
    _check_device(device_name)
    return {"cpu": np, "standin": standin_xp, "cuda": _cupy}[device_name]


def get_array_module(*arrays):
    """The array module (``xp``) of some arrays: cupy, the stand-in, or numpy."""
    for a in arrays:
        if isinstance(a, StandInArray):
            return standin_xp
        if _cupy is not None and isinstance(a, _cupy.ndarray):
            return _cupy
    return np


def device_of(array):
    """The device name an array lives on."""
    xp = get_array_module(array)
    return "standin" if xp is standin_xp else "cuda" if xp is _cupy and _cupy is not None else "cpu"


def is_array(obj):
    """Whether ``obj`` is an array of any device."""
    return isinstance(obj, (np.ndarray, StandInArray)) or (
        _cupy is not None and isinstance(obj, _cupy.ndarray))


def to_device(data, device_name=None, dtype=None):
    """Copy host data (list, scalar, NumPy array) or another device's array to a device.

    Python floats (lists, scalars) become float32 and Python ints int64, as in PyTorch; arrays
    keep their dtype unless ``dtype`` is given.
    """
    device_name = device_name or _current
    was_array = is_array(data) or isinstance(data, np.generic)  # NumPy scalars keep their dtype
    host = np.asarray(to_numpy(data) if is_array(data) else data, dtype=dtype)
    if dtype is None and not was_array and host.dtype.kind in "fiu":
        host = host.astype(np.float32 if host.dtype.kind == "f" else np.int64)
    if device_name == "cpu":
        return host
    if device_name == "standin":
        return StandInArray(host.copy())
    return module_for("cuda").asarray(host)


def to_numpy(array):
    """Explicit copy of device data to a host NumPy array (NumPy input is returned as is)."""
    if isinstance(array, np.ndarray):
        return array
    if isinstance(array, StandInArray) or (_cupy is not None and isinstance(array, _cupy.ndarray)):
        return array.get()
    return np.asarray(array)


# ----------------------------------------------------------------------------------------------
# The few operations whose spelling differs between NumPy and CuPy
# ----------------------------------------------------------------------------------------------
def scatter_add(target, indices, values):
    """``target[indices] += values`` with repeated indices summed (NumPy's ``add.at``)."""
    if isinstance(target, StandInArray):
        np.add.at(target._a, _unwrap(indices, "scatter_add"), _unwrap(values, "scatter_add"))
    elif isinstance(target, np.ndarray):
        np.add.at(target, indices, values)
    else:
        import cupyx  # only reachable with CuPy installed
        cupyx.scatter_add(target, indices, values)
    return target


def as_strided(array, shape, strides):
    """A strided view of ``array`` (no copy); strides in bytes."""
    if isinstance(array, StandInArray):
        return StandInArray(np.lib.stride_tricks.as_strided(array._a, shape, strides, writeable=False))
    if isinstance(array, np.ndarray):
        return np.lib.stride_tricks.as_strided(array, shape, strides, writeable=False)
    return _cupy.lib.stride_tricks.as_strided(array, shape, strides)


class _StandInGenerator:
    def __init__(self, gen):
        self._gen = gen

    def __getattr__(self, name):
        return _standin_call(getattr(self._gen, name), f"rng.{name}")


def rng(seed=None, device_name=None):
    """A random generator producing arrays on a device (``default_rng`` API on every device)."""
    device_name = device_name or _current
    if device_name == "cpu":
        return np.random.default_rng(seed)
    if device_name == "standin":
        return _StandInGenerator(np.random.default_rng(seed))
    return _cupy.random.default_rng(seed)


# Default generators, one per device, all derived from one seed (``manual_seed``) so that a run
# is reproducible from a single number.
_seed = None
_default_generators = {}


def manual_seed(seed):
    """Seed the default generators of every device (dropout, initialisation, shuffling)."""
    global _seed
    _seed = seed
    _default_generators.clear()


def default_rng(device_name=None):
    """The default random generator of a device (see ``manual_seed``)."""
    device_name = device_name or _current
    if device_name not in _default_generators:
        _default_generators[device_name] = rng(_seed, device_name)
    return _default_generators[device_name]


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


# ----------------------------------------------------------------------------------------------
# Memory allocation (Linux, glibc)
# ----------------------------------------------------------------------------------------------
def _tune_malloc():
    """Keep freed array memory in the process instead of handing it back to the kernel.

    glibc serves allocations above 128 KiB with fresh ``mmap`` pages and unmaps them on free, so
    every new activation, gradient or column buffer of a training step is page-faulted in again,
    zeroed by the kernel first: measured on a ResNet-20 step with 2 threads, ~22,000 page faults
    and a quarter of the step's time. Raising the mmap threshold to 32 MiB (glibc's largest)
    and the trim threshold to 1 GiB makes freed blocks reusable: the faults fall to ~90 per step.
    The cost: memory freed by the process stays reserved for it, up to the trim threshold.
    Applied once, at import; set ``TINYDM_MALLOC_TUNING=0`` to leave malloc as it is.
    """
    if os.environ.get("TINYDM_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


MALLOC_TUNING = _tune_malloc()  # whether it was applied
