"""Input checks and column typing: what the AutoML search may use, and what it drops (and why).

``inspect_frame`` validates the target and decides a kind for every column (numeric, categorical,
datetime, text) or drops it with a reason the model card prints: all missing, constant, ID-like.
``FrameCleaner`` is the first step of every fitted pipeline: at predict time it re-applies the
same typing, so a new file with extra columns, shuffled columns or a stray string in a numeric
column still predicts (the stray value becomes missing) instead of crashing.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ..core.errors import DataError

TASKS = ("classification", "regression")
# a column that parses as numbers for this share of its non-missing values is numeric
_NUMERIC_SHARE = 0.95
# free text: at least this many words per value on average
_TEXT_MIN_WORDS = 3.0
MISSING = "(missing)"
_ID_NAME = re.compile(r"(^|[_\s.])(id|uuid|guid|key|index)$|^(id|uuid|guid|index|unnamed: ?0)$", re.IGNORECASE)


@dataclass
class ColumnPlan:
    """Kind of every kept column, and the dropped ones with the reason (for the model card)."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    datetime: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[str]:
        return self.numeric + self.categorical + self.datetime + self.text

    def kinds(self) -> dict[str, str]:
        return ({c: "numeric" for c in self.numeric} | {c: "categorical" for c in self.categorical}
                | {c: "datetime" for c in self.datetime} | {c: "text" for c in self.text})


def resolve_task(y: pd.Series, task: str) -> str:
    """'auto' → classification for strings/bools/few integer levels, regression otherwise."""
    if task not in ("auto", *TASKS):
        raise DataError(f"unknown task {task!r}", hint="use auto, classification or regression")
    if task != "auto":
        return task
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna()
    is_integer = np.allclose(values, np.round(values))
    return "classification" if is_integer and values.nunique() <= min(20, max(2, len(values) // 20)) else "regression"


def split_target(df: pd.DataFrame, target: str, task: str = "auto") -> tuple[pd.DataFrame, pd.Series, str]:
    """Check the target and return (features, target without missing rows, resolved task)."""
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise DataError("the data has no rows", hint="pass a CSV/Parquet file or DataFrame with rows")
    if target not in df.columns:
        close = [c for c in df.columns if c.lower() == str(target).lower()]
        listed = ", ".join(map(str, df.columns[:12]))
        raise DataError(f"target column {target!r} is not in the data ({len(df.columns)} columns)",
                        hint=f"did you mean {close[0]!r}?" if close else f"columns: {listed}")
    y = df[target]
    keep = y.notna().to_numpy()
    if not keep.any():
        raise DataError(f"target column {target!r} is empty (all values missing)")
    features, y = df.loc[keep].drop(columns=[target]), y[keep]
    task = resolve_task(y, task)
    if task == "regression":
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].iloc[0]
            raise DataError(f"regression target {target!r} has a non-numeric value {bad!r}",
                            hint="clean the target or use --task classification")
        y = numeric.astype(float)
        if y.nunique() < 2:
            raise DataError(f"target column {target!r} is constant ({y.iloc[0]!r}): nothing to learn")
    else:
        counts = y.value_counts()
        if len(counts) < 2:
            raise DataError(f"target column {target!r} has a single class ({counts.index[0]!r}): nothing to learn",
                            hint="a classifier needs at least two classes in the training data")
    if features.shape[1] == 0:
        raise DataError("the data has no feature columns besides the target")
    return features.reset_index(drop=True), y.reset_index(drop=True), task


def _numeric_share(values: pd.Series) -> tuple[pd.Series, float]:
    parsed = pd.to_numeric(values, errors="coerce")
    present = values.notna()
    share = float(parsed[present].notna().mean()) if present.any() else 0.0
    return parsed, share


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    if sample.empty or not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() > 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= _NUMERIC_SHARE)


