"""Lesson 14: the shared training loop and the emphasis diagnostics it records."""

import numpy as np
import pytest

import tinydm as td
from tinydm import backend, losses, nn, optim
from tinydm.train import History, emphasis_stats, fit


def test_ess_and_class_shares_on_a_hand_computed_batch(device):
    xp = backend.module_for(device)
    w = np.array([1.0, 1.0, 2.0, 4.0])  # total 8
    s = xp.asarray(w / w.sum())
    labels = xp.asarray([0, 1, 1, 2])
    ess, shares = emphasis_stats(s, labels, num_classes=4)
    # (sum w)^2 / (N sum w^2) = 64 / (4 * 22)
    assert float(ess) == pytest.approx(64 / 88)
    np.testing.assert_allclose(backend.to_numpy(shares), [1 / 8, 3 / 8, 4 / 8, 0.0])


def test_ess_is_one_for_equal_weights_and_one_over_n_for_a_single_example(device):
    xp = backend.module_for(device)
    labels = xp.asarray([0, 1, 0, 1, 0])
    assert float(emphasis_stats(xp.full(5, 0.2), labels, 2)[0]) == pytest.approx(1.0)
    assert float(emphasis_stats(xp.asarray([0.0, 0, 1, 0, 0]), labels, 2)[0]) == pytest.approx(0.2)


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 5)).astype(np.float32) + 2.0 * y[:, None].astype(np.float32)
    return x, y


@pytest.mark.parametrize("loss", ["cce", "dm"])
def test_fit_learns_and_records_the_diagnostics(device, loss):
    td.manual_seed(0)
    x, y = _blobs()
    xt, yt = td.Tensor(x), td.Tensor(y)
    model = nn.MLP([5, 8, 2])
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = {"lam": 0.5, "beta": 2.0} if loss == "dm" else {}

    def batches(it):
        idx = slice((it % 4) * 50, (it % 4) * 50 + 50)
        return xt[idx], yt[idx]

    def evaluate(model, it):
        from tinydm.train import accuracy, predict
        return {"accuracy": accuracy(predict(model, xt), yt)}

    history = fit(model, losses.get(loss, **params), opt, batches, iterations=60, num_classes=2,
                  evaluate=evaluate, eval_every=20, log_every=10, progress=False)
    assert [e["iteration"] for e in history.evals] == [20, 40, 60]
    assert history.final("accuracy") > 0.9 and history.best("accuracy") >= history.final("accuracy")
    step = history.steps[-1]
    assert step["iteration"] == 60 and 0 < step["ess_fraction"] <= 1
    assert sum(step["class_shares"]) == pytest.approx(1.0, abs=1e-4)
    assert History.from_dict(history.to_dict()).evals == history.evals


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point of the test
def test_fit_stops_on_a_non_finite_loss(device):
    model = nn.MLP([2, 2])
    opt = optim.SGD(model.parameters(), lr=1e30)
    x = td.Tensor(np.full((4, 2), 1e30, dtype=np.float32))
    y = td.Tensor(np.array([0, 1, 0, 1]))
    with pytest.raises(FloatingPointError, match="loss became"):
        fit(model, losses.get("mse"), opt, lambda it: (x * 1e10, y), iterations=3, num_classes=2,
            log_every=1, progress=False)


