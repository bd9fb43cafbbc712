"""Reliability (docs/reliability.md): no lost results, no silent failures, errors before the
expensive work. One section per guarantee; everything on synthetic data, in seconds."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, checkout_env

import tinydm as td
from tinydm import backend, checkpoint, files, losses, nn, optim
from tinydm.data import DataError, imdb as imdb_data
from tinydm.experiments import cifar, imdb, runner
from tinydm.train import CollapseWatch, Diverged, EmphasisCollapseWarning, fit

ENV = checkout_env()
SHORT = dict(iterations=300, batch_size=50, eval_every=100, log_every=50)
TINY_CIFAR = dict(dataset="synthetic", synthetic_sizes=(64, 16), synthetic_image_size=8,
                  depth=8, batch_size=8, iterations=4, eval_every=2, log_every=1)
HAS_PROC = os.path.isdir("/proc/self")


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blob_features(n_train=400, n_test=200, seed=0):
    rng = np.random.default_rng(seed)

    def blobs(n):
        y = np.repeat([1, 0], n // 2)
        x = rng.standard_normal((n, 100)).astype(np.float32)
        x[:, :10] += 0.8 * (2 * y[:, None] - 1)
        return x, y
    return imdb.Features(*blobs(n_train), *blobs(n_test))


@pytest.fixture(scope="module")
def features():
    return blob_features()


@pytest.fixture
def no_features(monkeypatch):
    """imdb_mlp.py with load_features replaced by a stub that records being called."""
    calls = []
    monkeypatch.setattr(imdb, "load_features", lambda *a, **kw: calls.append(a) or 1 / 0)
    return calls


# ----------------------------------------------------------------------------------------------
# 1. Output folders: locked while a process lives, never silently replaced
# ----------------------------------------------------------------------------------------------
HOLD = ("import sys, time; from tinydm.experiments import runner; "
        "runner.claim_output(sys.argv[1], {'lr': 1}); print('held', flush=True); time.sleep(60)")


def hold(folder):
    """A live process that holds ``folder`` (claim_output), ready when this returns."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                            env=ENV, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_folder_held_by_a_live_process_is_refused_and_free_once_it_dies(tmp_path):
    holder = hold(tmp_path)
    try:
        with pytest.raises(files.FolderInUse, match=f"pid {holder.pid} on host"):
            runner.claim_output(tmp_path, {"lr": 1})
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, and still nothing stale is left
        holder.wait()
    runner.claim_output(tmp_path, {"lr": 1})
    runner.release_output(tmp_path)


def test_a_folder_with_other_settings_is_refused_unless_overwritten(tmp_path):
    runner.claim_output(tmp_path, {"lr": 0.1, "depth": 20})
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.1 there, 0.2 now\)"):
        runner.claim_output(tmp_path, {"lr": 0.2, "depth": 20})
    runner.claim_output(tmp_path, {"lr": 0.2, "depth": 20}, overwrite=True)
    runner.release_output(tmp_path)
    saved = json.loads((tmp_path / runner.SETTINGS_FILE).read_text())
    assert saved == {"lr": 0.2, "depth": 20}


def test_a_second_cifar_process_on_one_out_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar.training, "prepare_data", lambda *a: 1 / 0)  # never reached
    holder = hold(tmp_path)
    try:
        with pytest.raises(files.FolderInUse, match="in use by another live process"):
            cifar.run(cifar.Config(**TINY_CIFAR, out_dir=str(tmp_path)), progress=False)
    finally:
        holder.kill()
        holder.wait()


def claimable_elsewhere(folder):
    """Whether another process can claim ``folder`` now."""
    code = "import sys; from tinydm.experiments import runner; runner.claim_output(sys.argv[1], {})"
    return subprocess.run([sys.executable, "-c", code, str(folder)], env=ENV,
                          capture_output=True, timeout=120).returncode == 0


