"""Compare finished (or running) CIFAR runs: a Markdown table in Table 9's columns and the runs
overlaid in the figures of the paper's Figures 2 and 5 and of docs/emphasis-collapse.md.

    python examples/cifar_report.py CCE=runs/cifar/a-cce "DM 1,16=runs/cifar/a-dm" \\
        --out docs/results/cifar-a

Writes table.md, accuracy.png, p_i.png, ess.png and collapse.png into --out and prints the table.
With --seeds, runs are records or folders, grouped into methods by their loss and parameters,
each method's seeds summarised (mean ± std and seed by seed) and compared with --baseline seed by
seed (protocol M of docs/results.md):

    python examples/cifar_report.py --seeds runs/cifar/m-*/ --baseline CCE --out report \\
        --choose "DM lam=0.5 beta=8" "DM lam=1 beta=8" "DM lam=1 beta=16"

which writes seeds.md (the methods, the paired differences, the validation choice among the
--choose methods, the runs with their wall times and commands) and seeds.png.

With --by-noise, runs of several noises (symmetric rates, CIFAR-10N's human labels) are grouped
by noise, then by method and seed; at each noise DM's (lam, beta) is chosen by validation
accuracy with --choose-seed (Table 9's question; docs/results.md):

    python examples/cifar_report.py --by-noise docs/results/cifar/m/runs/*.json \
        docs/results/cifar/noise-rates/cells/*.json --out docs/results/cifar/noise

which writes noise.md (per noise: CCE, GCE and the chosen DM, the chosen lam; the seeds tables;
under human noise which swaps each method memorises) and noise.png (final accuracy against the
share of wrong labels). With --grid, the sweep grids' chosen cells name DM's candidates at each
noise, and a choice waits until all of them have finished, as the sweep's does:

    python examples/cifar_report.py --by-noise docs/results/cifar/noise-rates/cells/*.json \
        --grid examples/grids/cifar10_noise_rates.toml --out docs/results/cifar/noise
"""

import argparse
from pathlib import Path

from tinydm.experiments import cifar
from tinydm.experiments.sweep import cells
from tinydm.experiments.sweep.grid import load_grid


def labelled_run(text):
    label, sep, folder = text.rpartition("=")  # the last "=": labels may hold "λ=1"
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"expected LABEL=FOLDER, got {text!r}")
    path = Path(folder)
    if not (path / cifar.RESULTS).exists():
        raise argparse.ArgumentTypeError(f"{path / cifar.RESULTS} does not exist")
    return label, path


def record_path(text):
    path = Path(text)
    if not (path / cifar.RESULTS if path.is_dir() else path).exists():
        raise argparse.ArgumentTypeError(f"{text}: no run record there")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("runs", nargs="*", type=labelled_run, metavar="LABEL=FOLDER",
                        help="a run's label in the table and figures, and its output folder")
    parser.add_argument("--seeds", nargs="+", type=record_path, metavar="RUN",
                        help="runs (results.json files or their folders) to group by method")
    parser.add_argument("--by-noise", nargs="+", type=record_path, metavar="RUN",
                        help="runs of several noises to group by noise, method and seed")
    parser.add_argument("--baseline", help="with --seeds: the method the others are compared "
                                           "with seed by seed, e.g. CCE")
    parser.add_argument("--choose", nargs="+", default=(), metavar="METHOD",
                        help="with --seeds: choose among these methods (labels as in the "
                             "table) by best validation accuracy with --choose-seed, once "
                             "their runs are finished")
    parser.add_argument("--grid", nargs="+", default=(), metavar="GRID",
                        help="with --by-noise: sweep grid files whose chosen_from cells name the "
                             "DM candidates at each noise")
    parser.add_argument("--choose-seed", type=int, default=123,
                        help="the seed of the runs the choice is made on (default: %(default)s)")
    parser.add_argument("--out", required=True, help="folder for the tables and the figures")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.runs, args.seeds, args.by_noise))) != 1:
        parser.error("give one of LABEL=FOLDER runs, --seeds RUN ... or --by-noise RUN ...")
    if args.grid and not args.by_noise:
        parser.error("--grid goes with --by-noise")
    if args.by_noise:
        try:
            candidates = cifar.noise_table.candidates_by_noise(
                s for grid in args.grid for s in cells.candidate_settings(load_grid(grid)))
            paths = cifar.noise_table.write_report(
                [cifar.load_results(p) for p in args.by_noise], args.out, args.choose_seed,
                candidates)
        except ValueError as e:
            parser.error(str(e))
        print(paths[0].read_text(), end="")
        print("wrote " + ", ".join(str(p) for p in paths))
        return paths
    if args.seeds:
        try:
            groups = cifar.seeds.group_runs([cifar.load_results(p) for p in args.seeds])
            if args.baseline is not None and args.baseline not in groups:
                raise ValueError(f"--baseline {args.baseline!r} is none of the methods "
                                 f"{list(groups)}")
            paths = cifar.seeds.write_report(groups, args.out, args.baseline, args.choose,
                                             args.choose_seed)
        except ValueError as e:
            parser.error(str(e))
        print(paths[0].read_text(), end="")
        print("wrote " + ", ".join(str(p) for p in paths))
        return groups
    runs = {label: cifar.load_results(path) for label, path in args.runs}
    paths = cifar.write_report(runs, args.out)
    print(cifar.markdown_table(runs))
    print("wrote " + ", ".join(str(p) for p in paths))
    return runs


if __name__ == "__main__":
    main()
