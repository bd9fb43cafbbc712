"""Figures of emphasis collapse (docs/emphasis-collapse.md): the feedback model
(:func:`tinydm.train.diagnostics.collapse_model`), IMDB runs over seeds and remedies, the rescue
table, and CIFAR runs."""

import numpy as np

from ..experiments.runner import evals_of, steps_of
from ..train.diagnostics import collapse_model
from .cifar import labelled_runs, runs_title
from .records import percent_predicted_positive
from .style import CLASS_COLOURS, COLOURS, figure, styled

ONE_CLASS_COLOUR, ESCAPED_COLOUR = COLOURS["dm"], COLOURS["cce"]


@styled
def collapse_feedback(settings=None, style="paper"):
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
    fig = figure(6.2 * len(settings), 8.6, style=style)
    for k, (c, curves) in enumerate(sorted(settings.items())):
        top = fig.add_subplot(2, len(settings), k + 1)
        bottom = fig.add_subplot(2, len(settings), k + 1 + len(settings))
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
        top.legend(loc="upper left", fontsize="small")
    return fig


def _seed_outcome(record):
    """Colour and legend text of a run: ends one-class, or not."""
    return ((ONE_CLASS_COLOUR, "ends one-class") if record["summary"]["one_class_final"]
            else (ESCAPED_COLOUR, "does not end one-class"))


def _collapse_reference(ax, record, what):
    """Dashed lines where an IMDB run predicting one class sits under DM with lam = 0: the
    favoured label's share of the emphasis ``1 / (1 + e^beta)`` (labelled examples at p = 1
    weigh 1, the others e^beta) and the ESS fraction ``(1 + e^beta)^2 / (2 (1 + e^(2 beta)))``."""
    params = record["config"]["loss_params"]
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
    steps = steps_of(record)
    it = np.array([s["iteration"] for s in steps])
    share = np.array([s["class_shares"][1] for s in steps])
    if share.size < window:
        return it, share
    smooth = np.convolve(share, np.ones(window) / window, mode="valid")
    return it[window - 1:], smooth


@styled
def collapse_seeds(records, style="paper"):
    """IMDB runs over seeds (one run each), coloured by whether they end predicting one class:
    test accuracy and the share of test reviews predicted positive at every evaluation, and per
    logged batch the share of the emphasis on the positively labelled reviews (``class_shares``,
    a running mean over 5 logged batches) and the ESS fraction of the weights. Dashed: where a
    one-class DM (lam = 0) run sits."""
    fig = figure(13.0, 8.4, style=style)
    axes = [fig.add_subplot(2, 2, k + 1) for k in range(4)]
    seen = set()
    for record in sorted(records, key=lambda r: r["summary"]["one_class_final"]):  # collapsed on top
        colour, text = _seed_outcome(record)
        label = None if text in seen else text
        seen.add(text)
        it = np.array([e["iteration"] for e in evals_of(record)])
        axes[0].plot(it, [100 * e["test_accuracy"] for e in evals_of(record)], color=colour,
                     lw=1.2, alpha=0.8, label=label)
        axes[1].plot(it, percent_predicted_positive(record), color=colour, lw=1.2, alpha=0.8)
        steps_it, share = _positive_share_of_emphasis(record)
        axes[2].plot(steps_it, share, color=colour, lw=0.8, alpha=0.6)
        axes[3].plot([s["iteration"] for s in steps_of(record)],
                     [s["ess_fraction"] for s in steps_of(record)], color=colour, lw=0.8,
                     alpha=0.6)
    if records:
        _collapse_reference(axes[2], records[0], "share")
        _collapse_reference(axes[3], records[0], "ess")
    s = records[0]["config"] if records else {}
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


