"""Sweeps: a grid of settings (lam, beta, noise rate, seed, loss, ...) run cell by cell through an
experiment's own single-run entry point, on a local process pool or on a Ray cluster, and
summarised as the paper's Figures 6-9: test accuracy over (lam, beta), final and best, mean over
seeds, one table and one heat map per value of the other axes (loss, r, ...).

::

    from tinydm.experiments import sweep
    grid = sweep.load_grid("grid.toml")
    result = sweep.run(grid, "runs/sweep")              # a process per core; ray="auto" for Ray
    sweep.write_report(result, "runs/sweep")            # sweep.md, sweep.csv, heatmap_*.png

``examples/sweep.py`` is the command line; docs/sweeps.md describes the grid file and gives a
measured grid.

Grid file (TOML)
----------------
::

    experiment = "imdb"              # or "cifar"

    [fixed]                          # settings every cell shares
    loss = "dm"
    noise_rate = 0.4

    [axes]                           # crossed with each other: 3 x 5 x 3 = 45 cells
    lam = [0, 0.5, 1]
    beta = [-0.5, 0, 2, 4, 8]
    seed = [123, 124, 125]

    [[subgrid]]                      # optional, repeatable: each is crossed with [axes] and the
    lam = [0]                        # cells of all subgrids are put together (beta values that
    beta = [0.5, 1, 2, 4]            # depend on lam, as in the paper's Figures 6-9)

A setting is any name the experiment's adapter knows (:class:`ImdbCells`, :class:`CifarCells`):
``loss``, the loss parameters (``lam``, ``beta``, ``q``, DM's remedies), ``noise_rate``,
``seed`` and the experiment's own settings (``iterations``, ``batch_size``, ...). A loss
parameter is dropped from the cells whose loss does not take it, so ``loss = ["cce", "dm"]``
with lam and beta axes runs CCE once per seed, not once per (lam, beta).

Cells, records, resuming
------------------------
Each cell becomes a :class:`Job`: its settings as the experiment records them, and a name made of
its axis values and a digest of those settings. The worker that runs it returns the
experiment's record (tinydm/experiments/runner.py's format); the driver (this process, for the
pool and for Ray alike) adds a ``"sweep"`` entry (the cell, its name, the attempts, the host and
seconds) and writes it atomically to ``<out>/cells/<name>.json`` as it arrives. A cell whose
record exists with the same settings is skipped, so a killed sweep, run again, runs only the
missing cells. A cell that fails is tried once more (:data:`ATTEMPTS`); one that fails again is
reported (log, ``Sweep.failed``, the report) and never dropped silently.

Workers: the local pool has one process per core, each cell on one thread (the experiments'
networks are small: one run per core is the fastest use of the cores, docs/results.md); worker
processes exit when their parent dies. With ``ray=ADDRESS`` the same cells run as Ray tasks
(``num_cpus=threads``, ``num_gpus=1`` on cuda); Ray is imported only then.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import backend, losses
from ..files import write_json
from ..train import schedules
from . import runner

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

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


# ----------------------------------------------------------------------------------------------
# The grid
# ----------------------------------------------------------------------------------------------
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
    """A sweep: the ``experiment`` (a key of :data:`ADAPTERS`), the settings every cell
    shares (``fixed``), the ``axes`` crossed with each other, and optional ``subgrids`` (each
    crossed with the axes; the cells of all of them put together). See the module docstring."""

    experiment: str
    fixed: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    subgrids: tuple = ()

    def __post_init__(self):
        if self.experiment not in ADAPTERS:
            raise ValueError(f"sweep grid: unknown experiment {self.experiment!r}; choose from "
                             f"{', '.join(ADAPTERS)}")
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


def _split_loss_parameters(cell):
    """``(loss parameters, other settings)`` of an applicable cell."""
    params = {k: v for k, v in cell.items() if k in LOSS_PARAMETERS}
    return params, {k: v for k, v in cell.items() if k not in LOSS_PARAMETERS}


def _unknown_settings(experiment, unknown, known):
    if unknown:
        raise ValueError(f"{experiment} sweep: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"a cell may set {', '.join(sorted(known))}")


# ----------------------------------------------------------------------------------------------
# The experiments: one small adapter each (cell -> settings, settings -> one run -> record)
# ----------------------------------------------------------------------------------------------
class ImdbCells:
    """IMDB (:mod:`tinydm.experiments.imdb`): a cell is one ``imdb.run_one`` on the PV-DBOW
    features. ``noise_rate`` (0, 0.2, 0.4) or ``imbalance`` (10, 50) picks the row of Table 5;
    ``loss`` is the method; DM's lam and beta default to the row's paper values."""

    name = "imdb"

    def __init__(self):
        from . import imdb

        self.imdb = imdb
        self.SETTINGS = ("noise_rate", "imbalance", *LOSS_PARAMETERS,
                         *(f.name for f in dataclasses.fields(imdb.RunSettings)
                           if f.name not in ("row", "loss_params", "features")))

    def _row(self, cell):
        rate, ratio = float(cell.pop("noise_rate", 0.0)), cell.pop("imbalance", None)
        for row in self.imdb.ROWS:
            if (row.noise, row.ratio) == (rate, ratio):
                return row.key
        raise ValueError(f"imdb sweep: no row of Table 5 has noise_rate = {rate:g} and "
                         f"imbalance = {ratio}; the rows are " + ", ".join(
                             f"noise_rate {r.noise:g}" if r.ratio is None else
                             f"imbalance {r.ratio:g} (clean labels)" for r in self.imdb.ROWS))

    def settings(self, cell, data=None):
        cell = dict(cell)
        _unknown_settings(self.name, set(cell) - set(self.SETTINGS), self.SETTINGS)
        if "loss" not in cell:
            raise ValueError(f"imdb sweep: a cell needs a loss (one of "
                             f"{', '.join(self.imdb.METHODS)})")
        method, row = cell.pop("loss"), self._row(cell)
        seed = cell.pop("seed", self.imdb.SEEDS[0])
        params, protocol = _split_loss_parameters(cell)
        q = params.pop("q", None)  # make_settings gives GCE the paper's q = 0.7
        s = self.imdb.make_settings(row, method, seed, **params, **protocol)
        if q is not None:
            s = s.replace(loss_params={**s.loss_params, "q": float(q)})
        if data is not None:
            s = s.replace(features=data.fingerprint)
        return s.as_dict()

    @staticmethod
    def settings_of(record):
        """The settings a record was run with, as :meth:`settings` gives them."""
        return record["config"]

    def load_data(self, settings, data_dir=None, cache_dir=None, download=True):
        return self.imdb.load_features(data_dir, cache_dir, download=download)

    def run(self, settings, data, work_dir):
        """``imdb.run_one`` into the cell's own folder (its file names do not tell lam and beta
        apart), then the record, the folder removed."""
        record, _ = self.imdb.run_one(settings, data, work_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
        return record


class CifarCells:
    """CIFAR (:mod:`tinydm.experiments.cifar`): a cell is one ``cifar.run`` of a
    :class:`~tinydm.experiments.cifar.Config`. The loss parameters go into ``loss_params``; the
    other settings are Config fields. A cell runs in ``<out>/work/<name>`` (its checkpoints: a
    killed cell resumes there when the sweep runs again) and that folder is removed once the
    record is returned. CIFAR-10/100 are loaded once, by the driver, from ``data_dir``."""

    name = "cifar"
    #: Config fields that say where files are, not what is computed: not part of the settings.
    PLACES = ("out_dir", "data_dir", "download")

    def __init__(self):
        from . import cifar

        self.cifar = cifar
        self.SETTINGS = (*LOSS_PARAMETERS, *(f.name for f in dataclasses.fields(cifar.Config)
                                             if f.name not in ("loss_params", *self.PLACES)))

    def settings(self, cell, data=None):
        cell = dict(cell)
        _unknown_settings(self.name, set(cell) - set(self.SETTINGS), self.SETTINGS)
        params, config = _split_loss_parameters(cell)
        config = self.cifar.Config.from_dict({**config, "loss_params": params}).resolved()
        return self.settings_of({"config": config.as_dict()})

    def settings_of(self, record):
        """The settings a record was run with, as :meth:`settings` gives them (without where
        its files were)."""
        return {k: v for k, v in record["config"].items() if k not in self.PLACES}

    def load_data(self, settings, data_dir=None, cache_dir=None, download=True):
        names = sorted({s["dataset"] for s in settings} - {"synthetic"})
        return {n: self.cifar.load_dataset(self.cifar.Config(dataset=n, data_dir=data_dir,
                                                             download=download))
                for n in names}

    def run(self, settings, data, work_dir):
        record = self.cifar.run({**settings, "out_dir": str(work_dir)}, resume=True,
                                progress=False, figures=False, log=None,
                                dataset=data.get(settings["dataset"]))
        shutil.rmtree(work_dir, ignore_errors=True)
        return record


ADAPTERS = {"imdb": ImdbCells, "cifar": CifarCells}


@functools.lru_cache(maxsize=None)
def get_adapter(experiment):
    """The adapter of an experiment (made on first use: a worker imports only its own)."""
    if experiment not in ADAPTERS:
        raise ValueError(f"sweep: unknown experiment {experiment!r}; choose from "
                         f"{', '.join(ADAPTERS)}")
    return ADAPTERS[experiment]()


# ----------------------------------------------------------------------------------------------
# Jobs and records
# ----------------------------------------------------------------------------------------------
def _text(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(_text, value))
    return str(value).replace("/", "-").replace(os.sep, "-")


def digest(settings):
    """A short sha256 of a cell's settings: part of its record's name."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Job:
    """One cell to run: its ``cell`` (the grid's names, loss parameters its loss does not take
    left out), the experiment's ``settings`` and the record's ``name``."""

    name: str
    cell: dict
    settings: dict


