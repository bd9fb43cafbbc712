"""Lesson 17: emphasis collapse in the experiments (docs/emphasis-collapse.md): the remedies as
options of the IMDB and CIFAR runs, the class-balanced IMDB batches, the collapse watch on an
IMDB-style run, the rescue table, and the feedback model the doc derives. Synthetic data only."""

import importlib.util
import json
import pathlib
import warnings

import numpy as np
import pytest
from conftest import blobs

from tinydm import backend, plot
from tinydm.experiments import imdb, runner
from tinydm.train.diagnostics import collapse_model

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
TINY = dict(iterations=60, batch_size=50, eval_every=30, log_every=10)
REMEDIES = {"plain": {}, "warmup": {"warmup": 40}, "ess_floor": {"ess_floor": 0.9},
            "per_class": {"per_class": True}, "balanced": {"sampler": "balanced"}}


@pytest.fixture(scope="module")
def features():
    return imdb.Features(*blobs(1000, 0), *blobs(600, 1))


def script(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_remedies_go_into_the_settings_and_the_file_name(tmp_path):
    plain = imdb.make_settings("r0.4", "dm", 5)
    assert plain.loss_params == {"lam": 0.0, "beta": -0.33} and plain.sampler == "shuffle"
    assert plain.variant == "" and plain.name == "r0.4/dm_seed5"
    every = imdb.make_settings("r0.4", "dm", 5, warmup=1000, ess_floor=0.99, per_class=True,
                               sampler="balanced")
    assert every.loss_params == {"lam": 0.0, "beta": -0.33, "warmup": 1000, "ess_floor": 0.99,
                                 "per_class": True}
    assert every.variant == "+warmup1000+ess0.99+perclass+balanced"
    assert imdb.run_path(tmp_path, every).name == \
        "dm+warmup1000+ess0.99+perclass+balanced_seed5.json"
    # remedies left at their "off" values leave the settings (and old result files) as they were
    assert imdb.make_settings("r0.4", "dm", 5, warmup=0, ess_floor=0.0, per_class=False) == plain
    # only DM has the loss remedies; the sampler applies to every method
    cce = imdb.make_settings("r0", "cce", 1, warmup=100, sampler="balanced")
    assert cce.loss_params == {} and cce.variant == "+balanced"
    for bad, match in (({"ess_floor": 1.5}, "ess_floor"), ({"warmup": -1}, "warmup"),
                       ({"warmup": 2.5}, "warmup"), ({"sampler": "stratified"}, "sampler")):
        with pytest.raises(ValueError, match=match):
            imdb.make_settings("r0.4", "dm", 1, **bad)


def test_balanced_imdb_batches_hold_half_of_each_given_label(device):
    y = np.repeat([1, 0], 5000)
    _, noisy, _ = imdb.training_set("r0.4", y, 7)
    for row_key, labels in (("r0.4", noisy), ("pn10", imdb.training_set("pn10", y, 7)[1])):
        settings = imdb.make_settings(row_key, "dm", 7, sampler="balanced", device=device)
        indices_of = imdb.batch_indices(settings, labels, device)
        on_cpu = imdb.batch_indices(imdb.make_settings(row_key, "dm", 7, sampler="balanced"),
                                    labels, "cpu")
        for it in (0, 1, 999):
            idx = np.asarray(backend.to_numpy(indices_of(it)))
            assert idx.size == 250 and np.unique(idx).size == 250
            assert np.bincount(labels[idx], minlength=2).tolist() == [125, 125]
            np.testing.assert_array_equal(idx, on_cpu(it))  # every device, the same batches
    # the default: epochs of a permutation, every example once per epoch
    shuffled = imdb.batch_indices(imdb.make_settings("r0.4", "dm", 7), noisy, "cpu")
    epoch = np.concatenate([shuffled(it) for it in range(40)])
    assert np.array_equal(np.sort(epoch), np.arange(10_000))


@pytest.mark.filterwarnings("ignore:iteration.*emphasis collapse:RuntimeWarning")
@pytest.mark.parametrize("remedy", list(REMEDIES))
def test_each_remedy_runs_and_does_what_it_claims(features, tmp_path, remedy):
    """A tiny run with each remedy, on the CPU and on the stand-in device (the same record step
    for step: batches and initial weights come from the host)."""
    records = {}
    for device in ("cpu", "standin"):
        settings = imdb.make_settings("r0.4", "dm", 3, device=device, **REMEDIES[remedy], **TINY)
        record, trained = imdb.run_one(settings, features, tmp_path / device)
        assert trained and record["config"] == imdb.settings_of(record).as_dict()
        assert imdb.run_path(tmp_path / device, settings).exists()
        assert record["config"]["loss_params"] == settings.loss_params
        records[device] = record
    cpu, standin = (runner.outcome(records[d]) for d in ("cpu", "standin"))
    assert (cpu["evals"], cpu["steps"]) == (standin["evals"], standin["steps"])
    ess = [s["ess_fraction"] for s in cpu["steps"]]
    if remedy == "warmup":  # beta = 0 at iteration 0: uniform emphasis, ESS exactly 1
        assert cpu["steps"][0]["iteration"] == 1 and ess[0] == pytest.approx(1.0)
        assert min(ess) < 0.9999  # and beta is on later
    if remedy == "ess_floor":
        assert min(ess) >= 0.9 - 1e-5
    if remedy == "per_class":  # shares pinned to the label counts: a balanced batch gives 1/2
        balanced = imdb.make_settings("r0.4", "dm", 3, per_class=True, sampler="balanced", **TINY)
        record = imdb.run_one(balanced, features, tmp_path)[0]
        shares = [s["class_shares"] for s in runner.steps_of(record)]
        np.testing.assert_allclose(shares, 0.5, atol=1e-5)


def test_the_collapse_watch_reads_the_imdb_class_histogram(tmp_path):
    """A strongly negative beta on weak features locks the network onto one class: the watch
    sees it through ``test_class_histogram`` and the record keeps the warning; a healthy run on
    the same data stays silent."""
    weak = imdb.Features(*blobs(1000, 0, apart=0.2), *blobs(600, 1, apart=0.2))
    short = dict(TINY, iterations=300, eval_every=100)  # the watch ignores iterations < 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collapsed = imdb.run_one(imdb.make_settings("r0.4", "dm", 1, beta=-6.0, **short), weak,
                                 tmp_path)[0]
        healthy = imdb.run_one(imdb.make_settings("r0", "dm", 1, beta=0.0, **short), weak,
                               tmp_path)[0]
    summary, found = collapsed["summary"], collapsed["history"]["warnings"]
    assert summary["one_class_final"] and summary["test_accuracy_final"] == 0.5
    assert len(found) >= 1
    assert "test_class_histogram has put more than 90% of the predictions in one class" in \
        found[0] and "(now 100% in class" in found[0]
    assert "emphasis collapse" in found[0]
    # the table's notes say it in one line per run: an IMDB run keeps the text in its record
    assert not any("emphasis collapse" in str(w.message) for w in caught)
    assert not healthy["summary"]["one_class_final"] and healthy["history"]["warnings"] == []


