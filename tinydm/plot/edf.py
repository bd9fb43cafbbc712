"""Lecture-ready figures of emphasis density functions (Eq. 6-12) and of the weights a batch receives.

Each figure function returns a :class:`matplotlib.figure.Figure` built with matplotlib's
object-oriented API (no ``pyplot``: no global state, any backend, safe in scripts and notebooks);
:func:`save` writes it as PNG, SVG and PDF, and :func:`standard_set` writes the whole set that
``examples/plot_edf.py`` and docs/derivations.md use:

* ``edf_fig1b``         the paper's Figure 1b: normalised EDFs of CCE, MAE, MSE, GCE and DM;
* ``edf_dm_vs_lam``     DM for several ``lam`` at a fixed ``beta`` (the emphasis mode moves);
* ``edf_dm_vs_beta``    DM for several ``beta`` at a fixed ``lam`` (the emphasis spread changes);
* ``edf_variants``      the normal, exponential and beta-distribution variants (Eq. 9-11);
* ``edf_zoo``           the EDFs of the paper's losses and of the loss zoo (tinydm/losses/zoo.py)
  side by side, with their emphasis modes;
* ``edf_batch_weights`` the share of a real batch's gradient each example receives under each
  scheme, read from the loss nodes' backward on the logits of a small trained model.

The toy batch of ``edf_batch_weights`` comes from :func:`tinydm.train.toy_batch`.
"""

import matplotlib
import numpy as np

from .. import edf, losses
from ..train.toy import toy_batch
from ..tensor import Tensor
from .style import (COLOURS, DENSITY_LABEL, FORMATS, P_LABEL, as_names, figure, label,
                    legend_right, save, styled)

STANDARD_FIGURES = ("edf_fig1b", "edf_dm_vs_lam", "edf_dm_vs_beta", "edf_variants",
                    "edf_zoo", "edf_batch_weights")
# The zoo's display names, default panel parameters and colours (Okabe-Ito; RCE is MAE's shape,
# so it takes MAE's colour, dashed)
ZOO_NAMES = {"focal": "Focal", "poly1": "Poly-1", "taylor": "Taylor CE", "rce": "RCE",
             "phuber": "PHuber-CE"}
ZOO = (("focal", {"gamma": 2.0}), ("poly1", {"epsilon": 2.0}), ("taylor", {"t": 2.0}),
       ("rce", {"A": -4.0}), ("phuber", {"tau": 10.0}))
ZOO_STYLE = {"focal": ("#56B4E9", "-"), "poly1": ("#0072B2", "-"), "taylor": ("#009E73", "-"),
             "rce": ("#E69F00", "--"), "phuber": ("#000000", "-")}


def unique_mode(name, **params):
    """The emphasis mode ``psi = argmax_p w(p)`` (Definition 1) in closed form where it is
    unique, else None: a flat ``w`` (DM with ``beta = 0``) has no maximiser to single out, and DM
    with ``beta < 0`` and ``lam > 0`` has two (``w(0) = w(1) = 1``), where the numerical
    :func:`tinydm.edf.emphasis_mode` would return the smaller, 0, as if it were the mode."""
    edf.resolve(name, **params)  # bad parameters raise here; only "no unique mode" gives None
    try:
        return edf.emphasis_mode_closed_form(name, **params)
    except ValueError:
        return None


