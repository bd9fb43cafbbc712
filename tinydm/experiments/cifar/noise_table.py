"""Protocol M across label noise (docs/results.md): the paper's Table 9 question, whether the best
emphasis mode rises with the noise rate, and real human noise (CIFAR-10N).

Runs are grouped by their noise (:func:`noise_label`: ``"r=0.2"``, ``"cifar10n:worst"``), then by
method and seed (:func:`tinydm.experiments.cifar.seeds.group_runs`). At each noise DM's
(lam, beta) is chosen among the DM runs of the choice seed by validation accuracy
(:func:`tinydm.experiments.cifar.seeds.validation_choice`; under human noise the validation split
carries human labels too); the test set plays no part. The candidates are the DM runs present, or,
given sweep grids (:func:`candidates_by_noise`), every candidate their chosen cells name, so that a
choice waits for all of them as the sweep does. ::

    by_noise = noise_table.group_by_noise(runs)
    print(noise_table.summary_table(by_noise))
    print(noise_table.confusion_table(by_noise["cifar10n:worst"]))
"""

from __future__ import annotations

from pathlib import Path

from ..runner import mean_std
from . import seeds
from .settings import HUMAN_NOISES

#: The methods every noise is compared on, besides the chosen DM.
BASELINES = ("CCE", "GCE q=0.7")


def noise_label(run):
    """``"r=0.4"`` (symmetric noise, ``"r=0"`` clean) or the human label set,
    ``"cifar10n:worst"``."""
    c = run["config"]
    if c["noise"] in HUMAN_NOISES:
        return c["noise"]
    if c["noise"] not in ("symmetric", "none"):
        raise ValueError(f"cifar noise table: noise {c['noise']!r} is neither symmetric nor human")
    return f"r={0 if c['noise'] == 'none' else c['noise_rate']:g}"


def _order(label):
    # symmetric rates in increasing order, then the human label sets
    return (0, float(label[2:]), "") if label.startswith("r=") else (1, 0.0, label)


def group_by_noise(runs):
    """``{noise: {method: {seed: run}}}``, the symmetric rates in increasing order first."""
    by = {}
    for run in runs:
        by.setdefault(noise_label(run), []).append(run)
    return {k: seeds.group_runs(by[k]) for k in sorted(by, key=_order)}


def candidates_by_noise(configs):
    """``{noise: [DM method labels]}`` of run configs, in their order: the candidates of a sweep
    grid's chosen cells (:func:`tinydm.experiments.sweep.cells.candidate_settings`)."""
    found = {}
    for config in configs:
        run = {"config": config}
        labels, label = found.setdefault(noise_label(run), []), seeds.method_label(run)
        if label not in labels:
            labels.append(label)
    return found


def dm_candidates(groups, seed=123, expected=None):
    """The DM methods the validation choice is made among: ``expected`` (a grid's candidates at
    this noise) if given, else those that have a run with ``seed``."""
    if expected:
        return list(expected)
    return [label for label, g in groups.items() if label.startswith("DM ") and seed in g]


def chosen_dm(groups, seed=123, expected=None):
    """``(chosen DM method or None, its validation scores)`` at one noise; None until every
    candidate (:func:`dm_candidates`) has finished its run with ``seed``."""
    return seeds.validation_choice(groups, dm_candidates(groups, seed, expected), seed)


def lam_of(label):
    """The emphasis mode ``lam`` of a DM method label (``"DM lam=0.5 beta=8"`` -> 0.5)."""
    return float(next(w for w in label.split() if w.startswith("lam="))[4:])


def _final(group):
    """Mean and std of the final test accuracy of a method's finished runs, and their seeds."""
    done = {s: r["summary"]["test_accuracy_final"] for s, r in sorted(group.items())
            if r["status"] == "done"}
    return (*mean_std(list(done.values())), sorted(done)) if done else (None, None, [])


