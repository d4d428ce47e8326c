"""Greedy ensemble selection (Caruana et al. 2004) and the fitted ensemble it produces.

Selection works on out-of-fold predictions only: start from the best single model, then add
(with replacement) whichever model most improves the out-of-fold loss of the running average,
until no model improves it or the rounds run out. The weights are how often each model was picked. Each selected
model is a bag of its cross-validation fold models, so the final estimator needs no refit and
the wall-clock budget covers everything.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from .scoring import Metric


def greedy_selection(oof: list[np.ndarray], y: np.ndarray, metric: Metric, rounds: int = 40) -> np.ndarray:
    """Weights (summing to 1) over the candidates in ``oof`` chosen greedily on out-of-fold loss."""
    losses = [metric.loss(y, p) for p in oof]
    counts = np.zeros(len(oof))
    best = int(np.argmin(losses))
    counts[best] = 1
    running = oof[best].astype(float).copy()
    current = losses[best]
    for size in range(1, rounds):
        trial_losses = [metric.loss(y, (running * size + p) / (size + 1)) for p in oof]
        pick = int(np.argmin(trial_losses))
        if not trial_losses[pick] < current:
            break  # nothing helps any more: adding more would only dilute the weights
        current = trial_losses[pick]
        counts[pick] += 1
        running = (running * size + oof[pick]) / (size + 1)
    return counts / counts.sum()


class BaggedEnsemble(BaseEstimator):
    """Weighted average of fitted pipelines; each member is one fold model of one selected trial.

    Classification members were fitted on classes encoded 0..K-1; ``classes_`` maps back.
    """

    def __init__(self, members=(), weights=(), task="classification", classes=None, bounds=None):
        self.members = members
        self.weights = weights
        self.task = task
        self.classes = classes
        self.bounds = bounds

    def fit(self, X, y=None):
        """Members arrive fitted (out-of-fold models); fitting only checks the shapes."""
        if len(self.members) != len(self.weights) or not len(self.members):
            raise ValueError("members and weights must be non-empty and of equal length")
        if self.task == "classification":
            self.classes_ = np.asarray(self.classes)
        self.n_members_ = len(self.members)
        return self

    def _average(self, X, method: str) -> np.ndarray:
        total = None
        for member, weight in zip(self.members, self.weights, strict=True):
            pred = np.asarray(getattr(member, method)(X), dtype=float) * weight
            total = pred if total is None else total + pred
        return total / float(np.sum(self.weights))

    def predict_proba(self, X) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for classification")
        return self._average(X, "predict_proba")

    def predict(self, X) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        if self.bounds is None:
            return self._average(X, "predict")
        # the same clipping as the out-of-fold predictions the weights were chosen on
        total = None
        for member, weight in zip(self.members, self.weights, strict=True):
            pred = np.clip(np.asarray(member.predict(X), dtype=float), *self.bounds) * weight
            total = pred if total is None else total + pred
        return total / float(np.sum(self.weights))
