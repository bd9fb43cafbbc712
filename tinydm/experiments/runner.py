"""What every experiment shares: settings that validate themselves, seed streams, a model built on
the host, one record format, one atomic writer, the machine's description, and the safety of a
run's output folder and process (:func:`claim_output`, :func:`stop_on_signals`,
:func:`die_with_parent`, command-line number types; docs/reliability.md).

An experiment (:mod:`tinydm.experiments.imdb`, :mod:`tinydm.experiments.cifar`) is a package
with

* a settings class (a frozen dataclass deriving from :class:`Settings`): everything that
  determines a run, checked when it is made, ``Settings.from_dict(d)`` for a plain dict (a
  sweep's cell, a record's ``config``), ``as_dict()`` back;
* ``run_one(settings, ...)``: one run, its record returned and written to a file;
* readers and writers of its tables and figures, from records only.

The record of a run (:func:`make_record`), one JSON file per run::

    {"format": "tinydm-run-1", "experiment": "imdb" | "cifar",
     "status": "running" | "done" | "diverged" (non-finite loss or weights: summary.diverged_by),
     "config":  the settings (Settings.as_dict()),
     "data":    what the run trained and was evaluated on (sizes, realised noise, ...),
     "summary": test_accuracy_best, test_accuracy_best_iteration, test_accuracy_final, ...,
     "timing":  wall_seconds, eval_seconds, step_ms, iterations_done,
     "machine": platform, processor, cpus, device, python, numpy, tinydm,
     "history": steps (logged training steps), evals (evaluations), warnings, wall_time}
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import math
import os
import platform
import signal
import sys
import threading
import time

import numpy as np

import tinydm
from .. import backend, nn
from ..files import FolderInUse, lock_folder, probe_writable, write_json
from ..train import loss_schedule

RECORD_FORMAT = "tinydm-run-1"
STATUSES = ("running", "done", "diverged")
SETTINGS_FILE = ".tinydm.settings"  # an output folder's settings, JSON (claim_output)


# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------
class Settings:
    """Base of the experiments' settings classes (frozen dataclasses): checks run at creation
    (:meth:`validate`, called by ``__post_init__``), a name for messages (:attr:`KIND`), and
    conversion from and to plain dicts (tuples become lists in JSON)."""

    KIND = "settings"

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the field at fault; subclasses extend it."""

    # the checks subclasses use
    def _fail(self, name, wanted):
        raise ValueError(f"{self.KIND}: {name} must be {wanted}, got {getattr(self, name)!r}")

    def check_choice(self, name, options):
        if getattr(self, name) not in options:
            self._fail(name, f"one of {tuple(options)}")

    def check_int(self, name, minimum=1, allow_none=False):
        value = getattr(self, name)
        if allow_none and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._fail(name, f"an integer >= {minimum}")

    def check_number(self, name, low=-math.inf, high=math.inf, low_open=False):
        value = getattr(self, name)
        ok = (not isinstance(value, bool) and isinstance(value, (int, float))
              and math.isfinite(value) and (value > low if low_open else value >= low)
              and value <= high)
        if not ok:
            self._fail(name, f"a finite number in {'(' if low_open else '['}{low}, {high}]")

    def check_loss(self, name, params):
        """A clear error now for a bad loss name or parameter (schedule parameters included)."""
        try:
            loss_schedule(name, **params)
        except ValueError as e:
            raise ValueError(f"{self.KIND}: {e}") from None

    def check_device(self, name):
        backend.check_device(getattr(self, name))

    @classmethod
    def defaults(cls):
        """``{field: default}`` of the fields that have one (command lines take theirs here)."""
        found = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                found[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                found[f.name] = f.default_factory()
        return found

    @classmethod
    def from_dict(cls, d):
        """Settings from a plain dict (lists where the class has tuples are fine): unknown keys
        are an error that names them."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"{cls.KIND}: unknown setting(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(fields))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def as_dict(self):
        """JSON-ready (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------------
# Randomness and the model
# ----------------------------------------------------------------------------------------------
def seed_stream(seed, *keys):
    """An independent NumPy generator for one purpose of a run's ``seed``: ``keys`` (small
    integers, e.g. ``(0,)`` for the label noise, ``(1, epoch)`` for an epoch's order) are the
    ``spawn_key`` of ``SeedSequence(seed)``, so different keys give independent draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=keys))


def build_on_host(seed, device, make):
    """``make()`` (a Module) initialised on the host from ``seed`` (``tinydm.manual_seed``) and
    then moved to ``device``: every device starts from the same weights, so the runs of two
    devices differ only by rounding."""
    tinydm.manual_seed(seed)
    with backend.device("cpu"):
        model = make()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_on_host: make() must return an nn.Module, got {type(model)}")
    return model.to(device)


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------
def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device):
    """The machine a run ran on, for its record."""
    return {"platform": platform.platform(), "processor": _cpu_name(), "cpus": os.cpu_count(),
            "device": device, "python": platform.python_version(), "numpy": np.__version__,
            "tinydm": tinydm.__version__}


def accuracy_summary(evals):
    """Best and final test accuracy over the evaluations (Tables 1 and 9 report both)."""
    if not evals:
        return {}
    final, best = evals[-1], max(evals, key=lambda e: e["test_accuracy"])
    return {"test_accuracy_best": best["test_accuracy"],
            "test_accuracy_best_iteration": best["iteration"],
            "test_accuracy_final": final["test_accuracy"]}


def timing(history, iterations_done):
    """Wall time, the part of it spent evaluating (the evaluations' ``eval_seconds``) and the
    training time per iteration."""
    eval_seconds = sum(e.get("eval_seconds", 0.0) for e in history.evals)
    train_seconds = history.wall_time - eval_seconds
    return {"wall_seconds": history.wall_time, "eval_seconds": eval_seconds,
            "step_ms": 1000 * train_seconds / iterations_done if iterations_done else None,
            "iterations_done": iterations_done}


def make_record(experiment, status, settings, data, summary, history, iterations_done,
                **extra):
    """The record of a run (see the module docstring); ``extra`` adds top-level entries."""
    if status not in STATUSES:
        raise ValueError(f"make_record: status must be one of {STATUSES}, got {status!r}")
    return {"format": RECORD_FORMAT, "experiment": experiment, "status": status,
            "config": settings.as_dict(), "data": data, "summary": summary,
            "timing": timing(history, iterations_done), "machine": machine_info(settings.device),
            "history": history.to_dict(), **extra}


def write_record(path, record):
    """Write a record atomically (tinydm/files.py)."""
    write_json(path, record)


def read_record(path, experiment=None):
    """A record from ``path``; ValueError naming the file if it is not a record of this format
    (or not of ``experiment``)."""
    with open(path) as f:
        try:
            record = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path}: not a JSON run record ({e})") from None
    found = record.get("format") if isinstance(record, dict) else None
    if found != RECORD_FORMAT:
        raise ValueError(f"{path}: record format {found!r}, expected {RECORD_FORMAT!r}")
    if experiment is not None and record.get("experiment") != experiment:
        raise ValueError(f"{path}: a record of experiment {record.get('experiment')!r}, "
                         f"expected {experiment!r}")
    return record


def evals_of(record):
    """The evaluations of a record, in order."""
    return record["history"]["evals"]


def steps_of(record):
    """The logged training steps of a record, in order."""
    return record["history"]["steps"]


def outcome(record):
    """What a run computed, without its timings: ``{config, data, summary, steps, evals}`` with
    the evaluations' ``eval_seconds`` left out. Two runs that computed the same thing (another
    device of the same arithmetic, a resumed run, a pool worker) have equal outcomes."""
    return {"config": record["config"], "data": record["data"], "summary": record["summary"],
            "steps": steps_of(record),
            "evals": [{k: v for k, v in e.items() if k != "eval_seconds"}
                      for e in evals_of(record)]}


def mean_std(values):
    """Mean and sample standard deviation (ddof = 1; 0 for a single value) of several runs'
    numbers (seeds): what every experiment's tables report."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


# ----------------------------------------------------------------------------------------------
# The output folder and the process of a run (docs/reliability.md)
# ----------------------------------------------------------------------------------------------
_CLAIMED: dict = {}  # folder -> the open, locked lock file: held until released or the process ends


def claim_output(folder, settings, overwrite=False, what="run"):
    """Make ``folder`` this process's output folder, before any expensive work:

    * check that it can be written (:func:`tinydm.files.probe_writable`);
    * lock it for as long as this process lives (:func:`tinydm.files.lock_folder`; the kernel
      drops the lock when the process dies, so a crash leaves nothing stale):
      :class:`tinydm.files.FolderInUse` if another live process holds it;
    * compare ``settings`` (a JSON-able dict: the settings every result in the folder shares)
      with those of ``folder/.tinydm.settings`` (JSON): a ValueError naming the differences if they
      differ, unless ``overwrite``; then write them.

    Calling it again for a folder this process holds adds or checks more settings (e.g. a
    fingerprint known only after the data are loaded)."""
    key = os.path.realpath(os.path.expanduser(str(folder)))
    if key not in _CLAIMED:
        _CLAIMED[key] = lock_folder(key)
    else:
        probe_writable(key)
    path = os.path.join(key, SETTINGS_FILE)
    saved = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path}: unreadable settings file ({e}); remove it or pass "
                             f"--overwrite") from None
    settings = json.loads(json.dumps(settings))  # as JSON will give them back (tuples: lists)
    differ = sorted(k for k in settings if k in saved and saved[k] != settings[k])
    if differ and not overwrite:
        raise ValueError(f"{folder} holds the results of a {what} with other settings ("
                         + "; ".join(f"{k}: {saved[k]!r} there, {settings[k]!r} now"
                                     for k in differ)
                         + "); choose another output folder, or overwrite them (--overwrite)")
    write_json(path, {**saved, **settings})