def fake(row, variant, seed, accuracy, one_class=False, beta=-0.33, iterations=10_000):
    settings = imdb.make_settings(row, "dm", seed, beta=beta, iterations=iterations,
                                  **variant).as_dict()
    histogram = [600, 0] if one_class else [300, 300]
    return {"config": settings,
            "summary": {"test_accuracy_final": accuracy, "test_accuracy_best": accuracy,
                        "one_class_final": one_class, "diverged_by": None},
            "history": {"evals": [{"iteration": 100, "test_class_histogram": [600, 0]},
                                  {"iteration": 200, "test_class_histogram": histogram}]},
            "timing": {"wall_seconds": 1.0}}


def test_the_rescue_table_counts_rescues_new_collapses_and_costs():
    plain = [fake("r0.4", {}, 1, 0.5, True), fake("r0.4", {}, 2, 0.5, True),
             fake("r0.4", {}, 3, 0.88), fake("r0.4", {}, 4, 0.86)]
    cure = [fake("r0.4", {"warmup": 1000}, 1, 0.87), fake("r0.4", {"warmup": 1000}, 2, 0.5, True),
            fake("r0.4", {"warmup": 1000}, 3, 0.5, True), fake("r0.4", {"warmup": 1000}, 4, 0.85),
            fake("r0.4", {"warmup": 1000}, 9, 0.80)]  # no plain run of seed 9
    table = imdb.rescue_table(cure + plain)
    first, second = table
    assert first["variant"] == "" and first["one_class"] == 2 and first["n"] == 4
    assert first["one_class_evals"] == pytest.approx(0.75)
    assert second["variant"] == "+warmup1000" and second["n"] == 5 and second["paired"] == 4
    assert (second["collapsed"], second["rescued"], second["new"]) == (2, 1, 1)
    assert second["cost_n"] == 1 and second["cost"] == pytest.approx(-1.0)
    assert second["final_healthy_mean"] == pytest.approx((87 + 85 + 80) / 3)
    md = imdb.markdown_rescue_table(table)
    assert "| r = 0.4 | +warmup1000 | 5 | 2/5 | 1/2 | 1 |" in md
    assert "-1.00 [-1.0, -1.0] (n=1)" in md
    with pytest.raises(ValueError, match="differ in iterations"):
        imdb.rescue_table(plain + [fake("r0.4", {"warmup": 10}, 1, 0.8, iterations=500)])
    both = imdb.format_table(imdb.summarise(plain + cure))  # a column per variant
    assert "DM+warmup1000" in both.splitlines()[0] and "  DM  " in both.splitlines()[0] + " "


