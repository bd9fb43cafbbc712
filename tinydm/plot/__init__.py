"""Figures, one module per theme; each function returns a :class:`matplotlib.figure.Figure`
(matplotlib's object-oriented API: no pyplot, no global state) and :func:`save` writes it.

- :mod:`tinydm.plot.style`: colours, rc style, labels, :func:`save`;
- :mod:`tinydm.plot.edf`: the lecture figures of emphasis density functions (Eq. 6-12) and of the
  gradient a batch's examples receive (:func:`standard_set`, ``examples/plot_edf.py``);
- :mod:`tinydm.plot.explorer`: the EDF explorer, one self-contained HTML page with sliders
  (``examples/edf_explorer.py``);
- :mod:`tinydm.plot.imdb`: the IMDB experiment's curves and its table against the paper's;
- :mod:`tinydm.plot.cifar`: CIFAR runs (Figures 2 and 5 of the paper);
- :mod:`tinydm.plot.collapse`: emphasis collapse (docs/emphasis-collapse.md);
- :mod:`tinydm.plot.sweep`: a sweep's accuracy over (lam, beta) (Figures 6-9, docs/sweeps.md).

The result figures read run records through tinydm/experiments/runner.py's accessors, and
:mod:`tinydm.plot.records` for what several of them read off (a key's series, the share
predicted positive, the mean over seeds).
"""

from . import cifar, collapse, edf, explorer, imdb, style, sweep
from .cifar import (cifar_accuracy, cifar_ess, cifar_noise_rates, cifar_p_i, cifar_seed_curves,
                    cifar_test_predictions)
from .collapse import (collapse_cifar, collapse_feedback, collapse_remedies, collapse_rescue,
                       collapse_seeds)
from .edf import (STANDARD_FIGURES, batch_weights, dm_vs_beta, dm_vs_lam, edf_variants, fig1b,
                  standard_set, zoo_edfs)
from .imdb import imdb_curves, imdb_vs_paper, method_style
from .style import COLOURS, FORMATS, SLIDE_SIZE, STYLES, label, save
from .sweep import sweep_heatmap