def release_output(folder):
    """Unlock a folder of :func:`claim_output` before the process ends."""
    handle = _CLAIMED.pop(os.path.realpath(os.path.expanduser(str(folder))), None)
    if handle is not None:
        handle.close()


@contextlib.contextmanager
def output_folder(folder, settings, overwrite=False, what="run"):
    """:func:`claim_output` for the length of a ``with`` block (one run, one table), released
    at its end however it ends, so that a process running many (a notebook, a sweep's worker,
    the tests) holds only the folder it is working in. A folder this process held already
    stays held: the outer claim releases it."""
    held = os.path.realpath(os.path.expanduser(str(folder))) in _CLAIMED
    try:
        claim_output(folder, settings, overwrite, what)  # refused (other settings): unlocked too
        yield
    finally:
        if not held:
            release_output(folder)


def run_command(work, interrupted, errors=()):
    """A command line's ``work()``, with SIGTERM taken as Ctrl-C (:func:`stop_on_signals`), the
    errors of bad input, folders or data (ValueError, OSError, FolderInUse and ``errors``)
    shown as one line, ``error: ...`` (exit status 1), instead of a traceback, and an
    interruption as the line ``interrupted`` (status 130). Returns what ``work`` returns."""
    stop_on_signals()
    try:
        return work()
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, OSError, FolderInUse, *errors) as e:
        raise SystemExit(f"error: {e}") from None


