"""Lesson 5: batch normalisation, in training and eval mode, with its running statistics."""

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from tinydm import backend
from conftest import tensor


def np_batch_norm(x, gamma, beta, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return gamma.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) \
        + beta.reshape(shape)


def channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def params(rng, c):
    """gamma, beta as float64 leaves; running stats as device arrays (updated in place)."""
    gamma, beta = tensor(rng.standard_normal(c)), tensor(rng.standard_normal(c))
    running = [backend.to_device(a) for a in (rng.standard_normal(c), rng.uniform(0.5, 2, c))]
    return gamma, beta, running


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 5), (1, 4, 3, 3)])
def test_batch_norm_training(device, rng, shape):
    x_np = rng.standard_normal(shape) * 3 + 1
    gamma, beta, (rm, rv) = params(rng, shape[1])
    x = tensor(x_np)
    y = F.batch_norm(x, gamma, beta, rm, rv, training=True)
    axes = channel_axes(x_np)
    expected = np_batch_norm(x_np, gamma.numpy(), beta.numpy(), x_np.mean(axes), x_np.var(axes))
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)
    y_np = y.numpy()  # normalised per channel: mean beta, std |gamma| (up to eps)
    np.testing.assert_allclose(y_np.mean(axes), beta.numpy(), atol=1e-12)
    np.testing.assert_allclose(y_np.std(axes), np.abs(gamma.numpy()), rtol=1e-4)
    assert td.gradcheck(lambda *a: F.batch_norm(*a, rm, rv, training=True), x, gamma, beta,
                        mode="full")


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 5)])
def test_batch_norm_eval_uses_the_running_statistics(device, rng, shape):
    x_np = rng.standard_normal(shape)
    gamma, beta, (rm, rv) = params(rng, shape[1])
    before = backend.to_numpy(rm).copy(), backend.to_numpy(rv).copy()
    x = tensor(x_np)
    y = F.batch_norm(x, gamma, beta, rm, rv, training=False, eps=1e-3)
    np.testing.assert_allclose(y.numpy(), np_batch_norm(x_np, gamma.numpy(), beta.numpy(), *before,
                                                        eps=1e-3), atol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(rm), before[0])  # eval does not update them
    np.testing.assert_array_equal(backend.to_numpy(rv), before[1])
    assert td.gradcheck(lambda *a: F.batch_norm(*a, rm, rv, training=False), x, gamma, beta,
                        mode="full")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_directional_gradcheck_on_a_bigger_input(device, rng, training):
    x = tensor(rng.standard_normal((16, 8, 6, 6)))
    gamma, beta, (rm, rv) = params(rng, 8)
    assert td.gradcheck(lambda *a: F.batch_norm(*a, rm, rv, training=training), x, gamma, beta,
                        mode="directional")


def test_batch_norm_of_a_conv_output(device, rng):
    """batch_norm on what conv2d returns, checked end to end (conv feeding BN, as in a ResNet)."""
    x, w = tensor(rng.standard_normal((3, 2, 5, 5))), tensor(rng.standard_normal((4, 2, 3, 3)))
    gamma, beta, (rm, rv) = params(rng, 4)

    def net(x, w, gamma, beta):
        return F.batch_norm(F.conv2d(x, w, padding=1), gamma, beta, rm, rv)

    h = F.conv2d(x, w, padding=1).numpy()
    axes = channel_axes(h)
    expected = np_batch_norm(h, gamma.numpy(), beta.numpy(), h.mean(axes), h.var(axes))
    np.testing.assert_allclose(net(x, w, gamma, beta).numpy(), expected, atol=1e-12)
    assert td.gradcheck(net, x, w, gamma, beta, mode="directional")


