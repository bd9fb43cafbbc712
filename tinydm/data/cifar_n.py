"""CIFAR-10N: real human label noise for the CIFAR-10 training set (Wei et al., 2022).

Three Amazon Mechanical Turk workers labelled each of the 50,000 training images. The release
gives, in the training set's original order, the clean labels and five noisy label sets:
``aggre_label`` (majority vote, about 9% wrong), ``random_label1..3`` (one worker each, about
17%) and ``worse_label`` (a wrong worker's label wherever one was wrong, about 40%). Unlike
symmetric noise, the mistakes are class-dependent and fall on ambiguous images (cat/dog,
automobile/truck, deer/horse, ...).

The file is ``CIFAR-10_human.npz`` (NumPy arrays named as in the release, integers), looked for
in the data folder (:func:`tinydm.data.download.data_dir`) and in its ``cifar-n-labels/``
subfolder. The official release is a PyTorch file (``CIFAR-10_human.pt``, a dict of the same
arrays); it converts with ``np.savez("CIFAR-10_human.npz", **torch.load("CIFAR-10_human.pt"))``.
Since such a conversion writes other bytes for the same labels, the check is on the labels, not
the file's bytes: a sha256 over every array in name order, as int64 (:func:`labels_digest`).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from .download import DataError, data_dir

FILE_NAME = "CIFAR-10_human.npz"
FIELDS = ("aggre_label", "clean_label", "random_label1", "random_label2", "random_label3",
          "worse_label")
#: The noisy label sets by the short names of ``--noise cifar10n:NAME``.
VARIANTS = {"aggre": "aggre_label", "random1": "random_label1", "random2": "random_label2",
            "random3": "random_label3", "worst": "worse_label"}
#: :func:`labels_digest` of the released labels.
LABELS_SHA256 = "2834539e2c702488aa792487bac10cf0912b5fd05cfc6402abf812b94d456a5c"


def labels_digest(labels: dict) -> str:
    """sha256 over the arrays of :data:`FIELDS` in that order, each as little-endian int64."""
    digest = hashlib.sha256()
    for name in FIELDS:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(labels[name], dtype="<i8").tobytes())
    return digest.hexdigest()


def find(root: str | os.PathLike | None = None) -> Path:
    """The path of ``CIFAR-10_human.npz`` in the data folder ``root`` (or its ``cifar-n-labels/``);
    :class:`DataError` naming both places if it is in neither."""
    base = data_dir(root)
    places = [base / FILE_NAME, base / "cifar-n-labels" / FILE_NAME]
    for path in places:
        if path.is_file():
            return path
    raise DataError(f"CIFAR-10N: {FILE_NAME} is in neither {places[0]} nor {places[1]}. Get "
                    "CIFAR-10_human.pt from the CIFAR-10N release and convert it: "
                    "np.savez('CIFAR-10_human.npz', **torch.load('CIFAR-10_human.pt'))")


def load(root: str | os.PathLike | None = None, train_labels=None,
         expected_sha256: str | None = None) -> dict:
    """The label sets of CIFAR-10N as int64 arrays, by field name (:data:`FIELDS`).

    Raises :class:`DataError` when the file is missing or unreadable, lacks a field, holds arrays
    of different lengths or non-integers, when its labels' digest is not ``expected_sha256``
    (default: :data:`LABELS_SHA256`, read at call time),
    or, given the data set's ``train_labels``, when its clean labels differ from them (another
    order or another data set): the noisy labels would then belong to other images.
    """
    path = find(root)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"CIFAR-10N: cannot read {path}: {e}") from None
    missing = [name for name in FIELDS if name not in arrays]
    if missing:
        raise DataError(f"CIFAR-10N: {path} lacks {', '.join(missing)} (has "
                        f"{', '.join(sorted(arrays))})")
    for name in FIELDS:
        a = arrays[name]
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"CIFAR-10N: {path}: {name} must be a 1-D integer array, got shape "
                            f"{a.shape} dtype {a.dtype}")
        if a.size != arrays["clean_label"].size:
            raise DataError(f"CIFAR-10N: {path}: {name} has {a.size} labels, clean_label "
                            f"{arrays['clean_label'].size}")
    labels = {name: arrays[name].astype(np.int64) for name in FIELDS}
    found, expected_sha256 = labels_digest(labels), expected_sha256 or LABELS_SHA256
    if found != expected_sha256:
        raise DataError(f"CIFAR-10N: the labels in {path} have sha256 {found}, expected "
                        f"{expected_sha256} (tinydm.data.cifar_n.labels_digest): not the "
                        "released CIFAR-10N labels")
    return labels if train_labels is None else check_clean(labels, train_labels, path)


def check_clean(labels: dict, train_labels, source="CIFAR-10N") -> dict:
    """``labels`` (as :func:`load` returns them) if their clean labels equal the data set's
    ``train_labels``; else :class:`DataError`: the human labels are then another order's or
    another data set's, and would label other images."""
    train = np.asarray(train_labels, dtype=np.int64)
    clean = labels["clean_label"]
    if train.shape != clean.shape or not np.array_equal(train, clean):
        where = ("its length differs" if train.shape != clean.shape else
                 f"first at index {int(np.flatnonzero(train != clean)[0])}")
        raise DataError(f"CIFAR-10N: the clean labels of {source} ({clean.size}) differ from "
                        f"the CIFAR-10 training labels ({train.size}), {where}: the human "
                        "labels are for the official training set in its original order")
    return labels


def human_labels(variant: str, root: str | os.PathLike | None = None, train_labels=None,
                 expected_sha256: str | None = None) -> np.ndarray:
    """The noisy labels of one variant (:data:`VARIANTS`: aggre, random1-3, worst) for the whole
    training set, checked as in :func:`load`."""
    if variant not in VARIANTS:
        raise ValueError(f"CIFAR-10N: unknown label set {variant!r}; choose from "
                         f"{', '.join(VARIANTS)}")
    return load(root, train_labels, expected_sha256)[VARIANTS[variant]]
