"""Lecture-ready figures of emphasis density functions (Eq. 6-12) and of the weights a batch receives.

Each figure function returns a :class:`matplotlib.figure.Figure` built with matplotlib's
object-oriented API (no ``pyplot``: no global state, any backend, safe in scripts and notebooks);
:func:`save` writes it as PNG and/or PDF, and :func:`standard_set` writes the whole set that
``examples/plot_edf.py`` and docs/derivations.md use:

* ``edf_fig1b``         the paper's Figure 1b: normalised EDFs of CCE, MAE, MSE, GCE and DM;
* ``edf_dm_vs_lam``     DM for several ``lam`` at a fixed ``beta`` (the emphasis mode moves);
* ``edf_dm_vs_beta``    DM for several ``beta`` at a fixed ``lam`` (the emphasis spread changes);
* ``edf_variants``      the normal, exponential and beta-distribution variants (Eq. 9-11);
* ``edf_batch_weights`` the share of a real batch's gradient each example receives under each
  scheme, read from the loss nodes' backward on the logits of a small trained model.
"""

import pathlib

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from . import edf, losses
from .tensor import Tensor

STANDARD_FIGURES = ("edf_fig1b", "edf_dm_vs_lam", "edf_dm_vs_beta", "edf_variants",
                    "edf_batch_weights")

# Okabe-Ito: distinguishable with every common colour-vision deficiency, and in greyscale print.
COLOURS = {"cce": "#0072B2", "mae": "#E69F00", "mse": "#009E73", "gce": "#CC79A7",
           "dm": "#D55E00", "noisy": "#882255", "clean": "#AAAAAA"}
STYLE = {
    "font.size": 13, "axes.titlesize": 14, "axes.labelsize": 14, "legend.fontsize": 11.5,
    "xtick.labelsize": 12, "ytick.labelsize": 12, "lines.linewidth": 2.4,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "legend.frameon": False, "pdf.fonttype": 42,  # TrueType in PDFs: text stays editable in slides
}
P_LABEL = r"$p_i$  (probability of the labelled class)"
DENSITY_LABEL = r"emphasis density $h(p_i)$  (Eq. 8)"


def label(name, **params):
    """A legend label: the scheme's name and its parameters in the paper's symbols."""
    symbols = {"lam": r"\lambda", "beta": r"\beta", "psi": r"\psi", "alpha": r"\alpha",
               "eta": r"\eta", "q": "q"}
    args = ", ".join(f"${symbols[k]}={v:g}$" for k, v in params.items())
    return name.upper() + (f" ({args})" if args else "")


def _figure(*size):
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=size, layout="constrained")


def _axes(fig, *args, **kwargs):
    with matplotlib.rc_context(STYLE):  # rc values are read when an artist is made
        return fig.add_subplot(*args, **kwargs)


def _edf_curves(ax, curves, mark_modes=True):
    """Draw normalised EDFs ``[(name, params, colour, label), ...]``; a dot marks each emphasis
    mode where it is unique (not for a flat curve, nor for two maxima as DM with beta < 0)."""
    p = np.linspace(0.0, 1.0, 801)
    with matplotlib.rc_context(STYLE):
        for name, params, colour, text in curves:
            ax.plot(p, edf.density(name, p, **params), color=colour, label=text)
            try:
                psi = edf.emphasis_mode_closed_form(name, **params)
            except ValueError:
                continue
            if mark_modes:
                ax.plot([psi], edf.density(name, [psi], **params), "o", color=colour, ms=7,
                        zorder=3)
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(P_LABEL)
        ax.set_ylabel(DENSITY_LABEL)


def _legend_right(ax, **kwargs):
    with matplotlib.rc_context(STYLE):
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), **kwargs)


def fig1b(lam=0.5, beta=8.0, q=0.7):
    """The paper's Figure 1b: the EDFs of CCE, MAE, MSE, GCE (Eq. 6) and DM (Eq. 12), each
    normalised to unit area (Eq. 8); dots mark the emphasis modes psi. The paper does not state
    its DM parameters; the default ``lam=0.5, beta=8`` is its CIFAR-100 / Table 6 setting."""
    fig = _figure(9.6, 4.6)
    ax = _axes(fig)
    curves = []
    for name, params in (("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": q}),
                         ("dm", {"lam": lam, "beta": beta})):
        psi = edf.emphasis_mode(name, **params)
        text = f"{label(name, **params)}: {edf.EDFS[name].formula},  $\\psi={psi:.3g}$"
        curves.append((name, params, COLOURS[name], text))
    _edf_curves(ax, curves)
    ax.set_title("Emphasis density functions: common losses and DM")
    _legend_right(ax)
    return fig


def _family(ax, name, fixed, varied, values, cmap="viridis"):
    colours = matplotlib.colormaps[cmap](np.linspace(0.0, 0.85, len(values)))
    curves = [(name, {**fixed, varied: v}, c, label("", **{varied: v}).strip(" ()"))
              for v, c in zip(values, colours)]
    _edf_curves(ax, curves)


