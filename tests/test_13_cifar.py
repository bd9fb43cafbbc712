"""The CIFAR experiment: batched device-side augmentation, batch sampling as a pure function of
the iteration, and whole tiny runs on synthetic images (no network, no real data) on "cpu" and
on the CPU stand-in for CuPy, including a killed run resumed to the uninterrupted result."""

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinydm import backend, checkpoint
from tinydm.data import sampling, transforms
from tinydm.experiments import cifar
import tinydm as td
from tinydm.train import predict, predicted_classes
from conftest import DEVICES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import cifar_report  # noqa: E402
import cifar_resnet  # noqa: E402


def host(a):
    return backend.to_numpy(a)


def images_on_device(rng, n=6, size=8, dtype=np.uint8):
    x = rng.integers(0, 256, size=(n, 3, size, size)).astype(dtype)
    return x, backend.to_device(x)


# ----------------------------------------------------------------------------------------------
# Transforms
# ----------------------------------------------------------------------------------------------
def test_normalize_subtracts_mean_and_divides_by_std(device, rng):
    x, xd = images_on_device(rng)
    out = transforms.normalize(xd)
    assert backend.device_of(out) == device and out.dtype == np.float32
    mean = np.array(transforms.CIFAR_MEAN)[:, None, None]
    np.testing.assert_allclose(host(out), x - mean, atol=1e-4)
    out = transforms.normalize(xd, std=transforms.CIFAR_STD)
    expected = (x - mean) / np.array(transforms.CIFAR_STD)[:, None, None]
    np.testing.assert_allclose(host(out), expected, atol=1e-5)
    with pytest.raises(ValueError, match="mean has 2 values"):
        transforms.normalize(xd, mean=(1.0, 2.0))


def test_crop_is_one_gather_of_the_right_windows(device, rng):
    x, xd = images_on_device(rng, n=5, size=10)
    top, left, flip = rng.integers(0, 5, 5), rng.integers(0, 5, 5), rng.integers(0, 2, 5) == 1
    out = host(transforms.crop(xd, backend.to_device(top), backend.to_device(left), 6,
                               backend.to_device(flip)))
    for n in range(5):
        window = x[n, :, top[n]:top[n] + 6, left[n]:left[n] + 6]
        np.testing.assert_array_equal(out[n], window[:, :, ::-1] if flip[n] else window)
    assert out.dtype == np.uint8


def test_random_crop_flip_pads_with_zeros_and_is_deterministic(device, rng):
    x, xd = images_on_device(rng, n=16, size=8)
    out = host(transforms.random_crop_flip(xd, backend.rng(7), size=8, padding=4))
    again = host(transforms.random_crop_flip(xd, backend.rng(7), size=8, padding=4))
    other = host(transforms.random_crop_flip(xd, backend.rng(8), size=8, padding=4))
    assert out.shape == x.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)
    # The same draws, replayed on the host, give the same windows of the zero-padded images.
    g = np.random.default_rng(7)
    top, left, flip = g.integers(0, 9, 16), g.integers(0, 9, 16), g.integers(0, 2, 16) == 1
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for n in range(16):
        window = padded[n, :, top[n]:top[n] + 8, left[n]:left[n] + 8]
        np.testing.assert_array_equal(out[n], window[:, :, ::-1] if flip[n] else window)


def test_center_crop_and_full_size_crop(device, rng):
    x, xd = images_on_device(rng, size=9)
    np.testing.assert_array_equal(host(transforms.center_crop(xd, 5)), x[:, :, 2:7, 2:7])
    out = host(transforms.random_crop_flip(xd, backend.rng(0), size=9, flip=False))
    np.testing.assert_array_equal(out, x)  # no padding and a full-size crop: the identity
    with pytest.raises(ValueError, match="does not fit"):
        transforms.center_crop(xd, 10)


