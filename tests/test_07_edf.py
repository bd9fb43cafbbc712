"""Lesson 7: emphasis density functions. The weighting functions of Eq. 6 and 9-12, their
normalisation to unit area (Eq. 8), the emphasis mode psi (Definition 1) and the emphasis variance
(Definition 2). Host NumPy, except the log-weights the loss nodes use, which run on every device."""

import math

import numpy as np
import pytest

import tinydm as td
from tinydm import backend, edf

P = np.linspace(0.0, 1.0, 11)
SETTINGS = [  # (name, params) covering every weighting function
    ("cce", {}), ("mae", {}), ("mse", {}), ("gce", {}), ("gce", {"q": 0.3}),
    ("nd", {"psi": 0.3, "beta": 5.0}), ("nd", {"psi": 0.8, "beta": -2.0}),
    ("ed", {"beta": 3.0}), ("ed", {"beta": -0.52}),
    ("bd", {"alpha": 2.0, "eta": 3.0}), ("bd", {"alpha": 1.3, "eta": 1.2}),
    ("dm", {"lam": 0.5, "beta": 8.0}), ("dm", {"lam": 0.0, "beta": 2.0}),
    ("dm", {"lam": 1.0, "beta": 16.0}), ("dm", {"lam": 2.0, "beta": 24.0}),
    ("dm", {"lam": 0.3, "beta": 6.5}), ("dm", {"lam": 0.0, "beta": -0.33}),
]


# --- the formulas -----------------------------------------------------------------------------
def test_weights_are_the_formulas_of_eq_6_and_9_to_12():
    p = P
    expected = {
        ("cce", ()): 2 * (1 - p),
        ("mae", ()): 2 * p * (1 - p),
        ("mse", ()): 4 * p * (1 - p) ** 2,
        ("gce", (("q", 0.7),)): 2 * p ** 0.7 * (1 - p),
        ("nd", (("psi", 0.3), ("beta", 5.0))): np.exp(-5 * p * (p - 0.6)),
        ("ed", (("beta", -2.0),)): np.exp(-2 * (1 - p)),
        ("bd", (("alpha", 2.0), ("eta", 3.0))): p * (1 - p) ** 2,
        ("dm", (("lam", 0.5), ("beta", 8.0))): np.exp(8 * p ** 0.5 * (1 - p)),
        ("dm", (("lam", 0.0), ("beta", 8.0))): np.exp(8 * (1 - p)),  # 0**0 = 1
    }
    for (name, params), w in expected.items():
        np.testing.assert_allclose(edf.weight(name, p, **dict(params)), w, rtol=1e-12, atol=1e-300,
                                   err_msg=name)


def test_beta_variant_covers_the_common_losses_eq_11():
    p = P
    np.testing.assert_allclose(edf.weight("bd", p, alpha=1, eta=2), edf.weight("cce", p) / 2)
    np.testing.assert_allclose(edf.weight("bd", p, alpha=2, eta=2), edf.weight("mae", p) / 2)
    np.testing.assert_allclose(edf.weight("bd", p, alpha=2, eta=3), edf.weight("mse", p) / 4)
    for q in (0.2, 0.7):
        np.testing.assert_allclose(edf.weight("bd", p, alpha=q + 1, eta=2),
                                   edf.weight("gce", p, q=q) / 2, rtol=1e-12)


def test_eq_12_design_reasons():
    p = P
    # (1) lam = 0: the exponential variant (Eq. 10)
    np.testing.assert_allclose(edf.weight("dm", p, lam=0, beta=3), edf.weight("ed", p, beta=3))
    # (2) lam = 1: the normal variant (Eq. 9) with psi = 1/2
    np.testing.assert_allclose(edf.weight("dm", p, lam=1, beta=3),
                               edf.weight("nd", p, psi=0.5, beta=3), rtol=1e-12)
    # (3) an exponential transformation of the beta variant with alpha = lam + 1, eta = 2
    np.testing.assert_allclose(edf.weight("dm", p, lam=0.4, beta=3),
                               np.exp(3 * edf.weight("bd", p, alpha=1.4, eta=2)), rtol=1e-12)
    # (4) beta = 0: every example weighs the same
    np.testing.assert_array_equal(edf.weight("dm", p, lam=0.5, beta=0), 1.0)


def test_log_weight_runs_on_every_device(device):
    """The loss nodes call these functions on device arrays: same numbers as on the host."""
    p = np.array([1e-9, 0.25, 0.5, 0.999])
    for name, params in SETTINGS:
        lp = td.Tensor(np.log(p)).data
        l1mp = td.Tensor(np.log1p(-p)).data
        got = backend.to_numpy(edf.log_weight(name, lp, l1mp, **params))
        np.testing.assert_allclose(np.exp(got), edf.weight(name, p, **params), rtol=1e-12)


