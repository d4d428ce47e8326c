"""Optuna search under a wall-clock budget, scored by cross-validation, pruned fold by fold.

The loop (Optuna's ask/tell) tries a portfolio of known-good configurations first, then TPE
proposals. Cross-validation folds are the fidelity steps: after each fold the running loss is
reported and Optuna's median pruner stops a trial that is already worse than the median of
earlier trials at the same fold. Time is guarded at three levels so the budget holds:
- before a trial: its first fold's cost is predicted from earlier fits of the same family
  (seconds per row per tree/iteration) and the trial is skipped if it cannot finish in time;
- between folds: the remaining folds are predicted from the first one;
- inside LightGBM: a callback aborts boosting at the hard deadline.
Completed trials keep their out-of-fold predictions and fold models (the best few only) for
the ensemble.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from ..core.errors import DataError
from ..core.progress import bar
from .frame import ColumnPlan
from .scoring import Metric
from .space import FAMILIES, build_pipeline, params_from_trial, portfolio, sample_params

# completed trials whose fold models stay in memory as ensemble candidates
KEEP_MODELS = 12
# time kept back at the end for ensemble selection and assembling the result
_RESERVE_SHARE, _RESERVE_S = 0.04, 0.3


class _OutOfTime(Exception):
    """Raised inside a fit when the hard deadline passes."""


@dataclass
class TrialRecord:
    number: int
    params: dict
    status: str  # complete | pruned | failed | skipped (no time)
    loss: float = math.nan
    fold_losses: list[float] = field(default_factory=list)
    fit_s: float = 0.0
    note: str = ""
    oof: np.ndarray | None = None
    models: list | None = None


@dataclass
class SearchResult:
    records: list[TrialRecord]
    n_folds: int
    search_s: float
    skipped: int = 0


def n_folds_for(n_rows: int, y: np.ndarray, task: str) -> int:
    # more folds = steadier scores but fewer trials in the budget; 3 is the better trade past ~1,500 rows
    folds = 5 if n_rows <= 1_500 else 3
    if task == "classification":
        smallest = int(np.bincount(y).min())
        if smallest < 2:
            raise DataError(f"a class has only {smallest} row(s); cross-validation needs at least 2 per class",
                            hint="drop or merge the rarest classes")
        folds = min(folds, smallest)
    return folds


def _units(params: dict) -> float:
    """Work of one fit relative to the family's unit (trees, boosting rounds, neighbours …)."""
    if params["model"] in ("lgbm", "rf", "et"):
        return float(params["n_estimators"])
    if params["model"] == "hgb":
        return float(params["max_iter"])
    return 1.0


# cost of one unit of each family relative to one HistGradientBoosting iteration (rough, on the
# cautious side): a guess for a family's first fit, before it has been timed on this data
# (measured on Ames, 1 core: a 100-iteration HGB fit 0.7 s, a 300-tree LightGBM 0.5 s, logistic/ridge 0.2 s,
# a 64-unit MLP 2.3 s), with a margin
_RELATIVE_COST = {"hgb": 1.0, "lgbm": 0.5, "rf": 2.0, "et": 2.0, "linear": 40.0, "knn": 40.0, "mlp": 500.0}


class _CostModel:
    """Seconds per (training row × unit) for each family, the worst seen so far (a cautious guess)."""

    def __init__(self):
        self.rates: dict[str, float] = {}

    def observe(self, params: dict, rows: int, seconds: float) -> None:
        rate = seconds / (rows * _units(params))
        self.rates[params["model"]] = max(rate, self.rates.get(params["model"], 0.0))

    def predict(self, params: dict, rows: int) -> float | None:
        family = params["model"]
        rate = self.rates.get(family)
        if rate is None and self.rates:
            # borrow from a timed family, scaled by the relative cost table
            known, known_rate = max(self.rates.items(), key=lambda kv: kv[1] / _RELATIVE_COST[kv[0]])
            rate = known_rate / _RELATIVE_COST[known] * _RELATIVE_COST[family]
        return None if rate is None else rate * rows * _units(params)


