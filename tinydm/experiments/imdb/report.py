"""The files of the IMDB experiment: the table (table.csv, table.md), the curves (curves.csv),
the rescue table (rescue.csv, rescue.md) and their figures (tinydm.plot)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ...train import ONE_CLASS
from ..runner import evals_of
from .collapse import markdown_rescue_table, rescue_table
from .protocol import FLAG_POINTS, row
from .table import layout, collapse_notes, markdown_table, settings_of

RESCUE_COLUMNS = ("row", "method", "variant", "loss_params", "sampler", "n", "seeds", "final",
                  "ends_one_class", "final_mean", "final_std", "final_healthy_mean", "one_class",
                  "one_class_evals", "paired", "collapsed", "rescued", "new", "cost", "cost_n",
                  "cost_min", "cost_max", "wall_time")


def write_rescue_report(records, report_dir, figure_dir=None, command=None, method="dm"):
    """Write ``rescue.md`` and ``rescue.csv`` (:func:`rescue_table` of ``records``) into
    ``report_dir`` and the figures ``collapse_imdb_seeds.png`` (the plain runs at r = 0.4),
    ``collapse_imdb_remedies.png`` (every variant at r = 0.4), ``collapse_rescue.png`` (final
    accuracy per seed, row and variant) and ``collapse_feedback.png`` (the analytic model of
    docs/emphasis-collapse.md) into ``figure_dir`` (default ``report_dir``). Returns the
    paths written."""
    from ... import plot

    report_dir = Path(report_dir)
    figure_dir = Path(figure_dir) if figure_dir is not None else report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    table = rescue_table(records, method)
    paths = {"rescue_md": report_dir / "rescue.md", "rescue_csv": report_dir / "rescue.csv"}
    with open(paths["rescue_csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RESCUE_COLUMNS)
        for c in table:
            writer.writerow([_csv_value(c[k]) for k in RESCUE_COLUMNS])
    with open(paths["rescue_md"], "w") as f:
        f.write(f"# IMDB: remedies for emphasis collapse ({method.upper()}), against the plain "
                f"run of the same seeds\n\n")
        if command:
            f.write(f"Command: `{command}`\n\n")
        f.write(markdown_rescue_table(table) + "\n\n")
        f.write(f"*End one-class*: the final evaluation predicts one class for at least "
                f"{ONE_CLASS:.0%} of the test reviews (50% accuracy). *Rescued*: of the seeds "
                f"whose plain run ends one-class, how many do not with the remedy. *Cost*: mean "
                f"(remedy - plain) final accuracy over the seeds where neither ends one-class "
                f"[min, max]. *One-class evals*: mean share of the evaluations that are "
                f"one-class. Training time summed over the runs of each line is in "
                f"rescue.csv (wall_time, s).\n")
    figures = {"collapse_rescue": plot.collapse_rescue(table),
               "collapse_feedback": plot.collapse_feedback()}
    r04 = [r for r in records if r["config"]["row"] == "r0.4"
           and r["config"]["loss"] == method]
    plain = [r for r in r04 if settings_of(r).variant == ""]
    if plain:
        figures["collapse_imdb_seeds"] = plot.collapse_seeds(plain)
    if r04:
        figures["collapse_imdb_remedies"] = plot.collapse_remedies(
            {v: [r for r in r04 if settings_of(r).variant == v]
             for v in dict.fromkeys(c["variant"] for c in table if c["row"] == "r0.4")})
    for name, fig in figures.items():
        paths[name] = plot.save(fig, figure_dir, name, formats=("png",), dpi=100)[0]
    return paths


TABLE_COLUMNS = ("row", "method", "loss_params", "n", "seeds", "final_mean", "final_std",
                 "final_min", "final_max", "best_mean", "best_std", "paper", "diff", "flagged",
                 "one_class", "diverged", "final", "best", "variant")
CURVE_COLUMNS = ("row", "method", "seed", "iteration", "test_accuracy", "test_predicted_neg",
                 "test_predicted_pos", "test_accuracy_neg", "test_accuracy_pos",
                 "train_accuracy", "train_accuracy_intact", "train_accuracy_corrupted")


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return " ".join(_csv_value(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v:g}" for k, v in value.items())
    return "" if value is None else str(value)


def write_table_csv(summary, path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        for cell in summary:
            writer.writerow([_csv_value(cell[c]) for c in TABLE_COLUMNS])


def write_curves_csv(records, path):
    """Every evaluation of every run, one line each (long format, for plotting elsewhere)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CURVE_COLUMNS)
        for record in records:
            s = record["config"]
            for e in evals_of(record):
                writer.writerow([_csv_value(v) for v in (
                    s["row"], s["loss"], s["seed"], e["iteration"], e["test_accuracy"],
                    *e["test_class_histogram"], *e["test_class_accuracy"], e["train_accuracy"],
                    e["train_accuracy_intact"], e["train_accuracy_corrupted"])])


