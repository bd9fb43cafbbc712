"""CIFAR-10/100 under label noise with the CIFAR ResNets: the paper's Tables 1 and 9 and the
learning dynamics of its Figures 2 and 5.

::

    from tinydm.experiments import cifar
    config = cifar.Config(dataset="cifar10", depth=20, noise="symmetric", noise_rate=0.4,
                          loss="dm", loss_params={"lam": 1.0, "beta": 16.0}, data_dir="~/data")
    results = cifar.run(config)                 # writes runs/cifar/<name>/results.json, figures
    cifar.run(config, resume=True)              # continues a killed run from its last checkpoint

``examples/cifar_resnet.py`` is the command line over this module; the tests run it for a few
iterations on synthetic images (:func:`synthetic_cifar`).

Protocol
--------
Defaults (:class:`Config`) are the CIFAR-10 setup: ResNet-20 (option A shortcuts), batches of
128, 30,000 iterations of SGD with momentum 0.9 (Caffe's form, as the released code), weight
decay 5e-4 (the released solver files; the paper's text says 1e-4), lr 0.1 divided by 10 at
50% and 73.3% of the iterations (the paper's 15k and 22k of 30k); 40% symmetric label noise;
augmentation pad 4 + random crop + flip and the per-channel mean subtracted
(tinydm.data.transforms); shuffled epochs. The paper's CIFAR-100 protocol of Table 1 is
``dataset="cifar100", depth=44, batch_size=256, sampler="balanced", augment="resize"``
(32 classes x 8 images per batch, classes by the noisy label; docs/released-code.md).

Data. Optionally a class-balanced subset (``subset_per_class`` images of each class, by clean
label: random ones, or with ``subset_order="first"`` the first ones in the files' order), then a
clean validation split (``val_fraction`` of the training data, stratified by class, or
``val_per_class`` images of each class from outside the subset: with ``"first"`` the next ones in
the files' order; never corrupted: the paper searches hyperparameters on 80/20 splits), then label noise
on what is left: ``"symmetric"`` (any class, Tables 1, 2, 9), ``"asymmetric"`` (CIFAR-100
superclass swaps, Table 1), ``"pair"`` (CIFAR-10 class-dependent flips), or real human noise:
``"cifar10n:worst"`` (also ``aggre``, ``random1``-``3``) gives every training image its CIFAR-10N
label (tinydm.data.cifar_n; ``noise_rate`` plays no part). Real noise has no clean labels to
validate on, so under it the validation split keeps its human labels too. The noisy labels are
the ones the network sees, the class-balanced sampler included.

Seeds. ``seed`` seeds the initialisation (``tinydm.manual_seed``, drawn on the host so every
device starts from the same weights), the batch order and the augmentation
(tinydm.data.sampling: generators made from ``(seed, stream, epoch or iteration)``); the data
draws (subset, split, noise, evaluation subset) come from ``data_seed`` (default ``seed``),
each from its own stream ``SeedSequence(data_seed, spawn_key=(k,))``
(:func:`tinydm.experiments.runner.seed_stream`).

Evaluation (every ``eval_every`` iterations and at the end), each a record in ``evals``:

* ``test_accuracy`` on the whole test set and ``test_class_histogram`` (how many test images
  are predicted as each class); ``val_accuracy`` on the validation split, if any;
* on the training set, against the labels it was given (Table 9's "Corrupted" column,
  ``train_accuracy_noisy_labels``) and against the clean ones ("Intact",
  ``train_accuracy_clean_labels``); ``noisy_memorised``: the share of the corrupted examples
  predicted as their wrong label, ``noisy_corrected``: as their true label; at the last
  evaluation also ``noisy_memorised_pairs``, ``[clean class, given label, corrupted examples,
  memorised]`` per swap of the noise (which swaps are learnt by heart; the noise's own confusion
  over the whole training set is ``results["data"]["noise_pairs"]``);
* ``mean_p_clean`` / ``mean_p_noisy``: the mean ``p_i`` (probability of the given label) of
  the intact and of the corrupted training examples (Figure 2a).

Training-set metrics use the examples of ``eval_train_subset`` (a fixed random subset, to keep
evaluations cheap on a CPU) or all of them; ``results["data"]["eval_train_note"]`` says which.
Per logged step :func:`tinydm.train.fit` records the loss, batch accuracy and the effective
sample size of the batch's weights as a fraction, ``(sum w)^2 / (N sum w^2)``; the results add
the ESS itself (fraction x N).

Modules: :mod:`~.settings` (:class:`Config`, checked when made), :mod:`~.data` (the host
arrays of a run), :mod:`~.training` (one run: :func:`run`, which a sweep calls with a settings
dict), :mod:`~.report` (tables and figures of several runs).

Files in ``out_dir`` (default ``runs/cifar/<name>``): ``results.json`` (the run's record in the
format of tinydm/experiments/runner.py, rewritten after every evaluation, ``"status":
"running"`` until the end), ``checkpoint.npz`` (after every evaluation:
model, optimiser, schedule, history and config) and the figures ``accuracy.png``, ``p_i.png``,
``ess.png``, ``test_predictions.png``. ``run(config, resume=True)`` continues from the
checkpoint and ends with exactly the weights and history of an uninterrupted run, because the
batches are pure functions of the iteration and everything else is in the checkpoint.
"""


from . import noise_table, seeds
from .data import DATA_STREAMS, RunData, load_dataset, prepare_data, synthetic_cifar
from .report import FIGURES, load_results, markdown_table, write_figures, write_report
from .settings import (CHECKPOINT, DATASETS, DEFAULT_MILESTONES, EXPERIMENT, HUMAN_NOISES, NOISES,
                       RESULTS, RESUMABLE, SAMPLERS, SGD_STYLES, SUBSET_ORDERS, Config)
from .training import (Evaluator, build_model, build_optimizer, format_summary, make_sampler,
                       results_dict, run, summarise)
