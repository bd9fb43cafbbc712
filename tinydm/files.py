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
from pathlib import Path


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
