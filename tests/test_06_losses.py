"""Lesson 6: the loss nodes. CCE, MAE, MSE and GCE (Eq. 1-4), their derivative-normalised (DN)
variants, and derivative manipulation (DM, Eq. 7 with the weight of Eq. 12).

Each loss writes dL/dz by hand. The plain losses are checked against finite differences of their
own value (gradcheck) and against the paper's case-by-case formulas; DN and DM, whose gradients are
not the gradients of their displayed values, against the released code's rules
(docs/released-code.md) computed here independently in NumPy."""

import numpy as np
import pytest

import tinydm as td
from conftest import tensor
from tinydm import backend, edf, losses

PLAIN = {"cce": losses.cce, "mae": losses.mae, "mse": losses.mse, "gce": losses.gce}
DN = {"cce": losses.cce_dn, "mae": losses.mae_dn, "mse": losses.mse_dn, "gce": losses.gce_dn}
DM_SETTINGS = [(0.5, 8.0), (0.0, 2.0), (1.0, 6.0), (2.0, 24.0), (0.0, -0.52), (0.3, 6.5), (1.0, -3.0)]


# --- an independent NumPy reference, written from the paper's equations ------------------------
def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def paper_values(name, z, y, q=0.7):
    """Eq. 1-4, one value per example."""
    p = softmax(z)[np.arange(len(y)), y]
    return {"cce": -np.log(p), "mae": 1 - p, "mse": (1 - p) ** 2, "gce": (1 - p ** q) / q}[name]


def paper_gradient(name, z, y, q=0.7):
    """dL_i/dz_ij of Eq. 1-4, literally the two cases (j = y_i, j != y_i) the paper writes."""
    P = softmax(z)
    p = P[np.arange(len(y)), y][:, None]
    at_label = np.arange(z.shape[1])[None, :] == y[:, None]
    cases = {  # (j = y_i, j != y_i)
        "cce": (p - 1, P),                                       # Eq. 1
        "mae": (p * (p - 1), p * P),                             # Eq. 2
        "mse": (-2 * p * (p - 1) ** 2, -2 * p * (p - 1) * P),    # Eq. 3
        "gce": (p ** q * (p - 1), p ** q * P),                   # Eq. 4
    }[name]
    return np.where(at_label, *cases)


def dm_reference(z, y, lam, beta):
    """docs/released-code.md: g_i = (w_i / sum_j w_j) d_i / (2(1 - p_i) + 1e-6),
    w_i = exp(beta p^lam (1-p))."""
    P = softmax(z)
    p = P[np.arange(len(y)), y]
    w = np.exp(beta * p ** lam * (1 - p))
    d = P - np.eye(z.shape[1])[y]
    grad = (w / w.sum())[:, None] * d / (2 * (1 - p) + 1e-6)[:, None]
    value = np.sum(w / w.sum() * -np.log(p))
    return grad, value, w


def batch(n=6, c=4, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * scale
    y = rng.integers(0, c, size=n)
    return z, y


def grad_of(fn, z, y, dtype=np.float64):
    zt = td.Tensor(np.asarray(z, dtype=dtype), requires_grad=True)
    loss = fn(zt, td.Tensor(y))
    loss.backward()
    return loss, zt.grad.numpy()


# --- plain losses: Eq. 1-4, batch mean --------------------------------------------------------
@pytest.mark.parametrize("name", PLAIN)
def test_plain_loss_value_is_the_batch_mean_of_eq_1_to_4(device, name):
    z, y = batch()
    loss = PLAIN[name](td.Tensor(z), td.Tensor(y))
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), paper_values(name, z, y).mean(), rtol=1e-12)


@pytest.mark.parametrize("name", PLAIN)
def test_plain_loss_backward_passes_gradcheck(device, name):
    z, y = batch()
    y = td.Tensor(y)
    assert td.gradcheck(lambda t: PLAIN[name](t, y), tensor(z))


@pytest.mark.parametrize("q", [0.1, 0.5, 1.0])
def test_gce_backward_passes_gradcheck_for_other_q(device, q):
    z, y = batch(seed=1)
    y = td.Tensor(y)
    assert td.gradcheck(lambda t: losses.gce(t, y, q=q), tensor(z))