def plan(grid, data=None):
    """The jobs of a grid, in the grid's order, one per distinct settings. Every cell is checked
    here (a clear error before any run); ``data`` completes settings that depend on it (the
    IMDB features' fingerprint)."""
    adapter = get_adapter(grid.experiment)
    jobs, seen = [], set()
    for cell in grid.cells():
        cell = applicable(cell)
        settings = adapter.settings(cell, data)
        key = digest(settings)
        if key in seen:
            continue
        seen.add(key)
        words = [f"{k}={_text(cell[k])}" for k in grid.varying if k in cell]
        jobs.append(Job("_".join([*words, key]), cell, settings))
    return jobs


def record_path(out_dir, job):
    return Path(out_dir) / "cells" / f"{job.name}.json"


def load_record(out_dir, job, experiment):
    """The saved record of a job if it exists, complete, with exactly its settings, else None."""
    try:
        record = runner.read_record(record_path(out_dir, job), experiment)
    except (OSError, ValueError):
        return None
    if record["status"] != "done" or get_adapter(experiment).settings_of(record) != job.settings:
        return None
    return record


def accuracy(record):
    """``(final, best)`` test accuracy of a record, as fractions."""
    return record["summary"]["test_accuracy_final"], record["summary"]["test_accuracy_best"]


