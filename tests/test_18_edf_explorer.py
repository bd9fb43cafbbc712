"""The EDF explorer page (tinydm/plot/explorer.py, examples/edf_explorer.py): its numbers are
tinydm's, and in a real headless Chromium it renders and its sliders move the curves and psi."""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chromium import Browser, find_programs
from conftest import ROOT, checkout_env
from tinydm import edf, losses
from tinydm.train import toy_batch
from tinydm.plot import explorer
from tinydm.tensor import Tensor

SMALL = dict(lams=(0.0, 0.5, 1.0), betas=(-2.0, 0.0, 8.0), qs=(0.35, 0.7, 1.0), grid=21,
             start=(0.5, 8.0, 0.7))


@pytest.fixture(scope="module")
def batch():
    return toy_batch(n=24, train_size=200, steps=20)


def floats(b64):
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def embedded(path):
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(re.search(r"const DATA = (\{.*?\});\n", text).group(1).replace("<\\/", "</"))


def test_the_page_holds_tinydms_curves_modes_and_batch_weights(tmp_path, batch):
    path = tmp_path / "edf.html"
    explorer.write_html(path, batch=batch, batch_about="a toy </script> batch", **SMALL)
    data = embedded(path)
    p = np.linspace(0, 1, 21)
    np.testing.assert_allclose(floats(data["p"]), p, atol=1e-7)
    dm = floats(data["dm"]["density"]).reshape(3, 3, 21)
    for i, lam in enumerate(SMALL["lams"]):
        for j, beta in enumerate(SMALL["betas"]):
            np.testing.assert_allclose(dm[i, j], edf.density("dm", p, lam=lam, beta=beta),
                                       rtol=1e-6)
    np.testing.assert_allclose(floats(data["gce"]["density"]).reshape(3, 21)[2],
                               edf.density("gce", p, q=1.0), rtol=1e-6)
    np.testing.assert_allclose(floats(data["fixed"]["mse"]["density"]),
                               edf.density("mse", p), rtol=1e-6)
    # psi: lam / (lam + 1) for beta > 0; none for beta = 0 and for beta < 0 with lam > 0
    psi = np.array(data["dm"]["psi"], dtype=object).reshape(3, 3)
    assert list(psi[:, 2]) == [0.0, 1 / 3, 0.5] and psi[1, 0] is None and psi[1, 1] is None
    assert psi[0, 0] == 1.0  # lam = 0, beta < 0: the easiest examples (Eq. 10)
    assert data["start"] == [1, 2, 1]
    logits, labels, noisy = batch
    shares = floats(data["batch"]["dm"]).reshape(3, 3, -1)
    loss = losses.dm(Tensor(logits.astype(np.float64)), Tensor(labels), 1.0, -2.0)
    np.testing.assert_allclose(shares[2, 0], losses.details(loss)["normalised_weights"].numpy(),
                               rtol=1e-6)
    assert data["batch"]["noisy"] == noisy.tolist()
    # the zoo: each loss's densities over its parameter grid, its modes (focal's numerical)
    zoo = data["zoo"]
    assert list(zoo) == ["focal", "poly1", "taylor", "rce", "phuber"]
    focal = zoo["focal"]
    assert focal["param"] == "gamma" and focal["values"][focal["start"]] == 2.0
    curves = floats(focal["density"]).reshape(len(focal["values"]), 21)
    np.testing.assert_allclose(curves[focal["start"]], edf.density("focal", p, gamma=2.0),
                               rtol=1e-6)
    assert focal["psi"][focal["start"]] == pytest.approx(0.0578, abs=1e-4)
    assert focal["psi"][0] == 0.0  # gamma = 0 is CCE
    poly1 = zoo["poly1"]
    k = poly1["values"].index(2.0)
    assert poly1["psi"][k] == 0.25 and poly1["values"][poly1["start"]] == 1.0
    np.testing.assert_allclose(floats(poly1["density"]).reshape(-1, 21)[k],
                               edf.density("poly1", p, epsilon=2.0), rtol=1e-6)
    assert zoo["phuber"]["psi"][zoo["phuber"]["values"].index(10.0)] == 0.1
    assert data["batch"]["about"] == (f"24 examples, {noisy.sum()} of them ({noisy.mean():.0%}) "
                                      "with a wrong label; a toy </script> batch")
    # one script element, and the "</script>" in the data did not end it early
    text = path.read_text(encoding="utf-8")
    assert text.count("<script>") == text.count("</script>") == 1
    assert text.index("const DATA = ") < text.index("</script>")


def test_the_note_on_the_batch_follows_the_arguments(batch):
    about = explorer.tables(**SMALL)["batch"]["about"]
    assert about.startswith("128 examples, ") and about.endswith(explorer.TOY_BATCH)
    assert "linear classifier" not in explorer.tables(**SMALL, batch=batch)["batch"]["about"]


