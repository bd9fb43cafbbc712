"""Lesson 8: the derivations of docs/derivations.md, one numerical check per step.

Softmax Jacobian (Eq. 13-16) -> each loss's derivative w.r.t. p (Eq. 18, 20, 22, and MSE's) ->
w.r.t. z by the chain rule (Eq. 23-31 = Eq. 1-4) -> their shared direction (Eq. 5) -> their L1
norms and emphasis modes (Eq. 6) -> DM's rescaling (Eq. 7) and its L1 norm -> the loss that DM's
derivative integrates to (the corrected form of the expression after Eq. 12). Finite differences
are plain NumPy; the loss gradients come from tinydm's hand-written backward rules."""

import numpy as np
import pytest

import tinydm as td
from tinydm import edf, losses

C = 5


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numeric_derivative(f, x, eps=1e-6):
    """Central differences of a scalar function f at every element of x."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (f(up) - f(down)) / (2 * eps)
    return g


@pytest.fixture
def example():
    rng = np.random.default_rng(0)
    return rng.normal(size=C) * 1.5, 2        # logits z_i of one example, its label y_i


def per_example_gradients(loss_fn, z, y):
    """N * dL/dz from a tinydm loss: each row is the gradient of that example's own loss."""
    zt = td.Tensor(z, requires_grad=True, dtype=np.float64)
    loss_fn(zt, td.Tensor(y)).backward()
    return len(y) * zt.grad.numpy()


# --- B.1: the softmax Jacobian ----------------------------------------------------------------
def test_eq_13_inverse_probability(example):
    z, y = example
    p = softmax(z)
    others = np.arange(C) != y
    assert 1 / p[y] == pytest.approx(1 + np.exp(z[others] - z[y]).sum(), rel=1e-12)


def test_eq_14_to_16_softmax_jacobian(example):
    z, y = example
    p = softmax(z)
    numeric = numeric_derivative(lambda v: softmax(v)[y], z)
    closed = np.where(np.arange(C) == y, p[y] * (1 - p[y]), -p[y] * p)   # Eq. 16
    np.testing.assert_allclose(numeric, closed, rtol=1e-7, atol=1e-10)


# --- B.2-B.4 (and MSE, which the appendix omits): dL/dp_i -------------------------------------
@pytest.mark.parametrize("name,value,dvalue", [
    ("cce", lambda p: -np.log(p), lambda p: -1 / p),                         # Eq. 18
    ("mae", lambda p: 1 - p, lambda p: -1.0),                                # Eq. 20
    ("mse", lambda p: (1 - p) ** 2, lambda p: -2 * (1 - p)),                 # MSE
    ("gce", lambda p: (1 - p ** 0.7) / 0.7, lambda p: -p ** (0.7 - 1)),      # Eq. 22
])
def test_derivatives_with_respect_to_p(name, value, dvalue):
    for p in (0.05, 0.3, 0.7, 0.95):
        numeric = (value(p + 1e-7) - value(p - 1e-7)) / 2e-7
        assert numeric == pytest.approx(dvalue(p), rel=1e-6)


# --- B.5: chain rule, dL/dz = dL/dp_i * dp_i/dz (Eq. 23-31, i.e. Eq. 1-4) ---------------------
@pytest.mark.parametrize("name,dvalue", [
    ("cce", lambda p: -1 / p), ("mae", lambda p: -1.0),
    ("mse", lambda p: -2 * (1 - p)), ("gce", lambda p: -p ** (0.7 - 1))])
def test_chain_rule_gives_the_loss_gradient(device, name, dvalue):
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(4, C)), np.array([0, 3, 1, 4])
    P = softmax(z)
    p = P[np.arange(4), y][:, None]
    jac = np.where(np.arange(C)[None, :] == y[:, None], p * (1 - p), -p * P)   # Eq. 16, row i
    chain = dvalue(p) * jac
    np.testing.assert_allclose(per_example_gradients(losses.get(name), z, y), chain, rtol=1e-10)


# --- Eq. 5: one direction ---------------------------------------------------------------------
def test_eq_5_all_losses_share_the_cce_direction(device):
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=(6, C)) * 2, rng.integers(0, C, size=6)
    p = softmax(z)[np.arange(6), y][:, None]
    g = {n: per_example_gradients(losses.get(n), z, y) for n in ("cce", "mae", "mse", "gce")}
    np.testing.assert_allclose(g["mae"], p * g["cce"], rtol=1e-10)
    np.testing.assert_allclose(g["mse"], 2 * p * (1 - p) * g["cce"], rtol=1e-10)
    np.testing.assert_allclose(g["gce"], p ** 0.7 * g["cce"], rtol=1e-10)
    # and the CCE direction itself is p - e_i (Eq. 1)
    np.testing.assert_allclose(g["cce"], softmax(z) - np.eye(C)[y], rtol=1e-10, atol=1e-15)


