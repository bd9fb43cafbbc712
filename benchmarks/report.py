"""The benchmark's report: markdown tables of a run's JSON results, and the targets they are
judged against."""

import os

from child import PROBE_INTERVAL, WARMUP_SECONDS

# Targets: ratios tinydm / PyTorch, at most (None: at any thread count); the GEMM share of
# tinydm's step, at least.
TARGETS = {
    ("cpu", "step", "resnet20", None): 1.4,
    ("cpu", "step", "resnet56", None): 1.4,
    ("cpu", "step", "mlp_imdb", 1): 0.8,
    ("cpu", "inference", "resnet20", None): 1.5,
    ("cpu", "inference", "resnet56", None): 1.5,
    ("cpu", "memory", "resnet56", None): 2.0,
    ("cpu", "profile", "resnet20", None): 0.7,
    ("cpu", "profile", "resnet56", None): 0.7,
    ("cuda", "step", "resnet56", None): 2.0,   # at least half of PyTorch CUDA's throughput
}


def blas_kernels(blas):
    """'openblas 0.3.31 SkylakeX' for each BLAS library a child reported."""
    if not isinstance(blas, list):
        return blas
    return ", ".join(f"{lib['internal_api']} {lib['version']} {lib['architecture'] or ''}".strip()
                     for lib in blas if lib["user_api"] == "blas") or "none found"


def fmt_time(s):
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_spread(m, fmt=fmt_time):
    return f"{fmt(m['median'])} ({fmt(m['q1'])}-{fmt(m['q3'])})"


def fmt_ratio(m):
    return f"**{m['median']:.2f}** ({m['q1']:.2f}-{m['q3']:.2f})"


def verdict(device, part, name, threads, value):
    target = TARGETS.get((device, part, name, threads), TARGETS.get((device, part, name, None)))
    if target is None or value is None:
        return ""
    if part == "profile":  # a share: at least the target
        return f">= {target:.0%}: {'met' if value >= target else 'NOT met'}"
    return f"<= {target:g}: {'met' if value <= target else 'NOT met'}"


def _per_threads(results):
    """(case, threads, result) of a part's {case: {threads: result}}."""
    return [(name, threads, r) for name, per_threads in results.items()
            for threads, r in per_threads.items()]


def _table(header, rows):
    """A markdown table: the header's cells, then each row's."""
    lines = [header, ["---"] * len(header)] + rows
    return "\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in lines)


def _paired_table(results, device, part, what, fmt=fmt_time):
    """Steps or inference: each framework's median (IQR) in ``fmt``, the ratio and its target."""
    return _table(["case", "threads", f"tinydm {what} (IQR)", f"PyTorch {what} (IQR)",
                   "ratio of times tinydm/PyTorch (IQR)", "target"],
                  [[f"{name} (batch {r['batch']})", threads, fmt_spread(r["tinydm"], fmt),
                    fmt_spread(r["torch"], fmt) if "torch" in r else "-",
                    fmt_ratio(r["ratio"]) if "ratio" in r else "-",
                    verdict(device, part, name, int(threads),
                            r["ratio"]["median"] if "ratio" in r else None)]
                   for name, threads, r in _per_threads(results)])


def steps_table(results, device):
    return _paired_table(results, device, "step", "median")


def inference_table(results, device):
    return _paired_table(results, device, "inference", "images/s", lambda v: f"{v:.0f}")


def profile_table(results, device):
    def share(value):
        return f"{value:.0%}"
    return _table(["case", "threads", "step", "in matrix products (all threads)",
                   "GEMM share (range)", "target"],
                  [[name, threads, fmt_time(r["step_seconds"]["median"]),
                    fmt_time(r["gemm_seconds"]["median"]),
                    f"**{share(r['gemm_share']['median'])}** ({share(r['gemm_share']['min'])}-"
                    f"{share(r['gemm_share']['max'])})",
                    verdict(device, "profile", name, int(threads), r["gemm_share"]["median"])]
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


def fmt_loads(values):
    return ", ".join(f"{v:.2f}" for v in values)


def markdown(report):
    m, s = report["machine"], report["settings"]
    children = report["children"]
    versions = [f"Python {m['python']}", f"NumPy {children['tinydm']['numpy']}",
                f"tinydm {children['tinydm']['tinydm']}",
                f"PyTorch {children['torch']['torch']}" if "torch" in children
                else "PyTorch not installed (tinydm alone)"]
    versions += [f"CuPy {children['tinydm']['cupy']}"] if "cupy" in children["tinydm"] else []
    blas = f"tinydm: {blas_kernels(children['tinydm']['blas'])}"
    if "torch" in children:
        t = children["torch"]
        blas += (f"; PyTorch: {t['torch_blas']} inside libtorch, oneDNN "
                 f"{'on' if t['torch_mkldnn'] else 'off'}, {t['torch_threads']} threads "
                 f"(its process's NumPy: {blas_kernels(t['blas'])})")
    removed = m["environment_removed"]
    parts = [
        f"# tinydm benchmark, {m['date']}",
        "",
        f"- command: `{m['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; {m['platform']}"
        + (f"; GPU {children['tinydm']['gpu']}" if "gpu" in children["tinydm"] else ""),
        f"- load average (1, 5, 15 min) before: {fmt_loads(m['load_average_before'])}; "
        f"after: {fmt_loads(m['load_average_after'])}; scheduling: {m['scheduling']}",
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
    sections = [  # (part, title, what it shows, its table)
        ("inference", "Inference",
         "A ResNet's forward pass in eval mode under no_grad (tinydm) or torch.no_grad(), paired "
         "rounds as for the steps; the ratio is of times per batch (below 1: tinydm is faster).",
         lambda r: inference_table(r, m["device"])),
        ("profile", "Where tinydm's step goes: the GEMM share",
         "The cores' time inside numpy.matmul (every matrix product of conv2d and linear, timed "
         "on the thread that runs it) over threads x step time, tinydm alone, a fresh process "
         "per sample (the median and range of up to 3).",
         lambda r: profile_table(r, m["device"])),
        ("concurrent", "Concurrent runs",
         "N one-thread runs of a framework started together (their timed windows begin at the "
         "same moment), their images per second in total, beside one N-thread run in the same "
         "round.", concurrent_table),
        ("memory", "Peak memory of a training step",
         "Peak resident memory during the steps minus the resident memory just before them "
         "(model, data and optimiser built), each in a fresh process; in brackets the peak of "
         "NumPy's own allocations (tracemalloc), which for tinydm counts only what its memory "
         "pool had to allocate during the steps.",
         lambda r: memory_table(r, m["device"])),
    ]
    for part, title, text, table in sections:
        if part in report:
            parts += ["", f"## {title}", "", text, "", table(report[part])]
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
