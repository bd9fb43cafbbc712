"""A toy training run: a linear softmax classifier trained on Gaussian blobs with noisy labels,
whose logits give a realistic batch for the ``edf_batch_weights`` figure (tinydm.plot.edf) and
the EDF explorer. It lives with the training code so that the figures read records and batches
and run no experiment of their own."""

import numpy as np

from .. import losses
from ..tensor import Tensor


def toy_batch(n=256, classes=10, features=16, noise=0.4, train_size=2000, steps=150, seed=0):
    """Logits of a real (tiny) model for a batch with noisy labels.

    A linear softmax classifier is trained with CCE (tinydm autograd, full-batch gradient
    descent) on Gaussian blobs whose labels were corrupted with probability ``noise`` (symmetric:
    a uniform pick among the other classes). Returns ``(logits, labels, noisy)`` for ``n`` of its
    training examples: host NumPy arrays (float32, int64, bool).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, features)) * 1.2
    truth = rng.integers(0, classes, size=train_size)
    x = (means[truth] + rng.normal(size=(train_size, features))).astype(np.float32)
    noisy = rng.random(train_size) < noise
    labels = np.where(noisy, (truth + rng.integers(1, classes, size=train_size)) % classes, truth)
    w = Tensor(np.zeros((features, classes), np.float32), requires_grad=True, device="cpu")
    b = Tensor(np.zeros(classes, np.float32), requires_grad=True, device="cpu")
    xt, yt = Tensor(x, device="cpu"), Tensor(labels, device="cpu")
    for _ in range(steps):
        w.grad = b.grad = None
        losses.cce(xt @ w + b, yt).backward()
        for param in (w, b):
            assert param.grad is not None  # both are in the loss's graph
            param.data -= 0.5 * param.grad.data
    logits = (x[:n] @ w.numpy() + b.numpy()).astype(np.float32)
    return logits, labels[:n], noisy[:n]
