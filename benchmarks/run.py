#!/usr/bin/env python
"""tinydm's speed and memory, side by side with PyTorch when PyTorch is importable.

    python benchmarks/run.py                      # everything, 2 threads, CPU
    python benchmarks/run.py --quick              # fewer repeats (a minute or two)
    python benchmarks/run.py --only steps --cases resnet20 mlp_imdb
    python benchmarks/run.py --device cuda        # CuPy against PyTorch CUDA (needs a GPU)

What is timed (benchmarks/cases.py): whole training steps (ResNet-20 and ResNet-56 on batches of
128 32x32 images, the paper's 100-8-2 IMDB MLP on batches of 250: zero_grad, forward, loss,
backward, SGD with momentum), and the forward+backward of single ops (conv2d at every layer shape
of the CIFAR ResNets, batch_norm, relu, linear, softmax and each loss). Each measurement warms up
first, then takes ``--repeats`` samples; the two frameworks' samples alternate, so both see the
same machine load, and the ratio tinydm/PyTorch is the median of the paired ratios. A ratio below
1 means tinydm is faster. Peak memory of a training step is measured for each framework in a
process of its own (see ``memory_child``).

Fair conditions, recorded in the output:

* Both frameworks get the same number of threads (``--threads``, default 2): PyTorch through
  ``torch.set_num_threads``, NumPy's OpenBLAS through OPENBLAS_NUM_THREADS (and threadpoolctl
  when installed).
* OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed: some development and CI machines set them,
  which forces an older OpenBLAS kernel and about halves NumPy's matrix-multiply speed; a user's
  machine does not. This needs a fresh process, since OpenBLAS reads them when NumPy is imported,
  so the script restarts itself once with the cleaned environment before importing NumPy (only
  its own process: tests and CI keep their environment) and records what it changed, and the
  kernel OpenBLAS then reports.

Results: benchmarks/results/<device>-<date>.json and .md (and the table on stdout).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STRIPPED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # forced kernel choices, removed
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ENV_MARK = "TINYDM_BENCH_ENV"  # set in the restarted process: what the restart changed

# Targets of issue 6, as ratios tinydm / PyTorch measured in one run (CPU), or throughput on GPU.
TARGETS = {
    ("cpu", "step", "resnet20"): 2.0,
    ("cpu", "step", "mlp_imdb"): 1.0,
    ("cpu", "memory", "resnet56"): 2.0,
    ("cuda", "step", "resnet56"): 2.0,   # at least half of PyTorch CUDA's throughput
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--threads", type=int, default=2, help="threads for each framework (default 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: NumPy vs PyTorch CPU; cuda: CuPy vs PyTorch CUDA (default cpu)")
    p.add_argument("--only", nargs="+", choices=("steps", "ops", "memory"),
                   default=["steps", "ops", "memory"], help="which parts to run (default all)")
    p.add_argument("--cases", nargs="+", default=None,
                   help="training-step cases (default: resnet20 resnet56 mlp_imdb)")
    p.add_argument("--ops", nargs="+", default=None, metavar="PREFIX",
                   help="only the op cases whose name starts with one of these (e.g. conv2d bn)")
    p.add_argument("--repeats", type=int, default=None,
                   help="samples per measurement (default 11, --quick 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--min-sample", type=float, default=0.05,
                   help="seconds a sample lasts at least: fast work is repeated within a sample "
                        "and averaged (default 0.05)")
    p.add_argument("--memory-steps", type=int, default=3,
                   help="training steps in each peak-memory process (default 3)")
    p.add_argument("--quick", action="store_true", help="fewer repeats, for a first look")
    p.add_argument("--no-torch", action="store_true", help="time tinydm only")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of the ResNet steps and ops (default 128; small for smoke tests)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="folder for the .json and .md results (default benchmarks/results)")
    p.add_argument("--tag", default=None, help="name of the result files (default <device>-<date>)")
    p.add_argument("--memory-child", nargs=2, metavar=("FRAMEWORK", "CASE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 11
    if args.quick:
        args.warmup = min(args.warmup, 1)
    return args


# --- the environment -----------------------------------------------------------------------------
def restart_with_clean_environment(threads):
    """Re-run this script once with STRIPPED removed and the thread counts set, before NumPy is
    imported; returns what was changed (read back in the restarted process)."""
    if ENV_MARK in os.environ:
        return json.loads(os.environ[ENV_MARK])
    assert "numpy" not in sys.modules, "the restart must happen before NumPy is imported"
    env = dict(os.environ)
    removed = {k: env.pop(k) for k in STRIPPED if k in env}
    set_vars = {k: str(threads) for k in THREAD_VARS}
    changes = {"restarted": True, "removed": removed, "set": set_vars,
               "previous": {k: os.environ.get(k) for k in THREAD_VARS}}
    env.update(set_vars)
    env[ENV_MARK] = json.dumps(changes)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


def import_torch(args):
    if args.no_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(args.threads)
    if args.device == "cuda":  # float32 against float32: no TF32 tensor-core shortcuts
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # PyTorch's fastest kernels for fixed shapes
    return torch


def limit_numpy_threads(threads):
    """Limit OpenBLAS through threadpoolctl when it is installed (the environment variables set
    at the restart already did); returns threadpoolctl's report of the BLAS libraries."""
    try:
        import threadpoolctl
    except ImportError:
        return None, "threadpoolctl not installed: limited by OPENBLAS_NUM_THREADS only"
    import numpy  # noqa: F401  (loads OpenBLAS, so that threadpoolctl finds it)
    threadpoolctl.threadpool_limits(threads, user_api="blas")
    return threadpoolctl.threadpool_info(), None


