"""Tensor among Python and NumPy: ``np.asarray`` on host tensors (and a clear error on device
ones), ``len``, iteration over the first dimension, and a PyTorch-like repr."""

import numpy as np
import pytest

import tinydm as td


def test_asarray_of_a_host_tensor_is_its_data_without_a_copy():
    t = td.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device="cpu")
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.shape == (2, 3) and a.dtype == np.float32
    assert np.shares_memory(a, t.data)
    np.testing.assert_array_equal(a, t.numpy())


def test_asarray_with_a_dtype_or_copy_makes_a_new_array():
    t = td.Tensor(np.ones(3, dtype=np.float32), device="cpu")
    as64 = np.asarray(t, dtype=np.float64)
    assert as64.dtype == np.float64 and not np.shares_memory(as64, t.data)
    copied = np.array(t, copy=True)
    assert not np.shares_memory(copied, t.data)
    np.testing.assert_array_equal(copied, t.data)
    assert t.__array__(copy=False) is t.data
    with pytest.raises(ValueError, match="needs a copy"):
        t.__array__(np.float64, copy=False)


def test_numpy_functions_accept_host_tensors():
    t = td.Tensor([[1.0, 2.0], [3.0, 4.0]], device="cpu")
    assert float(np.sum(np.asarray(t))) == 10.0
    np.testing.assert_allclose(np.stack([np.asarray(t), np.asarray(t)]).shape, (2, 2, 2))


def test_asarray_of_a_device_tensor_says_to_copy_to_the_host():
    t = td.Tensor(np.ones((2, 2), dtype=np.float32), device="standin")
    with pytest.raises(TypeError, match=r"device 'standin'.*\.numpy\(\)"):
        np.asarray(t)
    np.testing.assert_array_equal(t.numpy(), np.ones((2, 2)))  # the explicit way works


def test_len_is_the_first_dimension_and_a_0d_tensor_has_none():
    assert len(td.Tensor(np.zeros((4, 3)))) == 4
    assert len(td.Tensor(np.zeros(0))) == 0
    with pytest.raises(TypeError, match="0-d"):
        len(td.Tensor(3.0))


def test_iteration_yields_the_rows_as_tensors_in_the_graph(device):
    x = td.Tensor(np.arange(6, dtype=np.float64).reshape(3, 2), requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, td.Tensor) and r.shape == (2,) for r in rows)
    np.testing.assert_array_equal(rows[2].numpy(), [4.0, 5.0])
    (rows[0].sum() + 2 * rows[2].sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 1], [0, 0], [2, 2]])
    with pytest.raises(TypeError, match="0-d"):
        iter(td.Tensor(1.0))


def test_repr_reads_like_pytorchs():
    assert repr(td.Tensor([1.0, 2.0], device="cpu")) == "tensor([1., 2.])"
    assert repr(td.Tensor(np.array([1, 2]), device="cpu")) == "tensor([1, 2])"
    x = td.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, device="cpu")
    assert repr(x) == "tensor([[1., 2.],\n        [3., 4.]], requires_grad=True)"
    assert repr(x * 2).endswith("grad_fn=<Mul>)")
    assert repr(td.Tensor(np.zeros(2), device="cpu")) == "tensor([0., 0.], dtype=float64)"
    on_device = repr(td.Tensor([1.0], device="standin"))
    assert on_device == "tensor([1.], device='standin')"
