"""Schedules of the loss over the iterations (the learning-rate schedules are in tinydm.optim).

:func:`tinydm.train.fit` asks its loss schedule for the loss of every iteration. A fixed loss is
:class:`Constant`; :class:`BetaWarmup` is DM's remedy against emphasis collapse
(docs/emphasis-collapse.md): beta rises linearly from 0, so the weights are uniform while the
``p_i`` are still uninformative.
"""

from .. import losses

#: The schedule parameters a loss's settings may carry beside its own (``loss_params``), with the
#: values that mean "off".
SCHEDULE_PARAMS = {"warmup": 0}


class LossSchedule:
    """The loss of each iteration: ``loss_at(it) -> f(logits, labels)``."""

    def loss_at(self, it):
        raise NotImplementedError


class Constant(LossSchedule):
    """The same loss at every iteration."""

    def __init__(self, loss):
        self.loss = loss

    def loss_at(self, it):
        return self.loss

    def __repr__(self):
        return repr(self.loss)


class BetaWarmup(LossSchedule):
    """``beta_t = beta * min(1, t / warmup)``: a loss with a ``beta`` (DM) whose beta rises
    linearly from 0 over the first ``warmup`` iterations, then stays."""

    def __init__(self, name, warmup, **params):
        if isinstance(warmup, bool) or not warmup > 0:
            raise ValueError(f"loss {name!r}: warmup must be > 0 iterations, got {warmup!r}")
        self.target = losses.get(name, **params)  # checks the name and parameters now
        if "beta" not in self.target.params:
            raise ValueError(f"loss {name!r}: unknown parameter(s) warmup (a warm-up needs a "
                             f"beta to raise: dm's)")
        self.name, self.warmup, self.params = name, warmup, dict(self.target.params)

    def loss_at(self, it):
        if it >= self.warmup:
            return self.target
        return losses.get(self.name, **{**self.params,
                                        "beta": self.params["beta"] * min(1.0, it / self.warmup)})

    def __repr__(self):
        return f"{self.target!r} with beta warm-up over {self.warmup} iterations"


def loss_schedule(name, **params):
    """The schedule of loss ``name`` with ``params``: its own parameters (tinydm.losses.get) and
    the schedule's (:data:`SCHEDULE_PARAMS`). ``loss_schedule("dm", lam=1, beta=16,
    warmup=1000)`` is a :class:`BetaWarmup`; without a warm-up, a :class:`Constant`."""
    warmup = params.pop("warmup", SCHEDULE_PARAMS["warmup"])
    if warmup:
        return BetaWarmup(name, warmup, **params)
    if warmup != 0:
        raise ValueError(f"loss {name!r}: warmup must be >= 0 iterations, got {warmup!r}")
    return Constant(losses.get(name, **params))
