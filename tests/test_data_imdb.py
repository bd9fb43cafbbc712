"""IMDB: the reader on a tiny aclImdb tree in the official layout, the tokenizer on exact
strings, and the PV-DBOW feature cache."""

import hashlib
import sys
import tarfile

import numpy as np
import pytest

from tinydm.data import download as dl
from tinydm.data import imdb

# A handful of reviews per folder; the ids are deliberately not in lexicographic order.
REVIEWS = {
    "train/pos": {"10_9.txt": "Loved it.", "2_8.txt": "Great<br />film!", "1_10.txt": "Superb"},
    "train/neg": {"0_1.txt": "Awful.", "11_2.txt": "Boring, slow"},
    "test/pos": {"5_7.txt": "Nice (very)", "3_9.txt": "Fun: yes"},
    "test/neg": {"4_3.txt": "Meh?", "7_1.txt": 'Bad "acting"'},
    "train/unsup": {"1_0.txt": "Some film", "0_0.txt": "Another; film", "20_0.txt": "A third"},
}


def write_tree(root, reviews=REVIEWS):
    for sub, files in reviews.items():
        (root / "aclImdb" / sub).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / "aclImdb" / sub / name).write_text(text, encoding="utf-8")
    (root / "aclImdb" / "README").write_text("readme")
    (root / "aclImdb" / "train" / "urls_pos.txt").write_text("http://x\n")  # as in the original
    return root


@pytest.fixture
def data(tmp_path):
    return write_tree(tmp_path / "data")


@pytest.fixture
def corpus(data):
    return imdb.load_imdb(data, download=False)


def test_normalize_text_exact():
    assert imdb.normalize_text('A "Great" Film!<br /><br />I LOVED it (really); 10/10: yes?') == \
        'a  " great "  film !   i loved it  ( really )  ;  10/10 :  yes ? '
    assert imdb.normalize_text("Don't stop...<BR />Ok,fine") == "don't stop .  .  .  ok , fine"


def test_tokenize_exact():
    assert imdb.tokenize('A "Great" Film!<br /><br />I LOVED it (really); 10/10: yes?') == \
        ["a", '"', "great", '"', "film", "!", "i", "loved", "it", "(", "really", ")", ";",
         "10/10", ":", "yes", "?"]
    assert imdb.tokenize("Mr. Smith's re-make, <i>sigh</i>") == \
        ["mr", ".", "smith's", "re-make", ",", "<i>sigh</i>"]
    assert imdb.tokenize("  \t\n ") == []


def test_load_imdb_order_and_labels(corpus):
    assert corpus.train_texts == ["Superb", "Great<br />film!", "Loved it.", "Awful.",
                                  "Boring, slow"]
    assert corpus.train_labels.tolist() == [1, 1, 1, 0, 0]
    assert corpus.train_labels.dtype == np.int64
    assert corpus.test_texts == ["Fun: yes", "Nice (very)", "Meh?", 'Bad "acting"']
    assert corpus.test_labels.tolist() == [1, 1, 0, 0]
    assert corpus.unsup_texts == ["Another; film", "Some film", "A third"]
    assert corpus.all_texts() == corpus.train_texts + corpus.test_texts + corpus.unsup_texts


def test_load_imdb_reads_the_data_dir_from_the_environment(data, monkeypatch):
    monkeypatch.setenv("TINYDM_DATA", str(data))
    assert imdb.load_imdb(download=False).unsup_texts == ["Another; film", "Some film", "A third"]


