"""The one-call AutoML API: ``fit(df, target)`` → a plain scikit-learn pipeline and its record.

>>> result = fit(train_df, "Survived", budget_s=30)
>>> result.leaderboard.head()          # every trial, best first
>>> result.predict_proba(test_df)      # one column per class, named by the class
>>> result.save("titanic-model")       # skops pipeline + leaderboard + model card
>>> load("titanic-model").predict(test_df)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ..core.errors import DataError
from .ensemble import BaggedEnsemble, greedy_selection
from .frame import ColumnPlan, FrameCleaner, inspect_frame, split_target
from .scoring import METRICS, Metric, choose_metric
from .search import leaderboard, run_search, target_bounds
from .space import FAMILIES

# the share of the budget the first checks may take before the search must start
_MIN_SEARCH_S = 0.5


@dataclass
class AutoMLResult:
    """A fitted pipeline plus everything the model card needs."""

    pipeline: Pipeline
    task: str
    metric: str
    target: str
    classes_: np.ndarray | None
    leaderboard: pd.DataFrame
    cv_score: float
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict(_features(df, self.target))

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, one column per class named by the class."""
        if self.task != "classification":
            raise DataError("predict_proba needs a classification model", hint="use predict for regression")
        proba = self.pipeline.predict_proba(_features(df, self.target))
        return pd.DataFrame(proba, columns=[str(c) for c in self.classes_], index=df.index)

    def predictions(self, df: pd.DataFrame) -> pd.DataFrame:
        """What `automl predict` writes: probabilities per class + the label, or the value."""
        if self.task == "classification":
            proba = self.predict_proba(df)
            return proba.assign(prediction=self.classes_[proba.to_numpy().argmax(axis=1)])
        return pd.DataFrame({"prediction": self.predict(df)}, index=df.index)

    def score(self, df: pd.DataFrame) -> float:
        """The search metric on a labelled frame (a holdout), natural sign."""
        if self.target not in df.columns:
            raise DataError(f"the holdout has no target column {self.target!r}")
        labelled = df[df[self.target].notna()]
        metric = METRICS[self.metric]
        features = _features(labelled, self.target)
        if self.task == "classification":
            known = {str(c): i for i, c in enumerate(self.classes_)}
            codes = labelled[self.target].astype(str).map(known)
            if codes.isna().any():
                unseen = sorted(set(labelled[self.target].astype(str)) - set(known))
                raise DataError(f"the holdout has classes the model never saw: {unseen[:5]}")
            return float(metric.score(codes.to_numpy(dtype=int), self.pipeline.predict_proba(features)))
        return float(metric.score(labelled[self.target].to_numpy(dtype=float), self.pipeline.predict(features)))

    def save(self, out_dir: Path | str) -> Path:
        from .persist import save_result

        return save_result(self, out_dir)


