"""Lesson 21: the loss zoo. Any loss of p_i alone moves the logits along the CCE direction with
the weight w(p) = -L'(p) p 2(1 - p): focal, Poly-1, Taylor CE, reverse CE and partially
Huberised CE, each a loss node (gradchecked), the same scheme as DM with its EDF, and its
emphasis mode. Label smoothing, which is not a function of p_i alone, leaves the CCE direction."""

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from tinydm import edf, losses
from tinydm.losses import DM_EPS, Focal, PHuber, Poly1, RCE, Taylor

# (name, class, parameters, an independent NumPy formula of L(p))
ZOO = [
    ("focal", Focal, {"gamma": 2.0}, lambda p: -(1 - p) ** 2 * np.log(p)),
    ("focal", Focal, {"gamma": 0.5}, lambda p: -(1 - p) ** 0.5 * np.log(p)),
    ("focal", Focal, {"gamma": 0.0}, lambda p: -np.log(p)),
    ("poly1", Poly1, {"epsilon": 1.0}, lambda p: -np.log(p) + (1 - p)),
    ("poly1", Poly1, {"epsilon": 3.0}, lambda p: -np.log(p) + 3 * (1 - p)),
    ("poly1", Poly1, {"epsilon": -1.0}, lambda p: -np.log(p) - (1 - p)),
    ("taylor", Taylor, {"t": 1}, lambda p: 1 - p),
    ("taylor", Taylor, {"t": 2}, lambda p: (1 - p) + (1 - p) ** 2 / 2),
    ("taylor", Taylor, {"t": 6}, lambda p: sum((1 - p) ** k / k for k in range(1, 7))),
    ("rce", RCE, {"A": -4.0}, lambda p: 4 * (1 - p)),
    ("phuber", PHuber, {"tau": 10.0},
     lambda p: np.where(p <= 0.1, -10 * p + np.log(10) + 1, -np.log(p))),
    ("phuber", PHuber, {"tau": 1.5},
     lambda p: np.where(p <= 1 / 1.5, -1.5 * p + np.log(1.5) + 1, -np.log(p))),
]
IDS = [f"{n}-{p}" for n, _, p, _ in ZOO]
EDGES = [  # (logits, labels): p_i -> 0, p_i -> 1, both in one batch, a tie
    ([[-1000.0, 1.0]], [0]), ([[-1000.0, 1.0]], [1]),
    ([[-1000.0, 1.0, 0.5], [30.0, -2.0, 0.0]], [0, 0]), ([[0.0, 0.0, 0.0]], [2]),
]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def grad_of(fn, z, y, v=1.0):
    zt = td.Tensor(np.asarray(z, dtype=np.float64), requires_grad=True)
    loss = fn(zt, td.Tensor(np.asarray(y)))
    loss.backward(np.asarray(v, dtype=np.float64))
    return loss, zt.grad.numpy()


@pytest.mark.parametrize("name,cls,params,L", ZOO, ids=IDS)
def test_zoo_loss_value_and_gradcheck(device, name, cls, params, L):
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(7, 5)) * 3, rng.integers(0, 5, size=7)
    f = losses.get(name, **params)
    loss, _ = grad_of(f, z, y)
    assert loss.item() == pytest.approx(L(softmax(z)[np.arange(7), y]).mean(), rel=1e-12)
    # gradcheck draws a random upstream gradient (the cotangent), never 1
    assert td.gradcheck(lambda a: f(a, td.Tensor(y)), td.Tensor(z, requires_grad=True))


@pytest.mark.parametrize("name,cls,params,L", ZOO, ids=IDS)
def test_zoo_gradient_is_minus_L_prime_p_times_the_cce_direction(name, cls, params, L):
    """dL/dz_i = -L'(p_i) p_i (p - e_i), with L' by central differences of the NumPy formula,
    at ordinary logits and near the edges (p_i ~ 1e-6, 1 - p_i ~ 1e-6); a random upstream
    gradient."""
    rng = np.random.default_rng(5)
    cases = [(rng.normal(size=(6, 4)) * 2, rng.integers(0, 4, size=6)),
             (np.array([[-12.0, 1.0, 0.5], [14.0, -1.0, 0.0]]), np.array([0, 0]))]
    for z, y in cases:
        v = rng.normal()
        _, g = grad_of(losses.get(name, **params), z, y, v)
        P = softmax(z)
        p = P[np.arange(len(y)), y]
        h = 1e-4 * np.minimum(p, 1 - p)  # inside (0, 1) and on one side of phuber's kink
        dL = (L(p + h) - L(p - h)) / (2 * h)
        expected = v * (-dL * p)[:, None] * (P - np.eye(z.shape[1])[y]) / len(y)
        np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-14, err_msg=f"{name} {z}")


