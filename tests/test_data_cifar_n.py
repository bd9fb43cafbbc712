"""CIFAR-10N's human labels on a tiny file written like the real one (an npz of integer arrays
named as in the release, clean labels in the training set's order), beside a tiny CIFAR-10 in
the official pickle layout: the loader's checks, and a run's labels under ``cifar10n:worst``."""

import numpy as np
import pytest

from tinydm.data import cifar, cifar_n
from tinydm.data.download import DataError
from tinydm.experiments import cifar as cifar_exp

from test_data_cifar import write_cifar10

RELEASED = cifar_n.LABELS_SHA256


def write_human(root, clean, subfolder=True, **override):
    """A CIFAR-10_human.npz for ``clean``: worse_label shifts every second label by one class,
    aggre_label every fourth, the random labels every third; returns the arrays written."""
    clean = np.asarray(clean)
    n = np.arange(clean.size)
    labels = {"clean_label": clean, "worse_label": np.where(n % 2 == 0, (clean + 1) % 10, clean),
              "aggre_label": np.where(n % 4 == 0, (clean + 3) % 10, clean),
              **{f"random_label{k}": np.where(n % 3 == k - 1, (clean + k) % 10, clean)
                 for k in (1, 2, 3)}}
    labels = {k: v.astype(np.int16) for k, v in {**labels, **override}.items()}
    folder = root / "cifar-n-labels" if subfolder else root
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / cifar_n.FILE_NAME, **labels)
    return labels


@pytest.fixture
def human(tmp_path, monkeypatch):
    """A tiny CIFAR-10 and its human labels in tmp_path, the digest check set to their labels."""
    write_cifar10(tmp_path)
    clean = cifar.load_cifar10(tmp_path, download=False).train_labels
    labels = write_human(tmp_path, clean)
    monkeypatch.setattr(cifar_n, "LABELS_SHA256", cifar_n.labels_digest(labels))
    return tmp_path, clean, labels


def test_each_variant_is_its_release_field(human):
    root, clean, labels = human
    for variant, field in cifar_n.VARIANTS.items():
        got = cifar_n.human_labels(variant, root, clean)
        assert got.dtype == np.int64 and np.array_equal(got, labels[field])
    assert (cifar_n.human_labels("worst", root) != clean).mean() == 0.5


def test_the_file_is_found_beside_or_below_the_data_folder(tmp_path, monkeypatch):
    labels = write_human(tmp_path, np.arange(10) % 10, subfolder=False)
    monkeypatch.setattr(cifar_n, "LABELS_SHA256", cifar_n.labels_digest(labels))
    assert cifar_n.find(tmp_path) == tmp_path / cifar_n.FILE_NAME
    with pytest.raises(DataError, match="cifar-n-labels.*torch.load"):
        cifar_n.find(tmp_path / "elsewhere")


def test_labels_that_are_not_the_release_are_refused(human, monkeypatch):
    root, clean, _ = human
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{64}, expected 0{64} \(tinydm"):
        cifar_n.load(root, clean, expected_sha256="0" * 64)
    monkeypatch.setattr(cifar_n, "LABELS_SHA256", RELEASED)  # the tiny file is not the release
    with pytest.raises(DataError, match=f"expected {RELEASED}.*not the released CIFAR-10N"):
        cifar_n.human_labels("worst", root, clean)


def test_clean_labels_of_another_order_are_refused(human):
    root, clean, _ = human
    other = clean.copy()
    other[[3, 4]] = other[[4, 3]]
    with pytest.raises(DataError, match="differ from the CIFAR-10 training labels.*index 3"):
        cifar_n.human_labels("worst", root, other)
    with pytest.raises(DataError, match="its length differs"):
        cifar_n.human_labels("worst", root, clean[:-1])


def test_a_broken_file_is_named(tmp_path):
    labels = write_human(tmp_path, np.arange(10))
    path = tmp_path / "cifar-n-labels" / cifar_n.FILE_NAME
    np.savez(path, **{k: v for k, v in labels.items() if k != "worse_label"})
    with pytest.raises(DataError, match="lacks worse_label"):
        cifar_n.load(tmp_path)
    np.savez(path, **{**labels, "worse_label": labels["worse_label"][:-1]})
    with pytest.raises(DataError, match="worse_label has 9 labels, clean_label 10"):
        cifar_n.load(tmp_path)
    np.savez(path, **{**labels, "aggre_label": labels["aggre_label"].astype(float)})
    with pytest.raises(DataError, match="aggre_label must be a 1-D integer array"):
        cifar_n.load(tmp_path)
    path.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="cannot read"):
        cifar_n.load(tmp_path)
    with pytest.raises(ValueError, match="unknown label set 'worse'; choose from aggre"):
        cifar_n.human_labels("worse", tmp_path)