def _features(df: pd.DataFrame, target: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataError("expected a pandas DataFrame")
    return df.drop(columns=[target]) if target in df.columns else df


def fit(df: pd.DataFrame, target: str, task: str = "auto", budget_s: float = 60, metric: str | None = None,
        seed: int = 0, n_jobs: int | None = None, out_dir: Path | str | None = None, progress: bool = True,
        storage: str | None = None, study_name: str | None = None,
        families: tuple[str, ...] = FAMILIES) -> AutoMLResult:
    """Search preprocessing + models for ``budget_s`` seconds of wall time and return the best pipeline.

    ``n_jobs`` threads per model (default: all cores). ``storage``/``study_name`` share one Optuna
    study between workers (RDB URL, e.g. ``sqlite:///automl.db``). Bad input raises ``DataError``.
    """
    started = time.monotonic()
    if not budget_s or budget_s <= 0:
        raise DataError(f"budget must be positive, got {budget_s}")
    unknown = set(families) - set(FAMILIES)
    if unknown or not families:
        raise DataError(f"unknown model families {sorted(unknown)}", hint=f"choose from {', '.join(FAMILIES)}")
    features, y_raw, task = split_target(df, target, task)
    if task == "classification":
        classes, y = np.unique(y_raw.astype(str) if y_raw.dtype == object else y_raw, return_inverse=True)
    else:
        classes, y = None, y_raw.to_numpy(dtype=float)
    chosen = choose_metric(task, len(classes) if classes is not None else 0, metric)
    plan = inspect_frame(features)
    cleaner = FrameCleaner(plan.numeric, plan.categorical, plan.datetime, plan.text).fit(features)
    X = cleaner.transform(features)
    if started + budget_s - time.monotonic() < _MIN_SEARCH_S:
        raise DataError(f"a budget of {budget_s:g} s is used up by reading the data",
                        hint="raise --budget")
    n_jobs = n_jobs or os.cpu_count() or 1
    search = run_search(X, y, plan, task, chosen, budget_s, started, seed=seed, n_jobs=n_jobs, progress=progress,
                        storage=storage, study_name=study_name, families=tuple(families))
    done = [r for r in search.records if r.models is not None]
    if not done:
        raise DataError(f"a budget of {budget_s:g} s was too small to fit any model on {len(X)} rows "
                        f"({len(search.records)} tried)", hint=_budget_hint(search, budget_s))
    ensemble, weights, cv_loss, single_loss = _select(done, y, chosen, task, classes)
    pipeline = Pipeline([("clean", cleaner), ("model", ensemble)])
    sign = -1.0 if chosen.greater_is_better else 1.0
    board = leaderboard(search.records, chosen, weights)
    info = {"rows": len(X), "columns": int(features.shape[1]), "kinds": plan.kinds(), "dropped": plan.dropped,
            "notes": plan.notes, "budget_s": float(budget_s), "n_folds": search.n_folds, "n_jobs": n_jobs,
            "seed": seed, "trials": len(search.records), "trials_skipped_for_time": search.skipped,
            "trials_complete": int(sum(r.status == "complete" for r in search.records)),
            "best_single_cv": sign * single_loss, "ensemble_members": {str(k): v for k, v in weights.items()},
            "fit_s": time.monotonic() - started, "class_counts": _class_counts(y, classes)}
    result = AutoMLResult(pipeline, task, chosen.name, target, classes, board, sign * cv_loss, info)
    if out_dir is not None:
        result.save(out_dir)
    return result


def _select(done, y, metric: Metric, task: str, classes):
    """Greedy ensemble on out-of-fold predictions; a single model when the ensemble does not help."""
    best = min(done, key=lambda r: r.loss)
    weights_vec = greedy_selection([r.oof for r in done], y, metric)
    blended = sum(w * r.oof for w, r in zip(weights_vec, done, strict=True))
    ensemble_loss = metric.loss(y, blended)
    if ensemble_loss < best.loss:
        weights = {r.number: float(w) for w, r in zip(weights_vec, done, strict=True) if w > 0}
        cv_loss = ensemble_loss
    else:
        weights, cv_loss = {best.number: 1.0}, best.loss
    by_number = {r.number: r for r in done}
    members, member_weights = [], []
    for number, weight in weights.items():
        fold_models = by_number[number].models
        members.extend(fold_models)
        member_weights.extend([weight / len(fold_models)] * len(fold_models))
    bounds = None if task == "classification" else list(target_bounds(y))
    ensemble = BaggedEnsemble(members, member_weights, task, None if classes is None else list(classes),
                              bounds).fit(None)
    return ensemble, weights, cv_loss, best.loss


def _class_counts(y, classes) -> dict[str, int] | None:
    if classes is None:
        return None
    return {str(c): int(n) for c, n in zip(classes, np.bincount(y, minlength=len(classes)), strict=True)}


def _budget_hint(search, budget_s: float) -> str:
    spent = [r.fit_s / max(1, len(r.fold_losses)) for r in search.records if r.fold_losses]
    if spent:
        suggested = max(budget_s * 2, min(spent) * search.n_folds * 3)
        return f"one fold took about {min(spent):.1f} s; try --budget {suggested:.0f}"
    return f"try --budget {budget_s * 4:g} or a sample of the rows"


def load(out_dir: Path | str) -> AutoMLResult:
    from .persist import load_result

    return load_result(out_dir)


def explain(result: AutoMLResult, df: pd.DataFrame, target: str | None = None, n_repeats: int = 5,
            seed: int = 0, max_rows: int = 5000, rows_per_call: int = 50_000) -> pd.DataFrame:
    """Permutation importance of every input column on labelled data: the drop in the metric when
    that column is shuffled (mean and std over ``n_repeats`` shuffles).

    The shuffled copies are stacked so the pipeline predicts a few large frames instead of one small
    frame per column and repeat: a fitted ensemble costs ~0.4-1.5 s per call whatever the rows, so
    80 columns x 3 repeats take seconds instead of minutes."""
    target = target or result.target
    if target not in df.columns:
        raise DataError(f"explain needs the target column {target!r} in the data")
    labelled = df[df[target].notna()]
    if len(labelled) > max_rows:
        labelled = labelled.sample(max_rows, random_state=seed)
    labelled = labelled.reset_index(drop=True)
    metric = METRICS[result.metric]
    sign = 1.0 if metric.greater_is_better else -1.0
    truth = _encoded_truth(result, labelled[target])
    baseline = metric.score(truth, _raw_predictions(result, labelled))
    rng = np.random.default_rng(seed)
    columns = [c for c in labelled.columns if c != target]
    blocks = []  # (column, shuffled copy), column by column then repeat by repeat
    for column in columns:
        for _ in range(n_repeats):
            shuffled = labelled.copy()
            shuffled[column] = labelled[column].to_numpy()[rng.permutation(len(labelled))]
            blocks.append((column, shuffled))
    per_call = max(1, rows_per_call // max(1, len(labelled)))
    drops: dict[str, list[float]] = {c: [] for c in columns}
    for start in range(0, len(blocks), per_call):
        chunk = blocks[start:start + per_call]
        predictions = _raw_predictions(result, pd.concat([frame for _, frame in chunk], ignore_index=True))
        for i, (column, _) in enumerate(chunk):
            part = predictions[i * len(labelled):(i + 1) * len(labelled)]
            drops[column].append(sign * (baseline - metric.score(truth, part)))
    rows = [{"column": c, "importance": float(np.mean(d)), "std": float(np.std(d))} for c, d in drops.items()]
    return pd.DataFrame(rows).sort_values("importance", ascending=False).reset_index(drop=True)


def _encoded_truth(result: AutoMLResult, y: pd.Series) -> np.ndarray:
    if result.task != "classification":
        return y.to_numpy(dtype=float)
    codes = y.astype(str).map({str(c): i for i, c in enumerate(result.classes_)})
    if codes.isna().any():
        raise DataError("the data has classes the model never saw", hint="score it on rows of known classes")
    return codes.to_numpy(dtype=int)


def _raw_predictions(result: AutoMLResult, frame: pd.DataFrame) -> np.ndarray:
    """What the metric scores: class probabilities (encoded order) or values."""
    if result.task == "classification":
        return result.predict_proba(frame).to_numpy()
    return np.asarray(result.predict(frame), dtype=float)


def describe_plan(plan: ColumnPlan) -> str:
    kinds = {k: len(getattr(plan, k)) for k in ("numeric", "categorical", "datetime", "text")}
    return ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