def test_bad_grids_and_start_values_are_named(batch):
    data = explorer.tables(**{**SMALL, "grid": np.int64(21)}, batch=batch)  # a numpy integer
    assert floats(data["p"]).size == 21
    for grid in (True, 21.0, 2):
        with pytest.raises(ValueError, match=f"grid must be an integer >= 3 points, got {grid!r}"):
            explorer.tables(**{**SMALL, "grid": grid}, batch=batch)
    with pytest.raises(ValueError, match="lams must be a non-empty increasing sequence"):
        explorer.tables(lams=(1.0, 0.5), batch=batch)
    with pytest.raises(ValueError, match="start value beta=5 is not on the beta grid"):
        explorer.tables(**{**SMALL, "start": (0.5, 5.0, 0.7)}, batch=batch)
    with pytest.raises(ValueError, match="start value focal's gamma=2 is not on"):
        explorer.tables(**SMALL, batch=batch, zoo={"focal": ("gamma", (0.0, 1.0))})
    with pytest.raises(ValueError, match="t \\(the Taylor order\\) must be an integer"):
        explorer.tables(**SMALL, batch=batch, zoo={"taylor": ("t", (1.5, 2.0))})
    with pytest.raises(ValueError, match="q must be in \\(0, 1\\]"):
        explorer.tables(**{**SMALL, "qs": (0.5, 1.5), "start": (0.5, 8.0, 0.5)}, batch=batch)


def test_the_example_script_writes_the_page(tmp_path):
    out = tmp_path / "page.html"
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples/edf_explorer.py"), "--out", str(out),
         "--lam-max", "1", "--lam-step", "0.5", "--beta-min", "0", "--beta-max", "8",
         "--beta-step", "4", "--q-step", "0.35", "--points", "11", "--start", "0.5", "8", "0.7",
         "--batch-size", "16"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=checkout_env())
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout
    data = embedded(out)
    assert data["lams"] == [0.0, 0.5, 1.0] and data["betas"] == [0.0, 4.0, 8.0]
    assert data["qs"] == [0.35, 0.7] and len(data["batch"]["noisy"]) == 16


@pytest.mark.skipif(find_programs() is None,
                    reason="chromium and chromedriver are not installed "
                           "(apt-get install chromium chromium-driver; .ci/run does)")
def test_the_page_renders_in_chromium_and_the_sliders_move_curve_and_psi(tmp_path, batch):
    path = tmp_path / "edf.html"
    explorer.write_html(path, batch=batch, **SMALL)
    state = """return {dm: document.getElementById('curve-dm').getAttribute('d'),
                       gce: document.getElementById('curve-gce').getAttribute('d'),
                       psi: document.getElementById('psi').dataset.psi,
                       psiText: document.getElementById('psi').textContent,
                       lam: document.getElementById('lam-value').textContent,
                       dots: document.querySelectorAll('#batch-dm circle').length,
                       weights: Array.from(document.querySelectorAll('#batch-dm circle'),
                                           c => c.getAttribute('cy')).join(),
                       error: document.getElementById('error').textContent,
                       about: document.getElementById('batch-about').textContent,
                       width: document.getElementById('edf').getBoundingClientRect().width};"""
    with Browser() as browser:
        browser.open(path)
        start = browser.run(state)
        assert start["error"] == "" and start["width"] > 0
        assert start["about"].startswith("24 examples, ")
        assert start["lam"] == "0.5" and float(start["psi"]) == pytest.approx(1 / 3, abs=1e-6)
        assert "ψ = 0.333" in start["psiText"] and start["dots"] == 24
        assert start["dm"].startswith("M") and start["dm"].count("L") == 20  # 21 grid points

        browser.press("#lam", "right")                      # lam 0.5 -> 1
        moved = browser.run(state)
        assert moved["lam"] == "1" and float(moved["psi"]) == pytest.approx(0.5, abs=1e-6)
        assert moved["dm"] != start["dm"] and moved["weights"] != start["weights"]
        assert moved["gce"] == start["gce"] and moved["error"] == ""

        browser.press("#beta", "left", times=2)             # beta 8 -> -2: two maxima
        negative = browser.run(state)
        assert negative["psi"] == "none" and "two maxima" in negative["psiText"]
        assert negative["dm"] != moved["dm"]

        browser.press("#q", "right")                        # GCE's q 0.7 -> 1 (MAE's shape)
        assert browser.run(state)["gce"] != start["gce"]

        zoo = """return {curve: (document.getElementById('curve-zoo') || {getAttribute: () => null})
                                .getAttribute('d'),
                         legend: (document.getElementById('legend-zoo') || {}).textContent,
                         slider: document.getElementById('zoo-param-label').style.visibility,
                         error: document.getElementById('error').textContent};"""
        assert browser.run(zoo) == {"curve": None, "legend": None, "slider": "hidden", "error": ""}
        browser.run("const s = document.getElementById('zoo'); s.value = 'focal';"
                    "s.dispatchEvent(new Event('change'));")
        focal = browser.run(zoo)
        assert focal["slider"] == "visible" and focal["error"] == ""
        assert focal["legend"] == "Focal (γ=2): ψ=0.06" and focal["curve"].count("L") == 20
        browser.press("#zoo-param", "right")                # gamma 2 -> 2.25
        moved = browser.run(zoo)
        assert moved["legend"].startswith("Focal (γ=2.25)") and moved["curve"] != focal["curve"]
        browser.run("const s = document.getElementById('zoo'); s.value = 'phuber';"
                    "s.dispatchEvent(new Event('change'));")
        assert browser.run(zoo)["legend"] == "PHuber-CE (τ=10): ψ=0.10"
        assert browser.run(state)["dm"] == negative["dm"]  # DM's curve did not move

    with Browser() as browser:                              # the address chooses a zoo loss
        browser.open(str(path) + "#zoo=taylor")
        legend = browser.run("return document.getElementById('legend-zoo').textContent;")
        assert legend == "Taylor CE (t=2): ψ=0.42"
