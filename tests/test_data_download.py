"""Downloads, checksums and extraction, offline: archives are built in tmp_path and served to
the real download code through file:// URLs."""

import hashlib
import os
import re
import tarfile
from pathlib import Path

import pytest

from tinydm.data import download as dl


def make_archive(tmp_path: Path, top: str = "dataset", files: int = 3) -> Path:
    """A tar.gz holding ``top/sub/file<i>.txt``; returned from a folder apart from data_dir."""
    src = tmp_path / "src"
    for i in range(files):
        path = src / top / "sub" / f"file{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content {i}\n")
    served = tmp_path / "server"
    served.mkdir()
    archive = served / "dataset.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / top, arcname=top)
    return archive


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def archive(tmp_path):
    return make_archive(tmp_path)


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_md5sum_matches_hashlib(archive):
    assert dl.md5sum(archive) == md5_of(archive)


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYDM_DATA", str(tmp_path / "env"))
    assert dl.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert dl.data_dir() == tmp_path / "env"
    monkeypatch.delenv("TINYDM_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.data_dir() == tmp_path / "home" / ".cache" / "tinydm"


def test_download_verifies_and_moves_into_place(archive, root):
    dest = dl.download(archive.as_uri(), root / "got.tar.gz", md5_of(archive), progress=False)
    assert dest == root / "got.tar.gz"
    assert dest.read_bytes() == archive.read_bytes()
    assert leftovers(root) == []


def test_download_with_wrong_md5_keeps_nothing(archive, root):
    with pytest.raises(dl.ChecksumError, match="expected 0{32}"):
        dl.download(archive.as_uri(), root / "got.tar.gz", "0" * 32, progress=False)
    assert list(root.iterdir()) == []


def test_download_rejects_a_malformed_md5(archive, root):
    with pytest.raises(ValueError, match="md5 must be a 32-digit hexadecimal string, got 'abc'"):
        dl.download(archive.as_uri(), root / "got.tar.gz", "abc", progress=False)


def test_extract_tar_is_complete_and_leaves_no_temporary_folder(archive, root):
    folder = dl.extract_tar(archive, root, "dataset")
    assert folder == root / "dataset"
    assert sorted(p.name for p in (folder / "sub").iterdir()) == [f"file{i}.txt" for i in range(3)]
    assert leftovers(root) == []


def test_extract_tar_wrong_top_level_folder(archive, root):
    with pytest.raises(dl.DataError, match=r"does not contain the folder 'other'.*\['dataset'\]"):
        dl.extract_tar(archive, root, "other")
    assert list(root.iterdir()) == []


def test_extract_tar_refuses_an_existing_target(archive, root):
    (root / "dataset").mkdir()
    with pytest.raises(dl.DataError, match="already exists"):
        dl.extract_tar(archive, root, "dataset")


def test_extract_tar_refuses_members_outside_the_destination(tmp_path, root):
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="dataset/ok.txt")
        tar.add(payload, arcname="../escaped.txt")
    with pytest.raises(tarfile.FilterError):
        dl.extract_tar(evil, root, "dataset")
    assert not (tmp_path / "escaped.txt").exists()
    assert list(root.iterdir()) == []


def test_interrupted_extraction_leaves_no_folder(archive, root, monkeypatch):
    real_extract = tarfile.TarFile.extract

    def extract_one_then_die(self, path, filter=None):
        real_extract(self, self.getmembers()[-1], path, filter=filter)  # a part is on disk...
        raise KeyboardInterrupt  # ... when the process is interrupted

    monkeypatch.setattr(tarfile.TarFile, "extractall", extract_one_then_die)
    with pytest.raises(KeyboardInterrupt):
        dl.extract_tar(archive, root, "dataset")
    assert list(root.iterdir()) == []


def test_ensure_dataset_downloads_verifies_and_extracts(archive, root):
    folder = dl.ensure_dataset("Toy", archive.as_uri(), md5_of(archive), "dataset", root=root,
                               progress=False)
    assert folder == root / "dataset"
    assert (folder / "sub" / "file2.txt").read_text() == "content 2\n"
    assert (root / "dataset.tar.gz").read_bytes() == archive.read_bytes()
    assert leftovers(root) == []


def test_ensure_dataset_uses_an_existing_folder_without_network(root):
    (root / "dataset").mkdir()
    folder = dl.ensure_dataset("Toy", "file:///nonexistent/dataset.tar.gz", "0" * 32, "dataset",
                               root=root)
    assert folder == root / "dataset"


def test_ensure_dataset_uses_a_local_archive_without_network(archive, root):
    os.replace(archive, root / "dataset.tar.gz")
    folder = dl.ensure_dataset("Toy", "file:///nonexistent/dataset.tar.gz", md5_of(
        root / "dataset.tar.gz"), "dataset", root=root, allow_download=False)
    assert (folder / "sub" / "file0.txt").exists()


def test_ensure_dataset_rejects_a_corrupt_local_archive(archive, root):
    good_md5 = md5_of(archive)
    (root / "dataset.tar.gz").write_bytes(archive.read_bytes()[:100])  # a partial copy
    with pytest.raises(dl.ChecksumError) as info:
        dl.ensure_dataset("Toy", archive.as_uri(), good_md5, "dataset", root=root)
    message = str(info.value)
    assert str(root / "dataset.tar.gz") in message and "delete it" in message
    assert not (root / "dataset").exists()  # never extracted
    assert leftovers(root) == []


def test_ensure_dataset_rejects_a_bad_download(archive, root):
    with pytest.raises(dl.ChecksumError):
        dl.ensure_dataset("Toy", archive.as_uri(), "f" * 32, "dataset", root=root,
                          progress=False)
    assert list(root.iterdir()) == []


def test_ensure_dataset_ignores_a_killed_extraction(archive, root):
    os.replace(archive, root / "dataset.tar.gz")
    half = root / ".dataset.extract-k1ll3d" / "dataset" / "sub"  # what a SIGKILL leaves
    half.mkdir(parents=True)
    (half / "file0.txt").write_text("trunc")
    folder = dl.ensure_dataset("Toy", "file:///nonexistent/dataset.tar.gz",
                               md5_of(root / "dataset.tar.gz"), "dataset", root=root)
    assert sorted(p.name for p in (folder / "sub").iterdir()) == [f"file{i}.txt" for i in range(3)]
    assert (folder / "sub" / "file0.txt").read_text() == "content 0\n"


def test_ensure_dataset_offline_names_the_url_and_the_path(root):
    url = (root.parent / "unreachable" / "dataset.tar.gz").as_uri()
    with pytest.raises(dl.DataError) as info:
        dl.ensure_dataset("Toy", url, "0" * 32, "dataset", root=root, progress=False)
    message = str(info.value)
    assert url in message
    assert f"put it at {root / 'dataset.tar.gz'}" in message
    assert leftovers(root) == []


def test_ensure_dataset_without_download_names_the_path(root):
    url = "https://example.org/dataset.tar.gz"
    expected = f"Download {url} and put it at {root / 'dataset.tar.gz'}"
    with pytest.raises(dl.DataError, match=re.escape(expected)):
        dl.ensure_dataset("Toy", "https://example.org/dataset.tar.gz", "0" * 32, "dataset",
                          root=root, allow_download=False)


def test_ensure_dataset_defaults_to_tinydm_data(archive, root, monkeypatch):
    monkeypatch.setenv("TINYDM_DATA", str(root))
    folder = dl.ensure_dataset("Toy", archive.as_uri(), md5_of(archive), "dataset",
                               progress=False)
    assert folder == root / "dataset"
