#!/usr/bin/env python
"""Inference speed: images per second of a CIFAR ResNet's forward pass in evaluation mode
under ``no_grad`` (what the CIFAR evaluator runs), tinydm or PyTorch, one fresh process per
framework and thread count.

    python benchmarks/inference.py                              # tinydm, batches 128 512, 1 2 threads
    python benchmarks/inference.py --framework torch            # PyTorch's torch.no_grad(), the same cases
    python benchmarks/inference.py --depth 20 --batches 512 --threads 2 --seconds 5
    python benchmarks/inference.py --step --batches 128     # training steps instead
    python benchmarks/inference.py --step --batches 128 --threads 1 --profile 10   # per-op times

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
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cases
    case = dict(kind="resnet", depth=depth, batch=batch)
    if framework == "torch":
        import torch
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        return _time(cases.torch_inference(case), batch, seconds, repeats)
    return _time(cases.tinydm_inference(case), batch, seconds, repeats)


def measure_step(depth, batch, seconds, repeats):
    """Training steps (zero_grad, forward, loss, backward, SGD) of benchmarks/cases.py."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cases import tinydm_step
    return _time(tinydm_step(dict(kind="resnet", depth=depth, batch=batch)), batch, seconds,
                 repeats)


def op_profile(depth, batch, steps, step_mode):
    """Seconds per step in each op's forward and backward (every Function subclass's methods
    wrapped with a timer), and the whole step's: where a training step (or an inference
    batch) spends its time. Ops do not call other ops, so the times do not nest."""
    import time as _t
    from collections import defaultdict

    from tinydm.tensor import Function
    totals = defaultdict(float)

    def timed(cls, name):
        method = getattr(cls, name)

        def wrapper(self, *args):
            start = _t.perf_counter()
            try:
                return method(self, *args)
            finally:
                totals[f"{cls.__name__}.{name}"] += _t.perf_counter() - start
        setattr(cls, name, wrapper)
    classes, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    for cls in classes:
        for name in ("forward", "backward"):
            if name in vars(cls):
                timed(cls, name)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cases
    make = cases.tinydm_step if step_mode else cases.tinydm_inference
    run = make(dict(kind="resnet", depth=depth, batch=batch))
    run()
    totals.clear()
    start = _t.perf_counter()
    for _ in range(steps):
        run()
    whole = (_t.perf_counter() - start) / steps
    return whole, {k: v / steps for k, v in totals.items()}


def print_profile(whole, ops):
    gemm = sum(v for k, v in ops.items() if k.split(".")[0] in ("Conv2d", "Linear", "MatMul"))
    print(f"step {whole * 1e3:.1f} ms; conv2d + linear (im2col and GEMMs) "
          f"{gemm * 1e3:.1f} ms = {gemm / whole:.0%} of it")
    print("| op | ms per step | share |\n|---|---:|---:|")
    for name, v in sorted(ops.items(), key=lambda kv: -kv[1]):
        if v / whole >= 0.005:
            print(f"| {name} | {v * 1e3:.1f} | {v / whole:.1%} |")
    rest = whole - sum(ops.values())
    print(f"| outside the ops (graph, optimiser, Python) | {rest * 1e3:.1f} | {rest / whole:.1%} |")


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
    p.add_argument("--profile", type=int, metavar="STEPS", default=0,
                   help="instead: time each op's forward and backward over STEPS steps (threads "
                        "and batch: the first of --threads and --batches), the GEMM share")
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
    if args.profile:
        env = {v: str(args.threads[0]) for v in THREAD_VARS}
        if any(os.environ.get(k) != v for k, v in env.items()):  # the thread pools read them at import
            os.environ.update(env)
            os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
        print(f"tinydm ResNet-{args.depth} {'training step' if args.step else 'inference'}, "
              f"batch {args.batches[0]}, {args.threads[0]} thread(s), {args.profile} steps")
        print_profile(*op_profile(args.depth, args.batches[0], args.profile, args.step))
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
