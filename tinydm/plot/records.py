"""What several result figures read off run records (through tinydm/experiments/runner.py's
accessors): a key's values over the iterations, the share of the test set predicted positive,
and the mean over seeds."""

import numpy as np

from ..experiments.runner import evals_of


def series(records, key):
    """(iterations, values) of the records that have ``key`` (not None)."""
    points = [(r["iteration"], r[key]) for r in records if r.get(key) is not None]
    return (np.array([p[0] for p in points]), np.array([p[1] for p in points], dtype=float))


def percent_predicted_positive(record):
    """The share (%) of the test set predicted positive (class 1) at each evaluation of a
    two-class run, from the evaluations' ``test_class_histogram``."""
    hist = np.array([e["test_class_histogram"] for e in evals_of(record)], dtype=float)
    return 100 * hist[:, 1] / hist.sum(axis=1) if hist.size else np.zeros(0)


def seed_mean(curves):
    """The mean of several seeds' ``curves`` (``[(iterations, values), ...]``, the same
    evaluation schedule) as ``(iterations, mean, seeds)``: cut to the shortest curve, as runs
    still going are shorter, after leaving out the seeds with no point yet, which would cut it
    to nothing; ``seeds`` is how many went into the mean. None if no seed has a point."""
    curves = [(it, v) for it, v in curves if len(it)]
    if not curves:
        return None
    n = min(len(it) for it, _ in curves)
    return curves[0][0][:n], np.mean([v[:n] for _, v in curves], axis=0), len(curves)