# ----------------------------------------------------------------------------------------------
# Running one cell (in a worker process or a Ray task)
# ----------------------------------------------------------------------------------------------
def run_cell(experiment, settings, data, work_dir, threads=1):
    """Run one cell here, in ``work_dir`` (its scratch folder): ``{"record": ..., "seconds":
    ..., "host": ...}`` or, if it raised, ``{"error": traceback, ...}``. ``threads``: CPU
    threads for tinydm and BLAS."""
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    backend.set_num_threads(threads)
    out = {"host": platform.node(), "pid": os.getpid()}
    try:
        with threadpool_limits(threads), warnings.catch_warnings():
            # the collapse watch's warnings are kept in the records; a sweep prints one line
            # per cell instead of one warning per run
            warnings.filterwarnings("ignore", message=".*likely emphasis collapse",
                                    category=RuntimeWarning)
            out["record"] = get_adapter(experiment).run(settings, data, work_dir)
    except Exception:
        out["error"] = traceback.format_exc()
    finally:  # a worker runs many cells: unlock each cell's folder once it is done with it
        runner.release_output(work_dir)
    out["seconds"] = time.perf_counter() - started
    return out


_WORKER = {}


def _watch_parent(parent):
    """Exit this worker as soon as its parent is gone (killed, even by SIGKILL): a worker never
    trains on for nobody."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(data, parent):
    _WORKER["data"] = data
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="tinydm-parent-watch").start()


def _pool_cell(experiment, settings, work_dir, threads):
    return run_cell(experiment, settings, _WORKER["data"], work_dir, threads)


class LocalPool:
    """Cells on ``workers`` processes of this machine (spawned: no state inherited but the
    data, which each worker receives once)."""

    def __init__(self, workers, threads=1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"sweep: workers must be a positive integer, got {workers!r}")
        self.workers, self.threads = workers, threads

    def describe(self):
        return f"a local pool of {self.workers} process(es), {self.threads} thread(s) each"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def results(self, experiment, jobs, data, work_dir):
        """Yield ``(job, outcome of run_cell)`` as the cells finish."""
        context = mp.get_context("spawn")
        pool = cf.ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=context,
                                      initializer=_init_worker, initargs=(data, os.getpid()))
        try:
            futures = {pool.submit(_pool_cell, experiment, job.settings,
                                   str(Path(work_dir) / job.name), self.threads): job
                       for job in jobs}
            for future in cf.as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as e:  # the worker died (BrokenProcessPool): the cell failed
                    outcome = {"error": f"{type(e).__name__}: {e}", "host": platform.node()}
                yield futures[future], outcome
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayCluster:
    """Cells as Ray tasks on the cluster at ``address`` (``"auto"``: the one this machine
    belongs to; ``"local"``: a Ray instance started here for the sweep), each with
    ``num_cpus=threads`` and ``num_gpus=gpus``. If Ray is already initialised in this process,
    that instance is used and left running."""

    def __init__(self, address="auto", threads=1, gpus=0):
        try:
            import ray
        except ImportError:
            raise ImportError("sweep: --ray needs Ray: pip install 'tinydm[ray]' (or "
                              "pip install 'ray[default]')") from None
        self.ray, self.address, self.threads, self.gpus = ray, address, threads, gpus
        self.started_here = False

    def describe(self):
        resources = self.ray.cluster_resources()
        where = f"Ray at {self.address}" if self.started_here else "this process's Ray instance"
        return (f"{where} ({resources.get('CPU', 0):g} CPUs, "
                f"{resources.get('GPU', 0):g} GPUs), {self.threads} CPU(s) and {self.gpus} "
                f"GPU(s) per cell")

    def __enter__(self):
        if not self.ray.is_initialized():
            try:
                self.ray.init(address=None if self.address == "local" else self.address,
                              log_to_driver=False)
            except ConnectionError as e:
                raise ConnectionError(f"sweep: no Ray cluster at {self.address!r} ({e}); start "
                                      f"one with `ray start --head` or use --ray local") from None
            self.started_here = True
        return self

    def __exit__(self, *exc):
        if self.started_here:
            self.ray.shutdown()
        return False

    def results(self, experiment, jobs, data, work_dir):
        ray = self.ray
        task = ray.remote(run_cell).options(num_cpus=self.threads, num_gpus=self.gpus,
                                            max_retries=0)  # the sweep retries, as on the pool
        shared = ray.put(data)
        refs = {task.remote(experiment, job.settings, shared, str(Path(work_dir) / job.name),
                            self.threads): job for job in jobs}
        waiting = list(refs)
        try:
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                for ref in ready:
                    try:
                        outcome = ray.get(ref)
                    except Exception as e:  # the task's worker or node died
                        outcome = {"error": f"{type(e).__name__}: {e}"}
                    yield refs[ref], outcome
        finally:
            for ref in waiting:
                ray.cancel(ref, force=True)


# ----------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------
@dataclass
class Sweep:
    """What :func:`run` did: the ``jobs``, the saved ``records`` by job name (every job that has
    one; tinydm/experiments/runner.py's records with a ``"sweep"`` entry), how many cells were ``trained`` and ``skipped`` (found done), the cells that ``failed``
    twice (name -> the last error), and the ``wall_time`` in seconds."""

    grid: Grid
    jobs: list
    records: dict
    trained: int
    skipped: int
    failed: dict
    wall_time: float

    @property
    def missing(self):
        """Jobs without a record (failed, or not run: ``run(..., train=False)``)."""
        return [j for j in self.jobs if j.name not in self.records]


def _first_line_of_error(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _describe(done, total, job, record):
    final, best = accuracy(record)
    return (f"[{done:>{len(str(total))}}/{total}] {job.name}: final {100 * final:5.1f}  best "
            f"{100 * best:5.1f}  ({record['sweep']['seconds']:.1f} s on "
            f"{record['sweep']['host']})")


def run(grid, out_dir, data=None, data_dir=None, cache_dir=None, download=True, workers=None,
        threads=1, ray=None, device=None, train=True, force=False, log=print, progress=True):
    """Run every cell of ``grid`` that has no record in ``out_dir`` yet; return a :class:`Sweep`.

    ``data``: the experiment's data (IMDB: :class:`~tinydm.experiments.imdb.Features`; CIFAR: a
    dict of data sets by name), loaded from ``data_dir``/``cache_dir`` when not given.
    ``workers``: processes of the local pool (default: one per core; one on cuda); ``ray``: an
    address (``"auto"``, ``"local"``, ``"HOST:PORT"``, ``"ray://..."``) to run the cells as Ray
    tasks instead. ``device`` overrides every cell's device. ``train=False`` runs nothing and
    gathers what is saved (for a report); ``force`` runs saved cells again. ``log`` receives a
    line per cell (and the failures), ``progress`` shows a bar.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    log = log or (lambda *_: None)
    if device is not None:
        backend.check_device(device)
        grid = dataclasses.replace(grid, fixed={**grid.fixed, "device": device})
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"sweep: threads must be a positive integer, got {threads!r}")
    adapter = get_adapter(grid.experiment)
    jobs = plan(grid)  # every cell checked before any data is loaded
    out_dir = Path(out_dir)
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    probe = out_dir / "cells" / f".probe{os.getpid()}"
    write_json(probe, {})  # an unwritable folder is an error now, not after the first cell
    probe.unlink()
    cuda = any(j.settings["device"] == "cuda" for j in jobs)
    executor = None
    if train:
        executor = (RayCluster(ray, threads, gpus=1 if cuda else 0) if ray is not None else
                    LocalPool(workers or (1 if cuda else os.cpu_count() or 1), threads))
    if data is None:
        data = adapter.load_data([j.settings for j in jobs], data_dir, cache_dir, download)
    jobs = plan(grid, data)
    records = {}
    for job in jobs:
        record = None if force else load_record(out_dir, job, grid.experiment)
        if record is not None:
            records[job.name] = record
    skipped = len(records)
    todo = [j for j in jobs if j.name not in records] if train else []
    log(f"{grid.experiment} sweep: {len(jobs)} cells, {skipped} already in {out_dir / 'cells'}"
        + (f", {len(todo)} to run" if train else " (running none)"))
    errors, attempts = {}, {}
    if todo:
        with executor:
            log(f"running on {executor.describe()}")
            bar = tqdm(total=len(todo), desc="sweep", disable=not progress, dynamic_ncols=True)

            def say(line):
                with tqdm.external_write_mode():  # the line above the bar, not through it
                    log(line)

            for attempt in range(1, ATTEMPTS + 1):
                if not todo:
                    break
                if attempt > 1:
                    say(f"trying {len(todo)} failed cell(s) once more")
                again = []
                for job, outcome in executor.results(grid.experiment, todo, data,
                                                     out_dir / "work"):
                    attempts[job.name] = attempt
                    if "error" in outcome:
                        errors[job.name] = outcome["error"]
                        again.append(job)
                        say(f"FAILED (attempt {attempt} of {ATTEMPTS}) {job.name}: "
                            f"{_first_line_of_error(outcome['error'])}")
                        continue
                    record = {**outcome["record"], "sweep": {
                        "name": job.name, "cell": job.cell, "attempts": attempt,
                        "seconds": outcome["seconds"], "host": outcome["host"]}}
                    write_json(record_path(out_dir, job), record)
                    records[job.name] = record
                    bar.update()
                    say(_describe(len(records) - skipped, len(jobs) - skipped, job, record))
                todo = again
            bar.close()
    failed = {j.name: errors[j.name] for j in todo}
    for name, error in failed.items():
        log(f"cell {name} failed {attempts[name]} times; last error:\n{error.rstrip()}")
    return Sweep(grid, jobs, records, trained=len(records) - skipped, skipped=skipped,
                 failed=failed, wall_time=time.perf_counter() - started)


