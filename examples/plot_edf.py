"""Figures of emphasis density functions (the paper's Eq. 6-12) for lectures and the docs.

    python examples/plot_edf.py                      # the standard set, PNG, SVG and PDF, in figures/edf/
    python examples/plot_edf.py --style slides --out figures/slides   # 16:9, large fonts
    python examples/plot_edf.py --out docs/figures --formats png
    python examples/plot_edf.py --lam 1 --beta 16 --figures edf_fig1b edf_batch_weights

Figures (see tinydm/plot/edf.py): edf_fig1b (the paper's Figure 1b), edf_dm_vs_lam, edf_dm_vs_beta,
edf_variants (Eq. 9-11), edf_zoo (the paper's losses and the loss zoo), edf_batch_weights (the
gradient each example of a real batch receives).
"""

import argparse
import pathlib

from tinydm import edf, plot


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Plot emphasis density functions (EDFs) of CCE, MAE, MSE, GCE and DM.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("figures/edf"),
                        help="folder to write the figures into (created if needed)")
    parser.add_argument("--formats", nargs="+", default=list(plot.FORMATS), choices=plot.FORMATS,
                        help="file formats to write")
    parser.add_argument("--style", default="paper", choices=list(plot.STYLES),
                        help="paper: each figure its own size; slides: 16:9 with large fonts")
    parser.add_argument("--figures", nargs="+", default=list(plot.STANDARD_FIGURES),
                        choices=plot.STANDARD_FIGURES, metavar="NAME",
                        help="which figures to write, from: " + ", ".join(plot.STANDARD_FIGURES))
    parser.add_argument("--lam", type=float, default=0.5,
                        help="DM's lambda (emphasis mode lam/(lam+1)) in fig1b, dm_vs_beta and the batch")
    parser.add_argument("--beta", type=float, default=8.0,
                        help="DM's beta (emphasis spread) in fig1b, dm_vs_lam and the batch")
    parser.add_argument("--q", type=float, default=edf.GCE_Q, help="GCE's q")
    parser.add_argument("--lams", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0],
                        help="the lambdas of edf_dm_vs_lam")
    parser.add_argument("--betas", type=float, nargs="+", default=[-2.0, 0.0, 2.0, 4.0, 8.0, 16.0],
                        help="the betas of edf_dm_vs_beta")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="examples in the batch of edf_batch_weights")
    parser.add_argument("--noise", type=float, default=0.4,
                        help="label noise rate of the toy model behind edf_batch_weights")
    parser.add_argument("--seed", type=int, default=0, help="seed of the toy model and its data")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of PNG files")
    args = parser.parse_args(argv)

    paths = plot.standard_set(args.out, formats=args.formats, lam=args.lam, beta=args.beta,
                              q=args.q, lams=args.lams, betas=args.betas,
                              batch_size=args.batch_size, noise=args.noise, seed=args.seed,
                              dpi=args.dpi, names=args.figures, style=args.style)
    print(f"wrote {len(paths)} files into {args.out.resolve()}:")
    for path in paths:
        print(f"  {path}")


if __name__ == "__main__":
    main()
