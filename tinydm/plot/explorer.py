"""The EDF explorer: one self-contained HTML page with sliders for DM's ``lam`` and ``beta`` and
GCE's ``q`` (``examples/edf_explorer.py`` writes it), and a choice of one loss of the zoo
(tinydm/losses/zoo.py: focal, Poly-1, Taylor CE, reverse CE, partially Huberised CE) with a slider
for its parameter.

The page shows the normalised emphasis density functions (Eq. 8) of CCE, MAE, MSE, GCE (Eq. 6),
DM (Eq. 12) and the chosen zoo loss with their emphasis modes ``psi`` (Definition 1; focal's
found numerically), and the share of a sample
batch's gradient that each of its examples receives under DM and under CCE-DN. No formula is
written twice: every number on the page is computed here, once, by :mod:`tinydm.edf` and the
loss nodes of :mod:`tinydm.losses`, on a grid of parameter values, and embedded in the page as
float32 arrays. The page's script only looks the curves up and draws them; it needs no server,
no network and no library, so it works offline (a lecture hall, a laptop on a train).

Size: ``len(lams) * len(betas) * (grid + batch size)`` float32 values (the defaults: 31 x 41 x
(101 + 128), about 1.2 MB, 1.6 MB as text), plus ``grid`` values per zoo parameter value.
The page opens with a zoo loss chosen when its address ends in ``#zoo=NAME``
(``edf.html#zoo=focal``).
"""

import base64
import html
import json
import math
import numbers
from pathlib import Path

import numpy as np

from .. import edf, losses
from ..train.toy import toy_batch
from ..files import atomic_open
from ..tensor import Tensor
from .edf import ZOO_NAMES, ZOO_STYLE, unique_mode, zoo_mode
from .style import COLOURS

LAMS = tuple(np.round(np.arange(0.0, 3.0001, 0.1), 10))      # psi = lam / (lam + 1) in [0, 0.75]
BETAS = tuple(np.round(np.arange(-10.0, 30.0001, 1.0), 10))
QS = tuple(np.round(np.arange(0.05, 1.0001, 0.05), 10))       # GCE: q in (0, 1] (Eq. 4)
# The zoo's parameter grids (each within its loss's range, its default on the grid)
ZOO_GRIDS = {
    "focal": ("gamma", tuple(np.round(np.arange(0.0, 5.0001, 0.25), 10))),
    "poly1": ("epsilon", tuple(np.round(np.arange(-1.0, 10.0001, 0.5), 10))),
    "taylor": ("t", tuple(float(t) for t in range(1, 21))),
    "rce": ("A", tuple(np.round(np.arange(-10.0, -0.4999, 0.5), 10))),
    "phuber": ("tau", tuple(float(t) for t in range(1, 21))),
}
ZOO_SYMBOLS = {"gamma": "γ", "epsilon": "ε", "t": "t", "A": "A", "tau": "τ"}
TOY_BATCH = "logits of a linear classifier trained with CCE on noisy labels"  # toy_batch's


def _f32(array):
    """An array as base64 of little-endian float32: the page decodes it into a Float32Array."""
    return base64.b64encode(np.asarray(array, dtype="<f4").tobytes()).decode("ascii")


def _index(values, default, name):
    """The position of ``default`` in a parameter grid (the sliders' start)."""
    values = np.asarray(values, dtype=np.float64)
    k = int(np.abs(values - default).argmin())
    if not math.isclose(values[k], default, abs_tol=1e-9):
        raise ValueError(f"edf explorer: the start value {name}={default:g} is not on the {name} "
                         f"grid ({values[0]:g} ... {values[-1]:g}, {values.size} values)")
    return k


def _zoo_tables(zoo, p):
    """Each zoo loss's densities and modes over its parameter grid, and the slider's start (the
    loss's default parameter)."""
    out = {}
    for name, (param, values) in zoo.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or np.any(np.diff(values) <= 0):
            raise ValueError(f"edf explorer: the {name} grid of {param} must be a non-empty "
                             f"increasing sequence, got {values.tolist()}")
        out[name] = {
            "label": ZOO_NAMES[name], "param": param, "symbol": ZOO_SYMBOLS[param],
            "values": values.tolist(), "colour": ZOO_STYLE[name][0],
            "start": _index(values, edf.EDFS[name].params[param], f"{name}'s {param}"),
            "density": _f32([edf.density(name, p, **{param: v}) for v in values]),
            "psi": [zoo_mode(name, **{param: v}) for v in values],
        }
    return out


