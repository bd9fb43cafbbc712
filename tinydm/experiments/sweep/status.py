"""Where a sweep stands, read from its folder while it runs: nothing is run and no lock is taken.

Each cell of the grid is

* ``done``: its record is in ``<out>/cells/``, with the cell's settings;
* ``running``: a live process holds the lock of its work folder ``<out>/work/<name>``;
* ``stopped``: its work folder holds a run that no live process holds (a sweep that was killed
  or stopped): the next run of the sweep resumes it from its last checkpoint;
* ``to run``: nothing of it exists yet.

Where the experiment keeps a running cell's record in its work folder (CIFAR: rewritten at each
checkpoint), the iterations it has done. From the timings of the records, the wall time per
iteration (evaluation included, all cells together) gives the time left at that pace on a
number of lanes (cells run side by side, each at the pace measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...files import lock_holder
from .cells import Chosen, Job, get_adapter, in_order, load_record, plan, plan_choices, resolve

STATES = ("done", "running", "stopped", "to run")


@dataclass(frozen=True)
class CellStatus:
    """One cell's state (one of :data:`STATES`); ``iterations_done`` is None where the
    experiment keeps no progress of a running cell; ``wall_seconds`` is the time the cell has
    run so far (all of it when done); ``holder`` names the process of a running cell."""

    job: Job
    state: str
    iterations: int | None
    iterations_done: int | None = None
    wall_seconds: float | None = None
    holder: str | None = None
    note: str | None = None

    @property
    def iterations_left(self) -> int | None:
        if self.state == "done":
            return 0
        if self.iterations is None:
            return None
        return self.iterations - (self.iterations_done or 0)


def _timed(state, job, record, holder=None):
    timing = record.get("timing") or {}
    done = 0 if state == "to run" else timing.get("iterations_done")
    return CellStatus(job, state, job.settings.get("iterations"), done,
                      timing.get("wall_seconds"), holder)


def cell_status(grid, out_dir, data=None, data_dir=None, cache_dir=None,
                download=True) -> list[CellStatus]:
    """The state of every cell of ``grid`` in the sweep folder ``out_dir``, in the grid's order.
    Where a cell's name depends on the data (IMDB: the features' fingerprint) and ``data`` is
    not given, the data is loaded from ``data_dir``/``cache_dir`` as :func:`run` does."""
    adapter, out_dir = get_adapter(grid.experiment), Path(out_dir)
    if data is None and adapter.names_depend_on_data:
        data = adapter.load_data([j.settings for j in plan(grid)], data_dir, cache_dir, download)
    jobs = plan(grid, data)
    statuses: list[CellStatus] = []
    records = {}
    for job in jobs:
        record = load_record(out_dir, job, grid.experiment)
        if record is not None:
            records[job.name] = record
    for entry in in_order(jobs, plan_choices(grid, data)):
        job = entry
        if isinstance(entry, Chosen):
            job = resolve(grid, entry, records, data)
            if job is None:  # validation has not chosen yet
                waiting = sum(c.name not in records for c in entry.candidates)
                statuses.append(CellStatus(Job(entry.label, entry.choice.cell, {}), "to run",
                                           entry.choice.cell.get("iterations"), 0,
                                           note=f"waits for {waiting} candidate(s)"))
                continue
            if job.name in {s.job.name for s in statuses}:
                continue
        record = records.get(job.name) or load_record(out_dir, job, grid.experiment)
        if record is not None:
            statuses.append(_timed("done", job, record))
            continue
        work = out_dir / "work" / job.name
        holder = lock_holder(work) if work.is_dir() else None
        partial = adapter.partial_record(work) if work.is_dir() else None
        state = "running" if holder else "stopped" if partial is not None else "to run"
        statuses.append(_timed(state, job, partial or {}, holder))
    return statuses


def seconds_per_iteration(statuses) -> float | None:
    """The wall time per iteration over every cell with a timing (done or partly done): their
    summed wall time over their summed iterations; None before any has one."""
    timed = [s for s in statuses if s.wall_seconds and s.iterations_done]
    if not timed:
        return None
    return sum(s.wall_seconds for s in timed) / sum(s.iterations_done for s in timed)


def status_lines(statuses, lanes=1) -> list[str]:
    """A table of the cells that are not done (a line each), then the counts per state and the
    time left on ``lanes`` lanes, as text lines."""
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise ValueError(f"sweep status: lanes must be a positive integer, got {lanes!r}")
    lines = ["| cell | state | iterations done |", "|---|---|---|"]
    for s in statuses:
        if s.state == "done":
            continue
        done = "" if s.iterations_done is None else f"{s.iterations_done} of {s.iterations}"
        state = s.state + "".join(f" ({x})" for x in (s.holder, s.note) if x)
        lines.append(f"| {s.job.name} | {state} | {done} |")
    if len(lines) == 2:
        lines = []
    counts = ", ".join(f"{sum(s.state == state for s in statuses)} {state}" for state in STATES)
    lines += ["", f"{len(statuses)} cells: {counts}"]
    left = [s.iterations_left for s in statuses]
    pace = seconds_per_iteration(statuses)
    if None in left:
        lines.append("time left: unknown (a cell's number of iterations is not known)")
    elif pace is None:
        lines.append(f"{sum(left)} iterations left; time left: unknown until a cell has a timing")
    else:
        hours = sum(left) * pace / lanes / 3600
        lines.append(f"{sum(left)} iterations left: about {hours:.1f} h on {lanes} lane(s) at "
                     f"{pace:.2f} s per iteration (the records' wall time, evaluation included)")
    return lines
