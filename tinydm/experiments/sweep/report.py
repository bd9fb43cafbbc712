"""A sweep's report, the paper's Figures 6-9: per group of cells (loss, r, ...), test accuracy over
(lam, beta), final and best, mean ± std over the seeds, as a Markdown table, a CSV and a heat
map."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from ..runner import mean_std
from .cells import accuracy, text
from .grid import SEED, TABLE_AXES, TITLE_SETTINGS


def first_line_of_error(error):
    """The last non-empty line of a traceback (the exception and its message)."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


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
            for key in ("final", "best"):  # a cell without records: no numbers
                cell[f"{key}_mean"], cell[f"{key}_std"] = (mean_std(cell[key]) if cell[key]
                                                           else (None, None))
        for i, axis in enumerate(("lams", "betas")):
            group[axis] = sorted({at[i] for at in group["cells"]},
                                 key=lambda v: _sort_key(-math.inf if v is None else v))
    return list(groups.values())


def group_title(group):
    return ", ".join(f"{k} = {text(v)}" for k, v in group["group"].items()) or "all cells"


def group_slug(group):
    return "_".join(f"{k}={text(v)}" for k, v in group["group"].items()) or "all"


def _cell_text(cell):
    if cell is None:
        return ""
    if not cell["final"]:
        return f"({cell['missing']} missing)"
    line = (f"{cell['final_mean']:.1f} ± {cell['final_std']:.1f} / "
            f"{cell['best_mean']:.1f} ± {cell['best_std']:.1f}")
    return line + (f" ({cell['missing']} missing)" if cell["missing"] else "")


def markdown_table(group):
    """A group's table: rows lam, columns beta, ``final / best`` mean ± std (%)."""
    head = ["-" if b is None else text(b) for b in group["betas"]]
    lines = ["| lam \\ beta | " + " | ".join(head) + " |",
             "|---:|" + "---:|" * len(head)]
    for lam in group["lams"]:
        cells = [_cell_text(group["cells"].get((lam, beta))) for beta in group["betas"]]
        lines.append(f"| {'-' if lam is None else text(lam)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_COLUMNS = ("lam", "beta", "n", "seeds", "final_mean", "final_std", "best_mean", "best_std",
               "final", "best", "missing")


def _csv_row(lam, beta, cell):
    """A table cell's line of sweep.csv (accuracies in %, 4 decimals; lists space-separated)."""
    def number(v):
        return "" if v is None else f"{v:.4f}"

    return ["" if lam is None else text(lam), "" if beta is None else text(beta),
            str(len(cell["final"])), " ".join(map(text, cell["seeds"])),
            *(number(cell[k]) for k in ("final_mean", "final_std", "best_mean", "best_std")),
            " ".join(map(number, cell["final"])), " ".join(map(number, cell["best"])),
            str(cell["missing"])]


def write_report(sweep, report_dir, figure_dir=None, command=None, notes=None):
    """Write ``sweep.md`` (per group: the table and its heat map; the failed cells),
    ``sweep.csv`` (one line per group and (lam, beta)) into ``report_dir`` and one
    ``heatmap_<group>.png`` per group into ``figure_dir`` (default ``report_dir``). Returns the
    paths written."""
    from ... import plot

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
                        writer.writerow([text(g["group"][k]) if k in g["group"] else ""
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
        lines += [f"- `{name}`: {first_line_of_error(error)}"
                  for name, error in sweep.failed.items()]
        lines.append("")
    paths["md"].write_text("\n".join(lines))
    return paths
