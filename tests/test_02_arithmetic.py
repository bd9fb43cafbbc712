"""Lesson 2: elementwise ops, broadcasting, matmul, reductions and shape ops.

Each op is checked twice: its forward against plain NumPy, and its hand-written backward against
finite differences (td.gradcheck: float64, random upstream gradient)."""

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from tinydm.functional.arithmetic import unbroadcast
from conftest import tensor

# (name, tinydm function, NumPy reference, input shapes); broadcast shapes included on purpose.
BINARY = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("div", lambda a, b: a / b, np.divide),
]
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((5, 1), (1, 6))]


def _positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_ops_with_broadcasting(device, rng, name, op, ref, shapes):
    a_np, b_np = rng.standard_normal(shapes[0]), _positive(rng, shapes[1])
    a, b = tensor(a_np), tensor(b_np)
    np.testing.assert_allclose(op(a, b).numpy(), ref(a_np, b_np), rtol=1e-12)
    assert td.gradcheck(op, a, b)


def test_python_numbers_on_either_side(device):
    x = tensor([1.0, 2.0])
    np.testing.assert_allclose((2 - x).numpy(), [1.0, 0.0])
    np.testing.assert_allclose((1 / x).numpy(), [1.0, 0.5])
    np.testing.assert_allclose((3 * x + 1).numpy(), [4.0, 7.0])
    assert (x * 2).dtype == np.float64  # a Python number takes the tensor's dtype
    assert td.gradcheck(lambda t: 2 / t - 3 * t, x)


UNARY = [
    ("neg", lambda x: -x, np.negative),
    ("exp", lambda x: x.exp(), np.exp),
    ("log", lambda x: x.log(), np.log),
    ("pow3", lambda x: x ** 3, lambda a: a ** 3),
    ("pow-0.5", lambda x: x ** -0.5, lambda a: a ** -0.5),
    ("relu", F.relu, lambda a: np.maximum(a, 0)),
]


@pytest.mark.parametrize("name,op,ref", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops(device, rng, name, op, ref):
    x_np = _positive(rng, (3, 5)) if name in ("log", "pow-0.5") else rng.standard_normal((3, 5))
    x = tensor(x_np)
    np.testing.assert_allclose(op(x).numpy(), ref(x_np), rtol=1e-12)
    assert td.gradcheck(op, x)


def test_ops_on_non_contiguous_inputs(device, rng):
    base = rng.standard_normal((4, 6))
    # views made on the device (a transfer to a device copies into contiguous memory)
    x = td.Tensor(tensor(base).data.T, requires_grad=True)  # transposed: non-contiguous
    assert not x.data.flags["C_CONTIGUOUS"]
    y = td.Tensor(tensor(rng.standard_normal((6, 4))).data[:, ::2], requires_grad=True)
    np.testing.assert_allclose((x[:, :2] * y).numpy(), base.T[:, :2] * y.numpy())
    assert td.gradcheck(lambda a, b: (a[:, :2] * b).exp(), x, y)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)),
                                   ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2))], ids=str)
def test_matmul(device, rng, sa, sb):
    a_np, b_np = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = tensor(a_np), tensor(b_np)
    np.testing.assert_allclose((a @ b).numpy(), a_np @ b_np, rtol=1e-12)
    assert td.gradcheck(lambda u, v: u @ v, a, b)


def test_matmul_shape_errors_name_the_op_and_shapes(device):
    with pytest.raises(ValueError, match=r"matmul: inner dimensions differ: \(3, 4\) @ \(5, 2\)"):
        tensor(np.ones((3, 4))) @ tensor(np.ones((5, 2)))


def test_broadcast_errors_name_the_op_and_shapes(device):
    with pytest.raises(ValueError, match=r"add: shapes \(3, 4\) and \(3,\) cannot be broadcast"):
        tensor(np.ones((3, 4))) + tensor(np.ones(3))


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False),
                                           (-1, False)], ids=str)
@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
def test_reductions(device, rng, reduction, axis, keepdims):
    x_np = rng.standard_normal((3, 4, 5))
    x = tensor(x_np)
    out = getattr(x, reduction)(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.numpy(), getattr(np, reduction)(x_np, axis=axis, keepdims=keepdims))
    assert td.gradcheck(lambda t: getattr(t, reduction)(axis=axis, keepdims=keepdims), x)


def test_max_shares_the_gradient_among_ties(device):
    x = tensor([1.0, 3.0, 3.0, 2.0])
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 0.5, 0.0])