def test_a_cifar_run_holds_its_folder_only_while_it_runs(tmp_path):
    free, held = tmp_path / "free", tmp_path / "held"
    cifar.run(cifar.Config(**TINY_CIFAR, out_dir=str(free)), progress=False, figures=False,
              log=None)
    assert claimable_elsewhere(free)  # a notebook's next run, a sweep worker's next cell
    runner.claim_output(held, {})  # as a command line claims its --out before any work
    cifar.run(cifar.Config(**TINY_CIFAR, out_dir=str(held)), progress=False, figures=False,
              log=None)
    assert not claimable_elsewhere(held)  # the outer claim is kept ...
    runner.release_output(held)
    assert claimable_elsewhere(held)  # ... until it is released


def test_imdb_runs_of_other_settings_do_not_replace_the_saved_ones(features, tmp_path,
                                                                   monkeypatch):
    main = script("imdb_mlp").main
    monkeypatch.setattr(imdb, "load_features", lambda *a, **kw: features)
    args = ["--rows", "r0", "--methods", "cce", "--seeds", "1", "--batch-size", "50",
            "--eval-every", "100", "--jobs", "1", "--out", str(tmp_path)]
    main(args + ["--iterations", "100"])
    record = tmp_path / "r0" / "cce_seed1.json"
    saved = record.read_bytes()
    with pytest.raises(SystemExit, match="error: .*other settings .*iterations: 100 there, "
                                         "50 now.*--overwrite"):
        main(args + ["--iterations", "50"])
    assert record.read_bytes() == saved
    main(args + ["--iterations", "50", "--overwrite"])
    assert json.loads(record.read_text())["config"]["iterations"] == 50


# ----------------------------------------------------------------------------------------------
# 2. Divergence: every loss checked, the run stops, its record says so, the exit status too
# ----------------------------------------------------------------------------------------------
def tiny_fit(batches, iterations, loss=None, log_every=5, optimizer=optim.SGD, **kw):
    td.manual_seed(0)
    model = nn.MLP([2, 4, 2])
    opt = optimizer(model.parameters(), lr=0.1)
    return model, fit(model, loss or losses.get("cce"), opt, batches, iterations, 2,
                      log_every=log_every, progress=False, **kw)


def test_a_loss_that_is_non_finite_between_logged_steps_stops_the_run_there(device):
    """On the host every loss is read; on a device (the stand-in for CuPy here) a device-side
    flag is, at the log steps and the end: the iteration is exact either way."""
    x, y = td.Tensor(np.ones((4, 2), np.float32)), td.Tensor(np.array([0, 1, 0, 1]))
    bad = td.Tensor(np.full((4, 2), np.nan, np.float32))
    with pytest.raises(Diverged, match="iteration 7") as e:  # logged: 1, 5, (10)
        tiny_fit(lambda it: (bad if it == 6 else x, y), iterations=8)
    assert e.value.iteration == 7 and [s["iteration"] for s in e.value.history.steps] == [1, 5]
    with pytest.raises(Diverged, match="iteration 2"):  # no log step after it: found at the end
        tiny_fit(lambda it: (bad if it == 1 else x, y), iterations=4, log_every=100)