def target_bounds(y: np.ndarray) -> tuple[float, float]:
    """Regression predictions are clipped to the training range widened by 10 %: a linear model on a
    log target can extrapolate one odd row to an absurd price, which would wreck an RMSE."""
    low, high = float(np.min(y)), float(np.max(y))
    margin = 0.1 * (high - low)
    return low - margin, high + margin


def _predict(model, X, task: str, bounds=None) -> np.ndarray:
    if task == "classification":
        return model.predict_proba(X)
    return np.clip(model.predict(X), *bounds)


def _fit(model, X, y, params: dict, hard_deadline: float):
    fit_params = {}
    if params["model"] == "lgbm":
        def stop_at_deadline(env):
            if time.monotonic() > hard_deadline:
                raise _OutOfTime()
        fit_params["model__callbacks"] = [stop_at_deadline]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y, **fit_params)


def run_search(X: pd.DataFrame, y: np.ndarray, plan: ColumnPlan, task: str, metric: Metric, budget_s: float,
               started: float, seed: int = 0, n_jobs: int = 1, progress: bool = True,
               storage: str | None = None, study_name: str | None = None,
               families: tuple[str, ...] = FAMILIES) -> SearchResult:
    """Search until ``started + budget_s`` minus a small reserve; ``started`` is ``time.monotonic()``."""
    n_rows = len(X)
    hard_deadline = started + budget_s
    soft_deadline = hard_deadline - _RESERVE_SHARE * budget_s - _RESERVE_S
    n_folds = n_folds_for(n_rows, y, task)
    splitter = (StratifiedKFold(n_folds, shuffle=True, random_state=seed) if task == "classification"
                else KFold(n_folds, shuffle=True, random_state=seed))
    folds = list(splitter.split(X, y))
    fold_rows = n_rows * (n_folds - 1) // n_folds
    allow_log_target = task == "regression" and float(np.min(y)) >= 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    starts = portfolio(task, n_rows, plan, allow_log_target)
    starts = [p for p in starts if p["model"] in families]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             n_startup_trials=max(len(starts), 5))
        pruner = optuna.pruners.MedianPruner(n_startup_trials=max(len(starts), 5), n_warmup_steps=0)
        study = _open_study(sampler, pruner, storage, study_name)
    if not study.trials:
        for point in starts:
            study.enqueue_trial(point, skip_if_exists=True)

    cost = _CostModel()
    records: list[TrialRecord] = []
    skipped_in_a_row = skipped = 0
    search_began = time.monotonic()
    shown = 0
    with bar(int(math.ceil(budget_s)), "automl search (s)", disable=not progress) as advance:
        while time.monotonic() < soft_deadline and skipped_in_a_row < 25:
            trial = study.ask()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flat_params = sample_params(trial, task, n_rows, plan, allow_log_target, families)
            params = params_from_trial(trial.params)
            record = TrialRecord(trial.number, params, "complete")
            _evaluate(record, trial, X, y, folds, fold_rows, plan, task, metric, seed, n_jobs, cost,
                      soft_deadline, hard_deadline)
            if record.status == "skipped" and not record.fold_losses:
                skipped += 1  # never started: predicted not to fit in the time left, not worth a row
            else:
                records.append(record)
            _tell(study, trial, record)
            skipped_in_a_row = skipped_in_a_row + 1 if record.status == "skipped" else 0
            _keep_best_models(records)
            elapsed = int(time.monotonic() - started)
            advance(max(0, min(elapsed, int(math.ceil(budget_s))) - shown))
            shown = max(shown, elapsed)
            del flat_params
    return SearchResult(records, n_folds, time.monotonic() - search_began, skipped)


def _tell(study, trial, record: TrialRecord) -> None:
    try:
        if record.status == "complete":
            study.tell(trial, record.loss)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED if record.status in ("pruned", "skipped")
                       else optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # a shared study: another worker already finished this (enqueued) trial