# ----------------------------------------------------------------------------------------------
# Tables and heat maps (Figures 6-9)
# ----------------------------------------------------------------------------------------------
def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _mean_std(values):
    if not values:
        return None, None
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarise(sweep):
    """One table per value of the varying settings other than lam, beta and the seed (loss and
    r, typically), in the grid's order, named by those and by the :data:`TITLE_SETTINGS` the
    grid fixes: ``{"group": {name: value}, "lams": [...], "betas":
    [...], "cells": {(lam, beta): cell}}`` with, per cell, the ``seeds`` of its records, the
    ``final`` and ``best`` test accuracies (%) and their mean and sample std (ddof = 1), and how
    many of its jobs have no record (``missing``: failed or not run). A cell without lam (or
    beta; a loss that does not take it) has ``None`` there."""
    others = [k for k in sweep.grid.varying if k not in (*TABLE_AXES, SEED)]
    groups = {}
    for job in sweep.jobs:
        values = {k: job.cell[k] for k in (*TITLE_SETTINGS, *others) if k in job.cell}
        group = groups.setdefault(json.dumps(values), {"group": values, "cells": {}})
        at = tuple(job.cell.get(k) for k in TABLE_AXES)
        cell = group["cells"].setdefault(at, {"seeds": [], "final": [], "best": [],
                                              "missing": 0, "jobs": []})
        cell["jobs"].append(job.name)
        record = sweep.records.get(job.name)
        if record is None:
            cell["missing"] += 1
            continue
        final, best = accuracy(record)
        cell["seeds"].append(job.cell.get(SEED, job.settings.get(SEED)))
        cell["final"].append(100 * final)
        cell["best"].append(100 * best)
    for group in groups.values():
        for cell in group["cells"].values():
            cell["final_mean"], cell["final_std"] = _mean_std(cell["final"])
            cell["best_mean"], cell["best_std"] = _mean_std(cell["best"])
        for i, axis in enumerate(("lams", "betas")):
            group[axis] = sorted({at[i] for at in group["cells"]},
                                 key=lambda v: _sort_key(-math.inf if v is None else v))
    return list(groups.values())


