"""The grid of a sweep: the settings every cell shares, the axes crossed with each other and the
subgrids (see :mod:`tinydm.experiments.sweep`), read from TOML and checked before anything runs;
which loss parameters a cell's loss takes."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from ... import losses
from ...train import schedules

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: The experiments a grid may run: each has an adapter in cells.py (:data:`~.cells.ADAPTERS`).
EXPERIMENTS = ("imdb", "cifar")
ATTEMPTS = 2  # a failed cell is tried once more, then reported
TABLE_AXES = ("lam", "beta")  # the rows and columns of a table and its heat map (Figures 6-9)
SEED = "seed"  # the axis the table averages over
#: Settings that name a table even when the grid fixes them (the paper's "(loss, r)").
TITLE_SETTINGS = ("loss", "noise_rate", "imbalance")


def loss_parameters(name):
    """The settings a loss takes beside its name: its own parameters (tinydm.losses) and, for a
    loss with a beta, the warm-up of beta (tinydm.train.schedules.BetaWarmup)."""
    params = set(losses.parameters(name))
    return params | set(schedules.SCHEDULE_PARAMS) if "beta" in params else params


#: Every parameter of every loss, each routed to the losses that take it.
LOSS_PARAMETERS = tuple(dict.fromkeys(p for n in losses.NAMES for p in sorted(loss_parameters(n))))
GRID_KEYS = ("experiment", "fixed", "axes", "subgrid")
CHOSEN_FROM = "chosen_from"  # a subgrid whose other settings validation chooses (Choice)



def _check_value(where, value, inner=False):
    """A setting's value: a number, a string, a boolean, or a list of them (``milestones``)."""
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"sweep grid: {where} is {value}; values must be finite")
        return value
    if isinstance(value, (list, tuple)) and not inner:
        return [_check_value(f"{where}[{i}]", v, inner=True) for i, v in enumerate(value)]
    raise ValueError(f"sweep grid: {where} must be a number, a string, a boolean or a list of "
                     f"them, got {value!r} ({type(value).__name__})")


def _check_axes(where, axes):
    if not isinstance(axes, dict):
        raise ValueError(f"sweep grid: [{where}] must be a table of name = [values], got "
                         f"{axes!r}")
    checked = {}
    for name, values in axes.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"sweep grid: {where}.{name} must be a non-empty list of values, "
                             f"got {values!r}")
        values = tuple(_check_value(f"{where}.{name}[{i}]", v) for i, v in enumerate(values))
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"sweep grid: {where}.{name} repeats a value: {list(values)}")
        checked[name] = values
    return checked


@dataclass(frozen=True)
class Choice:
    """The cells of a subgrid with ``chosen_from``, one per combination of its values: ``cell``
    (the fixed settings, the axes' and the subgrid's values, e.g. noise_rate 0.2, loss dm, seed
    124) takes its other settings (lam, beta) from the best by validation of the grid's other
    cells that have the cell's settings with those of ``among`` instead (seed 123): its
    *candidates*. ``after``: how many of the grid's other cells come before it in the file, its
    place in the order the cells run."""

    cell: dict
    among: dict
    after: int

    def matches(self, cell):
        """Whether ``cell`` (a cell of the grid) is a candidate of this choice."""
        return all(cell.get(k) == v for k, v in applicable({**self.cell, **self.among}).items())


def _check_chosen_from(where, among, sub):
    if not isinstance(among, dict) or not among:
        raise ValueError(f"sweep grid: {where}.{CHOSEN_FROM} must be a table of name = value "
                         f"(the settings of the candidates, e.g. {{ seed = 123 }}), got {among!r}")
    for name, value in among.items():
        if name not in sub:
            raise ValueError(f"sweep grid: {where}.{CHOSEN_FROM}.{name}: the candidates can only "
                             f"differ from the chosen cells in a setting of the subgrid "
                             f"({', '.join(sub)})")
        if isinstance(value, (list, tuple)):
            raise ValueError(f"sweep grid: {where}.{CHOSEN_FROM}.{name} must be one value, got "
                             f"{value!r}")
    return {k: _check_value(f"{where}.{CHOSEN_FROM}.{k}", v) for k, v in among.items()}


