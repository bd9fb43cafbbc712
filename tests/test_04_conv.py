"""Lesson 4: convolution and pooling (im2col, col2im), checked against plain NumPy loops."""

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from conftest import tensor


# --- plain NumPy references: one output pixel at a time ------------------------------------------
def _pair(v):
    return (v, v) if isinstance(v, int) else v


def np_conv2d(x, w, b=None, stride=1, padding=0):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2:]
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for a in range(ho):
        for c in range(wo):
            window = x[:, :, a * sh:a * sh + kh, c * sw:c * sw + kw]
            y[:, :, a, c] = np.einsum("nchw,ochw->no", window, w)
    return y if b is None else y + b[:, None, None]


def np_pool(x, kernel, stride, reduce):
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.zeros(x.shape[:2] + (ho, wo))
    for a in range(ho):
        for c in range(wo):
            y[:, :, a, c] = reduce(x[:, :, a * sh:a * sh + kh, c * sw:c * sw + kw], axis=(2, 3))
    return y


# --- conv2d --------------------------------------------------------------------------------------
CONV_CASES = [  # x shape, w shape, stride, padding, bias
    ((2, 3, 7, 6), (4, 3, 3, 2), 1, (1, 0), True),      # non-square kernel, odd sizes
    ((1, 2, 5, 5), (3, 2, 1, 1), 2, 0, False),          # 1x1 conv, stride 2, batch 1
    ((2, 2, 6, 7), (2, 2, 3, 3), (2, 1), 2, True),      # padding 2, different strides per axis
    ((3, 1, 5, 4), (2, 1, 2, 3), 2, 1, False),          # stride that does not tile the input
    ((2, 3, 4, 4), (2, 3, 4, 4), 1, 0, True),           # kernel as big as the input: 1x1 output
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, bias", CONV_CASES)
def test_conv2d_matches_numpy_and_gradcheck(device, rng, x_shape, w_shape, stride, padding, bias):
    x_np, w_np = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b_np = rng.standard_normal(w_shape[0]) if bias else None
    x, w = tensor(x_np), tensor(w_np)
    args = (x, w, tensor(b_np)) if bias else (x, w)
    y = F.conv2d(*args, stride=stride, padding=padding)
    np.testing.assert_allclose(y.numpy(), np_conv2d(x_np, w_np, b_np, stride, padding), atol=1e-12)
    assert td.gradcheck(lambda *a: F.conv2d(*a, stride=stride, padding=padding), *args, mode="full")


def test_conv2d_directional_gradcheck_on_a_bigger_layer(device, rng):
    x, w, b = (tensor(rng.standard_normal(s)) for s in ((4, 8, 9, 9), (6, 8, 3, 3), (6,)))
    assert td.gradcheck(lambda *a: F.conv2d(*a, stride=2, padding=1), x, w, b, mode="directional")
    assert td.gradcheck(lambda *a: F.conv2d(*a, padding=1), x, w, b, mode="directional")


def test_conv2d_on_non_contiguous_input_and_chained(device, rng):
    x_np, w1_np, w2_np = (rng.standard_normal(s) for s in ((2, 3, 5, 6), (4, 3, 3, 3), (2, 4, 3, 3)))
    x, w1, w2 = tensor(x_np), tensor(w1_np), tensor(w2_np)

    def net(x, w1, w2):  # a transposed (non-contiguous) input; conv output feeds a conv
        return F.conv2d(F.conv2d(x.transpose(0, 1, 3, 2), w1, padding=1), w2, stride=2)

    expected = np_conv2d(np_conv2d(x_np.transpose(0, 1, 3, 2), w1_np, padding=1), w2_np, stride=2)
    np.testing.assert_allclose(net(x, w1, w2).numpy(), expected, atol=1e-12)
    assert td.gradcheck(net, x, w1, w2, mode="directional")


def test_conv2d_gradients_by_hand(device):
    """A 1x1 conv is a per-pixel matmul: gw = sum of gy * x, gb = sum of gy, gx = w^T gy."""
    x, w, b = tensor(np.arange(8.0).reshape(1, 2, 2, 2)), tensor([[[[2.0]], [[-1.0]]]]), tensor([0.5])
    y = F.conv2d(x, w, b)
    np.testing.assert_allclose(y.numpy(), 2 * x.numpy()[:, :1] - x.numpy()[:, 1:] + 0.5)
    y.backward(td.Tensor(np.ones((1, 1, 2, 2))))
    np.testing.assert_allclose(w.grad.numpy().ravel(), [0 + 1 + 2 + 3, 4 + 5 + 6 + 7])
    np.testing.assert_allclose(b.grad.numpy(), [4.0])
    np.testing.assert_allclose(x.grad.numpy()[0, :, 0, 0], [2.0, -1.0])


def test_conv2d_float32_stays_float32_and_keeps_only_x_and_w(device, rng):
    x = td.Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w = td.Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = td.Tensor(np.zeros(4, np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, stride=2, padding=1)
    assert y.dtype == np.float32 and y.shape == (2, 4, 3, 3)
    assert [s.shape for s in y.creator.saved] == [x.shape, w.shape]  # cols are rebuilt, not kept
    y.backward(td.Tensor(np.ones(y.shape, np.float32)))
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_conv2d_errors(device):
    x, w = tensor(np.zeros((2, 3, 5, 5))), tensor(np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels .* expects 2.*"
                                         r"\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"conv2d: input must be 4-D.*\(3, 5, 5\)"):
        F.conv2d(tensor(np.zeros((3, 5, 5))), tensor(np.zeros((4, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"conv2d: weight must be 4-D.*\(4, 3, 3\)"):
        F.conv2d(x, tensor(np.zeros((4, 3, 3))))
    with pytest.raises(ValueError, match=r"conv2d: kernel \(8, 8\) is larger than the padded input "
                                         r"\(7, 7\) \(input shape \(2, 3, 5, 5\), padding \(1, 1\)\)"):
        F.conv2d(x, tensor(np.zeros((4, 3, 8, 8))), padding=1)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\).*got \(3,\)"):
        F.conv2d(x, tensor(np.zeros((4, 3, 3, 3))), tensor(np.zeros(3)))
    with pytest.raises(ValueError, match=r"conv2d: stride must be an int >= 1"):
        F.conv2d(x, tensor(np.zeros((4, 3, 3, 3))), stride=0)


# --- pooling -------------------------------------------------------------------------------------
POOL_CASES = [  # x shape, kernel, stride
    ((2, 3, 4, 6), 2, None),        # the usual non-overlapping 2x2
    ((1, 2, 7, 5), (3, 2), (2, 1)),  # overlapping, non-square, odd sizes, batch 1
    ((2, 1, 5, 5), 2, 3),           # stride > kernel: some pixels are in no window
]


@pytest.mark.parametrize("x_shape, kernel, stride", POOL_CASES)
def test_max_pool2d(device, rng, x_shape, kernel, stride):
    x_np = rng.permutation(np.prod(x_shape)).reshape(x_shape) * 0.01  # distinct: no ties
    x = tensor(x_np)
    expected = np_pool(x_np, kernel, stride or kernel, np.max)
    np.testing.assert_allclose(F.max_pool2d(x, kernel, stride).numpy(), expected)
    assert td.gradcheck(lambda t: F.max_pool2d(t, kernel, stride), x, mode="full")


@pytest.mark.parametrize("x_shape, kernel, stride", POOL_CASES)
def test_avg_pool2d(device, rng, x_shape, kernel, stride):
    x_np = rng.standard_normal(x_shape)
    x = tensor(x_np)
    expected = np_pool(x_np, kernel, stride or kernel, np.mean)
    np.testing.assert_allclose(F.avg_pool2d(x, kernel, stride).numpy(), expected, atol=1e-12)
    assert td.gradcheck(lambda t: F.avg_pool2d(t, kernel, stride), x, mode="full")


def test_max_pool2d_tie_sends_the_gradient_to_the_first_maximum(device):
    x = tensor(np.array([[[[1.0, 3.0], [3.0, 3.0]]]]))
    F.max_pool2d(x, 2).backward(td.Tensor(np.array([[[[5.0]]]])))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_overlapping_max_windows_add_their_gradients(device):
    x = tensor(np.array([[[[0.0, 9.0, 1.0]]]]))  # 9 is the max of both 1x2 windows
    F.max_pool2d(x, (1, 2), stride=1).backward(td.Tensor(np.array([[[[2.0, 3.0]]]])))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 5.0, 0.0]]]])


def test_global_avg_pool2d(device, rng):
    x_np = rng.standard_normal((3, 4, 5, 2))
    x = tensor(x_np)
    np.testing.assert_allclose(F.global_avg_pool2d(x).numpy(), x_np.mean(axis=(2, 3)), atol=1e-12)
    assert td.gradcheck(F.global_avg_pool2d, x, mode="full")


def test_pool_errors(device):
    x = tensor(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"max_pool2d: input must be 4-D.*\(3, 4\)"):
        F.max_pool2d(tensor(np.zeros((3, 4))), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel \(5, 5\) is larger than the padded "
                                         r"input \(4, 4\)"):
        F.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"global_avg_pool2d: input must be 4-D.*\(2, 3\)"):
        F.global_avg_pool2d(tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"max_pool2d: kernel must be an int >= 1"):
        F.max_pool2d(x, 0)
