"""Compare finished (or running) CIFAR runs: a Markdown table in Table 9's columns and the runs
overlaid in the figures of the paper's Figures 2 and 5 and of docs/emphasis-collapse.md.

    python examples/cifar_report.py CCE=runs/cifar/a-cce "DM 1,16=runs/cifar/a-dm" \\
        --out docs/results/cifar-a

Writes table.md, accuracy.png, p_i.png, ess.png and collapse.png into --out and prints the table.
"""

import argparse
from pathlib import Path

from tinydm.experiments import cifar


def labelled_run(text):
    label, sep, folder = text.rpartition("=")  # the last "=": labels may hold "λ=1"
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"expected LABEL=FOLDER, got {text!r}")
    path = Path(folder)
    if not (path / cifar.RESULTS).exists():
        raise argparse.ArgumentTypeError(f"{path / cifar.RESULTS} does not exist")
    return label, path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("runs", nargs="+", type=labelled_run, metavar="LABEL=FOLDER",
                        help="a run's label in the table and figures, and its output folder")
    parser.add_argument("--out", required=True, help="folder for table.md and the figures")
    args = parser.parse_args(argv)
    runs = {label: cifar.load_results(path) for label, path in args.runs}
    paths = cifar.write_report(runs, args.out)
    print(cifar.markdown_table(runs))
    print("wrote " + ", ".join(str(p) for p in paths))
    return runs


if __name__ == "__main__":
    main()
