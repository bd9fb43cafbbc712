"""Fetch, verify and unpack data set archives without ever trusting a half-finished file.

Every step that writes is atomic: a download goes to a temporary file beside its destination and
is renamed into place only after its md5 matches; an archive is unpacked into a temporary sibling
folder that is renamed into place only once extraction has finished. A killed process can
therefore leave hidden ``.*.part`` files or ``.*.extract-*`` folders behind, but never a file or
folder under the final name, and those leftovers are never read.

Where the data lives (:func:`data_dir`): the ``data_dir`` argument of a loader, else the
environment variable ``TINYDM_DATA``, else ``~/.cache/tinydm``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..files import atomic_open

ENV_VAR = "TINYDM_DATA"
_CHUNK = 1 << 20
_MD5_PATTERN = re.compile(r"[0-9a-f]{32}")


class DataError(RuntimeError):
    """A data set is missing, cannot be obtained, or is not laid out as expected."""


class ChecksumError(DataError):
    """A file's md5 does not match the published checksum."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the folder that holds the data sets.

    Resolution order: ``explicit`` if given, else the environment variable ``TINYDM_DATA`` if set
    and non-empty, else ``~/.cache/tinydm``. The folder is not created here. ``~`` is expanded.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tinydm"


def md5sum(path: str | os.PathLike) -> str:
    """Return the hexadecimal md5 digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(md5: str) -> str:
    if not isinstance(md5, str) or not _MD5_PATTERN.fullmatch(md5.lower()):
        raise ValueError(f"md5 must be a 32-digit hexadecimal string, got {md5!r}")
    return md5.lower()


def download(url: str, dest_path: str | os.PathLike, md5: str, progress: bool = True) -> Path:
    """Download ``url`` to ``dest_path`` and verify its md5; return ``dest_path`` as a Path.

    The bytes are streamed into a temporary file in the destination folder (hashed on the way)
    and moved to ``dest_path`` with :func:`os.replace` only if the digest equals ``md5``, so
    ``dest_path`` either does not exist or holds the verified file. On a checksum mismatch the
    temporary file is deleted and :class:`ChecksumError` is raised; on any other failure
    (network, disk, interruption) the temporary file is deleted and the exception propagates.
    Any URL scheme urllib understands works, ``file://`` included. ``progress`` shows a tqdm bar.
    """
    md5 = _check_md5(md5)
    dest = Path(dest_path)
    digest = hashlib.md5()
    with atomic_open(dest, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=dest.name, disable=not progress) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        got = digest.hexdigest()
        if got != md5:  # raised inside atomic_open: the download is discarded
            raise ChecksumError(
                f"the file downloaded from {url} has md5 {got}, expected {md5}; it was discarded "
                f"(a corrupted or changed download). Try again, or fetch it by hand and put it "
                f"at {dest}")
    return dest


def extract_tar(archive: str | os.PathLike, dest_dir: str | os.PathLike, expected_top: str) -> Path:
    """Unpack the tar ``archive`` so that ``dest_dir/expected_top`` appears all at once.

    The archive (any compression tarfile reads) is extracted into a hidden temporary folder inside
    ``dest_dir`` with tarfile's ``"data"`` filter (no absolute paths, no escaping links, no device
    files); ``expected_top`` must be a folder at the archive's top level, and it is then renamed to
    ``dest_dir/expected_top``. If extraction fails or is interrupted the temporary folder is
    removed, and ``dest_dir/expected_top`` is never created half-filled. Raises
    :class:`DataError` if ``expected_top`` already exists or the archive does not contain it.
    """
    if not hasattr(tarfile, "data_filter"):
        raise DataError("safe tar extraction needs Python >= 3.10.12 (tarfile's 'data' filter)")
    archive, dest_dir = Path(archive), Path(dest_dir)
    target = dest_dir / expected_top
    if target.exists():
        raise DataError(f"cannot extract {archive}: {target} already exists")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{expected_top}.extract-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        top = tmp / expected_top
        if not top.is_dir():
            found = sorted(p.name for p in tmp.iterdir())
            raise DataError(f"{archive} does not contain the folder {expected_top!r} at its top "
                            f"level (found {found})")
        os.replace(top, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_dataset(name: str, url: str, md5: str, folder_name: str,
                   root: str | os.PathLike | None = None, allow_download: bool = True,
                   progress: bool = True) -> Path:
    """Return ``root/folder_name``, obtaining it from the archive at ``url`` if needed.

    ``root`` is resolved by :func:`data_dir`. In order:

    1. if the folder ``root/folder_name`` exists it is used as is (no network, no checksum): an
       unpacked copy, the project's own extraction or the user's, is trusted;
    2. else if the archive (``root/`` + the URL's file name) exists, its md5 is checked; a
       mismatch (a partial or corrupted copy) raises :class:`ChecksumError` saying to delete it,
       and the archive is never extracted; a good archive is extracted with :func:`extract_tar`;
    3. else the archive is downloaded with :func:`download` (if ``allow_download``) and extracted.
       If the download cannot be made (offline machine, server down) a :class:`DataError` names
       the URL and the exact path where to put the archive by hand.

    ``name`` is the data set's human name, used in messages.
    """
    md5 = _check_md5(md5)
    root = data_dir(root)
    folder = root / folder_name
    if folder.is_dir():
        return folder
    archive = root / Path(urllib.parse.urlparse(url).path).name
    if archive.exists():
        got = md5sum(archive)
        if got != md5:
            raise ChecksumError(
                f"{name}: the archive {archive} is corrupt or incomplete (md5 {got}, expected "
                f"{md5}); delete it and run again to download it afresh from {url}, or replace it "
                f"with a complete copy")
    elif not allow_download:
        raise DataError(
            f"{name} not found: neither the folder {folder} nor the archive {archive} exists, and "
            f"downloading is switched off. Download {url} and put it at {archive}, or pass "
            f"download=True")
    else:
        try:
            download(url, archive, md5, progress=progress)
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            raise DataError(
                f"{name}: could not download {url} ({e}). If this machine is offline, download "
                f"that file elsewhere and put it at {archive} (md5 {md5}), or put the unpacked "
                f"folder at {folder}; set {ENV_VAR} or pass data_dir= to use another folder"
            ) from e
    return extract_tar(archive, root, folder_name)
