"""Files written atomically: a reader sees the old file or the complete new one, never half of one.

Every file tinydm writes (checkpoints, run records, feature caches, downloads) goes through
:func:`atomic_open`: the data goes to a hidden temporary file in the target's folder, is flushed
to disk, and is then renamed over the target (:func:`os.replace`, atomic on POSIX and Windows).
If the writing fails or is interrupted, the temporary file is removed and the target is left as
it was.
"""

import contextlib
import json
import os
import secrets
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: output folders are not locked
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """``with atomic_open(path, "wb") as f: ...``: write ``path`` atomically (see above). ``mode``
    is ``"w"`` (text) or ``"wb"``; the folder is created if needed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"  # open() honours the umask
    try:
        with open(tmp, mode.replace("w", "x")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1)


def probe_writable(folder):
    """Make ``folder`` (and its parents) and check that a file can be created in it, so that a
    run fails at once, not after hours of work, when its output cannot be saved. Raises
    :class:`PermissionError` (or another :class:`OSError`) naming the folder."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(folder / ".tinydm-write-probe", "wb"):
            pass
        (folder / ".tinydm-write-probe").unlink()
    except OSError as e:
        raise type(e)(e.errno, f"cannot write into the folder {folder} ({e.strerror})") from None


class FolderInUse(RuntimeError):
    """Another live process holds the lock of an output folder (:func:`lock_folder`)."""


LOCK_NAME = ".tinydm.lock"


def lock_folder(folder):
    """Take the lock of an output folder for as long as this process lives (or until the
    returned file is closed): ``folder/.tinydm.lock``, locked with ``flock`` and holding the
    holder's pid and host.

    The kernel drops an ``flock`` when its process ends, however it ends, so a crash or a
    ``kill -9`` leaves no stale lock: the file may stay, but nobody holds it. Forked children
    share the lock (a run's worker processes). Raises :class:`FolderInUse` naming the live
    holder. Where ``fcntl`` does not exist (Windows) the folder is not locked (returns None)."""
    folder = Path(folder).expanduser()
    probe_writable(folder)
    if fcntl is None:  # pragma: no cover
        return None
    path = folder / LOCK_NAME
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise FolderInUse(f"{folder} is in use by another live process ({holder}); wait for it "
                          f"to end or choose another output folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
    handle.flush()
    return handle


def lock_holder(folder):
    """Who holds the lock of :func:`lock_folder` on ``folder`` now: the holder's line ("pid ...
    on host ...") while a live process holds it, else None. Only looks: the lock is tried in
    shared mode and let go at once, and the lock file is neither created nor written."""
    path = Path(folder).expanduser() / LOCK_NAME
    if fcntl is None or not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