def group_title(group):
    return ", ".join(f"{k} = {_text(v)}" for k, v in group["group"].items()) or "all cells"


def group_slug(group):
    return "_".join(f"{k}={_text(v)}" for k, v in group["group"].items()) or "all"


def _cell_text(cell):
    if cell is None:
        return ""
    if not cell["final"]:
        return f"({cell['missing']} missing)"
    text = (f"{cell['final_mean']:.1f} ± {cell['final_std']:.1f} / "
            f"{cell['best_mean']:.1f} ± {cell['best_std']:.1f}")
    return text + (f" ({cell['missing']} missing)" if cell["missing"] else "")


def markdown_table(group):
    """A group's table: rows lam, columns beta, ``final / best`` mean ± std (%)."""
    head = ["-" if b is None else _text(b) for b in group["betas"]]
    lines = ["| lam \\ beta | " + " | ".join(head) + " |",
             "|---:|" + "---:|" * len(head)]
    for lam in group["lams"]:
        cells = [_cell_text(group["cells"].get((lam, beta))) for beta in group["betas"]]
        lines.append(f"| {'-' if lam is None else _text(lam)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_COLUMNS = ("lam", "beta", "n", "seeds", "final_mean", "final_std", "best_mean", "best_std",
               "final", "best", "missing")


