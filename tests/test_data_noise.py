"""Label noise and imbalance: rates, exact masks, seeds, and the structure of each noise."""

import numpy as np
import pytest

from tinydm.data import noise

N = 20000


def tolerance(r, n):
    """Five standard deviations of a Bernoulli(r) mean over n draws (plus one count)."""
    return 5 * np.sqrt(r * (1 - r) / n) + 1 / n


@pytest.fixture
def cifar100_labels():
    """Fine and coarse labels with the official structure: fine class f in superclass f % 20."""
    fine = np.random.default_rng(0).integers(0, 100, size=N)
    return fine, fine % 20


@pytest.mark.parametrize("num_classes", [2, 10, 100])
@pytest.mark.parametrize("r", [0.0, 0.2, 0.4, 0.6, 1.0])
def test_symmetric_rate_and_mask(num_classes, r):
    clean = np.random.default_rng(1).integers(0, num_classes, size=N)
    out = noise.symmetric(clean, r, num_classes, seed=123)
    assert out.labels.dtype == np.int64 and out.labels.shape == clean.shape
    np.testing.assert_array_equal(out.corrupted, out.labels != clean)
    assert out.rate == out.corrupted.mean()
    assert abs(out.rate - r) <= tolerance(r, N)
    assert out.labels.min() >= 0 and out.labels.max() < num_classes


def test_symmetric_picks_the_other_classes_uniformly():
    clean = np.full(N, 3)
    out = noise.symmetric(clean, 1.0, 5, seed=0)
    assert out.corrupted.all()  # "other class" is never the original one
    counts = np.bincount(out.labels, minlength=5)
    assert counts[3] == 0
    expected = N / 4
    assert np.all(np.abs(counts[[0, 1, 2, 4]] - expected) < 5 * np.sqrt(expected))


def test_binary_symmetric_noise_flips():
    clean = np.random.default_rng(2).integers(0, 2, size=N)
    out = noise.symmetric(clean, 0.4, 2, seed=7)
    np.testing.assert_array_equal(out.labels[out.corrupted], 1 - clean[out.corrupted])


def test_exact_mode_corrupts_round_r_n():
    clean = np.random.default_rng(3).integers(0, 10, size=1001)
    out = noise.symmetric(clean, 0.2, 10, seed=5, exact=True)
    assert out.corrupted.sum() == round(0.2 * 1001)


def test_same_seed_same_noise_and_generators_accepted():
    clean = np.random.default_rng(4).integers(0, 10, size=1000)
    a = noise.symmetric(clean, 0.4, 10, seed=42)
    b = noise.symmetric(clean, 0.4, 10, seed=42)
    c = noise.symmetric(clean, 0.4, 10, seed=43)
    d = noise.symmetric(clean, 0.4, 10, seed=np.random.default_rng(42))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.labels, d.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_clean_labels_are_not_modified():
    clean = np.random.default_rng(5).integers(0, 10, size=1000)
    before = clean.copy()
    noise.symmetric(clean, 0.5, 10, seed=0)
    noise.cifar10_class_dependent(clean, 0.5, seed=0)
    np.testing.assert_array_equal(clean, before)


@pytest.mark.parametrize("r", [-0.1, 1.5, float("nan"), "0.2", True])
def test_bad_rate_is_named(r):
    with pytest.raises(ValueError, match=r"r must be a number in \[0, 1\], got"):
        noise.symmetric([0, 1], r, 2, seed=0)


def test_bad_labels_are_named():
    with pytest.raises(ValueError, match=r"labels\[2\] = 10 is outside \[0, 10\)"):
        noise.symmetric([0, 1, 10], 0.2, 10, seed=0)
    with pytest.raises(ValueError, match=r"labels\[0\] = -1 is outside"):
        noise.cifar10_class_dependent([-1], 0.2, seed=0)
    with pytest.raises(ValueError, match=r"must be a 1-D array .* got shape \(2, 2\)"):
        noise.symmetric([[0, 1], [1, 0]], 0.2, 2, seed=0)
    with pytest.raises(ValueError, match="must hold integers, got dtype float64"):
        noise.symmetric([0.0, 1.0], 0.2, 2, seed=0)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        noise.symmetric([0, 0], 0.2, 1, seed=0)
    with pytest.raises(ValueError, match="seed must be an int or a numpy.random.Generator"):
        noise.symmetric([0, 1], 0.2, 2, seed=None)