def _open_study(sampler, pruner, storage: str | None, study_name: str | None):
    """A fresh in-memory study, or a shared one in an RDB (several workers may race to create it)."""
    for attempt in range(3):
        try:
            return optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner, storage=storage,
                                       study_name=study_name, load_if_exists=storage is not None)
        except Exception as exc:  # SQLAlchemy errors while two workers create the schema at once
            if storage is None:
                raise
            if attempt == 2:
                raise DataError(f"cannot open the Optuna study {study_name!r} in {storage} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                                hint="check the URL; create the study once before starting workers "
                                     "(see docs/automl.md)") from exc
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _evaluate(record: TrialRecord, trial, X, y, folds, fold_rows, plan, task, metric, seed, n_jobs, cost,
              soft_deadline, hard_deadline) -> None:
    params = record.params
    predicted = cost.predict(params, fold_rows)
    remaining = soft_deadline - time.monotonic()
    if predicted is not None and predicted * len(folds) > remaining:
        record.status, record.note = "skipped", f"predicted {predicted * len(folds):.1f} s > {remaining:.1f} s left"
        return
    try:
        template = build_pipeline(params, plan, task, seed=seed, n_jobs=n_jobs, n_rows=fold_rows)
    except Exception as exc:  # an impossible combination of knobs: the search moves on
        record.status, record.note = "failed", f"{type(exc).__name__}: {exc}"[:200]
        return
    n_classes = int(y.max()) + 1 if task == "classification" else 0
    bounds = None if task == "classification" else target_bounds(y)
    oof = np.zeros((len(y), n_classes)) if task == "classification" else np.zeros(len(y))
    models = []
    for step, (train_idx, valid_idx) in enumerate(folds):
        if step > 0:
            per_fold = record.fit_s / step
            if time.monotonic() + per_fold * (len(folds) - step) > soft_deadline:
                record.status, record.note = "skipped", "out of time between folds"
                return
        began = time.monotonic()
        try:
            model = _fit(clone(template), X.iloc[train_idx], y[train_idx], params, hard_deadline)
            pred = _predict(model, X.iloc[valid_idx], task, bounds)
        except _OutOfTime:
            record.status, record.note = "skipped", "stopped at the deadline"
            return
        except Exception as exc:
            record.status, record.note = "failed", f"{type(exc).__name__}: {exc}"[:200]
            return
        seconds = time.monotonic() - began
        record.fit_s += seconds
        cost.observe(params, len(train_idx), seconds)
        if not np.all(np.isfinite(pred)):
            record.status, record.note = "failed", "non-finite predictions"
            return
        oof[valid_idx] = pred
        models.append(model)
        record.fold_losses.append(metric.loss(y[valid_idx], pred))
        trial.report(float(np.mean(record.fold_losses)), step)
        if step < len(folds) - 1 and trial.should_prune():
            record.status, record.note = "pruned", f"pruned after fold {step + 1}"
            return
    record.loss = metric.loss(y, oof)
    record.oof, record.models = oof, models


def _keep_best_models(records: list[TrialRecord]) -> None:
    """Free the fold models of all but the best ``KEEP_MODELS`` completed trials (memory on big data)."""
    done = sorted((r for r in records if r.models is not None), key=lambda r: r.loss)
    for record in done[KEEP_MODELS:]:
        record.models = None
        record.oof = None


def leaderboard(records: list[TrialRecord], metric: Metric, weights: dict[int, float]) -> pd.DataFrame:
    """One row per trial, best first; the score has the metric's natural sign."""
    sign = -1.0 if metric.greater_is_better else 1.0
    rows = []
    for r in records:
        rows.append({"trial": r.number, "model": r.params["model"], "status": r.status,
                     f"cv_{metric.name}": sign * r.loss if r.status == "complete" else math.nan,
                     "fold_std": float(np.std(r.fold_losses)) if r.status == "complete" else math.nan,
                     "fit_s": round(r.fit_s, 3), "ensemble_weight": round(weights.get(r.number, 0.0), 4),
                     "note": r.note, "params": json.dumps({k: v for k, v in r.params.items() if k != "model"},
                                                         sort_keys=True, default=str)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_order"] = frame["status"].ne("complete")
    frame["_loss"] = [r.loss for r in records]
    frame = frame.sort_values(["_order", "_loss", "trial"]).drop(columns=["_order", "_loss"])
    return frame.reset_index(drop=True)
