"""Cells: one small adapter per experiment (a cell -> the experiment's settings; settings -> one
run -> its record), the jobs of a grid, and the records saved for them."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import runner
from .grid import LOSS_PARAMETERS, Choice, applicable, split_loss_parameters


def _unknown_settings(experiment, unknown, known):
    if unknown:
        raise ValueError(f"{experiment} sweep: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"a cell may set {', '.join(sorted(known))}")


class ImdbCells:
    """IMDB (:mod:`tinydm.experiments.imdb`): a cell is one ``imdb.run_one`` on the PV-DBOW
    features. ``noise_rate`` (0, 0.2, 0.4) or ``imbalance`` (10, 50) picks the row of Table 5;
    ``loss`` is the method; DM's lam and beta default to the row's paper values."""

    name = "imdb"
    #: a cell's settings, hence its record's name, hold the features' fingerprint
    names_depend_on_data = True

    def __init__(self):
        from .. import imdb

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
        params, protocol = split_loss_parameters(cell)
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

    @staticmethod
    def partial_record(work_dir):
        """None: an IMDB cell (minutes) keeps no record of its progress while it runs."""
        return None


class CifarCells:
    """CIFAR (:mod:`tinydm.experiments.cifar`): a cell is one ``cifar.run`` of a
    :class:`~tinydm.experiments.cifar.Config`. The loss parameters go into ``loss_params``; the
    other settings are Config fields. A cell runs in ``<out>/work/<name>`` (its checkpoints: a
    killed cell resumes there when the sweep runs again) and that folder is removed once the
    record is returned. CIFAR-10/100 are loaded once, by the driver, from ``data_dir``."""

    name = "cifar"
    names_depend_on_data = False
    #: Config fields that say where files are, not what is computed: not part of the settings.
    PLACES = ("out_dir", "data_dir", "download")

    def __init__(self):
        from .. import cifar

        self.cifar = cifar
        self.SETTINGS = (*LOSS_PARAMETERS, *(f.name for f in dataclasses.fields(cifar.Config)
                                             if f.name not in ("loss_params", *self.PLACES)))

    def settings(self, cell, data=None):
        cell = dict(cell)
        _unknown_settings(self.name, set(cell) - set(self.SETTINGS), self.SETTINGS)
        params, config = split_loss_parameters(cell)
        config = self.cifar.Config.from_dict({**config, "loss_params": params}).resolved()
        return self.settings_of({"config": config.as_dict()})

    def settings_of(self, record):
        """The settings a record was run with, as :meth:`settings` gives them (without where
        its files were)."""
        return {k: v for k, v in record["config"].items() if k not in self.PLACES}

    def load_data(self, settings, data_dir=None, cache_dir=None, download=True):
        names = sorted({s["dataset"] for s in settings} - {"synthetic"})
        data = {n: self.cifar.load_dataset(self.cifar.Config(dataset=n, data_dir=data_dir,
                                                             download=download))
                for n in names}
        if any(s["noise"] in self.cifar.HUMAN_NOISES for s in settings):
            # read (and checked) once here, like the images: workers need no data folder
            from ...data import cifar_n

            data["cifar10n"] = cifar_n.load(data_dir, data["cifar10"].train_labels)
        return data

    def run(self, settings, data, work_dir):
        # where it runs, named relative to the sweep's folder in its records and checkpoints
        # (the running ones are committed too): they name no machine's paths
        record = self.cifar.run({**settings, "out_dir": str(work_dir)}, resume=True,
                                progress=False, figures=False, log=None,
                                dataset=data.get(settings["dataset"]),
                                human_labels=data.get("cifar10n"),
                                named_out_dir=f"work/{Path(work_dir).name}")
        shutil.rmtree(work_dir, ignore_errors=True)
        return record

    def validation_score(self, record, name="a cell"):
        """What a choice (``chosen_from``) maximises: the best validation accuracy of a finished
        cell over its evaluations, as ``examples/cifar_report.py --choose`` reads it."""
        return self.cifar.seeds.best_validation(record, f"cifar sweep: {name}")[0]

    def partial_record(self, work_dir):
        """The record a running cell keeps in its work folder (rewritten at each checkpoint:
        its iterations and wall time so far), or None where there is none."""
        try:
            return runner.read_record(Path(work_dir) / self.cifar.RESULTS, self.name)
        except (OSError, ValueError):
            return None


ADAPTERS = {"imdb": ImdbCells, "cifar": CifarCells}  # one per grid.EXPERIMENTS (tested)


@functools.cache
def get_adapter(experiment):
    """The adapter of an experiment (made on first use: a worker imports only its own)."""
    if experiment not in ADAPTERS:
        raise ValueError(f"sweep: unknown experiment {experiment!r}; choose from "
                         f"{', '.join(ADAPTERS)}")
    return ADAPTERS[experiment]()



def text(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(text, value))
    # a record's name is a file name on every system: no separators, no ':' ("cifar10n:worst")
    return re.sub(r'[/\\:*?"<>|]', "-", str(value).replace(os.sep, "-"))


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


def _job(grid, cell, data=None):
    """The job of one cell: its applicable settings, named by the grid's varying settings."""
    cell = applicable(cell)
    settings = get_adapter(grid.experiment).settings(cell, data)
    words = [f"{k}={text(cell[k])}" for k in grid.varying if k in cell]
    return Job("_".join([*words, digest(settings)]), cell, settings)


