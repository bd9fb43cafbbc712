"""Emphasis collapse in the IMDB runs (docs/emphasis-collapse.md): how each run went through it,
and each remedy against the plain run of the same row and seeds (the rescue table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...train import one_class
from ..runner import evals_of, read_record
from .protocol import ROW_KEYS, row
from .training import EXPERIMENT
from .settings import REMEDIES
from .table import mean_std, settings_of


def load_records(out_dir):
    """Every complete run record under ``out_dir`` (any row, method and variant), in the order
    of their paths."""
    records = []
    for path in sorted(Path(out_dir).rglob("*.json")):
        try:
            records.append(read_record(path, EXPERIMENT))
        except (OSError, ValueError):
            continue
    return records


def collapse_course(record):
    """How a run went through emphasis collapse: ``one_class_evals``, the share of its
    evaluations that predict one class for (almost) every test review; ``last_one_class``, the
    iteration of the last of them (None: never); ``final_one_class``."""
    flags = [one_class(e["test_class_histogram"]) for e in evals_of(record)]
    last = [e["iteration"] for e, f in zip(evals_of(record), flags) if f]
    return {"one_class_evals": sum(flags) / len(flags) if flags else 0.0,
            "last_one_class": last[-1] if last else None,
            "final_one_class": record["summary"]["one_class_final"]}


def rescue_table(records, method="dm"):
    """Each remedy against the plain run of the same row and seeds: one dict per (row,
    variant) of ``method``, rows in table order, the plain variant (``""``) first, then the
    others in the order first met. Each has the seeds, the final test accuracies (%) and
    whether each run ends one-class (``ends_one_class``), their mean and sample std,
    ``final_healthy_mean`` (the mean without the one-class runs), ``one_class`` (how many
    end one-class), ``one_class_evals`` (mean share of one-class evaluations), the training
    time summed over the runs (``wall_time``, s) and, against the plain runs of the same
    seeds:

    * ``collapsed``: how many of these seeds end one-class without the remedy, ``rescued``:
      how many of those do not with it, ``new``: how many end one-class only with it;
    * ``cost``: the mean of (this run's final - the plain run's final), in points, over the
      seeds where neither ends one-class (``cost_n`` of them; ``cost_min``, ``cost_max``):
      what the remedy costs, or gains, where there was nothing to rescue.

    Seeds without a plain run are left out of the comparisons (``paired`` says how many
    remain)."""
    groups, protocols = {}, {}
    for record in records:
        s = settings_of(record)
        if s.loss != method:
            continue
        groups.setdefault((s.row, s.variant), {})[s.seed] = record
        # what must agree within a row for the comparison to mean anything (evaluation and
        # logging frequencies, the device and the remedies may differ)
        protocol = {k: v for k, v in s.as_dict().items()
                    if k not in ("seed", "loss_params", "sampler", "eval_every", "log_every",
                                 "device")}
        protocol.update({k: v for k, v in s.loss_params.items() if k not in REMEDIES})
        if protocols.setdefault(s.row, protocol) != protocol:
            differ = sorted(k for k in protocol if protocols[s.row].get(k) != protocol[k])
            raise ValueError(f"imdb: the runs of row {s.row} differ in {', '.join(differ)}; "
                             f"rescue_table compares runs that differ only by the remedies")
    plain_of = {r: groups.get((r, ""), {}) for r in ROW_KEYS}
    table = []
    for r in ROW_KEYS:
        variants = [v for (row_key, v) in groups if row_key == r]
        for variant in sorted(variants, key=lambda v: (v != "", variants.index(v))):
            runs = groups[r, variant]
            seeds = sorted(runs)
            final = [100 * runs[s]["summary"]["test_accuracy_final"] for s in seeds]
            mean, std = mean_std(final)
            ends = {s: runs[s]["summary"]["one_class_final"] for s in seeds}
            paired = [s for s in seeds if s in plain_of[r]]
            was = {s: plain_of[r][s]["summary"]["one_class_final"] for s in paired}
            healthy = [s for s in paired if not was[s] and not ends[s]]
            acc = "test_accuracy_final"
            cost = [100 * (runs[s]["summary"][acc] - plain_of[r][s]["summary"][acc])
                    for s in healthy]
            courses = [collapse_course(runs[s]) for s in seeds]
            table.append({
                "row": r, "title": row(r).title, "method": method, "variant": variant,
                "n": len(seeds), "seeds": seeds,
                "loss_params": runs[seeds[0]]["config"]["loss_params"],
                "sampler": runs[seeds[0]]["config"]["sampler"],
                "final": final, "ends_one_class": [ends[s] for s in seeds],
                "final_mean": mean, "final_std": std,
                "final_healthy_mean": (float(np.mean([f for f, s in zip(final, seeds)
                                                      if not ends[s]]))
                                       if not all(ends.values()) else None),
                "one_class": sum(ends.values()),
                "one_class_evals": float(np.mean([c["one_class_evals"] for c in courses])),
                "paired": len(paired), "collapsed": sum(was.values()),
                "rescued": sum(was[s] and not ends[s] for s in paired),
                "new": sum(ends[s] and not was[s] for s in paired),
                "cost": float(np.mean(cost)) if cost else None, "cost_n": len(cost),
                "cost_min": min(cost) if cost else None, "cost_max": max(cost) if cost else None,
                "wall_time": float(sum(runs[s]["timing"]["wall_seconds"] for s in seeds)),
            })
    return table


def markdown_rescue_table(table):
    """The rescue table in Markdown, one line per row and remedy."""
    lines = ["| row | DM | seeds | end one-class | rescued | newly one-class | final acc. (%) "
             "| mean of the others | cost vs plain, same seeds (points) | one-class evals |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in table:
        healthy = "-" if c["final_healthy_mean"] is None else f"{c['final_healthy_mean']:.1f}"
        if c["variant"] == "":
            rescued = new = cost = "(plain)"
        else:
            rescued = f"{c['rescued']}/{c['collapsed']}"
            new = f"{c['new']}"
            cost = ("-" if c["cost"] is None else
                    f"{c['cost']:+.2f} [{c['cost_min']:+.1f}, {c['cost_max']:+.1f}] "
                    f"(n={c['cost_n']})")
        lines.append(f"| {row(c['row']).title} | {c['variant'] or 'plain'} | {c['n']} | "
                     f"{c['one_class']}/{c['n']} | {rescued} | {new} | "
                     f"{c['final_mean']:.1f} ± {c['final_std']:.1f} | {healthy} | {cost} | "
                     f"{100 * c['one_class_evals']:.0f}% |")
    return "\n".join(lines)