def _edf_curves(ax, curves, mode=unique_mode, psi_in_label=False):
    """Draw normalised EDFs ``[(name, params, colour, label[, linestyle]), ...]``; a dot marks
    each emphasis mode ``mode(name, **params)`` where it is not None (:func:`unique_mode`), and
    with ``psi_in_label`` the legend says its value."""
    p = np.linspace(0.0, 1.0, 801)
    for name, params, colour, text, *ls in curves:
        psi = mode(name, **params)
        if psi_in_label and psi is not None:
            text += f",  $\\psi={psi:.2g}$"
        ax.plot(p, edf.density(name, p, **params), color=colour, ls=(ls or ["-"])[0], label=text)
        if psi is not None:
            ax.plot([psi], edf.density(name, [psi], **params), "o", color=colour, ms=7,
                    zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(P_LABEL)
    ax.set_ylabel(DENSITY_LABEL)


@styled
def fig1b(lam=0.5, beta=8.0, q=edf.GCE_Q, style="paper"):
    """The paper's Figure 1b: the EDFs of CCE, MAE, MSE, GCE (Eq. 6) and DM (Eq. 12), each
    normalised to unit area (Eq. 8); dots mark the emphasis modes psi where they are unique
    (DM: ``lam/(lam+1)`` for ``beta > 0``, none for ``beta = 0`` or ``beta < 0 < lam``). The
    paper does not state its DM parameters; the default ``lam=0.5, beta=8`` is its CIFAR-100 /
    Table 6 setting."""
    fig = figure(9.6, 4.6, style=style)
    ax = fig.add_subplot()
    curves = []
    for name, params in (("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": q}),
                         ("dm", {"lam": lam, "beta": beta})):
        psi = unique_mode(name, **params)
        text = (f"{label(name, **params)}: {edf.EDFS[name].formula},  "
                + ("$\\psi$=none" if psi is None else f"$\\psi={psi:.3g}$"))
        curves.append((name, params, COLOURS[name], text))
    _edf_curves(ax, curves)
    ax.set_title("Emphasis density functions: common losses and DM")
    legend_right(ax)
    return fig


def zoo_mode(name, **params):
    """:func:`unique_mode`, and where that has no closed form but ``w`` is unimodal (focal's
    transcendental equation), the numerical :func:`tinydm.edf.emphasis_mode`."""
    psi = unique_mode(name, **params)
    if psi is None and name == "focal":
        psi = edf.emphasis_mode(name, **params)
    return psi


@styled
def zoo_edfs(lams=(0.25, 1.0, 2.0), beta=8.0, q=edf.GCE_Q, zoo=ZOO, style="paper"):
    """Every loss of ``p_i`` is a weighting scheme: left, the EDFs (Eq. 8) of the paper's CCE,
    MAE, MSE, GCE and DM at several ``lam``; right, those of the loss zoo (focal, Poly-1, Taylor
    CE, reverse CE, partially Huberised CE, ``w = -L'(p) p 2(1-p)``) with CCE for reference;
    dots at the emphasis modes (focal's found numerically). The two panels share the y axis."""
    fig = figure(14.0, 4.8, style=style)
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2, sharey=left)
    dm_shades = matplotlib.colormaps["Oranges"](np.linspace(0.55, 0.95, len(lams)))
    panels = (
        (left, [(n, prm, COLOURS[n], label(n, **prm))
                for n, prm in (("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": q}))]
         + [("dm", {"lam": lam, "beta": beta}, c, label("dm", lam=lam, beta=beta))
            for lam, c in zip(lams, dm_shades)], "The paper's losses and DM"),
        (right, [("cce", {}, COLOURS["cce"], "CCE", ":")]
         + [(n, prm, ZOO_STYLE[n][0], ZOO_NAMES[n] + label("", **prm), ZOO_STYLE[n][1])
            for n, prm in zoo],
         "The loss zoo: $w(p)=-L'(p)\\,p\\,2(1-p)$"),
    )
    for ax, curves, title in panels:
        _edf_curves(ax, curves, mode=zoo_mode, psi_in_label=True)
        ax.set_title(title)
    top = max(line.get_ydata().max() for ax in (left, right) for line in ax.lines)
    for ax in (left, right):
        ax.set_ylim(0, 1.5 * top)  # room above the curves for the legend
        ax.legend(loc="upper right", fontsize="small", ncols=2)
    right.set_ylabel("")
    return fig


def _family(ax, name, fixed, varied, values, cmap="viridis"):
    colours = matplotlib.colormaps[cmap](np.linspace(0.0, 0.85, len(values)))
    curves = [(name, {**fixed, varied: v}, c, label("", **{varied: v}).strip(" ()"))
              for v, c in zip(values, colours)]
    _edf_curves(ax, curves)


