"""CIFAR loaders on tiny pickle sets written exactly like the official python archives
(bytes keys, uint8 rows of 3072 = R plane, G plane, B plane)."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest

from tinydm.data import cifar
from tinydm.data import download as dl

CLASSES10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]


def rows(n, start):
    """n images as official rows; image k has value (start + k + 7 * channel) % 256 at every
    pixel of channel c, except pixel (row 1, column 2) of channel 2, set to 255."""
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    for k in range(n):
        for c in range(3):
            images[k, c] = (start + k + 7 * c) % 256
    images[:, 2, 1, 2] = 255
    return images.reshape(n, 3072)


def dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        dump(folder / f"data_batch_{b}",
             {b"batch_label": f"training batch {b} of 5".encode(),
              b"labels": [(b + i) % 10 for i in range(per_batch)],
              b"data": rows(per_batch, 10 * b),
              b"filenames": [f"img{b}_{i}.png".encode() for i in range(per_batch)]})
    dump(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": [9, 8, 7],
                                 b"data": rows(3, 200), b"filenames": [b"a", b"b", b"c"]})
    dump(folder / "batches.meta", {b"label_names": [c.encode() for c in CLASSES10],
                                   b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    return folder


def write_cifar100(root):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = [0, 99, 50, 21]
    dump(folder / "train", {b"filenames": [b"x"] * 4, b"batch_label": b"training batch 1 of 1",
                            b"fine_labels": fine, b"coarse_labels": [f % 20 for f in fine],
                            b"data": rows(4, 0)})
    dump(folder / "test", {b"filenames": [b"y"] * 2, b"batch_label": b"testing batch 1 of 1",
                           b"fine_labels": [5, 6], b"coarse_labels": [5, 6],
                           b"data": rows(2, 100)})
    dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                           b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return folder


def test_load_cifar10(tmp_path):
    write_cifar10(tmp_path)
    data = cifar.load_cifar10(tmp_path, download=False)
    assert data.train_images.shape == (20, 3, 32, 32) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (3, 3, 32, 32)
    assert data.train_labels.dtype == data.test_labels.dtype == np.int64
    assert data.train_labels.tolist() == [(b + i) % 10 for b in range(1, 6) for i in range(4)]
    assert data.test_labels.tolist() == [9, 8, 7]
    assert data.classes == tuple(CLASSES10)
    # batch order kept, and the 3072 bytes are the R, G then B planes, row-major
    assert data.train_images[4, 0, 0, 0] == 20 and data.train_images[4, 1, 5, 5] == 27
    assert data.train_images[4, 2, 1, 2] == 255 and data.train_images[4, 2, 2, 1] == 34
    assert data.test_images[2, 0, 31, 31] == 202


def test_load_cifar100(tmp_path):
    write_cifar100(tmp_path)
    data = cifar.load_cifar100(tmp_path, download=False)
    assert data.train_images.shape == (4, 3, 32, 32) and data.test_images.shape == (2, 3, 32, 32)
    assert data.train_labels.tolist() == [0, 99, 50, 21]
    assert data.train_coarse_labels.tolist() == [0, 19, 10, 1]
    assert data.test_labels.tolist() == [5, 6] and data.test_coarse_labels.tolist() == [5, 6]
    assert data.train_coarse_labels.dtype == np.int64
    assert data.classes[99] == "fine99" and data.coarse_classes[19] == "coarse19"
    assert data.train_images[1, 1, 0, 0] == 8


def test_load_cifar10_from_a_downloaded_archive(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    data = cifar.load_cifar10(tmp_path / "data")
    assert data.train_images.shape == (20, 3, 32, 32)
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").exists()


def test_missing_batch_is_named(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(dl.DataError, match=r"missing file .*data_batch_3"):
        cifar.load_cifar10(tmp_path, download=False)


def test_wrong_content_is_named(tmp_path):
    folder = write_cifar10(tmp_path)
    dump(folder / "test_batch", {b"labels": [1, 2], b"data": rows(3, 0)})
    with pytest.raises(dl.DataError, match=r"'labels' must hold one label per image \(3\)"):
        cifar.load_cifar10(tmp_path, download=False)
    dump(folder / "test_batch", {b"labels": [1], b"data": np.zeros((1, 100), np.uint8)})
    with pytest.raises(dl.DataError, match=r"'data' must be a uint8 array \(N, 3072\)"):
        cifar.load_cifar10(tmp_path, download=False)
    dump(folder / "test_batch", {b"labels": [10], b"data": rows(1, 0)})
    with pytest.raises(dl.DataError, match=r"'labels' has values outside \[0, 10\)"):
        cifar.load_cifar10(tmp_path, download=False)
    dump(folder / "test_batch", {b"data": rows(1, 0)})
    with pytest.raises(dl.DataError, match=r"test_batch has no 'labels' entry"):
        cifar.load_cifar10(tmp_path, download=False)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(dl.DataError, match="not a readable CIFAR batch file"):
        cifar.load_cifar10(tmp_path, download=False)


def test_cifar100_without_coarse_labels_is_named(tmp_path):
    folder = write_cifar100(tmp_path)
    dump(folder / "test", {b"fine_labels": [1], b"data": rows(1, 0)})
    with pytest.raises(dl.DataError, match="has no 'coarse_labels' entry"):
        cifar.load_cifar100(tmp_path, download=False)


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_cannot_run_code(tmp_path):
    folder = write_cifar10(tmp_path)
    dump(folder / "batches.meta", {b"label_names": Exploit()})
    with pytest.raises(dl.DataError, match=r"refusing to load (__builtin__|builtins)\.print"):
        cifar.load_cifar10(tmp_path, download=False)


def test_offline_without_data_names_the_archive(tmp_path):
    with pytest.raises(dl.DataError, match="cifar-100-python.tar.gz"):
        cifar.load_cifar100(tmp_path, download=False)
