"""The paper's experiments as library code: settings, one run, the table over seeds, result files.

The ``examples/`` scripts are thin command lines over these modules; tests call them directly on
small synthetic data.

- :mod:`tinydm.experiments.imdb`: Table 5, sentiment classification of IMDB reviews under label
  noise and class imbalance (a 100-8-2 MLP on PV-DBOW features).
- :mod:`tinydm.experiments.cifar`: Tables 1 and 9, Figures 2 and 5, CIFAR-10/100 under label
  noise with the CIFAR ResNets.
"""

from . import cifar, imdb

__all__ = ["cifar", "imdb"]
