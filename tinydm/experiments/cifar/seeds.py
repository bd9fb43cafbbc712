"""Several seeds of several methods (protocol M of docs/results.md): the methods' best and final
test accuracy as mean +- std over the seeds and seed by seed, what the network does with the
corrupted and the intact training examples, and the per-seed paired difference of each method's
final accuracy from a baseline's; a choice among methods by validation accuracy (never the
test set); each run's wall time and command line.

::

    groups = seeds.group_runs([cifar.load_results(p) for p in folders])  # {method: {seed: run}}
    print(seeds.markdown_table(groups))
    print(seeds.paired_table(groups, baseline="CCE"))

A method is a run's loss with its parameters (:func:`method_label`); runs that differ only by
``seed`` (and ``data_seed``, ``out_dir``, ``data_dir``, ``device``) are the seeds of one method,
and runs that differ in anything else may not share a method label (:func:`group_runs` refuses).
"""

from __future__ import annotations

from pathlib import Path

from ..runner import mean_std

#: Config keys that may differ between the seeds of one method.
PER_SEED = ("seed", "data_seed", "out_dir", "data_dir", "download", "device", "iterations")


def method_label(run):
    """``"CCE"``, ``"GCE q=0.7"``, ``"DM lam=0.5 beta=8"``, ``"DM lam=1 beta=16 per_class"``."""
    c = run["config"]
    params = [k if v is True else f"{k}={v:g}" for k, v in c["loss_params"].items() if v is not False]
    return " ".join([c["loss"].upper()] + params)


def group_runs(runs):
    """``{method: {seed: run}}`` in the order first seen; ValueError if two runs of one method
    differ in a setting other than :data:`PER_SEED`, or repeat a seed."""
    groups, protocols = {}, {}
    for run in runs:
        label, seed = method_label(run), run["config"]["seed"]
        protocol = {k: v for k, v in run["config"].items() if k not in PER_SEED}
        if protocols.setdefault(label, protocol) != protocol:
            differ = sorted(k for k in protocol if protocol[k] != protocols[label].get(k))
            raise ValueError(f"cifar seeds: runs of {label} differ in {', '.join(differ)}")
        if seed in groups.setdefault(label, {}):
            raise ValueError(f"cifar seeds: two runs of {label} with seed {seed}")
        groups[label][seed] = run
    return groups


def intact_accuracy(run, which="final"):
    """Training accuracy on the intact (not corrupted) examples, from the recorded accuracy
    against the given labels over all examples and the share of the corrupted ones predicted as
    their given label: ``n acc_given = n_intact acc_intact + n_corrupted memorised``."""
    s, d = run["summary"], run["data"]
    n = d["eval_train_size"]
    n_noisy = round(d["noise_rate_realised"] * d["train_size"]) if n == d["train_size"] else None
    if n_noisy is None:  # a random evaluation subset: the record's note says how many
        raise ValueError("intact_accuracy needs the training-set metrics on all examples")
    if n_noisy == 0:  # clean labels: every example is intact
        return s[f"train_accuracy_noisy_labels_{which}"]
    correct = n * s[f"train_accuracy_noisy_labels_{which}"] - n_noisy * s[f"noisy_memorised_{which}"]
    return correct / (n - n_noisy)


def seed_values(group):
    """The numbers of :func:`markdown_table` per seed of one method: ``{name: {seed: value}}``
    (accuracies and shares as fractions)."""
    out = {}
    for seed, run in sorted(group.items()):
        s = run["summary"]
        values = {"best": s["test_accuracy_best"], "final": s["test_accuracy_final"],
                  "final - best": s["test_accuracy_final"] - s["test_accuracy_best"],
                  "corrupted as given label": s["noisy_memorised_final"],
                  "intact accuracy": intact_accuracy(run),
                  "p_i clean": s["mean_p_clean_final"], "p_i corrupted": s["mean_p_noisy_final"],
                  "iterations": run["timing"]["iterations_done"]}
        for name, v in values.items():
            out.setdefault(name, {})[seed] = v
    return out


def _pct(v):
    return f"{100 * v:.1f}"


def _cell(per_seed, fmt=_pct):
    if None in per_seed.values():  # no corrupted examples to measure (clean labels)
        return "-"
    m, sd = mean_std(list(per_seed.values()))
    seeds = ", ".join(fmt(v) for v in per_seed.values())
    if len(per_seed) == 1:
        return seeds
    return f"{fmt(m)} ± {fmt(sd)} ({seeds})"


