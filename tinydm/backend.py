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

import contextlib
import functools
import os
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