def _final_cell(group):
    m, sd, done = _final(group)
    running = sorted(s for s, r in group.items() if r["status"] != "done")
    text = "" if m is None else (f"{100 * m:.1f}" if len(done) == 1 else
                                 f"{100 * m:.1f} ± {100 * sd:.1f} ({len(done)} seeds)")
    if running:
        text += f"{'; ' if text else ''}seed {', '.join(map(str, running))} running"
    return text


def wrong_labels(groups):
    """The realised share of wrong training labels at one noise, the mean over its runs (records
    keep it to four digits, which the summary shows whole)."""
    return mean_std([r["data"]["noise_rate_realised"] for g in groups.values()
                     for r in g.values()])[0]


def summary_table(by_noise, seed=123, candidates=None):
    """Markdown: per noise, the realised share of wrong labels (:func:`wrong_labels`), the final
    test accuracy (mean ± std over finished seeds) of CCE, GCE and the DM that validation chose
    with ``seed`` (among ``candidates[noise]`` where given, :func:`dm_candidates`), and the
    chosen emphasis mode lam."""
    candidates = candidates or {}
    lines = ["| noise | wrong labels | CCE final | GCE final | DM chosen by validation | "
             "its lam | DM final |", "|---|---:|---:|---:|---|---:|---:|"]
    for noise, groups in by_noise.items():
        chosen, _ = chosen_dm(groups, seed, candidates.get(noise))
        cells = [_final_cell(groups[m]) if m in groups else "not run" for m in BASELINES]
        pick = (chosen, f"{lam_of(chosen):g}", _final_cell(groups[chosen])) if chosen else \
            ("not chosen yet" if dm_candidates(groups, seed) else "no DM run", "", "")
        lines.append(f"| {noise} | {100 * wrong_labels(groups):.2f}% | "
                     + " | ".join(cells) + f" | {' | '.join(pick)} |")
    return "\n".join(lines)


def lam_table(by_noise, seed=123, candidates=None):
    """Markdown in Table 9's form: per noise (rows) and lam (columns), the final test accuracy
    with ``seed`` of the beta that validation picks among that lam's candidates
    (:func:`dm_candidates`), the lam whose pick ends highest on the test set (the paper's reading
    of Table 9) and the lam of :func:`chosen_dm`."""
    candidates = candidates or {}
    rows = {n: dm_candidates(g, seed, candidates.get(n)) for n, g in by_noise.items()}
    lams = sorted({lam_of(label) for labels in rows.values() for label in labels})
    lines = [f"| noise (seed {seed}) | " + " | ".join(f"lam={lam:g}" for lam in lams)
             + " | lam with the best final | lam validation picks |",
             "|---|" + "---:|" * len(lams) + "---:|---:|"]
    for noise, labels in rows.items():
        if not labels:
            continue
        groups, cells, finals = by_noise[noise], [], {}
        for lam in lams:
            among = [m for m in labels if lam_of(m) == lam]
            pick, _ = seeds.validation_choice(groups, among, seed)
            if pick is None:
                cells.append("to choose" if among else "")
                continue
            finals[lam] = groups[pick][seed]["summary"]["test_accuracy_final"]
            rest = " ".join(w.replace("=", " ") for w in pick.split()[1:] if w[:4] != "lam=")
            cells.append(f"{100 * finals[lam]:.1f} ({rest})")
        ready = len(finals) == len({lam_of(m) for m in labels})
        best = f"{max(finals, key=lambda k: finals[k]):g}" if ready else ""
        chosen = chosen_dm(groups, seed, candidates.get(noise))[0]
        lines.append(f"| {noise} | " + " | ".join(cells)
                     + f" | {best} | {'' if chosen is None else f'{lam_of(chosen):g}'} |")
    return "\n".join(lines)


def lam_trend(by_noise, seed=123, candidates=None):
    """``[(rate, chosen lam)]`` over the symmetric rates with a choice (:func:`chosen_dm`), and
    whether the chosen lam never falls as the rate rises (the paper's finding, Table 9), or None
    with fewer than two choices."""
    candidates = candidates or {}
    trend = [(float(n[2:]), lam_of(c)) for n, g in by_noise.items() if n.startswith("r=")
             for c in [chosen_dm(g, seed, candidates.get(n))[0]] if c is not None]
    rising = None if len(trend) < 2 else all(a[1] <= b[1] for a, b in zip(trend, trend[1:]))
    return trend, rising


