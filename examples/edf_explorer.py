"""Write the EDF explorer: one self-contained HTML page with sliders for DM's lambda and beta and
GCE's q, and a choice of one loss of the zoo (focal, Poly-1, Taylor CE, reverse CE, partially
Huberised CE) with a slider for its parameter, showing the emphasis density functions of CCE,
MAE, MSE, GCE, DM (Eq. 6-12) and the zoo loss, their emphasis modes psi and the weights of a
sample batch. It works offline: open it in any browser (edf.html#zoo=focal opens with focal
loss chosen).

    python examples/edf_explorer.py --out edf.html
    python examples/edf_explorer.py --out edf.html --lam-max 2 --lam-step 0.05 --batch-size 256

Every curve is computed by tinydm (tinydm/plot/explorer.py) on the slider grid and stored in the page.
"""

import argparse

import numpy as np

from tinydm.train import toy_batch
from tinydm.plot import explorer


def grid(lo, hi, step, name):
    if not step > 0 or not hi >= lo:
        raise SystemExit(f"edf_explorer: --{name}-min/--{name}-max/--{name}-step must give "
                         f"min <= max and step > 0, got {lo}, {hi}, {step}")
    return np.round(np.arange(lo, hi + step * 1e-6, step), 10)  # hi included, up to rounding


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write the EDF explorer, a self-contained offline HTML page with sliders.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="edf.html", help="the HTML file to write")
    parser.add_argument("--lam-max", type=float, default=3.0, help="largest lambda on the slider")
    parser.add_argument("--lam-step", type=float, default=0.1, help="lambda slider step")
    parser.add_argument("--beta-min", type=float, default=-10.0, help="smallest beta on the slider")
    parser.add_argument("--beta-max", type=float, default=30.0, help="largest beta on the slider")
    parser.add_argument("--beta-step", type=float, default=1.0, help="beta slider step")
    parser.add_argument("--q-step", type=float, default=0.05,
                        help="GCE's q slider step (q runs from one step to 1)")
    parser.add_argument("--points", type=int, default=101, help="points on p in [0, 1] per curve")
    parser.add_argument("--start", type=float, nargs=3, default=[0.5, 8.0, 0.7],
                        metavar=("LAM", "BETA", "Q"), help="the sliders' initial values")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="examples in the sample batch (a toy model with noisy labels)")
    parser.add_argument("--noise", type=float, default=0.4, help="label noise of the sample batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample batch")
    args = parser.parse_args(argv)

    size = explorer.write_html(
        args.out, lams=grid(0.0, args.lam_max, args.lam_step, "lam"),
        betas=grid(args.beta_min, args.beta_max, args.beta_step, "beta"),
        qs=grid(args.q_step, 1.0, args.q_step, "q"), grid=args.points, start=tuple(args.start),
        batch=toy_batch(n=args.batch_size, noise=args.noise, seed=args.seed),
        batch_about=explorer.TOY_BATCH)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB); open it in a browser")


if __name__ == "__main__":
    main()