def test_batch_norm_running_statistics_by_hand(device):
    # channel 0 holds 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased var 14/3); channel 1 is constant
    x = tensor(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [6.0, 5.0]]))
    gamma, beta = tensor([1.0, 1.0]), tensor([0.0, 0.0])
    running_mean = td.Tensor(np.array([1.0, 0.0]))   # as Tensors: their .data is updated
    running_var = td.Tensor(np.array([2.0, 1.0]))
    y = F.batch_norm(x, gamma, beta, running_mean, running_var, momentum=0.25)
    np.testing.assert_allclose(running_mean.numpy(), [0.75 * 1 + 0.25 * 3, 0.75 * 0 + 0.25 * 5])
    np.testing.assert_allclose(running_var.numpy(), [0.75 * 2 + 0.25 * 14 / 3, 0.75 * 1 + 0.25 * 0])
    np.testing.assert_allclose(y.numpy()[:, 0], (np.array([1, 2, 3, 6]) - 3) / np.sqrt(3.5 + 1e-5))
    np.testing.assert_allclose(y.numpy()[:, 1], 0.0)  # a constant channel normalises to beta
    with td.no_grad():  # training mode updates the statistics even without a graph (as PyTorch)
        F.batch_norm(x, gamma, beta, running_mean, running_var, momentum=1.0)
    np.testing.assert_allclose(running_mean.numpy(), [3.0, 5.0])
    np.testing.assert_allclose(running_var.numpy(), [14 / 3, 0.0])


def test_batch_norm_without_running_statistics(device, rng):
    x = tensor(rng.standard_normal((5, 3)))
    gamma, beta, _ = params(rng, 3)
    assert td.gradcheck(lambda *a: F.batch_norm(*a, None, None), x, gamma, beta, mode="full")


def test_batch_norm_keeps_xhat_not_x_and_float32_stays_float32(device, rng):
    x = td.Tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=True)
    gamma = td.Tensor(np.ones(3, np.float32), requires_grad=True)
    beta = td.Tensor(np.zeros(3, np.float32), requires_grad=True)
    rm, rv = td.Tensor(np.zeros(3, np.float32)), td.Tensor(np.ones(3, np.float32))
    y = F.batch_norm(x, gamma, beta, rm, rv)
    xhat, s, g, kept_output = y.creator.saved
    assert kept_output is None  # only the fused ReLU keeps y (its mask is y > 0)
    np.testing.assert_allclose(backend.to_numpy(xhat), y.numpy(), rtol=1e-6)  # gamma 1, beta 0
    assert s.shape == (3,) and g.shape == (3,)
    assert y.dtype == rm.dtype == rv.dtype == np.float32
    y.backward(td.Tensor(np.ones(y.shape, np.float32)))
    assert x.grad.dtype == gamma.grad.dtype == beta.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 0.0, atol=1e-5)  # a constant gy changes nothing


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_relu_gradcheck(device, rng, training):
    """The fused op against float64 finite differences (a random upstream gradient)."""
    gamma, beta, (rm, rv) = params(rng, 3)
    small = tensor(rng.standard_normal((4, 3, 2, 2)))
    assert td.gradcheck(lambda *a: F.batch_norm_relu(*a, rm, rv, training=training),
                        small, gamma, beta, mode="full")
    gamma, beta, (rm, rv) = params(rng, 8)
    big = tensor(rng.standard_normal((16, 8, 6, 6)))
    assert td.gradcheck(lambda *a: F.batch_norm_relu(*a, rm, rv, training=training),
                        big, gamma, beta, mode="directional")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (3, 4, 5, 5), (40, 16, 32, 32)])
def test_batch_norm_relu_fused_equals_relu_of_batch_norm(device, rng, training, shape):
    """The fused path gives the very numbers of the plain one, relu(batch_norm(x)), forward and
    backward, in float32 (40 images of 16x32x32 take several threads' parts and cache-sized
    runs), and float32 stays float32."""
    x_np = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    g_np = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    p_np = [rng.standard_normal(c).astype(np.float32) for _ in range(2)]
    stats_np = [rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)]
    results = []
    for fused in (False, True):
        x = td.Tensor(x_np, requires_grad=True)
        gamma, beta = (td.Tensor(a, requires_grad=True) for a in p_np)
        rm, rv = (td.Tensor(a.copy()) for a in stats_np)
        if fused:
            y = F.batch_norm_relu(x, gamma, beta, rm, rv, training=training)
        else:
            y = F.relu(F.batch_norm(x, gamma, beta, rm, rv, training=training))
        y.backward(td.Tensor(g_np))
        results.append([y.numpy(), x.grad.numpy(), gamma.grad.numpy(), beta.grad.numpy(),
                        rm.numpy(), rv.numpy()])
    for plain, fused in zip(*results):
        assert fused.dtype == np.float32
        np.testing.assert_array_equal(fused, plain)