@styled
def collapse_remedies(groups, style="paper"):
    """IMDB runs with each remedy (``groups``: ``{variant: records}``, ``""`` the plain run),
    one column each: test accuracy per seed (top) and the share of the emphasis on the
    positively labelled reviews per logged batch (bottom), coloured by whether the run ends
    predicting one class."""
    fig = figure(3.6 * len(groups), 7.4, style=style)
    for k, (variant, records) in enumerate(groups.items()):
        top = fig.add_subplot(2, len(groups), k + 1)
        bottom = fig.add_subplot(2, len(groups), k + 1 + len(groups))
        ends = 0
        for record in sorted(records, key=lambda r: r["summary"]["one_class_final"]):  # collapsed on top
            colour, _ = _seed_outcome(record)
            ends += record["summary"]["one_class_final"]
            top.plot([e["iteration"] for e in evals_of(record)],
                     [100 * e["test_accuracy"] for e in evals_of(record)], color=colour,
                     lw=1.0, alpha=0.8)
            bottom.plot(*_positive_share_of_emphasis(record), color=colour, lw=0.6,
                        alpha=0.5)
        if records:
            _collapse_reference(bottom, records[0], "share")
        top.set_title(f"{variant or 'plain DM'}\n{ends}/{len(records)} end one-class",
                      fontsize="medium")
        top.set_ylim(45, 92)
        bottom.set_ylim(0.25, 0.75)
        bottom.set_xlabel("iteration")
        if k == 0:
            top.set_ylabel("test accuracy (%)")
            bottom.set_ylabel("emphasis share of\npositive labels")
    return fig


@styled
def collapse_rescue(table, style="paper"):
    """Final test accuracy of every seed (dots; vermillion: ends one-class) and the mean (bar)
    for each remedy (x) and row (one panel each); ``table``: the rows of
    :func:`tinydm.experiments.imdb.rescue_table`."""
    rows = list(dict.fromkeys(c["row"] for c in table))
    fig = figure(max(4.0, 1.0 + 0.9 * max(sum(c["row"] == r for c in table) for r in rows))
                  * len(rows), 5.2, style=style)
    for k, r in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), k + 1)
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
                      rotation=45, ha="right", fontsize="small")
        if any(c["one_class"] for c in cells):  # show the 50% runs; else zoom on the cost
            ax.axhline(50, color="k", lw=0.8, ls=":")
            ax.set_ylim(45, 92)
        ax.set_title(cells[0].get("title", r))
        if k == 0:
            ax.set_ylabel("final test accuracy (%)")
    return fig


@styled
def collapse_cifar(runs, classes=None, style="paper"):
    """CIFAR runs (``{label: results}``) through emphasis collapse: for each run the share of
    the test images predicted as each class at every evaluation (stacked bars, one colour per
    class; a balanced network shows ten similar bands), then per logged batch the ESS fraction
    of the weights and the largest share of the batch's emphasis that one label's examples
    carry (dotted: 1/C, what every label gets with equal weights and counts). ``classes``:
    names for the legend (default: the class indices)."""
    runs = labelled_runs(runs)
    n = len(runs)
    cols = min(max(n, 2), 3)            # predictions: up to three runs per row
    rows = -(-n // cols) + 1            # ... and one row for the two batch panels
    fig = figure(5.0 * cols, 4.2 * rows, style=style)
    grid = fig.add_gridspec(rows, 2 * cols)  # a run spans two columns, a batch panel `cols`
    for k, (name, r, _) in enumerate(runs):
        row, col = divmod(k, cols)
        ax = fig.add_subplot(grid[row, 2 * col:2 * col + 2])
        evals = evals_of(r)
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
        ax.set_title(f"{name}: test predictions by class", fontsize="medium")
        ax.set_xlabel("iteration")
        if k % cols == 0:
            ax.set_ylabel("% of test images")
        if k == min(n, cols) - 1:  # the first row's last run (the only one of one run)
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="x-small",
                      title="class", title_fontsize="x-small")
    ess = fig.add_subplot(grid[rows - 1, :cols])
    top = fig.add_subplot(grid[rows - 1, cols:])
    for name, r, colour in runs:
        steps = steps_of(r)
        it = [s["iteration"] for s in steps]
        ess.plot(it, [s["ess_fraction"] for s in steps], color=colour, label=name)
        top.plot(it, [max(s["class_shares"]) for s in steps], color=colour, label=name)
    first = steps_of(runs[0][1])
    top.axhline(1 / (len(first[0]["class_shares"]) if first else 10), color="k", lw=0.8,
                ls=":")
    ess.set_ylim(0, 1.02)
    top.set_ylim(0, 1)
    ess.set_title("ESS of the batch weights", fontsize="medium")
    ess.set_ylabel("ESS / batch size")
    top.set_title("largest share of the emphasis on one label", fontsize="medium")
    for ax in (ess, top):
        ax.set_xlabel("iteration")
    top.legend(loc="upper right")
    fig.suptitle(runs_title(runs))
    return fig
