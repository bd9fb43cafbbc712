"""Run a grid of experiment settings (lam, beta, noise rate, seed, loss, ...) and tabulate it.

    python examples/sweep.py GRID.toml                       # a process per core, this machine
    python examples/sweep.py GRID.toml --workers 1 --out runs/sweep-imdb
    python examples/sweep.py GRID.toml --ray auto            # the Ray cluster this machine is in
    python examples/sweep.py GRID.toml --ray auto --device cuda   # one GPU per cell
    python examples/sweep.py GRID.toml --report-only         # tables and heat maps of what is done
    python examples/sweep.py GRID.toml --status              # which cells are done, running, left

A grid file names the experiment (imdb or cifar), the settings every cell shares and the axes:

    experiment = "imdb"
    [fixed]
    loss = "dm"
    noise_rate = 0.4
    [axes]
    lam = [0, 0.5, 1]
    beta = [-0.5, 0, 2, 4, 8]
    seed = [123, 124, 125]

Every cell is one run of the experiment; its record is written to OUT/cells/ as it finishes,
and a cell whose record exists with the same settings is skipped, so a killed sweep, run
again, runs only what is missing. A failed cell is tried once more, then reported (exit code
1). At the end, per value of the other axes (loss, r, ...), a table of the test accuracy over
(lam, beta), final and best, mean over the seeds, goes into REPORT/sweep.md and sweep.csv, and
its heat map into REPORT/heatmap_*.png. Grid format and cluster use: docs/sweeps.md.
"""

import argparse
import os
import shlex
import sys

from tinydm import backend
from tinydm.experiments import sweep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("grid", help="the grid file (TOML)")
    parser.add_argument("--out", help="folder of the cell records (default: runs/sweep-<grid "
                                      "file name>)")
    parser.add_argument("--report-dir", help="folder of sweep.md, sweep.csv and the heat maps "
                                             "(default: --out)")
    parser.add_argument("--workers", type=int,
                        help=f"processes of the local pool (default: one per core, here "
                             f"{os.cpu_count()}; 1 on cuda)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per cell (default: 1, the fastest for the small "
                             "networks of the experiments when every core runs a cell)")
    parser.add_argument("--ray", metavar="auto|local|ADDRESS",
                        help="run the cells as Ray tasks: auto (the cluster this machine "
                             "belongs to), local (a Ray instance started for the sweep), or "
                             "the head's HOST:PORT or ray://HOST:PORT; needs tinydm[ray]")
    parser.add_argument("--device", choices=backend.DEVICES,
                        help="the device of every cell (overrides the grid); with --ray and "
                             "cuda each cell asks for one GPU")
    parser.add_argument("--data-dir", help="folder holding the data sets (aclImdb/, "
                                           "cifar-10-batches-py/; default: $TINYDM_DATA or "
                                           "~/.cache/tinydm)")
    parser.add_argument("--cache-dir", help="folder of the cached IMDB features (default: as "
                                            "--data-dir's default)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    parser.add_argument("--force", action="store_true", help="run cells that are already saved")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the report of the saved cells")
    parser.add_argument("--status", action="store_true",
                        help="run nothing: list the cells that are running, stopped (resumed by "
                             "the next run) or to run, and the time left on --workers lanes "
                             "(default: the cells running now, at least 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    try:
        grid = sweep.load_grid(args.grid)
    except ValueError as e:
        parser.error(str(e))
    name = os.path.splitext(os.path.basename(args.grid))[0]
    out = args.out or os.path.join("runs", f"sweep-{name}")
    if args.status:
        statuses = sweep.cell_status(grid, out, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                     download=not args.no_download)
        lanes = args.workers or max(1, sum(s.state == "running" for s in statuses))
        print("\n".join(sweep.status_lines(statuses, lanes)))
        return
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    result = sweep.run(grid, out, data_dir=args.data_dir, cache_dir=args.cache_dir,
                       download=not args.no_download, workers=args.workers,
                       threads=args.threads, ray=args.ray, device=args.device,
                       train=not args.report_only, force=args.force,
                       log=lambda line: print(line, flush=True),
                       progress=not args.no_progress)
    paths = sweep.write_report(result, args.report_dir or out, command=command)
    for group in sweep.summarise(result):
        print(f"\n{sweep.group_title(group)}: final / best test accuracy (%), mean ± std over "
              f"seeds\n{sweep.markdown_table(group)}")
    print(f"\n{len(result.jobs)} cells: {result.trained} run, {result.skipped} found done, "
          f"{len(result.failed)} failed; {result.wall_time:.0f} s")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    if result.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