def confusion_table(groups, classes=None, top=8):
    """Markdown: the ``top`` swaps of one noise (clean class -> given label, from the records'
    ``data.noise_pairs``), their share of the wrong labels, and per method the share of those
    examples its final network predicts as the wrong label (memorised, pooled over its finished
    seeds, from ``noisy_memorised_pairs_final``)."""
    run = next(r for g in groups.values() for r in g.values())
    classes = classes or run["data"].get("classes")
    pairs = sorted(run["data"]["noise_pairs"], key=lambda p: -p[2])
    total = sum(p[2] for p in pairs)
    methods = [m for m in groups if any(r["status"] == "done" for r in groups[m].values())]
    memorised = {}
    for m in methods:
        counts = memorised[m] = {}
        for r in groups[m].values():
            for i, j, n, k in r["summary"].get("noisy_memorised_pairs_final", []):
                c = counts.setdefault((i, j), [0, 0])
                c[0], c[1] = c[0] + n, c[1] + k
    lines = ["| clean -> given | wrong labels | share of the noise | "
             + " | ".join(f"{m}: memorised" for m in methods) + " |",
             "|---|---:|---:|" + "---:|" * len(methods)]
    for i, j, n in pairs[:top]:
        cells = [f"{100 * memorised[m][i, j][1] / memorised[m][i, j][0]:.0f}%"
                 if memorised[m].get((i, j), [0])[0] else "" for m in methods]
        lines.append(f"| {classes[i]} -> {classes[j]} | {n} | {100 * n / total:.1f}% | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_points(by_noise, seed=123, candidates=None):
    """``{method: [(realised wrong-label share, [final accuracies of its finished seeds], noise)]}``
    for CCE, GCE and the chosen DM ("DM (validation)", :func:`chosen_dm`): what
    :func:`tinydm.plot.cifar_noise_rates` draws."""
    candidates = candidates or {}
    points = {}
    for noise, groups in by_noise.items():
        rate = wrong_labels(groups)
        chosen = chosen_dm(groups, seed, candidates.get(noise))[0]
        for name, label in (*((m, m) for m in BASELINES), ("DM (validation)", chosen)):
            finals = [r["summary"]["test_accuracy_final"] for r in groups.get(label, {}).values()
                      if r["status"] == "done"]
            if finals:
                points.setdefault(name, []).append((rate, finals, noise))
    return points


def write_report(runs, out_dir, seed=123, candidates=None):
    """``noise.md`` (the summary, the lam trend, the lam table, then per noise the seeds table,
    the validation choice and, under human noise, the confusion) and ``noise.png`` in
    ``out_dir``; the paths.
    ``candidates``: ``{noise: [DM methods]}`` to choose among (:func:`candidates_by_noise`)."""
    from ... import plot

    candidates = candidates or {}
    by_noise = group_by_noise(runs)
    trend, rising = lam_trend(by_noise, seed, candidates)
    parts = [summary_table(by_noise, seed, candidates),
             "Chosen lam by symmetric noise rate: "
             + (", ".join(f"r = {r:g}: {lam:g}" for r, lam in trend) or "none chosen yet")
             + {None: ".", True: "; it never falls as r rises.",
                False: "; it does not rise monotonically with r."}[rising]]
    parts.append(lam_table(by_noise, seed, candidates))
    for noise, groups in by_noise.items():
        parts += [f"## {noise}", seeds.markdown_table(groups)]
        among = dm_candidates(groups, seed, candidates.get(noise))
        if among:
            parts.append(seeds.validation_table(groups, among, seed))
        if noise in HUMAN_NOISES:
            parts.append(confusion_table(groups))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "noise.md"
    table.write_text("\n\n".join(parts) + "\n")
    return [table] + plot.save(plot.cifar_noise_rates(curve_points(by_noise, seed, candidates)),
                               out, "noise", formats=("png",))