@pytest.mark.parametrize("name", PLAIN)
def test_plain_loss_gradient_is_the_closed_form_over_n(device, name):
    z, y = batch(n=7, c=5, seed=2)
    _, g = grad_of(PLAIN[name], z, y)
    np.testing.assert_allclose(g, paper_gradient(name, z, y) / len(y), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["cce", "gce", "dm"])
def test_backward_multiplies_by_the_upstream_gradient(device, name):
    z, y = batch()
    fn = (lambda a, b: losses.dm(a, b, 0.5, 8)) if name == "dm" else PLAIN[name]
    _, g1 = grad_of(fn, z, y)
    _, g2 = grad_of(lambda a, b: fn(a, b) * 2, z, y)
    np.testing.assert_allclose(g2, 2 * g1, rtol=1e-12)


# --- DN variants ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DN)
def test_dn_divides_each_gradient_by_the_batch_sum_of_l1_norms(device, name):
    z, y = batch(n=8, c=5, seed=3)
    g = paper_gradient(name, z, y)                   # per-example g_i (not averaged)
    expected = g / np.abs(g).sum()                   # g_i / sum_j ||g_j||_1
    loss, got = grad_of(DN[name], z, y)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    assert np.abs(got).sum() == pytest.approx(1.0, rel=1e-12)        # the batch total is one unit
    # the value shown is the plain loss's; the gradient is its gradient times N / sum_j ||g_j||_1
    np.testing.assert_allclose(loss.item(), paper_values(name, z, y).mean(), rtol=1e-12)
    _, plain = grad_of(PLAIN[name], z, y)
    np.testing.assert_allclose(got, plain * len(y) / np.abs(g).sum(), rtol=1e-10, atol=1e-14)


def test_dn_l1_norms_use_the_closed_forms_of_eq_6(device):
    z, y = batch(n=5, c=3, seed=4)
    p = softmax(z)[np.arange(5), y]
    closed = {"cce": 2 * (1 - p), "mae": 2 * p * (1 - p), "mse": 4 * p * (1 - p) ** 2,
              "gce": 2 * p ** 0.7 * (1 - p)}
    for name, w in closed.items():
        _, g = grad_of(DN[name], z, y)
        np.testing.assert_allclose(np.abs(g).sum(axis=1), w / w.sum(), rtol=1e-10)


# --- DM: Eq. 7 with Eq. 12 and mini-batch DN --------------------------------------------------
@pytest.mark.parametrize("lam,beta", DM_SETTINGS)
def test_dm_gradient_and_value_follow_the_reference_rule(device, lam, beta):
    z, y = batch(n=8, c=5, seed=5)
    expected, value, w = dm_reference(z, y, lam, beta)
    loss, got = grad_of(lambda a, b: losses.dm(a, b, lam, beta), z, y)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(loss.item(), value, rtol=1e-12)
    # each example's L1 norm is its share of the batch's unit of emphasis (Eq. 7 + DN)
    np.testing.assert_allclose(np.abs(got).sum(axis=1), w / w.sum(), rtol=1e-5)
    assert np.abs(got).sum() == pytest.approx(1.0, rel=1e-5)


def test_dm_treats_the_weights_as_constants(device):
    """DM's gradient is the gradient of sum_i c_i (-log p_i(z)) with c_i = (w_i/W)/(2(1-p_i)+1e-6)
    frozen at the current z: no gradient flows through w_i or the normaliser."""
    z, y = batch(n=4, c=3, seed=6)
    _, got = grad_of(lambda a, b: losses.dm(a, b, 0.5, 8), z, y)
    P = softmax(z)
    p = P[np.arange(4), y]
    w = np.exp(8 * p ** 0.5 * (1 - p))
    c = w / w.sum() / (2 * (1 - p) + 1e-6)

    def surrogate(zz):
        return np.sum(c * -np.log(softmax(zz)[np.arange(4), y]))
    eps, numeric = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (surrogate(up) - surrogate(down)) / (2 * eps)
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("lam,beta", DM_SETTINGS[:3])
def test_dm_is_manipulate_with_the_eq_12_weight(device, lam, beta):
    z, y = batch(seed=7)
    _, g_dm = grad_of(lambda a, b: losses.dm(a, b, lam, beta), z, y)
    xp_weight = lambda p: backend.get_array_module(p).exp(beta * p ** lam * (1 - p))  # noqa: E731
    _, g_m = grad_of(lambda a, b: losses.manipulate(a, b, xp_weight), z, y)
    np.testing.assert_allclose(g_m, g_dm, rtol=1e-10, atol=1e-15)