def test_batch_norm_backward_matches_the_formula_in_float32(device, rng):
    """The plain backward (two sweeps, cache-sized runs) against the class docstring's formula
    computed in float64 by NumPy, on a batch big enough for several runs per thread."""
    x_np = rng.standard_normal((40, 16, 32, 32)).astype(np.float32)
    g_np = rng.standard_normal(x_np.shape).astype(np.float32)
    gamma_np = rng.standard_normal(16).astype(np.float32)
    x = td.Tensor(x_np, requires_grad=True)
    gamma = td.Tensor(gamma_np, requires_grad=True)
    beta = td.Tensor(np.zeros(16, np.float32), requires_grad=True)
    F.batch_norm(x, gamma, beta, None, None).backward(td.Tensor(g_np))
    x64, g64 = x_np.astype(np.float64), g_np.astype(np.float64)
    axes, m = (0, 2, 3), x_np.size // 16
    s = 1 / np.sqrt(x64.var(axes) + 1e-5)
    xhat = (x64 - x64.mean(axes).reshape(1, -1, 1, 1)) * s.reshape(1, -1, 1, 1)
    gbeta, ggamma = g64.sum(axes), (g64 * xhat).sum(axes)
    gx = (gamma_np * s).reshape(1, -1, 1, 1) * (
        g64 - (gbeta.reshape(1, -1, 1, 1) + xhat * ggamma.reshape(1, -1, 1, 1)) / m)
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gamma.grad.numpy(), ggamma, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(beta.grad.numpy(), gbeta, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_without_grad_keeps_nothing_and_gives_the_same_numbers(device, rng, relu):
    """Under no_grad the op records no graph and keeps no xhat, with the same output."""
    x_np = rng.standard_normal((6, 3, 4, 4)).astype(np.float32)
    gamma, beta = (td.Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
                   for _ in range(2))
    rm = td.Tensor(rng.standard_normal(3).astype(np.float32))
    rv = td.Tensor(rng.uniform(0.5, 2, 3).astype(np.float32))
    with_graph = F.batch_norm(td.Tensor(x_np), gamma, beta, rm, rv, training=False, relu=relu)
    assert with_graph.creator is not None and len(with_graph.creator.saved) == 4
    with td.no_grad():
        op = td.functional.normalization.BatchNorm(rm.data, rv.data, False, relu=relu)
        y = op(td.Tensor(x_np), gamma, beta)
    assert y.creator is None and op.saved == () and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), with_graph.numpy())


def test_batch_norm_errors(device):
    x = tensor(np.zeros((4, 3, 2, 2)))
    ok = tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: gamma must have shape \(3,\) for input of "
                                         r"shape \(4, 3, 2, 2\).*got \(2,\)"):
        F.batch_norm(x, tensor(np.ones(2)), ok, ok.data, ok.data)
    with pytest.raises(ValueError, match=r"batch_norm: beta must have shape \(3,\).*got \(3, 1\)"):
        F.batch_norm(x, ok, tensor(np.ones((3, 1))), ok.data, ok.data)
    with pytest.raises(ValueError, match=r"batch_norm: running_var must have shape \(3,\).*got \(4,\)"):
        F.batch_norm(x, ok, ok, ok.data, backend.to_device(np.ones(4)))
    with pytest.raises(ValueError, match=r"batch_norm: input must be \(N, C\) or \(N, C, H, W\).*"
                                         r"\(4, 3, 2\)"):
        F.batch_norm(tensor(np.zeros((4, 3, 2))), ok, ok, ok.data, ok.data)
    with pytest.raises(ValueError, match=r"batch_norm: training needs more than one value per "
                                         r"channel.*\(1, 3\)"):
        F.batch_norm(tensor(np.zeros((1, 3))), ok, ok, ok.data, ok.data)
    with pytest.raises(ValueError, match=r"batch_norm: eval mode .* needs running_mean"):
        F.batch_norm(x, ok, ok, None, None, training=False)
    with pytest.raises(ValueError, match=r"batch_norm: give both running_mean and running_var"):
        F.batch_norm(x, ok, ok, ok.data, None)
    with pytest.raises(TypeError, match=r"batch_norm: running_mean must be a Tensor or an array"):
        F.batch_norm(x, ok, ok, [0.0, 0.0, 0.0], ok.data)
    if device != "cpu":
        with pytest.raises(ValueError, match=r"batch_norm: running_mean is on device 'cpu' but the "
                                             rf"input is on '{device}'"):
            F.batch_norm(x, ok, ok, np.zeros(3), ok.data)
