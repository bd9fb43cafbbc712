"""Training: the loop (:mod:`~tinydm.train.loop`), the schedules of the loss
(:mod:`~tinydm.train.schedules`: the beta warm-up) and the diagnostics of example weighting
(:mod:`~tinydm.train.diagnostics`: ESS, class shares, the emphasis-collapse watch)."""

from .diagnostics import (ONE_CLASS, CollapseWatch, EmphasisCollapseWarning, emphasis_stats,
                          one_class, predicted_classes)
from .loop import Diverged, History, accuracy, class_histogram, fit, predict
from .schedules import BetaWarmup, Constant, LossSchedule, loss_schedule
from .toy import toy_batch

__all__ = ["fit", "Diverged", "History", "predict", "accuracy", "class_histogram",
           "emphasis_stats", "CollapseWatch", "EmphasisCollapseWarning", "one_class",
           "predicted_classes", "ONE_CLASS", "LossSchedule", "Constant", "BetaWarmup",
           "loss_schedule", "toy_batch"]
