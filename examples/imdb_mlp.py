"""Reproduce Table 5 of the paper: IMDB sentiment under label noise and class imbalance.

    python examples/imdb_mlp.py                  # the whole table (and DM+perclass), 3 seeds
    python examples/imdb_mlp.py --rows r0.4 --methods cce dm --seeds 123
    python examples/imdb_mlp.py --rows pn50 --methods dm --lam 0.3 --beta 4 --out runs/imdb-beta4
    python examples/imdb_mlp.py --device cuda --jobs 1 --out runs/imdb-cuda
    # emphasis collapse (docs/emphasis-collapse.md): DM at r = 0.4 over ten seeds, plain and
    # with a remedy (a beta warm-up here), then the rescue table of every run in --out
    python examples/imdb_mlp.py --rows r0.4 --methods dm --seeds 123-132 --out runs/imdb-collapse
    python examples/imdb_mlp.py --rows r0.4 --methods dm --seeds 123-132 --out runs/imdb-collapse \\
        --warmup 1000
    python examples/imdb_mlp.py --out runs/imdb-collapse --rescue-report

The first run reads the Large Movie Review Dataset (downloaded into ~/.cache/tinydm unless it is
in --data-dir) and trains PV-DBOW features once (gensim, a few minutes; cached); then a 100-8-2
MLP is trained for every row x method x seed (a few seconds each). Every run is saved as one
JSON under --out and skipped when run again with the same settings, so an interrupted table
resumes. At the end the table is printed beside the paper's, and written with the curves and two
figures into --report-dir. Protocol: tinydm/experiments/imdb/ and docs/results.md.
"""

import argparse
import os
import shlex
import sys
import time

# The 100-8-2 network is far too small for multithreaded BLAS: on 2 cores OpenBLAS's threads
# make the evaluation matmuls 3-10x slower. One thread per process, and --jobs processes.
# (Set before NumPy is imported; a value in the environment wins.)
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from tinydm import backend, files  # noqa: E402
from tinydm.data import DataError  # noqa: E402
from tinydm.experiments import imdb, runner  # noqa: E402

D = imdb.RunSettings.defaults()  # the protocol's defaults


