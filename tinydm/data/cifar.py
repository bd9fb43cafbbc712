"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches.

    cifar = load_cifar10()                       # ~/.cache/tinydm/cifar-10-batches-py
    cifar.train_images.shape, cifar.train_labels # (50000, 3, 32, 32) uint8, (50000,) int64

Images are returned as stored, uint8 NCHW; augmentation and normalisation are the training
code's business. The pickles are read with an unpickler that only accepts the few NumPy and
builtin objects the official files contain, so a tampered file cannot run code.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import download as dl

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
CIFAR100_FOLDER = "cifar-100-python"

_IMAGE_SHAPE = (3, 32, 32)
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


@dataclass(frozen=True)
class CifarData:
    """A CIFAR training and test set.

    Attributes:
        train_images, test_images: uint8 arrays (N, 3, 32, 32), channels R, G, B.
        train_labels, test_labels: int64 class indices (the fine labels for CIFAR-100).
        classes: class names, indexed by label.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Cifar100Data(CifarData):
    """CIFAR-100: :class:`CifarData` with fine labels, plus the 20 superclasses.

    Attributes:
        train_coarse_labels, test_coarse_labels: int64 superclass of each image.
        coarse_classes: superclass names, indexed by coarse label.
    """

    train_coarse_labels: np.ndarray
    test_coarse_labels: np.ndarray
    coarse_classes: tuple[str, ...]


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """Read one official batch file; keys are returned as str (they are bytes in the files)."""
    if not path.is_file():
        raise dl.DataError(f"missing file {path}: the folder {path.parent} does not have the "
                           f"layout of the official CIFAR python archive")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise dl.DataError(f"{path} is not a readable CIFAR batch file ({e}); delete the folder "
                           f"{path.parent} and extract the archive again") from e
    if not isinstance(obj, dict):
        raise dl.DataError(f"{path} is not a CIFAR batch file (it holds a {type(obj).__name__}, "
                           f"not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(batch: dict, key: str, path: Path):
    if key not in batch:
        raise dl.DataError(f"{path} has no {key!r} entry (it has {sorted(batch)})")
    return batch[key]


def _images(batch: dict, path: Path) -> np.ndarray:
    data = np.asarray(_field(batch, "data", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != np.prod(_IMAGE_SHAPE):
        raise dl.DataError(f"{path}: 'data' must be a uint8 array (N, 3072), got {data.dtype} "
                           f"{data.shape}")
    return data.reshape(-1, *_IMAGE_SHAPE)


def _labels(batch: dict, key: str, num_classes: int, count: int, path: Path) -> np.ndarray:
    labels = np.asarray(_field(batch, key, path), dtype=np.int64)
    if labels.shape != (count,):
        raise dl.DataError(f"{path}: {key!r} must hold one label per image ({count}), got shape "
                           f"{labels.shape}")
    if labels.size and not (0 <= labels.min() and labels.max() < num_classes):
        raise dl.DataError(f"{path}: {key!r} has values outside [0, {num_classes})")
    return labels


def _names(meta: dict, key: str, count: int, path: Path) -> tuple[str, ...]:
    names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n)
                  for n in _field(meta, key, path))
    if len(names) != count:
        raise dl.DataError(f"{path}: {key!r} must list {count} names, got {len(names)}")
    return names


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> CifarData:
    """Load CIFAR-10 from ``<data_dir>/cifar-10-batches-py`` (``data_batch_1`` .. ``_5``,
    ``test_batch``, ``batches.meta``), downloading and extracting the official archive
    (md5-verified) if the folder is missing; see :func:`tinydm.data.download.ensure_dataset`
    for how ``data_dir`` is resolved. Training images are in the official order (batch 1 first).
    """
    root = dl.ensure_dataset("CIFAR-10", CIFAR10_URL, CIFAR10_MD5, CIFAR10_FOLDER,
                             root=data_dir, allow_download=download)
    meta_path = root / "batches.meta"
    classes = _names(_unpickle(meta_path), "label_names", 10, meta_path)

    def split(names):
        images, labels = [], []
        for name in names:
            path = root / name
            batch = _unpickle(path)
            images.append(_images(batch, path))
            labels.append(_labels(batch, "labels", 10, len(images[-1]), path))
        return np.concatenate(images), np.concatenate(labels)

    train_images, train_labels = split([f"data_batch_{i}" for i in range(1, 6)])
    test_images, test_labels = split(["test_batch"])
    return CifarData(train_images, train_labels, test_images, test_labels, classes)


def load_cifar100(data_dir: str | os.PathLike | None = None,
                  download: bool = True) -> Cifar100Data:
    """Load CIFAR-100 from ``<data_dir>/cifar-100-python`` (``train``, ``test``, ``meta``) with
    its fine (100) and coarse (20 superclass) labels, downloading and extracting the official
    archive (md5-verified) if the folder is missing; see :func:`load_cifar10`.
    """
    root = dl.ensure_dataset("CIFAR-100", CIFAR100_URL, CIFAR100_MD5, CIFAR100_FOLDER,
                             root=data_dir, allow_download=download)
    meta_path = root / "meta"
    meta = _unpickle(meta_path)
    classes = _names(meta, "fine_label_names", 100, meta_path)
    coarse_classes = _names(meta, "coarse_label_names", 20, meta_path)

    def split(name):
        path = root / name
        batch = _unpickle(path)
        images = _images(batch, path)
        return (images, _labels(batch, "fine_labels", 100, len(images), path),
                _labels(batch, "coarse_labels", 20, len(images), path))

    train_images, train_labels, train_coarse = split("train")
    test_images, test_labels, test_coarse = split("test")
    return Cifar100Data(train_images, train_labels, test_images, test_labels, classes,
                        train_coarse, test_coarse, coarse_classes)
