"""Exercise: batch normalisation's backward rule, in training mode (batch statistics).

Write ``BatchNorm.backward`` below, then grade it:

    python -m tinydm.exercises check batch_norm batch_norm.py
"""

from tinydm.backend import get_array_module
from tinydm.tensor import Function


class BatchNorm(Function):
    """``y = gamma * xhat + beta`` with ``xhat = (x - mu) * s``, ``s = 1 / sqrt(var + eps)``,
    per channel; inputs ``(x, gamma, beta)``, gradients for all three. ``x`` is (N, C) or
    (N, C, H, W); each channel's m values (N, or N*H*W) are normalised together.

    ``y`` is linear in gamma and beta, so their gradients are, over the channel's m values,

        gbeta = sum gy,   ggamma = sum gy * xhat.

    **Training mode**: ``mu`` and ``var`` are the batch mean and the *biased* batch variance of
    the channel's m values, so they depend on ``x``. Write ``g = dL/dxhat = gamma * gy``. With
    ``sum_j (x_j - mu) = 0``,

        dmu/dx_k = 1/m,   dvar/dx_k = 2 (x_k - mu) / m,   ds/dx_k = -s^3 (x_k - mu) / m,

    hence ``dxhat_j/dx_k = s (delta_jk - 1/m - xhat_j xhat_k / m)`` and

        gx_k = sum_j g_j dxhat_j/dx_k = s * (g_k - mean(g) - xhat_k * mean(g * xhat)).

    **Eval mode**: ``mu`` and ``var`` are the running statistics, constants, so
    ``gx = gamma * s * gy``. (This exercise does not update the running statistics.)
    """

    def __init__(self, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.eps = training, eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self.axes = (0,) + tuple(range(2, x.ndim))   # every axis but the channel's
        shape = (1, -1) + (1,) * (x.ndim - 2)         # a per-channel vector, broadcastable to x
        if self.training:
            mu, var = x.mean(axis=self.axes), x.var(axis=self.axes)
        else:
            mu, var = self.running_mean, self.running_var
        s = 1 / xp.sqrt(var + self.eps)
        xhat = (x - mu.reshape(shape)) * s.reshape(shape)
        self.save_for_backward(xhat, s, gamma)
        return gamma.reshape(shape) * xhat + beta.reshape(shape)

    def backward(self, gy):
        """``(gx, ggamma, gbeta)`` from the upstream gradient ``gy`` (the shape of ``x``)."""
        xhat, s, gamma = self.saved
        raise NotImplementedError("write BatchNorm.backward (see the class docstring)")