def test_cce_dn_is_manipulate_with_the_cce_weight_up_to_the_epsilon(device):
    z, y = batch(seed=8)
    _, g_dn = grad_of(losses.cce_dn, z, y)
    _, g_m = grad_of(lambda a, b: losses.manipulate(a, b, lambda p: 2 * (1 - p)), z, y)
    np.testing.assert_allclose(g_m, g_dn, rtol=1e-5)


def test_dm_with_beta_zero_gives_every_example_the_same_share(device):
    """docs/released-code.md: DM(beta=0) means every weight is 1 (uniform emphasis). It is therefore not
    CCE-DN, whose shares are 2(1 - p_i) / sum_j 2(1 - p_j) (Table 1 lists the two separately)."""
    z, y = batch(n=5, seed=9)
    loss, g = grad_of(lambda a, b: losses.dm(a, b, 0.7, 0.0), z, y)
    np.testing.assert_allclose(np.abs(g).sum(axis=1), np.full(5, 1 / 5), rtol=1e-5)
    _, g_uniform = grad_of(lambda a, b: losses.manipulate(a, b, lambda p: 1.0), z, y)
    np.testing.assert_allclose(g, g_uniform, rtol=1e-12)
    _, g_cce_dn = grad_of(losses.cce_dn, z, y)
    assert not np.allclose(g, g_cce_dn, rtol=1e-3)
    np.testing.assert_allclose(loss.item(), paper_values("cce", z, y).mean(), rtol=1e-12)


# --- per-example details ----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PLAIN) + ["cce-dn", "gce-dn"])
def test_details_give_p_i_and_the_eq_6_weights(device, name):
    z, y = batch(seed=10)
    loss = losses.get(name)(td.Tensor(z), td.Tensor(y))
    d = losses.details(loss)
    p = softmax(z)[np.arange(len(y)), y]
    np.testing.assert_allclose(d["p_i"].numpy(), p, rtol=1e-12)
    w = edf.weight(name.split("-")[0], p)
    np.testing.assert_allclose(d["weights"].numpy(), w, rtol=1e-10)
    np.testing.assert_allclose(d["normalised_weights"].numpy(), w / w.sum(), rtol=1e-10)
    assert d["p_i"].device == device and not d["weights"].requires_grad


def test_details_of_dm_work_under_no_grad_and_after_backward(device):
    z, y = batch(seed=11)
    _, _, w = dm_reference(z, y, 0.5, 8)
    with td.no_grad():
        d = losses.details(losses.dm(td.Tensor(z), td.Tensor(y), 0.5, 8))
    np.testing.assert_allclose(d["weights"].numpy(), w, rtol=1e-10)
    loss, _ = grad_of(lambda a, b: losses.dm(a, b, 0.5, 8), z, y)
    np.testing.assert_allclose(losses.details(loss)["normalised_weights"].numpy(), w / w.sum(),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="not returned by a tinydm loss"):
        losses.details(td.Tensor([1.0]))


# --- numerical safety -------------------------------------------------------------------------
EVERY_LOSS = [(n, {"lam": 0.5, "beta": 8} if n == "dm" else {}) for n in losses.NAMES] + [
    ("dm", {"lam": 0.0, "beta": -0.52}), ("dm", {"lam": 0.0, "beta": 0.0}),
    ("dm", {"lam": 2.0, "beta": 1000.0}), ("dm", {"lam": 0.5, "beta": -1000.0}),
    ("gce-dn", {"q": 0.1})]


