#!/usr/bin/env python
"""tinydm's speed and memory, side by side with PyTorch when PyTorch is importable.

    python benchmarks/run.py                      # everything, 1 and 2 threads, CPU
    python benchmarks/run.py --quick              # fewer and shorter samples, for a first look
    python benchmarks/run.py --only steps --cases resnet20 mlp_imdb --threads 1
    python benchmarks/run.py --device cuda        # CuPy against PyTorch CUDA (needs a GPU)

What is timed (benchmarks/cases.py): whole training steps (ResNet-20 and ResNet-56 on batches of
128 32x32 images, the paper's 100-8-2 IMDB MLP on batches of 250: zero_grad, forward, loss,
backward, SGD with momentum), and the forward+backward of single ops (conv2d at every layer shape
of the CIFAR ResNets, batch_norm, relu, linear, softmax and each loss).

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
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.abspath(__file__)
STRIPPED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # forced kernel choices, removed
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TINYDM_NUM_THREADS")
PARTS = ("steps", "concurrent", "memory", "ops")
WARMUP_SECONDS = 0.5  # a child warms up for --warmup steps and this long (or its window)
PROBE_INTERVAL = 0.005  # seconds between two looks at /proc/PID/task

# Targets of issue 13: ratios tinydm / PyTorch (None: at any thread count).
TARGETS = {
    ("cpu", "step", "resnet20", None): 1.2,
    ("cpu", "step", "resnet56", None): 1.2,
    ("cpu", "step", "mlp_imdb", 1): 0.8,
    ("cpu", "memory", "resnet56", None): 2.0,
    ("cuda", "step", "resnet56", None): 2.0,   # at least half of PyTorch CUDA's throughput
}


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
    p.add_argument("--child", choices=("step", "ops", "memory"), help=argparse.SUPPRESS)
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


# --- a child: one framework, one sample ----------------------------------------------------------
def import_torch(args):
    import torch
    torch.set_num_threads(args.threads[0])
    if args.device == "cuda":  # float32 against float32: no TF32 tensor-core shortcuts
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # PyTorch's fastest kernels for fixed shapes
    return torch


def step_case(args, name):
    import cases
    case = dict(cases.STEP_CASES[name])
    if args.batch and case["kind"] == "resnet":
        case["batch"] = args.batch
    return case


def make_sync(framework, device):
    """``sync()``: wait for the device's queued work (kernels run asynchronously on a GPU, the
    host clock alone would time only their launches); nothing on the CPU."""
    if device == "cpu":
        return lambda: None
    if framework == "tinydm":
        import cupy
        return cupy.cuda.get_current_stream().synchronize
    import torch
    return torch.cuda.synchronize


def warm_up(fn, steps, seconds=WARMUP_SECONDS):
    start = time.perf_counter()
    done = 0
    while done < steps or time.perf_counter() - start < seconds:
        fn()
        done += 1


def time_window(fn, sync, seconds, min_calls):
    """Seconds per call of ``fn``, timed over at least ``seconds`` and ``min_calls`` calls."""
    sync()
    start = time.perf_counter()
    calls = 0
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    sync()
    return (time.perf_counter() - start) / calls, calls


def wait_for_go():
    """Tell the parent this child is warm, then wait for its go: children that run together
    start their timed windows together."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("benchmark child: no go from the parent")


