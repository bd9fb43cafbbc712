"""Checkpoints: a model, its optimiser, its schedule and any JSON-able facts in one ``.npz`` file.

``save(path, model, optimizer=None, scheduler=None, extra=None)`` writes, atomically
(tinydm/files.py: an interrupted save never leaves a half-written checkpoint), a NumPy ``.npz``
archive holding

* ``model/<name>``: every parameter and buffer, by its state-dict name (PyTorch's names);
* ``optimizer/<i>/<key>``: the state arrays of parameter ``i`` (momentum buffer, Adam moments);
* ``__meta__``: one JSON string with the optimiser's type, hyperparameters and counters (Adam's
  step counts), the schedule's state, ``extra`` (e.g. the iteration, RNG states, the config)
  and ``threads``: tinydm's and BLAS's thread counts and the BLAS kernel
  (:func:`tinydm.backend.thread_settings`), on which the exact result of a CPU run depends.

Arrays are stored on the host, so a checkpoint saved on one device loads on any other:
``load(path, model, optimizer=None, scheduler=None)`` copies everything onto the devices where
the model's parameters now live and returns ``extra``; with ``restore_threads=True`` (resuming a
run) it also sets the saved thread counts, and warns when the BLAS library or kernel differs
(the resumed run will then not end exactly as an uninterrupted one). It reads without pickle,
so a checkpoint is plain data, and a corrupt or truncated file is a ValueError naming it.
Resuming a run::

    checkpoint.save("run.npz", model, opt, sched, extra={"iteration": it, "seed": 123})
    ...
    extra = checkpoint.load("run.npz", model, opt, sched)   # model and opt built as before

Host file I/O is the one reason this module uses NumPy directly.
"""

import json
import warnings
import zipfile

import numpy as np
from typing import Any

from . import backend
from .files import atomic_open

FORMAT = "tinydm-checkpoint-1"


def save(path, model, optimizer=None, scheduler=None, extra=None):
    """Write model (and optimiser, schedule, ``extra``) state to ``path`` atomically."""
    arrays = {f"model/{name}": backend.to_numpy(t.data) for name, t in model.state_dict().items()}
    meta = {"format": FORMAT, "extra": {} if extra is None else extra,
            "threads": backend.thread_settings()}
    if optimizer is not None:
        state = optimizer.state_dict()
        counters: list[Any] = []
        for i, param_state in enumerate(state["state"]):
            counters.append({})
            for key, value in param_state.items():
                if backend.is_array(value):
                    arrays[f"optimizer/{i}/{key}"] = backend.to_numpy(value)
                else:
                    counters[i][key] = value
        meta["optimizer"] = {"type": state["type"], "hyperparameters": state["hyperparameters"],
                             "counters": counters}
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    try:
        arrays["__meta__"] = np.array(json.dumps(meta))
    except TypeError as e:
        raise TypeError(f"checkpoint.save: extra must be JSON-serialisable ({e})") from None

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def read(path):
    """The raw content of a checkpoint, on the host: ``{"model": {name: array}, "optimizer":
    state dict or None, "scheduler": state dict or None, "extra": dict, "threads": dict or
    None}``."""
    try:
        return _read(path)
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        if str(e).startswith("checkpoint:"):
            raise
        # NumPy's message for an entry it cannot read suggests allow_pickle=True: never for a
        # file that is meant to be plain data
        reason = "it holds Python objects" if "pickle" in str(e) else str(e) or type(e).__name__
        raise ValueError(f"checkpoint: {path} is corrupt or not a tinydm checkpoint ({reason}); "
                         f"delete it to start the run again") from None


def _read(path):
    with np.load(path, allow_pickle=False) as archive:
        if "__meta__" not in archive.files:
            raise ValueError(f"checkpoint: {path} is not a tinydm checkpoint (no __meta__ entry)")
        meta = json.loads(str(archive["__meta__"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"checkpoint: {path} has format {meta.get('format')!r}, "
                             f"expected {FORMAT!r}")
        model = {k[len("model/"):]: archive[k] for k in archive.files if k.startswith("model/")}
        optimizer = meta.get("optimizer")
        if optimizer is not None:
            states = [dict(c) for c in optimizer["counters"]]
            for k in archive.files:
                if k.startswith("optimizer/"):
                    _, i, key = k.split("/", 2)
                    states[int(i)][key] = archive[k]
            optimizer = {"type": optimizer["type"], "hyperparameters": optimizer["hyperparameters"],
                         "state": states}
    return {"model": model, "optimizer": optimizer, "scheduler": meta.get("scheduler"),
            "extra": meta["extra"], "threads": meta.get("threads")}


def load(path, model, optimizer=None, scheduler=None, strict=True, restore_threads=False):
    """Load a checkpoint into ``model`` (and ``optimizer``, ``scheduler``) on their devices;
    returns ``extra``. ``strict`` is passed to :meth:`Module.load_state_dict`.
    ``restore_threads``: use the saved thread counts (see the module docstring)."""
    content = read(path)
    if restore_threads:
        saved = content["threads"]
        problems = (["it does not record them (an older checkpoint)"] if saved is None
                    else backend.restore_thread_settings(saved))
        for problem in problems:
            warnings.warn(f"checkpoint {path}: the resumed run will not end exactly as an "
                          f"uninterrupted one: {problem}", RuntimeWarning, stacklevel=2)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None and content[name] is None:
            raise ValueError(f"checkpoint.load: {path} holds no {name} state")
    model.load_state_dict(content["model"], strict=strict)
    if optimizer is not None:
        optimizer.load_state_dict(content["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(content["scheduler"])
    return content["extra"]