@pytest.mark.parametrize("name,params", EVERY_LOSS, ids=lambda v: str(v))
def test_no_nan_or_inf_for_extreme_logits_in_float32(device, name, params):
    f = losses.get(name, **params)
    cases = [  # (logits, labels)
        ([[-1e4, 1e4], [-1e4, 1e4]], [0, 1]),          # p_i = 0 and p_i = 1 exactly
        ([[0.0, 60.0, 0.0]], [1]),                      # a batch of one with p_i -> 1
        ([[1e4, 1e4, -1e4]], [2]),                      # ties and p_i = 0
        ([[3.0, -2.0, 0.5], [0.1, 0.2, 0.3], [50.0, 0.0, 0.0]], [0, 2, 0]),
    ]
    for z, y in cases:
        zt = td.Tensor(np.asarray(z, dtype=np.float32), requires_grad=True)
        loss = f(zt, td.Tensor(np.asarray(y)))
        loss.backward()
        assert loss.dtype == np.float32 and zt.grad.dtype == np.float32
        assert np.isfinite(loss.item()), (name, z, y, loss.item())
        assert np.isfinite(zt.grad.numpy()).all(), (name, z, y, zt.grad.numpy())
        d = losses.details(loss)  # raw weights may overflow for a huge beta; the shares never
        assert np.isfinite(d["p_i"].numpy()).all() and np.isfinite(d["normalised_weights"].numpy()).all()


def test_extreme_logits_give_the_right_limits(device):
    z = td.Tensor(np.array([[-1e4, 1e4]], dtype=np.float32), requires_grad=True)
    loss = losses.cce(z, td.Tensor(np.array([0])))
    loss.backward()
    assert loss.item() == pytest.approx(2e4)                 # -log p_i = 2e4, not inf
    np.testing.assert_array_equal(z.grad.numpy(), [[-1.0, 1.0]])   # p - e_i
    # p_i = 1: plain CCE's gradient vanishes; DN still spends the batch's unit (up to rounding)
    z = td.Tensor(np.array([[0.0, 30.0]], dtype=np.float32), requires_grad=True)
    losses.cce_dn(z, td.Tensor(np.array([1]))).backward()
    assert np.abs(z.grad.numpy()).sum() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # the raw w_i, by design
def test_large_beta_does_not_overflow_the_normalisation(device):
    z, y = batch(n=6, seed=12)
    for beta in (500.0, 5000.0):
        _, g = grad_of(lambda a, b, beta=beta: losses.dm(a, b, 0.5, beta), z, y, dtype=np.float32)
        assert np.isfinite(g).all() and np.abs(g).sum() == pytest.approx(1.0, rel=1e-4)


def test_all_zero_weights_give_a_zero_gradient(device):
    z, y = batch(seed=13)
    _, g = grad_of(lambda a, b: losses.manipulate(a, b, lambda p: 0 * p), z, y)
    np.testing.assert_array_equal(g, 0.0)


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("logits,labels,error,match", [
    (np.zeros((3, 4)), np.array([0, 1]), ValueError, r"labels must have shape \(N,\) = \(3,\)"),
    (np.zeros((3, 4)), np.array([[0], [1], [2]]), ValueError, r"shape \(3, 1\)"),
    (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), TypeError, "labels must be integer"),
    (np.zeros(4), np.array([0]), ValueError, r"logits must have shape \(N, C\), got shape \(4,\)"),
    (np.zeros((3, 1)), np.array([0, 0, 0]), ValueError, "C >= 2"),
    (np.zeros((0, 3)), np.zeros(0, dtype=np.int64), ValueError, "N >= 1"),
    (np.zeros((2, 3), dtype=np.int64), np.array([0, 1]), TypeError, "logits must be floating"),
])
def test_bad_inputs_raise_clear_errors(device, logits, labels, error, match):
    with pytest.raises(error, match=match):
        losses.dm(td.Tensor(logits), td.Tensor(labels), 0.5, 8)


