"""Lesson 16: what makes tinydm fast, and the proof that it changes no result.

* ``Function.needs_input_grad`` tells an op, before forward, which inputs want a gradient, so
  conv2d skips the gradient of the images themselves (the first layer's gx).
* conv2d works on the batch a few images at a time (its column matrices stay in the cache), the
  chunks shared out among threads: the results must not depend on the chunk size or the threads.
* The gradient of a stride-1 convolution w.r.t. its input is computed as a convolution (the
  transposed convolution); other strides and wide paddings take the col2im route: both checked.
* The large arrays come from tinydm's memory pool, reused once nobody refers to them: never
  while a view is alive, and with the same numbers as fresh arrays.
* benchmarks/run.py runs on a machine without PyTorch and cleans its own environment.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from tinydm import backend
from tinydm.backend import parallel as parallel_module
from tinydm.functional import conv as conv_module
from tinydm.tensor import Function
from conftest import DEVICES, ROOT, checkout_env, tensor


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


# --- the memory pool ---------------------------------------------------------------------------
def test_pool_hands_out_memory_again_only_once_nobody_refers_to_it():
    pool = backend.ArrayPool(min_bytes=1024)
    a = pool.empty((64, 32), np.float32)          # 8 KiB: a pooled block
    block = a.copy()                              # (not a reference: a's memory is compared)
    address = a.__array_interface__["data"][0]
    view = a[3:5]                                 # a view keeps the block in use...
    del a
    b = pool.empty((64, 32), np.float32)
    assert not np.shares_memory(b, view)
    del view                                      # ...until the last view goes
    c = pool.empty((32, 64), np.float32)          # another shape of the same size
    assert c.__array_interface__["data"][0] == address
    assert c.shape == (32, 64) and c.dtype == np.float32 and block.shape == (64, 32)
    d = pool.empty((2048,), np.float64)           # twice the size: a new block, not b's or c's
    assert not np.shares_memory(d, b) and not np.shares_memory(d, c)
    assert pool.stats() == {"bytes": 2 * 8192 + 16384, "in_use": 2 * 8192 + 16384, "blocks": 3}


def test_pool_fits_a_request_into_a_free_block_up_to_twice_its_size():
    pool = backend.ArrayPool(min_bytes=1024)
    address = pool.empty((4096,), np.uint8).__array_interface__["data"][0]  # made, freed
    small = pool.empty((500,), np.float32)        # 2,000 bytes: 4 KiB is over twice that
    fits = pool.empty((600,), np.float32)         # 2,400 bytes: the 4 KiB block fits
    assert fits.__array_interface__["data"][0] == address
    assert small.__array_interface__["data"][0] != address


def test_pool_holds_at_most_max_bytes_and_release_lets_free_blocks_go():
    pool = backend.ArrayPool(min_bytes=1024, max_bytes=10_000)
    kept = [pool.empty((4096,), np.uint8) for _ in range(2)]
    extra = pool.empty((4096,), np.uint8)         # over the limit: made, not kept
    assert pool.stats()["bytes"] == 8192 and extra.shape == (4096,)
    del kept[0]
    pool.release()
    assert pool.stats() == {"bytes": 4096, "in_use": 4096, "blocks": 1}
    assert pool.empty((10,), np.float32).base is None  # small arrays come from NumPy


def test_pool_lets_go_of_blocks_no_request_took_for_a_while():
    pool = backend.ArrayPool(min_bytes=1024, idle=16)  # checked every 2 requests
    big = pool.empty((8192,), np.uint8)           # an evaluation's larger batch, say
    held = pool.empty((8192,), np.uint8)          # still in use
    del big
    for _ in range(17):                           # training steps' requests, another size
        pool.empty((2048,), np.uint8)
    assert pool.stats() == {"bytes": 8192 + 2048, "in_use": 8192, "blocks": 2}
    assert held.shape == (8192,)


def test_zeros_from_the_pool_are_zero_even_in_reused_memory():
    a = backend.empty(np, (256, 256), np.float32)
    a.fill(7)
    del a
    assert not backend.zeros(np, (256, 256), np.float32).any()


@pytest.mark.parametrize("device", DEVICES)
def test_pooled_training_step_equals_one_without_the_pool(device, monkeypatch):
    """The pool changes where arrays live, never a number: a ResNet step's loss and gradients
    with the pool equal those with every array fresh from NumPy (max_bytes=0 keeps nothing)."""
    def step():
        td.manual_seed(0)
        with backend.device(device):
            model = td.nn.resnet_cifar(8)
            x = td.Tensor(np.random.default_rng(1).standard_normal((16, 3, 8, 8), np.float32))
            loss = td.losses.cce(model(x), td.Tensor(np.arange(16) % 10))
            loss.backward()
            loss2 = td.losses.cce(model(x), td.Tensor(np.arange(16) % 10))  # memory reused
        return [loss.numpy(), loss2.numpy()] + [p.grad.numpy() for p in model.parameters()]
    pooled = step()
    monkeypatch.setattr(backend.memory_pool, "max_bytes", 0)
    plain = step()
    for a, b in zip(pooled, plain):
        assert np.array_equal(a, b)


# --- the benchmark -------------------------------------------------------------------------------
def _load_benchmark(name="run"):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package: run.py is a script whose
    modules import each other from their folder, as they do when it runs)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _benchmark(tmp_path, *extra, env=None):
    """Run benchmarks/run.py with tiny settings; returns its JSON report."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--batch", "2",
           "--cases", "mlp_imdb", "--threads", "1", "--rounds", "1", "--sample-seconds", "0.02",
           "--min-steps", "2", "--warmup", "1", "--op-seconds", "0", "--memory-steps", "1",
           "--out", str(tmp_path), "--tag", "smoke", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env=env or checkout_env())
    assert out.returncode == 0, out.stderr
    return json.loads((tmp_path / "smoke.json").read_text())


