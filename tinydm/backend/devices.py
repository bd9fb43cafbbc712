"""Devices and array modules: which device new tensors live on, and the few operations whose
spelling differs between NumPy and CuPy.

Op code never imports numpy or cupy. It asks for the array module of its inputs,
``xp = get_array_module(x)``, and calls ``xp.exp``, ``xp.matmul``, ... The places where NumPy
and CuPy differ are hidden behind helpers here: :func:`scatter_add`, :func:`as_strided`,
:func:`to_numpy`, :func:`to_device`, :func:`rng`.
"""

import contextlib
import os

import numpy as np
from typing import Any

from .standin import StandInArray, StandInGenerator, standin_xp, unwrap

try:  # CuPy is optional: the package must import and work without it.
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None

DEVICES = ("cpu", "cuda", "standin")


# ----------------------------------------------------------------------------------------------
# Device selection
# ----------------------------------------------------------------------------------------------
def check_device(name):
    """``name`` if it is a usable device; otherwise a clear error saying why not."""
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


_current = check_device(os.environ.get("TINYDM_DEVICE", "cpu"))


def set_device(name):
    """Make ``name`` ("cpu", "cuda" or "standin") the device new tensors are created on."""
    global _current
    _current = check_device(name)


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
    check_device(device_name)
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


def array_text(array, prefix=""):
    """The values of ``array`` (any device) as NumPy prints them, rows aligned after ``prefix``
    and separated by commas (for Tensor's repr)."""
    return np.array2string(to_numpy(array), separator=", ", prefix=prefix)


# ----------------------------------------------------------------------------------------------
# The few operations whose spelling differs between NumPy and CuPy
# ----------------------------------------------------------------------------------------------
def scatter_add(target, indices, values):
    """``target[indices] += values`` with repeated indices summed (NumPy's ``add.at``)."""
    if isinstance(target, StandInArray):
        np.add.at(target._a, unwrap(indices, "scatter_add"), unwrap(values, "scatter_add"))
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


def rng(seed=None, device_name=None):
    """A random generator producing arrays on a device (``default_rng`` API on every device)."""
    device_name = device_name or _current
    if device_name == "cpu":
        return np.random.default_rng(seed)
    if device_name == "standin":
        return StandInGenerator(np.random.default_rng(seed))
    return _cupy.random.default_rng(seed)


# Default generators, one per device, all derived from one seed (``manual_seed``) so that a run
# is reproducible from a single number.
_seed = None
_default_generators: dict[str, Any] = {}


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


