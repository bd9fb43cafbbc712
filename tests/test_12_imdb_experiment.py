"""The IMDB experiment (Table 5) end to end, on synthetic features: runs, result files, resuming,
the table over seeds and the command line. No network, no real data, no doc2vec."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from conftest import blobs

from tinydm.experiments import imdb, runner
from tinydm.train import one_class

SHORT = dict(iterations=300, batch_size=50, eval_every=100, log_every=50)


@pytest.fixture(scope="module")
def features():
    return imdb.Features(*blobs(1000, 0), *blobs(600, 1))


def read(path):
    with open(path) as f:
        return json.load(f)


def test_paper_table_and_row_settings():
    assert set(imdb.PAPER) == set(imdb.ROW_KEYS)
    assert all(len(v) == len(imdb.METHODS) for v in imdb.PAPER.values())
    assert imdb.paper_value("r0.4", "dm") == 86.4 and imdb.paper_value("pn50", "gce") == 50.0
    dm = {r: imdb.make_settings(r, "dm", 123).loss_params for r in imdb.ROW_KEYS}
    assert dm == {"r0": {"lam": 0.0, "beta": 0.9}, "r0.2": {"lam": 0.0, "beta": -0.52},
                  "r0.4": {"lam": 0.0, "beta": -0.33}, "pn10": {"lam": 0.3, "beta": 6.5},
                  "pn50": {"lam": 0.3, "beta": 6.5}}
    assert imdb.make_settings("r0", "dm", 1, beta=2.0).loss_params == {"lam": 0.0, "beta": 2.0}
    assert imdb.make_settings("r0", "gce-dn", 1).loss_params == {"q": 0.7}
    s = imdb.make_settings("r0", "cce", 1)
    assert (s.iterations, s.batch_size, s.base_lr, s.momentum, s.weight_decay, s.lr_gamma,
            s.lr_power) == (10_000, 250, 0.01, 0.9, 0.002, 1e-5, 0.75)
    with pytest.raises(ValueError, match="unknown row"):
        imdb.make_settings("r0.3", "cce", 1)
    with pytest.raises(ValueError, match="unknown method"):
        imdb.make_settings("r0", "sce", 1)
    with pytest.raises(ValueError, match="batch_size"):
        imdb.make_settings("r0", "cce", 1, batch_size=0)


def test_zoo_methods_take_their_default_parameters():
    """The loss zoo as columns: each with tinydm.losses' defaults, no paper number, not in the
    main job's default columns, and DM's remedies are ignored like for the paper's methods."""
    assert imdb.ZOO == ("focal", "poly1", "taylor", "rce", "phuber")
    assert imdb.LOSSES == imdb.METHODS + imdb.ZOO
    assert not set(imdb.ZOO) & set(imdb.COLUMNS) and set(imdb.ZOO) < set(imdb.ALL_COLUMNS)
    expected = {"focal": {"gamma": 2.0}, "poly1": {"epsilon": 1.0}, "taylor": {"t": 2.0},
                "rce": {"A": -4.0}, "phuber": {"tau": 10.0}}
    for method, params in expected.items():
        assert imdb.make_settings("pn10", method, 1, per_class=True).loss_params == params
        assert imdb.column(method) == (method, {})
        assert imdb.paper_value("r0.4", method) is None
    settings = imdb.table_settings(rows=["r0.4"], methods=["cce", "focal"], seeds=[1])
    assert [s.name for s in settings] == ["r0.4/cce_seed1", "r0.4/focal_seed1"]
    with pytest.raises(ValueError, match="unknown column"):
        imdb.column("sce")


def test_run_table_with_zoo_methods(features, tmp_path):
    """A tiny table with two zoo columns beside CCE: trained, summarised without a paper number,
    in the table's order (the paper's columns first), and formatted."""
    table = imdb.run_table(features, rows=["r0.4"], methods=["phuber", "cce", "focal"],
                           seeds=[5], out_dir=tmp_path, log=None, **SHORT)
    assert table.trained == 3
    assert sorted(p.name for p in (tmp_path / "r0.4").glob("*.json")) == [
        "cce_seed5.json", "focal_seed5.json", "phuber_seed5.json"]
    by_method = {c["method"]: c for c in table.summary}
    assert by_method["focal"]["paper"] is None and by_method["focal"]["diff"] is None
    assert not by_method["phuber"]["flagged"] and by_method["cce"]["paper"] == 75.5
    for record in table.records:
        assert 0.5 < record["summary"]["test_accuracy_final"] <= 1  # learnt something
    assert read(tmp_path / "r0.4" / "focal_seed5.json")["config"]["loss_params"] == {"gamma": 2.0}
    rows, columns, _ = imdb.layout(table.summary)
    assert columns == ["cce", "focal", "phuber"]
    text = imdb.format_table(table.summary)
    assert "Focal" in text and "PHuber" in text
    assert "(-)" in imdb.markdown_table(table.summary)


