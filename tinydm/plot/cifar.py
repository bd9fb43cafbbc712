"""Figures of CIFAR runs (Tables 1 and 9, Figures 2 and 5; tinydm/experiments/cifar/): test
accuracy, training accuracy against the given and the clean labels, mean ``p_i`` of clean and
noisy examples, the ESS of the weights, the predicted classes."""

import numpy as np

from ..experiments.runner import evals_of, steps_of
from .records import seed_mean, series
from .style import COLOURS, RUN_COLOURS, figure, legend_right, styled


def labelled_runs(runs):
    """``[(label, results, colour)]`` from ``{label: results}`` (several runs to overlay) or one
    run's results dict (labelled by its loss). ValueError for no run at all: no figure can say
    what it shows without one."""
    if not runs:
        raise ValueError(f"runs: nothing to draw, got {runs!r}; pass {{label: results}} or one "
                         "run's results dict")
    if "history" in runs:
        runs = {runs["config"]["loss"].upper(): runs}
    return [(name, r, RUN_COLOURS[k % len(RUN_COLOURS)])
            for k, (name, r) in enumerate(runs.items())]


def runs_title(runs):
    c = runs[0][1]["config"]
    noise = "clean labels" if c["noise"] == "none" or not c["noise_rate"] else \
        f"{c['noise']} noise r={c['noise_rate']:g}"
    return f"{c['dataset'].upper()}, ResNet-{c['depth']}, {noise}"


def _evaluation_curves(runs, curves, scale, ylabel, top, style):
    """One figure of evaluation curves: for each run (one colour) and each ``(key, line style,
    what)`` of ``curves``, ``scale`` times the evaluations' ``key`` against the iteration."""
    runs = labelled_runs(runs)
    fig = figure(10.5, 5.2, style=style)
    ax = fig.add_subplot()
    for name, r, colour in runs:
        for key, ls, what in curves:
            it, v = series(evals_of(r), key)
            if it.size:
                ax.plot(it, scale * v, color=colour, ls=ls, marker="o" if it.size < 3 else None,
                        label=f"{name}: {what}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top)
    ax.set_title(runs_title(runs))
    legend_right(ax)
    return fig


@styled
def cifar_accuracy(runs, style="paper"):
    """Learning dynamics as in the paper's Figures 2b and 5: test accuracy (solid), training
    accuracy against the given, noisy labels (dashed: Table 9's "Corrupted") and against the
    clean labels (dotted: "Intact"), and the clean validation split (dash-dot) if any, at every
    evaluation; one colour per run (``runs``: ``{label: results}`` or one results dict)."""
    curves = (("test_accuracy", "-", "test"),
              ("train_accuracy_noisy_labels", "--", "train, given labels"),
              ("train_accuracy_clean_labels", ":", "train, clean labels"),
              ("val_accuracy", "-.", "validation"))
    return _evaluation_curves(runs, curves, 100, "accuracy (%)", 100, style)


@styled
def cifar_p_i(runs, style="paper"):
    """The paper's Figure 2a: the mean ``p_i`` (probability of the given label) of the intact
    (solid) and of the corrupted (dashed) training examples at every evaluation. A method that
    resists the noise raises the first and keeps the second low."""
    curves = (("mean_p_clean", "-", "clean examples"), ("mean_p_noisy", "--", "noisy examples"))
    return _evaluation_curves(runs, curves, 1, r"mean $p_i$ of the given label", 1, style)


@styled
def cifar_ess(runs, style="paper"):
    """The effective sample size of each logged batch's weights, ``(sum w)^2 / sum w^2``
    (``= N`` when all weights are equal, 1 when one example has them all), against the
    iteration; the dotted line is the batch size. For CCE the weights are its Eq. 6 weights
    ``2(1 - p_i)``, for DM its Eq. 12 ones."""
    runs = labelled_runs(runs)
    fig = figure(10.5, 4.8, style=style)
    ax = fig.add_subplot()
    sizes = set()
    for name, r, colour in runs:
        batch = r["config"]["batch_size"]
        sizes.add(batch)
        it, v = series(steps_of(r), "ess_fraction")
        if it.size:
            ax.plot(it, batch * v, color=colour, marker="o" if it.size < 3 else None,
                    label=name)
    for batch in sizes:
        ax.axhline(batch, color="k", lw=1, ls=":")
    ax.set_ylim(0, 1.05 * max(sizes))
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"ESS  $(\Sigma\, w_i)^2 / \Sigma\, w_i^2$")
    ax.set_title(f"Effective sample size of the batch weights; {runs_title(runs)}")
    legend_right(ax)
    return fig


