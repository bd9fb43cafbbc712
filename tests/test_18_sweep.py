"""Sweeps (tinydm/experiments/sweep.py, examples/sweep.py): the grid file, its cells, records and
skipping, retries and failures, the table and heat map, the local pool, Ray, and a killed sweep
resumed. Tiny grids on synthetic data: no network, no real data."""

import csv
import importlib.util
import json
import pathlib
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from conftest import ROOT, blobs, checkout_env

from tinydm.experiments import imdb, runner, sweep

SHORT = {"iterations": 100, "batch_size": 50, "eval_every": 50, "log_every": 50}
# one loss without lam and beta (run once per seed), DM over a 2 x 2 (lam, beta) grid
GRID = {"experiment": "imdb", "fixed": {"noise_rate": 0.4, **SHORT},
        "axes": {"loss": ["cce", "dm"], "lam": [0, 1], "beta": [0, 2], "seed": [1, 2]}}


@pytest.fixture(scope="module")
def features():
    return imdb.Features(*blobs(1000, 0), *blobs(600, 1))


@pytest.fixture(scope="module")
def pool_sweep(features, tmp_path_factory):
    """The tiny grid on the local pool (two processes), with its report."""
    out = tmp_path_factory.mktemp("pool")
    lines = []
    result = sweep.run(sweep.Grid.from_dict(GRID), out, data=features, workers=2,
                       log=lines.append, progress=False)
    sweep.write_report(result, out)
    return out, result, lines