def stop_on_signals():
    """Make SIGTERM (``kill``, a batch system's stop) end the program as Ctrl-C does, by a
    KeyboardInterrupt in the main thread: the command lines catch it, keep what is saved
    (every file is written atomically) and exit with a one-line message and status 130."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, interrupt)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid, poll_seconds=1.0):
    """Called first in a worker process: end it when ``parent_pid`` ends, however it ends
    (even ``kill -9``), so no worker goes on training, or waits for work, as an orphan.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``);
    everywhere a daemon thread also checks every ``poll_seconds`` that the parent is still the
    same process and exits otherwise. The worker ignores Ctrl-C: the terminal sends it to the
    whole process group, and the parent stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl: nobody would send it
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="tinydm-parent-watch").start()


def finite_float(text):
    """argparse type: a finite number (``nan`` and ``inf`` are refused with a clear message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def join_negative_numbers(argv):
    """argparse takes ``-1e4`` after an option for another option (it knows only ``-1`` and
    ``-0.5`` as numbers), so ``--beta -1e4`` fails; joined as ``--beta=-1e4`` it parses. Apply
    to ``sys.argv[1:]`` before ``parse_args``."""
    out = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and arg.startswith("-"):
            try:
                float(arg)
            except ValueError:
                pass
            else:
                out[-1] = f"{out[-1]}={arg}"
                continue
        out.append(arg)
    return out
