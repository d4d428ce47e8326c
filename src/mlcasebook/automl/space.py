"""The search space: preprocessing and model choices, and the pipeline built from one choice.

A trial's parameters are a flat dict (what Optuna samples, what the leaderboard prints);
``build_pipeline`` turns it into an unfitted scikit-learn estimator that takes the typed frame of
``FrameCleaner``. Everything here is a stock scikit-learn/LightGBM part except three small
feature generators (dates, ratios, text length) written as sklearn transformers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import SelectPercentile, VarianceThreshold, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, QuantileTransformer, StandardScaler, TargetEncoder

from .frame import ColumnPlan

FAMILIES = ("lgbm", "hgb", "rf", "et", "linear", "knn", "mlp")
# families that need scaled, imputed, one-hot or target-encoded inputs
_NEEDS_SCALING = {"linear", "knn", "mlp"}
# families that read missing values natively
_NATIVE_NAN = {"lgbm", "hgb"}


class DateFeatures(TransformerMixin, BaseEstimator):
    """year, month, day of week, day of year, hour and days since 1970 for each date column."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        parts = {}
        for column in X.columns:
            values = pd.to_datetime(X[column], errors="coerce")
            parts[f"{column}_year"] = values.dt.year
            parts[f"{column}_month"] = values.dt.month
            parts[f"{column}_dayofweek"] = values.dt.dayofweek
            parts[f"{column}_dayofyear"] = values.dt.dayofyear
            parts[f"{column}_hour"] = values.dt.hour
            parts[f"{column}_days"] = (values - pd.Timestamp("1970-01-01")).dt.days
        return pd.DataFrame(parts, index=X.index).astype(float).to_numpy()