# lim_{p -> 0} -L'(p) p: the gradient of an example the model gives probability 0
LIMIT_AT_0 = {"focal": 1.0, "poly1": 1.0, "taylor": 0.0, "rce": 0.0, "phuber": 0.0}


@pytest.mark.parametrize("name,cls,params,L", ZOO, ids=IDS)
def test_zoo_at_the_edges(device, name, cls, params, L):
    """Logits [-1000, 1]: p_i = 0 gives the limit ``-L'(0) p``-direction gradient, p_i = 1 a zero
    gradient; all finite, and the backward passes gradcheck there with a random upstream."""
    f = losses.get(name, **params)
    v = 0.7
    _, g0 = grad_of(f, [[-1000.0, 1.0]], [0], v)
    np.testing.assert_allclose(g0, v * LIMIT_AT_0[name] * np.array([[-1.0, 1.0]]), atol=1e-300)
    _, g1 = grad_of(f, [[-1000.0, 1.0]], [1], v)
    np.testing.assert_allclose(g1, 0.0, atol=1e-300)
    for z, y in EDGES:
        assert td.gradcheck(lambda a, y=y: f(a, td.Tensor(np.asarray(y))),
                            td.Tensor(np.asarray(z), requires_grad=True))


@pytest.mark.parametrize("name,cls,params,L", ZOO, ids=IDS)
def test_zoo_weight_is_the_l1_norm_of_its_gradient(name, cls, params, L):
    p = np.linspace(0.001, 0.999, 999)
    h = 1e-6 * np.minimum(p, 1 - p)
    w = -(L(p + h) - L(p - h)) / (2 * h) * p * 2 * (1 - p)
    np.testing.assert_allclose(edf.weight(name, p, **params), w, rtol=1e-6)
    assert np.isfinite(edf.weight(name, [0.0, 1.0], **params)).all()