def test_weights_that_become_non_finite_at_the_last_update_are_caught():
    x, y = td.Tensor(np.ones((4, 2), np.float32)), td.Tensor(np.array([0, 1, 0, 1]))

    class Poisoning(optim.SGD):  # its third update leaves inf weights and a finite loss behind
        def step(self):
            super().step()
            self.done = getattr(self, "done", 0) + 1
            if self.done == 3:
                self.poisoned.data[0, 0] = np.inf

    def make(params, lr):
        params = list(params)
        opt = Poisoning(params, lr=lr)
        opt.poisoned = params[0]
        return opt
    with pytest.raises(Diverged, match="weights .* non-finite at iteration 3"):
        tiny_fit(lambda it: (x, y), iterations=3, optimizer=make)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_a_diverging_cifar_run_exits_non_zero_with_status_diverged(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        script("cifar_resnet").main([
            "--dataset", "synthetic", "--synthetic-size", "64", "16", "--depth", "8",
            "--batch-size", "8", "--iterations", "6", "--eval-every", "3", "--log-every", "100",
            "--lr", "1e8", "--out", str(out), "--no-progress", "--no-figures"])
    assert e.value.code == 3 and "diverged" in capsys.readouterr().err
    record = json.loads((out / cifar.RESULTS).read_text())
    diverged_by = record["summary"]["diverged_by"]
    assert record["status"] == "diverged" and 1 <= diverged_by <= 6
    if (out / cifar.CHECKPOINT).exists():  # the last one before: never one of NaN weights
        saved = checkpoint.read(out / cifar.CHECKPOINT)
        assert saved["extra"]["iteration"] < diverged_by
        assert all(np.isfinite(a).all() for a in saved["model"].values())


def test_detect_anomaly_names_the_first_op_with_a_non_finite_output():
    x = td.Tensor(np.array([[1.0, 0.0], [2.0, 3.0]], np.float32), requires_grad=True)
    w = td.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0)
        (x.log() @ w).sum()  # without the context: no error, -inf
        with td.detect_anomaly(), pytest.raises(
                FloatingPointError, match=r"Log forward: the output is non-finite .* shapes "
                                          r"\(2, 2\)$"):
            (x.log() @ w).sum()
        y = td.Tensor(np.array([4.0, 0.0], np.float32), requires_grad=True)
        root = y ** 0.5  # finite forward; backward 0.5 / sqrt(0) is inf
        with td.detect_anomaly(), pytest.raises(FloatingPointError,
                                                match="backward: the gradient of input"):
            root.sum().backward()


# ----------------------------------------------------------------------------------------------
# 3. Resume: the thread counts and the BLAS kernel are in the checkpoint
# ----------------------------------------------------------------------------------------------
def test_a_checkpoint_records_the_threads_and_resume_uses_them(tmp_path):
    model, before = nn.MLP([2, 2]), backend.get_num_threads()
    try:
        backend.set_num_threads(1)
        checkpoint.save(tmp_path / "c.npz", model)
        saved = checkpoint.read(tmp_path / "c.npz")["threads"]
        assert saved["threads"] == 1 and all("architecture" in b for b in saved["blas"])
        backend.set_num_threads(3)
        checkpoint.load(tmp_path / "c.npz", model)  # loading alone changes nothing
        assert backend.get_num_threads() == 3
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # same machine, same kernel: no warning
            checkpoint.load(tmp_path / "c.npz", model, restore_threads=True)
        assert backend.get_num_threads() == 1
    finally:
        backend.set_num_threads(before)


def test_resuming_on_another_blas_kernel_warns_plainly():
    saved = {"threads": backend.get_num_threads(),
             "blas": [{"internal_api": "openblas", "version": "0.0", "architecture": "Elsewhere",
                       "num_threads": 1}]}
    problems = backend.restore_thread_settings(saved)
    assert len(problems) == 1 and "Elsewhere kernel" in problems[0]


# ----------------------------------------------------------------------------------------------
# 4. Worker processes die with their parent; SIGTERM stops cleanly
# ----------------------------------------------------------------------------------------------
RUN_JOBS = """
import importlib.util, sys
sys.path.insert(0, {tests!r})
from test_reliability import blob_features, script
from tinydm.experiments import imdb
imdb.load_features = lambda *a, **kw: blob_features()
script("imdb_mlp").main(["--rows", "r0", "--methods", "cce", "mse", "--seeds", "1",
                         "--iterations", "10000000", "--batch-size", "50", "--jobs", "2",
                         "--out", sys.argv[1]])
"""


