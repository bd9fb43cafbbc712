"""Train a small model end to end on synthetic data, in seconds on a CPU.

    python examples/train_tiny.py                       # an MLP on 2-D spirals (3 classes)
    python examples/train_tiny.py --model cnn           # a small CNN on 8x8 images of bars
    python examples/train_tiny.py --loss dm --lam 0.5 --beta 8 --noise 0.3

Everything a longer run does is here in miniature: seeded initialisation, mini-batches, a loss
from tinydm.losses, SGD with momentum and a multistep schedule, train/eval modes, a progress bar
with loss and accuracy, and a checkpoint (``--save``).
"""

import argparse
import pathlib
import sys
import time

import numpy as np
from tqdm import tqdm

import tinydm as td
from tinydm import backend, checkpoint, files, losses, nn, optim
from tinydm.experiments.runner import finite_float, join_negative_numbers


def spirals(n_per_class, classes, rng):
    """Points on ``classes`` interleaved spiral arms in the plane, with a little noise."""
    t = np.linspace(0.05, 1, n_per_class)
    x, y = [], []
    for c in range(classes):
        angle = 4 * t + 2 * np.pi * c / classes + rng.normal(0, 0.15, n_per_class)
        x.append(np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1))
        y.append(np.full(n_per_class, c))
    return np.concatenate(x).astype(np.float32), np.concatenate(y)


def bars(n_per_class, rng, size=8):
    """8x8 RGB images of one noisy bar: horizontal, vertical, diagonal or anti-diagonal (4 classes)."""
    masks = np.zeros((4, size, size), dtype=np.float32)
    masks[0, size // 2] = masks[1, :, size // 2] = 1
    masks[2] = np.eye(size)
    masks[3] = np.eye(size)[::-1]
    y = np.repeat(np.arange(4), n_per_class)
    colour = rng.uniform(0.5, 1.5, (len(y), 3, 1, 1))
    shift = rng.integers(-2, 3, len(y))
    x = np.stack([np.roll(masks[c], s, axis=1 if c in (0, 2) else 0) for c, s in zip(y, shift)])
    x = x[:, None] * colour + rng.normal(0, 0.6, (len(y), 3, size, size))
    return x.astype(np.float32), y


def make_model(kind, classes):
    if kind == "mlp":
        return nn.MLP([2, 64, 64, classes])
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32),
                         nn.ReLU(), nn.GlobalAvgPool2d(), nn.Linear(32, classes))


def accuracy(model, x, y, batch_size=1000):
    """Accuracy in evaluation mode, without building a graph."""
    model.eval()
    with td.no_grad():
        hits = sum(int((model(td.Tensor(x[i:i + batch_size])).data.argmax(axis=1)
                        == td.Tensor(y[i:i + batch_size]).data).sum())
                   for i in range(0, len(x), batch_size))
    model.train()
    return hits / len(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp",
                        help="mlp on 2-D spirals or cnn on 8x8 bar images (default: mlp)")
    parser.add_argument("--iters", type=int, help="training iterations (default: 1500 mlp, 400 cnn)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=finite_float, default=0.1, help="base learning rate (SGD, momentum 0.9)")
    parser.add_argument("--weight-decay", type=finite_float, default=1e-4)
    parser.add_argument("--loss", default="cce", choices=losses.NAMES, help="a tinydm.losses name")
    parser.add_argument("--lam", type=finite_float, default=0.5, help="DM emphasis mode lambda (--loss dm)")
    parser.add_argument("--beta", type=finite_float, default=8.0,
                        help="DM emphasis variance beta (--loss dm)")
    parser.add_argument("--noise", type=finite_float, default=0.0,
                        help="fraction of training labels replaced by another class at random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=td.get_device(), choices=backend.DEVICES)
    parser.add_argument("--save", metavar="PATH", help="write a checkpoint (.npz) at the end")
    args = parser.parse_args(join_negative_numbers(sys.argv[1:] if argv is None else argv))
    args.iters = (1500 if args.model == "mlp" else 400) if args.iters is None else args.iters
    for wrong, message in ((args.iters < 1, f"--iters must be >= 1, got {args.iters}"),
                           (args.batch_size < 1, f"--batch-size must be >= 1, got "
                                                 f"{args.batch_size}"),
                           (args.lr < 0 or args.weight_decay < 0,
                            "--lr and --weight-decay must be >= 0"),
                           (not 0 <= args.noise <= 1, f"--noise must be in [0, 1], got {args.noise}")):
        if wrong:
            parser.error(message)
    if args.save:
        try:
            files.probe_writable(pathlib.Path(args.save).parent)
        except OSError as e:
            parser.error(f"--save: {e}")
    td.set_device(args.device)
    td.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    classes = 3 if args.model == "mlp" else 4
    x, y = spirals(700, classes, rng) if args.model == "mlp" else bars(400, rng)
    order = rng.permutation(len(x))
    test, train = order[:len(x) // 5], order[len(x) // 5:]
    x_train, y_train, x_test, y_test = x[train], y[train].copy(), x[test], y[test]
    if args.batch_size > len(x_train):
        parser.error(f"--batch-size must be at most the {len(x_train)} training examples, got "
                     f"{args.batch_size}")
    noisy = rng.random(len(y_train)) < args.noise
    y_train[noisy] = (y_train[noisy] + rng.integers(1, classes, noisy.sum())) % classes

    model = make_model(args.model, classes)
    criterion = losses.get(args.loss, **({"lam": args.lam, "beta": args.beta}
                                         if args.loss == "dm" else {}))
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    sched = optim.MultiStepLR(opt, milestones=[args.iters // 2, args.iters * 3 // 4], gamma=0.1)
    print(f"{args.model}: {model.num_parameters():,} parameters, {len(x_train)} training and "
          f"{len(x_test)} test examples, loss {criterion!r}, device {args.device}")

    start = time.time()
    bar = tqdm(range(args.iters), desc="train", unit="it")
    for it in bar:
        if it % (len(x_train) // args.batch_size) == 0:  # a new epoch: reshuffle
            perm = rng.permutation(len(x_train))
        k = it % (len(x_train) // args.batch_size) * args.batch_size
        idx = perm[k:k + args.batch_size]
        xb, yb = td.Tensor(x_train[idx]), td.Tensor(y_train[idx])
        opt.zero_grad()
        logits = model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        opt.step()
        sched.step()
        if it % 25 == 0 or it == args.iters - 1:
            batch_acc = float((logits.data.argmax(axis=1) == yb.data).mean())
            bar.set_postfix(loss=f"{float(loss.data):.4f}", acc=f"{batch_acc:.3f}", lr=f"{opt.lr:g}")
    bar.close()

    print(f"trained in {time.time() - start:.1f} s; train accuracy {accuracy(model, x_train, y_train):.4f} "
          f"(labels as given), test accuracy {accuracy(model, x_test, y_test):.4f}")
    if args.save:
        checkpoint.save(args.save, model, opt, sched, extra={"iteration": args.iters,
                                                             "args": vars(args)})
        print(f"checkpoint written to {args.save}")


if __name__ == "__main__":
    main()
