"""Shared fixtures: every op test runs on each device (NumPy, the CPU stand-in for CuPy, and CUDA
when a GPU is present), and leaves the current device as it found it."""

import os
from pathlib import Path

import numpy as np
import pytest

import tinydm as td
from tinydm import backend


def _cuda_usable():
    try:
        backend.module_for("cuda")
        backend.check_device("cuda")
        return True
    except Exception:
        return False


ROOT = Path(__file__).resolve().parents[1]


def checkout_env(drop=(), **variables):
    """The environment for a child Python process that must import this checkout's tinydm, not
    whichever one is installed (a worktree, a second clone): ``os.environ`` with the checkout
    first on ``PYTHONPATH``, the names in ``drop`` removed and ``variables`` set."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + inherited)
    return {**env, **variables}


DEVICES = ["cpu", "standin"] + (["cuda"] if _cuda_usable() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Run the test on a device, restoring the previous one afterwards."""
    with backend.device(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def blobs(n, seed, dim=100, apart=0.8):
    """Synthetic IMDB-like features: two Gaussian blobs of ``n // 2`` examples each (labels 1 and
    0), ``apart`` from the origin along 10 of the ``dim`` axes (Bayes accuracy ~99% at 0.8)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([1, 0], n // 2)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[:, :10] += apart * (2 * y[:, None] - 1)
    return x, y


def tensor(array, requires_grad=True, dtype=np.float64):
    """A float64 leaf tensor on the current device (for gradient checks)."""
    return td.Tensor(np.asarray(array, dtype=dtype), requires_grad=requires_grad)


def pytest_collection_modifyitems(config, items):
    if _cuda_usable():
        return
    skip = pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