def _row(label, seed, *runs):
    """The table row (its label, and the seed when it holds one seed only) that the ``runs`` of
    ``seed`` belong in: ``(label, None)`` once all are done, else ``("label (running)", seed)``: a
    mean over a finished run and one halfway, or over two runs stopped at different iterations,
    would be no run's number."""
    if all(r["status"] == "done" for r in runs):
        return label, None
    return f"{label} (running)", seed


def markdown_table(groups):
    """One row per method: test accuracy best, final and final - best; the corrupted training
    examples predicted as their given (wrong) label (memorisation); the intact examples'
    accuracy; mean ``p_i`` of the given label on the clean and on the corrupted examples. Each
    cell is ``mean ± std (seed, seed, ...)`` over the seeds, in % (``p_i`` as fractions).
    Unfinished runs get a row of their own (:func:`_row`), at the iterations they have reached."""
    columns = ("best", "final", "final - best", "corrupted as given label", "intact accuracy")
    lines = ["| method | seeds | test best | test final | final - best | corrupted predicted as "
             "given label | intact accuracy | mean p_i clean / corrupted | iterations |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    rows = {}
    for label, group in groups.items():
        for seed, run in group.items():
            rows.setdefault(_row(label, seed, run), {})[seed] = run
    for (label, _), group in rows.items():
        v = seed_values(group)
        p = _cell(v["p_i clean"], lambda x: f"{x:.3f}") + " / " + \
            _cell(v["p_i corrupted"], lambda x: f"{x:.3f}")
        its = sorted(set(v["iterations"].values()))
        lines.append(f"| {label} | {', '.join(map(str, sorted(group)))} | "
                     + " | ".join(_cell(v[c]) for c in columns)
                     + f" | {p} | {', '.join(map(str, its))} |")
    return "\n".join(lines)


def _accuracy_until(run, iteration):
    """Test accuracy at ``iteration`` and the best up to it."""
    evals = [e for e in run["history"]["evals"] if e["iteration"] <= iteration]
    return evals[-1]["test_accuracy"], max(e["test_accuracy"] for e in evals)


def paired_differences(groups, baseline):
    """``{method: {seed: (iteration, final - baseline's final, best - baseline's best)}}`` over
    the seeds both have. A run still going is compared at the last iteration both runs have
    evaluated (``iteration``), so a run is never set against a longer one."""
    base = groups[baseline]
    out = {}
    for label, group in groups.items():
        if label == baseline:
            continue
        out[label] = {}
        for seed in sorted(set(group) & set(base)):
            a, b = group[seed], base[seed]
            common = {e["iteration"] for e in a["history"]["evals"]} & \
                {e["iteration"] for e in b["history"]["evals"]}
            if common:
                it = max(common)
                (fa, ba), (fb, bb) = _accuracy_until(a, it), _accuracy_until(b, it)
                out[label][seed] = (it, fa - fb, ba - bb)
    return out


def paired_table(groups, baseline):
    """Markdown: each method's test accuracy minus the baseline's, seed by seed (same seed: same
    noisy labels, same initial weights and batch order), final and best, and their mean ± std,
    in percentage points; at the last iteration both runs evaluated (:func:`paired_differences`).
    Pairs with a run still going get a row of their own (:func:`_row`)."""
    lines = [f"| method | seeds | at iteration | final - {baseline} final | "
             f"best - {baseline} best |", "|---|---|---|---:|---:|"]
    rows = {}
    for label, per_seed in paired_differences(groups, baseline).items():
        rows.setdefault((label, None), {})  # the finished pairs' row first
        for seed, d in per_seed.items():
            rows.setdefault(_row(label, seed, groups[label][seed], groups[baseline][seed]),
                            {})[seed] = d
    for (label, _), d in rows.items():
        if d:
            its = sorted({v[0] for v in d.values()})
            lines.append(f"| {label} | {', '.join(map(str, d))} | {', '.join(map(str, its))} | "
                         f"{_cell({k: v[1] for k, v in d.items()})} | "
                         f"{_cell({k: v[2] for k, v in d.items()})} |")
    return "\n".join(lines)


def runs_table(groups):
    """Markdown: one row per run (method, seed): its status, the iterations done of those
    planned, wall time (training and evaluations), milliseconds per training iteration and
    minutes of evaluation; then each run's command line (:meth:`Config.command`)."""
    from .settings import Config

    lines = ["| method | seed | status | iterations | wall time | per iteration | evaluations |",
             "|---|---|---|---|---:|---:|---:|"]
    commands = []
    for label, group in groups.items():
        for seed, run in sorted(group.items()):
            t = run["timing"]
            lines.append(f"| {label} | {seed} | {run['status']} | {t['iterations_done']} of "
                         f"{run['config']['iterations']} | {t['wall_seconds'] / 3600:.2f} h | "
                         f"{t['step_ms']:.0f} ms | {t['eval_seconds'] / 60:.1f} min |")
            commands.append(Config.from_dict(run["config"]).command())
    return "\n".join(lines + ["", "```", *commands, "```"])


def best_validation(run, what="cifar"):
    """``(best validation accuracy over the run's evaluations, its iteration, the last one)``,
    the first of equal bests; ValueError naming ``what`` if the run has no validation split."""
    evals = [e for e in run["history"]["evals"] if e.get("val_accuracy") is not None]
    if not evals:
        raise ValueError(f"{what} has no validation split (val_per_class or val_fraction)")
    best = max(evals, key=lambda e: e["val_accuracy"])  # the first of equal ones
    return best["val_accuracy"], best["iteration"], evals[-1]["val_accuracy"]


def validation_choice(groups, candidates, seed):
    """Choose among the ``candidates`` (method labels) the one whose run with ``seed`` has the
    highest best validation accuracy (over its evaluations), on finished runs only: the test
    set plays no part. Returns ``(chosen label or None, {label: (best validation accuracy, its
    iteration, last validation accuracy, status)})``; None while a candidate's run is missing
    (not started, or a label that names no method) or unfinished."""
    scores = {}
    for label in candidates:
        run = groups.get(label, {}).get(seed)
        if run is None:
            continue
        scores[label] = (*best_validation(run, f"cifar seeds: the run of {label} with seed "
                                               f"{seed}"), run["status"])
    ready = bool(candidates) and len(scores) == len(candidates) and \
        all(s[3] == "done" for s in scores.values())
    chosen = max(scores, key=lambda k: scores[k][0]) if ready else None
    return chosen, scores


def validation_table(groups, candidates, seed):
    """Markdown: the candidates' validation accuracy with ``seed`` (best, where, last) and the
    choice of :func:`validation_choice`, or why there is none yet."""
    chosen, scores = validation_choice(groups, candidates, seed)
    lines = [f"| candidate (seed {seed}) | validation best | at iteration | validation last | "
             f"status |", "|---|---:|---:|---:|---|"]
    for label in candidates:
        if label in scores:
            best, it, last, status = scores[label]
            mark = " (chosen)" if label == chosen else ""
            lines.append(f"| {label}{mark} | {_pct(best)} | {it} | {_pct(last)} | {status} |")
        else:
            lines.append(f"| {label} | | | | not run |")
    if chosen is None:
        waiting = [c for c in candidates if c not in scores or scores[c][3] != "done"]
        lines += ["", f"Not chosen yet: {', '.join(waiting)} not finished with seed {seed}."]
    else:
        lines += ["", f"Chosen by validation accuracy: {chosen}."]
    return "\n".join(lines)


def write_report(groups, out_dir, baseline=None, candidates=(), choice_seed=123):
    """``seeds.md`` and ``seeds.png`` in ``out_dir``; returns the paths. ``seeds.md``:
    :func:`markdown_table`, :func:`paired_table` against ``baseline`` if given,
    :func:`validation_table` of the ``candidates`` (method labels) with ``choice_seed`` if
    any, and :func:`runs_table`; ``seeds.png``: :func:`tinydm.plot.cifar_seed_curves`."""
    from ... import plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [markdown_table(groups)]
    if baseline is not None:
        parts.append(paired_table(groups, baseline))
    if candidates:
        parts.append(validation_table(groups, candidates, choice_seed))
    parts.append(runs_table(groups))
    table = out / "seeds.md"
    table.write_text("\n\n".join(parts) + "\n")
    return [table] + plot.save(plot.cifar_seed_curves(groups), out, "seeds", formats=("png",))