def test_the_collapse_watch_fires_on_a_collapsing_run_and_not_on_a_healthy_one():
    from tinydm.train import CollapseWatch
    healthy, collapsing = History(), History()
    watch = CollapseWatch(ess=0.25, patience=3, share=0.9, after=0)
    for it in range(1, 6):
        watch.step({"iteration": it, "ess_fraction": 0.6, "batch_accuracy": 0.7}, healthy)
        watch.step({"iteration": it, "ess_fraction": 0.1, "batch_accuracy": 1.0}, healthy)  # fitted
    watch.evaluation({"iteration": 5, "test_class_histogram": [55, 45]}, healthy)
    CollapseWatch().evaluation({"iteration": 5, "test_class_histogram": [0, 100]}, healthy)  # too early
    assert healthy.warnings == []

    with pytest.warns(RuntimeWarning, match="ESS fraction has stayed below 0.25"):
        for it in range(1, 5):
            watch.step({"iteration": it, "ess_fraction": 0.1, "batch_accuracy": 0.5}, collapsing)
    watch.evaluation({"iteration": 5, "test_class_histogram": [3, 97]}, collapsing)  # once: a phase
    watch.evaluation({"iteration": 6, "test_class_histogram": [50, 50]}, collapsing)
    watch.evaluation({"iteration": 7, "test_class_histogram": [3, 97]}, collapsing)
    assert len(collapsing.warnings) == 1
    with pytest.warns(RuntimeWarning, match=r"2 evaluations in a row \(now 98% in class 1\)"):
        watch.evaluation({"iteration": 8, "test_class_histogram": [2, 98]}, collapsing)
    assert len(collapsing.warnings) == 2 and "emphasis-collapse.md" in collapsing.warnings[0]


def test_the_collapse_watch_sees_a_lock_onto_a_few_of_many_classes():
    """CIFAR-10 runs of DM lam=1, beta=16 lock onto two classes (docs/results.md): with C = 10
    the watch looks at the two largest classes, with C = 100 at the twenty largest."""
    from tinydm.train import CollapseWatch
    healthy = History()
    watch = CollapseWatch(after=0)
    for it in (1, 2):  # five classes predicted: not locked
        watch.evaluation({"iteration": it, "test_class_histogram":
                          [3009, 0, 1764, 0, 1831, 0, 2048, 0, 42, 1306]}, healthy)
        watch.evaluation({"iteration": it, "test_class_histogram": [100] * 100}, healthy)
    assert healthy.warnings == []
    two = History()
    watch = CollapseWatch(after=0)
    watch.evaluation({"iteration": 250, "test_class_histogram":
                      [3386, 0, 0, 0, 6614, 0, 0, 0, 0, 0]}, two)
    with pytest.warns(RuntimeWarning, match=r"in 2 of its 10 classes for 2 evaluations in a row "
                                            r"\(now 96% in classes 0, 4\)"):
        watch.evaluation({"iteration": 500, "test_class_histogram":
                          [5179, 0, 0, 0, 4421, 0, 0, 0, 0, 400]}, two)
    many = History()
    watch = CollapseWatch(after=0)
    with pytest.warns(RuntimeWarning, match="in 20 of its 100 classes"):
        for it in (1, 2):
            watch.evaluation({"iteration": it, "test_class_histogram": [50] * 20 + [0] * 80}, many)


def _random_label_run(loss_fn, watch):
    td.manual_seed(1)
    rng = np.random.default_rng(1)
    x = td.Tensor(rng.standard_normal((256, 10)).astype(np.float32))
    y = td.Tensor(rng.integers(0, 4, 256))
    model = nn.MLP([10, 4])
    opt = optim.SGD(model.parameters(), lr=0.5)

    def evaluate(model, it):
        from tinydm.train import class_histogram, predict
        return {"test_class_histogram": class_histogram(predict(model, x), 4)}

    return fit(model, loss_fn, opt, lambda it: (x, y), 200, 4, evaluate=evaluate, eval_every=50,
               log_every=5, progress=False, watch=watch)


def test_a_collapsing_dm_run_warns_through_fit_and_cce_does_not():
    """On random labels, DM with a large beta piles the emphasis onto a few examples (ESS ~0.1);
    CCE on the same run keeps it spread (ESS ~1) and stays silent."""
    from tinydm.train import CollapseWatch
    with pytest.warns(RuntimeWarning, match="emphasis collapse"):
        history = _random_label_run(losses.get("dm", lam=1, beta=40), CollapseWatch(ess=0.3, patience=3))
    assert history.warnings and history.steps[-1]["ess_fraction"] < 0.3
    history = _random_label_run(losses.get("cce"), CollapseWatch(ess=0.3, patience=3))
    assert history.warnings == [] and history.steps[-1]["ess_fraction"] > 0.9