@pytest.mark.parametrize("name,cls,params,L", ZOO, ids=IDS)
def test_zoo_is_dm_with_its_edf(device, name, cls, params, L):
    """The same scheme through losses.manipulate with the closed-form EDF: the DN variant up to
    Eq. 7's guard, and the plain loss up to the batch's total weight."""
    rng = np.random.default_rng(8)
    z, y = rng.normal(size=(8, 3)) * 2, rng.integers(0, 3, size=8)
    _, g_dm = grad_of(lambda a, b: losses.manipulate(a, b, lambda p: edf.weight(name, p, **params)), z, y)
    _, g_dn = grad_of(cls(dn=True, **params), z, y)
    _, g_plain = grad_of(cls(**params), z, y)
    p = softmax(z)[np.arange(8), y]
    guard = (2 * (1 - p) + DM_EPS) / (2 * (1 - p))
    np.testing.assert_allclose(g_dm * guard[:, None], g_dn, rtol=1e-10, atol=1e-15)
    w = edf.weight(name, p, **params)
    np.testing.assert_allclose(g_dn * w.sum() / 8, g_plain, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name,cls,params,L", ZOO, ids=IDS)
def test_zoo_emphasis_mode_against_a_fine_grid(name, cls, params, L):
    grid = np.linspace(0.0, 1.0, 1_000_001)
    argmax = grid[np.argmax(edf.weight(name, grid, **params))]
    if name == "focal" and params["gamma"] > 0:   # no closed form: the numerical mode only
        with pytest.raises(ValueError, match="no unique emphasis mode"):
            edf.emphasis_mode_closed_form(name, **params)
    else:
        assert edf.emphasis_mode_closed_form(name, **params) == pytest.approx(argmax, abs=2e-6)
    assert edf.emphasis_mode(name, **params) == pytest.approx(argmax, abs=2e-6)


@pytest.mark.parametrize("name,params,psi", [
    ("poly1", {"epsilon": 3.0}, 1 / 3), ("poly1", {"epsilon": 1.0}, 0.0),
    ("taylor", {"t": 1}, 0.5), ("taylor", {"t": 2}, 1 - 3 ** -0.5),
    ("rce", {}, 0.5), ("phuber", {"tau": 10.0}, 0.1), ("phuber", {"tau": 1.5}, 0.5),
    ("focal", {"gamma": 0.0}, 0.0),
])
def test_zoo_emphasis_modes_in_closed_form(name, params, psi):
    assert edf.emphasis_mode_closed_form(name, **params) == pytest.approx(psi, abs=1e-15)


@pytest.mark.parametrize("name,params", [
    ("poly1", {"epsilon": 2.0}), ("poly1", {"epsilon": -0.5}), ("taylor", {"t": 3}),
    ("rce", {"A": -2.0}), ("phuber", {"tau": 4.0}), ("phuber", {"tau": 1.2})])
def test_zoo_closed_form_areas(name, params):
    # Simpson's rule is only ~1e-7 accurate across phuber's kink in w' at p = 1/tau
    assert edf.log_area(name, "closed", **params) == pytest.approx(
        edf.log_area(name, "numeric", **params), abs=1e-6 if name == "phuber" else 1e-10)


def test_zoo_special_cases_are_the_losses_they_generalise():
    p = np.linspace(0, 1, 101)
    np.testing.assert_allclose(edf.weight("focal", p, gamma=0), edf.weight("cce", p))
    np.testing.assert_allclose(edf.weight("taylor", p, t=1), edf.weight("mae", p), atol=1e-15)
    np.testing.assert_allclose(edf.weight("rce", p, A=-4), 4 * edf.weight("mae", p))
    np.testing.assert_allclose(edf.weight("phuber", p, tau=1), edf.weight("mae", p), atol=1e-15)
    np.testing.assert_allclose(edf.weight("poly1", p, epsilon=0), edf.weight("cce", p))


@pytest.mark.parametrize("name,params,match", [
    ("focal", {"gamma": -1}, "gamma must be >= 0"), ("poly1", {"epsilon": -2}, "epsilon must be"),
    ("taylor", {"t": 1.5}, "integer >= 1"), ("taylor", {"t": 0}, "integer >= 1"),
    ("rce", {"A": 0}, "must be < 0"), ("phuber", {"tau": 0.5}, "tau must be >= 1")])
def test_zoo_bad_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        losses.get(name, **params)


def test_zoo_by_name_matches_the_functions(device):
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=(5, 3)), rng.integers(0, 3, size=5)
    direct = {"focal": lambda a, b: losses.focal(a, b, gamma=1.5),
              "poly1": lambda a, b: losses.poly1(a, b, epsilon=2.0),
              "taylor": lambda a, b: losses.taylor(a, b, t=3), "rce": losses.rce,
              "phuber": lambda a, b: losses.phuber(a, b, tau=4.0)}
    params = {"focal": {"gamma": 1.5}, "poly1": {"epsilon": 2.0}, "taylor": {"t": 3},
              "rce": {}, "phuber": {"tau": 4.0}}
    for name, fn in direct.items():
        l1, g1 = grad_of(losses.get(name, **params[name]), z, y)
        l2, g2 = grad_of(fn, z, y)
        assert l1.item() == l2.item()
        np.testing.assert_array_equal(g1, g2)
    assert losses.get("focal").params == {"gamma": 2.0}
    assert losses.get("rce").params == {"A": -4.0}


def test_label_smoothing_leaves_the_cce_direction():
    """LS, ``-(1 - a) log p_y - (a / C) sum_k log p_k``, has gradient ``p - q`` with
    ``q = (1 - a) e_y + a / C``: not parallel to ``p - e_y`` (its residual after projecting onto
    the CCE direction is far from 0), so no weight w(p_y) gives it (docs/derivations.md, 5)."""
    a, C = 0.1, 4
    z = np.array([[2.0, 0.5, -1.0, 0.0]])
    y = np.array([0])
    zt = td.Tensor(z, requires_grad=True)
    logp = F.log_softmax(zt, axis=-1)
    q = (1 - a) * np.eye(C)[y] + a / C
    (-(logp * td.Tensor(q)).sum()).backward()
    g = zt.grad.numpy()[0]
    d = softmax(z)[0] - np.eye(C)[0]
    np.testing.assert_allclose(g, softmax(z)[0] - q[0], rtol=1e-12)
    residual = g - (g @ d) / (d @ d) * d
    assert np.abs(residual).max() > 1e-2