def dm_vs_lam(lams=(0.0, 0.5, 1.0, 2.0), beta=8.0):
    """DM (Eq. 12) for several ``lam`` at fixed ``beta``: the emphasis mode ``lam/(lam+1)`` moves
    from the hardest examples (``p_i = 0``) towards easier ones. Dashed: the closed-form mode."""
    fig = _figure(8.6, 4.6)
    ax = _axes(fig)
    _family(ax, "dm", {"beta": beta}, "lam", lams)
    with matplotlib.rc_context(STYLE):
        for lam in lams:
            ax.axvline(lam / (lam + 1), color="k", ls="--", lw=1, alpha=0.4)
    ax.set_title(f"DM, $\\beta={beta:g}$: $\\lambda$ sets the emphasis mode "
                 r"$\psi=\lambda/(\lambda+1)$")
    _legend_right(ax, title="DM")
    return fig


def dm_vs_beta(betas=(-2.0, 0.0, 2.0, 4.0, 8.0, 16.0), lam=0.5):
    """DM (Eq. 12) for several ``beta`` at fixed ``lam``: ``beta`` sets how sharply the mode is
    emphasised (``beta = 0``: uniform; ``beta < 0``: the mode becomes the least emphasised)."""
    fig = _figure(8.6, 4.6)
    ax = _axes(fig)
    _family(ax, "dm", {"lam": lam}, "beta", betas, cmap="plasma")
    ax.set_title(f"DM, $\\lambda={lam:g}$: $\\beta$ sets the emphasis variance")
    _legend_right(ax, title="DM")
    return fig


def edf_variants():
    """The normal (Eq. 9), exponential (Eq. 10) and beta-distribution (Eq. 11) variants."""
    fig = _figure(14.0, 4.4)
    panels = [
        ("nd", {"beta": 20.0}, "psi", (0.0, 0.3, 0.6, 0.9), "Normal variant (Eq. 9), $\\beta=20$"),
        ("ed", {}, "beta", (-3.0, -1.0, 1.0, 3.0), "Exponential variant (Eq. 10)"),
        ("bd", {"eta": 3.0}, "alpha", (1.0, 2.0, 3.0, 5.0), "Beta variant (Eq. 11), $\\eta=3$"),
    ]
    for k, (name, fixed, varied, values, title) in enumerate(panels):
        ax = _axes(fig, 1, 3, k + 1)
        _family(ax, name, fixed, varied, values)
        with matplotlib.rc_context(STYLE):
            ax.legend(loc="upper center")
        ax.set_title(title)
        if k:
            ax.set_ylabel("")
    return fig