def seed_list(text):
    """A seed (``123``) or an inclusive range of seeds (``123-132``)."""
    first, sep, last = text.partition("-")
    try:
        seeds = list(range(int(first), int(last) + 1)) if sep else [int(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a seed or a range of seeds: {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"empty range of seeds: {text!r}")
    return seeds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="rows: " + ", ".join(
                                         f"{r.key} ({r.title}; DM lam={r.lam:g}, beta={r.beta:g})"
                                         for r in imdb.ROWS))
    parser.add_argument("--rows", nargs="+", choices=imdb.ROW_KEYS, default=list(imdb.ROW_KEYS),
                        metavar="ROW", help="rows of Table 5 (default: all five, see below)")
    parser.add_argument("--methods", nargs="+", choices=imdb.ALL_COLUMNS, default=list(imdb.COLUMNS),
                        metavar="METHOD",
                        help=f"columns: the paper's methods and DM with per-class "
                             f"renormalisation (default: all: {' '.join(imdb.COLUMNS)}), or "
                             f"the loss zoo with its default parameters "
                             f"({' '.join(imdb.ZOO)})")
    parser.add_argument("--seeds", nargs="+", type=seed_list, default=[list(imdb.SEEDS)],
                        help="seeds or ranges of seeds (123-132); each seeds the noise draw, the "
                             "batch order and the init (default: 123 124 125; 123 is the "
                             "paper's)")
    parser.add_argument("--lam", type=runner.finite_float,
                        help="DM's lambda for every row (default: the paper's, per row)")
    parser.add_argument("--beta", type=runner.finite_float,
                        help="DM's beta for every row (default: the paper's, per row)")
    remedies = parser.add_argument_group(
        "remedies for emphasis collapse (docs/emphasis-collapse.md; all off by default)")
    remedies.add_argument("--warmup", type=int, default=imdb.REMEDIES["warmup"], metavar="K",
                          help="DM: raise beta linearly from 0 over the first K iterations")
    remedies.add_argument("--ess-floor", type=runner.finite_float,
                          default=imdb.REMEDIES["ess_floor"],
                          metavar="F",
                          help="DM: temper the weights (w -> w^t) until the batch's ESS is at "
                               "least F of the batch")
    remedies.add_argument("--per-class", action="store_true",
                          help="DM: renormalise the weights within each given label, so each "
                               "label keeps its batch frequency as its share of the emphasis")
    remedies.add_argument("--sampler", choices=imdb.SAMPLERS, default=D["sampler"],
                          help="shuffle: reshuffled epochs; balanced: every batch half positive, "
                               "half negative by the given (noisy) label, drawn per iteration "
                               "(oversamples the minority in the P:N rows) (default: %(default)s)")
    remedies.add_argument("--rescue-report", action="store_true",
                          help="train nothing: read every run in --out and write the rescue "
                               "table (rescue.md, rescue.csv) into --report-dir and the "
                               "collapse figures into --figure-dir")
    parser.add_argument("--iterations", type=int, default=D["iterations"],
                        help="training iterations (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=D["batch_size"],
                        help="batch size (default: %(default)s)")
    parser.add_argument("--weight-decay", type=runner.finite_float, default=D["weight_decay"],
                        help="weight decay on every parameter (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=D["eval_every"],
                        help="evaluate on the test set every N iterations (default: %(default)s)")
    parser.add_argument("--log-every", type=int, default=D["log_every"],
                        help="log loss, ESS and the class shares of the emphasis every N "
                             "iterations (default: %(default)s)")
    parser.add_argument("--device", choices=backend.DEVICES, default=D["device"],
                        help="cpu (NumPy), cuda (CuPy) or standin (CPU stand-in for CuPy)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="runs trained at a time on CPU, one process each "
                             "(default: min(2, cores); 1 on cuda)")
    parser.add_argument("--out", default="runs/imdb", help="folder of the per-run JSON files")
    parser.add_argument("--report-dir", help="folder of table.csv/.md, curves.csv and the "
                                             "figures (default: --out)")
    parser.add_argument("--figure-dir", help="folder of the figures (default: --report-dir)")
    parser.add_argument("--data-dir", help="folder holding aclImdb/ (default: $TINYDM_DATA or "
                                           "~/.cache/tinydm)")
    parser.add_argument("--cache-dir",
                        help="folder of the cached features (default: as --data-dir's default)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    parser.add_argument("--force", action="store_true", help="retrain runs that are already saved")
    parser.add_argument("--overwrite", action="store_true",
                        help="use an --out that holds runs of other settings (iterations, batch "
                             "size, ...), replacing them")
    parser.add_argument("--progress", action="store_true",
                        help="a progress bar per run (with --jobs 1)")
    args = parser.parse_args(runner.join_negative_numbers(sys.argv[1:] if argv is None
                                                           else argv))
    args.seeds = list(dict.fromkeys(s for group in args.seeds for s in group))
    return runner.run_command(lambda: run(args, argv), f"the finished runs are saved in "
                              f"{args.out}; the same command continues from there", (DataError,))


def run(args, argv):
    """The command: every check and output folder first, then the features, the runs and the
    report. Exits with status 3 when a run diverged (its record and the table say so)."""
    jobs = 1 if args.device == "cuda" else max(1, args.jobs)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    report_dir = args.report_dir or args.out
    if args.rescue_report:
        records = imdb.load_records(args.out)
        if not records:
            raise SystemExit(f"error: no run records in {args.out}")
        paths = imdb.write_rescue_report(records, report_dir, args.figure_dir,
                                         command=command)
        print(imdb.markdown_rescue_table(imdb.rescue_table(records)))
        print("written: " + ", ".join(str(p) for p in paths.values()))
        return

    protocol = dict(iterations=args.iterations, batch_size=args.batch_size,
                    weight_decay=args.weight_decay, eval_every=args.eval_every,
                    log_every=args.log_every, device=args.device, warmup=args.warmup,
                    ess_floor=args.ess_floor, per_class=args.per_class, sampler=args.sampler)
    # every setting checked and every output folder claimed before the features load
    settings = imdb.table_settings(args.rows, args.methods, args.seeds, args.lam, args.beta,
                                   **protocol)
    with runner.output_folder(args.out, imdb.folder_settings(settings[0], args.lam, args.beta),
                              args.overwrite, what="table"):
        run_and_report(args, settings, protocol, report_dir, jobs, command)


def run_and_report(args, settings, protocol, report_dir, jobs, command):
    """The table's runs (features first) and its report, in the claimed output folder."""
    for folder in (report_dir, args.figure_dir):
        if folder:
            files.probe_writable(folder)

    started = time.perf_counter()
    print("IMDB features (PV-DBOW; trained once, then read from the cache) ...", flush=True)
    features = imdb.load_features(args.data_dir, args.cache_dir, download=not args.no_download)
    feature_time = time.perf_counter() - started
    print(f"features ready in {feature_time:.0f} s: {features.x_train.shape[0]} training and "
          f"{features.x_test.shape[0]} test reviews, {features.dim}-d (fingerprint "
          f"{features.fingerprint})", flush=True)

    print(f"{len(settings)} runs ({len(args.rows)} rows x {len(args.methods)} columns x "
          f"{len(args.seeds)} seeds) on {args.device}, {jobs} at a time; results in {args.out}",
          flush=True)
    table = imdb.run_table(features, rows=args.rows, methods=args.methods, seeds=args.seeds,
                           out_dir=args.out, lam=args.lam, beta=args.beta, jobs=jobs,
                           force=args.force, overwrite=args.overwrite, progress=args.progress,
                           log=lambda line: print(line, flush=True), **protocol)
    notes = (f"Features: {feature_time:.0f} s (PV-DBOW, fingerprint {features.fingerprint}); "
             f"{jobs} run(s) at a time; whole command {time.perf_counter() - started:.0f} s.")
    paths = imdb.write_report(table, report_dir, args.figure_dir, command=command, notes=notes)

    print()
    print(imdb.format_table(table.summary, "final"))
    print()
    print(imdb.format_table(table.summary, "best"))
    print()
    print(f"{table.trained} runs trained, {table.skipped} reused; features {feature_time:.0f} s, "
          f"runs {table.wall_time:.0f} s, total {time.perf_counter() - started:.0f} s; "
          f"{imdb.per_step_ms(table.records):.3f} ms per training step (median)")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    diverged = [r["config"] for r in table.records if r["status"] == "diverged"]
    if diverged:
        print(f"{len(diverged)} run(s) diverged (non-finite loss; status "
              f"\"diverged\" in their records, marked in the table): "
              + ", ".join(f"{c['row']}/{c['loss']} seed {c['seed']}" for c in diverged[:5])
              + (" ..." if len(diverged) > 5 else ""), file=sys.stderr)
        raise SystemExit(3)


if __name__ == "__main__":
    main()
