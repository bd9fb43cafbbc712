"""What every figure shares: colours (Okabe-Ito), the rc style, legend labels in the paper's
symbols, figure and axes factories (matplotlib's object-oriented API, no pyplot) and
:func:`save`."""

import pathlib

import matplotlib
from matplotlib.figure import Figure

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


def figure(*size):
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=size, layout="constrained")


def add_axes(fig, *args, **kwargs):
    with matplotlib.rc_context(STYLE):  # rc values are read when an artist is made
        return fig.add_subplot(*args, **kwargs)


def legend_right(ax, **kwargs):
    with matplotlib.rc_context(STYLE):
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), **kwargs)


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