def _csv_row(lam, beta, cell):
    """A table cell's line of sweep.csv (accuracies in %, 4 decimals; lists space-separated)."""
    def number(v):
        return "" if v is None else f"{v:.4f}"

    return ["" if lam is None else _text(lam), "" if beta is None else _text(beta),
            str(len(cell["final"])), " ".join(map(_text, cell["seeds"])),
            *(number(cell[k]) for k in ("final_mean", "final_std", "best_mean", "best_std")),
            " ".join(map(number, cell["final"])), " ".join(map(number, cell["best"])),
            str(cell["missing"])]


def write_report(sweep, report_dir, figure_dir=None, command=None, notes=None):
    """Write ``sweep.md`` (per group: the table and its heat map; the failed cells),
    ``sweep.csv`` (one line per group and (lam, beta)) into ``report_dir`` and one
    ``heatmap_<group>.png`` per group into ``figure_dir`` (default ``report_dir``). Returns the
    paths written."""
    from .. import plot

    report_dir = Path(report_dir)
    figure_dir = Path(figure_dir) if figure_dir is not None else report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    groups = summarise(sweep)
    names = list(dict.fromkeys(k for g in groups for k in g["group"]))
    paths = {"md": report_dir / "sweep.md", "csv": report_dir / "sweep.csv"}
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, *CSV_COLUMNS])
        for g in groups:
            for lam in g["lams"]:
                for beta in g["betas"]:
                    cell = g["cells"].get((lam, beta))
                    if cell is not None:
                        writer.writerow([_text(g["group"][k]) if k in g["group"] else ""
                                         for k in names] + _csv_row(lam, beta, cell))
    seeds = sorted({len(c["final"]) + c["missing"] for g in groups for c in g["cells"].values()})
    lines = [f"# Sweep: {sweep.grid.experiment}, test accuracy over (lam, beta)", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"{len(sweep.jobs)} cells: {sweep.trained} run, {sweep.skipped} found done, "
              f"{len(sweep.failed)} failed, {len(sweep.missing)} without a record; wall time "
              f"{sweep.wall_time:.0f} s.", ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += [f"Each cell: final / best test accuracy (%), mean ± std over the seeds "
              f"({'/'.join(map(str, seeds))} per cell).", ""]
    for g in groups:
        fig = plot.sweep_heatmap(g, group_title(g))
        paths[f"heatmap {group_title(g)}"] = path = plot.save(
            fig, figure_dir, f"heatmap_{group_slug(g)}", formats=("png",), dpi=100)[0]
        link = os.path.relpath(path, report_dir)
        lines += [f"## {group_title(g)}", "", markdown_table(g), "", f"![{group_title(g)}]({link})",
                  ""]
    if sweep.failed:
        lines += ["## Failed cells (tried twice)", ""]
        lines += [f"- `{name}`: {_first_line_of_error(error)}"
                  for name, error in sweep.failed.items()]
        lines.append("")
    paths["md"].write_text("\n".join(lines))
    return paths
