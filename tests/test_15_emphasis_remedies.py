"""Lesson 15: remedies for emphasis collapse, each doing what it claims (docs/emphasis-collapse.md)."""

import numpy as np
import pytest

import tinydm as td
from tinydm import losses, train


def _batch(n=64, c=4, seed=0, scale=4.0):
    rng = np.random.default_rng(seed)
    z = td.Tensor(rng.standard_normal((n, c)) * scale, requires_grad=True)
    y = td.Tensor(rng.integers(0, c, n))
    return z, y


def _shares(loss):
    return losses.details(loss)["normalised_weights"].numpy()


def test_the_beta_warm_up_rises_linearly_then_holds():
    schedule = train.loss_schedule("dm", lam=1, beta=16, warmup=100)
    assert isinstance(schedule, train.BetaWarmup)
    betas = [schedule.loss_at(it).params["beta"] for it in (0, 25, 50, 100, 5000)]
    assert betas == [0.0, 4.0, 8.0, 16.0, 16.0]
    assert isinstance(train.loss_schedule("dm", lam=1, beta=16), train.Constant)
    for bad in (-1, True):
        with pytest.raises(ValueError, match="warmup"):
            train.loss_schedule("dm", lam=1, beta=16, warmup=bad)
    with pytest.raises(ValueError, match=r"'cce': unknown parameter\(s\) warmup"):
        train.loss_schedule("cce", warmup=10)
    with pytest.raises(ValueError, match="unknown parameter"):  # the loss has no warmup itself
        losses.get("dm", lam=1, beta=16, warmup=10)


def test_warm_up_at_iteration_zero_is_uniform_emphasis(device):
    z, y = _batch()
    f = train.loss_schedule("dm", lam=1, beta=16, warmup=100).loss_at(0)
    np.testing.assert_allclose(_shares(f(z, y)), 1 / 64)


def test_the_ess_floor_is_reached_and_untouched_batches_stay_as_they_were(device):
    z, y = _batch(scale=6.0)
    plain = _shares(losses.dm(z, y, lam=1, beta=40))
    def ess(s):
        return 1 / (len(s) * (s ** 2).sum())
    assert ess(plain) < 0.5  # the remedy has work to do
    floored = _shares(losses.get("dm", lam=1, beta=40, ess_floor=0.5)(z, y))
    assert ess(floored) >= 0.5 - 1e-6 and floored.sum() == pytest.approx(1.0)
    # tempering keeps the order of the weights
    assert (np.argsort(floored, kind="stable") == np.argsort(plain, kind="stable")).mean() > 0.9
    # a floor the batch already satisfies changes nothing
    satisfied = losses.get("dm", lam=1, beta=40, ess_floor=ess(plain) * 0.9)
    np.testing.assert_allclose(_shares(satisfied(z, y)), plain, rtol=1e-6)


def test_per_class_renormalisation_keeps_each_class_share_at_its_frequency(device):
    z, y = _batch()
    s = _shares(losses.get("dm", lam=1, beta=16, per_class=True)(z, y))
    labels = y.numpy()
    for k in range(4):
        assert s[labels == k].sum() == pytest.approx((labels == k).mean())
    # within a class the ranking is DM's
    plain = _shares(losses.dm(z, y, lam=1, beta=16))
    for k in range(4):
        m = labels == k
        np.testing.assert_allclose(s[m] / s[m].sum(), plain[m] / plain[m].sum(), rtol=1e-6)


def test_remedies_keep_the_gradient_finite_and_of_unit_total(device):
    z, y = _batch(scale=1e3)
    for params in ({"ess_floor": 0.5}, {"per_class": True}, {"ess_floor": 0.3, "per_class": True}):
        loss = losses.get("dm", lam=0.5, beta=-30, **params)(z, y)
        loss.backward()
        g = z.grad.numpy()
        assert np.isfinite(g).all()
        assert np.abs(g).sum() <= 1.0 + 1e-6
        z.grad = None