@styled
def dm_vs_lam(lams=(0.0, 0.5, 1.0, 2.0), beta=8.0, style="paper"):
    """DM (Eq. 12) for several ``lam`` at fixed ``beta``. For ``beta > 0`` the emphasis mode
    ``lam/(lam+1)`` moves from the hardest examples (``p_i = 0``) towards easier ones; for
    ``beta < 0`` that point is the least emphasised, and only ``lam = 0`` has a unique mode
    (``p_i = 1``); ``beta = 0`` is flat. Dashed: the closed-form modes where they are unique."""
    fig = figure(8.6, 4.6, style=style)
    ax = fig.add_subplot()
    _family(ax, "dm", {"beta": beta}, "lam", lams)
    for lam in lams:
        psi = unique_mode("dm", lam=lam, beta=beta)
        if psi is not None:
            ax.axvline(psi, color="k", ls="--", lw=1, alpha=0.4)
    what = (r"$\lambda$ sets the emphasis mode $\psi=\lambda/(\lambda+1)$" if beta > 0
            else r"$\lambda/(\lambda+1)$ is the least emphasised $p_i$" if beta < 0
            else "every example weighs the same")
    ax.set_title(f"DM, $\\beta={beta:g}$: {what}")
    legend_right(ax, title="DM")
    return fig


@styled
def dm_vs_beta(betas=(-2.0, 0.0, 2.0, 4.0, 8.0, 16.0), lam=0.5, style="paper"):
    """DM (Eq. 12) for several ``beta`` at fixed ``lam``: ``beta`` sets how sharply the mode is
    emphasised (``beta = 0``: uniform; ``beta < 0``: the mode becomes the least emphasised)."""
    fig = figure(8.6, 4.6, style=style)
    ax = fig.add_subplot()
    _family(ax, "dm", {"lam": lam}, "beta", betas, cmap="plasma")
    ax.set_title(f"DM, $\\lambda={lam:g}$: $\\beta$ sets the emphasis variance")
    legend_right(ax, title="DM")
    return fig