@pytest.mark.filterwarnings("ignore:iteration.*emphasis collapse:RuntimeWarning")
def test_command_line_remedies_seed_ranges_and_the_rescue_report(features, tmp_path,
                                                                 monkeypatch, capsys):
    cli = script("imdb_mlp")
    assert cli.seed_list("123-125") == [123, 124, 125] and cli.seed_list("7") == [7]
    monkeypatch.setattr(imdb, "load_features", lambda *a, **kw: features)
    monkeypatch.setattr(imdb, "write_report", lambda *a, **kw: {})  # test_12's business
    common = ["--rows", "r0.4", "--methods", "dm", "--iterations", "60", "--batch-size", "50",
              "--eval-every", "30", "--log-every", "10", "--jobs", "1", "--out", str(tmp_path)]
    cli.main(common + ["--seeds", "1-2"])
    cli.main(common + ["--seeds", "1", "2", "--warmup", "20", "--per-class",
                       "--sampler", "balanced"])
    out = capsys.readouterr().out
    assert "DM+warmup20+perclass+balanced" in out
    names = sorted(p.name for p in (tmp_path / "r0.4").glob("*.json"))
    assert names == ["dm+warmup20+perclass+balanced_seed1.json",
                     "dm+warmup20+perclass+balanced_seed2.json", "dm_seed1.json", "dm_seed2.json"]
    record = json.loads((tmp_path / "r0.4" / names[0]).read_text())
    assert record["config"]["sampler"] == "balanced"
    assert record["config"]["loss_params"]["warmup"] == 20
    drawn = {}  # figures are built, not rendered: PNG writing is slow and tested in test_12

    def save(fig, out_dir, name, **kwargs):
        drawn[name] = fig
        return [pathlib.Path(out_dir) / f"{name}.png"]

    monkeypatch.setattr(plot, "save", save)  # the report calls plot.save
    cli.main(["--out", str(tmp_path), "--rescue-report", "--report-dir", str(tmp_path / "rep")])
    assert "| r = 0.4 | +warmup20+perclass+balanced | 2 |" in capsys.readouterr().out
    report = (tmp_path / "rep" / "rescue.md").read_text()
    assert "| r = 0.4 | +warmup20+perclass+balanced | 2 |" in report
    assert (tmp_path / "rep" / "rescue.csv").read_text().startswith("row,method,variant,")
    assert sorted(drawn) == ["collapse_feedback", "collapse_imdb_remedies", "collapse_imdb_seeds",
                             "collapse_rescue"]
    assert len(drawn["collapse_imdb_remedies"].axes) == 4  # plain and the remedy, two panels each


def test_cifar_command_line_takes_the_remedies():
    cli = script("cifar_resnet")
    config = cli.config_from_args(cli.parse_args(
        ["--dataset", "synthetic", "--loss", "dm", "--lam", "1", "--beta", "16", "--warmup",
         "1000", "--ess-floor", "0.5", "--per-class", "--sampler", "balanced"])).resolved()
    assert config.loss_params == {"lam": 1.0, "beta": 16.0, "warmup": 1000.0, "ess_floor": 0.5,
                                  "per_class": True}
    assert config.sampler == "balanced" and "warmup1000" in config.name
    plain = cli.config_from_args(cli.parse_args(["--loss", "dm", "--lam", "1", "--beta", "16"]))
    assert plain.loss_params == {"lam": 1.0, "beta": 16.0}  # off by default
    with pytest.raises(ValueError, match="unknown parameter"):  # remedies are DM's
        cli.config_from_args(cli.parse_args(["--loss", "cce", "--warmup", "10"]))


@pytest.mark.parametrize("classes, lam, beta", [(2, 0, -0.33), (2, 0, 0.9), (10, 1, 16),
                                                (10, 1, 8), (10, 0.5, 8), (100, 0.5, 8)])