def test_benchmark_runs_without_torch_in_fresh_clean_processes(tmp_path):
    # whatever this machine's environment holds, both forced-kernel variables are set here,
    # and the children must run without them and with one thread everywhere
    env = checkout_env(OPENBLAS_CORETYPE="Haswell", OPENBLAS_L2_SIZE="262144",
                       OMP_NUM_THREADS="7")
    report = _benchmark(tmp_path, "--no-torch", "--only", "steps", "concurrent", "memory", "ops",
                        "--ops", "relu", "cce", env=env)
    assert report["machine"]["environment_removed"] == {"OPENBLAS_CORETYPE": "Haswell",
                                                        "OPENBLAS_L2_SIZE": "262144"}
    child = report["children"]["tinydm"]
    assert set(report["children"]) == {"tinydm"} and child["tinydm_threads"] == 1
    assert child["environment"]["OPENBLAS_CORETYPE"] is None
    assert child["environment"]["OPENBLAS_L2_SIZE"] is None
    assert child["environment"]["OMP_NUM_THREADS"] == "1"
    assert len(report["machine"]["load_average_before"]) == 3
    step = report["steps"]["mlp_imdb"]["1"]
    assert "torch" not in step and "ratio" not in step
    assert step["tinydm"]["median"] > 0 and step["batch"] == 250
    if sys.platform.startswith("linux"):
        seen = step["os_threads"]["tinydm"]
        assert seen["threads_max"] >= 1 and 0 < seen["running_max"] <= seen["threads_max"]
    both = report["concurrent"]["mlp_imdb"]
    assert both["runs"] == 2
    s = both["frameworks"]["tinydm"]
    assert s["together_images_per_second"]["median"] > 0
    assert s["together_over_single"]["median"] == pytest.approx(
        s["together_images_per_second"]["median"] / s["single_images_per_second"]["median"])
    assert report["memory"]["mlp_imdb"]["1"]["tinydm"]["peak_delta_mib"] >= 0
    assert set(report["ops"]["1"]) == {"relu 16x32x32",
                                       "cce (128x10)"}
    assert "## Training steps" in (tmp_path / "smoke.md").read_text()


def test_benchmark_inference_and_gemm_share(tmp_path):
    report = _benchmark(tmp_path, "--no-torch", "--only", "inference", "profile",
                        "--cases", "resnet20", "mlp_imdb")
    assert set(report["inference"]) == {"resnet20"}  # no inference case for the MLP
    assert report["inference"]["resnet20"]["1"]["tinydm"]["median"] > 0
    for case in ("resnet20", "mlp_imdb"):
        profile = report["profile"][case]["1"]
        share = profile["gemm_share"]["median"]
        assert 0 < share < 1  # some, not all, of a step is matrix products
        assert share == pytest.approx(profile["samples"][0]["gemm_seconds"]
                                      / profile["samples"][0]["step_seconds"])
    text = (tmp_path / "smoke.md").read_text()
    assert "## Inference" in text and "GEMM share" in text


