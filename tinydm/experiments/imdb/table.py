"""The table of the IMDB experiment: every run of rows x methods x seeds (on a process pool),
summarised per cell over the seeds, beside the paper's numbers."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from ..runner import die_with_parent, mean_std, output_folder
from .protocol import ALL_COLUMNS, COLUMNS, FLAG_POINTS, METHODS, ROW_KEYS, SEEDS, paper_value, row
from .training import load_record, run_one
from .settings import RunSettings, folder_settings, table_settings

METHOD_TITLES = {**{m: m.upper() for m in METHODS}, "focal": "Focal", "poly1": "Poly-1",
                 "taylor": "Taylor", "rce": "RCE", "phuber": "PHuber"}


@dataclass
class Table:
    """What :func:`run_table` did: every run's record, the summary per cell (:func:`summarise`),
    how many runs were trained and skipped, and the wall time."""

    records: list
    summary: list
    trained: int
    skipped: int
    wall_time: float


_WORKER: dict = {}


def _init_worker(parent, features, out_dir, force, overwrite):
    die_with_parent(parent)
    _WORKER.update(features=features, out_dir=out_dir, force=force, overwrite=overwrite)


def _run_in_worker(settings):
    return run_one(settings, _WORKER["features"], _WORKER["out_dir"], _WORKER["force"],
                   overwrite=_WORKER["overwrite"])


def _describe(index, total, settings, record, trained):
    r = row(settings.row)
    text = (f"[{index:>3}/{total}] {r.title:<9} {settings.loss + settings.variant:<7} "
            f"seed {settings.seed}  "
            f"final {100 * record['summary']['test_accuracy_final']:5.1f}  "
            f"best {100 * record['summary']['test_accuracy_best']:5.1f}")
    if record["summary"].get("diverged_by"):
        text += f"  (diverged: non-finite loss by iteration {record['summary']['diverged_by']})"
    elif record["summary"]["one_class_final"]:
        text += "  (one class)"
    if trained:
        t = record["timing"]
        text += f"  {t['wall_seconds']:.1f} s, {t['step_ms']:.2f} ms/step"
    else:
        text += "  (done before)"
    return text


def run_table(features, rows=ROW_KEYS, methods=COLUMNS, seeds=SEEDS, out_dir="runs/imdb",
              lam=None, beta=None, jobs=1, force=False, log=print, progress=False,
              overwrite=False, **protocol):
    """Run (or reuse) every run of the table and summarise it.

    ``lam``/``beta`` replace DM's parameters in every row; ``protocol`` overrides the other
    settings (``iterations``, ``batch_size``, ``device``, ...; see :class:`RunSettings`).
    ``jobs > 1`` trains that many runs at a time in worker processes (CPU devices only: the
    MLP is so small that one run uses one core, see docs/results.md). ``log`` receives one line
    per run; ``progress`` shows a bar per run (with ``jobs=1``).

    ``out_dir`` is claimed first (runner.output_folder: writable, locked until the table is
    done, and refused if it holds runs of other shared settings, :func:`folder_settings`,
    unless ``overwrite``; then its runs of other settings are trained again and replaced).
    """
    started = time.perf_counter()
    all_settings = [s.replace(features=features.fingerprint)
                    for s in table_settings(rows, methods, seeds, lam, beta, **protocol)]
    claim = (output_folder(out_dir, folder_settings(all_settings[0], lam, beta), overwrite,
                           what="table") if all_settings else contextlib.nullcontext())
    with claim:  # an empty table has no settings to claim a folder with
        return _run_runs(all_settings, features, out_dir, jobs, force, log, progress, overwrite,
                         started)


def _run_runs(all_settings, features, out_dir, jobs, force, log, progress, overwrite, started):
    """The body of :func:`run_table`, in its claimed output folder."""
    total = len(all_settings)
    records = [None if force else load_record(out_dir, s) for s in all_settings]
    todo = [i for i, record in enumerate(records) if record is None]
    skipped = total - len(todo)
    if skipped and log:
        log(f"{skipped} of {total} runs are already in {out_dir} with the same settings; "
            f"skipping them")
    done = skipped

    def finished(i, record, trained):
        nonlocal done
        records[i] = record
        done += 1
        if log:
            log(_describe(done, total, all_settings[i], record, trained))

    device = all_settings[0].device if all_settings else "cpu"
    if jobs > 1 and device == "cuda":
        raise ValueError("imdb: jobs > 1 runs several CPU processes; use jobs=1 on cuda")
    if jobs > 1 and len(todo) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = cf.ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context,
                                      initializer=_init_worker,
                                      initargs=(os.getpid(), features, str(out_dir), force,
                                                overwrite))
        try:
            futures = {pool.submit(_run_in_worker, all_settings[i]): i for i in todo}
            for future in cf.as_completed(futures):
                finished(futures[future], *future.result())
        except BaseException:
            # a failed run, Ctrl-C or SIGTERM: stop the workers now (a record is written
            # atomically, so a killed run leaves nothing half-written; the finished ones are
            # kept), rather than wait for the runs in progress
            _terminate(pool)
            raise
        pool.shutdown()
    else:
        for i in todo:
            finished(i, *run_one(all_settings[i], features, out_dir, force, progress=progress,
                                 overwrite=overwrite))
    return Table(records, summarise(records), trained=len(todo), skipped=skipped,
                 wall_time=time.perf_counter() - started)


def _terminate(pool):
    """End a ProcessPoolExecutor's workers at once (ProcessPoolExecutor.terminate_workers
    arrives in Python 3.14)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def settings_of(record):
    """The :class:`RunSettings` of a record."""
    return RunSettings.from_dict(record["config"])


