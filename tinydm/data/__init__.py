"""Data sets of the paper's experiments and the label noise applied to them (pure NumPy).

- :mod:`tinydm.data.download`: where data lives (``TINYDM_DATA``), md5-checked atomic downloads
  and extraction;
- :mod:`tinydm.data.imdb`: IMDB reviews and their PV-DBOW features (gensim, optional);
- :mod:`tinydm.data.cifar`: CIFAR-10 and CIFAR-100 as uint8 NCHW arrays;
- :mod:`tinydm.data.noise`: symmetric, asymmetric and class-dependent label noise, imbalance.
"""

from . import cifar, download, imdb, noise
from .cifar import load_cifar10, load_cifar100
from .download import ChecksumError, DataError, data_dir
from .imdb import imdb_features, load_imdb

__all__ = ["cifar", "download", "imdb", "noise", "load_cifar10", "load_cifar100", "load_imdb",
           "imdb_features", "data_dir", "DataError", "ChecksumError"]
