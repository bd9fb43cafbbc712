"""Figures of the IMDB experiment (Table 5, tinydm/experiments/imdb/): the test curves of every
method and seed, and our table against the paper's."""

import numpy as np

from ..experiments.runner import evals_of
from .records import percent_predicted_positive, seed_mean
from .style import COLOURS, figure, styled


def method_style(column):
    """Colour, line style and width of a column of Table 5 (a method, with its remedies after a
    ``+``): one colour per loss family, dashed for its derivative-normalised (-DN) version,
    dotted with remedies, DM thicker."""
    method, remedies = column.split("+", 1)[0], "+" in column
    family = method.removesuffix("-dn")
    return {"color": COLOURS.get(family, "#000000"),
            "ls": ":" if remedies else "--" if method.endswith("-dn") else "-",
            "lw": 2.8 if method == "dm" else 1.8}


def _run_curves(records):
    """Per run: (iterations, test accuracy %, % of test reviews predicted positive)."""
    curves = []
    for r in records:
        it = np.array([e["iteration"] for e in evals_of(r)])
        acc = 100 * np.array([e["test_accuracy"] for e in evals_of(r)])
        curves.append((it, acc, percent_predicted_positive(r)))
    return curves


@styled
def imdb_curves(runs, rows, columns, style="paper"):
    """Test accuracy (top) and the share of test reviews predicted positive (bottom) during
    training, one column per row of Table 5 (``rows``: ``[(key, title), ...]``), one colour per
    column of the table (``runs``: ``{(row, column): [record, ...]}``): the mean over seeds
    (thick) and each seed (thin). A run at 50% accuracy predicting 100% (or 0%) positive has
    collapsed onto one class."""
    fig = figure(4.2 * len(rows), 8.0, style=style)
    axes = [[fig.add_subplot(2, len(rows), k + 1 + i * len(rows)) for k in range(len(rows))]
            for i in range(2)]
    for k, (row_key, title) in enumerate(rows):
        top, bottom = axes[0][k], axes[1][k]
        for column in columns:
            curves = _run_curves(runs.get((row_key, column), []))
            if not curves:
                continue
            line = method_style(column)
            for it, acc, pos in curves:
                top.plot(it, acc, color=line["color"], ls=line["ls"], lw=0.7, alpha=0.45)
                bottom.plot(it, pos, color=line["color"], ls=line["ls"], lw=0.7, alpha=0.45)
            for ax, j, text in ((top, 1, column.upper()), (bottom, 2, None)):
                mean = seed_mean([(c[0], c[j]) for c in curves])
                if mean is not None:
                    ax.plot(*mean[:2], **line, label=text)
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


@styled
def imdb_vs_paper(summary, rows, columns, style="paper"):
    """Final test accuracy per method, one panel per row of Table 5: our mean and standard
    deviation over seeds (dot and bar; small dots: each seed) beside the paper's number
    (black cross; none for a column beyond the paper). ``summary``: the cells of
    :func:`tinydm.experiments.imdb.summarise`."""
    fig = figure(4.2 * len(rows), 4.6, style=style)
    by_cell = {(c["row"], c["column"]): c for c in summary}
    for k, (row_key, title) in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), k + 1)
        paper = "paper"  # the legend's text, on the first cross drawn (a column may have none)
        for x, column in enumerate(columns):
            cell = by_cell.get((row_key, column))
            if cell is None:
                continue
            colour = method_style(column)["color"]
            ax.errorbar([x], [cell["final_mean"]], yerr=[cell["final_std"]], fmt="o",
                        color=colour, ms=7, capsize=3,
                        mfc="white" if method_style(column)["ls"] != "-" else colour)
            ax.plot([x] * len(cell["final"]), cell["final"], ".", color=colour, ms=4,
                    alpha=0.6)
            if cell["paper"] is not None:
                ax.plot([x], [cell["paper"]], "x", color="k", ms=8, mew=2, label=paper)
                paper = None
        ax.axhline(50, color="k", lw=0.8, ls=":")
        ax.set_xticks(range(len(columns)), [m.upper() for m in columns], rotation=60,
                      ha="right", fontsize="small")
        ax.set_ylim(45, 92)
        ax.set_title(title)
        if k == 0:
            ax.set_ylabel("final test accuracy (%)")
            if paper is None:  # a cross was drawn (none when every column is beyond the paper)
                ax.legend(loc="lower left")
    return fig