def summarise(records):
    """One dict per (row, method, variant) cell, in the order first met: the remedies in use
    (``variant``, "" for none), the seeds, the final and best
    test accuracy of each run and their mean, sample std (ddof = 1), min and max (in %), the
    paper's number, our mean minus it, whether that is more than :data:`FLAG_POINTS`, and how
    many runs end predicting one class for (almost) every test review and how many diverged
    (non-finite loss; such a network predicts class 0 for every review)."""
    cells = {}
    for record in records:
        s = settings_of(record)
        cells.setdefault((s.row, s.loss, s.variant), []).append(record)
    summary = []
    for (row_key, method, variant), runs in cells.items():
        final = [100 * r["summary"]["test_accuracy_final"] for r in runs]
        best = [100 * r["summary"]["test_accuracy_best"] for r in runs]
        final_mean, final_std = mean_std(final)
        best_mean, best_std = mean_std(best)
        paper = paper_value(row_key, method) if not variant else None  # remedies: not the paper's
        summary.append({
            "row": row_key, "method": method, "variant": variant, "column": method + variant,
            "n": len(runs),
            "seeds": [r["config"]["seed"] for r in runs],
            "loss_params": runs[0]["config"]["loss_params"],
            "final": final, "final_mean": final_mean, "final_std": final_std,
            "final_min": min(final), "final_max": max(final),
            "best": best, "best_mean": best_mean, "best_std": best_std,
            "paper": paper, "diff": None if paper is None else final_mean - paper,
            "flagged": paper is not None and abs(final_mean - paper) > FLAG_POINTS,
            "one_class": sum(r["summary"]["one_class_final"] for r in runs),
            "diverged": sum(bool(r["summary"].get("diverged_by")) for r in runs),
            # the collapse watch's warnings of each run that has any
            "warnings": [{"seed": r["config"]["seed"], "warnings": r["history"]["warnings"]}
                         for r in runs if r.get("history", {}).get("warnings")],
        })
    return summary


def layout(summary):
    """``(rows, columns, {(row, column): cell})`` in the table's order: the columns of
    :data:`~.protocol.ALL_COLUMNS` first (the paper's, DM+perclass, the zoo), then others (a
    method with remedies) as first met."""
    by_cell = {(c["row"], c["column"]): c for c in summary}
    rows = [r for r in ROW_KEYS if any(k[0] == r for k in by_cell)]
    found = list(dict.fromkeys(k[1] for k in by_cell))
    columns = [c for c in ALL_COLUMNS if c in found] + [c for c in found if c not in ALL_COLUMNS]
    return rows, columns, by_cell


