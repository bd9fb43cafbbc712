"""The paper's Table 5 as data: its rows (training sets and DM's parameters), its columns
(methods: loss names of tinydm.losses), its seeds and its printed numbers."""

from __future__ import annotations

from dataclasses import dataclass

NUM_CLASSES = 2
FEATURE_DIM = 100
SEEDS = (123, 124, 125)
FLAG_POINTS = 2.0  # cells further than this from the paper (in accuracy points) are flagged


@dataclass(frozen=True)
class Row:
    """A row of Table 5: the training set it uses and DM's parameters for it.

    ``noise`` is the symmetric label-noise rate; ``ratio`` (positives per negative) makes an
    imbalanced training set with clean labels, ``None`` keeps all 25,000 reviews.
    """

    key: str
    title: str
    noise: float
    ratio: float | None
    lam: float
    beta: float


ROWS = (
    Row("r0", "r = 0.0", 0.0, None, lam=0.0, beta=0.9),
    Row("r0.2", "r = 0.2", 0.2, None, lam=0.0, beta=-0.52),
    Row("r0.4", "r = 0.4", 0.4, None, lam=0.0, beta=-0.33),
    Row("pn10", "P:N 10:1", 0.0, 10, lam=0.3, beta=6.5),
    Row("pn50", "P:N 50:1", 0.0, 50, lam=0.3, beta=6.5),
)
ROW_KEYS = tuple(r.key for r in ROWS)
_ROW_BY_KEY = {r.key: r for r in ROWS}

METHODS = ("cce", "gce", "mae", "mse", "cce-dn", "gce-dn", "mae-dn", "mse-dn", "dm")
METHOD_TITLES = {m: m.upper() for m in METHODS}
#: Columns of the main job's table beyond the paper's: a method with remedies for emphasis
#: collapse (docs/emphasis-collapse.md recommends DM with per-class renormalisation).
EXTRA_COLUMNS = {"dm+perclass": ("dm", {"per_class": True})}
#: Every column of the main job's table: the paper's methods, then :data:`EXTRA_COLUMNS`. A
#: column's key is the method and the tag of its remedies (RunSettings.variant).
COLUMNS = METHODS + tuple(EXTRA_COLUMNS)
#: The loss zoo (tinydm/losses/zoo.py), with its default parameters: columns beyond the paper's
#: that a table may ask for (not in the main job's :data:`COLUMNS`; the paper has no number).
ZOO = ("focal", "poly1", "taylor", "rce", "phuber")
#: Every method a run may use: the paper's, then the zoo.
LOSSES = METHODS + ZOO
#: Every column a table may have: :data:`COLUMNS`, then the zoo.
ALL_COLUMNS = COLUMNS + ZOO

# Table 5 as printed, in %, columns in the order of METHODS. The paper writes "0.5" for the
# networks that predict one class for every test review, i.e. 50%.
PAPER = {
    "r0":   (88.9, 88.9, 88.9, 88.9, 88.5, 87.7, 74.5, 88.2, 89.1),
    "r0.2": (87.7, 88.6, 88.6, 88.5, 87.2, 85.5, 72.8, 87.0, 88.7),
    "r0.4": (75.5, 83.6, 84.9, 83.7, 75.0, 75.2, 80.2, 75.3, 86.4),
    "pn10": (78.9, 77.0, 75.4, 77.6, 77.5, 59.1, 50.0, 78.5, 80.6),
    "pn50": (63.4, 50.0, 50.0, 58.6, 61.4, 50.0, 50.0, 64.4, 65.0),
}


def row(key):
    """The :class:`Row` of a key (``"r0"``, ``"r0.2"``, ``"r0.4"``, ``"pn10"``, ``"pn50"``)."""
    if key not in _ROW_BY_KEY:
        raise ValueError(f"imdb: unknown row {key!r}; choose from {', '.join(ROW_KEYS)}")
    return _ROW_BY_KEY[key]


def paper_value(row_key, method):
    """Table 5's number for a cell, in %; None for a method the paper does not have (the zoo)."""
    return PAPER[row_key][METHODS.index(method)] if method in METHODS else None


def column(key):
    """``(method, remedies)`` of a column of :data:`COLUMNS` (``"dm+perclass"`` ->
    ``("dm", {"per_class": True})``; a method is its own column, without remedies)."""
    if key in EXTRA_COLUMNS:
        return EXTRA_COLUMNS[key]
    if key not in LOSSES:
        raise ValueError(f"imdb: unknown column {key!r}; choose from {', '.join(ALL_COLUMNS)}")
    return key, {}