def test_training_sets_follow_the_rows_and_the_seed():
    y = np.repeat([1, 0], 5000)
    idx, labels, corrupted = imdb.training_set("r0.4", y, 7)
    assert idx.size == y.size and abs(corrupted.mean() - 0.4) < 0.03
    np.testing.assert_array_equal(labels != y, corrupted)
    again = imdb.training_set("r0.4", y, 7)[1]
    other = imdb.training_set("r0.4", y, 8)[1]
    assert (again == labels).all() and (other != labels).any()
    assert not imdb.training_set("r0", y, 7)[2].any()
    idx, labels, corrupted = imdb.training_set("pn10", y, 7)
    assert (labels == 1).sum() == 5000 and (labels == 0).sum() == 500 and not corrupted.any()
    np.testing.assert_array_equal(labels, y[idx])
    assert (imdb.training_set("pn50", y, 7)[1] == 0).sum() == 100


def test_run_table_end_to_end(device, features, tmp_path):
    table = imdb.run_table(features, rows=["r0", "r0.4"], methods=["cce", "dm"], seeds=[5],
                           out_dir=tmp_path, device=device, log=None, **SHORT)
    assert (table.trained, table.skipped) == (4, 0)
    paths = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert paths == ["r0.4/cce_seed5.json", "r0.4/dm_seed5.json", "r0/cce_seed5.json",
                     "r0/dm_seed5.json"]
    for record in table.records:
        assert record == read(imdb.run_path(tmp_path, imdb.settings_of(record)))
        assert record["format"] == runner.RECORD_FORMAT and record["experiment"] == "imdb"
        s, summary = record["config"], record["summary"]
        assert s["device"] == device and s["features"] == features.fingerprint
        evals = record["history"]["evals"]
        assert [e["iteration"] for e in evals] == [100, 200, 300]
        assert [st["iteration"] for st in record["history"]["steps"]] == [1, 50, 100, 150, 200,
                                                                         250, 300]
        final = evals[-1]
        assert summary["test_accuracy_final"] == final["test_accuracy"]
        assert summary["test_accuracy_best"] == max(e["test_accuracy"] for e in evals)
        assert sum(final["test_class_histogram"]) == 600 and len(final["test_class_accuracy"]) == 2
        assert record["timing"]["step_ms"] > 0 and record["timing"]["wall_seconds"] > 0
        if s["row"] == "r0":
            assert record["data"]["train_corrupted"] == 0
            assert final["train_accuracy_corrupted"] is None
            assert summary["test_accuracy_final"] > 0.95  # the easy task is learnt
            assert not summary["one_class_final"]
        else:
            assert abs(record["data"]["noise_rate_realised"] - 0.4) < 0.06
            assert 0 <= final["train_accuracy_corrupted"] <= 1
            assert final["train_accuracy_intact"] > 0.8  # it fits the intact labels
    assert [c["method"] for c in table.summary] == ["cce", "dm", "cce", "dm"]


def test_devices_train_the_same_run(features, tmp_path):
    """Same batches from the host, same initial weights drawn on the host: the stand-in runs the
    CPU's computation step for step (on CUDA only the rounding differs)."""
    cpu, standin = [imdb.run_one(imdb.make_settings("pn10", "dm", 3, device=d, **SHORT), features,
                                 tmp_path / d)[0] for d in ("cpu", "standin")]
    def same(r):
        return {**runner.outcome(r), "config": {**r["config"], "device": None}}
    assert same(cpu) == same(standin)