class TextLength(TransformerMixin, BaseEstimator):
    """Characters and words per text value."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        return np.column_stack([np.column_stack([frame[c].str.len(), frame[c].str.split().str.len()])
                                for c in frame.columns]).astype(float)


class RatioFeatures(TransformerMixin, BaseEstimator):
    """Append a/b for every pair of the ``n_columns`` numeric columns most correlated with the target.

    Trees cannot express a ratio with axis-aligned splits (price per square foot, debt over
    income); a handful of ratios is cheap and the search decides whether they help.
    """

    def __init__(self, n_columns: int = 4):
        self.n_columns = n_columns

    def fit(self, X, y=None):
        values = np.asarray(X, dtype=float)
        self.n_features_in_ = values.shape[1]
        if y is None or values.shape[1] < 2:
            self.columns_ = np.arange(min(self.n_columns, values.shape[1]))
            return self
        target = np.asarray(y, dtype=float)
        ranked = pd.DataFrame(values).rank().corrwith(pd.Series(target).rank()).abs().fillna(0.0)
        self.columns_ = np.argsort(-ranked.to_numpy(), kind="stable")[: self.n_columns]
        return self

    def transform(self, X):
        values = np.asarray(X, dtype=float)
        ratios = []
        for i, a in enumerate(self.columns_):
            for b in self.columns_[i + 1:]:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = values[:, a] / values[:, b]
                ratios.append(np.where(np.isfinite(ratio), ratio, np.nan))
        return np.column_stack([values, *ratios]) if ratios else values


def _numeric_steps(params: dict, family: str) -> list:
    steps = []
    if params.get("ratios", False):
        steps.append(RatioFeatures(4))
    if family not in _NATIVE_NAN:
        steps.append(SimpleImputer(strategy=params.get("impute", "median"), add_indicator=True,
                                   keep_empty_features=True))
    if family in _NEEDS_SCALING:
        scaler = params.get("scaler", "standard")
        steps.append(QuantileTransformer(output_distribution="normal", n_quantiles=200, subsample=100_000,
                                         random_state=0) if scaler == "quantile" else StandardScaler())
    return steps or ["passthrough"]


def _categorical_encoder(params: dict, task: str, family: str):
    encoding = params.get("encoding", "onehot")
    if encoding == "ordinal":
        # unknown categories at predict time → -1, which HistGradientBoosting reads as missing
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1,
                              min_frequency=5, max_categories=250, dtype=float)
    if encoding == "target":
        # TargetEncoder cross-fits inside fit_transform, so training rows never see their own target
        encoder = TargetEncoder(target_type="continuous" if task == "regression" else "auto", random_state=0)
        return make_pipeline(encoder, StandardScaler()) if family in _NEEDS_SCALING else encoder
    return OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=32,
                         sparse_output=False, dtype=np.float32)


def build_preprocessor(params: dict, plan: ColumnPlan, task: str) -> ColumnTransformer:
    family = params["model"]
    blocks = []
    # categorical first, so an ordinal block sits at known indices for HistGradientBoosting
    if plan.categorical:
        blocks.append(("cat", _categorical_encoder(params, task, family), plan.categorical))
    if plan.numeric:
        blocks.append(("num", make_pipeline(*_numeric_steps(params, family)), plan.numeric))
    if plan.datetime:
        blocks.append(("date", make_pipeline(DateFeatures(), *_numeric_steps({**params, "ratios": False}, family)),
                       plan.datetime))
    for column in plan.text:
        blocks.append((f"len_{column}", make_pipeline(TextLength(), *_numeric_steps({}, family)), [column]))
        if params.get("tfidf", False):
            blocks.append((f"tfidf_{column}", make_pipeline(
                TfidfVectorizer(max_features=5000, min_df=2, sublinear_tf=True),
                TruncatedSVD(n_components=16, random_state=0),
                *([StandardScaler()] if family in _NEEDS_SCALING else [])),
                column))
    return ColumnTransformer(blocks, sparse_threshold=0.0, remainder="drop")


def _model(params: dict, task: str, seed: int, n_jobs: int, n_rows: int):
    family = params["model"]
    classify = task == "classification"
    if family == "lgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMClassifier if classify else LGBMRegressor
        return cls(n_estimators=params["n_estimators"], learning_rate=params["learning_rate"],
                   num_leaves=params["num_leaves"], min_child_samples=params["min_child_samples"],
                   subsample=params["subsample"], subsample_freq=1, colsample_bytree=params["colsample"],
                   reg_lambda=params["reg_lambda"], random_state=seed, n_jobs=n_jobs, verbose=-1)
    if family == "hgb":
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(learning_rate=params["learning_rate"], max_iter=params["max_iter"],
                   max_leaf_nodes=params["max_leaf_nodes"], min_samples_leaf=params["min_samples_leaf"],
                   l2_regularization=params["l2"], early_stopping=n_rows > 10_000, random_state=seed,
                   categorical_features=params.get("_categorical_idx"))
    if family in ("rf", "et"):
        if classify:
            cls = RandomForestClassifier if family == "rf" else ExtraTreesClassifier
        else:
            cls = RandomForestRegressor if family == "rf" else ExtraTreesRegressor
        return cls(n_estimators=params["n_estimators"], max_features=params["max_features"],
                   min_samples_leaf=params["min_samples_leaf"], n_jobs=n_jobs, random_state=seed)
    if family == "linear":
        if classify:
            return LogisticRegression(C=params["C"], max_iter=1000)
        return Ridge(alpha=params["alpha"])
    if family == "knn":
        cls = KNeighborsClassifier if classify else KNeighborsRegressor
        return cls(n_neighbors=min(params["n_neighbors"], max(1, n_rows // 2)), weights=params["weights"],
                   n_jobs=n_jobs)
    if family == "mlp":
        cls = MLPClassifier if classify else MLPRegressor
        hidden = {"64": (64,), "128": (128,), "128-64": (128, 64)}[params["hidden"]]
        return cls(hidden_layer_sizes=hidden, alpha=params["alpha"], learning_rate_init=params["lr"],
                   early_stopping=True, max_iter=200, random_state=seed)
    raise ValueError(f"unknown model family {family!r}")


def build_pipeline(params: dict, plan: ColumnPlan, task: str, seed: int = 0, n_jobs: int = 1,
                   n_rows: int = 1000):
    """An unfitted estimator for one point of the search space (preprocessing + model)."""
    params = dict(params)
    if params["model"] == "hgb" and params.get("encoding") == "ordinal" and plan.categorical:
        params["_categorical_idx"] = list(range(len(plan.categorical)))
    steps = [("prepare", build_preprocessor(params, plan, task))]
    if "_categorical_idx" not in params:  # dropping a column would shift HistGradientBoosting's categorical indices
        steps.append(("constant", VarianceThreshold(0.0)))
    if params["model"] in _NEEDS_SCALING and params.get("select", 100) < 100:
        score = f_classif if task == "classification" else f_regression
        steps.append(("select", SelectPercentile(score, percentile=params["select"])))
    steps.append(("model", _model(params, task, seed, n_jobs, n_rows)))
    pipeline = Pipeline(steps)
    if task == "regression" and params.get("log_target", False):
        return TransformedTargetRegressor(regressor=pipeline, func=np.log1p, inverse_func=np.expm1,
                                          check_inverse=False)
    return pipeline


def sample_params(trial, task: str, n_rows: int, plan: ColumnPlan, allow_log_target: bool,
                  families: tuple[str, ...] = FAMILIES) -> dict:
    """Optuna's view of the space: a model family, then its own knobs and its preprocessing."""
    family = trial.suggest_categorical("model", list(families))
    params: dict = {"model": family}
    if plan.categorical:
        choices = ["onehot", "target"] if family in _NEEDS_SCALING else ["ordinal", "onehot", "target"]
        params["encoding"] = trial.suggest_categorical(f"{family}_encoding", choices)
    if len(plan.numeric) >= 2:
        params["ratios"] = trial.suggest_categorical(f"{family}_ratios", [False, True])
    if plan.text:
        params["tfidf"] = trial.suggest_categorical(f"{family}_tfidf", [False, True])
    if allow_log_target:
        params["log_target"] = trial.suggest_categorical(f"{family}_log_target", [False, True])
    if family not in _NATIVE_NAN:
        params["impute"] = trial.suggest_categorical(f"{family}_impute", ["median", "mean"])
    large = n_rows > 20_000
    if family == "lgbm":
        params |= {"n_estimators": trial.suggest_int("lgbm_n_estimators", 50, 600 if large else 1000, log=True),
                   "learning_rate": trial.suggest_float("lgbm_learning_rate", 0.01, 0.3, log=True),
                   "num_leaves": trial.suggest_int("lgbm_num_leaves", 4, 128, log=True),
                   "min_child_samples": trial.suggest_int("lgbm_min_child_samples", 2, 100, log=True),
                   "subsample": trial.suggest_float("lgbm_subsample", 0.5, 1.0),
                   "colsample": trial.suggest_float("lgbm_colsample", 0.3, 1.0),
                   "reg_lambda": trial.suggest_float("lgbm_reg_lambda", 1e-3, 10.0, log=True)}
    elif family == "hgb":
        params |= {"learning_rate": trial.suggest_float("hgb_learning_rate", 0.01, 0.3, log=True),
                   "max_iter": trial.suggest_int("hgb_max_iter", 50, 500, log=True),
                   "max_leaf_nodes": trial.suggest_int("hgb_max_leaf_nodes", 4, 128, log=True),
                   "min_samples_leaf": trial.suggest_int("hgb_min_samples_leaf", 2, 100, log=True),
                   "l2": trial.suggest_float("hgb_l2", 1e-4, 10.0, log=True)}
    elif family in ("rf", "et"):
        params |= {"n_estimators": trial.suggest_int(f"{family}_n_estimators", 50, 150 if large else 400, log=True),
                   "max_features": trial.suggest_categorical(f"{family}_max_features", ["sqrt", 0.3, 0.6, 1.0]),
                   "min_samples_leaf": trial.suggest_int(f"{family}_min_samples_leaf", 1, 20, log=True)}
    elif family == "linear":
        if task == "classification":
            params["C"] = trial.suggest_float("linear_C", 1e-3, 100.0, log=True)
        else:
            params["alpha"] = trial.suggest_float("linear_alpha", 1e-3, 1000.0, log=True)
    elif family == "knn":
        params |= {"n_neighbors": trial.suggest_int("knn_n_neighbors", 3, 100, log=True),
                   "weights": trial.suggest_categorical("knn_weights", ["uniform", "distance"])}
    elif family == "mlp":
        params |= {"hidden": trial.suggest_categorical("mlp_hidden", ["64", "128", "128-64"]),
                   "alpha": trial.suggest_float("mlp_alpha", 1e-5, 1.0, log=True),
                   "lr": trial.suggest_float("mlp_lr", 1e-4, 1e-2, log=True)}
    if family in _NEEDS_SCALING:
        params["scaler"] = trial.suggest_categorical(f"{family}_scaler", ["standard", "quantile"])
        params["select"] = trial.suggest_categorical(f"{family}_select", [100, 75, 50])
    return params


