#!/usr/bin/env python
"""tinydm's speed and memory, side by side with PyTorch when PyTorch is importable.

    python benchmarks/run.py                      # everything, 1 and 2 threads, CPU
    python benchmarks/run.py --quick              # fewer and shorter samples, for a first look
    python benchmarks/run.py --only steps --cases resnet20 mlp_imdb --threads 1
    python benchmarks/run.py --device cuda        # CuPy against PyTorch CUDA (needs a GPU)

What is timed (benchmarks/cases.py): whole training steps (ResNet-20 and ResNet-56 on batches of
128 32x32 images, the paper's 100-8-2 IMDB MLP on batches of 250: zero_grad, forward, loss,
backward, SGD with momentum, written as a user writes the loop, with the library's defaults),
the ResNets' inference (eval mode under no_grad, images per second), and the forward+backward of
single ops (conv2d at every layer shape of the CIFAR ResNets, batch_norm, relu, linear, softmax
and each loss). For tinydm alone, ``profile``: the share of its step spent in matrix products
(every ``numpy.matmul`` call timed on its thread, summed over the threads, over threads x step
time).

How (all of it recorded in the output):

* Every sample is a fresh process running one framework alone: it builds the case, warms up,
  then times as many steps as fit in ``--sample-seconds`` (a step's time is the window's length
  over the steps done). Two frameworks in one process share and fight over thread pools.
* A round is one sample of each framework, one after the other, the order flipping every round,
  so both see the same machine; times are medians over ``--rounds`` rounds and the ratio
  tinydm/PyTorch the median of the rounds' ratios (below 1: tinydm is faster).
* Both frameworks get the same threads, for each of ``--threads`` (default 1 and 2):
  OMP/OPENBLAS/MKL_NUM_THREADS and TINYDM_NUM_THREADS in the child's environment, threadpoolctl
  on the BLAS, ``torch.set_num_threads``.
* Concurrency (``concurrent``): ``--concurrent-runs`` one-thread runs of a framework at the same
  time (they start their timed windows together), their images per second in total, beside one
  run with that many threads.
* OS threads: one more process per framework, case and thread count, during whose steps this
  script reads /proc/PID/task every few milliseconds: how many threads exist and how many are
  running or runnable (state R). More running threads than cores is oversubscription (tinydm's
  batch-chunk threads times BLAS threads, say). Not done during timed samples: reading /proc
  takes CPU.
* OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the children's environment: some
  development and CI machines set them, which forces an older OpenBLAS kernel and about halves
  NumPy's matrix-multiply speed; a user's machine does not. The kernel each child's OpenBLAS
  picked (threadpoolctl), versions, CPU model and the load average before and after are
  recorded.
* Peak memory (``memory``): a fresh process per framework, case and thread count.

Results: benchmarks/results/<device>-<date>.json and .md (and the tables on stdout).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.abspath(__file__)
if HERE not in sys.path:  # cases.py, child.py and report.py sit beside this file
    sys.path.insert(0, HERE)
from child import STRIPPED, THREAD_VARS, WARMUP_SECONDS, watch_threads  # noqa: E402
from child import main as child_main  # noqa: E402
from report import blas_kernels, fmt_loads, markdown, write_atomically  # noqa: E402

PARTS = ("steps", "inference", "profile", "concurrent", "memory", "ops")
TIMED = ("step", "inference")  # children that start their timed windows on the parent's go


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts, the same for each framework (default 1 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: NumPy vs PyTorch CPU; cuda: CuPy vs PyTorch CUDA (default cpu)")
    p.add_argument("--only", nargs="+", choices=PARTS, default=None,
                   help="which parts to run (default all; on cuda all but concurrent)")
    p.add_argument("--cases", nargs="+", default=None,
                   help="training-step cases (default: resnet20 resnet56 mlp_imdb)")
    p.add_argument("--ops", nargs="+", default=None, metavar="PREFIX",
                   help="only the op cases whose name starts with one of these (e.g. conv2d bn)")
    p.add_argument("--rounds", type=int, default=None,
                   help="paired rounds, each a fresh process per framework (default 7, --quick 3)")
    p.add_argument("--sample-seconds", type=float, default=None,
                   help="timed window of a training-step sample (default 3, --quick 1)")
    p.add_argument("--min-steps", type=int, default=3,
                   help="steps a sample times at least, however long they take (default 3)")
    p.add_argument("--warmup", type=int, default=2,
                   help=f"untimed steps first, and at least {WARMUP_SECONDS} s or a sample's "
                        "window, the shorter (default 2)")
    p.add_argument("--op-seconds", type=float, default=None,
                   help="timed window of each op in an ops sample (default 0.3, --quick 0.1)")
    p.add_argument("--concurrent-runs", type=int, default=2,
                   help="one-thread runs at the same time in the concurrent part (default 2)")
    p.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True,
                   help="count the OS threads during the steps (default on, Linux only)")
    p.add_argument("--memory-steps", type=int, default=3,
                   help="training steps in each peak-memory process (default 3)")
    p.add_argument("--quick", action="store_true", help="fewer and shorter samples")
    p.add_argument("--no-torch", action="store_true", help="time tinydm only")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of the ResNet steps and ops (default 128; small for smoke tests)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="folder for the .json and .md results (default benchmarks/results)")
    p.add_argument("--tag", default=None, help="name of the result files (default <device>-<date>)")
    # a child process: one framework, one sample
    p.add_argument("--child", choices=("step", "inference", "profile", "ops", "memory"),
                   help=argparse.SUPPRESS)
    p.add_argument("--framework", choices=("tinydm", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = (3, 1.0, 0.1) if args.quick else (7, 3.0, 0.3)
    for name, value in zip(("rounds", "sample_seconds", "op_seconds"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.only is None:
        args.only = [p for p in PARTS if not (p == "concurrent" and args.device == "cuda")]
    if min(args.threads) < 1 or args.rounds < 1 or args.concurrent_runs < 1:
        p.error("--threads, --rounds and --concurrent-runs must be >= 1")
    return args


# --- the parent: spawning children ---------------------------------------------------------------
def child_environment(threads):
    """This process's environment without STRIPPED, with every thread count set to ``threads``;
    and what was removed."""
    env = dict(os.environ)
    removed = {k: env.pop(k) for k in STRIPPED if k in env}
    env.update({k: str(threads) for k in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                      os.environ.get("PYTHONPATH")]))
    return env, removed


def run_children(args, specs, probe=False):
    """Run one child per ``(kind, framework, case, threads)`` in ``specs``, side by side; those
    of kind "step" start their timed windows together. Returns their results in order. With
    ``probe``, /proc/PID/task of each child is watched during its timed window and the result
    gains ``os_threads``. A result is ``{"result": ..., "info": child_info}``."""
    procs = []
    for kind, framework, case, threads in specs:
        cmd = [sys.executable, SCRIPT, "--child", kind, "--framework", framework,
               "--threads", str(threads), "--device", args.device, "--warmup", str(args.warmup),
               "--sample-seconds", str(args.sample_seconds), "--min-steps", str(args.min_steps),
               "--op-seconds", str(args.op_seconds), "--memory-steps", str(args.memory_steps)]
        cmd += ["--case", case] if case else []
        cmd += ["--batch", str(args.batch)] if args.batch else []
        cmd += ["--ops", *args.ops] if args.ops else []
        err = tempfile.TemporaryFile(mode="w+")
        procs.append((subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=err, text=True, env=child_environment(threads)[0]),
                      err))
    for (proc, _), spec in zip(procs, specs):  # all warm before any starts its window
        if spec[0] in TIMED and proc.stdout.readline().strip() != "ready":
            proc.wait()
    for (proc, _), spec in zip(procs, specs):
        if spec[0] in TIMED and proc.poll() is None:
            proc.stdin.write("go\n")
            proc.stdin.flush()
    seen = watch_threads([p for p, _ in procs]) if probe else None
    results = []
    for (proc, err), spec in zip(procs, specs):
        out = proc.communicate()[0]
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark child {' '.join(map(str, spec))} failed "
                               f"(exit {proc.returncode}):\n{err.read()[-3000:]}")
        result = json.loads(out.strip().splitlines()[-1])
        if seen is not None:
            result["result"]["os_threads"] = seen[proc.pid]
        results.append(result)
    return results


# --- the parent: the four parts ------------------------------------------------------------------
def paired(frameworks, round_fn, rounds):
    """``round_fn(framework) -> sample`` for each framework, round after round, the order
    flipping every round; returns {framework: [samples]}."""
    samples = {fw: [] for fw in frameworks}
    for r in range(rounds):
        for fw in (frameworks if r % 2 == 0 else frameworks[::-1]):
            samples[fw].append(round_fn(fw, r))
    return samples


def summary(values):
    values = sorted(values)
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2],
            "min": values[0], "max": values[-1], "n": len(values)}


def compare(values):
    """Summaries of each framework's values and of the rounds' ratios tinydm/PyTorch."""
    result = {fw: summary(v) for fw, v in values.items()}
    if set(values) == {"tinydm", "torch"}:
        result["ratio"] = summary([a / b for a, b in zip(values["tinydm"], values["torch"])])
    return result


def run_steps(args, frameworks, infos):
    results = {}
    for name in args.cases:
        results[name] = {}
        for threads in args.threads:
            print(f"  step {name}, {threads} thread(s) ...", flush=True)
            samples = paired(frameworks, lambda fw, r, name=name, threads=threads: run_children(
                args, [("step", fw, name, threads)])[0], args.rounds)
            for fw, s in samples.items():
                infos.setdefault(fw, s[0]["info"])
            seconds = {fw: [x["result"]["step_seconds"] for x in s] for fw, s in samples.items()}
            entry = compare(seconds) | {"samples": seconds}
            entry["batch"] = samples[frameworks[0]][0]["result"]["batch"]
            entry["blas"] = {fw: blas_kernels(s[0]["info"]["blas"]) for fw, s in samples.items()}
            entry["tinydm_threads"] = {fw: s[0]["info"]["tinydm_threads"]
                                       for fw, s in samples.items()}
            if args.probe and os.path.isdir("/proc/self/task"):
                entry["os_threads"] = {fw: run_children(args, [("step", fw, name, threads)],
                                                        probe=True)[0]["result"]["os_threads"]
                                       for fw in frameworks}
            results[name][str(threads)] = entry
    return results


def run_inference(args, frameworks):
    """Images per second of each ResNet case's forward pass in eval mode under no_grad, paired
    rounds as for the steps."""
    import cases
    results = {}
    for name in [n for n in args.cases if cases.STEP_CASES[n]["kind"] == "resnet"]:
        results[name] = {}
        for threads in args.threads:
            print(f"  inference {name}, {threads} thread(s) ...", flush=True)
            samples = paired(frameworks, lambda fw, r, name=name, threads=threads: run_children(
                args, [("inference", fw, name, threads)])[0]["result"], args.rounds)
            ips = {fw: [x["images_per_second"] for x in s] for fw, s in samples.items()}
            entry = {fw: summary(v) for fw, v in ips.items()} | {"samples": ips}
            times = compare({fw: [x["step_seconds"] for x in s] for fw, s in samples.items()})
            if "ratio" in times:  # of times per batch, tinydm / PyTorch, as for the steps
                entry["ratio"] = times["ratio"]
            entry["batch"] = samples[frameworks[0]][0]["batch"]
            results[name][str(threads)] = entry
    return results


def run_profile(args):
    """tinydm's share of a training step spent in matrix products: the cores' time inside
    ``numpy.matmul`` (all of conv2d's and linear's products) over threads x step time."""
    results = {}
    for name in args.cases:
        results[name] = {}
        for threads in args.threads:
            print(f"  profile {name}, {threads} thread(s) ...", flush=True)
            runs = [run_children(args, [("profile", "tinydm", name, threads)])[0]["result"]
                    for _ in range(min(3, args.rounds))]
            results[name][str(threads)] = {
                "gemm_share": summary([r["gemm_share"] for r in runs]),
                "step_seconds": summary([r["step_seconds"] for r in runs]),
                "gemm_seconds": summary([r["gemm_seconds"] for r in runs]), "samples": runs}
    return results


def run_concurrent(args, frameworks):
    """Images per second of ``--concurrent-runs`` one-thread runs together, in total, and of one
    run with that many threads, in the same round."""
    n = args.concurrent_runs
    results = {}
    for name in args.cases:
        print(f"  concurrent {name}: {n} x 1 thread against 1 x {n} threads ...", flush=True)

        def one_round(fw, r, name=name):
            together = run_children(args, [("step", fw, name, 1)] * n)
            single = run_children(args, [("step", fw, name, n)])[0]
            return (sum(x["result"]["images_per_second"] for x in together),
                    single["result"]["images_per_second"])
        samples = paired(frameworks, one_round, args.rounds)
        results[name] = {"runs": n, "frameworks": {fw: {
            "together_images_per_second": summary([t for t, _ in s]),
            "single_images_per_second": summary([o for _, o in s]),
            "together_over_single": summary([t / o for t, o in s]),
            "samples": s} for fw, s in samples.items()}}
    return results


def run_memory(args, frameworks):
    """Peak memory of a training step, each framework, case and thread count in a fresh process."""
    results = {}
    for name in args.cases:
        results[name] = {}
        for threads in args.threads:
            print(f"  memory {name}, {threads} thread(s) ...", flush=True)
            both = {fw: run_children(args, [("memory", fw, name, threads)])[0]["result"]
                    for fw in frameworks}
            if len(both) == 2:
                both["ratio"] = both["tinydm"]["peak_delta_mib"] / both["torch"]["peak_delta_mib"]
            results[name][str(threads)] = both
    return results


def run_ops(args, frameworks):
    """Every selected op timed in one process per framework and round, the rounds paired."""
    results = {}
    for threads in args.threads:
        print(f"  ops, {threads} thread(s) ...", flush=True)
        samples = paired(frameworks, lambda fw, r, threads=threads: run_children(
            args, [("ops", fw, None, threads)])[0]["result"]["op_seconds"], args.rounds)
        results[str(threads)] = {name: compare({fw: [s[name] for s in samples[fw]]
                                                for fw in frameworks if name in samples[fw][0]})
                                 for name in samples["tinydm"][0]}
    return results


def portable_command(argv):
    """The command line as a reader can reuse it: the home folder as ``~``, paths in the
    repository relative to it (no machine's absolute paths in committed results)."""
    repo, home = os.path.dirname(HERE) + os.sep, os.path.expanduser("~")
    return " ".join(a.replace(repo, "").replace(home, "~") for a in argv)


def machine_info(args):
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": portable_command([sys.executable] + sys.argv),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "device": args.device,
        "environment_removed": child_environment(1)[1],
        "environment_set": list(THREAD_VARS), "load_average_before": os.getloadavg(),
        "scheduling": _scheduling(),
    }


