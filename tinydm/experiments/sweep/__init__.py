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

A subgrid with ``chosen_from = { seed = 123 }`` (CIFAR, with a validation split) gives cells
that validation chooses (:class:`~.grid.Choice`): each takes its other settings (lam, beta)
from the best by validation accuracy of the grid's cells that have its settings with seed 123
instead, and runs once those are done (:func:`~.cells.resolve`; docs/sweeps.md).

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

The package: :mod:`~.grid` (the grid file and its checks), :mod:`~.cells` (one adapter per
experiment, the jobs of a grid, their records), :mod:`~.execute` (one cell in a worker, the local
pool, Ray, :func:`run`), :mod:`~.report` (tables, CSV and heat maps), :mod:`~.status` (where a
running or stopped sweep stands: each cell done, running, stopped or to run, and the time left).

Workers: the local pool has one process per core, each cell on one thread (the experiments'
networks are small: one run per core is the fastest use of the cores, docs/results.md); worker
processes exit when their parent dies. With ``ray=ADDRESS`` the same cells run as Ray tasks
(``num_cpus=threads``, ``num_gpus=1`` on cuda); Ray is imported only then.
"""

from .cells import (ADAPTERS, Chosen, CifarCells, ImdbCells, Job, accuracy, digest, get_adapter,
                    in_order, load_record, plan, plan_choices, record_path, resolve)
from .execute import LocalPool, RayCluster, Sweep, run, run_cell
from .grid import (ATTEMPTS, CHOSEN_FROM, LOSS_PARAMETERS, SEED, TABLE_AXES, TITLE_SETTINGS,
                   Choice, Grid, applicable, load_grid, loss_parameters)
from .report import (CSV_COLUMNS, group_slug, group_title, markdown_table, summarise,
                     write_report)
from .status import STATES, CellStatus, cell_status, seconds_per_iteration, status_lines

__all__ = ["ADAPTERS", "ATTEMPTS", "CHOSEN_FROM", "CSV_COLUMNS", "CellStatus", "Choice", "Chosen",
           "CifarCells", "Grid", "ImdbCells", "Job", "LOSS_PARAMETERS", "LocalPool", "RayCluster",
           "SEED", "STATES", "Sweep", "TABLE_AXES", "TITLE_SETTINGS", "accuracy", "applicable",
           "cell_status", "digest", "get_adapter", "group_slug", "group_title", "in_order",
           "load_grid", "load_record", "loss_parameters", "markdown_table", "plan",
           "plan_choices", "record_path", "resolve", "run", "run_cell", "seconds_per_iteration",
           "status_lines", "summarise", "write_report"]