@styled
def cifar_test_predictions(results, classes=None, style="paper"):
    """How many test images are predicted as each class at the last evaluation; the dotted
    line is the number of test images per class if predictions matched the balanced test set."""
    histogram = np.array(evals_of(results)[-1]["test_class_histogram"])
    k = histogram.size
    names = (list(classes) if classes is not None and len(classes) == k
             else [str(i) for i in range(k)])
    fig = figure(max(6.0, 0.55 * k + 2.0) if k <= 20 else 12.0, 4.6, style=style)
    ax = fig.add_subplot()
    ax.bar(range(k), histogram, color=COLOURS["dm"] if results["config"]["loss"] == "dm"
           else COLOURS["cce"])
    ax.axhline(histogram.sum() / k, color="k", lw=1, ls=":")
    if k <= 20:
        ax.set_xticks(range(k), names, rotation=45, ha="right")
    else:
        ax.set_xlabel("class")
    ax.set_ylabel("test images predicted")
    ax.set_title(f"Predicted classes on the test set, iteration "
                 f"{evals_of(results)[-1]['iteration']}")
    return fig


@styled
def cifar_seed_curves(groups, style="paper"):
    """The paper's Figure 2 over seeds (protocol M of docs/results.md): test accuracy, the
    share of the corrupted training examples predicted as their given (wrong) label
    (memorisation), and the mean ``p_i`` of the given label on clean (solid) and corrupted
    (dashed) examples, against the iteration. ``groups``: ``{method: {seed: results}}``
    (tinydm.experiments.cifar.seeds.group_runs); each seed a thin line, the mean over the seeds
    a thick one, one colour per method."""
    fig = figure(15.5, 4.8, style=style)
    axes = [fig.add_subplot(1, 3, k + 1) for k in range(3)]
    panels = ((axes[0], (("test_accuracy", "-"),), 100, "test accuracy (%)"),
              (axes[1], (("noisy_memorised", "-"),), 100,
               "corrupted examples predicted\nas their given label (%)"),
              (axes[2], (("mean_p_clean", "-"), ("mean_p_noisy", "--")), 1,
               r"mean $p_i$: clean (solid), corrupted (dashed)"))
    for k, (label, group) in enumerate(groups.items()):
        colour = RUN_COLOURS[k % len(RUN_COLOURS)]
        for ax, keys, scale, _ in panels:
            for key, ls in keys:
                curves = [series(evals_of(run), key) for run in group.values()]
                for it, v in curves:
                    ax.plot(it, scale * v, color=colour, ls=ls, lw=0.8, alpha=0.6)
                mean = seed_mean(curves)
                if mean is not None:
                    it, v, seeds = mean
                    ax.plot(it, scale * v, color=colour, ls=ls, lw=2.6,
                            marker="o", ms=3.5,  # a run's first evaluation shows as a dot
                            label=f"{label} ({seeds} seed{'s' * (seeds > 1)})"
                            if ax is axes[0] else None)
    for ax, _, scale, ylabel in panels:
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 100 if scale == 100 else 1)
    first = next(iter(next(iter(groups.values())).values()))
    fig.suptitle(runs_title([(None, first, None)]))  # above all three: long for one panel
    legend_right(axes[2], handles=axes[0].get_legend_handles_labels()[0])
    return fig


@styled
def cifar_noise_rates(points, style="paper"):
    """Final test accuracy against the share of wrong training labels (Table 9's question on
    protocol M, docs/results.md): one line per method over the symmetric noise rates, the mean
    over seeds with their std as error bars; human label sets (CIFAR-10N) as hollow markers at
    their own share of wrong labels. ``points``: ``{method: [(share, [finals], noise)]}``
    (tinydm.experiments.cifar.noise_table.curve_points)."""
    fig = figure(7.5, 4.8, style=style)
    ax = fig.add_subplot(1, 1, 1)
    for k, (method, pts) in enumerate(points.items()):
        colour = RUN_COLOURS[k % len(RUN_COLOURS)]
        for human in (False, True):
            sel = sorted((p for p in pts if p[2].startswith("cifar10n") == human),
                         key=lambda p: p[0])
            if not sel:
                continue
            x = [100 * p[0] for p in sel]
            y = [100 * np.mean(p[1]) for p in sel]
            err = [100 * np.std(p[1], ddof=1) if len(p[1]) > 1 else 0 for p in sel]
            ax.errorbar(x, y, yerr=err, color=colour, capsize=3, lw=0 if human else 2,
                        marker="o", ms=7 if human else 5, mfc="white" if human else colour,
                        label=f"{method}{' (CIFAR-10N)' if human else ''}")
    ax.set_xlabel("wrong training labels (%)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_xlim(-2, 90)  # symmetric r = 0 ... 0.8 and CIFAR-10N's 9-40% on one scale
    ax.set_ylim(0, 100)
    legend_right(ax)
    return fig