# --- Eq. 8: normalisation to unit area --------------------------------------------------------
@pytest.mark.parametrize("name,params", SETTINGS, ids=str)
def test_density_has_unit_area(name, params):
    p = np.linspace(0.0, 1.0, 200_001)
    h = edf.density(name, p, **params)
    area = np.sum((h[1:] + h[:-1]) / 2) * (p[1] - p[0])   # an independent trapezoid rule
    assert area == pytest.approx(1.0, rel=2e-4)


def _has_closed_area(name, params):
    try:
        return edf.log_area(name, "closed", **params) is not None
    except ValueError:
        return False


@pytest.mark.parametrize("name,params", [s for s in SETTINGS if _has_closed_area(*s)], ids=str)
def test_closed_form_areas_equal_numerical_integration(name, params):
    assert edf.log_area(name, "numeric", **params) == pytest.approx(
        edf.log_area(name, "closed", **params), rel=1e-8, abs=1e-9)


def test_areas_of_the_common_losses():
    assert edf.area("cce") == 1.0
    assert edf.area("mae") == pytest.approx(1 / 3) and edf.area("mse") == pytest.approx(1 / 3)
    assert edf.area("gce", q=0.7) == pytest.approx(2 / (1.7 * 2.7))
    assert edf.area("bd", alpha=2, eta=3) == pytest.approx(math.gamma(2) * math.gamma(3) / math.gamma(5))


def test_large_beta_is_normalised_without_overflow():
    assert edf.area("dm", lam=0.5, beta=2000) == math.inf          # the area itself overflows
    la = edf.log_area("dm", lam=0.5, beta=2000)                      # its log does not
    assert math.isfinite(la)
    h = edf.density("dm", np.linspace(0, 1, 100_001), lam=0.5, beta=2000)
    assert np.isfinite(h).all() and np.sum(h) * 1e-5 == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError, match="no closed-form area"):
        edf.log_area("dm", "closed", lam=0.5, beta=8)


# --- Definition 1: the emphasis mode ----------------------------------------------------------
@pytest.mark.parametrize("name,params,psi", [
    ("cce", {}, 0.0), ("mae", {}, 0.5), ("mse", {}, 1 / 3),
    ("gce", {"q": 0.7}, 0.7 / 1.7), ("gce", {"q": 0.1}, 0.1 / 1.1), ("gce", {"q": 1.0}, 0.5),
    ("dm", {"lam": 0.0, "beta": 2.0}, 0.0), ("dm", {"lam": 0.5, "beta": 8.0}, 1 / 3),
    ("dm", {"lam": 1.0, "beta": 16.0}, 0.5), ("dm", {"lam": 2.0, "beta": 24.0}, 2 / 3),
    ("dm", {"lam": 5.0, "beta": 0.5}, 5 / 6), ("dm", {"lam": 0.0, "beta": -0.52}, 1.0),
    ("nd", {"psi": 0.3, "beta": 5.0}, 0.3), ("nd", {"psi": 1.4, "beta": 5.0}, 1.0),
    ("ed", {"beta": 3.0}, 0.0), ("ed", {"beta": -3.0}, 1.0),
    ("bd", {"alpha": 2.0, "eta": 3.0}, 1 / 3), ("bd", {"alpha": 0.5, "eta": 2.0}, 0.0),
])
def test_emphasis_mode_numerical_and_closed_form(name, params, psi):
    assert edf.emphasis_mode_closed_form(name, **params) == pytest.approx(psi, abs=1e-15)
    assert edf.emphasis_mode(name, **params) == pytest.approx(psi, abs=1e-7)


def test_emphasis_mode_with_several_maxima():
    # beta < 0 and lam > 0: w(0) = w(1) = 1 are both maxima; beta = 0: flat
    for params in ({"lam": 0.5, "beta": -1.0}, {"lam": 0.5, "beta": 0.0}):
        assert edf.emphasis_mode("dm", **params) == 0.0   # the smallest maximiser
        with pytest.raises(ValueError, match="no unique emphasis mode"):
            edf.emphasis_mode_closed_form("dm", **params)


