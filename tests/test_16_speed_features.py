"""Lesson 16: what makes tinydm fast, and the proof that it changes no result.

* ``Function.needs_input_grad`` tells an op, before forward, which inputs want a gradient, so
  conv2d skips the gradient of the images themselves (the first layer's gx).
* conv2d works on the batch a few images at a time (its column matrices stay in the cache), the
  chunks shared out among threads: the results must not depend on the chunk size or the threads.
* The gradient of a stride-1 convolution w.r.t. its input is computed as a convolution (the
  transposed convolution); other strides and wide paddings take the col2im route: both checked.
* benchmarks/run.py runs on a machine without PyTorch and cleans its own environment.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from tinydm import backend
from tinydm.backend import parallel as parallel_module
from tinydm.functional import conv as conv_module
from tinydm.tensor import Function
from conftest import tensor

ROOT = Path(__file__).resolve().parents[1]


# --- needs_input_grad --------------------------------------------------------------------------
class _Record(Function):
    """y = a + b, remembering what needs_input_grad said."""

    def forward(self, a, b):
        self.seen = self.needs_input_grad
        return a + b

    def backward(self, gy):
        return gy, gy


def test_needs_input_grad_is_known_before_forward(device):
    a, b = tensor([1.0]), tensor([2.0], requires_grad=False)
    op = _Record()
    op(a, b)
    assert op.seen == (True, False)
    op = _Record()
    op(b, np.ones(1))  # a raw array is a constant input
    assert op.seen == (False, False)
    with td.no_grad():
        op = _Record()
        op(a, a)
        assert op.seen == (False, False)


def test_conv2d_skips_the_gradient_of_its_images(device, rng, monkeypatch):
    x = tensor(rng.standard_normal((2, 3, 5, 5)), requires_grad=False)
    w = tensor(rng.standard_normal((4, 3, 3, 3)))

    def refuse(*args):
        raise AssertionError("gx computed for an input that needs no gradient")
    monkeypatch.setattr(conv_module.Conv2d, "_transposed_grads", refuse)
    monkeypatch.setattr(conv_module.Conv2d, "_col2im_input_grad", refuse)
    F.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad is not None


# --- chunks and threads change nothing -----------------------------------------------------------
CHUNK_CASES = [  # x shape, w shape, stride, padding: transposed-conv and col2im routes
    ((9, 3, 6, 6), (4, 3, 3, 3), 1, 1),
    ((9, 2, 7, 6), (3, 2, 3, 2), (2, 1), 1),
    ((9, 2, 4, 4), (3, 2, 1, 1), 1, 1),      # padding wider than the kernel: col2im
]


def _conv_and_grads(x_np, w_np, b_np, stride, padding):
    x, w, b = tensor(x_np), tensor(w_np), tensor(b_np)
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    y.backward(td.Tensor(np.cos(np.arange(y.size)).reshape(y.shape)))
    return [t.numpy() for t in (y, x.grad, w.grad, b.grad)]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CHUNK_CASES)
def test_conv2d_results_do_not_depend_on_chunks_or_threads(device, rng, monkeypatch, x_shape,
                                                           w_shape, stride, padding):
    x_np, w_np = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b_np = rng.standard_normal(w_shape[0])
    whole = _conv_and_grads(x_np, w_np, b_np, stride, padding)  # one chunk: the whole batch
    assert td.gradcheck(lambda *a: F.conv2d(*a, stride=stride, padding=padding),
                        tensor(x_np), tensor(w_np), tensor(b_np), mode="directional")
    # chunks of one image (9 of them, so that two threads get four or more), on 1 and 3 threads
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 1)
    threads = backend.get_num_threads()
    try:
        backend.set_num_threads(1)
        serial = _conv_and_grads(x_np, w_np, b_np, stride, padding)
        backend.set_num_threads(3)
        parallel = _conv_and_grads(x_np, w_np, b_np, stride, padding)
    finally:
        backend.set_num_threads(threads)
    for a, b, c in zip(whole, serial, parallel):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(c, b)  # threads: bit for bit the same


@pytest.mark.parametrize("op", ["batch_norm_train", "batch_norm_eval", "relu"])
def test_batch_parts_on_threads_change_nothing(device, rng, monkeypatch, op):
    """batch_norm and relu share the batch out among threads in parts (map_batch_parts)."""
    x_np = rng.standard_normal((7, 3, 4, 5))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5

    def run():
        x, g, b = tensor(x_np), tensor(gamma), tensor(beta)
        stats = [backend.to_device(a.copy()) for a in (mean, var)]
        if op == "relu":
            fn, args = F.relu, (x,)
        else:
            def fn(*a):
                return F.batch_norm(*a, *stats, training=op == "batch_norm_train")
            args = (x, g, b)
        y = fn(*args)
        y.backward(td.Tensor(np.sin(np.arange(y.size)).reshape(y.shape)))
        return ([y.numpy()] + [a.grad.numpy() for a in args]
                + [backend.to_numpy(a).copy() for a in stats], fn, args)

    whole, _, _ = run()  # the inputs are under CHUNK_BYTES: one part
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 64)  # now 3 parts of 3, 3 and 1 examples
    threads = backend.get_num_threads()
    try:
        backend.set_num_threads(3)
        parts, fn, args = run()
        assert td.gradcheck(fn, *args, mode="directional")
    finally:
        backend.set_num_threads(threads)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_conv2d_float32_stays_float32_and_gives_contiguous_nchw(device, rng):
    x = td.Tensor(rng.standard_normal((3, 2, 5, 5)).astype(np.float32), requires_grad=True)
    w = td.Tensor(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.dtype == np.float32 and y.data.flags["C_CONTIGUOUS"]
    y.backward(td.Tensor(np.ones(y.shape, np.float32)))
    assert x.grad.dtype == w.grad.dtype == np.float32


# --- the thread pool -----------------------------------------------------------------------------
def test_map_batch_parts_cuts_big_batches_only(monkeypatch):
    threads = backend.get_num_threads()
    try:
        backend.set_num_threads(3)
        small = np.zeros((10, 4))
        assert backend.map_batch_parts(lambda p: p, small) == [...]
        monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 8)
        assert backend.map_batch_parts(lambda p: p, small) == [slice(0, 4), slice(4, 8),
                                                               slice(8, 10)]
        assert backend.map_batch_parts(lambda p: p, np.zeros(())) == [...]
        # chunks of CHUNK_BYTES // item_bytes rows, dealt out to 3 threads, back in order
        assert backend.map_batch_chunks(lambda c: c, small, 2) == [
            slice(0, 4), slice(4, 8), slice(8, 10)]
        assert backend.map_batch_chunks(lambda c: c, small, 3) == [
            slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8), slice(8, 10)]
    finally:
        backend.set_num_threads(threads)


def test_parallel_map_keeps_order_and_set_num_threads_checks(monkeypatch):
    threads = backend.get_num_threads()
    try:
        for n in (1, 2, 4):
            backend.set_num_threads(n)
            assert backend.parallel_map(lambda i: i * i, range(7)) == [i * i for i in range(7)]
        with pytest.raises(ValueError, match="set_num_threads: n must be a positive int"):
            backend.set_num_threads(0)
    finally:
        backend.set_num_threads(threads)


def test_parallel_map_keeps_blas_to_one_thread_inside():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads = backend.get_num_threads()
    try:
        backend.set_num_threads(2)
        seen = backend.parallel_map(
            lambda _: [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                       if lib["user_api"] == "blas"], range(2))
    finally:
        backend.set_num_threads(threads)
    assert all(n == 1 for per_item in seen for n in per_item)


def test_malloc_tuning_is_opt_in_and_can_be_switched_off():
    code = ("import tinydm; print(tinydm.backend.malloc_tuned()); "
            "print(tinydm.backend.tune_malloc())")
    env = {k: v for k, v in os.environ.items() if k != "TINYDM_MALLOC_TUNING"}
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                        env=dict(env, PYTHONPATH=str(ROOT)))
    imported, applied = on.stdout.split()
    assert imported == "False"  # import tinydm leaves malloc alone
    if sys.platform.startswith("linux"):  # glibc: the tuning takes when asked for
        assert applied == "True"
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(env, TINYDM_MALLOC_TUNING="0", PYTHONPATH=str(ROOT)))
    assert off.stdout.split() == ["False", "False"]


# --- the benchmark -------------------------------------------------------------------------------
def test_benchmark_runs_without_torch_and_cleans_its_environment(tmp_path):
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--no-torch", "--batch", "2",
           "--cases", "mlp_imdb", "--only", "steps", "memory", "ops", "--ops", "conv2d 16->32",
           "relu", "cce", "--repeats", "2", "--warmup", "1", "--min-sample", "0",
           "--memory-steps", "1", "--out", str(tmp_path), "--tag", "smoke"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["machine"]["environment"]["removed"] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert set(report["steps"]) == {"mlp_imdb"} and "torch" not in report["steps"]["mlp_imdb"]
    assert report["steps"]["mlp_imdb"]["tinydm"]["median"] > 0
    assert set(report["ops"]) == {"conv2d 16->32 32x32 s2", "relu 16x32x32", "cce (128x10)"}
    assert report["memory"]["mlp_imdb"]["tinydm"]["peak_delta_mib"] >= 0
    assert "## Training steps" in (tmp_path / "smoke.md").read_text()