def tables(lams=LAMS, betas=BETAS, qs=QS, grid=101, batch=None, batch_about=None,
           start=(0.5, 8.0, 0.7), zoo=ZOO_GRIDS):
    """Everything the page draws, computed by tinydm, as a JSON-ready dict.

    ``lams``, ``betas``, ``qs``: the slider positions (increasing); ``grid``: points on
    ``p in [0, 1]``; ``batch``: ``(logits, labels, noisy)`` of a sample batch (default:
    :func:`tinydm.train.toy_batch` with 128 examples: a linear classifier trained with
    CCE on data with 40% wrong labels); ``batch_about``: where the batch comes from, for the
    page's note beside its size and its share of wrong labels (default: :data:`TOY_BATCH` for
    the default batch, nothing for another); ``start``: the sliders' initial ``(lam, beta, q)``.

    Curves are the densities of Eq. 8 (:func:`tinydm.edf.density`); ``psi`` the closed-form
    emphasis modes (None where there is no unique one: DM with ``beta <= 0`` and ``lam > 0``,
    or ``beta = 0``); the batch's shares ``w_i / sum_j w_j`` are read from
    ``losses.details`` of the DM and CCE-DN loss nodes on the batch's logits.
    """
    lams, betas, qs = (np.asarray(v, dtype=np.float64) for v in (lams, betas, qs))
    for name, values in (("lams", lams), ("betas", betas), ("qs", qs)):
        if values.ndim != 1 or values.size == 0 or np.any(np.diff(values) <= 0):
            raise ValueError(f"edf explorer: {name} must be a non-empty increasing sequence, "
                             f"got {values.tolist()}")
    if not isinstance(grid, numbers.Integral) or isinstance(grid, bool) or grid < 3:
        raise ValueError(f"edf explorer: grid must be an integer >= 3 points, got {grid!r}")
    p = np.linspace(0.0, 1.0, int(grid))
    if batch is None:
        batch, batch_about = toy_batch(n=128), batch_about or TOY_BATCH
    logits, labels, noisy = batch
    noisy = np.asarray(noisy, bool)
    z, y = Tensor(np.asarray(logits, np.float64), device="cpu"), Tensor(np.asarray(labels), device="cpu")

    fixed = {name: {"density": _f32(edf.density(name, p)), "psi": unique_mode(name)}
             for name in ("cce", "mae", "mse")}
    gce = {"density": _f32([edf.density("gce", p, q=q) for q in qs]),
           "psi": [unique_mode("gce", q=q) for q in qs]}
    density, psi, shares = [], [], []
    for lam in lams:
        for beta in betas:
            density.append(edf.density("dm", p, lam=lam, beta=beta))
            psi.append(unique_mode("dm", lam=lam, beta=beta))
            shares.append(losses.details(losses.dm(z, y, lam, beta))["normalised_weights"].numpy())
    cce_dn = losses.details(losses.cce_dn(z, y))
    return {
        "p": _f32(p), "lams": lams.tolist(), "betas": betas.tolist(), "qs": qs.tolist(),
        "start": [_index(lams, start[0], "lam"), _index(betas, start[1], "beta"),
                  _index(qs, start[2], "q")],
        "fixed": fixed, "gce": gce, "dm": {"density": _f32(density), "psi": psi},
        "zoo": _zoo_tables(dict(zoo), p),
        "batch": {"p_i": _f32(cce_dn["p_i"].numpy()), "noisy": noisy.tolist(),
                  "dm": _f32(shares), "cce_dn": _f32(cce_dn["normalised_weights"].numpy()),
                  "about": f"{noisy.size} examples, {noisy.sum()} of them ({noisy.mean():.0%}) "
                           "with a wrong label" + (f"; {batch_about}" if batch_about else "")},
        "colours": {k: COLOURS[k] for k in ("cce", "mae", "mse", "gce", "dm", "noisy", "clean")},
    }


def render(data, title="Emphasis density functions: CCE, MAE, MSE, GCE, DM and the loss zoo"):
    """The page: :data:`PAGE` with ``data`` (from :func:`tables`) embedded as JSON."""
    # "</" cannot end the script element early once written as "<\/" (valid JSON, same string)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return PAGE.replace("@TITLE@", html.escape(title)).replace("@DATA@", payload)


