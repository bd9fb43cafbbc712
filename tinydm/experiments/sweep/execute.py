"""Running the cells: one cell in a worker (:func:`run_cell`), on a local process pool
(:class:`LocalPool`) or as Ray tasks (:class:`RayCluster`), and the sweep that retries, skips
what is done and saves each record as it arrives (:func:`run`)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
import platform
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from ... import backend
from ...files import write_json
from .cells import (Chosen, accuracy, get_adapter, in_order, load_record, plan, plan_choices,
                    record_path, resolve)
from .grid import ATTEMPTS, Grid
from .report import first_line_of_error


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
    out["seconds"] = time.perf_counter() - started
    return out


_WORKER: dict = {}


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

    def results(self, experiment, feed, data, work_dir, size):
        """Yield ``(job, outcome of run_cell)`` as the cells finish, ``workers`` at a time:
        ``feed()`` gives the next job to start (None: none is ready), asked whenever a worker
        is free, after the caller has handled the last outcome; ``size``: at most that many
        jobs will come."""
        context = mp.get_context("spawn")
        pool = cf.ProcessPoolExecutor(min(self.workers, size), mp_context=context,
                                      initializer=_init_worker, initargs=(data, os.getpid()))
        futures = {}

        def fill():
            while len(futures) < self.workers and (job := feed()) is not None:
                futures[pool.submit(_pool_cell, experiment, job.settings,
                                    str(Path(work_dir) / job.name), self.threads)] = job
        try:
            fill()
            while futures:
                finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    job = futures.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as e:  # the worker died (BrokenProcessPool): it failed
                        outcome = {"error": f"{type(e).__name__}: {e}", "host": platform.node()}
                    yield job, outcome
                fill()
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

    def results(self, experiment, feed, data, work_dir, size):
        """As :meth:`LocalPool.results`, every ready job submitted at once (Ray queues them on
        the cluster's free CPUs)."""
        ray = self.ray
        task = ray.remote(run_cell).options(num_cpus=self.threads, num_gpus=self.gpus,
                                            max_retries=0)  # the sweep retries, as on the pool
        shared = ray.put(data)
        refs = {}

        def fill():
            while (job := feed()) is not None:
                refs[task.remote(experiment, job.settings, shared,
                                 str(Path(work_dir) / job.name), self.threads)] = job
        try:
            fill()
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as e:  # the task's worker or node died
                        outcome = {"error": f"{type(e).__name__}: {e}"}
                    yield job, outcome
                fill()
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)


class _Queue:
    """The cells still to run, in the grid's order: ``entries``, jobs and the chosen cells
    (:class:`~.cells.Chosen`) that become jobs once their candidates have records
    (:func:`~.cells.resolve`); ``records`` by job name, those found in ``out_dir`` included
    (none with ``force``), ``resolved`` the jobs the chosen cells became."""

    def __init__(self, grid, out_dir, data, jobs, chosen, force=False):
        self.grid, self.out_dir, self.data, self.force = grid, out_dir, data, force
        self.records, self.chosen, self.resolved = {}, chosen, []
        self.names = {j.name for j in jobs}  # a chosen cell may be one of these
        self.entries = [e for e in in_order(jobs, chosen)
                        if isinstance(e, Chosen) or self._found(e) is None]
        self.settle()

    def _found(self, job):
        record = None if self.force else load_record(self.out_dir, job, self.grid.experiment)
        if record is not None:
            self.records[job.name] = record
        return record

    def settle(self):
        """Make jobs of the chosen cells whose candidates all have records (dropping those
        that are another cell, or already saved)."""
        entries = []
        for entry in self.entries:
            if isinstance(entry, Chosen) and (job := resolve(self.grid, entry, self.records,
                                                             self.data)) is not None:
                new = job.name not in self.names
                self.names.add(job.name)
                if new:
                    self.resolved.append(job)
                if not new or self._found(job) is not None:
                    continue
                entry = job
            entries.append(entry)
        self.entries = entries

    def next(self):
        """The first job in order that can start now, taken off the queue; None if none can."""
        self.settle()
        for k, entry in enumerate(self.entries):
            if not isinstance(entry, Chosen):
                return self.entries.pop(k)
        return None


@dataclass
class Sweep:
    """What :func:`run` did: the ``jobs``, the saved ``records`` by job name (every job that has
    one; tinydm/experiments/runner.py's records with a ``"sweep"`` entry), how many cells were
    ``trained`` and ``skipped`` (found done), the cells that ``failed``
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
    plan_choices(grid)
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
    queue = _Queue(grid, out_dir, data, jobs, plan_choices(grid, data), force)
    skipped = len(queue.records)
    todo = len(queue.entries) if train else 0
    chosen = len(queue.chosen)
    log(f"{grid.experiment} sweep: {len(jobs) + chosen} cells"
        + (f" ({chosen} chosen by validation)" if chosen else "")
        + f", {skipped} already in {out_dir / 'cells'}"
        + (f", {todo} to run" if train else " (running none)"))
    records, errors, attempts = queue.records, {}, {}
    if todo:
        with executor:
            log(f"running on {executor.describe()}")
            bar = tqdm(total=todo, desc="sweep", disable=not progress, dynamic_ncols=True)

            def say(line):
                with tqdm.external_write_mode():  # the line above the bar, not through it
                    log(line)

            for job, outcome in executor.results(grid.experiment, queue.next, data,
                                                 out_dir / "work", todo):
                attempt = attempts[job.name] = attempts.get(job.name, 0) + 1
                if "error" in outcome:
                    errors[job.name] = outcome["error"]
                    if attempt < ATTEMPTS:
                        queue.entries.append(job)  # tried once more, after the others
                    say(f"FAILED (attempt {attempt} of {ATTEMPTS}) {job.name}: "
                        f"{first_line_of_error(outcome['error'])}")
                    continue
                errors.pop(job.name, None)
                record = {**outcome["record"], "sweep": {
                    "name": job.name, "cell": job.cell, "attempts": attempt,
                    "seconds": outcome["seconds"], "host": outcome["host"]}}
                write_json(record_path(out_dir, job), record)
                records[job.name] = record
                bar.update()
                say(_describe(len(records) - skipped, len(jobs) + chosen - skipped, job, record))
            bar.close()
    failed = dict(errors)
    for name, error in failed.items():
        log(f"cell {name} failed {attempts[name]} times; last error:\n{error.rstrip()}")
    if train:
        for entry in queue.entries:  # chosen cells whose candidates did not all finish
            waiting = [c.name for c in entry.candidates if c.name not in records]
            failed[entry.label] = (f"not run: validation could not choose, {len(waiting)} of "
                                   f"its candidates did not finish: {', '.join(waiting)}\n")
            log(f"cell {entry.label} was not run: {len(waiting)} candidate(s) did not finish")
    jobs = jobs + queue.resolved
    return Sweep(grid, jobs, records, trained=len(records) - skipped, skipped=skipped,
                 failed=failed, wall_time=time.perf_counter() - started)