@styled
def edf_variants(style="paper"):
    """The normal (Eq. 9), exponential (Eq. 10) and beta-distribution (Eq. 11) variants."""
    fig = figure(14.0, 4.4, style=style)
    panels = [
        ("nd", {"beta": 20.0}, "psi", (0.0, 0.3, 0.6, 0.9), "Normal variant (Eq. 9), $\\beta=20$"),
        ("ed", {}, "beta", (-3.0, -1.0, 1.0, 3.0), "Exponential variant (Eq. 10)"),
        ("bd", {"eta": 3.0}, "alpha", (1.0, 2.0, 3.0, 5.0), "Beta variant (Eq. 11), $\\eta=3$"),
    ]
    for k, (name, fixed, varied, values, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        _family(ax, name, fixed, varied, values)
        ax.legend(loc="upper center")
        ax.set_title(title)
        if k:
            ax.set_ylabel("")
    return fig


@styled
def batch_weights(logits, labels, noisy=None, lam=0.5, beta=8.0, q=edf.GCE_Q, style="paper"):
    """What each example of a batch receives: ``N * ||dL/dz_i||_1`` (1 = an equal share), read
    from the backward of CCE-, MAE-, MSE-, GCE-DN and DM on these logits, against ``p_i``.
    With ``noisy`` (a boolean mask), a second panel shows the share of the batch's gradient that
    goes to the examples whose label is wrong, and the first the ``p_i`` of both groups."""
    schemes = [("cce", losses.get("cce-dn")), ("mae", losses.get("mae-dn")),
               ("mse", losses.get("mse-dn")), ("gce", losses.get("gce-dn", q=q)),
               ("dm", losses.get("dm", lam=lam, beta=beta))]
    names = {"cce": "CCE-DN", "mae": "MAE-DN", "mse": "MSE-DN", "gce": f"GCE-DN ($q={q:g}$)",
             "dm": f"DM ($\\lambda={lam:g}$, $\\beta={beta:g}$)"}
    n = len(labels)
    received = {}
    for key, loss_fn in schemes:
        z = Tensor(np.asarray(logits, dtype=np.float64), requires_grad=True, device="cpu")
        loss = loss_fn(z, Tensor(np.asarray(labels), device="cpu"))
        loss.backward()
        received[key] = n * np.abs(z.grad.numpy()).sum(axis=1)
    p = losses.details(loss)["p_i"].numpy()  # every scheme's: the same logits and labels

    fig = figure(13.0, 5.2, style=style) if noisy is not None else figure(8.6, 4.8, style=style)
    grid = fig.add_gridspec(2, 2 if noisy is not None else 1, height_ratios=(3, 1),
                            width_ratios=(2.2, 1) if noisy is not None else None)
    ax = fig.add_subplot(grid[0, 0])
    order = np.argsort(p)
    for key, _ in schemes:
        ax.plot(p[order], received[key][order], "o-", ms=3.5, lw=1.6, color=COLOURS[key],
                label=names[key])
    ax.axhline(1.0, color="k", lw=1, ls=":", label="equal share")
    ax.set_ylabel(r"$N\,\|\partial L/\partial\mathbf{z}_i\|_1$")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.45 * max(r.max() for r in received.values()))  # room for the legend
    ax.tick_params(labelbottom=False)
    ax.set_title(f"Gradient received by each of the {n} examples of a batch")
    ax.legend(loc="upper center", ncols=3, fontsize="small")
    hist = fig.add_subplot(grid[1, 0], sharex=ax)
    bins = np.linspace(0, 1, 26)
    if noisy is None:
        hist.hist(p, bins=bins, color=COLOURS["clean"])
    else:
        noisy = np.asarray(noisy, dtype=bool)
        hist.hist([p[~noisy], p[noisy]], bins=bins, stacked=True,
                  color=[COLOURS["clean"], COLOURS["noisy"]],
                  label=["correct label", "wrong label"])
        hist.legend(loc="upper center", ncols=2, fontsize="small")
    hist.set_xlabel(P_LABEL)
    hist.set_ylabel("examples")
    if noisy is not None:
        bars = fig.add_subplot(grid[:, 1])
        shares = [received[key][noisy].sum() / n for key, _ in schemes]
        bars.bar(range(len(schemes)), shares, color=[COLOURS[k] for k, _ in schemes])
        bars.axhline(noisy.mean(), color="k", lw=1, ls=":")
        bars.text(len(schemes) - 0.5, noisy.mean(), "equal\nweights", va="bottom", ha="right",
                  fontsize="small")
        bars.set_xticks(range(len(schemes)),
                        [names[k].split(" (")[0] for k, _ in schemes], rotation=30, ha="right")
        bars.set_ylim(0, 1)
        bars.set_ylabel("share of the batch's gradient")
        bars.set_title("Share spent\non wrong labels")
    return fig


def standard_set(out_dir, formats=FORMATS, lam=0.5, beta=8.0, q=edf.GCE_Q,
                 lams=(0.0, 0.5, 1.0, 2.0), betas=(-2.0, 0.0, 2.0, 4.0, 8.0, 16.0),
                 batch_size=256, noise=0.4, seed=0, dpi=150, names=STANDARD_FIGURES,
                 style="paper"):
    """Write the figures ``names`` (one name or several; default: all of
    :data:`STANDARD_FIGURES`) into ``out_dir`` in ``style`` ("paper" or "slides"); return the
    paths."""
    names = as_names(names)
    unknown = sorted(set(names) - set(STANDARD_FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(STANDARD_FIGURES)}")
    figures = {
        "edf_fig1b": lambda: fig1b(lam=lam, beta=beta, q=q, style=style),
        "edf_dm_vs_lam": lambda: dm_vs_lam(lams=lams, beta=beta, style=style),
        "edf_dm_vs_beta": lambda: dm_vs_beta(betas=betas, lam=lam, style=style),
        "edf_variants": lambda: edf_variants(style=style),
        "edf_zoo": lambda: zoo_edfs(beta=beta, q=q, style=style),
        "edf_batch_weights": lambda: batch_weights(
            *toy_batch(n=batch_size, noise=noise, seed=seed), lam=lam, beta=beta, q=q,
            style=style),
    }
    paths = []
    for name in names:
        paths += save(figures[name](), out_dir, name, formats, dpi)
    return paths
