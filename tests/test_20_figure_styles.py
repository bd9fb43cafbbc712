"""Figure styles (tinydm/plot/style.py): every figure function draws for a paper or for 16:9
slides with large fonts in a colour-blind-safe palette, and save writes PNG, SVG and PDF; and
the result figures on records that are partial or odd (a seed without evaluations, a column
without the paper's number)."""

import inspect
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, checkout_env
from tinydm import plot
from tinydm.plot import cifar, collapse, edf, imdb, style, sweep

# The public functions of the figure modules that make no figure; every other one must.
HELPERS = {"tinydm.plot.edf.standard_set", "tinydm.plot.edf.unique_mode",
           "tinydm.plot.edf.zoo_mode", "tinydm.plot.imdb.method_style", "tinydm.plot.cifar.labelled_runs",
           "tinydm.plot.cifar.runs_title"}


def public_functions():
    """Every public function defined in a figure module (functools.wraps keeps a decorated
    function's module and name)."""
    for module in (edf, imdb, cifar, collapse, sweep):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                yield f"{module.__name__}.{name}", fn


def png_size(path):
    width, height = struct.unpack(">II", Path(path).read_bytes()[16:24])  # the IHDR chunk
    return width, height


def test_every_figure_function_is_styled():
    functions = dict(public_functions())
    assert HELPERS <= set(functions)  # a renamed helper must be listed again, not pass unseen
    figures = {name: fn for name, fn in functions.items() if name not in HELPERS}
    assert len(figures) >= 19  # EDF 6, IMDB 2, CIFAR 5, collapse 5, sweep 1
    # functools.wraps copies the signature, so a style parameter alone does not show @styled:
    # a styled function is the wrapper (its code) around the function it wraps
    wrapper = style.styled(lambda style="paper": None).__code__
    for name, fn in figures.items():
        assert fn.__code__ is wrapper and callable(getattr(fn, "__wrapped__", None)), name
        parameter = inspect.signature(fn).parameters.get("style")
        assert parameter is not None and parameter.default == "paper", name


def test_slides_are_16_9_with_large_fonts_and_written_as_png_svg_pdf(tmp_path):
    fig = plot.fig1b(style="slides")
    width, height = fig.get_size_inches()
    assert width / height == pytest.approx(16 / 9, rel=1e-3)
    ax = fig.axes[0]
    assert ax.title.get_fontsize() == style.STYLES["slides"]["axes.titlesize"] == 22
    assert ax.xaxis.label.get_fontsize() == 21
    assert ax.get_xticklabels()[0].get_fontsize() == 18
    assert ax.lines[0].get_linewidth() == 3.4
    paths = plot.save(fig, tmp_path, "fig1b", dpi=60)
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert png_size(paths[0]) == (round(40 / 3 * 60), 450)  # not cropped: exactly 16:9
    assert b"<svg" in paths[1].read_bytes()[:500]
    assert paths[2].read_bytes().startswith(b"%PDF")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_the_style_reaches_every_panel_of_other_modules():
    fig = plot.collapse_feedback(style="slides")
    assert tuple(fig.get_size_inches()) == pytest.approx(style.SLIDE_SIZE)
    assert {ax.yaxis.label.get_fontsize() for ax in fig.axes} == {21}
    # the legend's "small" is relative to the style's font size (20 pt on slides)
    assert fig.axes[0].get_legend().get_texts()[0].get_fontsize() == pytest.approx(
        style.STYLES["slides"]["font.size"] * 0.833, rel=0.01)
    paper = plot.collapse_feedback()
    assert {ax.yaxis.label.get_fontsize() for ax in paper.axes} == {14}


def test_the_palette_is_okabe_ito_in_both_styles():
    okabe_ito = {c.lower() for c in style.OKABE_ITO}
    assert {c.lower() for c in style.COLOURS.values()} - {"#882255", "#aaaaaa"} <= okabe_ito
    for name in style.STYLES:
        cycle = style.STYLES[name]["axes.prop_cycle"].by_key()["color"]
        assert {c.lower() for c in cycle} == okabe_ito
    assert style.RUN_COLOURS == tuple(c for c in style.OKABE_ITO if c != "#F0E442")
    assert style.CLASS_COLOURS[:8] == style.OKABE_ITO and len(set(style.CLASS_COLOURS)) == 10


def test_paper_figures_are_cropped_and_bad_arguments_are_named(tmp_path):
    (path,) = plot.save(plot.dm_vs_lam(), tmp_path, "lam", formats="png", dpi=50)  # one format
    assert path.name == "lam.png"
    assert png_size(path) != (round(8.6 * 50), round(4.6 * 50))  # bbox "tight"
    (path,) = plot.standard_set(tmp_path, formats="png", dpi=30, names="edf_dm_vs_beta")
    assert path.name == "edf_dm_vs_beta.png"
    with pytest.raises(ValueError, match="unknown figure style 'poster'; choose one of paper, slides"):
        plot.fig1b(style="poster")
    with pytest.raises(ValueError, match="unknown format.* jpg"):
        plot.save(plot.dm_vs_lam(), tmp_path, "lam", formats=("jpg",))


def test_plot_edf_writes_slides(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "examples/plot_edf.py"), "--style", "slides",
                          "--figures", "edf_dm_vs_beta", "--formats", "png", "svg",
                          "--dpi", "40", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=checkout_env())
    assert run.returncode == 0, run.stderr
    assert png_size(tmp_path / "edf_dm_vs_beta.png") == (round(40 / 3 * 40), 300)
    assert (tmp_path / "edf_dm_vs_beta.svg").exists()


def cifar_run(accuracies):
    """A CIFAR run's record with one evaluation every 100 iterations (none: still starting)."""
    evals = [{"iteration": 100 * (k + 1), "test_accuracy": a, "noisy_memorised": 0.1,
              "mean_p_clean": 0.6, "mean_p_noisy": 0.2} for k, a in enumerate(accuracies)]
    return {"config": {"loss": "dm", "dataset": "cifar10", "depth": 20, "noise": "symmetric",
                       "noise_rate": 0.4, "batch_size": 128},
            "history": {"evals": evals, "steps": []}}


def test_the_seed_mean_leaves_out_seeds_without_evaluations_and_no_runs_are_named():
    fig = plot.cifar_seed_curves({"DM": {1: cifar_run([0.5, 0.7]), 2: cifar_run([0.7, 0.9]),
                                         3: cifar_run([])}})
    (mean,) = [line for line in fig.axes[0].lines if line.get_linewidth() == 2.6]
    assert mean.get_label() == "DM (2 seeds)"
    assert list(mean.get_xdata()) == [100, 200]
    assert list(mean.get_ydata()) == pytest.approx([60.0, 80.0])
    with pytest.raises(ValueError, match=r"runs: nothing to draw, got \{\}"):
        plot.cifar_ess({})


def test_the_paper_marker_is_in_the_legend_when_the_first_column_has_no_paper_number():
    cells = [{"row": "r0.4", "column": column, "final_mean": mean, "final_std": 1.0,
              "final": [mean - 1, mean + 1], "paper": paper}
             for column, mean, paper in (("dm+perclass", 80.0, None), ("cce", 70.0, 72.0),
                                         ("dm", 82.0, 84.0))]
    ax = plot.imdb_vs_paper(cells, [("r0.4", "r = 0.4")], ["dm+perclass", "cce", "dm"]).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["paper"]