def toy_batch(n=256, classes=10, features=16, noise=0.4, train_size=2000, steps=150, seed=0):
    """Logits of a real (tiny) model for a batch with noisy labels.

    A linear softmax classifier is trained with CCE (tinydm autograd, full-batch gradient
    descent) on Gaussian blobs whose labels were corrupted with probability ``noise`` (symmetric:
    a uniform pick among the other classes). Returns ``(logits, labels, noisy)`` for ``n`` of its
    training examples: host NumPy arrays (float32, int64, bool).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, features)) * 1.2
    truth = rng.integers(0, classes, size=train_size)
    x = (means[truth] + rng.normal(size=(train_size, features))).astype(np.float32)
    noisy = rng.random(train_size) < noise
    labels = np.where(noisy, (truth + rng.integers(1, classes, size=train_size)) % classes, truth)
    w = Tensor(np.zeros((features, classes), np.float32), requires_grad=True, device="cpu")
    b = Tensor(np.zeros(classes, np.float32), requires_grad=True, device="cpu")
    xt, yt = Tensor(x, device="cpu"), Tensor(labels, device="cpu")
    for _ in range(steps):
        w.grad = b.grad = None
        losses.cce(xt @ w + b, yt).backward()
        w.data -= 0.5 * w.grad.data
        b.data -= 0.5 * b.grad.data
    logits = (x[:n] @ w.numpy() + b.numpy()).astype(np.float32)
    return logits, labels[:n], noisy[:n]


def batch_weights(logits, labels, noisy=None, lam=0.5, beta=8.0, q=0.7):
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
        p = losses.details(loss)["p_i"].numpy()

    fig = _figure(13.0, 5.2) if noisy is not None else _figure(8.6, 4.8)
    with matplotlib.rc_context(STYLE):
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
        ax.legend(loc="upper center", ncols=3, fontsize=10.5)
        hist = fig.add_subplot(grid[1, 0], sharex=ax)
        bins = np.linspace(0, 1, 26)
        if noisy is None:
            hist.hist(p, bins=bins, color=COLOURS["clean"])
        else:
            noisy = np.asarray(noisy, dtype=bool)
            hist.hist([p[~noisy], p[noisy]], bins=bins, stacked=True,
                      color=[COLOURS["clean"], COLOURS["noisy"]],
                      label=["correct label", "wrong label"])
            hist.legend(loc="upper center", ncols=2, fontsize=10.5)
        hist.set_xlabel(P_LABEL)
        hist.set_ylabel("examples")
        if noisy is not None:
            bars = fig.add_subplot(grid[:, 1])
            shares = [received[key][noisy].sum() / n for key, _ in schemes]
            bars.bar(range(len(schemes)), shares, color=[COLOURS[k] for k, _ in schemes])
            bars.axhline(noisy.mean(), color="k", lw=1, ls=":")
            bars.text(len(schemes) - 0.5, noisy.mean(), "equal\nweights", va="bottom", ha="right",
                      fontsize=10.5)
            bars.set_xticks(range(len(schemes)),
                            [names[k].split(" (")[0] for k, _ in schemes], rotation=30, ha="right")
            bars.set_ylim(0, 1)
            bars.set_ylabel("share of the batch's gradient")
            bars.set_title("Share spent on wrong labels")
    return fig


def save(fig, out_dir, name, formats=("png", "pdf"), dpi=150):
    """Write ``fig`` as ``out_dir/name.<format>`` for each format; return the paths."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def standard_set(out_dir, formats=("png", "pdf"), lam=0.5, beta=8.0, q=0.7,
                 lams=(0.0, 0.5, 1.0, 2.0), betas=(-2.0, 0.0, 2.0, 4.0, 8.0, 16.0),
                 batch_size=256, noise=0.4, seed=0, dpi=150, names=STANDARD_FIGURES):
    """Write the figures ``names`` (default: all of :data:`STANDARD_FIGURES`) into ``out_dir``;
    return the paths."""
    unknown = sorted(set(names) - set(STANDARD_FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(STANDARD_FIGURES)}")
    figures = {
        "edf_fig1b": lambda: fig1b(lam=lam, beta=beta, q=q),
        "edf_dm_vs_lam": lambda: dm_vs_lam(lams=lams, beta=beta),
        "edf_dm_vs_beta": lambda: dm_vs_beta(betas=betas, lam=lam),
        "edf_variants": edf_variants,
        "edf_batch_weights": lambda: batch_weights(
            *toy_batch(n=batch_size, noise=noise, seed=seed), lam=lam, beta=beta, q=q),
    }
    paths = []
    for name in names:
        paths += save(figures[name](), out_dir, name, formats, dpi)
    return paths


# ----------------------------------------------------------------------------------------------
# Result figures of the IMDB experiment (Table 5, tinydm/experiments/imdb.py)
# ----------------------------------------------------------------------------------------------
def method_style(method):
    """Colour, line style and width of a Table 5 method: one colour per loss family, dashed
    for its derivative-normalised (-DN) version, DM thicker."""
    family = method.removesuffix("-dn")
    return {"color": COLOURS.get(family, "#000000"), "ls": "--" if method.endswith("-dn") else "-",
            "lw": 2.8 if method == "dm" else 1.8}


def _run_curves(records, row_key, method):
    """Per seed: (iterations, test accuracy %, % of test reviews predicted positive)."""
    curves = []
    for r in records:
        s = r["settings"]
        if s["row"] == row_key and s["method"] == method:
            it = np.array([e["iteration"] for e in r["evals"]])
            acc = 100 * np.array([e["test_accuracy"] for e in r["evals"]])
            predicted = np.array([e["test_class_histogram"] for e in r["evals"]], dtype=float)
            curves.append((it, acc, 100 * predicted[:, 1] / predicted.sum(axis=1)))
    return curves


def imdb_curves(records, rows, methods):
    """Test accuracy (top) and the share of test reviews predicted positive (bottom) during
    training, one column per row of Table 5 (``rows``: ``[(key, title), ...]``), one colour per
    method: the mean over seeds (thick) and each seed (thin). A run at 50% accuracy predicting
    100% (or 0%) positive has collapsed onto one class."""
    fig = _figure(4.2 * len(rows), 8.0)
    axes = [[_axes(fig, 2, len(rows), k + 1 + i * len(rows)) for k in range(len(rows))]
            for i in range(2)]
    with matplotlib.rc_context(STYLE):
        for k, (row_key, title) in enumerate(rows):
            top, bottom = axes[0][k], axes[1][k]
            for method in methods:
                curves = _run_curves(records, row_key, method)
                if not curves:
                    continue
                style = method_style(method)
                for it, acc, pos in curves:
                    top.plot(it, acc, color=style["color"], ls=style["ls"], lw=0.7, alpha=0.45)
                    bottom.plot(it, pos, color=style["color"], ls=style["ls"], lw=0.7, alpha=0.45)
                length = min(len(c[0]) for c in curves)
                it = curves[0][0][:length]
                top.plot(it, np.mean([c[1][:length] for c in curves], axis=0), **style,
                         label=method.upper())
                bottom.plot(it, np.mean([c[2][:length] for c in curves], axis=0), **style)
            top.axhline(50, color="k", lw=0.8, ls=":")
            bottom.axhline(50, color="k", lw=0.8, ls=":")
            top.set_title(title)
            top.set_ylim(45, 92)
            bottom.set_ylim(-3, 103)
            bottom.set_xlabel("iteration")
            if k == 0:
                top.set_ylabel("test accuracy (%)")
                bottom.set_ylabel("test reviews predicted positive (%)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    return fig


def imdb_vs_paper(summary, rows, methods):
    """Final test accuracy per method, one panel per row of Table 5: our mean and standard
    deviation over seeds (dot and bar; small dots: each seed) beside the paper's number
    (black cross). ``summary``: the cells of :func:`tinydm.experiments.imdb.summarise`."""
    fig = _figure(4.2 * len(rows), 4.6)
    by_cell = {(c["row"], c["method"]): c for c in summary}
    with matplotlib.rc_context(STYLE):
        for k, (row_key, title) in enumerate(rows):
            ax = _axes(fig, 1, len(rows), k + 1)
            for x, method in enumerate(methods):
                cell = by_cell.get((row_key, method))
                if cell is None:
                    continue
                colour = method_style(method)["color"]
                ax.errorbar([x], [cell["final_mean"]], yerr=[cell["final_std"]], fmt="o",
                            color=colour, ms=7, capsize=3,
                            mfc="white" if method.endswith("-dn") else colour)
                ax.plot([x] * len(cell["final"]), cell["final"], ".", color=colour, ms=4,
                        alpha=0.6)
                ax.plot([x], [cell["paper"]], "x", color="k", ms=8, mew=2,
                        label="paper" if x == 0 else None)
            ax.axhline(50, color="k", lw=0.8, ls=":")
            ax.set_xticks(range(len(methods)), [m.upper() for m in methods], rotation=60,
                          ha="right", fontsize=10)
            ax.set_ylim(45, 92)
            ax.set_title(title)
            if k == 0:
                ax.set_ylabel("final test accuracy (%)")
                ax.legend(loc="lower left")
    return fig


# ----------------------------------------------------------------------------------------------
# Result figures of the CIFAR experiment (Tables 1 and 9, Figures 2 and 5;
# tinydm/experiments/cifar.py)
# ----------------------------------------------------------------------------------------------
CIFAR_RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _cifar_runs(runs):
    """``[(label, results, colour)]`` from ``{label: results}`` (several runs to overlay) or one
    run's results dict (labelled by its loss)."""
    if "history" in runs:
        runs = {runs["config"]["loss"].upper(): runs}
    return [(name, r, CIFAR_RUN_COLOURS[k % len(CIFAR_RUN_COLOURS)])
            for k, (name, r) in enumerate(runs.items())]


def _cifar_series(records, key):
    """(iterations, values) of the records that have ``key`` (not None)."""
    points = [(r["iteration"], r[key]) for r in records if r.get(key) is not None]
    return (np.array([p[0] for p in points]), np.array([p[1] for p in points], dtype=float))


def _cifar_title(runs):
    c = runs[0][1]["config"]
    noise = "clean labels" if c["noise"] == "none" or not c["noise_rate"] else \
        f"{c['noise']} noise r={c['noise_rate']:g}"
    return f"{c['dataset'].upper()}, ResNet-{c['depth']}, {noise}"


def cifar_accuracy(runs):
    """Learning dynamics as in the paper's Figures 2b and 5: test accuracy (solid), training
    accuracy against the given, noisy labels (dashed: Table 9's "Corrupted") and against the
    clean labels (dotted: "Intact"), and the clean validation split (dash-dot) if any, at every
    evaluation; one colour per run (``runs``: ``{label: results}`` or one results dict)."""
    runs = _cifar_runs(runs)
    fig = _figure(10.5, 5.2)
    ax = _axes(fig)
    curves = (("test_accuracy", "-", "test"),
              ("train_accuracy_noisy_labels", "--", "train, given labels"),
              ("train_accuracy_clean_labels", ":", "train, clean labels"),
              ("val_accuracy", "-.", "validation"))
    with matplotlib.rc_context(STYLE):
        for name, r, colour in runs:
            for key, ls, what in curves:
                it, v = _cifar_series(r["history"]["evals"], key)
                if it.size:
                    ax.plot(it, 100 * v, color=colour, ls=ls, marker="o" if it.size < 3 else None,
                            label=f"{name}: {what}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(_cifar_title(runs))
    _legend_right(ax)
    return fig


def cifar_p_i(runs):
    """The paper's Figure 2a: the mean ``p_i`` (probability of the given label) of the intact
    (solid) and of the corrupted (dashed) training examples at every evaluation. A method that
    resists the noise raises the first and keeps the second low."""
    runs = _cifar_runs(runs)
    fig = _figure(10.5, 5.2)
    ax = _axes(fig)
    with matplotlib.rc_context(STYLE):
        for name, r, colour in runs:
            for key, ls, what in (("mean_p_clean", "-", "clean examples"),
                                  ("mean_p_noisy", "--", "noisy examples")):
                it, v = _cifar_series(r["history"]["evals"], key)
                if it.size:
                    ax.plot(it, v, color=colour, ls=ls, marker="o" if it.size < 3 else None,
                            label=f"{name}: {what}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(r"mean $p_i$ of the given label")
        ax.set_ylim(0, 1)
        ax.set_title(_cifar_title(runs))
    _legend_right(ax)
    return fig


def cifar_ess(runs):
    """The effective sample size of each logged batch's weights, ``(sum w)^2 / sum w^2``
    (``= N`` when all weights are equal, 1 when one example has them all), against the
    iteration; the dotted line is the batch size. For CCE the weights are its Eq. 6 weights
    ``2(1 - p_i)``, for DM its Eq. 12 ones."""
    runs = _cifar_runs(runs)
    fig = _figure(10.5, 4.8)
    ax = _axes(fig)
    with matplotlib.rc_context(STYLE):
        sizes = set()
        for name, r, colour in runs:
            batch = r["config"]["batch_size"]
            sizes.add(batch)
            it, v = _cifar_series(r["history"]["steps"], "ess_fraction")
            if it.size:
                ax.plot(it, batch * v, color=colour, marker="o" if it.size < 3 else None,
                        label=name)
        for batch in sizes:
            ax.axhline(batch, color="k", lw=1, ls=":")
        ax.set_ylim(0, 1.05 * max(sizes))
        ax.set_xlabel("iteration")
        ax.set_ylabel(r"ESS  $(\Sigma\, w_i)^2 / \Sigma\, w_i^2$")
        ax.set_title(f"Effective sample size of the batch weights; {_cifar_title(runs)}")
    _legend_right(ax)
    return fig


def cifar_test_predictions(results, classes=None):
    """How many test images are predicted as each class at the last evaluation; the dotted
    line is the number of test images per class if predictions matched the balanced test set."""
    histogram = np.array(results["history"]["evals"][-1]["test_class_histogram"])
    k = histogram.size
    names = (list(classes) if classes is not None and len(classes) == k
             else [str(i) for i in range(k)])
    fig = _figure(max(6.0, 0.55 * k + 2.0) if k <= 20 else 12.0, 4.6)
    ax = _axes(fig)
    with matplotlib.rc_context(STYLE):
        ax.bar(range(k), histogram, color=COLOURS["dm"] if results["config"]["loss"] == "dm"
               else COLOURS["cce"])
        ax.axhline(histogram.sum() / k, color="k", lw=1, ls=":")
        if k <= 20:
            ax.set_xticks(range(k), names, rotation=45, ha="right")
        else:
            ax.set_xlabel("class")
        ax.set_ylabel("test images predicted")
        ax.set_title(f"Predicted classes on the test set, iteration "
                     f"{results['history']['evals'][-1]['iteration']}")
    return fig


# ----------------------------------------------------------------------------------------------
# Emphasis collapse (docs/emphasis-collapse.md): the feedback model, IMDB and CIFAR runs
# ----------------------------------------------------------------------------------------------
ONE_CLASS_COLOUR, ESCAPED_COLOUR = COLOURS["dm"], COLOURS["cce"]
CLASS_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
                 "#000000", "#999999", "#882255")


def collapse_model(name, p, num_classes, **params):
    """The feedback model of docs/emphasis-collapse.md: a network whose prediction does not
    depend on the input gives the favoured class A probability ``p`` and every other class
    ``q = (1 - p) / (C - 1)``, on a batch with equal counts of every label.

    Returns ``(share, push)`` (arrays like ``p``): ``share`` is the part of the batch's
    gradient (L1, the normalised weights summed) carried by the examples labelled A,
    ``w(p) / (w(p) + (C - 1) w(q))``; ``push`` is how much the batch's descent step moves the
    logit of A (its bias), per unit of total gradient: every example's step is ``s_i (e_i -
    p) / (2 (1 - p_i))``, so the A-labelled ones add ``share / 2`` and the others subtract
    ``(1 - share) p / (2 (1 - q))``. ``push > 0`` at ``p > 1/C``: the favoured class is
    pushed further (collapse feeds itself); ``push < 0``: the step restores balance.
    ``name``/``params``: a weighting function of :func:`tinydm.edf.weight`, or ``"uniform"``
    (every weight 1: DM with beta = 0, and what per-class renormalisation leaves of the
    class shares)."""
    p = np.asarray(p, dtype=np.float64)
    c = num_classes
    q = (1 - p) / (c - 1)
    if name == "uniform":
        w_a, w_o = np.ones_like(p), np.ones_like(q)
    else:
        w_a, w_o = edf.weight(name, p, **params), edf.weight(name, q, **params)
    share = w_a / (w_a + (c - 1) * w_o)
    push = share / 2 - (1 - share) * p / (2 * (1 - q))
    return share, push


def collapse_feedback(settings=None):
    """The feedback model (:func:`collapse_model`) for the paper's settings: the share of the
    batch's gradient carried by the favoured class's examples (top) and the push on its logit
    (bottom) against its probability ``p``, for IMDB (C = 2, left) and CIFAR-10 (C = 10, right).
    ``settings``: ``{C: [(label, name, params, colour, style)]}`` to draw others."""
    if settings is None:
        settings = {
            2: [("CCE", "cce", {}, COLOURS["cce"], "-"),
                (r"DM $\beta=0$ (uniform) / per-class", "uniform", {}, "#777777", ":"),
                (r"DM $\lambda=0, \beta=0.9$ (r = 0)", "dm", {"lam": 0, "beta": 0.9},
                 COLOURS["mse"], "-"),
                (r"DM $\lambda=0, \beta=-0.52$ (r = 0.2)", "dm", {"lam": 0, "beta": -0.52},
                 COLOURS["gce"], "-"),
                (r"DM $\lambda=0, \beta=-0.33$ (r = 0.4)", "dm", {"lam": 0, "beta": -0.33},
                 COLOURS["dm"], "-")],
            10: [("CCE", "cce", {}, COLOURS["cce"], "-"),
                 (r"DM $\beta=0$ (uniform) / per-class", "uniform", {}, "#777777", ":"),
                 (r"DM $\lambda=1, \beta=8$", "dm", {"lam": 1, "beta": 8}, COLOURS["gce"], "-"),
                 (r"DM $\lambda=2, \beta=20$ (Table 9)", "dm", {"lam": 2, "beta": 20},
                  COLOURS["mse"], "-"),
                 (r"DM $\lambda=0.5, \beta=12$ (Table 9)", "dm", {"lam": 0.5, "beta": 12},
                  COLOURS["mae"], "-"),
                 (r"DM $\lambda=1, \beta=16$ (Table 9)", "dm", {"lam": 1, "beta": 16},
                  COLOURS["dm"], "-")]}
    fig = _figure(6.2 * len(settings), 8.6)
    with matplotlib.rc_context(STYLE):
        for k, (c, curves) in enumerate(sorted(settings.items())):
            top = _axes(fig, 2, len(settings), k + 1)
            bottom = _axes(fig, 2, len(settings), k + 1 + len(settings))
            p = np.linspace(1 / c, 1 - 1e-9, 600)
            for text, name, params, colour, ls in curves:
                share, push = collapse_model(name, p, c, **params)
                top.plot(p, share, color=colour, ls=ls, label=text)
                bottom.plot(p, push, color=colour, ls=ls)
            top.axhline(1 / c, color="k", lw=0.8, ls="--")
            bottom.axhline(0, color="k", lw=0.8, ls="--")
            top.set_title(f"C = {c} classes, equal label counts")
            top.set_ylabel("share of the batch's gradient\non the favoured class's examples")
            bottom.set_ylabel("push on the favoured logit\n(> 0: collapse feeds itself)")
            bottom.set_xlabel(r"$p$ given to the favoured class (the others: $(1-p)/(C-1)$)")
            for ax in (top, bottom):
                ax.set_xlim(1 / c, 1)
            top.set_ylim(0, 1)
            top.legend(loc="upper left", fontsize=10)
    return fig


def _seed_outcome(record):
    """Colour and legend text of a run: ends one-class, or not."""
    return ((ONE_CLASS_COLOUR, "ends one-class") if record["final_one_class"]
            else (ESCAPED_COLOUR, "does not end one-class"))


def _collapse_reference(ax, record, what):
    """Dashed lines where an IMDB run predicting one class sits under DM with lam = 0: the
    favoured label's share of the emphasis ``1 / (1 + e^beta)`` (labelled examples at p = 1
    weigh 1, the others e^beta) and the ESS fraction ``(1 + e^beta)^2 / (2 (1 + e^(2 beta)))``."""
    params = record["settings"]["loss_params"]
    if params.get("lam", None) != 0.0 or params.get("per_class") or not params.get("beta"):
        return
    rho = np.exp(params["beta"])
    if what == "share":
        for v in (1 / (1 + rho), rho / (1 + rho)):
            ax.axhline(v, color="k", lw=1, ls="--")
    else:
        ax.axhline((1 + rho) ** 2 / (2 * (1 + rho ** 2)), color="k", lw=1, ls="--")


def _positive_share_of_emphasis(record, window=5):
    """(iterations, share of the emphasis on positive labels), a running mean over ``window``
    logged steps: a shuffled batch's label counts vary by about 3% from one batch to the next,
    the tilt of a collapse persists."""
    steps = record["steps"]
    it = np.array([s["iteration"] for s in steps])
    share = np.array([s["class_shares"][1] for s in steps])
    if share.size < window:
        return it, share
    smooth = np.convolve(share, np.ones(window) / window, mode="valid")
    return it[window - 1:], smooth


def collapse_seeds(records):
    """IMDB runs over seeds (one run each), coloured by whether they end predicting one class:
    test accuracy and the share of test reviews predicted positive at every evaluation, and per
    logged batch the share of the emphasis on the positively labelled reviews (``class_shares``,
    a running mean over 5 logged batches) and the ESS fraction of the weights. Dashed: where a
    one-class DM (lam = 0) run sits."""
    fig = _figure(13.0, 8.4)
    axes = [_axes(fig, 2, 2, k + 1) for k in range(4)]
    with matplotlib.rc_context(STYLE):
        seen = set()
        for record in sorted(records, key=lambda r: r["final_one_class"]):  # collapsed on top
            colour, text = _seed_outcome(record)
            label = None if text in seen else text
            seen.add(text)
            it = np.array([e["iteration"] for e in record["evals"]])
            hist = np.array([e["test_class_histogram"] for e in record["evals"]], dtype=float)
            axes[0].plot(it, [100 * e["test_accuracy"] for e in record["evals"]], color=colour,
                         lw=1.2, alpha=0.8, label=label)
            axes[1].plot(it, 100 * hist[:, 1] / hist.sum(axis=1), color=colour, lw=1.2, alpha=0.8)
            steps_it, share = _positive_share_of_emphasis(record)
            axes[2].plot(steps_it, share, color=colour, lw=0.8, alpha=0.6)
            axes[3].plot([s["iteration"] for s in record["steps"]],
                         [s["ess_fraction"] for s in record["steps"]], color=colour, lw=0.8,
                         alpha=0.6)
        if records:
            _collapse_reference(axes[2], records[0], "share")
            _collapse_reference(axes[3], records[0], "ess")
        s = records[0]["settings"] if records else {}
        params = ", ".join(f"{k}={v:g}" for k, v in s.get("loss_params", {}).items())
        axes[0].set_title(f"{len(records)} seeds, {s.get('row', '')}: test accuracy")
        axes[0].set_ylabel("test accuracy (%)")
        axes[0].set_ylim(45, 92)
        axes[0].legend(loc="lower right")
        axes[1].set_title("test reviews predicted positive")
        axes[1].set_ylabel("%")
        axes[1].set_ylim(-3, 103)
        axes[2].set_title("emphasis on the positively labelled reviews\n"
                          "(running mean of 5 logged batches)")
        axes[2].set_ylabel("share of the batch's weight")
        axes[3].set_title(f"ESS of the batch weights (DM {params})")
        axes[3].set_ylabel("ESS / batch size")
        for ax in axes:
            ax.set_xlabel("iteration")
    return fig


def collapse_remedies(groups):
    """IMDB runs with each remedy (``groups``: ``{variant: records}``, ``""`` the plain run),
    one column each: test accuracy per seed (top) and the share of the emphasis on the
    positively labelled reviews per logged batch (bottom), coloured by whether the run ends
    predicting one class."""
    fig = _figure(3.6 * len(groups), 7.4)
    with matplotlib.rc_context(STYLE):
        for k, (variant, records) in enumerate(groups.items()):
            top = _axes(fig, 2, len(groups), k + 1)
            bottom = _axes(fig, 2, len(groups), k + 1 + len(groups))
            ends = 0
            for record in sorted(records, key=lambda r: r["final_one_class"]):  # collapsed on top
                colour, _ = _seed_outcome(record)
                ends += record["final_one_class"]
                top.plot([e["iteration"] for e in record["evals"]],
                         [100 * e["test_accuracy"] for e in record["evals"]], color=colour,
                         lw=1.0, alpha=0.8)
                bottom.plot(*_positive_share_of_emphasis(record), color=colour, lw=0.6,
                            alpha=0.5)
            if records:
                _collapse_reference(bottom, records[0], "share")
            top.set_title(f"{variant or 'plain DM'}\n{ends}/{len(records)} end one-class",
                          fontsize=12)
            top.set_ylim(45, 92)
            bottom.set_ylim(0.25, 0.75)
            bottom.set_xlabel("iteration")
            if k == 0:
                top.set_ylabel("test accuracy (%)")
                bottom.set_ylabel("emphasis share of\npositive labels")
    return fig


def collapse_rescue(table):
    """Final test accuracy of every seed (dots; vermillion: ends one-class) and the mean (bar)
    for each remedy (x) and row (one panel each); ``table``: the rows of
    :func:`tinydm.experiments.imdb.rescue_table`."""
    rows = list(dict.fromkeys(c["row"] for c in table))
    fig = _figure(max(4.0, 1.0 + 0.9 * max(sum(c["row"] == r for c in table) for r in rows))
                  * len(rows), 5.2)
    with matplotlib.rc_context(STYLE):
        for k, r in enumerate(rows):
            ax = _axes(fig, 1, len(rows), k + 1)
            cells = [c for c in table if c["row"] == r]
            for x, c in enumerate(cells):
                finals = np.array(c["final"])
                jitter = np.linspace(-0.18, 0.18, finals.size) if finals.size > 1 else [0.0]
                collapsed = np.array(c["ends_one_class"], dtype=bool)
                ax.plot(x + np.asarray(jitter)[~collapsed], finals[~collapsed], "o",
                        color=ESCAPED_COLOUR, ms=4, alpha=0.8)
                ax.plot(x + np.asarray(jitter)[collapsed], finals[collapsed], "o",
                        color=ONE_CLASS_COLOUR, ms=4, alpha=0.8)
                ax.plot([x - 0.3, x + 0.3], [c["final_mean"]] * 2, color="k", lw=2)
            ax.set_xticks(range(len(cells)), [c["variant"].lstrip("+") or "plain" for c in cells],
                          rotation=45, ha="right", fontsize=10)
            if any(c["one_class"] for c in cells):  # show the 50% runs; else zoom on the cost
                ax.axhline(50, color="k", lw=0.8, ls=":")
                ax.set_ylim(45, 92)
            ax.set_title(cells[0].get("title", r))
            if k == 0:
                ax.set_ylabel("final test accuracy (%)")
    return fig


def collapse_cifar(runs, classes=None):
    """CIFAR runs (``{label: results}``) through emphasis collapse: for each run the share of
    the test images predicted as each class at every evaluation (stacked bars, one colour per
    class; a balanced network shows ten similar bands), then per logged batch the ESS fraction
    of the weights and the largest share of the batch's emphasis that one label's examples
    carry (dotted: 1/C, what every label gets with equal weights and counts). ``classes``:
    names for the legend (default: the class indices)."""
    runs = _cifar_runs(runs)
    n = len(runs)
    cols = min(max(n, 2), 3)            # predictions: up to three runs per row
    rows = -(-n // cols) + 1            # ... and one row for the two batch panels
    fig = _figure(5.0 * cols, 4.2 * rows)
    grid = fig.add_gridspec(rows, 2 * cols)  # a run spans two columns, a batch panel `cols`
    with matplotlib.rc_context(STYLE):
        for k, (name, r, _) in enumerate(runs):
            row, col = divmod(k, cols)
            ax = _axes(fig, grid[row, 2 * col:2 * col + 2])
            evals = r["history"]["evals"]
            it = np.array([e["iteration"] for e in evals], dtype=float)
            hist = np.array([e["test_class_histogram"] for e in evals], dtype=float)
            shares = 100 * hist / hist.sum(axis=1, keepdims=True)
            width = 0.8 * (np.diff(it).min() if it.size > 1 else max(it[0], 1.0))
            bottom = np.zeros(it.size)
            names = list(classes) if classes is not None else [str(c) for c in range(hist.shape[1])]
            for c in range(shares.shape[1]):
                ax.bar(it, shares[:, c], width, bottom=bottom, label=names[c],
                       color=CLASS_COLOURS[c % len(CLASS_COLOURS)])
                bottom += shares[:, c]
            ax.set_ylim(0, 100)
            ax.set_title(f"{name}: test predictions by class", fontsize=12)
            ax.set_xlabel("iteration")
            if k % cols == 0:
                ax.set_ylabel("% of test images")
            if k == cols - 1:
                ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9,
                          title="class", title_fontsize=9)
        ess = _axes(fig, grid[rows - 1, :cols])
        top = _axes(fig, grid[rows - 1, cols:])
        for name, r, colour in runs:
            steps = r["history"]["steps"]
            it = [s["iteration"] for s in steps]
            ess.plot(it, [s["ess_fraction"] for s in steps], color=colour, label=name)
            top.plot(it, [max(s["class_shares"]) for s in steps], color=colour, label=name)
        first = runs[0][1]["history"]["steps"] if runs else []
        top.axhline(1 / (len(first[0]["class_shares"]) if first else 10), color="k", lw=0.8,
                    ls=":")
        ess.set_ylim(0, 1.02)
        top.set_ylim(0, 1)
        ess.set_title("ESS of the batch weights", fontsize=12)
        ess.set_ylabel("ESS / batch size")
        top.set_title("largest share of the emphasis on one label", fontsize=12)
        for ax in (ess, top):
            ax.set_xlabel("iteration")
        top.legend(loc="upper right")
        fig.suptitle(_cifar_title(runs))
    return fig