def _plan(grid, data=None):
    """The jobs of :func:`plan`, and for each cell of the grid how many of them its first cells
    make (where a chosen cell listed after them goes)."""
    jobs, seen, places = [], set(), []
    for cell in grid.cells():
        job = _job(grid, cell, data)
        key = digest(job.settings)
        if key not in seen:
            seen.add(key)
            jobs.append(job)
        places.append(len(jobs))
    return jobs, places


def plan(grid, data=None):
    """The jobs of a grid, in the grid's order, one per distinct settings (not those that
    validation chooses: :func:`plan_choices`). Every cell is checked here (a clear error before
    any run); ``data`` completes settings that depend on it (the IMDB features' fingerprint)."""
    return _plan(grid, data)[0]


@dataclass(frozen=True)
class Chosen:
    """A cell whose settings validation chooses (:class:`~.grid.Choice`), in a plan of ``jobs``
    (:func:`plan`): the ``candidates`` (jobs) it chooses among and its ``place``, the number of
    the plan's jobs listed before it (it runs after them, once its candidates are done)."""

    choice: Choice
    candidates: tuple
    place: int
    label: str  # its settings known before the choice, and those chosen


def plan_choices(grid, data=None):
    """The :class:`Chosen` cells of a grid, in the file's order, their candidates among the
    jobs of :func:`plan`; a clear error when a choice has no candidate or the experiment keeps
    no validation accuracy."""
    choices = grid.choices()
    if not choices:
        return []
    adapter = get_adapter(grid.experiment)
    if not hasattr(adapter, "validation_score"):
        raise ValueError(f"{grid.experiment} sweep: a subgrid with chosen_from needs runs with a "
                         f"validation split; {grid.experiment} runs have none")
    jobs, places = _plan(grid, data)
    found = []
    for choice in choices:
        candidates = tuple(j for j in jobs if choice.matches(j.cell))
        if not candidates:
            among = ", ".join(f"{k} = {text(v)}" for k, v in choice.among.items())
            raise ValueError(f"sweep grid: no cell of the grid is a candidate of the chosen "
                             f"cell {choice.cell} (its settings with {among})")
        for candidate in candidates:  # what it may become is checked now too
            _job(grid, {**candidate.cell, **choice.cell}, data)
        cell = applicable(choice.cell)
        chosen = sorted({k for c in candidates for k in c.cell} - set(cell), key=grid.varying.index)
        label = "_".join(f"{k}={text(cell[k])}" for k in grid.varying if k in cell)
        found.append(Chosen(choice, candidates, places[choice.after - 1] if choice.after else 0,
                            f"{label}, {' and '.join(chosen) or 'nothing'} chosen by validation"))
    return found


def candidate_settings(grid, data=None):
    """The settings of the candidates of a grid's chosen cells (:func:`plan_choices`), each
    once, in the file's order: what a report chooses among as the sweep does."""
    found = {}
    for chosen in plan_choices(grid, data):
        for job in chosen.candidates:
            found.setdefault(job.name, job.settings)
    return list(found.values())


def in_order(jobs, chosen):
    """The jobs of a plan and its :class:`Chosen` cells in the grid file's order."""
    for i in range(len(jobs) + 1):
        yield from (c for c in chosen if c.place == i)
        if i < len(jobs):
            yield jobs[i]


def resolve(grid, chosen, records, data=None):
    """The job of a :class:`Chosen` cell once every candidate has a finished record in
    ``records`` (by job name): its settings with those of the candidate whose record has the
    best validation score (:meth:`CifarCells.validation_score`; the first of equal ones, in the
    grid's order); None while a candidate has none."""
    if any(c.name not in records for c in chosen.candidates):
        return None
    score = get_adapter(grid.experiment).validation_score
    best = max(chosen.candidates, key=lambda c: score(records[c.name], c.name))
    return _job(grid, {**best.cell, **chosen.choice.cell}, data)


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


