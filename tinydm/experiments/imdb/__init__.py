"""Table 5 of the paper: sentiment classification of IMDB reviews under label noise and class
imbalance, with a 100-8-2 MLP on PV-DBOW paragraph vectors.

::

    from tinydm.experiments import imdb
    features = imdb.load_features(data_dir="~/data")        # PV-DBOW, cached after the first call
    table = imdb.run_table(features, out_dir="runs/imdb")   # 5 rows x 9 methods x 3 seeds
    print(imdb.format_table(table.summary))

``examples/imdb_mlp.py`` is the command line over this module; the tests call it on synthetic
features (any ``(x_train, y_train, x_test, y_test)`` arrays will do, see :class:`Features`).

The table
---------
Rows (:data:`ROWS`): symmetric label noise r = 0, 0.2, 0.4 on the 25,000 training reviews
(binary: a label is flipped with probability r), and two imbalanced training sets that keep the
12,500 positives and 1,250 (P:N 10:1) or 250 (50:1) random negatives, with clean labels.
Columns (:data:`METHODS`): CCE, GCE (q = 0.7), MAE, MSE, their derivative-normalised versions and
DM, with the paper's DM parameters per row (Section 4.4): lam 0 and beta 0.9 / -0.52 / -0.33 for
r = 0 / 0.2 / 0.4, lam 0.3 and beta 6.5 for both imbalanced rows. The test set is always the
25,000 test reviews (balanced), so a network that predicts one class for every review scores
exactly 50% (the paper's "0.5" cells, :data:`PAPER`).
The main job's table (:func:`run_table`'s default, :data:`COLUMNS`) has one column beyond the
paper: DM with per-class renormalisation (``dm+perclass``, docs/emphasis-collapse.md), with no
paper number beside it. A table may also ask for the loss zoo (:data:`ZOO`: focal, poly1, taylor,
rce, phuber, tinydm/losses/zoo.py) as columns, each with its own default parameters and no paper
number (:data:`ALL_COLUMNS`).

Protocol (docs/released-code.md, and the paper's Appendix D, whose solver agrees with it)
--------------------------------------------------------------------------------------
* Network ``MLP([100, 8, 2])``: Linear, ReLU, Linear; Caffe's xavier init
  ``U(-sqrt(3/fan_in), sqrt(3/fan_in))``, zero biases. Features are fed raw (no scaling).
* Caffe's SGD (``v = 0.9 v + lr (g + 0.002 w); w -= v``), weight decay on every parameter,
  lr policy "inv": ``lr = 0.01 (1 + 1e-5 it)^-0.75`` (Appendix D: gamma 0.00001, power 0.75),
  10,000 iterations of batches of 250 (the batch size is not stated; 250 is the cited Caffe
  setup's and the best inference).
* Batches: every epoch is a permutation of the training set drawn from (seed, epoch), cut into
  ``n // batch_size`` batches (all of the paper's training sets are multiples of 250;
  :class:`tinydm.data.sampling.HostEpochBatches`), so ``batches(it)`` is a pure function of
  ``it``. The permutation is drawn on the host and sent to the device, and the network is
  initialised on the host and then moved, so the CPU and the GPU train on the same batches from
  the same weights: their runs differ only by rounding.
* Seeds: one integer per run (123, the paper's, plus 124 and 125 for the spread) seeds three
  independent streams (:func:`tinydm.experiments.runner.seed_stream`): the noise / imbalance
  draw (``SeedSequence(seed, spawn_key=(0,))``), the batch order (``spawn_key=(1, epoch)``) and
  the initialisation (``tinydm.manual_seed``).
  Both the corrupted labels and the training change from one seed to the next.
* Evaluation every ``eval_every`` (250) iterations on the 25,000 test reviews: accuracy, the
  accuracy of each class, and how many reviews are predicted as each class
  (``test_class_histogram``: a 50% run predicts one class for all of them; the collapse watch
  of :func:`tinydm.train.fit` reads it); and on the training set against the labels it was
  given, split into the corrupted and the intact examples.
* The number of the table is the **final** test accuracy (after 10,000 iterations); the best
  over the evaluations is recorded beside it. The paper does not say which one Table 5 shows
  (for CIFAR-100, Table 1 shows the best, docs/released-code.md).

Remedies for emphasis collapse (docs/emphasis-collapse.md; all off by default, so the paper's
settings stay as published): DM's options ``warmup`` (beta rises from 0 over the first k
iterations, :class:`tinydm.train.schedules.BetaWarmup`), ``ess_floor`` (tempered weights) and
``per_class`` (renormalised within each given class) go into DM's ``loss_params`` (other methods
ignore them), and ``sampler="balanced"``
draws every batch half from each given (noisy) label, 125 + 125 of 250
(:class:`tinydm.data.sampling.BalancedBatches`, each batch drawn independently from (seed,
iteration) instead of epochs; in the imbalanced rows this oversamples the minority, each
negative review being seen about 10x or 50x as often as a positive one). A run with remedies
has a tag (:attr:`RunSettings.variant`, e.g. ``+warmup1000+balanced``) in its file name, so it
sits beside the plain run of the same seed; :func:`rescue_table` compares the two.

Modules
-------
:mod:`~.protocol` (the paper's rows, methods, seeds and numbers), :mod:`~.settings`
(:class:`RunSettings`, checked when made), :mod:`~.features` (the arrays and each row's training
set), :mod:`~.training` (one run and :func:`run_one`, the entry point a sweep calls with a
settings dict), :mod:`~.table` (the runs of a table on a process pool, their summary),
:mod:`~.collapse` (the rescue table of the remedies), :mod:`~.report` (the files).

Result files
------------
One record per run, ``<out_dir>/<row>/<method><variant>_seed<seed>.json`` (:func:`run_one`), in
the format of tinydm/experiments/runner.py, written atomically once the run is complete: its
settings (with a fingerprint of the features, so new features retrain), the final and best test
accuracy, the evaluation curve, the logged training steps of :func:`tinydm.train.fit` (loss, ESS
fraction, class shares of the emphasis), the collapse watch's warnings, the size and realised
noise of the training set, and the timing. A run whose file exists with the same settings is not
trained again, so an interrupted table resumes where it stopped (a run cut short is simply run
again: it takes seconds). The folder is claimed first (runner.claim_output, docs/reliability.md):
a second live process on it is refused, and so is a table of other shared settings
(:func:`folder_settings`: the iterations, batch size, ...), unless ``overwrite``.
:func:`write_report` writes the table (``table.csv``, ``table.md``),
the curves of every run (``curves.csv``) and the figures; :func:`write_rescue_report` the rescue
table of the remedies and the figures of docs/emphasis-collapse.md.
"""

from .collapse import collapse_course, load_records, markdown_rescue_table, rescue_table
from .features import NOISE_STREAM, Features, load_features, training_set
from .protocol import (ALL_COLUMNS, COLUMNS, EXTRA_COLUMNS, FEATURE_DIM, FLAG_POINTS, LOSSES,
                       METHODS, NUM_CLASSES, PAPER, ROW_KEYS, ROWS, SEEDS, ZOO, Row, column,
                       paper_value, row)
from .report import (CURVE_COLUMNS, RESCUE_COLUMNS, TABLE_COLUMNS, per_step_ms, write_curves_csv,
                     write_report, write_rescue_report, write_table_csv)
from .settings import (NAMED_IN_PATH, REMEDIES, SAMPLERS, RunSettings, folder_settings,
                       make_settings, table_settings)
from .table import (METHOD_TITLES, Table, collapse_notes, format_table, layout, markdown_table,
                    mean_std, run_table, settings_of, summarise)
from .training import (BATCH_STREAM, EXPERIMENT, Evaluator, batch_indices, build_model,
                       load_record, run_one, run_path, train_run)