# --- Definition 2: the emphasis variance ------------------------------------------------------
def test_emphasis_variance_is_the_batch_variance_of_the_weights(device):
    w = np.array([0.5, 1.0, 2.0, 4.0])
    assert edf.emphasis_variance(w) == pytest.approx(np.var(w))
    assert edf.emphasis_variance(td.Tensor(w)) == pytest.approx(np.var(w))   # device data too
    assert edf.emphasis_variance([1.0, 1.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="empty batch"):
        edf.emphasis_variance([])


def test_larger_beta_spreads_emphasis_more():
    """The variance of a batch's normalised weights grows with beta (Eq. 12's role of beta)."""
    p = np.linspace(0.01, 0.99, 99)
    var = [edf.emphasis_variance(w / w.sum()) for w in
           (edf.weight("dm", p, lam=0.5, beta=b) for b in (0, 2, 4, 8, 16))]
    assert var[0] == pytest.approx(0, abs=1e-30) and all(a < b for a, b in zip(var, var[1:]))


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,params,match", [
    ("xyz", {}, "unknown weighting function 'xyz'; choose one of cce, mae, mse, gce, nd, ed, bd, dm"),
    ("dm", {"lam": 1.0}, r"'dm': missing parameter\(s\) beta; 'dm' takes lam \(required\), beta"),
    ("gce", {"beta": 1.0}, r"unknown parameter\(s\) beta; 'gce' takes q \(default 0.7\)"),
    ("cce", {"q": 1.0}, "'cce' takes no parameters"),
    ("gce", {"q": 0.0}, r"q must be in \(0, 1\]"),
    ("dm", {"lam": -0.5, "beta": 1.0}, "lam must be >= 0"),
    ("bd", {"alpha": 0.0, "eta": 1.0}, "alpha must be > 0"),
    ("ed", {"beta": "2"}, "beta must be a finite number"),
])
def test_bad_names_and_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        edf.weight(name, P, **params)


# --- the figures ------------------------------------------------------------------------------
def test_plot_edf_writes_the_standard_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from tinydm import plot
    # drawing dominates the time (~1 s a figure): build every figure, write two of them
    for make in (plot.fig1b, plot.dm_vs_lam, plot.dm_vs_beta, plot.edf_variants, plot.zoo_edfs):
        assert len(make().axes) >= 1
    paths = plot.standard_set(tmp_path, formats=("png", "pdf"), batch_size=32, dpi=50,
                              names=("edf_fig1b", "edf_batch_weights"))
    assert sorted(p.name for p in paths) == ["edf_batch_weights.pdf", "edf_batch_weights.png",
                                             "edf_fig1b.pdf", "edf_fig1b.png"]
    assert all(p.stat().st_size > 5_000 for p in paths)
    with pytest.raises(ValueError, match="unknown figure"):
        plot.standard_set(tmp_path, names=("fig9",))


def test_the_zoo_figure_draws_every_edf_with_its_mode():
    """plot.zoo_edfs: the paper's losses and DM left, the zoo right; each curve's dot at its
    emphasis mode, focal's found numerically (it has no closed form)."""
    pytest.importorskip("matplotlib")
    from tinydm import plot
    fig = plot.zoo_edfs(lams=(0.5, 1.0), beta=8)
    left, right = fig.axes[:2]
    labels = [t.get_text() for t in right.get_legend().get_texts()]
    assert [t.split(" ")[0].rstrip(",") for t in labels] == [
        "CCE", "Focal", "Poly-1", "Taylor", "RCE", "PHuber-CE"]
    assert "psi=0.058" in labels[1]
    dots = {tuple(np.round(line.get_xdata(), 4)) for line in right.lines if line.get_marker() == "o"}
    assert (round(edf.emphasis_mode("focal", gamma=2), 4),) in dots and (0.25,) in dots
    assert len([line for line in left.lines if line.get_marker() == "o"]) == 6


def test_the_figures_mark_psi_only_where_it_is_unique():
    """DM with beta <= 0 and lam > 0 has no unique mode (two maxima, or a flat w): no dot, no
    dashed line, "none" in the legend, not the numerical search's smallest maximiser 0."""
    pytest.importorskip("matplotlib")
    from tinydm import plot
    from tinydm.plot.edf import unique_mode
    assert unique_mode("dm", lam=0.5, beta=-1.0) is None and unique_mode("mae") == 0.5
    with pytest.raises(ValueError, match="lam must be >= 0"):
        unique_mode("dm", lam=-1.0, beta=8.0)

    def dots_and_legend(fig):
        ax = fig.axes[0]
        return (sum(line.get_marker() == "o" for line in ax.lines),
                [t.get_text() for t in ax.get_legend().get_texts()])
    dots, legend = dots_and_legend(plot.fig1b(lam=0.5, beta=8.0))
    assert dots == 5 and legend[-1].endswith(r"$\psi=0.333$")
    for beta in (-2.0, 0.0):
        dots, legend = dots_and_legend(plot.fig1b(lam=0.5, beta=beta))
        assert dots == 4 and legend[-1].endswith(r"$\psi$=none")  # CCE, MAE, MSE, GCE only

    def dashed(beta):
        ax = plot.dm_vs_lam(lams=(0.0, 0.5, 1.0), beta=beta).axes[0]
        return [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"], \
            ax.get_title()
    lines, title = dashed(8.0)
    assert lines == pytest.approx([0.0, 1 / 3, 0.5]) and "emphasis mode" in title
    lines, title = dashed(-2.0)
    assert lines == [1.0] and "least emphasised" in title  # lam = 0: the exponential variant
    assert dashed(0.0) == ([], r"DM, $\beta=0$: every example weighs the same")
