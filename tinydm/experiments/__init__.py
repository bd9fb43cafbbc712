"""The paper's experiments as library code: settings, one run, the table over seeds, result files.

The ``examples/`` scripts are thin command lines over these packages; tests call them directly on
small synthetic data.

- :mod:`tinydm.experiments.runner`: what every experiment shares: settings that validate
  themselves, seed streams, the model built on the host, one record format and its atomic
  writer, the machine's description;
- :mod:`tinydm.experiments.imdb`: Table 5, sentiment classification of IMDB reviews under label
  noise and class imbalance (a 100-8-2 MLP on PV-DBOW features);
- :mod:`tinydm.experiments.cifar`: Tables 1 and 9, Figures 2 and 5, CIFAR-10/100 under label
  noise with the CIFAR ResNets;
- :mod:`tinydm.experiments.sweep`: grids of settings (lam, beta, r, seed, ...) run through these
  entry points on a local process pool or a Ray cluster, and their tables and heat maps.

Each experiment has a single-run entry point that takes its settings object or a plain dict of
settings: ``imdb.run_one(settings, features, out_dir)`` and ``cifar.run(config)``.
"""

from . import cifar, imdb, runner, sweep

__all__ = ["cifar", "imdb", "runner", "sweep"]