def test_load_imdb_from_a_downloaded_archive(tmp_path, monkeypatch):
    src = write_tree(tmp_path / "src")
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "aclImdb", arcname="aclImdb")
    monkeypatch.setattr(imdb, "URL", archive.as_uri())
    monkeypatch.setattr(imdb, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    corpus = imdb.load_imdb(tmp_path / "data")
    assert corpus.train_labels.tolist() == [1, 1, 1, 0, 0]
    assert (tmp_path / "data" / "aclImdb_v1.tar.gz").exists()


def test_load_imdb_missing_folder_is_named(data):
    for path in (data / "aclImdb" / "train" / "unsup").iterdir():
        path.unlink()
    (data / "aclImdb" / "train" / "unsup").rmdir()
    with pytest.raises(dl.DataError, match="the folder train/unsup is missing"):
        imdb.load_imdb(data, download=False)


def test_load_imdb_empty_or_odd_folders_are_named(data):
    (data / "aclImdb" / "test" / "neg" / "notes.txt").write_text("?")
    with pytest.raises(dl.DataError, match=r"unexpected file .*notes\.txt"):
        imdb.load_imdb(data, download=False)
    for path in (data / "aclImdb" / "test" / "neg").iterdir():
        path.unlink()
    with pytest.raises(dl.DataError, match=r"test/neg holds no review files"):
        imdb.load_imdb(data, download=False)


def test_load_imdb_offline_without_data(tmp_path):
    with pytest.raises(dl.DataError, match="aclImdb_v1.tar.gz"):
        imdb.load_imdb(tmp_path, download=False)


class FakeTrainer:
    """Stands in for gensim: counts trainings, returns vectors that depend on the settings."""

    def __init__(self):
        self.calls = []

    def __call__(self, documents, settings, workers, progress):
        self.calls.append(settings)
        rng = np.random.default_rng(settings["seed"])
        return rng.standard_normal((len(documents), settings["vector_size"])).astype(np.float32)


@pytest.fixture
def fake_trainer(monkeypatch):
    trainer = FakeTrainer()
    monkeypatch.setattr(imdb, "_train_pv_dbow", trainer)
    return trainer


def test_feature_cache_reuses_and_invalidates(corpus, tmp_path, fake_trainer):
    cache = tmp_path / "cache"
    train, test = imdb.pv_dbow_features(corpus, cache, vector_size=4, progress=False)
    assert train.shape == (5, 4) and test.shape == (4, 4) and train.dtype == np.float32
    assert len(fake_trainer.calls) == 1
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and [p for p in cache.iterdir() if p.name.startswith(".")] == []

    again = imdb.pv_dbow_features(corpus, cache, vector_size=4, workers=1, progress=False)
    assert len(fake_trainer.calls) == 1  # same settings (workers aside): loaded, not trained
    np.testing.assert_array_equal(again[0], train)

    imdb.pv_dbow_features(corpus, cache, vector_size=4, epochs=3, progress=False)
    assert len(fake_trainer.calls) == 2  # a changed setting: a new cache file
    assert len(list(cache.glob("*.npz"))) == 2

    changed = imdb.ImdbCorpus(corpus.train_texts, corpus.train_labels, corpus.test_texts,
                              corpus.test_labels, corpus.unsup_texts[:-1] + ["A fourth"])
    imdb.pv_dbow_features(changed, cache, vector_size=4, progress=False)
    assert len(fake_trainer.calls) == 3  # a changed corpus: a new cache file too
    assert len(list(cache.glob("*.npz"))) == 3


def test_compute_false_reads_the_cache_only(corpus, tmp_path, fake_trainer):
    cache = tmp_path / "cache"
    with pytest.raises(dl.DataError, match="no cached PV-DBOW features .* compute=True"):
        imdb.pv_dbow_features(corpus, cache, vector_size=4, compute=False)
    assert fake_trainer.calls == []
    train, _ = imdb.pv_dbow_features(corpus, cache, vector_size=4, progress=False)
    cached, _ = imdb.pv_dbow_features(corpus, cache, vector_size=4, compute=False)
    np.testing.assert_array_equal(cached, train)
    assert len(fake_trainer.calls) == 1


def test_feature_cache_rejects_a_damaged_file(corpus, tmp_path, fake_trainer):
    cache = tmp_path / "cache"
    imdb.pv_dbow_features(corpus, cache, vector_size=4, progress=False)
    (path,) = cache.glob("*.npz")
    path.write_bytes(path.read_bytes()[:50])  # truncated
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        imdb.pv_dbow_features(corpus, cache, vector_size=4, progress=False)
    assert len(fake_trainer.calls) == 2
    imdb.pv_dbow_features(corpus, cache, vector_size=4, progress=False)  # repaired: reused
    assert len(fake_trainer.calls) == 2

    with np.load(path) as f:
        fields = dict(f)
    np.savez(path, **{**fields, "train": fields["train"][:, :3]})  # wrong shape, same key
    with pytest.warns(UserWarning, match="do not match"):
        imdb.pv_dbow_features(corpus, cache, vector_size=4, progress=False)
    assert len(fake_trainer.calls) == 3


def test_feature_settings_are_checked(corpus, tmp_path):
    with pytest.raises(ValueError, match="vector_size must be a positive integer, got 0"):
        imdb.pv_dbow_features(corpus, tmp_path, vector_size=0)
    with pytest.raises(ValueError, match="hs must be 0 or 1, got 2"):
        imdb.pv_dbow_features(corpus, tmp_path, hs=2)
    with pytest.raises(ValueError, match="negative must be an integer >= 0, and > 0 unless hs=1"):
        imdb.pv_dbow_features(corpus, tmp_path, negative=0, hs=0)


def test_imdb_features_returns_arrays_and_labels(data, tmp_path, fake_trainer):
    x_train, y_train, x_test, y_test = imdb.imdb_features(data, tmp_path / "cache",
                                                          download=False, vector_size=3,
                                                          progress=False)
    assert x_train.shape == (5, 3) and x_test.shape == (4, 3)
    assert y_train.tolist() == [1, 1, 1, 0, 0] and y_test.tolist() == [1, 1, 0, 0]


def test_missing_gensim_says_what_to_install(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)  # makes "import gensim..." fail
    with pytest.raises(ImportError, match=r"pip install tinydm\[imdb\]"):
        imdb.pv_dbow_features(corpus, tmp_path, vector_size=4, progress=False)


def test_pv_dbow_with_gensim(corpus, tmp_path):
    pytest.importorskip("gensim")
    settings = dict(vector_size=8, epochs=2, workers=1, progress=False)
    train, test = imdb.pv_dbow_features(corpus, tmp_path, **settings)
    assert train.shape == (5, 8) and test.shape == (4, 8)
    assert train.dtype == test.dtype == np.float32 and np.isfinite(train).all()
    assert len(set(map(bytes, train))) == 5  # one vector per review
    (path,) = tmp_path.glob("*.npz")
    mtime = path.stat().st_mtime_ns
    again = imdb.pv_dbow_features(corpus, tmp_path, **settings)
    assert path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again[0], train)