@dataclass(frozen=True)
class Grid:
    """A sweep: the ``experiment`` (one of :data:`EXPERIMENTS`), the settings every cell
    shares (``fixed``), the ``axes`` crossed with each other, and optional ``subgrids`` (each
    crossed with the axes; the cells of all of them put together). A subgrid with
    ``chosen_from`` gives :class:`Choice` cells instead (:meth:`choices`), kept in
    ``chosen_from`` (one entry per subgrid, None for the others). See the module docstring."""

    experiment: str
    fixed: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    subgrids: tuple = ()
    chosen_from: tuple = ()

    def __post_init__(self):
        if self.experiment not in EXPERIMENTS:
            raise ValueError(f"sweep grid: unknown experiment {self.experiment!r}; choose from "
                             f"{', '.join(EXPERIMENTS)}")
        if not isinstance(self.fixed, dict):
            raise ValueError(f"sweep grid: [fixed] must be a table of name = value, got "
                             f"{self.fixed!r}")
        fixed = {k: _check_value(f"fixed.{k}", v) for k, v in self.fixed.items()}
        axes = _check_axes("axes", self.axes)
        chosen_from = list(self.chosen_from) or [None] * len(self.subgrids)
        subgrids = []
        for i, sub in enumerate(self.subgrids):
            if isinstance(sub, dict) and CHOSEN_FROM in sub:
                sub = dict(sub)
                chosen_from[i] = sub.pop(CHOSEN_FROM)
            subgrids.append(_check_axes(f"subgrid {i + 1}", sub))
            if chosen_from[i] is not None:
                chosen_from[i] = _check_chosen_from(f"subgrid {i + 1}", chosen_from[i],
                                                    {**axes, **subgrids[i]})
        for name in axes:
            if name in fixed:
                raise ValueError(f"sweep grid: {name!r} is both in [fixed] and in [axes]")
        for i, sub in enumerate(subgrids):
            for name in sub:
                if name in fixed or name in axes:
                    raise ValueError(f"sweep grid: {name!r} of subgrid {i + 1} is also in "
                                     f"[{'fixed' if name in fixed else 'axes'}]")
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "subgrids", tuple(subgrids))
        object.__setattr__(self, "chosen_from", tuple(chosen_from))

    @classmethod
    def from_dict(cls, data, source="grid"):
        """A grid from the content of a grid file (``subgrid``: a list of tables)."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a grid must be a table")
        unknown = sorted(set(data) - set(GRID_KEYS))
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; a grid has "
                             f"{', '.join(GRID_KEYS)}")
        if "experiment" not in data:
            raise ValueError(f"{source}: the grid names no experiment (experiment = \"imdb\" or "
                             f"\"cifar\")")
        subgrids = data.get("subgrid", [])
        if not isinstance(subgrids, list):
            raise ValueError(f"{source}: subgrids are written [[subgrid]] (a list of tables)")
        try:
            return cls(data["experiment"], data.get("fixed", {}), data.get("axes", {}),
                       tuple(subgrids))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    @property
    def varying(self):
        """The names of the settings that vary, axes first, then those of the subgrids."""
        return tuple(dict.fromkeys([*self.axes, *(n for s in self.subgrids for n in s)]))

    def _expand(self, sub):
        names = [*self.axes, *sub]
        return [{**self.fixed, **dict(zip(names, values))}
                for values in itertools.product(*self.axes.values(), *sub.values())]

    def cells(self):
        """Every cell as a dict of settings, subgrid by subgrid, the last axis fastest; not the
        cells of the subgrids with ``chosen_from`` (:meth:`choices`)."""
        cells = []
        for sub, among in zip(self.subgrids, self.chosen_from):
            if among is None:
                cells += self._expand(sub)
        return cells if self.subgrids else self._expand({})

    def choices(self):
        """The :class:`Choice` cells of the subgrids with ``chosen_from``, in the file's order."""
        found, before = [], 0
        for sub, among in zip(self.subgrids, self.chosen_from):
            cells = self._expand(sub)
            if among is None:
                before += len(cells)
            else:
                found += [Choice(cell, among, before) for cell in cells]
        return found


def load_grid(path):
    """Read a grid file (TOML, see the module docstring)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"sweep grid: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"sweep grid: {path} is not valid TOML: {e}") from None
    return Grid.from_dict(data, source=str(path))


def applicable(cell):
    """The cell without the loss parameters its loss does not take (lam and beta of a CCE
    cell), so that cells differing only by those run once."""
    if "loss" not in cell:
        return dict(cell)
    takes = loss_parameters(cell["loss"])
    return {k: v for k, v in cell.items() if k not in LOSS_PARAMETERS or k in takes}


def split_loss_parameters(cell):
    """``(loss parameters, other settings)`` of an applicable cell."""
    params = {k: v for k, v in cell.items() if k in LOSS_PARAMETERS}
    return params, {k: v for k, v in cell.items() if k not in LOSS_PARAMETERS}