def test_a_run_under_human_noise_trains_on_the_human_labels(human):
    root, clean, labels = human
    config = cifar_exp.Config(dataset="cifar10", data_dir=str(root), noise="cifar10n:worst",
                              batch_size=4, val_fraction=0.5, depth=8)
    data = cifar_exp.prepare_data(config)
    worst = labels["worse_label"].astype(np.int64)
    # each fixture image has its own red value: it tells which training images were kept
    red = cifar.load_cifar10(root, download=False).train_images[:, 0, 0, 0]
    kept = np.array([np.flatnonzero(red == v)[0] for v in data.train_images[:, 0, 0, 0]])
    assert np.array_equal(data.clean_labels, clean[kept])
    assert np.array_equal(data.labels, worst[kept])
    assert np.array_equal(data.corrupted, worst[kept] != clean[kept])
    # no clean labels to validate on: the held-out images keep their human labels
    held = np.setdiff1d(np.arange(clean.size), kept)
    assert data.val_labels.size == held.size > 0 and np.array_equal(data.val_labels, worst[held])
    summary = data.summary(config)
    assert summary["val_labels"] == "cifar10n:worst" and summary["noise_rate_requested"] is None
    assert summary["noise_rate_realised"] == float(data.corrupted.mean())
    assert config.name == "cifar10_resnet8_cifar10n-worst_cce_seed123"


def test_human_noise_is_cifar10s():
    with pytest.raises(ValueError, match="CIFAR-10N's human labels.*not synthetic's"):
        cifar_exp.Config(dataset="synthetic", noise="cifar10n:worst")
    with pytest.raises(ValueError, match="noise"):
        cifar_exp.Config(noise="cifar10n:worse")


def test_a_sweep_reads_the_human_labels_once_for_its_workers(human, tmp_path_factory):
    """The sweep's driver loads (and checks) the labels beside the images; a cell then needs no
    data folder of its own: the labels it is handed give the same run data as the file does."""
    from tinydm.experiments import sweep

    root, clean, labels = human
    adapter = sweep.get_adapter("cifar")
    settings = adapter.settings({"dataset": "cifar10", "noise": "cifar10n:worst",
                                 "val_fraction": 0.5, "depth": 8, "batch_size": 4})
    data = adapter.load_data([settings], data_dir=str(root), download=False)
    assert np.array_equal(data["cifar10n"]["worse_label"], labels["worse_label"])
    config = cifar_exp.Config.from_dict(settings)  # no data_dir: the default folder lacks them
    handed = cifar_exp.prepare_data(config, data["cifar10"], data["cifar10n"])
    read = cifar_exp.prepare_data(cifar_exp.Config.from_dict({**settings, "data_dir": str(root)}))
    assert np.array_equal(handed.labels, read.labels)
    assert np.array_equal(handed.val_labels, read.val_labels)
    shuffled = {**data["cifar10n"], "clean_label": data["cifar10n"]["clean_label"][::-1]}
    with pytest.raises(DataError, match="differ from the CIFAR-10 training labels"):
        cifar_exp.prepare_data(config, data["cifar10"], shuffled)
