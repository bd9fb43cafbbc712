"""Sweeps (tinydm/experiments/sweep/): test accuracy over (lam, beta) as heat maps, the paper's
Figures 6-9."""

import matplotlib
import numpy as np

from .style import figure, styled


@styled
def sweep_heatmap(group, title="", style="paper"):
    """Test accuracy over (lam, beta) of one sweep group, final (left) and best (right): the
    mean over seeds in each cell, written in it, on one colour scale for both panels; a grey
    cell was not run or has no record. ``group``: an item of
    :func:`tinydm.experiments.sweep.summarise`; ``style``: "paper" or "slides"."""
    lams, betas = group["lams"], group["betas"]
    panels = {}
    for key in ("final", "best"):
        values = np.full((len(lams), len(betas)), np.nan)
        for (lam, beta), cell in group["cells"].items():
            if cell[f"{key}_mean"] is not None:
                values[lams.index(lam), betas.index(beta)] = cell[f"{key}_mean"]
        panels[key] = values
    finite = np.concatenate([v[np.isfinite(v)] for v in panels.values()])
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 100.0)
    if high - low < 1.0:
        low, high = low - 0.5, high + 0.5
    fig = figure(2.0 + 2.6 * max(len(betas), 2), 1.6 + 0.7 * max(len(lams), 2), style=style)
    for k, key in enumerate(("final", "best")):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.grid(False)
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#DDDDDD")
        image = ax.imshow(np.ma.masked_invalid(panels[key]), cmap=cmap, vmin=low,
                          vmax=high, aspect="auto", origin="lower")
        for i in range(len(lams)):
            for j in range(len(betas)):
                v = panels[key][i, j]
                if np.isfinite(v):
                    dark = (v - low) / (high - low) < 0.6
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize="medium",
                            color="white" if dark else "black")
        ax.set_xticks(range(len(betas)), ["-" if b is None else f"{b:g}" for b in betas])
        ax.set_yticks(range(len(lams)), ["-" if v is None else f"{v:g}" for v in lams])
        ax.set_xlabel(r"$\beta$")
        if k == 0:
            ax.set_ylabel(r"$\lambda$")
        ax.set_title(f"{key} test accuracy (%)")
    fig.colorbar(image, ax=fig.axes, shrink=0.9, label="mean over seeds (%)")
    if title:
        fig.suptitle(title)
    return fig