def test_resize_bilinear_matches_pillow(device, rng):
    from PIL import Image

    x, xd = images_on_device(rng, n=3, size=32)
    out = host(transforms.resize_bilinear(xd, 36, chunk=2))
    assert out.shape == (3, 3, 36, 36) and out.dtype == np.uint8
    for n in range(3):
        for c in range(3):
            ref = np.asarray(Image.fromarray(x[n, c]).resize((36, 36), Image.BILINEAR))
            assert np.abs(ref.astype(int) - out[n, c].astype(int)).max() <= 1  # PIL: fixed point
    flat = backend.to_device(np.full((2, 3, 8, 8), 77, dtype=np.uint8))
    assert (host(transforms.resize_bilinear(flat, 12)) == 77).all()
    ramp = backend.to_device(np.tile(np.arange(8, dtype=np.float32), (1, 1, 8, 1)))
    down = host(transforms.resize_bilinear(ramp, 4))  # 2:1 averages pixel pairs
    np.testing.assert_allclose(down[0, 0, 0], [0.5, 2.5, 4.5, 6.5])


@pytest.mark.parametrize("augment", transforms.AUGMENTATIONS)
def test_pipeline_shapes_and_determinism(device, rng, augment):
    x, xd = images_on_device(rng, n=4, size=32)
    pipe = transforms.Pipeline(augment)
    prepared = pipe.prepare(xd)
    assert prepared.shape[2:] == ((36, 36) if augment == "resize" else (32, 32))
    a, b = pipe.train(prepared, backend.rng(1)), pipe.train(prepared, backend.rng(1))
    assert a.shape == (4, 3, 32, 32) and a.dtype == np.float32 and backend.device_of(a) == device
    np.testing.assert_array_equal(host(a), host(b))
    t = pipe.test(prepared)
    assert t.shape == (4, 3, 32, 32)
    if augment != "resize":
        np.testing.assert_array_equal(host(t), host(transforms.normalize(xd)))
    assert pipe.describe()


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------
def test_shuffled_batches_visit_every_example_once_per_epoch(device):
    n, b = 50, 16
    order = sampling.ShuffledBatches(n, b, seed=3)
    stream = np.concatenate([host(order(it)) for it in range(3 * n // b + 1)])
    for e in range(3):
        assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
    assert not np.array_equal(stream[:n], stream[n:2 * n])  # reshuffled
    fresh = sampling.ShuffledBatches(n, b, seed=3)  # pure: any order of calls, any object
    for it in (7, 2, 9, 3):
        np.testing.assert_array_equal(host(fresh(it)), stream[it * b:(it + 1) * b])
    assert backend.device_of(order(0)) == device
    assert not np.array_equal(host(sampling.ShuffledBatches(n, b, seed=4)(0)), stream[:b])


def test_balanced_batches_cifar10_generalisation(device, rng):
    labels = rng.integers(0, 10, 3000)
    sampler = sampling.BalancedBatches(labels, 128, seed=1)
    assert sampler.classes_per_batch == 10
    for it in range(3):
        idx = host(sampler(it))
        assert idx.shape == (128,) and len(set(idx)) == 128  # no repeats within a batch
        counts = np.bincount(labels[idx], minlength=10)
        assert sorted(counts) == [12, 12] + [13] * 8
    np.testing.assert_array_equal(host(sampling.BalancedBatches(labels, 128, seed=1)(2)),
                                  host(sampler(2)))


def test_balanced_batches_paper_cifar100_and_small_classes(device, rng):
    labels = np.repeat(np.arange(100), 20)
    sampler = sampling.BalancedBatches(labels, 256, seed=0)  # the paper's 32 classes x 8
    idx = host(sampler(5))
    counts = np.bincount(labels[idx], minlength=100)
    assert (counts > 0).sum() == 32 and set(counts[counts > 0]) == {8} and len(set(idx)) == 256
    assert not np.array_equal(host(sampler(6)), idx)
    tiny = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])  # class 0 has 3 images, 4 are needed
    idx = host(sampling.BalancedBatches(tiny, 8, seed=0, images_per_class=4)(0))
    assert sorted(np.bincount(tiny[idx])) == [4, 4] and set(idx[tiny[idx] == 0]) == {0, 1, 2}


def test_iteration_rng_streams_are_independent():
    a = sampling.iteration_rng(1, "augment", 5, "cpu").random(4)
    b = sampling.iteration_rng(1, "shuffle", 5, "cpu").random(4)
    np.testing.assert_array_equal(a, sampling.iteration_rng(1, "augment", 5, "cpu").random(4))
    assert not np.array_equal(a, b)
    # the CPU keeps the draws of earlier versions: NumPy seeded by (seed, stream, index)
    np.testing.assert_array_equal(a, np.random.default_rng([1, 3, 5]).random(4))
    with pytest.raises(ValueError, match="unknown stream"):
        sampling.iteration_rng(1, "nope", 0)
    with pytest.raises(ValueError, match="index must be >= 0"):
        sampling.RandomStream(1, "augment").at(-1)


@pytest.mark.parametrize("dev", [d for d in DEVICES if d != "cpu"])
def test_gpu_random_stream_is_counter_based_and_pure(dev, rng, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a generator made per index on a GPU")
    monkeypatch.setattr(backend, "rng", refuse)
    monkeypatch.setattr(sampling, "COUNTER_DEVICES", (dev,))  # the stand-in as the GPU
    stream = sampling.RandomStream(1, "augment", dev)
    g = stream.at(5)
    a, b = g.random(1000), g.random((2, 3), dtype=np.float32)
    assert backend.device_of(a) == dev and a.dtype == np.float64 and b.dtype == np.float32
    assert b.shape == (2, 3) and not np.array_equal(host(a[:6]), host(b).ravel())  # next call
    again = sampling.RandomStream(1, "augment", dev).at(5)  # pure: a fresh object, same draws
    np.testing.assert_array_equal(host(again.random(1000)), host(a))
    cpu = sampling.CounterGenerator(stream._key, 5, np)  # the same bits on every device
    np.testing.assert_array_equal(cpu.random(1000), host(a))
    for other in (stream.at(6), sampling.RandomStream(2, "augment", dev).at(5),
                  sampling.RandomStream(1, "shuffle", dev).at(5)):
        assert not np.array_equal(host(other.random(1000)), host(a))
    u = host(stream.at(0).random(100_000))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005  # 5 sd
    k = host(stream.at(1).integers(3, 13, size=100_000))
    counts = np.bincount(k - 3, minlength=10)
    assert k.min() == 3 and k.max() == 12 and k.dtype == np.int64
    assert ((counts - 1e4) ** 2 / 1e4).sum() < 40  # chi-square, 9 dof: p < 1e-5 to fail
    # the samplers and the augmentation draw from their streams, made once
    order = sampling.ShuffledBatches(20, 8, seed=1, device=dev)
    assert sorted(np.concatenate([host(order(it)) for it in range(5)])[:20]) == list(range(20))
    assert host(sampling.BalancedBatches(np.arange(40) % 4, 8, 1, device=dev)(3)).shape == (8,)
    pipe = transforms.Pipeline("pad")
    images = pipe.prepare(backend.to_device(images_on_device(rng, n=4, size=32)[0], dev))
    crops = pipe.train(images, stream.at(2))
    assert backend.device_of(crops) == dev and crops.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(host(crops), host(pipe.train(
        images, sampling.RandomStream(1, "augment", dev).at(2))))


# ----------------------------------------------------------------------------------------------
# Data preparation
# ----------------------------------------------------------------------------------------------
TINY = dict(dataset="synthetic", synthetic_sizes=(120, 16), synthetic_image_size=8, depth=8,
            batch_size=8, iterations=12, eval_every=4, log_every=3, eval_batch_size=16)


def test_subset_split_noise_and_eval_subset():
    config = cifar.Config(**TINY, subset_per_class=10, val_fraction=0.2, noise_rate=0.5,
                          noise_exact=True, eval_train_subset=30)
    data = cifar.prepare_data(config)
    assert len(data.labels) == 80 and len(data.val_labels) == 20
    assert (np.bincount(data.val_labels) == 2).all() and (np.bincount(data.clean_labels) == 8).all()
    assert data.corrupted.sum() == 40 and (data.labels != data.clean_labels).sum() == 40
    assert len(data.eval_index) == 30 and (np.diff(data.eval_index) > 0).all()
    info = data.summary(config)
    assert info["noise_rate_realised"] == 0.5
    assert "subset of 30 of the 80" in info["eval_train_note"]
    # The validation images are not training images (the synthetic images are all distinct).
    train_rows = {img.tobytes() for img in data.train_images}
    assert not any(img.tobytes() in train_rows for img in data.val_images)


def test_protocol_m_takes_the_first_images_of_each_class_and_the_next_as_validation():
    """Protocol M (docs/results.md): the first K images of each class in the files' order, the
    next V held out clean; noise is drawn on the subset only, seeded by the run's seed."""
    config = cifar.Config(**TINY, subset_per_class=5, subset_order="first", val_per_class=3,
                          noise_rate=0.4, noise_exact=True)
    ds = cifar.load_dataset(config)
    data = cifar.prepare_data(config, ds)
    first = np.sort(np.concatenate([np.flatnonzero(ds.train_labels == c)[:5] for c in range(10)]))
    after = np.sort(np.concatenate([np.flatnonzero(ds.train_labels == c)[5:8]
                                    for c in range(10)]))
    np.testing.assert_array_equal(data.train_images, ds.train_images[first])
    np.testing.assert_array_equal(data.clean_labels, ds.train_labels[first])
    np.testing.assert_array_equal(data.val_images, ds.train_images[after])
    np.testing.assert_array_equal(data.val_labels, ds.train_labels[after])
    assert data.corrupted.sum() == 20
    other_seed = cifar.prepare_data(replace(config, seed=124), ds)
    np.testing.assert_array_equal(other_seed.train_images, data.train_images)  # same images,
    assert (other_seed.labels != data.labels).any()                           # other noise
    # random order: the held-out images come from outside the subset
    rand = cifar.prepare_data(replace(config, subset_order="random"), ds)
    train_rows = {img.tobytes() for img in rand.train_images}
    assert len(rand.val_labels) == 30 and not any(i.tobytes() in train_rows for i in rand.val_images)
    with pytest.raises(ValueError, match="need 13 images of each class"):
        cifar.prepare_data(replace(config, subset_per_class=10), ds)
    with pytest.raises(ValueError, match="val_per_class"):
        cifar.Config(val_per_class=3)


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown loss"):
        cifar.Config(loss="hinge")
    with pytest.raises(ValueError, match="missing parameter"):
        cifar.Config(loss="dm")
    with pytest.raises(ValueError, match="CIFAR-100's"):
        cifar.Config(noise="asymmetric")
    with pytest.raises(ValueError, match="batch_size"):
        cifar.Config(batch_size=0)
    resolved = cifar.Config(iterations=30000).resolved()
    assert resolved.milestones == (15000, 22000) and resolved.data_seed == resolved.seed
    assert resolved.out_dir == str(Path("runs/cifar") / resolved.name)
    # a record's config (JSON: lists for tuples) gives back the same settings, as a sweep's dict
    assert cifar.Config.from_dict(json.loads(json.dumps(resolved.as_dict()))) == resolved
    with pytest.raises(ValueError, match=r"unknown setting\(s\) epochs"):
        cifar.Config.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="noise_rate"):
        cifar.Config(noise_rate=float("nan"))


# ----------------------------------------------------------------------------------------------
# Whole runs
# ----------------------------------------------------------------------------------------------
RUN = dict(TINY, loss="dm", loss_params={"lam": 1.0, "beta": 16.0}, noise_rate=0.4,
           val_fraction=0.2, eval_train_subset=40, sampler="balanced", images_per_class=2,
           augment="resize")


def without_timing(evals):
    return [{k: v for k, v in e.items() if k != "eval_seconds"} for e in evals]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 12-iteration run on "cpu", with its figures."""
    out = tmp_path_factory.mktemp("cifar") / "reference"
    results = cifar.run(cifar.Config(**RUN, out_dir=str(out)), progress=False, log=None)
    return out, results


def test_run_records_everything(reference_run):
    out, results = reference_run
    assert json.loads((out / "results.json").read_text())["status"] == "done"
    evals = results["history"]["evals"]
    assert [e["iteration"] for e in evals] == [4, 8, 12]
    for e in evals:
        for key in ("test_accuracy", "val_accuracy", "train_accuracy_noisy_labels",
                    "train_accuracy_clean_labels", "mean_p_clean", "mean_p_noisy",
                    "noisy_memorised", "noisy_corrected"):
            assert 0.0 <= e[key] <= 1.0, key
        assert sum(e["test_class_histogram"]) == 16
    steps = results["history"]["steps"]
    assert [s["iteration"] for s in steps] == [1, 3, 6, 9, 12]
    assert all(0 < s["ess_fraction"] <= 1 for s in steps)
    s = results["summary"]
    assert s["test_accuracy_final"] == evals[-1]["test_accuracy"]
    assert s["test_accuracy_best"] == max(e["test_accuracy"] for e in evals)
    assert 0 < s["ess_final"] <= 8 and "val_accuracy_best" in s
    assert results["data"]["eval_train_size"] == 40 and results["timing"]["step_ms"] > 0
    for name in cifar.FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert "test best" in cifar.format_summary(results)
    # which swaps of the noise are learnt by heart: [clean, given, count(, memorised)]
    noise = results["data"]["noise_pairs"]
    assert all(i != j and c > 0 for i, j, c in noise)
    assert sum(c for *_, c in noise) == round(results["data"]["noise_rate_realised"]
                                              * results["data"]["train_size"])
    pairs = s["noisy_memorised_pairs_final"]
    assert "noisy_memorised_pairs" not in evals[0] and pairs == evals[-1]["noisy_memorised_pairs"]
    total = {(i, j): c for i, j, c in noise}
    assert all(i != j and 0 <= m <= c <= total[i, j] for i, j, c, m in pairs)
    assert sum(m for *_, m in pairs) / sum(c for _, _, c, _ in pairs) == \
        pytest.approx(s["noisy_memorised_final"])


def test_standin_device_gives_the_cpu_result(reference_run, tmp_path):
    _, reference = reference_run
    results = cifar.run(cifar.Config(**RUN, device="standin", out_dir=str(tmp_path)),
                        progress=False, figures=False, log=None)
    assert (without_timing(results["history"]["evals"])
            == without_timing(reference["history"]["evals"]))
    assert results["history"]["steps"] == reference["history"]["steps"]


def test_killed_run_resumes_to_the_uninterrupted_result(reference_run, tmp_path, monkeypatch):
    ref_dir, reference = reference_run
    config = cifar.Config(**RUN, out_dir=str(tmp_path))
    save, saves = checkpoint.save, []

    def save_then_die(*args, **kwargs):  # killed right after the checkpoint at iteration 8
        save(*args, **kwargs)
        saves.append(kwargs.get("extra", {}).get("iteration"))
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):  # named as a sweep names its work folders
        cifar.run(config, progress=False, figures=False, log=None, named_out_dir="work/cell")
    monkeypatch.setattr(checkpoint, "save", save)
    assert saves == [4, 8]
    running = json.loads((tmp_path / cifar.RESULTS).read_text())
    assert running["status"] == "running" and running["config"]["out_dir"] == "work/cell"
    assert str(tmp_path) not in (tmp_path / cifar.RESULTS).read_text()
    assert checkpoint.read(tmp_path / "checkpoint.npz")["extra"]["config"]["out_dir"] == "work/cell"
    with pytest.raises(FileExistsError, match="resume"):
        cifar.run(config, progress=False, figures=False, log=None)
    with pytest.raises(ValueError, match="lr"):
        cifar.run(replace(config, lr=0.2), resume=True, progress=False, figures=False, log=None)

    results = cifar.run(config, resume=True, progress=False, figures=False, log=None)
    assert (without_timing(results["history"]["evals"])
            == without_timing(reference["history"]["evals"]))
    assert results["history"]["steps"] == reference["history"]["steps"]
    ours = checkpoint.read(tmp_path / "checkpoint.npz")
    theirs = checkpoint.read(ref_dir / "checkpoint.npz")
    assert ours["model"].keys() == theirs["model"].keys()
    for name in ours["model"]:
        np.testing.assert_array_equal(ours["model"][name], theirs["model"][name], err_msg=name)
    for a, b in zip(ours["optimizer"]["state"], theirs["optimizer"]["state"]):
        np.testing.assert_array_equal(a["momentum_buffer"], b["momentum_buffer"])


def test_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cifar_resnet.main(["--help"])
    assert e.value.code == 0 and "--subset-per-class" in capsys.readouterr().out
    out = tmp_path / "cli"
    results = cifar_resnet.main([
        "--dataset", "synthetic", "--synthetic-size", "64", "16", "--depth", "8",
        "--batch-size", "8", "--iterations", "4", "--eval-every", "2", "--loss", "gce",
        "--q", "0.5", "--noise", "symmetric", "--noise-rate", "0.2", "--eval-train-subset", "20",
        "--out", str(out), "--no-progress", "--no-figures", "--milestones", "3"])
    assert results["config"]["loss_params"] == {"q": 0.5}
    assert results["config"]["milestones"] == [3]
    assert [e["iteration"] for e in results["history"]["evals"]] == [2, 4]
    assert (out / "results.json").exists()
    assert "ms per training iteration" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="error: .*unknown loss"):
        cifar_resnet.main(["--loss", "nope"])


def test_predicted_classes_counts_classes_above_one_percent():
    assert predicted_classes([1000] * 10) == (10, 0.1)
    assert predicted_classes([8930, 0, 0, 0, 1070, 0, 0, 0, 0, 0]) == (2, 0.893)
    # 99 of 10,000 is below the 1% line, 100 is on it
    assert predicted_classes([9801, 99, 100]) == (2, 0.9801)


def test_report_compares_runs_in_table_9_columns(reference_run, tmp_path, capsys):
    out, results = reference_run
    s = results["summary"]
    table = cifar.markdown_table({"DM": results}).splitlines()
    assert len(table) == 3 and table[0].count("|") == table[2].count("|") == 11
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    assert cells[0] == "DM"
    assert cells[1] == f"{100 * s['test_accuracy_best']:.1f} ({s['test_accuracy_best_iteration']})"
    assert cells[3] == f"{100 * s['train_accuracy_noisy_labels_final']:.1f}"
    assert cells[5] == f"{s['mean_p_clean_final']:.3f} / {s['mean_p_noisy_final']:.3f}"
    assert cells[8] == "12"  # iterations done, no "(running)": the run finished
    runs = cifar_report.main([f"A={out}", f"B, β=16={out}", "--out", str(tmp_path)])
    assert list(runs) == ["A", "B, β=16"] and "| B, β=16 |" in capsys.readouterr().out
    assert "| A |" in (tmp_path / "table.md").read_text()
    for name in ("accuracy", "p_i", "ess", "collapse"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        cifar_report.main([f"{tmp_path}", "--out", str(tmp_path)])  # no LABEL=
    with pytest.raises(SystemExit):
        cifar_report.main([f"A={tmp_path / 'nothing'}", "--out", str(tmp_path)])


# ----------------------------------------------------------------------------------------------
# Seeds of methods (protocol M)
# ----------------------------------------------------------------------------------------------
SEEDS_RUN = dict(TINY, noise_rate=0.4, subset_per_class=10, subset_order="first",
                 val_per_class=2, augment="none")


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """CCE and DM, seeds 1 and 2 each, 12 iterations on synthetic images."""
    root = tmp_path_factory.mktemp("seeds")
    runs = []
    for loss, params in (("cce", {}), ("dm", {"lam": 0.5, "beta": 2.0})):
        for seed in (1, 2):
            config = cifar.Config(**SEEDS_RUN, loss=loss, loss_params=params, seed=seed,
                                  out_dir=str(root / f"{loss}{seed}"))
            runs.append(cifar.run(config, progress=False, figures=False, log=None))
    return root, runs


def test_seed_report_groups_methods_and_pairs_seeds(seed_runs, tmp_path, capsys):
    root, runs = seed_runs
    groups = cifar.seeds.group_runs(runs)
    assert list(groups) == ["CCE", "DM lam=0.5 beta=2"] and list(groups["CCE"]) == [1, 2]
    final = [r["summary"]["test_accuracy_final"] for r in runs]
    diffs = cifar.seeds.paired_differences(groups, "CCE")["DM lam=0.5 beta=2"]
    assert {seed: d[:2] for seed, d in diffs.items()} == {1: (12, final[2] - final[0]),
                                                          2: (12, final[3] - final[1])}
    # a run still going is compared at the last iteration both have evaluated
    short = json.loads(json.dumps(runs[2]))
    short["history"]["evals"] = short["history"]["evals"][:1]
    cce_at = runs[0]["history"]["evals"][0]
    assert cifar.seeds.paired_differences({"CCE": {1: runs[0]}, "DM": {1: short}}, "CCE") == \
        {"DM": {1: (cce_at["iteration"], short["history"]["evals"][0]["test_accuracy"]
                    - cce_at["test_accuracy"], short["history"]["evals"][0]["test_accuracy"]
                    - cce_at["test_accuracy"])}}
    table = cifar.seeds.markdown_table(groups).splitlines()
    mean, sd = np.mean(final[:2]), np.std(final[:2], ddof=1)
    assert "| CCE | 1, 2 | " in table[2]
    assert f"{100 * mean:.1f} ± {100 * sd:.1f} ({100 * final[0]:.1f}, {100 * final[1]:.1f})" \
        in table[2]
    # an unfinished run is a row of its own, never averaged with finished ones
    going = json.loads(json.dumps(runs[1]))
    going["status"] = "running"
    table = cifar.seeds.markdown_table({"CCE": {1: runs[0], 2: going}}).splitlines()
    assert table[2].startswith(f"| CCE | 1 | {100 * runs[0]['summary']['test_accuracy_best']:.1f}")
    assert table[3].startswith("| CCE (running) | 2 | ") and len(table) == 4
    paired = cifar.seeds.paired_table({"CCE": {1: runs[0], 2: going},
                                       "DM": {1: runs[2], 2: runs[3]}}, "CCE").splitlines()
    assert paired[2].startswith("| DM | 1 | ") and paired[3].startswith("| DM (running) | 2 | ")
    # two unfinished runs, stopped at different iterations, are two rows: no mean of them
    first = json.loads(json.dumps(runs[0]))
    first["status"] = "running"
    table = cifar.seeds.markdown_table({"CCE": {1: first, 2: going}}).splitlines()
    assert table[2].startswith("| CCE (running) | 1 | ") and "±" not in table[2]
    assert table[3].startswith("| CCE (running) | 2 | ") and len(table) == 4
    groups_again = cifar_report.main(["--seeds", *(str(root / f) for f in ("cce1", "cce2",
                                      "dm1", "dm2")), "--baseline", "CCE", "--out",
                                      str(tmp_path)])
    assert list(groups_again) == list(groups)
    assert "final - CCE final" in (tmp_path / "seeds.md").read_text()
    assert (tmp_path / "seeds.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):  # a baseline that is not there
        cifar_report.main(["--seeds", str(root / "cce1"), "--baseline", "GCE", "--out",
                           str(tmp_path)])
    other = json.loads(json.dumps(runs[1]))
    other["config"]["noise_rate"] = 0.2
    with pytest.raises(ValueError, match="runs of CCE differ in noise_rate"):
        cifar.seeds.group_runs([runs[0], other])
    with pytest.raises(ValueError, match="two runs of CCE with seed 1"):
        cifar.seeds.group_runs([runs[0], runs[0]])


def test_the_validation_choice_uses_finished_runs_and_never_the_test_set(seed_runs, tmp_path):
    _, runs = seed_runs
    dm = json.loads(json.dumps(runs[2]))  # the same run under two labels, its val curve moved
    other = json.loads(json.dumps(runs[2]))
    for e in other["history"]["evals"]:
        e["val_accuracy"] += 0.01
        e["test_accuracy"] -= 0.5  # a test accuracy the choice must not look at
    groups = {"DM a": {1: dm}, "DM b": {1: other}}
    chosen, scores = cifar.seeds.validation_choice(groups, ["DM a", "DM b"], seed=1)
    assert chosen == "DM b"
    best = max(e["val_accuracy"] for e in other["history"]["evals"])
    assert scores["DM b"][0] == best and scores["DM b"][3] == "done"
    other["status"] = "running"  # an unfinished candidate: no choice yet, and the table says why
    assert cifar.seeds.validation_choice(groups, ["DM a", "DM b"], seed=1)[0] is None
    assert "Not chosen yet: DM b" in cifar.seeds.validation_table(groups, ["DM a", "DM b"], 1)
    other["status"] = "done"  # a candidate without runs: not chosen over, shown as not run
    assert cifar.seeds.validation_choice(groups, ["DM a", "DM b", "DM c"], seed=1)[0] is None
    assert "| DM c | | | | not run |" in cifar.seeds.validation_table(groups, ["DM c"], 1)
    cifar_report.main(["--seeds", *(r["config"]["out_dir"] for r in runs), "--baseline", "CCE",
                       "--choose", "DM lam=0.5 beta=2", "--choose-seed", "1",
                       "--out", str(tmp_path)])
    report = (tmp_path / "seeds.md").read_text()
    assert "| DM lam=0.5 beta=2 (chosen) |" in report
    assert report.count("python examples/cifar_resnet.py ") == len(runs)


def test_a_config_gives_the_command_line_that_runs_it():
    """Config.command() parsed by examples/cifar_resnet.py gives the same settings back."""
    for config in (cifar.Config(data_dir="~/data", subset_per_class=1000, subset_order="first",
                                val_per_class=200, iterations=6000, milestones=(3000, 4500),
                                eval_every=500, log_every=50, seed=124, loss="dm",
                                loss_params={"lam": 1, "beta": 16, "per_class": True},
                                out_dir="runs/cifar/m/dm seed124"),
                   cifar.Config(dataset="synthetic", synthetic_sizes=(64, 16), loss="gce",
                                loss_params={"q": 0.7}, std=(63.0, 62.1, 66.7), data_seed=7,
                                noise="none", noise_exact=True,
                                lr=0.05, sgd="pytorch", sampler="balanced", device="cpu")):
        config = config.resolved()
        command = config.command()
        assert command.startswith("python examples/cifar_resnet.py ")
        words = command.split(" ", 2)[2]
        args = cifar_resnet.parse_args(shlex.split(words))
        assert cifar_resnet.config_from_args(args).resolved() == config


def test_intact_accuracy_matches_the_saved_model(seed_runs):
    """The intact examples' accuracy derived from the record equals the saved network's
    accuracy on them, computed here from its checkpoint."""
    root, runs = seed_runs
    run = runs[2]
    config = cifar.Config.from_dict(run["config"])
    data = cifar.prepare_data(config)
    model = cifar.build_model(config.resolved(), data.num_classes)
    checkpoint.load(str(root / "dm1" / cifar.CHECKPOINT), model, strict=False)
    pipeline = transforms.Pipeline(config.augment, std=config.std)
    images = pipeline.test(pipeline.prepare(backend.to_device(data.train_images, "cpu")))
    predicted = predict(model, td.Tensor(images)).argmax(axis=1)
    intact = ~data.corrupted
    expected = float((predicted[intact] == data.clean_labels[intact]).mean())
    assert cifar.seeds.intact_accuracy(run) == pytest.approx(expected, abs=1e-12)
