"""What every figure shares: colours (Okabe-Ito), the two styles (``"paper"`` for documents,
``"slides"`` for lectures), legend labels in the paper's symbols, figure and axes factories
(matplotlib's object-oriented API, no pyplot) and :func:`save`.

Every figure function of :mod:`tinydm.plot` takes ``style``: ``"paper"`` (the default: each
figure its own size, fonts for a page) or ``"slides"`` (16:9 at 13.33 x 7.5 inches, the size of a
widescreen slide, with fonts and lines large enough to read from the back of a lecture hall).
Both use the same colour-blind-safe palette; :func:`save` writes PNG, SVG and PDF.
"""

import functools
import pathlib

import matplotlib
from cycler import cycler
from matplotlib.figure import Figure

from ..files import atomic_open

# Okabe-Ito: distinguishable with every common colour-vision deficiency, and in greyscale print.
COLOURS = {"cce": "#0072B2", "mae": "#E69F00", "mse": "#009E73", "gce": "#CC79A7",
           "dm": "#D55E00", "noisy": "#882255", "clean": "#AAAAAA"}
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
             "#000000")
RUN_COLOURS = tuple(c for c in OKABE_ITO if c != "#F0E442")  # its yellow is too faint for lines
CLASS_COLOURS = OKABE_ITO + ("#999999", "#882255")  # ten classes: two more, grey and wine
_PAPER = {
    "font.size": 13, "axes.titlesize": 14, "axes.labelsize": 14, "legend.fontsize": 11.5,
    "xtick.labelsize": 12, "ytick.labelsize": 12, "lines.linewidth": 2.4,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "legend.frameon": False, "pdf.fonttype": 42,  # TrueType in PDFs: text stays editable in slides
    "svg.fonttype": "none",  # SVG text stays text (editable, searchable)
    "axes.prop_cycle": cycler(color=OKABE_ITO),
}
STYLES = {
    "paper": _PAPER,
    # Sizes in points on a 13.33 in wide slide: a 20 pt label is about 1/50 of the slide's width.
    "slides": {**_PAPER, "font.size": 20, "axes.titlesize": 22, "axes.labelsize": 21,
               "legend.fontsize": 17, "xtick.labelsize": 18, "ytick.labelsize": 18,
               "lines.linewidth": 3.4, "lines.markersize": 9, "axes.linewidth": 1.4},
}
SLIDE_SIZE = (40 / 3, 7.5)  # inches: 16:9, the size of a widescreen PowerPoint/Beamer slide
FORMATS = ("png", "svg", "pdf")
P_LABEL = r"$p_i$  (probability of the labelled class)"
DENSITY_LABEL = r"emphasis density $h(p_i)$  (Eq. 8)"


def label(name, **params):
    """A legend label: the scheme's name and its parameters in the paper's symbols."""
    symbols = {"lam": r"\lambda", "beta": r"\beta", "psi": r"\psi", "alpha": r"\alpha",
               "eta": r"\eta", "q": "q", "gamma": r"\gamma", "epsilon": r"\epsilon", "t": "t",
               "A": "A", "tau": r"\tau"}
    args = ", ".join(f"${symbols[k]}={v:g}$" for k, v in params.items())
    return name.upper() + (f" ({args})" if args else "")


def styled(draw):
    """Decorate a figure function ``draw(..., style="paper")``: it runs under its style's rc
    settings (matplotlib reads them as each artist is made), so every title, label, tick and
    legend it makes takes the style's sizes."""
    @functools.wraps(draw)
    def styled_draw(*args, style="paper", **kwargs):
        if style not in STYLES:
            raise ValueError(f"unknown figure style {style!r}; choose one of {', '.join(STYLES)}")
        with matplotlib.rc_context(STYLES[style]):
            return draw(*args, style=style, **kwargs)
    return styled_draw


def figure(*size, style="paper"):
    """An empty figure for a :func:`styled` function: ``size`` (inches) in the paper style,
    16:9 (:data:`SLIDE_SIZE`) for slides. The figure keeps its style for :func:`save`."""
    fig = Figure(figsize=SLIDE_SIZE if style == "slides" else size, layout="constrained")
    fig.tinydm_style = style
    return fig


def legend_right(ax, **kwargs):
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), **kwargs)


def as_names(value):
    """One name or a sequence of names, as a tuple: ``"png"`` is one format, not three letters."""
    return (value,) if isinstance(value, str) else tuple(value)


def save(fig, out_dir, name, formats=FORMATS, dpi=150):
    """Write ``fig`` as ``out_dir/name.<format>`` for each format (png, svg, pdf; one or
    several), each file atomically; return the paths. Paper figures are cropped to their
    content; slides keep their exact 16:9 size."""
    formats = as_names(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"save: unknown format(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(FORMATS)}")
    crop = "tight" if getattr(fig, "tinydm_style", "paper") == "paper" else None
    paths = []
    for fmt in formats:
        path = pathlib.Path(out_dir) / f"{name}.{fmt}"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi, bbox_inches=crop)
        paths.append(path)
    return paths