def write_html(path, **kwargs):
    """Write the explorer page to ``path`` atomically (tinydm/files.py) and check it reads back
    as written; ``kwargs`` go to :func:`tables`. Returns the number of bytes written."""
    text = render(tables(**kwargs)).encode("utf-8")
    with atomic_open(path, "wb") as f:
        f.write(text)
    if Path(path).read_bytes() != text:
        raise OSError(f"edf explorer: {path} does not read back as written")
    return len(text)


PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>
  body { font-family: system-ui, "DejaVu Sans", sans-serif; margin: 0.8em 1.2em; color: #222; }
  h1 { font-size: 1.5em; margin: 0 0 0.3em 0; }
  p.note { color: #555; margin: 0.2em 0 0.4em 0; max-width: 78em; font-size: 0.92em; }
  .controls { display: flex; gap: 2em; flex-wrap: wrap; align-items: center; margin: 0.4em 0; }
  .controls label { font-size: 1.15em; }
  .controls input[type=range] { width: 13em; vertical-align: middle; }
  .value { display: inline-block; min-width: 3.2em; font-weight: bold; }
  #psi { font-size: 1.15em; }
  .panels { display: flex; gap: 1em; flex-wrap: wrap; }
  svg text { font-size: 14px; fill: #222; }
  svg .tick { stroke: #999; stroke-width: 0.6; }
  svg .grid { stroke: #ddd; stroke-width: 0.6; }
  svg path.curve { fill: none; stroke-width: 2.6; }
  #error { color: #b00; font-weight: bold; }
</style>
</head>
<body>
<h1>@TITLE@</h1>
<p class="note">Each curve is a weighting function <i>w</i>(<i>p<sub>i</sub></i>), the L1 norm of
an example's gradient as a function of the probability <i>p<sub>i</sub></i> the model gives its
label (Eq. 6, 12; a zoo loss <i>L</i>(<i>p<sub>i</sub></i>) has
<i>w</i> = −<i>L</i>′(<i>p</i>) <i>p</i> 2(1 − <i>p</i>), dashed), scaled to unit area over
[0, 1] (Eq. 8); dots mark the emphasis modes ψ.
Right: the share of one batch's gradient each of its examples receives (<span
id="batch-about"></span>). Every number was computed by tinydm and stored in this page; it needs
no network.</p>
<div id="error"></div>
<div class="controls">
  <label>λ <input id="lam" type="range" min="0" step="1"> <span class="value" id="lam-value"></span></label>
  <label>β <input id="beta" type="range" min="0" step="1"> <span class="value" id="beta-value"></span></label>
  <label>GCE's q <input id="q" type="range" min="0" step="1"> <span class="value" id="q-value"></span></label>
  <label>zoo loss <select id="zoo"><option value="">none</option></select></label>
  <label id="zoo-param-label"><span id="zoo-symbol"></span>
    <input id="zoo-param" type="range" min="0" step="1"> <span class="value" id="zoo-value"></span></label>
  <span id="psi"></span>
</div>
<div class="panels">
  <svg id="edf" width="640" height="440" role="img" aria-label="emphasis density functions"></svg>
  <svg id="batch" width="580" height="440" role="img" aria-label="weights of a sample batch"></svg>
</div>
<script>
"use strict";
window.addEventListener("error", e => {
  document.getElementById("error").textContent = "Error: " + e.message;
});
const DATA = @DATA@;
const SVG = "http://www.w3.org/2000/svg";

function floats(b64) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}
const P = floats(DATA.p), G = P.length;
const FIXED = {};
for (const k of ["cce", "mae", "mse"]) FIXED[k] = floats(DATA.fixed[k].density);
const GCE = floats(DATA.gce.density), DM = floats(DATA.dm.density);
const ZOO = {};
for (const [name, z] of Object.entries(DATA.zoo)) ZOO[name] = floats(z.density);
const B = DATA.batch, BP = floats(B.p_i), BN = BP.length;
const BDM = floats(B.dm), BCCE = floats(B.cce_dn);
document.getElementById("batch-about").textContent = B.about;
const ORDER = Array.from(BP.keys()).sort((a, b) => BP[a] - BP[b]);

function el(parent, tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}
function niceMax(v) {
  const e = Math.pow(10, Math.floor(Math.log10(v))), m = v / e;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * e;
}
// An axes box: x in [0, 1] (p_i), y in [0, ymax]; returns the mapping to pixels.
function axes(svg, ymax, xlabel, ylabel) {
  svg.replaceChildren();
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  const L = 62, R = 16, T = 14, Bm = 52;
  const X = x => L + x * (W - L - R), Y = y => H - Bm - (y / ymax) * (H - T - Bm);
  for (let i = 0; i <= 5; i++) {
    const x = i / 5, y = ymax * i / 5;
    el(svg, "line", {x1: X(x), x2: X(x), y1: Y(0), y2: Y(ymax), class: "grid"});
    el(svg, "line", {x1: X(0), x2: X(1), y1: Y(y), y2: Y(y), class: "grid"});
    el(svg, "text", {x: X(x), y: Y(0) + 18, "text-anchor": "middle"}, x.toFixed(1));
    el(svg, "text", {x: X(0) - 6, y: Y(y) + 5, "text-anchor": "end"}, +y.toPrecision(3));
  }
  el(svg, "line", {x1: X(0), x2: X(1), y1: Y(0), y2: Y(0), class: "tick"});
  el(svg, "line", {x1: X(0), x2: X(0), y1: Y(0), y2: Y(ymax), class: "tick"});
  el(svg, "text", {x: (X(0) + X(1)) / 2, y: H - 12, "text-anchor": "middle"}, xlabel);
  el(svg, "text", {x: 16, y: (Y(0) + Y(ymax)) / 2, "text-anchor": "middle",
                   transform: `rotate(-90 16 ${(Y(0) + Y(ymax)) / 2})`}, ylabel);
  return {X, Y};
}
function line(svg, ax, xs, ys, colour, id, extra) {
  let d = "";
  for (let i = 0; i < xs.length; i++)
    d += (i ? "L" : "M") + ax.X(xs[i]).toFixed(2) + " " + ax.Y(ys[i]).toFixed(2);
  return el(svg, "path", Object.assign({d, stroke: colour, class: "curve", id}, extra || {}));
}
function at(curve, psi) {  // the curve's value at psi, from the stored grid
  const k = Math.round(psi * (G - 1));
  return curve[k];
}

const sliders = {};
for (const [name, values, start] of [["lam", DATA.lams, DATA.start[0]],
                                     ["beta", DATA.betas, DATA.start[1]],
                                     ["q", DATA.qs, DATA.start[2]]]) {
  const input = document.getElementById(name);
  input.max = values.length - 1;
  input.value = start;
  input.addEventListener("input", draw);
  sliders[name] = {input, values};
}
const zooSelect = document.getElementById("zoo"), zooParam = document.getElementById("zoo-param");
const zooPositions = {};
for (const [name, z] of Object.entries(DATA.zoo)) {
  const option = document.createElement("option");   // an HTML element, not an SVG one (el)
  option.value = name;
  option.textContent = z.label;
  zooSelect.appendChild(option);
  zooPositions[name] = z.start;
}
const wanted = (location.hash.match(/zoo=([a-z0-9]+)/) || [])[1];
if (wanted && DATA.zoo[wanted]) zooSelect.value = wanted;
function showZooSlider() {
  const name = zooSelect.value, z = DATA.zoo[name];
  document.getElementById("zoo-param-label").style.visibility = z ? "visible" : "hidden";
  if (!z) return;
  document.getElementById("zoo-symbol").textContent = z.symbol;
  zooParam.max = z.values.length - 1;
  zooParam.value = zooPositions[name];
}
zooSelect.addEventListener("change", () => { showZooSlider(); draw(); });
zooParam.addEventListener("input", () => {
  if (zooSelect.value) zooPositions[zooSelect.value] = +zooParam.value;
  draw();
});
showZooSlider();
function position(name) { return +sliders[name].input.value; }
function value(name) { return sliders[name].values[position(name)]; }

function draw() {
  const i = position("lam"), j = position("beta"), k = position("q");
  const lam = value("lam"), beta = value("beta"), q = value("q");
  for (const name of ["lam", "beta", "q"])
    document.getElementById(name + "-value").textContent = +value(name).toFixed(2);
  const combo = i * DATA.betas.length + j;
  const curves = [
    ["cce", "CCE", FIXED.cce, DATA.fixed.cce.psi],
    ["mae", "MAE", FIXED.mae, DATA.fixed.mae.psi],
    ["mse", "MSE", FIXED.mse, DATA.fixed.mse.psi],
    ["gce", `GCE (q=${+q.toFixed(2)})`, GCE.subarray(k * G, (k + 1) * G), DATA.gce.psi[k]],
    ["dm", `DM (λ=${+lam.toFixed(2)}, β=${+beta.toFixed(2)})`,
     DM.subarray(combo * G, (combo + 1) * G), DATA.dm.psi[combo]],
  ];
  const zooName = zooSelect.value, zoo = DATA.zoo[zooName];
  if (zoo) {
    const m = zooPositions[zooName], v = zoo.values[m];
    document.getElementById("zoo-value").textContent = +v.toFixed(2);
    curves.push(["zoo", `${zoo.label} (${zoo.symbol}=${+v.toFixed(2)})`,
                 ZOO[zooName].subarray(m * G, (m + 1) * G), zoo.psi[m], zoo.colour]);
  }
  let top = 0;
  for (const c of curves) for (const v of c[2]) if (isFinite(v)) top = Math.max(top, v);
  const svg = document.getElementById("edf");
  const ax = axes(svg, niceMax(1.05 * top), "p\u1d62 (probability of the labelled class)",
                  "emphasis density h(p\u1d62)  (Eq. 8)");
  curves.forEach(([key, label, ys, psi, colour], n) => {
    colour = colour || DATA.colours[key];
    const dash = key === "zoo" ? {"stroke-dasharray": "7 4"} : {};
    line(svg, ax, P, ys, colour, "curve-" + key, dash);
    if (psi !== null)
      el(svg, "circle", {cx: ax.X(psi), cy: ax.Y(at(ys, psi)), r: 5.5, fill: colour,
                         id: "psi-" + key});
    const y = 30 + 21 * n;
    el(svg, "line", Object.assign({x1: 380, x2: 408, y1: y - 5, y2: y - 5, stroke: colour,
                                   "stroke-width": 3}, dash));
    el(svg, "text", Object.assign({x: 414, y}, key === "zoo" ? {id: "legend-zoo"} : {}),
       `${label}: ψ=${psi === null ? "none" : psi.toFixed(2)}`);
  });
  const psi = DATA.dm.psi[combo];
  document.getElementById("psi").textContent = "DM's emphasis mode ψ = " + (psi === null
    ? (beta === 0 ? "none (β = 0: every example weighs the same)"
                  : "none (β < 0: two maxima, p = 0 and p = 1)")
    : psi.toFixed(3) + (beta > 0 ? "  (λ/(λ+1))" : ""));
  document.getElementById("psi").dataset.psi = psi === null ? "none" : psi;

  const shares = BDM.subarray(combo * BN, (combo + 1) * BN);
  let ymax = 0, noisyDM = 0, noisyCCE = 0;
  for (let n = 0; n < BN; n++) {
    ymax = Math.max(ymax, BN * shares[n], BN * BCCE[n]);
    if (B.noisy[n]) { noisyDM += shares[n]; noisyCCE += BCCE[n]; }
  }
  const bsvg = document.getElementById("batch");
  const bax = axes(bsvg, niceMax(1.05 * ymax), "p\u1d62 of each example of the batch",
                   "N · w\u1d62 / Σ w\u2c7c  (1 = equal share)");
  line(bsvg, bax, ORDER.map(n => BP[n]), ORDER.map(n => BN * BCCE[n]), DATA.colours.cce,
       "batch-cce", {"stroke-width": 1.6});
  const dots = el(bsvg, "g", {id: "batch-dm"});
  for (let n = 0; n < BN; n++)
    el(dots, "circle", {cx: bax.X(BP[n]), cy: bax.Y(BN * shares[n]), r: 3.6,
                        fill: B.noisy[n] ? DATA.colours.noisy : DATA.colours.dm, "fill-opacity": 0.75});
  const legend = [[DATA.colours.dm, "DM, correct label"], [DATA.colours.noisy, "DM, wrong label"],
                  [DATA.colours.cce, "CCE-DN"]];
  legend.forEach(([colour, text], n) => {
    el(bsvg, "circle", {cx: 350, cy: 26 + 20 * n, r: 5, fill: colour});
    el(bsvg, "text", {x: 362, y: 31 + 20 * n}, text);
  });
  el(bsvg, "text", {x: 345, y: 100}, "share on the wrong labels:");
  el(bsvg, "text", {x: 345, y: 120, id: "noisy-share"},
     `DM ${(100 * noisyDM).toFixed(1)}%, CCE-DN ${(100 * noisyCCE).toFixed(1)}%`);
}
draw();
</script>
</body>
</html>
"""
