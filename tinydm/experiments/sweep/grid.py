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
class Grid:
    """A sweep: the ``experiment`` (one of :data:`EXPERIMENTS`), the settings every cell
    shares (``fixed``), the ``axes`` crossed with each other, and optional ``subgrids`` (each
    crossed with the axes; the cells of all of them put together). See the module docstring."""

    experiment: str
    fixed: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    subgrids: tuple = ()

    def __post_init__(self):
        if self.experiment not in EXPERIMENTS:
            raise ValueError(f"sweep grid: unknown experiment {self.experiment!r}; choose from "
                             f"{', '.join(EXPERIMENTS)}")
        if not isinstance(self.fixed, dict):
            raise ValueError(f"sweep grid: [fixed] must be a table of name = value, got "
                             f"{self.fixed!r}")
        fixed = {k: _check_value(f"fixed.{k}", v) for k, v in self.fixed.items()}
        axes = _check_axes("axes", self.axes)
        subgrids = tuple(_check_axes(f"subgrid {i + 1}", s) for i, s in enumerate(self.subgrids))
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
        object.__setattr__(self, "subgrids", subgrids)

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

    def cells(self):
        """Every cell as a dict of settings, subgrid by subgrid, the last axis fastest."""
        cells = []
        for sub in self.subgrids or ({},):
            names = [*self.axes, *sub]
            for values in itertools.product(*self.axes.values(), *sub.values()):
                cells.append({**self.fixed, **dict(zip(names, values))})
        return cells


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
