#!/usr/bin/env python
"""Inference speed: images per second of a CIFAR ResNet's forward pass in evaluation mode
under ``no_grad`` (what the CIFAR evaluator runs), tinydm or PyTorch, one fresh process per
framework and thread count.

    python benchmarks/inference.py                              # tinydm, batches 128 512, 1 2 threads
    python benchmarks/inference.py --framework torch            # PyTorch's torch.no_grad(), the same cases
    python benchmarks/inference.py --depth 20 --batches 512 --threads 2 --seconds 5
    python benchmarks/inference.py --step --batches 128     # training steps instead

Each case warms up for one batch, then runs batches for ``--seconds`` and reports the images
per second of that window; ``--repeats`` windows, the best of them (the least disturbed).
"""

import argparse
import json
import os
import subprocess
import sys
import time

THREAD_VARS = ("TINYDM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def measure_inference(framework, depth, batch, seconds, repeats):
    """Images per second of ``framework``'s ResNet (eval mode) under its no_grad."""
    import numpy as np
    x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    if framework == "torch":
        import torch
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from cases import _torch_resnet  # the same ResNet as tinydm's, in PyTorch
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        model, x, no_grad = _torch_resnet(depth), torch.from_numpy(x), torch.no_grad
    else:
        import tinydm as td
        td.backend.tune_malloc()  # as the training examples and benchmarks/cases.py do
        model, x, no_grad = td.nn.resnet_cifar(depth), td.Tensor(x), td.no_grad
    model.eval()

    def forward():
        with no_grad():
            return model(x)
    return _time(forward, batch, seconds, repeats)


def measure_step(depth, batch, seconds, repeats):
    """Training steps (zero_grad, forward, loss, backward, SGD) of benchmarks/cases.py."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cases import tinydm_step
    return _time(tinydm_step(dict(kind="resnet", depth=depth, batch=batch)), batch, seconds,
                 repeats)


def _time(forward, batch, seconds, repeats):
    forward()
    best = 0.0
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            forward()
            done += 1
        best = max(best, done * batch / (time.perf_counter() - start))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=("tinydm", "torch"), default="tinydm")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--step", action="store_true",
                   help="time tinydm training steps instead (images/s of zero_grad, forward, "
                        "loss, backward, SGD)")
    p.add_argument("--child", nargs=2, type=int, metavar=("BATCH", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        batch = args.child[0]
        if args.step:
            rate = measure_step(args.depth, batch, args.seconds, args.repeats)
        else:
            rate = measure_inference(args.framework, args.depth, batch, args.seconds,
                                     args.repeats)
        print(json.dumps({"images_per_second": rate}))
        return
    what = "training steps" if args.step else "inference (eval mode, no_grad)"
    print(f"{args.framework} ResNet-{args.depth} {what}, images/s")
    print("| batch | threads | images/s |\n|---:|---:|---:|")
    for threads in args.threads:
        env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
        for batch in args.batches:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--framework",
                                  args.framework, "--depth", str(args.depth), "--seconds",
                                  str(args.seconds), "--repeats", str(args.repeats)]
                                 + (["--step"] if args.step else []) + [
                                  "--child", str(batch), str(threads)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            rate = json.loads(out.strip().splitlines()[-1])["images_per_second"]
            print(f"| {batch} | {threads} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