def write_report(table, report_dir, figure_dir=None, command=None, notes=None):
    """Write ``table.csv``, ``table.md`` (final and best), ``curves.csv`` and the figures
    ``imdb_curves.png`` and ``imdb_vs_paper.png`` (into ``figure_dir``, default
    ``report_dir``). ``command`` and ``notes`` (text) go into ``table.md``. Returns the paths
    written."""
    from ... import plot

    report_dir = Path(report_dir)
    figure_dir = Path(figure_dir) if figure_dir is not None else report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table_csv": report_dir / "table.csv", "table_md": report_dir / "table.md",
             "curves_csv": report_dir / "curves.csv",
             "curves_png": figure_dir / "imdb_curves.png",
             "vs_paper_png": figure_dir / "imdb_vs_paper.png"}
    write_table_csv(table.summary, paths["table_csv"])
    write_curves_csv(table.records, paths["curves_csv"])
    machines = sorted({f"{r['machine']['processor']} ({r['machine']['cpus']} CPUs), "
                       f"device {r['config']['device']}" for r in table.records})
    train_time = sum(r["timing"]["wall_seconds"] for r in table.records)
    with open(paths["table_md"], "w") as f:
        f.write("# IMDB, Table 5: measured (mean ± std over seeds) and the paper's "
                "(in brackets)\n\n")
        if command:
            f.write(f"Command: `{command}`\n\n")
        f.write(f"Machine: {'; '.join(machines)}. Runs: {len(table.records)} "
                f"({table.trained} trained, {table.skipped} reused), wall time "
                f"{table.wall_time:.0f} s; "
                f"training and evaluation time summed over runs {train_time:.0f} s; per step "
                f"{per_step_ms(table.records):.3f} ms (median over runs).\n\n")
        if notes:
            f.write(notes.strip() + "\n\n")
        f.write("## Final test accuracy (%) after the last iteration\n\n")
        f.write(markdown_table(table.summary, "final") + "\n\n")
        f.write(f"Bold: more than {FLAG_POINTS:g} points from the paper. [k/n one-class]: k of "
                f"the n runs end predicting one class for at least {ONE_CLASS:.0%} of the test "
                f"reviews (50% accuracy on the balanced test set). (-): a column beyond the "
                f"paper.\n\n")
        notes = collapse_notes(table.summary)
        if notes:
            f.write("Emphasis-collapse watch, for the losses that renormalise the batch (DM, "
                    "DN), one line per run (the run's record keeps the full warnings):\n\n")
            f.write("".join(f"* {n}\n" for n in notes) + "\n")
        f.write("## Best test accuracy (%) over the evaluations\n\n")
        f.write(markdown_table(table.summary, "best") + "\n")
    row_keys, columns, _ = layout(table.summary)
    rows = [(r, row(r).title) for r in row_keys]
    runs = {}
    for record in table.records:
        s = settings_of(record)
        runs.setdefault((s.row, s.loss + s.variant), []).append(record)
    plot.save(plot.imdb_curves(runs, rows, columns), figure_dir, "imdb_curves",
              formats=("png",), dpi=100)
    plot.save(plot.imdb_vs_paper(table.summary, rows, columns), figure_dir, "imdb_vs_paper",
              formats=("png",), dpi=100)
    return paths


def per_step_ms(records):
    """Median training time per iteration over runs (ms, evaluations excluded)."""
    return float(np.median([r["timing"]["step_ms"] for r in records])) if records else float("nan")
