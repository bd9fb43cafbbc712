"""Lesson 3: activations and the linear layer."""

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from tinydm import backend
from conftest import tensor


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax(device, rng, axis):
    x_np = rng.standard_normal((4, 5)) * 3
    x = tensor(x_np)
    np.testing.assert_allclose(F.softmax(x, axis).numpy(), np_softmax(x_np, axis), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, axis).numpy(), np.log(np_softmax(x_np, axis)), rtol=1e-12)
    assert td.gradcheck(lambda t: F.softmax(t, axis), x)
    assert td.gradcheck(lambda t: F.log_softmax(t, axis), x)


def test_softmax_is_stable_for_extreme_logits(device):
    for dtype in (np.float32, np.float64):
        x = td.Tensor(np.array([[-1000.0, 1.0], [1e4, -1e4], [0.0, 0.0]], dtype=dtype), requires_grad=True)
        p, logp = F.softmax(x), F.log_softmax(x)
        assert np.isfinite(p.numpy()).all() and np.isfinite(logp.numpy()).all()
        np.testing.assert_allclose(p.numpy()[0], [0.0, 1.0])
        np.testing.assert_allclose(logp.numpy()[0], [-1001.0, 0.0])
        g = td.Tensor(np.array([[1.0, -2.0], [0.5, 0.5], [3.0, 1.0]], dtype=dtype))
        logp.backward(g)
        assert np.isfinite(x.grad.numpy()).all()
    x = tensor(np.array([[-1000.0, 1.0, 0.5]]))
    assert td.gradcheck(F.softmax, x) and td.gradcheck(F.log_softmax, x)


def test_softmax_keeps_its_output_not_its_input(device, rng):
    x = tensor(rng.standard_normal((2, 3)))
    y = F.softmax(x)
    (saved,) = y.creator.saved
    np.testing.assert_array_equal(backend.to_numpy(saved), y.numpy())


def test_relu_keeps_only_a_mask(device):
    x = tensor([-1.0, 0.5, 2.0])
    y = F.relu(x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 2.0])
    assert y.creator.saved[0].dtype == bool


def test_relu_without_grad_makes_no_mask(device):
    x = tensor([-1.0, 0.5, 2.0])
    with td.no_grad():
        op = F.activation.ReLU()
        y = op(x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 2.0])
    assert y.creator is None and op.saved == ()


@pytest.mark.parametrize("b_shape", [(3, 2, 4, 5), (2, 1, 1), ()])
def test_add_relu_is_relu_of_the_sum(device, rng, b_shape):
    """The residual join: the values of relu(a + b), and finite differences with a random
    upstream gradient for both inputs, broadcasting included (b summed back to its shape)."""
    a = tensor(rng.standard_normal((3, 2, 4, 5)))
    b = tensor(rng.standard_normal(b_shape))
    y = F.add_relu(a, b)
    np.testing.assert_array_equal(y.numpy(), F.relu(a + b).numpy())
    assert td.gradcheck(F.add_relu, a, b)


def test_add_relu_on_large_batches_equals_add_then_relu(device, rng):
    """Batches of several cache-sized runs and thread parts give the same numbers as the two
    ops, and the op keeps only the boolean mask."""
    shape = (40, 16, 32, 32)  # 2.5 MiB: two thread parts, several runs each
    a, b = (td.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
            for _ in range(2))
    gy = rng.standard_normal(shape).astype(np.float32)
    fused = F.add_relu(a, b)
    assert [t.dtype for t in fused.creator.saved] == [bool]
    fused.backward(td.Tensor(gy))
    fused_grads = a.grad.numpy().copy(), b.grad.numpy().copy()
    a.grad = b.grad = None
    plain = F.relu(a + b)
    plain.backward(td.Tensor(gy))
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())
    np.testing.assert_array_equal(fused_grads[0], a.grad.numpy())
    np.testing.assert_array_equal(fused_grads[1], b.grad.numpy())


def test_add_relu_errors_name_the_op(device):
    with pytest.raises(ValueError, match="add_relu"):
        F.add_relu(tensor(np.zeros((2, 3))), tensor(np.zeros((4,))))


def test_dropout(device):
    x = tensor(np.ones((200, 50)))
    y = F.dropout(x, p=0.3, training=True, generator=backend.rng(0))
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7)
    assert F.dropout(x, p=0.3, training=False) is x
    small = tensor(np.random.default_rng(1).standard_normal((3, 4)))
    assert td.gradcheck(lambda t: F.dropout(t, 0.5, generator=backend.rng(3)), small)
    with pytest.raises(ValueError, match="dropout: p must be in"):
        F.dropout(x, p=1.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (1, 4)], ids=str)
def test_linear(device, rng, bias, shape):
    x_np, w_np, b_np = rng.standard_normal(shape), rng.standard_normal((3, 4)), rng.standard_normal(3)
    x, w = tensor(x_np), tensor(w_np)
    b = tensor(b_np) if bias else None
    expected = x_np @ w_np.T + (b_np if bias else 0)
    np.testing.assert_allclose(F.linear(x, w, b).numpy(), expected, rtol=1e-12)
    inputs = (x, w, b) if bias else (x, w)
    assert td.gradcheck(lambda *t: F.linear(*t), *inputs)


def test_linear_errors_show_shapes(device):
    x, w = tensor(np.ones((5, 4))), tensor(np.ones((3, 6)))
    with pytest.raises(ValueError, match=r"linear: input of shape \(5, 4\) does not match "
                                         r"weight of shape \(3, 6\)"):
        F.linear(x, w)
    with pytest.raises(ValueError, match=r"linear: bias has shape \(2,\), expected \(3,\)"):
        F.linear(x, tensor(np.ones((3, 4))), tensor(np.ones(2)))