def child_info(args, torch):
    """What this process ran with: versions, threads, the BLAS libraries and kernels."""
    import numpy as np

    import tinydm
    from tinydm import backend
    info = {"framework": args.framework, "threads": args.threads[0], "numpy": np.__version__,
            "tinydm": tinydm.__version__, "tinydm_threads": backend.get_num_threads(),
            "environment": {k: os.environ.get(k) for k in STRIPPED + THREAD_VARS},
            "blas": blas_info(args.threads[0]), "os_threads_after": _task_count("self")}
    if torch is not None:
        # PyTorch's own BLAS is linked into libtorch, out of threadpoolctl's sight: its build
        # says which, and oneDNN (mkldnn) runs its convolutions
        built = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    torch_interop_threads=torch.get_num_interop_threads(),
                    torch_blas=built.group(1) if built else "unknown",
                    torch_mkldnn=torch.backends.mkldnn.is_available())
    if args.device == "cuda":
        if args.framework == "tinydm":
            import cupy
            info.update(cupy=cupy.__version__,
                        gpu=cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
                        cupy_tf32=os.environ.get("CUPY_TF32", "unset"))
        else:
            info.update(gpu=torch.cuda.get_device_name(0), torch_cuda=torch.version.cuda)
    return info


def blas_info(threads):
    """threadpoolctl's report of the BLAS and OpenMP libraries loaded, after limiting the BLAS to
    this child's threads (the environment variables already did; this checks they took)."""
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed: limited by the environment variables only"
    threadpoolctl.threadpool_limits(threads, user_api="blas")
    return [{k: lib.get(k) for k in ("user_api", "internal_api", "version", "architecture",
                                     "num_threads", "threading_layer", "prefix")}
            for lib in threadpoolctl.threadpool_info()]


def child_main(args):
    import numpy  # noqa: F401  (loads OpenBLAS before threadpoolctl looks for it)
    torch = import_torch(args) if args.framework == "torch" else None
    import cases
    make = {"tinydm": (cases.tinydm_step, cases.tinydm_op),
            "torch": (cases.torch_step, cases.torch_op)}[args.framework]
    sync = make_sync(args.framework, args.device)
    if args.child == "memory":
        result = memory_sample(make[0](step_case(args, args.case), args.device), args)
    elif args.child == "step":
        case = step_case(args, args.case)
        step = make[0](case, args.device)
        warm_up(step, args.warmup, min(WARMUP_SECONDS, args.sample_seconds))
        wait_for_go()
        seconds, steps = time_window(step, sync, args.sample_seconds, args.min_steps)
        result = {"step_seconds": seconds, "steps": steps, "batch": case["batch"],
                  "images_per_second": case["batch"] / seconds}
    else:
        result = {}
        for name, (kind, params) in selected_ops(args).items():
            fn = make[1](kind, params, args.device)
            if fn is not None:  # None: PyTorch has no such op
                warm_up(fn, args.warmup, min(WARMUP_SECONDS, args.op_seconds))
                result[name] = time_window(fn, sync, args.op_seconds, 1)[0]
        result = {"op_seconds": result}
    print(json.dumps({"result": result, "info": child_info(args, torch)}), flush=True)


def selected_ops(args):
    import cases
    return {name: op for name, op in cases.op_cases(args.batch or 128).items()
            if not args.ops or any(name.startswith(p) for p in args.ops)}


