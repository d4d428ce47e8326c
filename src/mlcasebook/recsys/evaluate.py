"""Experiments, cornac-style: one split + several models + metrics -> one table with timings.

Three protocols:
- ``rating_cv``: K-fold CV of rating prediction (RMSE/MAE), the same folds for every model.
- ``ranking_experiment``: full ranking of each user's unseen items (every item not in the user's
  training rows), relevant = held-out items rated >= ``relevant_min_rating``; HR, NDCG,
  precision, recall @k and catalogue coverage.
- ``ncf_experiment``: the NCF protocol (He et al. 2017): each user's latest interaction held
  out and ranked among ``n_negatives`` sampled items the user never rated; HR@k and NDCG@k.
Models are passed as factories (zero-argument callables) so each fold trains a fresh model.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..core import metrics, splits
from ..core.progress import track
from .data import RatingData
from .models.base import Recommender

ModelFactory = Callable[[], Recommender]
_USER_BATCH = 512


def time_split(data: RatingData, test_fraction: float = 0.2) -> tuple[RatingData, RatingData]:
    """The last ``test_fraction`` of each user's ratings in time are the test set."""
    train, test = splits.per_group_time_split(data.ratings, "user_id", "timestamp", test_fraction)
    return data.with_ratings(train), data.with_ratings(test)


def random_split(data: RatingData, test_fraction: float = 0.2, seed: int = 0) -> tuple[RatingData, RatingData]:
    train, test = splits.random_holdout(len(data.ratings), test_fraction, seed)
    return data.with_ratings(train), data.with_ratings(test)


def rating_cv(data: RatingData, factories: dict[str, ModelFactory], n_folds: int = 5, seed: int = 0,
              progress: bool = True) -> pd.DataFrame:
    """Mean and spread of RMSE/MAE over the same K folds for every model, with timings: wall
    seconds, and CPU seconds of this process (steadier on a shared machine; sums all threads)."""
    folds = list(splits.kfold_indices(len(data.ratings), n_folds, seed))
    rows = []
    jobs = [(name, fold) for name in factories for fold in range(n_folds)]
    for name, fold in track(jobs, "rating CV", disable=not progress):
        train_rows, test_rows = folds[fold]
        test = data.ratings.iloc[test_rows]
        started, started_cpu = time.perf_counter(), time.process_time()
        model = factories[name]().fit(data.with_ratings(train_rows))
        fitted, fit_cpu = time.perf_counter(), time.process_time() - started_cpu
        predicted = model.predict_many(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        done = time.perf_counter()
        truth = test["rating"].to_numpy()
        rows.append({"model": name, "fold": fold, "rmse": metrics.rmse(truth, predicted),
                     "mae": metrics.mae(truth, predicted), "fit_s": fitted - started, "fit_cpu_s": fit_cpu,
                     "predict_s": done - fitted})
    per_fold = pd.DataFrame(rows)
    table = per_fold.groupby("model", sort=False).agg(
        rmse=("rmse", "mean"), rmse_std=("rmse", "std"), mae=("mae", "mean"),
        fit_s=("fit_s", "mean"), fit_cpu_s=("fit_cpu_s", "mean"), predict_s=("predict_s", "mean"))
    table.attrs["per_fold"] = per_fold
    return table.reset_index()


def ranking_experiment(train: RatingData, test: RatingData, factories: dict[str, ModelFactory], k: int = 10,
                       relevant_min_rating: float = 4.0, progress: bool = True,
                       fitted: dict[str, Recommender] | None = None) -> pd.DataFrame:
    """Full-ranking top-k metrics for each model on one train/test split. Pass a dict as
    ``fitted`` to keep the trained models (e.g. to show their recommendations)."""
    relevant = _relevant_by_user(train, test, relevant_min_rating)
    users = np.fromiter(relevant, dtype=np.int64)
    rows = []
    for name in track(list(factories), "ranking", disable=not progress):
        started = time.perf_counter()
        model = factories[name]().fit(train)
        trained = time.perf_counter()
        ranked = top_k_unseen(model, users, k)
        done = time.perf_counter()
        report = metrics.ranking_report(ranked, relevant, k, len(model.item_ids_))
        if fitted is not None:
            fitted[name] = model
        rows.append({"model": name, "phase": model.phase} | report | {"fit_s": trained - started,
                                                                       "rank_s": done - trained})
    return pd.DataFrame(rows)


def top_k_unseen(model: Recommender, user_ids: np.ndarray, k: int) -> dict[int, list[int]]:
    """Each user's top-k raw item ids among the items they did not rate in training."""
    ranked: dict[int, list[int]] = {}
    for start in range(0, len(user_ids), _USER_BATCH):
        batch = user_ids[start:start + _USER_BATCH]
        dense = model._indices(batch)
        scores = np.asarray(model._score_users(dense), dtype=np.float64).copy()
        seen = model.seen_[dense].tocoo()
        scores[seen.row, seen.col] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        for user, items in zip(batch, top, strict=True):
            ranked[int(user)] = model.item_ids_[items].tolist()
    return ranked


def ncf_experiment(data: RatingData, factories: dict[str, ModelFactory], n_negatives: int = 99, k: int = 10,
                   seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Leave-last-out with sampled negatives (every interaction counts as positive)."""
    train_rows, test_rows = splits.leave_last_out(data.ratings, "user_id", "timestamp")
    train, test = data.with_ratings(train_rows), data.ratings.iloc[test_rows]
    rng = np.random.default_rng(seed)
    all_items = np.sort(data.ratings["item_id"].unique())
    rated = data.ratings.groupby("user_id")["item_id"].apply(set).to_dict()
    candidates = {}
    for user, item in zip(test["user_id"].to_numpy(), test["item_id"].to_numpy(), strict=True):
        pool = all_items[~np.isin(all_items, list(rated[user]))]
        negatives = rng.choice(pool, size=min(n_negatives, len(pool)), replace=False)
        candidates[int(user)] = (int(item), negatives)
    rows = []
    for name in track(list(factories), "NCF protocol", disable=not progress):
        started = time.perf_counter()
        model = factories[name]().fit(train)
        fitted = time.perf_counter()
        hits, gains = [], []
        users = np.fromiter(candidates, dtype=np.int64)
        for start in range(0, len(users), _USER_BATCH):
            batch = users[start:start + _USER_BATCH]
            scores = model._score_users(model._indices(batch))
            for row, user in enumerate(batch):
                positive, negatives = candidates[int(user)]
                cols = model._item_pos.get_indexer(np.concatenate([[positive], negatives]))
                ranked_scores = scores[row, cols]
                # rank of the positive among the candidates; ties count against the model
                rank = int((ranked_scores[1:] >= ranked_scores[0]).sum())
                hits.append(rank < k)
                gains.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
        rows.append({"model": name, "phase": model.phase, f"hr@{k}": float(np.mean(hits)),
                     f"ndcg@{k}": float(np.mean(gains)), "users": len(users),
                     "fit_s": fitted - started, "rank_s": time.perf_counter() - fitted})
    return pd.DataFrame(rows)


def _relevant_by_user(train: RatingData, test: RatingData, threshold: float) -> dict[int, set[int]]:
    known = set(train.ratings["user_id"].unique())
    liked = test.ratings[test.ratings["rating"] >= threshold]
    liked = liked[liked["user_id"].isin(known)]
    return {int(u): set(items) for u, items in liked.groupby("user_id")["item_id"]}