def comparable(record):
    """What a cell computed, and where it sits in the sweep, without what depends on the
    machine and the moment (timings, host)."""
    sweep_entry = {k: v for k, v in record["sweep"].items() if k not in ("seconds", "host")}
    return {**runner.outcome(record), "sweep": sweep_entry}


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------------
# The grid
# ----------------------------------------------------------------------------------------------
def test_grid_file_crosses_the_axes_and_adds_the_subgrids(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('experiment = "cifar"\n[fixed]\nloss = "dm"\nnoise_rate = 0.4\n'
                    '[axes]\nseed = [1, 2]\n'
                    '[[subgrid]]\nlam = [0]\nbeta = [0.5, 1]\n'
                    '[[subgrid]]\nlam = [0.5]\nbeta = [4, 8, 12]\n')
    grid = sweep.load_grid(path)
    assert grid.varying == ("seed", "lam", "beta")
    cells = grid.cells()
    assert len(cells) == 2 * (2 + 3)
    assert cells[0] == {"loss": "dm", "noise_rate": 0.4, "seed": 1, "lam": 0, "beta": 0.5}
    assert {(c["lam"], c["beta"]) for c in cells} == {(0, 0.5), (0, 1), (0.5, 4), (0.5, 8),
                                                      (0.5, 12)}
    plain = sweep.Grid("imdb", {"loss": "cce"}, {"seed": [1, 2, 3]})
    assert plain.cells() == [{"loss": "cce", "seed": s} for s in (1, 2, 3)]


@pytest.mark.parametrize("data, message", [
    ({"fixed": {"loss": "dm"}}, "names no experiment"),
    ({"experiment": "mnist"}, "unknown experiment 'mnist'"),
    ({"experiment": "imdb", "axis": {"lam": [0]}}, "unknown key.*axis"),
    ({"experiment": "imdb", "fixed": {"lam": 0}, "axes": {"lam": [0, 1]}}, "'lam' is both"),
    ({"experiment": "imdb", "axes": {"beta": []}}, "axes.beta must be a non-empty list"),
    ({"experiment": "imdb", "axes": {"beta": [1, 1]}}, "repeats a value"),
    ({"experiment": "imdb", "axes": {"beta": [float("nan")]}}, "must be finite"),
    ({"experiment": "imdb", "axes": {"seed": [1]}, "subgrid": [{"seed": [2]}]},
     "'seed' of subgrid 1 is also in \\[axes\\]"),
])
def test_grid_errors_name_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        sweep.Grid.from_dict(data, source="g.toml")


def test_a_grid_file_that_is_not_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("experiment = imdb\n")
    with pytest.raises(ValueError, match="bad.toml is not valid TOML"):
        sweep.load_grid(path)


def test_every_cell_is_checked_before_data_is_loaded_or_anything_runs(tmp_path):
    bad = [({"loss": "dm", "noise_rate": 0.3}, "no row of Table 5 has noise_rate = 0.3"),
           ({"loss": "dm", "learning_rate": 0.1}, "unknown setting.*learning_rate"),
           ({"noise_rate": 0.4}, "needs a loss"),
           ({"loss": "dm", "iterations": 0}, "iterations must be")]
    for fixed, message in bad:
        grid = sweep.Grid("imdb", fixed, {"seed": [1, 2]})
        with pytest.raises(ValueError, match=message):
            # data=None: a valid grid would load the IMDB features next
            sweep.run(grid, tmp_path / "out", log=None, progress=False)
    with pytest.raises(ValueError, match="unknown setting.*depht"):
        sweep.plan(sweep.Grid("cifar", {"depht": 20}, {"seed": [1]}))


def test_loss_parameters_go_only_to_the_losses_that_take_them(features):
    jobs = sweep.plan(sweep.Grid.from_dict(GRID), features)
    cce = [j for j in jobs if j.cell["loss"] == "cce"]
    assert [j.cell for j in cce] == [{**GRID["fixed"], "loss": "cce", "seed": s} for s in (1, 2)]
    assert len(jobs) == 2 + 2 * 2 * 2
    dm = next(j for j in jobs if j.cell["loss"] == "dm" and j.cell["lam"] == 1)
    assert dm.settings["loss_params"] == {"lam": 1.0, "beta": 0.0}
    assert dm.settings["row"] == "r0.4" and dm.settings["features"] == features.fingerprint
    assert dm.name.startswith("loss=dm_lam=1_beta=0_seed=1_")
    gce = sweep.plan(sweep.Grid("imdb", {"loss": "gce", "lam": 1}, {"q": [0.5, 0.7]}))
    assert [j.settings["loss_params"] for j in gce] == [{"q": 0.5}, {"q": 0.7}]
    cifar = sweep.plan(sweep.Grid("cifar", {"loss": "dm", "noise_rate": 0.2},
                                  {"lam": [0.5], "beta": [8]}))[0].settings
    assert cifar["loss_params"] == {"lam": 0.5, "beta": 8.0} and cifar["noise_rate"] == 0.2
    assert "out_dir" not in cifar and "data_dir" not in cifar


# ----------------------------------------------------------------------------------------------
# The local pool: records, skipping, the table and its heat map
# ----------------------------------------------------------------------------------------------
def test_local_pool_writes_a_record_per_cell_and_the_table(pool_sweep, features, tmp_path):
    out, result, lines = pool_sweep
    assert (result.trained, result.skipped, result.failed) == (10, 0, {})
    assert sum(line.startswith("[") for line in lines) == 10
    files = sorted((out / "cells").glob("*.json"))
    assert [f.stem for f in files] == sorted(j.name for j in result.jobs)
    for job in result.jobs:
        saved = runner.read_record(sweep.record_path(out, job), "imdb")
        assert saved == result.records[job.name]
        assert saved["config"] == job.settings and saved["status"] == "done"
        assert saved["sweep"]["attempts"] == 1 and saved["sweep"]["cell"] == job.cell
    # a cell computes what the experiment's own entry point computes in this process
    job = result.jobs[-1]
    direct, trained = imdb.run_one(job.settings, features, tmp_path)
    assert trained and runner.outcome(direct) == runner.outcome(result.records[job.name])
    rows = read_csv(out / "sweep.csv")
    assert [(r["loss"], r["noise_rate"], r["lam"], r["beta"]) for r in rows] == [
        ("cce", "0.4", "", ""), ("dm", "0.4", "0", "0"), ("dm", "0.4", "0", "2"),
        ("dm", "0.4", "1", "0"), ("dm", "0.4", "1", "2")]
    for row in rows:
        cells = [j for j in result.jobs if j.cell["loss"] == row["loss"]
                 and str(j.cell.get("lam", "")) == row["lam"]
                 and str(j.cell.get("beta", "")) == row["beta"]]
        final = [100 * result.records[j.name]["summary"]["test_accuracy_final"] for j in cells]
        best = [100 * result.records[j.name]["summary"]["test_accuracy_best"] for j in cells]
        assert row["n"] == "2" and row["seeds"] == "1 2"
        assert float(row["final_mean"]) == pytest.approx(np.mean(final), abs=1e-4)
        assert float(row["final_std"]) == pytest.approx(np.std(final, ddof=1), abs=1e-4)
        assert float(row["best_mean"]) == pytest.approx(np.mean(best), abs=1e-4)
    text = (out / "sweep.md").read_text()
    assert "## loss = dm, noise_rate = 0.4" in text and "## loss = cce, noise_rate = 0.4" in text
    dm_row = next(r for r in rows if (r["loss"], r["lam"], r["beta"]) == ("dm", "1", "2"))
    lam1 = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert lam1.endswith(f"| {float(dm_row['final_mean']):.1f} ± {float(dm_row['final_std']):.1f}"
                         f" / {float(dm_row['best_mean']):.1f} ± "
                         f"{float(dm_row['best_std']):.1f} |")
    for name in ("heatmap_loss=dm_noise_rate=0.4.png", "heatmap_loss=cce_noise_rate=0.4.png"):
        assert (out / name).stat().st_size > 5_000 and f"]({name})" in text


def test_cells_saved_with_the_same_settings_are_skipped(pool_sweep, features):
    out, first, _ = pool_sweep
    again = sweep.run(sweep.Grid.from_dict(GRID), out, data=features, workers=2, log=None,
                      progress=False)
    assert (again.trained, again.skipped) == (0, 10)
    assert again.records == first.records
    # other settings are other cells: nothing is overwritten
    longer = {**GRID, "fixed": {**GRID["fixed"], "iterations": 150}}
    jobs = sweep.plan(sweep.Grid.from_dict(longer), features)
    assert not {j.name for j in jobs} & set(first.records)
    report = sweep.run(sweep.Grid.from_dict(longer), out, data=features, train=False,
                       log=None, progress=False)
    assert (report.trained, len(report.missing)) == (0, 10)


def test_a_failing_cell_is_tried_twice_then_reported(features, tmp_path):
    # a batch of 2000 from 1000 training reviews fails in the run, not in the settings
    fixed = {"loss": "cce", "noise_rate": 0.4, "iterations": 100, "eval_every": 50}
    grid = sweep.Grid("imdb", fixed, {"batch_size": [50, 2000], "seed": [1]})
    lines = []
    result = sweep.run(grid, tmp_path, data=features, workers=2, log=lines.append,
                       progress=False)
    (bad,) = [j for j in result.jobs if j.cell["batch_size"] == 2000]
    assert result.trained == 1 and list(result.failed) == [bad.name]
    assert "fewer than one batch of 2000" in result.failed[bad.name]
    assert sum(f"FAILED (attempt {k} of 2) {bad.name}" in line for line in lines
               for k in (1, 2)) == 2
    assert any(f"cell {bad.name} failed 2 times" in line for line in lines)
    assert not sweep.record_path(tmp_path, bad).exists()
    assert result.missing == [bad]
    sweep.write_report(result, tmp_path)
    text = (tmp_path / "sweep.md").read_text()
    assert "## Failed cells (tried twice)" in text and bad.name in text


# ----------------------------------------------------------------------------------------------
# Ray: the same cells as Ray tasks give the same records and the same table
# ----------------------------------------------------------------------------------------------
def test_ray_tasks_give_the_same_records_and_table_as_the_pool(pool_sweep, features, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tinydm[ray]')")
    out, pool, _ = pool_sweep
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception:  # a loaded machine can miss Ray's startup deadline once; a second start
        ray.shutdown()  # in a row has found it warm
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = sweep.run(sweep.Grid.from_dict(GRID), tmp_path, data=features, ray="auto",
                           log=None, progress=False)
        assert ray.is_initialized()  # the sweep used the test's instance and left it running
    finally:
        ray.shutdown()
    assert (result.trained, result.failed) == (10, {})
    assert {n: comparable(r) for n, r in result.records.items()} == \
        {n: comparable(r) for n, r in pool.records.items()}
    sweep.write_report(result, tmp_path)
    assert (tmp_path / "sweep.csv").read_text() == (out / "sweep.csv").read_text()
    tables = [p.read_text().split("## ", 1)[1] for p in (tmp_path / "sweep.md", out / "sweep.md")]
    assert tables[0] == tables[1]


def test_ray_flag_without_ray_installed_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ImportError, match="tinydm\\[ray\\]"):
        sweep.run(sweep.Grid.from_dict(GRID), tmp_path, data=imdb.Features(
            *blobs(100, 0), *blobs(100, 1)), ray="auto", log=None, progress=False)


def test_ray_is_not_imported_without_the_flag():
    code = ("import sys, runpy; sys.argv = ['sweep.py', '--help']\n"
            "try:\n    runpy.run_path('examples/sweep.py', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "from tinydm.experiments import sweep\n"
            "sweep.plan(sweep.Grid('cifar', {'loss': 'dm'}, {'lam': [0, 1], 'beta': [2]}))\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env=checkout_env(), check=True)
    assert out.stdout.splitlines()[-1] == "False"


# ----------------------------------------------------------------------------------------------
# The command line: a killed sweep, run again, runs only the missing cells
# ----------------------------------------------------------------------------------------------
def _children(pid):
    """The process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid):
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the workers")
def test_killed_sweep_resumes_with_the_missing_cells_only(tmp_path):
    grid = tmp_path / "tiny.toml"
    grid.write_text('experiment = "cifar"\n'
                    '[fixed]\ndataset = "synthetic"\nsynthetic_sizes = [64, 16]\n'
                    'synthetic_image_size = 8\ndepth = 8\nbatch_size = 8\niterations = 40\n'
                    'eval_every = 20\nlog_every = 20\nloss = "dm"\nnoise_rate = 0.4\n'
                    '[axes]\nlam = [0, 1]\nbeta = [2, 4]\nseed = [1]\n')
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "examples" / "sweep.py"), str(grid), "--out",
               str(out), "--workers", "1", "--no-progress"]
    env = checkout_env()
    sweep_process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
    cells = out / "cells"
    deadline = time.monotonic() + 600  # generous: a loaded 2-core machine starts slowly
    while not list(cells.glob("*.json")) and time.monotonic() < deadline:
        assert sweep_process.poll() is None, sweep_process.stdout.read()
        time.sleep(0.05)
    workers = [p for p in _children(sweep_process.pid) if _alive(p)]
    sweep_process.send_signal(signal.SIGKILL)
    sweep_process.wait()
    sweep_process.stdout.close()
    done = {p.name: p.read_bytes() for p in cells.glob("*.json")}
    assert 1 <= len(done) < 4, "the sweep must be killed between its first and last cell"
    assert workers, "the pool's worker process was not found"
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived its killed parent"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"4 cells, {len(done)} already in" in again.stdout
    assert f"4 cells: {4 - len(done)} run, {len(done)} found done, 0 failed" in again.stdout
    assert {p.name: p.read_bytes() for p in cells.glob("*.json") if p.name in done} == done
    assert len(list(cells.glob("*.json"))) == 4
    for path in cells.glob("*.json"):  # committed as they are: no machine's paths inside
        assert str(tmp_path) not in path.read_text()
        assert json.loads(path.read_text())["config"]["out_dir"] == f"work/{path.stem}"
    assert not (out / "work").exists() or not any((out / "work").iterdir())
    rows = read_csv(out / "sweep.csv")
    assert [(r["lam"], r["beta"], r["n"]) for r in rows] == [
        ("0", "2", "1"), ("0", "4", "1"), ("1", "2", "1"), ("1", "4", "1")]
    assert (out / "heatmap_loss=dm_noise_rate=0.4.png").exists()


def test_command_line_help_and_a_bad_grid(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("sweep_cli", ROOT / "examples" / "sweep.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--ray auto|local|ADDRESS" in text and "[axes]" in text
    bad = tmp_path / "bad.toml"
    bad.write_text('experiment = "imdb"\n[axes]\nlam = 0\n')
    with pytest.raises(SystemExit) as e:
        cli.main([str(bad)])
    assert e.value.code == 2 and "axes.lam must be a non-empty list" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "grids").glob("*.toml")),
                         ids=lambda p: p.name)
def test_the_example_grids_are_valid(path):
    grid = sweep.load_grid(path)
    jobs = sweep.plan(grid)
    assert len(jobs) == len(grid.cells()) and len({j.name for j in jobs}) == len(jobs)
    # record names are file names on every system ("cifar10n:worst" -> "cifar10n-worst")
    assert not [j.name for j in jobs if set(j.name) & set('/\\:*?"<>|')]


def test_the_protocol_m_grid_is_the_protocol_of_the_committed_records():
    """examples/grids/cifar10_protocol_m.toml plans the fourteen runs of protocol M
    (docs/results.md: three validation candidates on seed 123, the chosen one on 124 and 125,
    three methods on three seeds), and every committed protocol M record has exactly the
    settings of one of its cells: a cluster running the grid runs what the records ran."""
    grid = sweep.load_grid(ROOT / "examples" / "grids" / "cifar10_protocol_m.toml")
    jobs = sweep.plan(grid)
    methods = sorted((j.settings["loss"], tuple(sorted(j.settings["loss_params"].items())),
                      j.settings["seed"]) for j in jobs)
    assert len(jobs) == 14
    assert sum(m[0] == "cce" for m in methods) == sum(m[0] == "gce" for m in methods) == 3
    assert sum(m[0] == "dm" and m[2] == 123 for m in methods) == 4  # 3 grid + per_class
    chosen = ("dm", (("beta", 8.0), ("lam", 0.5)))
    assert [m[2] for m in methods if m[:2] == chosen] == [123, 124, 125]
    records = sorted((ROOT / "docs" / "results" / "cifar" / "m" / "runs").glob("*.json"))
    assert records, "no committed protocol M records"
    adapter = sweep.get_adapter("cifar")
    for path in records:
        settings = adapter.settings_of(runner.read_record(path, "cifar"))
        assert any(j.settings == settings for j in jobs), f"{path.name}: no cell of the grid"


# ----------------------------------------------------------------------------------------------
# Where a sweep stands (--status)
# ----------------------------------------------------------------------------------------------
STATUS_GRID = {"experiment": "cifar", "fixed": {"dataset": "synthetic", "iterations": 40,
                                                "loss": "dm", "noise_rate": 0.4},
               "axes": {"lam": [0, 0.5, 1, 2], "beta": [2], "seed": [1]}}


def fake_record(job, status, done, wall):
    """A record of ``job`` as the runner writes it, with only what the status reads."""
    return {"format": runner.RECORD_FORMAT, "experiment": "cifar", "status": status,
            "config": job.settings,
            "timing": {"iterations_done": done, "wall_seconds": wall}}


def test_status_tells_done_running_stopped_and_to_run_cells(tmp_path, capsys):
    from tinydm import files

    grid = sweep.Grid.from_dict(STATUS_GRID)
    done, running, stopped, fresh = sweep.plan(grid)
    (tmp_path / "cells").mkdir()
    files.write_json(sweep.record_path(tmp_path, done), fake_record(done, "done", 40, 80.0))
    for job, iterations in ((running, 30), (stopped, 10)):  # checkpointed, record rewritten
        files.write_json(tmp_path / "work" / job.name / "results.json",
                         fake_record(job, "running", iterations, 3.0 * iterations))
    holder = files.lock_folder(tmp_path / "work" / running.name)  # a live process runs it
    try:
        lock_before = (tmp_path / "work" / running.name / files.LOCK_NAME).read_text()
        statuses = sweep.cell_status(grid, tmp_path)
        assert (tmp_path / "work" / running.name / files.LOCK_NAME).read_text() == lock_before
        assert not (tmp_path / "work" / stopped.name / files.LOCK_NAME).exists()
        assert [(s.job, s.state, s.iterations_done, s.iterations_left) for s in statuses] == [
            (done, "done", 40, 0), (running, "running", 30, 10), (stopped, "stopped", 10, 30),
            (fresh, "to run", 0, 40)]
        assert statuses[1].holder == f"pid {os.getpid()} on host {socket.gethostname()}"
        # (80 + 90 + 30) s over 40 + 30 + 10 iterations; 10 + 30 + 40 left, on 2 lanes
        assert sweep.seconds_per_iteration(statuses) == pytest.approx(2.5)
        lines = sweep.status_lines(statuses, lanes=2)
        assert lines[-2] == "4 cells: 1 done, 1 running, 1 stopped, 1 to run"
        assert lines[-1].startswith(f"80 iterations left: about {80 * 2.5 / 2 / 3600:.1f} h on "
                                    "2 lane(s) at 2.50 s per iteration")
        assert f"| {running.name} | running (pid {os.getpid()}" in "\n".join(lines)
        assert done.name not in "\n".join(lines)

        cli = importlib.util.module_from_spec(
            spec := importlib.util.spec_from_file_location("sweep_cli", ROOT / "examples" /
                                                           "sweep.py"))
        spec.loader.exec_module(cli)
        path = tmp_path / "grid.toml"
        path.write_text('experiment = "cifar"\n[fixed]\ndataset = "synthetic"\niterations = 40\n'
                        'loss = "dm"\nnoise_rate = 0.4\n'
                        '[axes]\nlam = [0, 0.5, 1, 2]\nbeta = [2]\nseed = [1]\n')
        cli.main([str(path), "--out", str(tmp_path), "--status"])  # lanes: the running cells
        out = capsys.readouterr().out
        assert "on 1 lane(s)" in out and f"| {stopped.name} | stopped | 10 of 40 |" in out
        assert not (tmp_path / "sweep.md").exists()  # it runs and writes nothing
    finally:
        holder.close()
    assert sweep.cell_status(grid, tmp_path)[1].state == "stopped"  # the holder is gone
    with pytest.raises(ValueError, match="lanes must be a positive integer, got 0"):
        sweep.status_lines(statuses, lanes=0)


# ----------------------------------------------------------------------------------------------
# Cells that validation chooses (chosen_from): the grid runs its own choice
# ----------------------------------------------------------------------------------------------
CHOSEN_TOML = '''experiment = "cifar"
[fixed]
dataset = "synthetic"
synthetic_sizes = [64, 16]
synthetic_image_size = 8
depth = 8
batch_size = 8
iterations = 20
eval_every = 10
log_every = 10
val_fraction = 0.25
loss = "dm"
noise_rate = 0.4

[[subgrid]]                 # the candidates
lam = [0, 1]
beta = [2, 4]
seed = [1]

[[subgrid]]                 # the one that validation picks, on two more seeds
seed = [2, 3]
chosen_from = { seed = 1 }

[[subgrid]]                 # a cell after it in the file, not a candidate (seed 4)
lam = [2]
beta = [8]
seed = [4]
'''


def test_a_chosen_cell_runs_the_candidate_best_by_validation_once_they_are_done(tmp_path):
    from tinydm.experiments.cifar import seeds as cifar_seeds

    path = tmp_path / "grid.toml"
    path.write_text(CHOSEN_TOML)
    grid = sweep.load_grid(path)
    jobs = sweep.plan(grid)
    choices = sweep.plan_choices(grid)
    assert len(jobs) == 5 and len(choices) == 2
    assert [c.choice.among for c in choices] == [{"seed": 1}] * 2
    assert [c.place for c in choices] == [4, 4]  # after the four candidates, before lam = 2
    assert [j.name for j in choices[0].candidates] == [j.name for j in jobs[:4]]
    assert choices[0].label.endswith("seed=2, lam and beta chosen by validation")
    lines = []
    result = sweep.run(grid, tmp_path / "out", workers=1, log=lines.append, progress=False)
    assert lines[0].startswith("cifar sweep: 7 cells (2 chosen by validation), 0 already in")
    assert result.failed == {} and result.trained == 7 and len(result.jobs) == 7
    scores = {j.name: cifar_seeds.best_validation(result.records[j.name])[0] for j in jobs[:4]}
    best = next(j for j in jobs[:4] if scores[j.name] == max(scores.values()))  # the first best
    picked = result.jobs[5:]
    assert [j.cell for j in picked] == [{**best.cell, "seed": s} for s in (2, 3)]
    assert all(result.records[j.name]["config"]["seed"] == s for j, s in zip(picked, (2, 3)))
    # one lane runs the cells in the file's order: the chosen ones before lam = 2
    finished = [line.split("] ", 1)[1].split(":", 1)[0] for line in lines if line.startswith("[")]
    assert finished == [j.name for j in jobs[:4]] + [j.name for j in picked] + [jobs[4].name]
    # run again: everything is found, the choice made again from the records
    again = sweep.run(grid, tmp_path / "out", workers=1, log=lines.append, progress=False)
    assert (again.trained, again.skipped) == (0, 7)
    assert [j.name for j in again.jobs] == [j.name for j in result.jobs]
    statuses = sweep.cell_status(grid, tmp_path / "out")
    assert [s.state for s in statuses] == ["done"] * 7


def test_a_chosen_cell_waits_for_its_candidates_and_says_why_it_did_not_run(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(CHOSEN_TOML)
    grid = sweep.load_grid(path)
    out = tmp_path / "out"
    statuses = sweep.cell_status(grid, out)
    assert [s.state for s in statuses] == ["to run"] * 7
    assert statuses[4].note == "waits for 4 candidate(s)"
    assert "chosen by validation | to run (waits for 4 candidate(s)) | 0 of 20 |" in \
        "\n".join(sweep.status_lines(statuses))
    # a candidate that cannot run (a batch larger than its training set) fails twice: the
    # chosen cells are then reported, not run, and not dropped silently
    head = CHOSEN_TOML.split("[[subgrid]]")[0].replace("batch_size = 8\n", "")
    path.write_text(head + "[[subgrid]]\nlam = [0]\nbeta = [2]\nseed = [1]\nbatch_size = [8]\n"
                    "[[subgrid]]\nlam = [1]\nbeta = [4]\nseed = [1]\nbatch_size = [999]\n"
                    "[[subgrid]]\nseed = [2, 3]\nchosen_from = { seed = 1 }\n")
    grid = sweep.load_grid(path)
    lines = []
    result = sweep.run(grid, out, workers=1, log=lines.append, progress=False)
    (bad,) = [j for j in sweep.plan(grid) if j.cell["batch_size"] == 999]
    waiting = [k for k in result.failed if "chosen by validation" in k]
    assert result.trained == 1 and bad.name in result.failed and len(waiting) == 2
    assert all(f"1 of its candidates did not finish: {bad.name}" in result.failed[k]
               for k in waiting)
    assert sum("candidate(s) did not finish" in line for line in lines) == 2


@pytest.mark.parametrize("text, message", [
    ("seed = [2, 3]\nchosen_from = { seed = [1] }", r"chosen_from.seed must be one value"),
    ("seed = [2, 3]\nchosen_from = { lam = 0 }", r"can only differ from the chosen cells in a "
                                                 r"setting of the subgrid \(seed\)"),
    ("seed = [2, 3]\nchosen_from = { seed = 9 }", r"no cell of the grid is a candidate"),
    ("seed = [2, 3]\nchosen_from = 1", r"chosen_from must be a table of name = value"),
])
def test_chosen_from_errors_name_what_is_wrong(text, message):
    grid_text = CHOSEN_TOML.replace("seed = [2, 3]\nchosen_from = { seed = 1 }", text)
    with pytest.raises(ValueError, match=message):
        sweep.plan_choices(sweep.Grid.from_dict(tomllib.loads(grid_text)))


def test_chosen_from_needs_an_experiment_with_a_validation_split():
    grid = sweep.Grid("imdb", {"loss": "dm", "noise_rate": 0.4},
                      subgrids=({"lam": [0, 1], "seed": [1]}, {"seed": [2], "chosen_from":
                                                                {"seed": 1}}))
    with pytest.raises(ValueError, match="imdb runs have none"):
        sweep.plan_choices(grid)


def test_chosen_cells_on_ray_give_the_records_of_the_pool(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tinydm[ray]')")
    path = tmp_path / "grid.toml"
    path.write_text(CHOSEN_TOML)
    grid = sweep.load_grid(path)
    pool = sweep.run(grid, tmp_path / "pool", workers=2, log=None, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = sweep.run(grid, tmp_path / "ray", ray="auto", log=None, progress=False)
    finally:
        ray.shutdown()
    assert (result.trained, result.failed) == (7, {})
    assert [j.name for j in result.jobs] == [j.name for j in pool.jobs]
    assert {n: comparable(r) for n, r in result.records.items()} == \
        {n: comparable(r) for n, r in pool.records.items()}