@pytest.mark.parametrize("r", [0.2, 0.4])
def test_asymmetric_cifar100_swaps_one_pair_per_superclass(cifar100_labels, r):
    fine, coarse = cifar100_labels
    out = noise.asymmetric_cifar100(fine, coarse, r, seed=9)
    np.testing.assert_array_equal(out.corrupted, out.labels != fine)
    assert out.pairs.shape == (20, 2)
    assert len(np.unique(out.pairs)) == 40
    np.testing.assert_array_equal(out.pairs[:, 0] % 20, np.arange(20))  # same superclass
    np.testing.assert_array_equal(out.pairs[:, 1] % 20, np.arange(20))
    partner = {a: b for a, b in out.pairs} | {b: a for a, b in out.pairs}
    changed = np.flatnonzero(out.corrupted)
    np.testing.assert_array_equal(out.labels[changed], [partner[f] for f in fine[changed]])
    np.testing.assert_array_equal(out.labels % 20, coarse)  # the superclass is never changed
    eligible = np.isin(fine, out.pairs)
    assert not out.corrupted[~eligible].any()
    assert abs(out.corrupted[eligible].mean() - r) <= tolerance(r, eligible.sum())
    assert out.rate == pytest.approx(out.corrupted.mean())


def test_asymmetric_cifar100_is_reproducible(cifar100_labels):
    fine, coarse = cifar100_labels
    a = noise.asymmetric_cifar100(fine, coarse, 0.4, seed=1)
    b = noise.asymmetric_cifar100(fine, coarse, 0.4, seed=1)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_asymmetric_cifar100_checks_its_inputs(cifar100_labels):
    fine, coarse = cifar100_labels
    with pytest.raises(ValueError, match=r"coarse_labels must have the shape of labels"):
        noise.asymmetric_cifar100(fine, coarse[:-1], 0.2, seed=0)
    bad = coarse.copy()
    bad[np.flatnonzero(fine == 0)[0]] = 1
    with pytest.raises(ValueError, match="fine class 0 appears under several superclasses"):
        noise.asymmetric_cifar100(fine, bad, 0.2, seed=0)
    with pytest.raises(ValueError, match=r"superclass 0 has fewer than two fine classes"):
        noise.asymmetric_cifar100([0, 0, 1, 21], [0, 0, 1, 1], 0.2, seed=0)
    with pytest.raises(ValueError, match=r"coarse_labels\[0\] = 20 is outside \[0, 20\)"):
        noise.asymmetric_cifar100([0], [20], 0.2, seed=0)


def test_cifar10_class_dependent_mapping():
    clean = np.repeat(np.arange(10), N // 10)
    out = noise.cifar10_class_dependent(clean, 0.4, seed=3)
    np.testing.assert_array_equal(out.corrupted, out.labels != clean)
    expected = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}  # truck, bird, deer, cat, dog
    for c in range(10):
        members = clean == c
        if c in expected:
            assert set(np.unique(out.labels[members])) == {c, expected[c]}
            rate = out.corrupted[members].mean()
            assert abs(rate - 0.4) <= tolerance(0.4, members.sum())
        else:
            assert not out.corrupted[members].any()
    assert abs(out.rate - 0.2) <= tolerance(0.2, N)  # half of the classes are eligible


def test_cifar10_class_dependent_exact():
    clean = np.repeat(np.arange(10), 101)
    out = noise.cifar10_class_dependent(clean, 0.3, seed=0, exact=True)
    for c in (9, 2, 4, 3, 5):
        assert out.corrupted[clean == c].sum() == round(0.3 * 101)


def imdb_train_labels():
    return np.random.default_rng(0).permutation(np.repeat([1, 0], 12500))


@pytest.mark.parametrize("ratio, negatives", [(10, 1250), (50, 250)])
def test_imdb_imbalance_counts(ratio, negatives):
    labels = imdb_train_labels()
    idx = noise.imdb_imbalance(labels, ratio, seed=123)
    assert np.all(np.diff(idx) > 0)  # sorted, no duplicates
    assert np.count_nonzero(labels[idx] == 1) == 12500
    assert np.count_nonzero(labels[idx] == 0) == negatives
    np.testing.assert_array_equal(idx, noise.imdb_imbalance(labels, ratio, seed=123))
    assert not np.array_equal(idx, noise.imdb_imbalance(labels, ratio, seed=124))


def test_imbalance_general_and_errors():
    labels = np.repeat(np.arange(3), 10)
    idx = noise.imbalance(labels, {0: 2, 2: 0}, seed=0)
    assert np.bincount(labels[idx], minlength=3).tolist() == [2, 10, 0]
    with pytest.raises(ValueError, match=r"keep_per_class\[1\] must be an integer in \[0, 10\]"):
        noise.imbalance(labels, {1: 11}, seed=0)
    with pytest.raises(ValueError, match="ratio must be a number >= 1"):
        noise.imdb_imbalance(imdb_train_labels(), 0.5, seed=0)