def children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_jobs(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", RUN_JOBS.format(tests=str(ROOT / "tests")),
                             str(tmp_path)], env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while len(children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    workers = children(proc.pid)  # the two workers (and multiprocessing's resource tracker)
    assert len(workers) >= 2, "the two workers did not start"
    return proc, workers


def wait_dead(pids, seconds=10):
    deadline = time.time() + seconds
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
def test_workers_die_when_their_parent_is_killed(tmp_path):
    proc, workers = start_jobs(tmp_path)
    proc.kill()
    proc.wait()
    proc.stderr.close()
    assert wait_dead(workers) == []


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
def test_sigterm_stops_the_job_and_its_workers_with_a_clear_message(tmp_path):
    proc, workers = start_jobs(tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted: the finished runs are saved" in err
    assert "Traceback" not in err
    assert wait_dead(workers) == []


# ----------------------------------------------------------------------------------------------
# 5. Every argument and output folder checked before the expensive work
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [["--iterations", "-1"], ["--batch-size", "0"],
                                 ["--beta", "nan"], ["--weight-decay", "inf"],
                                 ["--out", "/proc/self/imdb"], ["--report-dir", "/proc/self/r"]])
def test_imdb_refuses_bad_arguments_and_folders_before_the_features(bad, no_features, tmp_path):
    if "/proc" in " ".join(bad) and not HAS_PROC:
        pytest.skip("uses /proc as an unwritable folder")
    with pytest.raises(SystemExit) as e:
        script("imdb_mlp").main(["--out", str(tmp_path)] + bad)
    assert e.value.code != 0 and no_features == []


@pytest.mark.skipif(not HAS_PROC, reason="uses /proc as an unwritable folder")
def test_cifar_refuses_an_unwritable_out_before_the_data(monkeypatch):
    monkeypatch.setattr(cifar.training, "prepare_data", lambda *a: 1 / 0)  # never reached
    with pytest.raises(OSError, match="cannot write into the folder /proc/"):
        cifar.run(cifar.Config(**TINY_CIFAR, out_dir="/proc/self"), progress=False)


@pytest.mark.skipif(not HAS_PROC, reason="uses /proc as an unwritable folder")
def test_an_unwritable_feature_cache_is_found_before_training(monkeypatch):
    corpus = imdb_data.ImdbCorpus(["good film"], np.array([1]), ["bad film"], np.array([0]), [])
    monkeypatch.setattr(imdb_data, "_train_pv_dbow", lambda *a: 1 / 0)  # never reached
    with pytest.raises(OSError, match="cannot write into the folder /proc/"):
        imdb_data.pv_dbow_features(corpus, cache_dir="/proc/self", progress=False)


# ----------------------------------------------------------------------------------------------
# 6. Validation: finite numbers, negative numbers, one-line data errors
# ----------------------------------------------------------------------------------------------
def test_negative_numbers_in_scientific_notation_parse():
    assert runner.join_negative_numbers(["--beta", "-1e4", "--rows", "r0", "-h"]) == \
        ["--beta=-1e4", "--rows", "r0", "-h"]
    args = script("cifar_resnet").parse_args(["--beta", "-1e4", "--lam", "-0.5"])
    assert (args.beta, args.lam) == (-1e4, -0.5)


@pytest.mark.parametrize("bad", [["--lr", "nan"], ["--momentum", "inf"],
                                 ["--weight-decay", "nan"], ["--noise-rate", "-inf"]])
def test_cifar_refuses_non_finite_numbers(bad):
    with pytest.raises(SystemExit) as e:
        script("cifar_resnet").parse_args(bad)
    assert e.value.code == 2
    with pytest.raises(ValueError, match="lr must be a finite number"):
        cifar.Config(lr=float("nan"))


@pytest.mark.parametrize("bad", [["--noise", "1.5"], ["--iters", "0"], ["--iters", "-1"],
                                 ["--lr", "nan"], ["--batch-size", "0"]])
def test_train_tiny_refuses_bad_arguments(bad, capsys):
    with pytest.raises(SystemExit) as e:
        script("train_tiny").main(bad)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_review_that_is_not_utf8_names_its_file(tmp_path):
    for sub in ("train/pos", "train/neg", "test/pos", "test/neg", "train/unsup"):
        folder = tmp_path / "aclImdb" / sub
        folder.mkdir(parents=True)
        (folder / "0_7.txt").write_text("fine")
    (tmp_path / "aclImdb" / "test/neg" / "3_2.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"test/neg/3_2.txt is not UTF-8 text \(byte 3"):
        imdb_data.load_imdb(tmp_path, download=False)


def test_data_errors_are_one_line(monkeypatch, tmp_path, capsys):
    def missing(*a, **kw):
        raise DataError("IMDB not found in /nowhere")
    monkeypatch.setattr(imdb, "load_features", missing)
    with pytest.raises(SystemExit, match="^error: IMDB not found in /nowhere$"):
        script("imdb_mlp").main(["--out", str(tmp_path)])


def test_a_corrupt_checkpoint_names_the_file_and_never_suggests_pickle(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="garbage.npz is corrupt") as e:
        checkpoint.read(garbage)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __meta__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz is corrupt .*Python objects") as f:
        checkpoint.read(pickled)
    assert "pickle=True" not in str(e.value) + str(f.value)


# ----------------------------------------------------------------------------------------------
# 7. The collapse watch: only for losses that renormalise the batch; one line per run
# ----------------------------------------------------------------------------------------------
def one_class_eval(model, it):
    return {"test_class_histogram": [100, 0]}


@pytest.mark.parametrize("name, params, watched", [("cce", {}, False), ("gce", {}, False),
                                                   ("cce-dn", {}, True),
                                                   ("dm", {"lam": 0, "beta": 1}, True)])
def test_the_collapse_watch_is_for_losses_that_renormalise(name, params, watched):
    x, y = td.Tensor(np.ones((4, 2), np.float32)), td.Tensor(np.array([0, 1, 0, 1]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, history = tiny_fit(lambda it: (x, y), iterations=300, loss=losses.get(name, **params),
                              log_every=50, evaluate=one_class_eval, eval_every=100)
    flagged = [w for w in caught if issubclass(w.category, EmphasisCollapseWarning)]
    assert bool(history.warnings) == bool(flagged) == watched
    assert losses.renormalises(name) == watched


def test_the_table_gives_one_line_per_flagged_run_and_the_record_keeps_the_text():
    def record(seed, found):
        settings = imdb.make_settings("r0.4", "dm", seed)
        return {"config": settings.as_dict(), "history": {"warnings": found},
                "summary": {"test_accuracy_final": 0.5, "test_accuracy_best": 0.6,
                            "one_class_final": True, "diverged_by": None}}
    text = f"iteration 200: the batch ESS fraction is low; {CollapseWatch.CAUSE}"
    summary = imdb.summarise([record(1, [text, text]), record(2, []), record(3, [text])])
    assert imdb.collapse_notes(summary) == [
        "r = 0.4 DM seed 1: iteration 200: the batch ESS fraction is low (+1 more)",
        "r = 0.4 DM seed 3: iteration 200: the batch ESS fraction is low"]
    printed = imdb.format_table(summary)
    assert printed.count("\n") < 12 and "Remedies" not in printed


def test_the_main_table_has_a_dm_per_class_column_with_three_seeds():
    main = imdb.table_settings()
    per_class = [s for s in main if s.loss_params.get("per_class")]
    assert len(main) == 5 * 3 * (len(imdb.METHODS) + 1)
    assert sorted({s.seed for s in per_class}) == list(imdb.SEEDS) and len(per_class) == 15
    assert all(s.loss == "dm" and s.variant == "+perclass" for s in per_class)
    assert "dm+perclass" in imdb.COLUMNS
    records = [{"config": s.as_dict(), "summary": {"test_accuracy_final": 0.8,
                                                   "test_accuracy_best": 0.8,
                                                   "one_class_final": False,
                                                   "diverged_by": None}}
               for s in imdb.table_settings(rows=["r0"], methods=["dm", "dm+perclass"],
                                            seeds=[1])]
    table = imdb.format_table(imdb.summarise(records)).splitlines()
    assert table[0].split() == ["DM", "DM+perclass"]
    assert table[2].split() == ["paper", "89.1", "-"]  # not a column of the paper
    assert "| 80.0 ± 0.0 (-) |" in imdb.markdown_table(imdb.summarise(records))