@pytest.mark.parametrize("labels", [[0, 1, 4], [0, -1, 2]])
def test_labels_out_of_range_raise_on_the_host_and_give_nan_on_a_gpu(device, labels,
                                                                    monkeypatch):
    """On the CPU the range check is cheap and raises. On a GPU it would wait for the device
    every batch, so there (the stand-in plays it) the loss takes no host copy and the example
    with the bad label makes the loss NaN, which the training loop's divergence check stops."""
    z, y = td.Tensor(np.zeros((3, 4))), td.Tensor(np.array(labels))
    if device == "cpu":
        with pytest.raises(ValueError, match=r"dm: labels must be in \[0, 3\] for logits \(3, 4\)"):
            losses.dm(z, y, 0.5, 8)
        with pytest.raises(ValueError, match=r"cifar: labels must be in \[0, 3\] for 4 classes"):
            losses.check_label_range("cifar", np.array(labels), 4)
        return
    def no_host_copy(self):
        raise AssertionError("the loss copied device data to the host")
    for method in ("__int__", "__float__", "__bool__", "__index__", "get"):
        monkeypatch.setattr(backend.StandInArray, method, no_host_copy)
    loss = losses.dm(z, y, 0.5, 8)
    monkeypatch.undo()
    assert np.isnan(loss.numpy())
    assert np.isnan(losses.details(loss)["p_i"].numpy()[1 if -1 in labels else 2])


def test_bad_input_names_the_loss(device):
    with pytest.raises(TypeError, match="^gce-dn: labels"):
        losses.gce_dn(td.Tensor(np.zeros((2, 3))), td.Tensor(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="^mse: labels"):
        losses.mse(td.Tensor(np.zeros((2, 3))), td.Tensor(np.array([0, 1, 2])))


def test_labels_on_another_device_are_refused(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    labels = td.Tensor(np.array([0, 1]), device="cpu")
    with pytest.raises(ValueError, match="labels are on device 'cpu'"):
        losses.cce(td.Tensor(np.zeros((2, 3))), labels)


def test_weight_fn_must_return_one_weight_per_example(device):
    z, y = td.Tensor(np.zeros((3, 2))), td.Tensor(np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"one weight per example, shape \(3,\), got shape \(3, 1\)"):
        losses.manipulate(z, y, lambda p: p[:, None])
    with pytest.raises(TypeError, match="weight_fn must be a function"):
        losses.manipulate(z, y, 2.0)


# --- by name ----------------------------------------------------------------------------------
def test_get_by_name_matches_the_functions(device):
    z, y = batch(seed=14)
    direct = {"cce": losses.cce, "mae": losses.mae, "mse": losses.mse,
              "gce": lambda a, b: losses.gce(a, b, q=0.4),
              "cce-dn": losses.cce_dn, "mae-dn": losses.mae_dn, "mse-dn": losses.mse_dn,
              "gce-dn": lambda a, b: losses.gce_dn(a, b, q=0.4),
              "dm": lambda a, b: losses.dm(a, b, lam=1.0, beta=16.0),
              "focal": losses.focal, "poly1": losses.poly1, "taylor": losses.taylor,
              "rce": losses.rce, "phuber": losses.phuber}  # the zoo's parameters: test_21
    params = {"gce": {"q": 0.4}, "gce-dn": {"q": 0.4}, "dm": {"lam": 1.0, "beta": 16.0}}
    assert set(direct) == set(losses.NAMES)
    for name, fn in direct.items():
        by_name = losses.get(name, **params.get(name, {}))
        l1, g1 = grad_of(by_name, z, y)
        l2, g2 = grad_of(fn, z, y)
        assert l1.item() == l2.item()
        np.testing.assert_array_equal(g1, g2)
    assert repr(losses.get("dm", lam=0.5, beta=8)) == "losses.get('dm', lam=0.5, beta=8)"
    assert losses.get("CCE_DN").name == "cce-dn"
    assert losses.get("gce").params == {"q": 0.7}


@pytest.mark.parametrize("name,params,match", [
    ("hinge", {}, r"unknown loss 'hinge'; valid names and parameters: cce .*dm\(lam, beta, ess_floor=0.0"),
    ("cce", {"q": 0.5}, r"loss 'cce': unknown parameter\(s\) q; use cce \(no parameters\)"),
    ("gce", {"lam": 1}, r"unknown parameter\(s\) lam; use gce\(q=0.7\)"),
    ("dm", {"lam": 0.5}, r"loss 'dm': missing parameter\(s\) beta; use dm\(lam, beta, ess_floor=0.0"),
    ("gce", {"q": 1.5}, r"q must be in \(0, 1\]"),
    ("dm", {"lam": -1, "beta": 2}, "lam must be >= 0"),
    ("dm", {"lam": 0.5, "beta": float("nan")}, "beta must be a finite number"),
])
def test_get_rejects_unknown_names_and_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        losses.get(name, **params)