def inspect_frame(features: pd.DataFrame) -> ColumnPlan:
    """Decide the kind of every column, dropping the useless ones with a reason."""
    plan = ColumnPlan()
    n_rows = len(features)
    for column in features.columns:
        values = features[column]
        name = str(column)
        present = values.dropna()
        if present.empty:
            plan.dropped[name] = "all values missing"
            continue
        if present.astype(str).nunique() == 1:
            plan.dropped[name] = f"constant ({present.iloc[0]!r})"
            continue
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            integer_like = pd.api.types.is_integer_dtype(values) or np.allclose(present, np.round(present))
            if integer_like and n_rows >= 20 and present.nunique() == n_rows and (
                    _ID_NAME.search(name) or _is_sequence(present)):
                plan.dropped[name] = "ID-like (a distinct integer per row)"
                continue
            plan.numeric.append(name)
            continue
        if pd.api.types.is_datetime64_any_dtype(values):
            plan.datetime.append(name)
            continue
        parsed, share = _numeric_share(values)
        if share >= _NUMERIC_SHARE:
            plan.numeric.append(name)
            if share < 1.0:
                plan.notes.append(f"column {name!r} mixes numbers and text: "
                                  f"{(1 - share):.1%} non-numeric values are treated as missing")
            continue
        if share > 0.2:
            plan.notes.append(f"column {name!r} mixes numbers and text ({share:.0%} numbers): "
                              "treated as categorical")
        text = present.astype(str)
        if _looks_like_dates(text):
            plan.datetime.append(name)
            continue
        unique_share = text.nunique() / len(text)
        words = text.str.split().str.len().mean()
        if words >= _TEXT_MIN_WORDS and unique_share > 0.3:
            plan.text.append(name)
        elif n_rows >= 20 and unique_share >= 0.98 and (_ID_NAME.search(name) or len(text) == n_rows):
            plan.dropped[name] = "ID-like (a distinct value per row)"
        else:
            plan.categorical.append(name)
    if not plan.kept:
        reasons = "; ".join(f"{c}: {r}" for c, r in plan.dropped.items())
        raise DataError(f"no usable feature column left after dropping {reasons}",
                        hint="the data needs at least one column that varies and is not an identifier")
    return plan


def _is_sequence(values: pd.Series) -> bool:
    """1, 2, 3, … in some order (a row number), as opposed to a continuous measurement."""
    ordered = np.sort(values.to_numpy(dtype=float))
    return bool(np.all(np.diff(ordered) == 1.0))


class FrameCleaner(TransformerMixin, BaseEstimator):
    """Select and type the kept columns: numbers as float, categories as strings, dates as datetime.

    Learned in ``fit`` from the training frame; ``transform`` accepts any frame that has the kept
    columns (extra columns are ignored, a missing one is a ``DataError`` naming it).
    """

    def __init__(self, numeric=(), categorical=(), datetime=(), text=()):
        self.numeric = numeric
        self.categorical = categorical
        self.datetime = datetime
        self.text = text

    def fit(self, X, y=None):
        kept = [*self.numeric, *self.categorical, *self.datetime, *self.text]
        self.feature_names_in_ = np.asarray(kept, dtype=object)
        return self

    def transform(self, X):
        if not isinstance(X, pd.DataFrame):
            raise DataError("expected a table (DataFrame) with named columns")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise DataError(f"the data lacks {len(missing)} column(s) the model was trained on: "
                            f"{', '.join(map(str, missing[:8]))}", hint="predict on a file with the training columns")
        out = {}
        for column in self.numeric:
            values = X[column]
            out[column] = (values.astype(float) if pd.api.types.is_bool_dtype(values)
                           else pd.to_numeric(values, errors="coerce").astype(float))
        for column in self.categorical:
            values = X[column]
            # missing is a category of its own: it often carries signal ("no garage")
            out[column] = pd.Series(np.where(values.isna(), MISSING, values.astype(str)), index=X.index, dtype=object)
        for column in self.datetime:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[column] = pd.to_datetime(X[column], errors="coerce", format="mixed")
        for column in self.text:
            out[column] = X[column].fillna("").astype(str)
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_in_
