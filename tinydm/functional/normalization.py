"""Batch normalisation (Ioffe & Szegedy, 2015), for (N, C) and (N, C, H, W) inputs.

Each channel c is normalised over all its other axes (N, or N, H, W): m = N (or N*H*W) values.
"""

from typing import Any

from ..backend import (device_of, empty, empty_like, get_array_module, in_runs, is_array,
                       map_batch_parts, run_length)
from ..tensor import Function, Tensor


def _total(parts):
    """The sum of the parts' partial sums, in order (the same for any number of threads)."""
    return sum(parts[1:], parts[0])


def _channel_dot(a, b):
    """``sum of a * b`` over every axis but the channel axis (1), without an ``a * b`` temporary."""
    letters = "nchw" if a.ndim == 4 else "nc"
    return get_array_module(a).einsum(f"{letters},{letters}->c", a, b)


class BatchNorm(Function):
    """``y = gamma * xhat + beta`` with ``xhat = (x - mu) * s``, ``s = 1 / sqrt(var + eps)``,
    per channel; inputs ``(x, gamma, beta)``, gradients for all three.

    ``y`` is linear in gamma and beta, so their gradients are, over the channel's m values,

        gbeta = sum gy,   ggamma = sum gy * xhat.

    **Training mode**: ``mu`` and ``var`` are the batch mean and the *biased* batch variance of
    the channel's m values, so they depend on ``x``. Write ``g = dL/dxhat = gamma * gy``. With
    ``sum_j (x_j - mu) = 0``,

        dmu/dx_k = 1/m,   dvar/dx_k = 2 (x_k - mu) / m,   ds/dx_k = -s^3 (x_k - mu) / m,

    hence ``dxhat_j/dx_k = s (delta_jk - 1/m) + (x_j - mu) ds/dx_k
    = s (delta_jk - 1/m - xhat_j xhat_k / m)`` and

        gx_k = sum_j g_j dxhat_j/dx_k = s * (g_k - mean(g) - xhat_k * mean(g * xhat)).

    Gamma is constant over the channel, so ``mean(g) = gamma * gbeta / m`` and
    ``mean(g * xhat) = gamma * ggamma / m``: the parameter gradients give the two corrections,

        gx = gamma * s * (gy - (gbeta + xhat * ggamma) / m).

    The running statistics are updated in place, outside the graph, as in PyTorch:
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the *unbiased* variance
    ``var * m / (m - 1)`` for ``running_var``.

    **Eval mode**: ``mu`` and ``var`` are the running statistics, constants, so
    ``gx = gamma * s * gy``, and the forward is one multiply-add, ``y = a * x + c`` with
    ``a = gamma * s`` and ``c = beta - mu * a``.

    Backward keeps ``xhat``, ``s`` and ``gamma`` (not ``x``).

    **Fused with a ReLU** (``relu=True``, :func:`batch_norm_relu`): the output is
    ``z = max(y, 0)``, whose gradient w.r.t. ``y`` is ``gz * [y > 0] = gz * [z > 0]``; the rules
    above then apply to that masked gradient. It is the same arithmetic as ``relu(batch_norm(x))``
    (the same numbers), without the ReLU's own output, mask and gradient arrays: the mask is read
    from ``z``, which the next layer keeps anyway.
    """

    def __init__(self, running_mean, running_var, training=True, momentum=0.1, eps=1e-5,
                 relu=False):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps, self.relu = training, momentum, eps, relu

    def forward(self, x, gamma, beta):
        self._check(x, gamma, beta)
        xp = get_array_module(x)
        self.axes = (0,) + tuple(range(2, x.ndim))   # every axis but the channel's
        shape = (1, -1) + (1,) * (x.ndim - 2)         # a per-channel vector, broadcastable to x
        # Without a backward (no_grad, or no input needs a gradient) xhat is not kept: it is
        # made in y's own buffer, the same operations in the same order (the same numbers).
        keep = any(self.needs_input_grad)
        # The work is shared out over parts of the batch, one per CPU thread (map_batch_parts):
        # sums over the batch are the sums of the parts' sums.
        y = empty_like(x)
        xhat = empty_like(x) if keep else y
        if self.training:
            m = x.size // x.shape[1]
            if m < 2:
                raise ValueError(f"batch_norm: training needs more than one value per channel to "
                                 f"compute a variance, got input shape {x.shape}")
            mu = _total(map_batch_parts(lambda part: x[part].sum(axis=self.axes), x)) / m

            def center(part):  # xhat = x - mu, and the part's sum of squares of it
                h = xhat[part]
                xp.subtract(x[part], mu.reshape(shape), out=h)
                return _channel_dot(h, h)
            var = _total(map_batch_parts(center, x)) / m
            self._update_running(mu, var * (m / (m - 1)))
        else:
            mu, var = self.running_mean, self.running_var
        s = 1 / xp.sqrt(var + self.eps)
        mu, s, g, b = (a.reshape(shape) for a in (mu, s, gamma, beta))
        # Eval: mu and s are constants, so y = gamma * (x - mu) * s + beta = a * x + c, one
        # multiply and one add per element, as PyTorch's inference does; xhat is made only when
        # a backward will want it (for ggamma).
        if not self.training:
            a = g * s
            c = b - mu * a

        def normalise(x, h, out):  # train: xhat *= s, y = gamma * xhat + beta; eval: y = a x + c
            if self.training:
                h *= s
                xp.multiply(h, g, out=out)
                out += b
            else:
                if keep:
                    xp.subtract(x, mu, out=h)
                    h *= s
                xp.multiply(x, a, out=out)
                out += c
            if self.relu:  # then max(y, 0), fused
                xp.maximum(out, 0, out=out)
        map_batch_parts(lambda part: in_runs(normalise, x[part], xhat[part], y[part]), x)
        s = s.reshape(-1)
        if keep:  # with the ReLU, its mask is y > 0: y itself is kept (the next conv keeps it)
            self.save_for_backward(xhat, s, gamma, y if self.relu else None)
        return y

    def backward(self, gy):
        """The rules of the class docstring in two sweeps over the batch: the two sums
        (``gbeta``, ``ggamma``) in one, then ``gx`` in place, in cache-sized runs of images with
        one scratch buffer, so each element of ``gy`` and ``xhat`` is read from memory once per
        sweep. Fused with the ReLU, the first sweep also applies its mask, ``g = gy * [y > 0]``,
        into gx's buffer, which the second sweep then turns into gx."""
        xhat, s, gamma, y = self.saved
        xp = get_array_module(gy)
        shape = (1, -1) + (1,) * (gy.ndim - 2)
        gx = empty_like(gy, dtype=xp.result_type(gy.dtype, xhat.dtype))

        def sums(part):
            g = gy[part]
            if self.relu:
                mask = empty(xp, g.shape, bool)
                xp.greater(y[part], 0, out=mask)
                xp.multiply(g, mask, out=gx[part])
                g = gx[part]
            return _channel_dot(g, xhat[part]), g.sum(axis=self.axes)
        parts = map_batch_parts(sums, gy)
        ggamma, gbeta = _total([g for g, _ in parts]), _total([b for _, b in parts])
        scale = (gamma * s).reshape(shape)
        m = gy.size // gy.shape[1]
        upstream = gx if self.relu else gy  # the gradient of the BN's output
        a, b = (ggamma / -m).reshape(shape), (gbeta / m).reshape(shape)

        def run(g, h, up, t):  # one run of images: t is the scratch, in cache
            xp.multiply(h, a, out=t)
            t -= b
            t += up
            xp.multiply(t, scale, out=g)

        def input_grad(part):  # gx = scale * (gy - (gbeta + xhat * ggamma) / m)
            g, h, up = gx[part], xhat[part], upstream[part]
            if not self.training:  # constant statistics: gx = scale * gy
                xp.multiply(up, scale, out=g)
                return
            t = empty(xp, (min(len(g), run_length(g)),) + g.shape[1:], g.dtype)
            in_runs(lambda g, h, up: run(g, h, up, t[:len(g)]), g, h, up)
        map_batch_parts(input_grad, gy)
        return gx, ggamma, gbeta

    def _update_running(self, mu, unbiased_var):
        if self.running_mean is None:
            return
        for running, batch in ((self.running_mean, mu), (self.running_var, unbiased_var)):
            running *= 1 - self.momentum
            running += self.momentum * batch

    def _check(self, x, gamma, beta):
        if x.ndim not in (2, 4):
            raise ValueError(f"batch_norm: input must be (N, C) or (N, C, H, W), got shape {x.shape}")
        c = x.shape[1]
        stats = (("gamma", gamma), ("beta", beta),
                 ("running_mean", self.running_mean), ("running_var", self.running_var))
        for name, a in stats:
            if a is not None and a.shape != (c,):
                raise ValueError(f"batch_norm: {name} must have shape ({c},) for input of shape "
                                 f"{x.shape} (C = {c}), got {a.shape}")
        for name, a in stats[2:]:
            if a is not None and device_of(a) != device_of(x):
                raise ValueError(f"batch_norm: {name} is on device {device_of(a)!r} but the input "
                                 f"is on {device_of(x)!r}")
        if not self.training and self.running_mean is None:
            raise ValueError("batch_norm: eval mode (training=False) needs running_mean and "
                             "running_var")


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Any, running_var: Any,
               training: bool = True, momentum: float = 0.1, eps: float = 1e-5,
               relu: bool = False) -> Tensor:
    """Batch normalisation of ``x`` (N, C) or (N, C, H, W) per channel; ``gamma``, ``beta`` (C,).

    ``running_mean`` and ``running_var`` (C,) are updated in place in training mode and used in
    eval mode. Pass them as Tensors (their ``.data`` is updated; no gradient flows to them) or as
    raw arrays on the input's device; ``None`` for both means no running statistics (training
    mode only). ``relu=True``: ``relu`` of the result, as one op (:func:`batch_norm_relu`).
    """
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    stats = [r.data if isinstance(r, Tensor) else r for r in (running_mean, running_var)]
    for name, r in zip(("running_mean", "running_var"), stats):
        if r is not None and not is_array(r):
            raise TypeError(f"batch_norm: {name} must be a Tensor or an array (updated in place), "
                            f"got {type(r).__name__}")
    mean_data, var_data = stats
    return BatchNorm(mean_data, var_data, training, momentum, eps, relu)(x, gamma, beta)


def batch_norm_relu(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Any, running_var: Any,
                    training: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``relu(batch_norm(x, ...))`` as one op (see :class:`BatchNorm`, fused with a ReLU): the
    same values and gradients, fewer arrays and passes over memory."""
    return batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps,
                      relu=True)