def _title(column):
    """A column's title: the method and the remedies its runs used (``DM+perclass``)."""
    method, plus, variant = column.partition("+")
    return METHOD_TITLES[method] + plus + variant


def collapse_notes(summary):
    """One line per run that the collapse watch flagged (its first observation; the record
    keeps the full text), for the losses that renormalise the batch."""
    lines = []
    for c in summary:
        for run in c["warnings"]:
            first = run["warnings"][0].split("; likely emphasis collapse")[0]
            more = f" (+{len(run['warnings']) - 1} more)" if len(run["warnings"]) > 1 else ""
            lines.append(f"{row(c['row']).title} {_title(c['column'])} seed {run['seed']}: "
                         f"{first}{more}")
    return lines


def format_table(summary, key="final"):
    """The table for a terminal: per row, our ``mean±std`` over the seeds and, beneath, the
    paper's number. ``*`` flags a cell more than 2 points from the paper, ``!k`` says that k
    runs end predicting one class for every test review. ``key``: "final" or "best"."""
    rows, columns, by_cell = layout(summary)
    ours = {}
    for (r, m), cell in by_cell.items():
        mark = ("*" if cell["flagged"] and key == "final" else "") + \
            (f"!{cell['one_class']}" if cell["one_class"] else "")
        ours[r, m] = f"{cell[key + '_mean']:.1f}±{cell[key + '_std']:.1f}{mark}"
    titles = {m: _title(m) for m in columns}
    width = {m: 2 + max([len(titles[m])] + [len(t) for (_, k), t in ours.items() if k == m])
             for m in columns}
    lines = [f"{'':<9} {'':<5}" + "".join(f"{titles[m]:>{width[m]}}" for m in columns)]
    for r in rows:
        lines.append(f"{row(r).title:<9} {'ours':<5}" + "".join(
            f"{ours.get((r, m), '-'):>{width[m]}}" for m in columns))
        lines.append(f"{'':<9} {'paper':<5}" + "".join(
            f"{_paper_text(by_cell.get((r, m))):>{width[m]}}" for m in columns))
    n = sorted({c["n"] for c in summary})
    lines.append(f"{key} test accuracy (%), mean±std over {'/'.join(map(str, n))} seed(s); "
                 f"* = more than {FLAG_POINTS:g} points from the paper; "
                 f"!k = k runs end predicting one class for every test review (50%)")
    diverged = [f"{row(c['row']).title} {_title(c['column'])} ({c['diverged']}/{c['n']})"
                for c in summary if c["diverged"]]
    if diverged:
        lines.append("diverged (non-finite loss, then one class): " + ", ".join(diverged))
    notes = collapse_notes(summary)
    if notes:
        lines.append("emphasis-collapse watch (one line per run; the records keep the details):")
        lines.extend("  " + n for n in notes)
    return "\n".join(lines)


def _paper_text(cell):
    return "-" if cell is None or cell["paper"] is None else f"{cell['paper']}"


def markdown_table(summary, key="final"):
    """The table in Markdown: ``ours mean ± std (paper)``; a cell more than 2 points from the
    paper in bold, and the number of runs that end predicting one class as ``[k/n one-class]``
    (``, j diverged`` when j of them had a non-finite loss)."""
    rows, columns, by_cell = layout(summary)
    lines = ["| | " + " | ".join(_title(m) for m in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for r in rows:
        cells = []
        for m in columns:
            cell = by_cell.get((r, m))
            if cell is None:
                cells.append("")
                continue
            text = f"{cell[key + '_mean']:.1f} ± {cell[key + '_std']:.1f}"
            if cell["flagged"] and key == "final":
                text = f"**{text}**"
            text += f" ({cell['paper']:.1f})" if cell["paper"] is not None else " (-)"
            if cell["one_class"]:
                text += f" [{cell['one_class']}/{cell['n']} one-class"
                text += f", {cell['diverged']} diverged]" if cell["diverged"] else "]"
            cells.append(text)
        lines.append(f"| {row(r).title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