def machine_info(args, torch, env_changes):
    import numpy as np

    import tinydm
    from tinydm import backend
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([sys.executable] + sys.argv),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__,
        "tinydm": tinydm.__version__, "torch": torch.__version__ if torch else None,
        "threads": args.threads, "device": args.device, "environment": env_changes,
        "load_average_before": os.getloadavg(), "scheduling": _scheduling(),
        "tinydm_threads": getattr(backend, "get_num_threads", lambda: None)(),  # older tinydm: none
        "tinydm_malloc_tuning": getattr(backend, "tune_malloc", lambda: None)(),
    }
    blas, note = limit_numpy_threads(args.threads)
    info["blas"] = [{k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                              "num_threads", "threading_layer", "filepath")}
                    for lib in blas if lib.get("user_api") == "blas"] if blas else note
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["torch_backends"] = {"mkldnn": torch.backends.mkldnn.is_available(),
                                  "openmp": torch.backends.openmp.is_available()}
    if args.device == "cuda":
        import cupy
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["cupy"] = cupy.__version__
        info["torch_cuda"] = torch.version.cuda if torch else None
        info["gpu_settings"] = ("float32; PyTorch: TF32 off, cudnn.benchmark on; CuPy: "
                                f"CUPY_TF32={os.environ.get('CUPY_TF32', 'unset')}")
    return info


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


# --- timing ---------------------------------------------------------------------------------------
def make_timer(framework, device):
    """``timer(fn, inner) -> seconds per call``. On a GPU: device events around the calls and a
    synchronisation at the end (kernels run asynchronously, the host clock alone would time
    only the launches)."""
    if device == "cpu":
        def timer(fn, inner):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            return (time.perf_counter() - start) / inner
    elif framework == "tinydm":
        import cupy

        def timer(fn, inner):
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            return cupy.cuda.get_elapsed_time(start, end) / 1000 / inner
    else:
        import torch

        def timer(fn, inner):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000 / inner
    return timer


def measure(fns, args):
    """Time each of ``fns`` ({framework: callable}) ``args.repeats`` times, alternating the
    frameworks (in an order that flips every round), after ``args.warmup`` untimed runs. Fast
    work is repeated within a sample so that a sample lasts ``args.min_sample`` seconds."""
    timers = {fw: make_timer(fw, args.device) for fw in fns}
    inner = {}
    for fw, fn in fns.items():
        for _ in range(args.warmup):
            fn()
        once = timers[fw](fn, 1)
        inner[fw] = max(1, int(args.min_sample / max(once, 1e-9)))
    samples = {fw: [] for fw in fns}
    order = list(fns)
    for r in range(args.repeats):
        for fw in (order if r % 2 == 0 else order[::-1]):
            samples[fw].append(timers[fw](fns[fw], inner[fw]))
    result = {fw: summary(s) | {"calls_per_sample": inner[fw]} for fw, s in samples.items()}
    if set(fns) == {"tinydm", "torch"}:
        ratios = [a / b for a, b in zip(samples["tinydm"], samples["torch"])]
        result["ratio"] = summary(ratios)
    return result


def summary(values):
    values = sorted(values)
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2],
            "min": values[0], "max": values[-1], "n": len(values)}