# MAE learns slowly (its weights 2 p_i (1 - p_i) are small at the start): a 200-iteration MAE run
# on these features may still predict one class, which the collapse watch rightly reports
@pytest.mark.filterwarnings("ignore:iteration .* in one class:RuntimeWarning")
def test_finished_runs_are_skipped(features, tmp_path, monkeypatch):
    kwargs = dict(rows=["pn50"], methods=["mae", "cce-dn"], seeds=[1, 2], out_dir=tmp_path,
                  log=None, **SHORT)
    first = imdb.run_table(features, **kwargs)
    assert first.trained == 4
    trained = []
    real = imdb.train_run
    monkeypatch.setattr(imdb.training, "train_run",
                        lambda s, f, **kw: trained.append(s) or real(s, f, **kw))
    again = imdb.run_table(features, **kwargs)
    assert (again.trained, again.skipped, trained) == (0, 4, [])
    assert again.records == first.records
    # a run that was cut short (no file) or a changed setting trains again, the rest is reused
    imdb.run_path(tmp_path, imdb.make_settings("pn50", "mae", 2)).unlink()
    lines = []
    imdb.run_table(features, **{**kwargs, "log": lines.append})
    assert [(s.loss, s.seed) for s in trained] == [("mae", 2)]
    assert lines[0].startswith("3 of 4 runs are already in") and "(done before)" not in lines[1]
    # other shared settings in the same folder: refused (nothing replaced), unless overwrite
    changed = {**kwargs, "methods": ["mae"], "seeds": [1], "iterations": 200}
    with pytest.raises(ValueError, match="iterations: 300 there, 200 now"):
        imdb.run_table(features, **changed)
    assert len(trained) == 1
    imdb.run_table(features, **changed, overwrite=True)
    assert trained[-1].iterations == 200
    assert read(imdb.run_path(tmp_path, trained[-1]))["config"]["iterations"] == 200
    imdb.run_table(features, **changed, force=True)
    assert len(trained) == 3


def test_parallel_jobs_give_the_same_records(features, tmp_path):
    kwargs = dict(rows=["r0.2"], methods=["gce", "mse-dn"], seeds=[4], log=None, **SHORT)
    one = imdb.run_table(features, out_dir=tmp_path / "one", jobs=1, **kwargs)
    two = imdb.run_table(features, out_dir=tmp_path / "two", jobs=2, **kwargs)
    assert [runner.outcome(r) for r in one.records] == [runner.outcome(r) for r in two.records]


def fake_record(row, method, seed, accuracy, predicted=(300, 300)):
    return {"config": imdb.make_settings(row, method, seed).as_dict(),
            "summary": {"test_accuracy_final": accuracy, "test_accuracy_best": accuracy + 0.01,
                        "one_class_final": one_class(list(predicted)), "diverged_by": None}}


def test_summary_statistics_and_formatting():
    records = [fake_record("r0", "cce", s, a) for s, a in ((1, 0.88), (2, 0.89), (3, 0.90))]
    records += [fake_record("pn50", "gce", s, 0.5, (0, 600)) for s in (1, 2)]
    records += [fake_record("pn50", "gce", 3, 0.55, (30, 570))]
    cce, gce = imdb.summarise(records)
    assert cce["n"] == 3 and cce["seeds"] == [1, 2, 3]
    assert cce["final_mean"] == pytest.approx(89.0) and cce["final_std"] == pytest.approx(1.0)
    assert cce["best_mean"] == pytest.approx(90.0)
    assert cce["paper"] == 88.9 and cce["diff"] == pytest.approx(0.1) and not cce["flagged"]
    assert gce["one_class"] == 2 and gce["paper"] == 50.0
    assert gce["final_mean"] == pytest.approx(155 / 3) and gce["flagged"] is False
    single = imdb.summarise(records[:1])[0]
    assert single["final_std"] == 0.0
    flagged = imdb.summarise([fake_record("r0.4", "dm", 1, 0.80)])[0]
    assert flagged["flagged"] and flagged["diff"] == pytest.approx(-6.4)

    text = imdb.format_table(imdb.summarise(records + [fake_record("r0.4", "dm", 1, 0.80)]))
    lines = text.splitlines()
    assert lines[0].split() == ["CCE", "GCE", "DM"]
    assert lines[1].split() == ["r", "=", "0.0", "ours", "89.0±1.0", "-", "-"]
    assert lines[2].split() == ["paper", "88.9", "-", "-"]
    assert "80.0±0.0*" in text and "51.7±2.9!2" in text
    md = imdb.markdown_table(imdb.summarise(records))
    assert "| r = 0.0 | 89.0 ± 1.0 (88.9) |" in md
    assert "51.7 ± 2.9 (50.0) [2/3 one-class]" in md
    assert "**80.0 ± 0.0** (86.4)" in imdb.markdown_table(imdb.summarise(records + [
        fake_record("r0.4", "dm", 1, 0.80)]))


