"""Train a CIFAR ResNet under label noise with any loss of tinydm (Tables 1 and 9, Figures 2, 5).

    python examples/cifar_resnet.py --data-dir ~/data --loss cce
    python examples/cifar_resnet.py --data-dir ~/data --loss dm --lam 1 --beta 16
    python examples/cifar_resnet.py --data-dir ~/data --loss dm --lam 1 --beta 16 --resume
    python examples/cifar_resnet.py --dataset synthetic --depth 8 --iterations 40 --eval-every 20
    # remedies for emphasis collapse (docs/emphasis-collapse.md), each off by default:
    python examples/cifar_resnet.py --data-dir ~/data --loss dm --lam 1 --beta 16 --warmup 1000
    python examples/cifar_resnet.py --data-dir ~/data --loss dm --lam 1 --beta 16 --per-class
    python examples/cifar_resnet.py --data-dir ~/data --loss dm --lam 1 --beta 16 \\
        --ess-floor 0.5
    python examples/cifar_resnet.py --data-dir ~/data --loss dm --lam 1 --beta 16 \\
        --sampler balanced     # all 10 classes in every batch of 128: 12 or 13 images each

Defaults: CIFAR-10, ResNet-20, 40% symmetric noise, batches of 128, 30,000 iterations, SGD
(Caffe's form) momentum 0.9, weight decay 5e-4, lr 0.1 divided by 10 at 50% and 73.3% of the
iterations (the paper's 15k and 22k of 30k), pad-4 crop + flip, mean subtraction. The paper's
CIFAR-100 Table 1 protocol:

    python examples/cifar_resnet.py --dataset cifar100 --depth 44 --batch-size 256 \\
        --sampler balanced --augment resize --noise symmetric --noise-rate 0.4 \\
        --iterations 30000 --milestones 15000 22000 --loss dm --lam 0.5 --beta 8

Shorter runs on a CPU, as measured in docs/results.md (2-core Xeon, NumPy/OpenBLAS, ResNet-20,
batches of 128, one thread per run, two runs side by side): about 1.15-1.25 s per training
iteration and about 40 s per evaluation of the 10,000 test images plus 2,000 training images.
Single-threaded BLAS is the steadier choice when runs share the cores:

    # (a) the full training set, 1,000 iterations (~2.6 epochs): about 24 min
    OMP_NUM_THREADS=1 python examples/cifar_resnet.py --data-dir ~/data --iterations 1000 \\
        --eval-every 250 --log-every 10 --eval-train-subset 2000 --loss cce
    # (b) 100 images per class for 2,000 iterations (256 epochs), so CCE memorises: about 50 min
    OMP_NUM_THREADS=1 python examples/cifar_resnet.py --data-dir ~/data \\
        --subset-per-class 100 --iterations 2000 --eval-every 200 --log-every 20 \\
        --loss dm --lam 1 --beta 16
    # hyperparameter search on a clean 20% validation split (the paper's 80/20): about 11 min
    OMP_NUM_THREADS=1 python examples/cifar_resnet.py --data-dir ~/data --val-fraction 0.2 \\
        --iterations 500 --eval-every 500 --eval-train-subset 2000 --loss dm --lam 1 --beta 8
    # then compare runs in Table 9's columns, with the figures:
    python examples/cifar_report.py CCE=runs/cifar/<cce run> "DM=runs/cifar/<dm run>" --out report

Every --eval-every iterations the run evaluates (test accuracy, training accuracy against the
noisy and the clean labels, mean p_i of clean and noisy examples, predicted-class histogram),
writes checkpoint.npz and results.json into --out (default runs/cifar/<name>); at the end it
draws accuracy.png, p_i.png, ess.png and test_predictions.png there. A killed run continues with
--resume and ends exactly as an uninterrupted one. Protocol: tinydm/experiments/cifar/.
"""

import argparse
import sys

from tinydm import backend, losses
from tinydm.data import DataError, transforms
from tinydm.experiments import cifar, runner

