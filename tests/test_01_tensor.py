"""Lesson 1: tensors, the graph a forward pass records, and how backward walks it."""

import re
from pathlib import Path

import numpy as np
import pytest

import tinydm as td
from tinydm import backend
from conftest import checkout_env, tensor


def test_tensor_from_lists_is_float32_like_pytorch(device):
    x = td.Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.shape == (2, 2) and x.dtype == np.float32 and x.device == device
    assert td.Tensor([1, 2]).dtype == np.int64
    np.testing.assert_array_equal(x.numpy(), [[1, 2], [3, 4]])


def test_arrays_keep_their_dtype_and_host_arrays_move_to_the_current_device(device):
    x = td.Tensor(np.ones(3, dtype=np.float64))
    assert x.dtype == np.float64 and x.device == device


def test_chain_rule_on_a_scalar_expression(device):
    # y = (a * b + a) ** 2  =>  dy/da = 2 (ab + a)(b + 1), dy/db = 2 (ab + a) a
    a, b = tensor(3.0), tensor(-2.0)
    y = (a * b + a) ** 2
    y.backward()
    assert a.grad.item() == pytest.approx(2 * (3 * -2 + 3) * (-2 + 1))
    assert b.grad.item() == pytest.approx(2 * (3 * -2 + 3) * 3)


def test_a_tensor_used_twice_gets_the_sum_of_both_gradients(device):
    x = tensor([1.0, 2.0])
    y = (x * x + x).sum()  # dy/dx = 2x + 1, x appears three times
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 5.0])


def test_gradients_accumulate_across_backward_calls(device):
    x = tensor([1.0, 2.0])
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])


def test_diamond_graph_shared_intermediate(device):
    # h is consumed by two branches; its Function must run once, after both branches.
    x = tensor([0.5, -1.5])
    h = x.exp()
    y = (h * 2 + h * h).sum()
    y.backward()
    e = np.exp([0.5, -1.5])
    np.testing.assert_allclose(x.grad.numpy(), (2 + 2 * e) * e)


def test_a_graph_10000_ops_deep_needs_no_recursion(device):
    x = tensor(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_no_grad_records_nothing(device):
    x = tensor([1.0, 2.0])
    with td.no_grad():
        y = (x * 2).sum()
    assert not y.requires_grad and y.creator is None and td.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_backward_twice_through_a_freed_graph_is_a_clear_error(device):
    x = tensor([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_retain_graph_allows_a_second_backward(device):
    x = tensor([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]))


def test_backward_frees_saved_arrays(device):
    x = tensor([1.0, 2.0])
    h = x.exp()
    fn = h.creator
    h.sum().backward()
    assert fn.saved is None and fn.parents is None


def test_non_scalar_backward_needs_a_gradient(device):
    x = tensor([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar output.*\(2,\)"):
        y.backward()
    y.backward(np.array([1.0, -1.0]))  # host data is moved to the tensor's device
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -2.0])
    assert x.grad.device == device
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(td.Tensor(np.ones(3)))


def test_detach_cuts_the_graph(device):
    x = tensor([1.0, 2.0])
    y = (x.detach() * x).sum()  # only the second factor carries a gradient
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0])


def test_intermediates_are_not_kept_alive_by_the_graph(device):
    # Edges point to Functions, not tensors: an intermediate nobody saved is freed.
    import weakref
    x = tensor(np.ones((4, 4)))
    h = x + 1.0  # Add saves nothing
    ref = weakref.ref(h)
    y = (-h).sum()  # Neg and Sum save nothing either
    del h
    assert ref() is None
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), -np.ones((4, 4)))


# --- devices -------------------------------------------------------------------------------------
def test_unknown_device_and_missing_cupy_are_clear_errors():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        td.set_device("tpu")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        with pytest.raises(RuntimeError, match="needs CuPy"):
            td.set_device("cuda")
    assert td.get_device() == "cpu"


def test_the_standin_device_refuses_what_cupy_refuses():
    with backend.device("standin"):
        x = td.Tensor(np.arange(4.0))
    assert x.device == "standin"
    host = np.ones(4)
    with pytest.raises(backend.StandInError, match="host NumPy array"):
        x.data + host
    with pytest.raises(backend.StandInError, match="host NumPy array"):
        host * x.data
    with pytest.raises(backend.StandInError, match="implicit conversion"):
        np.asarray(x.data)
    with pytest.raises(TypeError):
        np.exp(x.data)
    with pytest.raises(backend.StandInError, match="host NumPy array"):
        x.data[np.array([0, 1])]
    with pytest.raises(backend.StandInError, match="host NumPy array"):
        backend.standin_xp.maximum(x.data, host)
    with pytest.raises(TypeError, match="device 'cpu'"):
        x + host
    # explicit transfers are fine
    np.testing.assert_array_equal(x.numpy(), np.arange(4.0))
    assert float(x.data.sum()) == 6.0


def test_tensors_move_between_devices():
    x = td.Tensor(np.arange(3.0))
    y = x.to("standin")
    assert y.device == "standin" and y.to("cpu").device == "cpu"
    np.testing.assert_array_equal(y.to("cpu").numpy(), x.numpy())


def test_env_var_selects_the_device():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import tinydm; print(tinydm.get_device())"],
                         env=checkout_env(TINYDM_DEVICE="standin"),
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "standin"


def test_scatter_add_sums_repeated_indices(device):
    xp = backend.module_for(device)
    target = xp.zeros(3)
    backend.scatter_add(target, xp.asarray([0, 0, 2]), xp.asarray([1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(backend.to_numpy(target), [3.0, 0.0, 5.0])


def test_generators_are_reproducible_on_every_device(device):
    a = backend.to_numpy(backend.rng(7).standard_normal(5))
    b = backend.to_numpy(backend.rng(7).standard_normal(5))
    np.testing.assert_array_equal(a, b)


# --- op code stays device-neutral ----------------------------------------------------------------
OP_CODE = ["tensor.py", "operators.py", "gradcheck.py", "functional", "losses", "nn", "optim.py",
           "train/loop.py", "train/schedules.py"]


def test_op_code_never_calls_numpy_directly():
    """Only tinydm/backend/ (and host-side data, analysis and plot code) may call ``np.``: op code
    uses ``xp``."""
    root = Path(td.__file__).parent
    missing = [name for name in OP_CODE if not (root / name).exists()]
    assert not missing, f"OP_CODE lists paths that do not exist: {missing}"
    files = [p for name in OP_CODE for p in (
        sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name])]
    offenders = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"(^|[^\w.])(np|numpy)\.\w", code) or re.match(r"\s*import numpy", code):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "op code must use xp, not NumPy:\n" + "\n".join(offenders)
