"""The ``"standin"`` device: a CPU stand-in for CuPy, used by CI.

NumPy underneath, but every array is wrapped in :class:`StandInArray`, which fails exactly where
CuPy fails: mixing a host NumPy array into device computation, or converting device data to host
implicitly (``np.asarray(x)``, ``np.exp(x)``). Running the whole op suite on it proves that op
code keeps data on the device, without a GPU.
"""

import functools
import types

import numpy as np


class StandInError(TypeError):
    """Raised where CuPy would refuse: host data mixed into device work, or implicit host copies."""


def unwrap(obj, where):
    """Replace StandInArrays by their NumPy data; refuse host arrays (as CuPy does)."""
    if isinstance(obj, StandInArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise StandInError(
            f"{where}: a host NumPy array of shape {obj.shape} was mixed into device computation; "
            "move it to the device first (tinydm.backend.to_device / Tensor(...))")
    if isinstance(obj, (list, tuple)):
        return type(obj)(unwrap(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: unwrap(v, where) for k, v in obj.items()}
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


def standin_call(fn, name):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return _wrap(fn(*unwrap(args, name), **unwrap(kwargs, name)))
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
        return standin_call(attr, f"ndarray.{name}") if callable(attr) else _wrap(attr)

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
        return _wrap(self._a[unwrap(key, "__getitem__")])

    def __setitem__(self, key, value):
        self._a[unwrap(key, "__setitem__")] = unwrap(value, "__setitem__")

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
        return _wrap(method(self._a, unwrap(other, name)))
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
            return standin_call(attr, f"xp.{name}")
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


class StandInGenerator:
    """A NumPy ``Generator`` whose arrays are stand-in device arrays."""

    def __init__(self, gen):
        self._gen = gen

    def __getattr__(self, name):
        return standin_call(getattr(self._gen, name), f"rng.{name}")