D = cifar.Config()  # the defaults (checked settings, tinydm/experiments/cifar/settings.py)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=cifar.DATASETS, default=D.dataset,
                      help=f"(default: {D.dataset}); synthetic: small generated images, no download")
    data.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ or cifar-100-python/ "
                                         "(default: $TINYDM_DATA or ~/.cache/tinydm)")
    data.add_argument("--download", action="store_true", help="download the data set if missing")
    data.add_argument("--synthetic-size", nargs=2, type=int, default=list(D.synthetic_sizes),
                      metavar=("TRAIN", "TEST"), help="images of --dataset synthetic (default: %(default)s)")
    data.add_argument("--synthetic-image-size", type=int, default=D.synthetic_image_size,
                      metavar="PIXELS", help="side of the synthetic images (default: %(default)s)")
    data.add_argument("--noise", choices=cifar.NOISES, default=D.noise,
                      help="label noise: symmetric (any other class), asymmetric (CIFAR-100 "
                           "superclass swaps), pair (CIFAR-10 class-dependent), cifar10n:NAME "
                           "(CIFAR-10N's human labels from DATA_DIR/cifar-n-labels/"
                           "CIFAR-10_human.npz; worst ~40%%, random1 ~17%%, aggre ~9%% wrong; "
                           "--noise-rate is then unused and the validation split keeps its "
                           "human labels) (default: %(default)s)")
    data.add_argument("--noise-rate", type=runner.finite_float, default=D.noise_rate,
                      help="r (default: %(default)s)")
    data.add_argument("--noise-exact", action="store_true",
                      help="corrupt exactly round(r n) labels instead of each with probability r")
    data.add_argument("--subset-per-class", type=int, metavar="K",
                      help="train on K images of each class (class-balanced subset)")
    data.add_argument("--subset-order", choices=cifar.SUBSET_ORDERS, default=D.subset_order,
                      help="the subset's images: random, or the first K of each class in the "
                           "files' order (default: %(default)s)")
    data.add_argument("--val-per-class", type=int, metavar="V",
                      help="hold out V more images of each class, clean, as a validation split "
                           "(with --subset-order first: the next V in the files' order)")
    data.add_argument("--val-fraction", type=runner.finite_float, default=D.val_fraction,
                      help="hold out this fraction of the training data, clean, as a validation "
                           "split (the paper's search uses 0.2) (default: %(default)s)")
    data.add_argument("--augment", choices=transforms.AUGMENTATIONS, default=D.augment,
                      help="pad: pad 4 + random crop + flip (the paper's text); resize: resize to "
                           "36 + random crop + flip, centre crop for test (the released code); "
                           "none (default: %(default)s)")
    data.add_argument("--std", nargs=3, type=runner.finite_float, metavar=("R", "G", "B"),
                      help=f"also divide by these per-channel stds after subtracting the mean "
                           f"(common: {' '.join(map(str, transforms.CIFAR_STD))}; default: no "
                           f"division, as released)")
    data.add_argument("--sampler", choices=cifar.SAMPLERS, default=D.sampler,
                      help="shuffle: reshuffled epochs; balanced: a few classes per batch, "
                           "--images-per-class of each, by noisy label (default: %(default)s)")
    data.add_argument("--images-per-class", type=int, default=D.images_per_class,
                      help="balanced batches: classes per batch = batch size / this "
                           "(default: %(default)s, i.e. 32 x 8 for a batch of 256)")

    model = parser.add_argument_group("model and loss")
    model.add_argument("--depth", type=int, default=D.depth, help="ResNet depth 6n+2 (default: %(default)s)")
    model.add_argument("--shortcut", choices=("A", "B"), default=D.shortcut,
                       help="A: zero-padded identity, B: 1x1 projection (default: %(default)s)")
    model.add_argument("--loss", "--method", dest="loss", default=D.loss, metavar="NAME",
                       help=f"any tinydm.losses name: {', '.join(losses.NAMES)} (default: %(default)s)")
    model.add_argument("--lam", type=runner.finite_float, help="DM's lambda (emphasis mode)")
    model.add_argument("--beta", type=runner.finite_float, help="DM's beta (emphasis variance)")
    model.add_argument("--q", type=runner.finite_float,
                       help=f"GCE's q (default of the loss: {losses.parameters('gce')['q']})")
    model.add_argument("--warmup", type=int, metavar="K",
                       help="DM: raise beta linearly from 0 over the first K iterations "
                            "(emphasis-collapse remedy, docs/emphasis-collapse.md; default: off)")
    model.add_argument("--ess-floor", type=runner.finite_float, metavar="F",
                       help="DM: temper the weights (w -> w^t) until the batch's ESS is at least "
                            "F of the batch (remedy; default: off)")
    model.add_argument("--per-class", action="store_true",
                       help="DM: renormalise the weights within each given label, so each label "
                            "keeps its batch frequency as its share of the emphasis (remedy)")

    train = parser.add_argument_group("optimisation")
    train.add_argument("--iterations", type=int, default=D.iterations, help="(default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=D.batch_size, help="(default: %(default)s)")
    train.add_argument("--lr", type=runner.finite_float, default=D.lr,
                       help="base learning rate (default: %(default)s)")
    train.add_argument("--milestones", nargs="*", type=int,
                       help="iterations where the lr is multiplied by --lr-gamma (default: 50%% and "
                            "73.3%% of --iterations)")
    train.add_argument("--lr-gamma", type=runner.finite_float, default=D.lr_gamma,
                       help="(default: %(default)s)")
    train.add_argument("--momentum", type=runner.finite_float, default=D.momentum,
                       help="(default: %(default)s)")
    train.add_argument("--weight-decay", type=runner.finite_float, default=D.weight_decay,
                       help="(default: %(default)s, the released solver's)")
    train.add_argument("--sgd", choices=cifar.SGD_STYLES, default=D.sgd,
                       help="momentum convention (default: %(default)s, as the released code)")

    run = parser.add_argument_group("evaluation, output, device")
    run.add_argument("--eval-every", type=int, default=D.eval_every,
                     help="evaluate and checkpoint every N iterations (default: %(default)s)")
    run.add_argument("--eval-train-subset", type=int, metavar="N",
                     help="training-set metrics on a fixed random subset of N training images "
                          "(default: all; recorded in the results)")
    run.add_argument("--eval-batch-size", type=int, default=D.eval_batch_size, help="(default: %(default)s)")
    run.add_argument("--log-every", type=int, default=D.log_every,
                     help="log loss, accuracy and ESS every N iterations (default: %(default)s)")
    run.add_argument("--device", choices=backend.DEVICES, default=D.device,
                     help="cpu (NumPy), cuda (CuPy) or standin (CPU stand-in for CuPy)")
    run.add_argument("--seed", type=int, default=D.seed,
                     help="initialisation, batch order and augmentation (default: %(default)s)")
    run.add_argument("--data-seed", type=int,
                     help="subset, split, noise and evaluation subset (default: --seed)")
    run.add_argument("--out", help="output folder (default: runs/cifar/<name>)")
    run.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    run.add_argument("--overwrite", action="store_true", help="start again over an existing run")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    return parser.parse_args(runner.join_negative_numbers(sys.argv[1:] if argv is None
                                                          else argv))


def config_from_args(args):
    """The :class:`tinydm.experiments.cifar.Config` of parsed arguments."""
    loss_params = {k: getattr(args, k) for k in ("lam", "beta", "q", "warmup", "ess_floor")
                   if getattr(args, k) is not None}
    if args.per_class:
        loss_params["per_class"] = True
    return cifar.Config(
        dataset=args.dataset, data_dir=args.data_dir, download=args.download,
        synthetic_sizes=tuple(args.synthetic_size),
        synthetic_image_size=args.synthetic_image_size, noise=args.noise, noise_rate=args.noise_rate,
        noise_exact=args.noise_exact, subset_per_class=args.subset_per_class,
        subset_order=args.subset_order, val_per_class=args.val_per_class,
        val_fraction=args.val_fraction, depth=args.depth, shortcut=args.shortcut, loss=args.loss,
        loss_params=loss_params, iterations=args.iterations, batch_size=args.batch_size,
        lr=args.lr, milestones=None if not args.milestones else tuple(args.milestones),
        lr_gamma=args.lr_gamma, momentum=args.momentum, weight_decay=args.weight_decay,
        sgd=args.sgd, augment=args.augment, std=None if args.std is None else tuple(args.std),
        sampler=args.sampler, images_per_class=args.images_per_class,
        eval_every=args.eval_every, eval_train_subset=args.eval_train_subset,
        eval_batch_size=args.eval_batch_size, log_every=args.log_every, seed=args.seed,
        data_seed=args.data_seed, device=args.device, out_dir=args.out)


def main(argv=None):
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    results = runner.run_command(
        lambda: cifar.run(config, resume=args.resume, overwrite=args.overwrite,
                          progress=not args.no_progress, figures=not args.no_figures),
        f"the last checkpoint in {config.resolved().out_dir} is kept; continue with --resume",
        (DataError,))
    if results["status"] == "diverged":
        print(f"diverged: the loss or the weights became non-finite at iteration "
              f"{results['summary']['diverged_by']} (status \"diverged\" in "
              f"{config.resolved().out_dir}/{cifar.RESULTS})", file=sys.stderr)
        raise SystemExit(3)
    timing = results["timing"]
    print(f"{timing['iterations_done']} iterations in {timing['wall_seconds']:.0f} s "
          f"({timing['step_ms']:.0f} ms per training iteration, {timing['eval_seconds']:.0f} s "
          f"evaluating); results in {config.resolved().out_dir}")
    return results


if __name__ == "__main__":
    main()
