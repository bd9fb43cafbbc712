"""Protocol M across label noise: tiny runs at several symmetric rates and under (tiny) CIFAR-10N
human labels, grouped by noise; at each noise DM is chosen by validation accuracy, never the
test set; the report says whether the chosen lam rises with the rate, and which swaps of the
human noise each method memorises."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydm.data import cifar as cifar_data
from tinydm.data import cifar_n
from tinydm.experiments import cifar
from tinydm.experiments.cifar import noise_table
from tinydm.experiments.sweep import cells
from tinydm.experiments.sweep.grid import load_grid

from test_data_cifar import write_cifar10
from test_data_cifar_n import write_human

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import cifar_report  # noqa: E402

TINY = dict(dataset="synthetic", synthetic_sizes=(120, 16), synthetic_image_size=8, depth=8,
            batch_size=8, iterations=8, eval_every=4, log_every=4, eval_batch_size=16,
            val_fraction=0.25)
METHODS = {"CCE": ("cce", {}), "GCE q=0.7": ("gce", {"q": 0.7}),
           "DM lam=0.5 beta=4": ("dm", {"lam": 0.5, "beta": 4.0}),
           "DM lam=1 beta=4": ("dm", {"lam": 1.0, "beta": 4.0})}


def tiny_run(out, **settings):
    return cifar.run(cifar.Config(**{**TINY, **settings}, out_dir=str(out)), progress=False,
                     figures=False, log=None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every method at r = 0.6 and 0.2 with seed 123, CCE with seed 124 too, and CCE clean."""
    root = tmp_path_factory.mktemp("noise")
    out = [tiny_run(root / "clean", loss="cce", noise_rate=0.0)]
    for r in (0.6, 0.2):
        for loss, params in METHODS.values():
            out.append(tiny_run(root / f"{r}-{loss}-{len(out)}", loss=loss, loss_params=params,
                                noise_rate=r))
        out.append(tiny_run(root / f"{r}-cce-124", loss="cce", noise_rate=r, seed=124))
    return out


def best_val(run):
    return max(e["val_accuracy"] for e in run["history"]["evals"])


def test_runs_are_grouped_by_noise_in_increasing_rate(runs):
    by_noise = noise_table.group_by_noise(runs)
    assert list(by_noise) == ["r=0", "r=0.2", "r=0.6"]
    assert set(by_noise["r=0.2"]) == set(METHODS) and sorted(by_noise["r=0.6"]["CCE"]) == [123, 124]
    assert list(by_noise["r=0"]) == ["CCE"]
    with pytest.raises(ValueError, match="noise 'pair' is neither symmetric nor human"):
        noise_table.noise_label({"config": {"noise": "pair", "noise_rate": 0.4}})
    assert noise_table.noise_label({"config": {"noise": "cifar10n:aggre"}}) == "cifar10n:aggre"


def test_dm_is_chosen_by_validation_at_each_rate_and_the_trend_follows(runs):
    by_noise = noise_table.group_by_noise(runs)
    expected = {}
    for noise in ("r=0.2", "r=0.6"):
        dm = {m: g[123] for m, g in by_noise[noise].items() if m.startswith("DM")}
        want = max(dm, key=lambda m: best_val(dm[m]))  # the first of equal ones, as chosen
        chosen, scores = noise_table.chosen_dm(by_noise[noise])
        assert chosen == want and set(scores) == set(dm)
        expected[float(noise[2:])] = noise_table.lam_of(want)
    trend, rising = noise_table.lam_trend(by_noise)
    assert trend == sorted(expected.items()) and rising == (expected[0.2] <= expected[0.6])
    table = noise_table.summary_table(by_noise)
    row = next(line for line in table.splitlines() if line.startswith("| r=0.6 |"))
    finals = [r["summary"]["test_accuracy_final"] for r in by_noise["r=0.6"]["CCE"].values()]
    assert f"{100 * np.mean(finals):.1f} ± {100 * np.std(finals, ddof=1):.1f} (2 seeds)" in row
    assert f"| {noise_table.chosen_dm(by_noise['r=0.6'])[0]} | {expected[0.6]:g} |" in row
    assert "| r=0 |" in table and "no DM run" in table


def test_the_lam_table_has_table_9s_form_one_column_per_emphasis_mode(runs):
    by_noise = noise_table.group_by_noise(runs)
    table = noise_table.lam_table(by_noise).splitlines()
    assert table[0] == ("| noise (seed 123) | lam=0.5 | lam=1 | lam with the best final | "
                        "lam validation picks |") and len(table) == 4  # r = 0 has no DM
    for line, noise in zip(table[2:], ("r=0.2", "r=0.6")):
        g = by_noise[noise]
        finals = {lam: g[f"DM lam={lam:g} beta=4"][123]["summary"]["test_accuracy_final"]
                  for lam in (0.5, 1)}
        best = max(finals, key=lambda k: finals[k])
        chosen = noise_table.lam_of(noise_table.chosen_dm(g)[0])
        assert line == (f"| {noise} | {100 * finals[0.5]:.1f} (beta 4) | {100 * finals[1]:.1f} "
                        f"(beta 4) | {best:g} | {chosen:g} |")
    wider = {"r=0.2": ["DM lam=0.5 beta=4", "DM lam=1 beta=4", "DM lam=2 beta=12"]}
    row = noise_table.lam_table(by_noise, candidates=wider).splitlines()[2]
    assert row.startswith("| r=0.2 |") and row.endswith("| to choose |  |  |")