def test_benchmark_against_torch(tmp_path):
    pytest.importorskip("torch")
    report = _benchmark(tmp_path, "--only", "steps", "--no-probe")
    step = report["steps"]["mlp_imdb"]["1"]
    assert step["ratio"]["median"] == pytest.approx(step["tinydm"]["median"]
                                                    / step["torch"]["median"])
    assert report["children"]["torch"]["torch_threads"] == 1


def test_benchmark_pairs_rounds_and_targets():
    run, report = _load_benchmark(), _load_benchmark("report")
    calls = []
    samples = run.paired(["tinydm", "torch"], lambda fw, r: calls.append(fw) or (r + 1.0), 3)
    assert calls == ["tinydm", "torch", "torch", "tinydm", "tinydm", "torch"]  # order flips
    result = run.compare({"tinydm": [2.0, 6.0, 3.0], "torch": [1.0, 2.0, 3.0]})
    assert samples["torch"] == [1.0, 2.0, 3.0]
    assert result["ratio"]["median"] == 2.0  # median of the rounds' ratios 2, 3, 1
    assert result["tinydm"]["median"] == 3.0 and result["ratio"]["n"] == 3
    assert report.verdict("cpu", "step", "mlp_imdb", 1, 0.7) == "<= 0.8: met"
    assert report.verdict("cpu", "step", "mlp_imdb", 2, 0.7) == ""  # the MLP target is 1 thread
    assert report.verdict("cpu", "step", "resnet56", 2, 1.5) == "<= 1.4: NOT met"
    assert report.verdict("cpu", "profile", "resnet20", 1, 0.75) == ">= 70%: met"


def test_benchmark_child_environment_and_thread_watch(monkeypatch):
    run = _load_benchmark()
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    env, removed = run.child_environment(3)
    assert removed == {"OPENBLAS_L2_SIZE": "1"}
    assert not set(run.STRIPPED) & set(env)
    assert all(env[k] == "3" for k in run.THREAD_VARS)
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs Linux's /proc")
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\n"
                             "while time.time() - t < 0.3: pass"])
    seen = run.watch_threads([spin])[spin.pid]
    assert seen["running_max"] == 1 and seen["threads_max"] >= 1 and seen["looks"] > 1


def test_gpu_check_fails_clearly_without_a_gpu(tmp_path):
    if "cuda" in DEVICES:
        pytest.skip("a GPU is here: benchmarks/gpu_check.sh would run the whole check")
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60,
                         env=checkout_env(PYTHON=sys.executable))
    assert out.returncode == 2
    assert "gpu_check: no usable GPU: CuPy and an NVIDIA GPU are needed" in out.stderr
    assert not (tmp_path / "report.md").exists()



@pytest.mark.parametrize("padding", [1, (2, 1)])
def test_conv2d_padded_grid_matches_plain_columns(device, rng, monkeypatch, padding):
    """The padded-grid columns (stride 1, conv.py's _Columns) against the plain im2col layout:
    the same outputs and gradients, each chunk of one image so the slack past the last channel
    of a chunk is exercised."""
    x_np, w_np = rng.standard_normal((3, 2, 5, 6)), rng.standard_normal((4, 2, 3, 3))
    b_np = rng.standard_normal(4)
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 1)
    grid = _conv_and_grads(x_np, w_np, b_np, 1, padding)
    plain_columns = conv_module._Columns.__init__

    def no_grid(self, *args, grid=False):
        plain_columns(self, *args, grid=False)
    monkeypatch.setattr(conv_module._Columns, "__init__", no_grid)
    plain = _conv_and_grads(x_np, w_np, b_np, 1, padding)
    for a, b in zip(grid, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_benchmark_records_its_command_without_machine_paths(monkeypatch, tmp_path):
    run = _load_benchmark()
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = [str(tmp_path / "venv" / "bin" / "python"), str(ROOT / "benchmarks" / "run.py"),
            "--tag", "x"]
    assert run.portable_command(argv) == "~/venv/bin/python benchmarks/run.py --tag x"
