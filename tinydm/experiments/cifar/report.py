"""The files of CIFAR runs: a run's figures, and several runs side by side in Table 9's columns
with their figures overlaid (tinydm.plot)."""

from __future__ import annotations

from pathlib import Path

from ...train import predicted_classes
from ..runner import read_record
from .settings import EXPERIMENT, RESULTS

FIGURES = ("accuracy", "p_i", "ess", "test_predictions")


def _save_figures(runs, out_dir, last):
    """The runs (``{label: results}``) overlaid in ``accuracy``, ``p_i`` and ``ess``, plus the
    figures of ``last`` (``{name: figure}``), saved as PNG in ``out_dir``; returns the paths."""
    from ... import plot

    made = {"accuracy": plot.cifar_accuracy(runs), "p_i": plot.cifar_p_i(runs),
            "ess": plot.cifar_ess(runs), **last}
    paths = []
    for name, fig in made.items():
        paths += plot.save(fig, out_dir, name, formats=("png",))
    return paths


def write_figures(results, out_dir, classes=None):
    """The PNG figures of one run (:data:`FIGURES`) in ``out_dir``; returns their paths.
    Overlay several runs with :func:`write_report` or the :mod:`tinydm.plot` functions
    (``plot.cifar_accuracy({"CCE": r1, "DM": r2})``)."""
    from ... import plot

    return _save_figures({results["config"]["loss"].upper(): results}, out_dir,
                         {"test_predictions": plot.cifar_test_predictions(results, classes)})


def markdown_table(runs):
    """Several runs (``{label: results}``) in Table 9's columns, in Markdown: best test accuracy
    (its iteration) and final; training accuracy against the given labels ("corrupted" in the
    paper: memorisation raises it) and the clean ones ("intact"); the mean ``p_i`` of the clean
    and of the noisy training examples (Figure 2a); the final evaluation's predicted classes
    (:func:`predicted_classes`); the ESS fraction over the last evaluation interval; the
    iterations done and the wall time. Accuracies and shares in %."""
    lines = ["| run | test best (it.) | test final | train, given labels | train, clean labels "
             "| mean p_i clean / noisy | classes predicted (largest share) | ESS | iterations "
             "| wall time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in runs.items():
        s, t = r["summary"], r["timing"]
        if not s:
            lines.append(f"| {label} | no evaluation yet |" + " |" * 8)
            continue
        k, top = predicted_classes(s["test_class_histogram_final"])
        ess = s.get("ess_fraction_final")
        lines.append(
            f"| {label} | {100 * s['test_accuracy_best']:.1f} ({s['test_accuracy_best_iteration']})"
            f" | {100 * s['test_accuracy_final']:.1f}"
            f" | {100 * s['train_accuracy_noisy_labels_final']:.1f}"
            f" | {100 * s['train_accuracy_clean_labels_final']:.1f}"
            f" | {s['mean_p_clean_final']:.3f} / {s['mean_p_noisy_final']:.3f}"
            f" | {k} ({100 * top:.0f}%) | {'-' if ess is None else f'{ess:.2f}'}"
            f" | {t['iterations_done']}{'' if r['status'] == 'done' else ' (running)'}"
            f" | {t['wall_seconds'] / 60:.0f} min |")
    return "\n".join(lines)


def write_report(runs, out_dir, classes=None):
    """``table.md`` (:func:`markdown_table`) and the runs overlaid in ``accuracy.png``,
    ``p_i.png``, ``ess.png`` and ``collapse.png`` (predictions by class, ESS and the largest
    class share of the emphasis: :func:`tinydm.plot.collapse_cifar`) in ``out_dir``; returns
    the paths written."""
    from ... import plot

    if classes is None:  # runs record their class names
        classes = next((r["data"]["classes"] for r in runs.values() if "classes" in r["data"]),
                       None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "table.md"
    table.write_text(markdown_table(runs) + "\n")
    return [table] + _save_figures(runs, out, {"collapse": plot.collapse_cifar(runs, classes)})


def load_results(path):
    """A run's record, ``results.json`` (a file or its folder)."""
    path = Path(path)
    return read_record(path / RESULTS if path.is_dir() else path, EXPERIMENT)