# --- the three parts ------------------------------------------------------------------------------
def run_steps(args, torch):
    import cases

    results = {}
    for name in args.cases or list(cases.STEP_CASES):
        case = dict(cases.STEP_CASES[name])
        if args.batch and case["kind"] == "resnet":
            case["batch"] = args.batch
        fns = {"tinydm": cases.tinydm_step(case, args.device)}
        if torch is not None:
            fns["torch"] = cases.torch_step(case, args.device)
        print(f"  step {name} ...", flush=True)
        results[name] = measure(fns, args) | {"batch": case["batch"]}
    return results


def run_ops(args, torch):
    import cases

    results = {}
    for name, (kind, params) in cases.op_cases(args.batch or 128).items():
        if args.ops and not any(name.startswith(p) for p in args.ops):
            continue
        fns = {"tinydm": cases.tinydm_op(kind, params, args.device)}
        if torch is not None:
            other = cases.torch_op(kind, params, args.device)
            if other is not None:
                fns["torch"] = other
        print(f"  op {name} ...", flush=True)
        results[name] = measure(fns, args)
    return results


def run_memory(args, torch):
    """Peak memory of a training step, each framework and case in a fresh process."""
    import cases

    results = {}
    frameworks = ["tinydm"] + (["torch"] if torch is not None else [])
    for name in args.cases or list(cases.STEP_CASES):
        results[name] = {}
        for fw in frameworks:
            print(f"  memory {name} {fw} ...", flush=True)
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", fw, name,
                   "--threads", str(args.threads), "--device", args.device,
                   "--memory-steps", str(args.memory_steps)]
            if args.batch:
                cmd += ["--batch", str(args.batch)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                results[name][fw] = {"error": out.stderr.strip().splitlines()[-1:]}
                continue
            results[name][fw] = json.loads(out.stdout.strip().splitlines()[-1])
        both = results[name]
        if all("peak_delta_mib" in both.get(fw, {}) for fw in ("tinydm", "torch")):
            both["ratio"] = both["tinydm"]["peak_delta_mib"] / both["torch"]["peak_delta_mib"]
    return results


def memory_child(args):
    """Print the memory a few training steps need, as JSON: the peak resident set size during
    the steps minus the resident size just before them, model, data and optimiser already built.
    The peak is Linux's VmHWM, reset just before the steps (``ru_maxrss`` would not do: it keeps
    the parent's size from before ``exec``). For tinydm also the peak of NumPy's own
    allocations, which NumPy reports to tracemalloc (the data arrays, without the interpreter and
    libraries). On a GPU: CuPy's memory pool size and PyTorch's max_memory_allocated."""
    import tracemalloc

    import cases

    framework, name = args.memory_child
    case = dict(cases.STEP_CASES[name])
    if args.batch and case["kind"] == "resnet":
        case["batch"] = args.batch
    if framework == "torch":
        import_torch(args)
    step = (cases.tinydm_step if framework == "tinydm" else cases.torch_step)(case, args.device)
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
    if framework == "tinydm":
        result["numpy_traced_peak_mib"] = traced_peak / mib
    if args.device == "cuda":
        if framework == "tinydm":
            import cupy
            result["gpu_pool_mib"] = cupy.get_default_memory_pool().total_bytes() / mib
        else:
            import torch
            result["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / mib
    print(json.dumps(result))


def _status_bytes(field):
    """A memory size from /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


# --- reporting ------------------------------------------------------------------------------------
def fmt_time(s):
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_spread(m):
    return f"{fmt_time(m['median'])} ({fmt_time(m['q1'])}-{fmt_time(m['q3'])})"


def verdict(device, part, name, ratio):
    target = TARGETS.get((device, part, name))
    if target is None or ratio is None:
        return ""
    return f"<= {target:g}: {'met' if ratio <= target else 'NOT met'}"


def timing_table(results, device, part):
    lines = ["| case | tinydm median (IQR) | PyTorch median (IQR) | ratio tinydm/PyTorch (IQR) "
             "| target |", "|---|---|---|---|---|"]
    for name, r in results.items():
        ratio = r.get("ratio")
        torch_cell = fmt_spread(r["torch"]) if "torch" in r else "-"
        ratio_cell = (f"**{ratio['median']:.2f}** ({ratio['q1']:.2f}-{ratio['q3']:.2f})"
                      if ratio else "-")
        label = f"{name} (batch {r['batch']})" if "batch" in r else name
        lines.append(f"| {label} | {fmt_spread(r['tinydm'])} | {torch_cell} | {ratio_cell} | "
                     f"{verdict(device, part, name, ratio and ratio['median'])} |")
    return "\n".join(lines)


def memory_table(results, device):
    lines = ["| case | tinydm peak (NumPy arrays) | PyTorch peak | ratio | target |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        t, p = r.get("tinydm", {}), r.get("torch", {})
        tcell = (f"{t['peak_delta_mib']:.0f} MiB ({t['numpy_traced_peak_mib']:.0f} MiB)"
                 if "peak_delta_mib" in t else str(t.get("error", "-")))
        pcell = (f"{p['peak_delta_mib']:.0f} MiB" if "peak_delta_mib" in p
                 else str(p.get("error", "-")))
        ratio = r.get("ratio")
        ratio_cell = f"**{ratio:.2f}**" if ratio else "-"
        lines.append(f"| {name} | {tcell} | {pcell} | {ratio_cell} | "
                     f"{verdict(device, 'memory', name, ratio)} |")
    return "\n".join(lines)


def _loads(values):
    return ", ".join(f"{v:.2f}" for v in values)


def markdown(report):
    m = report["machine"]
    blas = m["blas"]
    blas_text = (", ".join(f"{b['internal_api']} {b['version']} kernel {b['architecture']} "
                           f"({b['num_threads']} threads)" for b in blas)
                 if isinstance(blas, list) else blas)
    env = m["environment"]
    parts = [
        f"# tinydm benchmark, {m['date']}",
        "",
        f"- command: `{m['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; {m['platform']}"
        + (f"; GPU {m['gpu']}" if m.get("gpu") else ""),
        f"- load average (1, 5, 15 min) before: {_loads(m['load_average_before'])}; "
        f"after: {_loads(m['load_average_after'])}",
        f"- versions: Python {m['python']}, NumPy {m['numpy']}, tinydm {m['tinydm']}, "
        f"PyTorch {m['torch'] or 'not installed'}"
        + (f", CuPy {m['cupy']}" if m.get("cupy") else ""),
        f"- threads: {m['threads']} per framework (tinydm {m['tinydm_threads']}); BLAS: {blas_text}"
        + (f"; PyTorch {m['torch_threads']} threads" if m.get("torch_threads") else "")
        + f"; tinydm malloc tuning: {m['tinydm_malloc_tuning']}; scheduling: {m['scheduling']}",
        f"- environment: restarted with {', '.join(env['removed']) or 'nothing'} removed "
        f"({', '.join(f'{k}={v}' for k, v in env['removed'].items()) or 'none was set'}), "
        f"{', '.join(f'{k}={v}' for k, v in env['set'].items())}",
        f"- repeats {report['settings']['repeats']}, warm-up {report['settings']['warmup']}; "
        "times are medians with the interquartile range; the ratio is the median of the paired "
        "ratios (samples alternate between the frameworks)",
    ]
    if "steps" in report:
        parts += ["", "## Training steps", "", timing_table(report["steps"], m["device"], "step")]
    if "memory" in report:
        parts += ["", "## Peak memory of a training step", "",
                  "Peak resident memory during the steps minus the resident memory just before "
                  "them (model, data and optimiser built), each in a fresh process; in brackets "
                  "the peak of NumPy's own allocations (tracemalloc).", "",
                  memory_table(report["memory"], m["device"])]
    if "ops" in report:
        parts += ["", "## Single ops, forward + backward", "",
                  timing_table(report["ops"], m["device"], "op")]
    return "\n".join(parts) + "\n"


def main(argv=None):
    args = parse_args(argv)
    env_changes = restart_with_clean_environment(args.threads)
    sys.path.insert(0, HERE)
    if args.memory_child:
        return memory_child(args)
    torch = import_torch(args)
    report = {"machine": machine_info(args, torch, env_changes),
              "settings": {k: getattr(args, k) for k in ("repeats", "warmup", "min_sample",
                                                        "memory_steps", "batch", "quick")}}
    m = report["machine"]
    print(f"tinydm benchmark on {m['cpu']} ({m['threads']} threads), NumPy {m['numpy']}, "
          f"PyTorch {m['torch'] or 'not installed (tinydm only)'}", flush=True)
    print(f"  OpenBLAS: {m['blas']}", flush=True)
    if "steps" in args.only:
        report["steps"] = run_steps(args, torch)
    if "memory" in args.only:
        report["memory"] = run_memory(args, torch)
    if "ops" in args.only:
        report["ops"] = run_ops(args, torch)
    m["load_average_after"] = os.getloadavg()
    text = markdown(report)
    print()
    print(text)
    os.makedirs(args.out, exist_ok=True)
    tag = args.tag or f"{args.device}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    with open(os.path.join(args.out, tag + ".json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, tag + ".md"), "w") as f:
        f.write(text)
    print(f"written: {os.path.join(args.out, tag)}.json and .md")


if __name__ == "__main__":
    main()