# --- Eq. 6: L1 norms and emphasis modes -------------------------------------------------------
def test_eq_6_l1_norms(device):
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(6, C)) * 2, rng.integers(0, C, size=6)
    p = softmax(z)[np.arange(6), y]
    closed = {"cce": 2 * (1 - p), "mae": 2 * p * (1 - p), "mse": 4 * p * (1 - p) ** 2,
              "gce": 2 * p ** 0.7 * (1 - p)}
    for name, w in closed.items():
        norms = np.abs(per_example_gradients(losses.get(name), z, y)).sum(axis=1)
        np.testing.assert_allclose(norms, w, rtol=1e-10, err_msg=name)


@pytest.mark.parametrize("name,params,psi", [
    ("cce", {}, 0.0), ("mae", {}, 0.5), ("mse", {}, 1 / 3), ("gce", {"q": 0.7}, 0.7 / 1.7),
    ("gce", {"q": 0.3}, 0.3 / 1.3)])
def test_eq_6_emphasis_modes_from_the_real_gradients(name, params, psi):
    """Sweep p_i over (0, 1) with two-class logits z = (log p, log(1 - p)); the example whose
    gradient has the largest L1 norm sits at psi."""
    p = np.linspace(0.0005, 0.9995, 2000)
    z = np.stack([np.log(p), np.log1p(-p)], axis=1)
    norms = np.abs(per_example_gradients(losses.get(name, **params), z, np.zeros(len(p), int))).sum(1)
    assert p[np.argmax(norms)] == pytest.approx(psi, abs=1e-3)


def test_eq_12_emphasis_mode_from_the_real_gradients():
    """DM's gradient norms follow w_i = exp(beta p^lam (1 - p)) (Eq. 7 + DN): psi = lam/(lam+1)."""
    p = np.linspace(0.0005, 0.9995, 2000)
    z = np.stack([np.log(p), np.log1p(-p)], axis=1)
    for lam in (0.0, 0.5, 1.0, 2.0):
        norms = np.abs(per_example_gradients(losses.get("dm", lam=lam, beta=8.0), z,
                                             np.zeros(len(p), int))).sum(1)
        assert p[np.argmax(norms)] == pytest.approx(lam / (lam + 1), abs=1e-3)


# --- Eq. 7: DM's rescaling and its L1 norm ----------------------------------------------------
def test_eq_7_l1_norm_is_the_weight(example):
    z, y = example
    p = softmax(z)
    d = p - np.eye(C)[y]                                   # dL_CCE/dz_i
    for w in (0.1, 1.0, 7.5):
        grad = w / (2 * (1 - p[y])) * d                     # Eq. 7
        assert np.abs(grad).sum() == pytest.approx(w, rel=1e-12)


def test_eq_7_with_batch_dn_is_what_the_dm_node_writes(device):
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(5, C)), rng.integers(0, C, size=5)
    p = softmax(z)[np.arange(5), y]
    w = edf.weight("dm", p, lam=0.5, beta=8)
    g = per_example_gradients(losses.get("dm", lam=0.5, beta=8), z, y) / 5
    cce = softmax(z) - np.eye(C)[y]
    eq7 = (w / (2 * (1 - p)))[:, None] * cce               # Eq. 7, ||row i||_1 = w_i
    np.testing.assert_allclose(g, eq7 / w.sum(), rtol=1e-5)  # then DN over the batch (+1e-6)


# --- the loss behind a weighting function (the expression after Eq. 12, corrected) ------------
def _integral(f, a, b, n=20001):
    t = np.linspace(a, b, n)
    v = f(t)
    return (b - a) / (n - 1) * (v[0] / 2 + v[1:-1].sum() + v[-1] / 2)


@pytest.mark.parametrize("name,params,loss", [
    ("cce", {}, lambda p: -np.log(p)), ("mae", {}, lambda p: 1 - p),
    ("mse", {}, lambda p: (1 - p) ** 2), ("gce", {"q": 0.7}, lambda p: (1 - p ** 0.7) / 0.7)])
def test_integral_of_w_over_2p_1mp_gives_back_eq_1_to_4(name, params, loss):
    """L(p) = int_p^1 w(t) / (2 t (1 - t)) dt recovers each loss from its Eq. 6 weight."""
    for p in (0.1, 0.4, 0.8):
        got = _integral(lambda t: edf.weight(name, t, **params) / (2 * t * (1 - t)), p, 1 - 1e-9)
        assert got == pytest.approx(loss(p), rel=1e-4, abs=1e-6)


def test_dm_loss_is_the_integral_from_p_to_a_fixed_point(example):
    """For DM, w(1) = 1, so int_p^1 diverges; L(p) = int_p^(1/2) w(t) / (2 t (1 - t)) dt (any
    fixed upper limit: a constant does not change the gradient) has Eq. 7 as its gradient."""
    z, y = example
    lam, beta = 0.5, 8.0

    def dm_loss(v):
        p = softmax(v)[y]
        return _integral(lambda t: edf.weight("dm", t, lam=lam, beta=beta) / (2 * t * (1 - t)),
                         p, 0.5)
    p = softmax(z)
    w = edf.weight("dm", p[y], lam=lam, beta=beta)
    eq7 = w / (2 * (1 - p[y])) * (p - np.eye(C)[y])
    np.testing.assert_allclose(numeric_derivative(dm_loss, z, eps=1e-5), eq7, rtol=1e-4, atol=1e-7)