def portfolio(task: str, n_rows: int, plan: ColumnPlan, allow_log_target: bool) -> list[dict]:
    """Known-good starting points, tried first (cheap and strong before TPE takes over).

    Values are in Optuna's flat names so they can be enqueued as trials.
    """
    enc = {"ordinal"} if plan.categorical else set()
    log = {"log_target": True} if allow_log_target else {}

    def point(family: str, **values) -> dict:
        flat = {"model": family}
        extras = {"encoding": values.pop("encoding", "ordinal" if enc else None), **log, **values}
        for key, value in extras.items():
            if value is None or (key == "encoding" and not plan.categorical):
                continue
            flat[f"{family}_{key}"] = value
        if len(plan.numeric) >= 2:
            flat.setdefault(f"{family}_ratios", False)
        if plan.text:
            flat.setdefault(f"{family}_tfidf", True)
        return flat

    linear_knob = {"C": 1.0} if task == "classification" else {"alpha": 1.0}
    points = [
        point("hgb", learning_rate=0.1, max_iter=100, max_leaf_nodes=31, min_samples_leaf=20, l2=1e-4,
              **({"log_target": False} if log else {})),
        point("linear", encoding="onehot", impute="median", scaler="quantile", select=100, **linear_knob),
        point("lgbm", n_estimators=300, learning_rate=0.05, num_leaves=31, min_child_samples=20, subsample=0.8,
              colsample=0.8, reg_lambda=1.0),
        point("lgbm", n_estimators=600, learning_rate=0.02, num_leaves=8, min_child_samples=30, subsample=0.7,
              colsample=0.5, reg_lambda=5.0, encoding="target" if enc else None),
        point("et", n_estimators=200 if n_rows <= 20_000 else 100, max_features=0.6, min_samples_leaf=2,
              impute="median"),
        point("rf", n_estimators=200 if n_rows <= 20_000 else 100, max_features="sqrt", min_samples_leaf=2,
              impute="median"),
        point("knn", encoding="onehot", impute="median", scaler="standard", select=100, n_neighbors=25,
              weights="distance"),
        point("mlp", encoding="onehot", impute="median", scaler="quantile", select=100, hidden="64", alpha=1e-2,
              lr=1e-3),
    ]
    if plan.categorical:
        points.insert(2, point("linear", encoding="target", impute="median", scaler="standard", select=100,
                               **linear_knob))
    return points


def params_from_trial(trial_params: dict) -> dict:
    """Optuna's flat names (``lgbm_num_leaves``) → the builder's (``num_leaves``)."""
    family = trial_params["model"]
    prefix = f"{family}_"
    return {"model": family} | {k[len(prefix):]: v for k, v in trial_params.items() if k.startswith(prefix)}