def test_report_files_and_figures(features, tmp_path):
    table = imdb.run_table(features, rows=["r0", "pn10"], methods=["cce", "dm"], seeds=[1, 2],
                           out_dir=tmp_path / "runs", log=None, **{**SHORT, "iterations": 100})
    paths = imdb.write_report(table, tmp_path / "report", command="python examples/imdb_mlp.py")
    for path in paths.values():
        assert path.exists() and path.stat().st_size > 0
    rows = paths["table_csv"].read_text().splitlines()
    assert rows[0].startswith("row,method,loss_params,n,seeds,final_mean,final_std")
    assert len(rows) == 5 and rows[4].startswith("pn10,dm,lam=0.3 beta=6.5,2,1 2,")
    curves = paths["curves_csv"].read_text().splitlines()
    assert len(curves) == 1 + 8 * 1  # 8 runs, one evaluation each
    assert "Command: `python examples/imdb_mlp.py`" in paths["table_md"].read_text()


def test_features_are_checked():
    x, y = blobs(100, 0)
    with pytest.raises(ValueError, match="labels 0 and 1"):
        imdb.Features(x, y + 1, x, y)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        imdb.Features(x, y[:50], x, y)
    with pytest.raises(ValueError, match="fewer than one batch"):
        imdb.train_run(imdb.make_settings("pn50", "cce", 1), imdb.Features(x, y, x, y))
    assert imdb.Features(x, y, x, y).fingerprint != imdb.Features(x, 1 - y, x, y).fingerprint


def test_command_line(features, tmp_path, monkeypatch, capsys):
    """examples/imdb_mlp.py: --help, and a small table on injected features."""
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "imdb_mlp.py"
    spec = importlib.util.spec_from_file_location("imdb_mlp", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_:
        script.main(["--help"])
    assert exit_.value.code == 0 and "--rows" in capsys.readouterr().out
    monkeypatch.setattr(imdb, "load_features", lambda *a, **kw: features)
    script.main(["--rows", "r0.2", "--methods", "cce", "dm", "--seeds", "9", "--iterations",
                 "100", "--batch-size", "50", "--eval-every", "50", "--jobs", "1",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "2 runs trained, 0 reused" in out and "r = 0.2" in out and "paper" in out
    assert (tmp_path / "r0.2" / "dm_seed9.json").exists()
    assert (tmp_path / "table.md").exists() and (tmp_path / "imdb_curves.png").exists()
    script.main(["--rows", "r0.2", "--methods", "taylor", "--seeds", "9", "--iterations",
                 "100", "--batch-size", "50", "--eval-every", "50", "--jobs", "1",
                 "--out", str(tmp_path / "zoo")])
    assert "1 runs trained" in capsys.readouterr().out
    assert (tmp_path / "zoo" / "r0.2" / "taylor_seed9.json").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to NaN
def test_a_diverging_run_is_recorded_not_fatal(features, tmp_path):
    """A loss that becomes non-finite ends the run at that very iteration (every loss is
    checked, not only the logged ones): it is saved with status "diverged", and the network
    (NaN weights) is evaluated as it is: one class for every review, 50%."""
    table = imdb.run_table(features, rows=["r0"], methods=["cce-dn", "cce"], seeds=[1],
                           out_dir=tmp_path, log=None, base_lr=1e6, **SHORT)
    diverged, _ = table.records
    summary, losses_seen = diverged["summary"], [s["loss"] for s in diverged["history"]["steps"]]
    assert diverged["status"] == "diverged"
    assert 1 < summary["diverged_by"] < 50 and SHORT["log_every"] == 50
    assert diverged["history"]["evals"][-1]["iteration"] == summary["diverged_by"]
    assert all(np.isfinite(losses_seen))
    assert summary["test_accuracy_final"] == 0.5 and summary["one_class_final"]
    assert table.summary[0]["diverged"] == 1 and table.summary[0]["one_class"] == 1
    assert "[1/1 one-class, 1 diverged]" in imdb.markdown_table(table.summary)
    assert "diverged (non-finite loss, then one class): r = 0.0 CCE-DN (1/1)" in \
        imdb.format_table(table.summary)


def test_a_run_is_named_by_a_plain_dict_of_settings(features, tmp_path):
    """The single-run entry point a sweep calls: a dict of settings is the settings object."""
    settings = imdb.make_settings("r0", "cce", 2, **SHORT)
    record, trained = imdb.run_one(settings, features, tmp_path)
    again, trained_again = imdb.run_one(settings.as_dict(), features, tmp_path)
    assert trained and not trained_again and again == record
    assert imdb.RunSettings.from_dict(record["config"]) == settings.replace(
        features=features.fingerprint)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) lr; valid: "):
        imdb.RunSettings.from_dict({**settings.as_dict(), "lr": 0.1})
    with pytest.raises(ValueError, match="batch_size"):
        imdb.run_one({**settings.as_dict(), "batch_size": 0}, features, tmp_path)
    assert imdb.RunSettings.defaults()["iterations"] == 10_000
