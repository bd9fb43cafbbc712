"""The lecture notebooks (docs/lectures/) run top to bottom, with small settings, and are stored
with the outputs of one top-to-bottom run (so they read well on a code host's viewer)."""

import json

import pytest
from conftest import ROOT, checkout_env

nbformat = pytest.importorskip(
    "nbformat", reason="the notebook extra is not installed: pip install -e '.[dev]'")
nbclient = pytest.importorskip(
    "nbclient", reason="the notebook extra is not installed: pip install -e '.[dev]'")
pytest.importorskip("ipykernel", reason="the notebook extra is not installed: pip install -e '.[dev]'")

LECTURES = ROOT / "docs" / "lectures"
NOTEBOOKS = sorted(LECTURES.glob("*.ipynb"))
# Small settings, set after a notebook's "parameters" cell; the synthetic set in lecture 4, so
# the test never depends on data on the machine.
SMALL = {"04-dm-at-work.ipynb": "use_imdb = False\niterations = 300\ntrain_size = 1500"}


def test_there_are_five_lectures():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_come_from_one_top_to_bottom_run(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.outputs)
    text = "\n".join(strings(json.loads(path.read_text(encoding="utf-8"))))
    for machine_path in ("/root", "/work", "/tmp", "/home/"):
        assert machine_path not in text


def strings(node):
    """Every string of a notebook's JSON (sources, outputs, display data, metadata) but its
    base64 images, where "/tmp" and the like can occur by chance."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("image/png", "image/jpeg"):
                yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    if path.name in SMALL:
        (k,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        nb.cells.insert(k + 1, nbformat.v4.new_code_cell(SMALL[path.name]))
    # the kernel imports this checkout's tinydm and draws off-screen, whatever the environment
    monkeypatch.setenv("PYTHONPATH", checkout_env()["PYTHONPATH"])
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(LECTURES)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if path.name == "04-dm-at-work.ipynb":
        assert "data: synthetic" in out  # says which data it used
