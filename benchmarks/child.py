"""A benchmark child: one framework, one sample, in a fresh process (``run.py --child``); and
how the parent watches a child's OS threads through /proc."""

import json
import os
import re
import statistics
import sys
import time

STRIPPED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # forced kernel choices, removed
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TINYDM_NUM_THREADS")
WARMUP_SECONDS = 0.5  # a child warms up for --warmup steps and this long (or its window)
PROBE_INTERVAL = 0.005  # seconds between two looks at /proc/PID/task


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


def main(args):
    import numpy  # noqa: F401  (loads OpenBLAS before threadpoolctl looks for it)
    torch = import_torch(args) if args.framework == "torch" else None
    import cases
    make = {"tinydm": {"step": cases.tinydm_step, "inference": cases.tinydm_inference,
                       "op": cases.tinydm_op},
            "torch": {"step": cases.torch_step, "inference": cases.torch_inference,
                      "op": cases.torch_op}}[args.framework]
    sync = make_sync(args.framework, args.device)
    if args.child == "memory":
        result = memory_sample(make["step"](step_case(args, args.case), args.device), args)
    elif args.child in ("step", "inference", "profile"):
        case = step_case(args, args.case)
        step = make["inference" if args.child == "inference" else "step"](case, args.device)
        timer = gemm_timer() if args.child == "profile" else None
        warm_up(step, args.warmup, min(WARMUP_SECONDS, args.sample_seconds))
        if args.child != "profile":
            wait_for_go()
        spent = timer() if timer else 0.0
        seconds, steps = time_window(step, sync, args.sample_seconds, args.min_steps)
        result = {"step_seconds": seconds, "steps": steps, "batch": case["batch"],
                  "images_per_second": case["batch"] / seconds}
        if timer:
            result["gemm_seconds"] = (timer() - spent) / steps
            result["gemm_share"] = result["gemm_seconds"] / (seconds * args.threads[0])
    else:
        result = {}
        for name, (kind, params) in selected_ops(args).items():
            fn = make["op"](kind, params, args.device)
            if fn is not None:  # None: PyTorch has no such op
                warm_up(fn, args.warmup, min(WARMUP_SECONDS, args.op_seconds))
                result[name] = time_window(fn, sync, args.op_seconds, 1)[0]
        result = {"op_seconds": result}
    print(json.dumps({"result": result, "info": child_info(args, torch)}), flush=True)


def gemm_timer():
    """Time every ``numpy.matmul`` call from now on (tinydm's ops make their matrix products
    through ``xp.matmul``), on whichever thread makes it; returns ``spent()``, the seconds so
    far summed over the threads: the cores' time in matrix products."""
    import collections

    import numpy as np
    durations = collections.deque()  # appends are atomic: worker threads add theirs
    matmul = np.matmul

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return matmul(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)
    np.matmul = timed
    return lambda: sum(durations)


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


# --- watching a child's threads ----------------------------------------------------------------
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