def test_reduction_axis_errors(device):
    with pytest.raises(ValueError, match="sum: axis 3 is out of range"):
        tensor(np.ones((2, 3))).sum(axis=3)


def test_shape_ops(device, rng):
    x_np = rng.standard_normal((2, 3, 4))
    x = tensor(x_np)
    np.testing.assert_array_equal(x.reshape(6, 4).numpy(), x_np.reshape(6, 4))
    np.testing.assert_array_equal(x.transpose(2, 0, 1).numpy(), x_np.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.flatten().numpy(), x_np.reshape(2, 12))
    np.testing.assert_array_equal(x.T.numpy(), x_np.T)
    assert td.gradcheck(lambda t: t.reshape(4, 6), x)
    assert td.gradcheck(lambda t: t.transpose(2, 0, 1), x)
    assert td.gradcheck(lambda t: t.T.flatten(), x)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3, 4\)"):
        x.reshape(5, 5)
    with pytest.raises(ValueError, match="transpose: axes"):
        x.transpose(0, 0, 1)


@pytest.mark.parametrize("key", [(slice(None), 1), (0,), (Ellipsis, slice(1, 3)),
                                 (slice(None, None, -1),), (slice(None), None)], ids=str)
def test_basic_indexing(device, rng, key):
    x_np = rng.standard_normal((3, 4))
    x = tensor(x_np)
    np.testing.assert_array_equal(x[key].numpy(), x_np[key])
    assert td.gradcheck(lambda t: t[key], x)


def test_fancy_indexing_with_repeated_indices_sums_gradients(device):
    from tinydm import backend
    x = tensor([10.0, 20.0, 30.0])
    idx = td.Tensor(np.array([0, 0, 2]))
    y = x[idx]
    np.testing.assert_array_equal(y.numpy(), [10.0, 10.0, 30.0])
    y.backward(td.Tensor(np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 3.0])
    rows, cols = td.Tensor(np.array([0, 2, 2])), td.Tensor(np.array([1, 0, 0]))
    m = tensor(np.arange(12.0).reshape(3, 4))
    assert td.gradcheck(lambda t: t[rows, cols], m)  # picking one entry per row: labels-style
    assert backend.device_of(m[rows, cols].data) == td.get_device()


def test_concatenate(device, rng):
    a_np, b_np = rng.standard_normal((2, 3)), rng.standard_normal((2, 5))
    a, b = tensor(a_np), tensor(b_np)
    np.testing.assert_array_equal(F.concatenate([a, b], axis=1).numpy(), np.concatenate([a_np, b_np], 1))
    assert td.gradcheck(lambda u, v: F.concatenate([u, v, u], axis=1), a, b)
    with pytest.raises(ValueError, match="concatenate: shapes"):
        F.concatenate([a, b], axis=0)


def test_unbroadcast_sums_over_broadcast_axes():
    g = np.ones((2, 3, 4))
    assert unbroadcast(g, (3, 1)).tolist() == [[8.0]] * 3
    assert unbroadcast(g, ()).item() == 24.0
    assert unbroadcast(g, (2, 3, 4)) is g


def test_gradcheck_catches_a_wrong_backward(device):
    """The checker itself must be able to fail: a deliberately wrong rule is caught."""
    class WrongExp(td.Function):
        def forward(self, x):
            y = td.backend.get_array_module(x).exp(x)
            self.save_for_backward(y)
            return y

        def backward(self, gy):
            return gy * self.saved[0] * 1.01

    x = tensor([0.1, 0.2, 0.3])
    with pytest.raises(td.GradcheckError, match="worst element"):
        td.gradcheck(lambda t: WrongExp()(t), x)
    with pytest.raises(td.GradcheckError, match="directional"):
        td.gradcheck(lambda t: WrongExp()(t), x, mode="directional")


def test_gradcheck_uses_a_random_cotangent(device):
    """A softmax whose backward forgot the coupling term passes a .sum() check but not ours."""
    class NaiveSoftmax(td.Function):
        def forward(self, x):
            xp = td.backend.get_array_module(x)
            e = xp.exp(x - x.max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
            self.save_for_backward(y)
            return y

        def backward(self, gy):  # wrong: ignores the "- sum_j gy_j y_j" term
            return gy * self.saved[0] * 0

    x = tensor(np.array([[0.3, -1.0, 2.0]]))
    with pytest.raises(td.GradcheckError):
        td.gradcheck(lambda t: NaiveSoftmax()(t), x)
    # ...while the uniform-cotangent check (the gradient of .sum()) cannot see the bug:
    assert td.gradcheck(lambda t: NaiveSoftmax()(t).sum(), x)