def memory_sample(step, args):
    """The memory a few training steps need: the peak resident set size during the steps minus
    the resident size just before them, model, data and optimiser already built. The peak is
    Linux's VmHWM, reset just before the steps (``ru_maxrss`` would not do: it keeps the
    parent's size from before ``exec``). For tinydm also the peak of NumPy's own allocations,
    which NumPy reports to tracemalloc (the data arrays, without the interpreter and libraries).
    On a GPU: CuPy's memory pool size and PyTorch's max_memory_allocated."""
    import tracemalloc

    rss_before = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    tracemalloc.start()
    for _ in range(args.memory_steps):
        step()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _status_bytes("VmHWM")
    mib = 2 ** 20
    result = {"rss_before_mib": rss_before / mib, "rss_peak_mib": peak / mib,
              "peak_delta_mib": (peak - rss_before) / mib, "steps": args.memory_steps}
    if args.framework == "tinydm":
        result["numpy_traced_peak_mib"] = traced_peak / mib
    if args.device == "cuda":
        if args.framework == "tinydm":
            import cupy
            result["gpu_pool_mib"] = cupy.get_default_memory_pool().total_bytes() / mib
        else:
            import torch
            result["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / mib
    return result


def _status_bytes(field):
    """A memory size from /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


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
        if spec[0] == "step" and proc.stdout.readline().strip() != "ready":
            proc.wait()
    for (proc, _), spec in zip(procs, specs):
        if spec[0] == "step" and proc.poll() is None:
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


def watch_threads(procs):
    """{pid: counts} while the processes run: the most threads seen, and the mean and most of
    those running or runnable (state R in /proc/PID/task/TID/stat). Linux only."""
    seen = {p.pid: [] for p in procs}
    while any(p.poll() is None for p in procs):
        for p in procs:
            states = _task_states(p.pid)
            if states:
                seen[p.pid].append((len(states), states.count("R")))
        time.sleep(PROBE_INTERVAL)
    out = {}
    for pid, looks in seen.items():
        if not looks:
            out[pid] = None
            continue
        running = [r for _, r in looks]
        out[pid] = {"threads_max": max(t for t, _ in looks), "running_mean":
                    statistics.fmean(running), "running_max": max(running), "looks": len(looks)}
    return out


def _task_states(pid):
    """The scheduler state letter of each thread of ``pid`` ([] when it cannot be read)."""
    states = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return states
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])  # after "(comm)"
        except (OSError, IndexError):
            pass
    return states


def _task_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


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
            samples = paired(frameworks, lambda fw, r: run_children(
                args, [("step", fw, name, threads)])[0], args.rounds)
            for fw, s in samples.items():
                infos.setdefault(fw, s[0]["info"])
            seconds = {fw: [x["result"]["step_seconds"] for x in s] for fw, s in samples.items()}
            entry = compare(seconds) | {"samples": seconds}
            entry["batch"] = samples[frameworks[0]][0]["result"]["batch"]
            entry["blas"] = {fw: _kernels(s[0]["info"]["blas"]) for fw, s in samples.items()}
            entry["tinydm_threads"] = {fw: s[0]["info"]["tinydm_threads"]
                                       for fw, s in samples.items()}
            if args.probe and os.path.isdir("/proc/self/task"):
                entry["os_threads"] = {fw: run_children(args, [("step", fw, name, threads)],
                                                        probe=True)[0]["result"]["os_threads"]
                                       for fw in frameworks}
            results[name][str(threads)] = entry
    return results


def run_concurrent(args, frameworks):
    """Images per second of ``--concurrent-runs`` one-thread runs together, in total, and of one
    run with that many threads, in the same round."""
    n = args.concurrent_runs
    results = {}
    for name in args.cases:
        print(f"  concurrent {name}: {n} x 1 thread against 1 x {n} threads ...", flush=True)

        def one_round(fw, r):
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
        samples = paired(frameworks, lambda fw, r: run_children(
            args, [("ops", fw, None, threads)])[0]["result"]["op_seconds"], args.rounds)
        results[str(threads)] = {name: compare({fw: [s[name] for s in samples[fw]]
                                                for fw in frameworks if name in samples[fw][0]})
                                 for name in samples["tinydm"][0]}
    return results


def _kernels(blas):
    """'openblas 0.3.31 SkylakeX' for each BLAS library a child reported."""
    if not isinstance(blas, list):
        return blas
    return ", ".join(f"{lib['internal_api']} {lib['version']} {lib['architecture'] or ''}".strip()
                     for lib in blas if lib["user_api"] == "blas") or "none found"


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


# --- reporting ------------------------------------------------------------------------------------
def fmt_time(s):
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_spread(m, fmt=fmt_time):
    return f"{fmt(m['median'])} ({fmt(m['q1'])}-{fmt(m['q3'])})"


def fmt_ratio(m):
    return f"**{m['median']:.2f}** ({m['q1']:.2f}-{m['q3']:.2f})"


def verdict(device, part, name, threads, ratio):
    target = TARGETS.get((device, part, name, threads), TARGETS.get((device, part, name, None)))
    if target is None or ratio is None:
        return ""
    return f"<= {target:g}: {'met' if ratio <= target else 'NOT met'}"


def _per_threads(results):
    """(case, threads, result) of a part's {case: {threads: result}}."""
    return [(name, threads, r) for name, per_threads in results.items()
            for threads, r in per_threads.items()]


def _table(header, rows):
    """A markdown table: the header's cells, then each row's."""
    lines = [header, ["---"] * len(header)] + rows
    return "\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in lines)


def steps_table(results, device):
    return _table(["case", "threads", "tinydm median (IQR)", "PyTorch median (IQR)",
                   "ratio tinydm/PyTorch (IQR)", "target"],
                  [[f"{name} (batch {r['batch']})", threads, fmt_spread(r["tinydm"]),
                    fmt_spread(r["torch"]) if "torch" in r else "-",
                    fmt_ratio(r["ratio"]) if "ratio" in r else "-",
                    verdict(device, "step", name, int(threads),
                            r["ratio"]["median"] if "ratio" in r else None)]
                   for name, threads, r in _per_threads(results)])


def threads_table(results):
    return _table(["case", "threads set", "framework", "OS threads",
                   "running or runnable: mean, most"],
                  [[name, threads, fw] + ([seen["threads_max"],
                                           f"{seen['running_mean']:.2f}, {seen['running_max']}"]
                                          if seen else ["-", "-"])
                   for name, threads, r in _per_threads(results)
                   for fw, seen in r.get("os_threads", {}).items()])


def concurrent_table(results):
    def ips(value):
        return f"{value:.0f}"
    return _table(["case", "framework", "N one-thread runs together: images/s in total (IQR)",
                   "one N-thread run: images/s (IQR)", "together / one (IQR)"],
                  [[f"{name} (N = {r['runs']})", fw,
                    fmt_spread(s["together_images_per_second"], ips),
                    fmt_spread(s["single_images_per_second"], ips),
                    fmt_ratio(s["together_over_single"])]
                   for name, r in results.items() for fw, s in r["frameworks"].items()])


def memory_table(results, device):
    return _table(["case", "threads", "tinydm peak (NumPy arrays)", "PyTorch peak", "ratio",
                   "target"],
                  [[name, threads, f"{_mib(r['tinydm']['peak_delta_mib'])} "
                    f"({_mib(r['tinydm']['numpy_traced_peak_mib'])})",
                    _mib(r["torch"]["peak_delta_mib"]) if "torch" in r else "-",
                    f"**{r['ratio']:.2f}**" if "ratio" in r else "-",
                    verdict(device, "memory", name, int(threads), r.get("ratio"))]
                   for name, threads, r in _per_threads(results)])


def ops_table(results):
    return _table(["op", "threads", "tinydm median (IQR)", "PyTorch median (IQR)", "ratio (IQR)"],
                  [[name, threads, fmt_spread(r["tinydm"]),
                    fmt_spread(r["torch"]) if "torch" in r else "-",
                    fmt_ratio(r["ratio"]) if "ratio" in r else "-"]
                   for threads, per_op in results.items() for name, r in per_op.items()])


def _mib(value):
    return f"{value:.0f} MiB"


def _loads(values):
    return ", ".join(f"{v:.2f}" for v in values)


def markdown(report):
    m, s = report["machine"], report["settings"]
    children = report["children"]
    versions = [f"Python {m['python']}", f"NumPy {children['tinydm']['numpy']}",
                f"tinydm {children['tinydm']['tinydm']}",
                f"PyTorch {children['torch']['torch']}" if "torch" in children
                else "PyTorch not installed (tinydm alone)"]
    versions += [f"CuPy {children['tinydm']['cupy']}"] if "cupy" in children["tinydm"] else []
    blas = f"tinydm: {_kernels(children['tinydm']['blas'])}"
    if "torch" in children:
        t = children["torch"]
        blas += (f"; PyTorch: {t['torch_blas']} inside libtorch, oneDNN "
                 f"{'on' if t['torch_mkldnn'] else 'off'}, {t['torch_threads']} threads "
                 f"(its process's NumPy: {_kernels(t['blas'])})")
    removed = m["environment_removed"]
    parts = [
        f"# tinydm benchmark, {m['date']}",
        "",
        f"- command: `{m['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; {m['platform']}"
        + (f"; GPU {children['tinydm']['gpu']}" if "gpu" in children["tinydm"] else ""),
        f"- load average (1, 5, 15 min) before: {_loads(m['load_average_before'])}; "
        f"after: {_loads(m['load_average_after'])}; scheduling: {m['scheduling']}",
        f"- versions: {', '.join(versions)}",
        f"- BLAS (threadpoolctl, in the children): {blas}",
        f"- children's environment: {', '.join(removed) or 'nothing'} removed "
        f"({', '.join(f'{k}={v}' for k, v in removed.items()) or 'none was set'}); "
        f"{', '.join(m['environment_set'])} set to the thread count",
        f"- {s['rounds']} paired rounds, a fresh process per framework and sample; a step sample "
        f"times at least {s['sample_seconds']:g} s and {s['min_steps']} steps after "
        f"{s['warmup']} warm-up steps (and {min(WARMUP_SECONDS, s['sample_seconds']):g} s); "
        "medians with the "
        "interquartile range; the ratio is the median of the rounds' ratios",
    ]
    if "steps" in report:
        parts += ["", "## Training steps", "", steps_table(report["steps"], m["device"])]
        if any("os_threads" in r for per in report["steps"].values() for r in per.values()):
            parts += ["", "### OS threads during the steps", "",
                      f"Read from /proc/PID/task every {PROBE_INTERVAL * 1e3:g} ms in a separate "
                      "process per row: the threads that exist, and those running or waiting "
                      "for a core (state R). More running than cores is oversubscription.", "",
                      threads_table(report["steps"])]
    if "concurrent" in report:
        parts += ["", "## Concurrent runs", "",
                  "N one-thread runs of a framework started together (their timed windows "
                  "begin at the same moment), their images per second in total, beside one "
                  "N-thread run in the same round.", "", concurrent_table(report["concurrent"])]
    if "memory" in report:
        parts += ["", "## Peak memory of a training step", "",
                  "Peak resident memory during the steps minus the resident memory just before "
                  "them (model, data and optimiser built), each in a fresh process; in brackets "
                  "the peak of NumPy's own allocations (tracemalloc).", "",
                  memory_table(report["memory"], m["device"])]
    if "ops" in report:
        parts += ["", "## Single ops, forward + backward", "", ops_table(report["ops"])]
    return "\n".join(parts) + "\n"


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder, then check it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with open(path) as f:
        if f.read() != text:
            raise OSError(f"benchmark: {path} does not read back as written")


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, HERE)
    if args.child:
        return child_main(args)
    import cases
    args.cases = args.cases or list(cases.STEP_CASES)
    unknown = set(args.cases) - set(cases.STEP_CASES)
    if unknown:
        raise SystemExit(f"benchmark: unknown --cases {sorted(unknown)}; choose among "
                         f"{sorted(cases.STEP_CASES)}")
    frameworks = ["tinydm"] + (["torch"] if torch_available(args) else [])
    report = {"machine": machine_info(args),
              "settings": {k: getattr(args, k) for k in (
                  "threads", "rounds", "sample_seconds", "min_steps", "warmup", "op_seconds",
                  "concurrent_runs", "memory_steps", "batch", "quick", "only", "cases")}}
    m = report["machine"]
    print(f"tinydm benchmark on {m['cpu']}, threads {args.threads}, frameworks {frameworks}, "
          f"{args.rounds} rounds; load average {_loads(m['load_average_before'])}", flush=True)
    infos = {}
    if "steps" in args.only:
        report["steps"] = run_steps(args, frameworks, infos)
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