def _scheduling():
    """This process's nice value and, on Linux with autogroups, its group's (the scheduler shares
    the cores between groups first): how much of the machine the benchmark could take."""
    text = f"nice {os.nice(0)}"
    try:
        with open("/proc/self/autogroup") as f:
            text += f"; {f.read().strip()}"
    except OSError:
        pass
    return text


def _cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except Exception:
        return platform.processor() or "unknown"


def torch_available(args):
    if args.no_torch:
        return False
    check = "import torch" + ("; assert torch.cuda.is_available()" if args.device == "cuda" else "")
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    import cases
    args.cases = args.cases or list(cases.STEP_CASES)
    unknown = set(args.cases) - set(cases.STEP_CASES)
    if unknown:
        raise SystemExit(f"benchmark: unknown --cases {sorted(unknown)}; choose among "
                         f"{sorted(cases.STEP_CASES)}")
    if max(args.threads) > 1 and subprocess.run([sys.executable, "-c", "import threadpoolctl"],
                                                capture_output=True).returncode != 0:
        # tinydm's threads then run one after the other while OpenBLAS takes every core
        raise SystemExit("benchmark: threadpoolctl, a dependency of tinydm, is not installed in "
                         f"{sys.executable}'s environment: pip install threadpoolctl (or "
                         "time --threads 1 only)")
    frameworks = ["tinydm"] + (["torch"] if torch_available(args) else [])
    report = {"machine": machine_info(args),
              "settings": {k: getattr(args, k) for k in (
                  "threads", "rounds", "sample_seconds", "min_steps", "warmup", "op_seconds",
                  "concurrent_runs", "memory_steps", "batch", "quick", "only", "cases")}}
    m = report["machine"]
    print(f"tinydm benchmark on {m['cpu']}, threads {args.threads}, frameworks {frameworks}, "
          f"{args.rounds} rounds; load average {fmt_loads(m['load_average_before'])}", flush=True)
    infos = {}
    if "steps" in args.only:
        report["steps"] = run_steps(args, frameworks, infos)
    if "inference" in args.only:
        report["inference"] = run_inference(args, frameworks)
    if "profile" in args.only and args.device == "cpu":
        report["profile"] = run_profile(args)
    if "concurrent" in args.only:
        report["concurrent"] = run_concurrent(args, frameworks)
    if "memory" in args.only:
        report["memory"] = run_memory(args, frameworks)
    if "ops" in args.only:
        report["ops"] = run_ops(args, frameworks)
    if set(infos) != set(frameworks):  # no steps part: ask a child what it runs with
        for fw in frameworks:
            infos.setdefault(fw, run_children(args, [("memory", fw, args.cases[0],
                                                      args.threads[0])])[0]["info"])
    report["children"] = infos
    m["load_average_after"] = os.getloadavg()
    text = markdown(report)
    print()
    print(text)
    os.makedirs(args.out, exist_ok=True)
    tag = args.tag or f"{args.device}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    path = os.path.join(args.out, tag)
    write_atomically(path + ".json", json.dumps(report, indent=1))
    write_atomically(path + ".md", text)
    print(f"written: {path}.json and .md")


if __name__ == "__main__":
    main()