def test_an_unfinished_run_is_said_running_and_blocks_the_choice(runs):
    dm = next(r for r in runs if r["config"]["loss"] == "dm" and r["config"]["noise_rate"] == 0.2)
    running = json.loads(json.dumps(dm))
    running["status"] = "running"
    others = [r for r in runs if r is not dm]
    by_noise = noise_table.group_by_noise(others + [running])
    assert noise_table.chosen_dm(by_noise["r=0.2"])[0] is None
    row = next(line for line in noise_table.summary_table(by_noise).splitlines()
               if line.startswith("| r=0.2 |"))
    assert "not chosen yet" in row
    assert noise_table.lam_trend(by_noise) == (noise_table.lam_trend(by_noise)[0], None)


def test_report_writes_the_table_and_the_figure(runs, tmp_path):
    paths = noise_table.write_report(runs, tmp_path)
    assert [p.name for p in paths] == ["noise.md", "noise.png"]
    text = paths[0].read_text()
    assert text.count("## r=") == 3 and "Chosen lam by symmetric noise rate: r = 0.2:" in text
    assert paths[1].stat().st_size > 10_000
    points = noise_table.curve_points(noise_table.group_by_noise(runs))
    assert [len(pts) for pts in points.values()] == [3, 2, 2]  # CCE also at r = 0


GRID = """experiment = "cifar"
[fixed]
dataset = "synthetic"
[[subgrid]]
noise_rate = [0.2]
loss = ["dm"]
lam = [0.5, 1]
beta = [4]
seed = [123]
[[subgrid]]
noise_rate = [0.2]
loss = ["dm"]
lam = [2]
beta = [12]
seed = [123]
[[subgrid]]
noise_rate = [0.2]
loss = ["dm"]
seed = [124]
chosen_from = { seed = 123 }
"""


def test_a_grid_names_the_candidates_and_the_choice_waits_for_all_of_them(runs, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID)
    settings = cells.candidate_settings(load_grid(tmp_path / "grid.toml"))
    assert [s["loss_params"] for s in settings] == [{"lam": 0.5, "beta": 4}, {"lam": 1, "beta": 4},
                                                    {"lam": 2, "beta": 12}]
    candidates = noise_table.candidates_by_noise(settings)
    assert candidates == {"r=0.2": ["DM lam=0.5 beta=4", "DM lam=1 beta=4", "DM lam=2 beta=12"]}
    by_noise = noise_table.group_by_noise(runs)
    present, _ = noise_table.chosen_dm(by_noise["r=0.2"])
    assert present is not None  # among the two DM runs there are
    assert noise_table.chosen_dm(by_noise["r=0.2"], expected=candidates["r=0.2"])[0] is None
    assert noise_table.chosen_dm(by_noise["r=0.2"], expected=candidates["r=0.2"][:2])[0] == present
    row = next(line for line in noise_table.summary_table(by_noise, candidates=candidates)
               .splitlines() if line.startswith("| r=0.2 |"))
    assert "not chosen yet" in row
    trend, _ = noise_table.lam_trend(by_noise, candidates=candidates)
    assert [r for r, _ in trend] == [0.6]
    text = noise_table.write_report(runs, tmp_path / "report", candidates=candidates)[0].read_text()
    assert "| DM lam=2 beta=12 | | | | not run |" in text
    assert "Not chosen yet: DM lam=2 beta=12 not finished with seed 123." in text
    folders = [r["config"]["out_dir"] for r in runs]
    grid = str(tmp_path / "grid.toml")
    paths = cifar_report.main(["--by-noise", *folders, "--grid", grid, "--out", str(tmp_path)])
    assert paths[0].read_text() == text
    with pytest.raises(SystemExit):  # a grid names candidates only for --by-noise
        cifar_report.main(["--seeds", *folders, "--grid", grid, "--out", str(tmp_path)])


@pytest.fixture(scope="module")
def human_runs(tmp_path_factory):
    """CCE and DM on a tiny CIFAR-10 under its (tiny) CIFAR-10N worst labels."""
    root = tmp_path_factory.mktemp("human")
    write_cifar10(root, per_batch=8)
    labels = write_human(root, cifar_data.load_cifar10(root, download=False).train_labels)
    patch = pytest.MonkeyPatch()
    patch.setattr(cifar_n, "LABELS_SHA256", cifar_n.labels_digest(labels))
    try:
        return [cifar.run(cifar.Config(dataset="cifar10", data_dir=str(root), depth=8,
                                       noise="cifar10n:worst", loss=loss, loss_params=params,
                                       batch_size=4, iterations=4, eval_every=2, log_every=2,
                                       val_fraction=0.25, out_dir=str(root / loss)),
                          progress=False, figures=False, log=None)
                for loss, params in (("cce", {}), ("dm", {"lam": 0.5, "beta": 4.0}))]
    finally:
        patch.undo()


def test_human_noise_confusion_beside_what_each_method_memorises(human_runs):
    groups = noise_table.group_by_noise(human_runs)["cifar10n:worst"]
    table = noise_table.confusion_table(groups).splitlines()
    pairs = sorted(human_runs[0]["data"]["noise_pairs"], key=lambda p: -p[2])
    classes = human_runs[0]["data"]["classes"]
    assert table[0].endswith("| CCE: memorised | DM lam=0.5 beta=4: memorised |")
    assert len(table) == 2 + min(8, len(pairs))
    i, j, n = pairs[0]
    first = table[2].split(" | ")
    assert first[0] == f"| {classes[i]} -> {classes[j]}" and first[1] == str(n)
    for k, run in enumerate(human_runs):
        got = {(a, b): (c, m) for a, b, c, m in run["summary"]["noisy_memorised_pairs_final"]}
        c, m = got[i, j]
        assert first[3 + k].strip(" |") == f"{100 * m / c:.0f}%"