def test_the_feedback_model_has_the_slope_the_doc_derives(classes, lam, beta):
    """At p = 1/C the push on the favoured logit grows like
    (l'(1/C) - C(C-2)/(C-1)) / (2(C-1)) per unit of p, l = log w = beta p^lam (1-p):
    docs/emphasis-collapse.md, section 2."""
    c, h = classes, 1e-6
    def push(p):
        return collapse_model("dm", [p], c, lam=lam, beta=beta)[1][0]
    slope = (push(1 / c + h) - push(1 / c - h)) / (2 * h)
    dlogw = beta * c ** (-lam) * (lam * (c - 1) - 1)
    assert slope == pytest.approx((dlogw - c * (c - 2) / (c - 1)) / (2 * (c - 1)), abs=1e-6)
    assert push(1 / c) == pytest.approx(0.0, abs=1e-12)  # the uniform state is a fixed point


def test_the_feedback_model_at_the_extremes():
    # per-class renormalisation (uniform class shares) is neutral for two classes...
    share, push = collapse_model("uniform", np.linspace(0.5, 0.99, 5), 2)
    np.testing.assert_allclose(share, 0.5) and np.testing.assert_allclose(push, 0, atol=1e-12)
    # ... CCE restores, and DM with beta < 0 pushes the favoured class by tanh(-beta / 2) / 2
    assert (collapse_model("cce", [0.7, 0.9], 2)[1] < 0).all()
    assert collapse_model("dm", [1 - 1e-12], 2, lam=0, beta=-0.33)[1][0] == \
        pytest.approx(np.tanh(0.165) / 2)


def cifar_results(histograms, shares):
    """A CIFAR run's results with these test class histograms and batch class shares."""
    steps = [{"iteration": 20 * (k + 1), "ess_fraction": 0.2, "class_shares": s}
             for k, s in enumerate(shares)]
    evals = [{"iteration": 200 * (k + 1), "test_class_histogram": h}
             for k, h in enumerate(histograms)]
    return {"config": {"loss": "dm", "dataset": "cifar10", "depth": 20, "noise": "symmetric",
                       "noise_rate": 0.4, "batch_size": 128},
            "history": {"steps": steps, "evals": evals}}


def test_the_cifar_collapse_figure_reads_the_run_records():
    collapsed = cifar_results([[1070, 0, 0, 0, 8930] + [0] * 5, [2802, 0, 0, 0, 7198] + [0] * 5],
                              [[0.41, 0.05, 0.05, 0.04, 0.26] + [0.038] * 5] * 3)
    fig = plot.collapse_cifar({"DM": collapsed, "CCE": cifar_results([[1000] * 10] * 2,
                                                                   [[0.1] * 10] * 3)})
    stacked, _, _, largest = fig.axes
    assert len(stacked.patches) == 2 * 10  # two evaluations, ten classes stacked
    np.testing.assert_allclose(largest.lines[0].get_ydata(), 0.41)


def test_the_cifar_collapse_figure_of_one_run_names_its_classes():
    run = cifar_results([[1000] * 10] * 2, [[0.1] * 10] * 3)
    stacked = plot.collapse_cifar({"CCE": run}, classes=[f"c{k}" for k in range(10)]).axes[0]
    legend = stacked.get_legend()
    assert legend is not None and legend.get_title().get_text() == "class"
    assert [t.get_text() for t in legend.get_texts()] == [f"c{k}" for k in range(10)]
    with pytest.raises(ValueError, match=r"runs: nothing to draw, got \{\}"):
        plot.collapse_cifar({})


def test_an_ess_floor_below_the_kantorovich_bound_changes_nothing(features, tmp_path):
    """beta = -0.33 keeps every weight in [e^-0.33, 1], so every batch has an ESS fraction of at
    least 4 e^-0.33 / (1 + e^-0.33)^2 = 0.973 (Kantorovich): a floor of 0.9 never tempers, and the
    run is the plain run bit for bit (docs/emphasis-collapse.md, section 4)."""
    plain, floored = [imdb.run_one(imdb.make_settings("r0.4", "dm", 2, **extra, **TINY), features,
                                   tmp_path)[0] for extra in ({}, {"ess_floor": 0.9})]
    rho = np.exp(-0.33)
    plain, floored = runner.outcome(plain), runner.outcome(floored)
    assert min(s["ess_fraction"] for s in plain["steps"]) >= 4 * rho / (1 + rho) ** 2 - 1e-6
    assert (plain["evals"], plain["steps"]) == (floored["evals"], floored["steps"])
