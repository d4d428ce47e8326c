"""The two yardsticks every collaborative-filtering model must beat, and the helpers they share.

- ``PopularityRecommender`` (phase 0): ranks items by how many people rated them; predicts the
  item's mean rating. Not personal at all, yet a strong top-k baseline on MovieLens.
- ``BiasBaseline`` (phase 2): ``r_ui ≈ μ + b_u + b_i`` with user and item biases fitted by
  regularised alternating least squares, exactly as Surprise's ``BaselineOnly`` (method 'als').
  It predicts ratings well (RMSE ~0.94 on ML-100k) but ranks every user's items the same way,
  by the item bias ``b_i``, since ``μ + b_u`` is a constant within one user.

The helpers (rating history kept as a sparse matrix, ALS biases, titles, parameter checks) are
shared by the neighbourhood, factorisation and ranking models of this phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ...core.errors import CasebookError
from .base import Recommender

if TYPE_CHECKING:
    from ..data import RatingData


# ---- helpers shared by the phase-2 models -------------------------------------------------------
def require(ok: bool, model: str, message: str, hint: str) -> None:
    """Validate one hyper-parameter at the boundary (``fit``), scikit-learn style."""
    if not ok:
        raise CasebookError(f"{model}: {message}", hint=hint)


def require_positive_int(model: str, **values: Any) -> None:
    for name, value in values.items():
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0
        require(ok, model, f"{name} must be a positive integer, got {value!r}", f"pass e.g. {name}=10")


def require_non_negative(model: str, **values: Any) -> None:
    for name, value in values.items():
        ok = isinstance(value, int | float | np.number) and not isinstance(value, bool) and np.isfinite(value) \
            and value >= 0
        require(ok, model, f"{name} must be a finite number >= 0, got {value!r}", f"pass e.g. {name}=0.1")


def rating_matrix(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Users x items CSR of the training ratings (one rating per pair, as ``RatingData`` promises)."""
    return sp.csr_matrix((np.asarray(ratings, dtype=np.float64), (users, items)), shape=shape)


def append_empty_row(matrix: sp.csr_matrix) -> sp.csr_matrix:
    return sp.vstack([matrix, sp.csr_matrix((1, matrix.shape[1]), dtype=matrix.dtype)], format="csr")


def merge_user_row(matrix: sp.csr_matrix, user: int, items: np.ndarray, values: np.ndarray) -> sp.csr_matrix:
    """The matrix with ``user``'s row holding its old entries plus the new ones (new values win)."""
    row = matrix.getrow(user)
    keep = ~np.isin(row.indices, items)
    # the last of repeated new items wins, as it would if the ratings arrived one by one
    last = len(items) - 1 - np.unique(np.asarray(items)[::-1], return_index=True)[1]
    cols = np.concatenate([row.indices[keep], np.asarray(items)[last]])
    vals = np.concatenate([row.data[keep], np.asarray(values, dtype=matrix.dtype)[last]])
    new_row = sp.csr_matrix((vals, (np.zeros(len(cols), dtype=np.int64), cols)), shape=(1, matrix.shape[1]))
    return sp.vstack([matrix[:user], new_row, matrix[user + 1:]], format="csr")


def csr_to_arrays(matrix: sp.csr_matrix, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}_indptr": matrix.indptr.astype(np.int64), f"{prefix}_indices": matrix.indices.astype(np.int64),
            f"{prefix}_data": matrix.data}


def csr_from_arrays(arrays: dict[str, np.ndarray], prefix: str, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=shape)


def item_titles(data: RatingData, item_ids: np.ndarray) -> list[str]:
    """Titles aligned with ``item_ids`` for the reasons shown to people ("because you liked ...")."""
    items = data.items
    if items is None or "title" not in items.columns:
        return [f"item {i}" for i in item_ids]
    titles = items["title"].reindex(item_ids)
    return [str(t) if isinstance(t, str) and t else f"item {i}" for t, i in zip(titles, item_ids, strict=True)]


def als_biases(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
               global_mean: float, reg_user: float, reg_item: float, n_epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """User and item biases by alternating ridge solves (Koren 2010, §2.1; Surprise ``baseline_als``).

    Each half-step is the exact minimiser of the regularised squared error with the other side
    fixed: ``b_i = Σ_u (r_ui - μ - b_u) / (λ_i + |U(i)|)``, then the same for ``b_u``.
    """
    user_counts = np.bincount(users, minlength=n_users)
    item_counts = np.bincount(items, minlength=n_items)
    user_bias = np.zeros(n_users)
    item_bias = np.zeros(n_items)
    for _ in range(n_epochs):
        item_bias = np.bincount(items, ratings - global_mean - user_bias[users], n_items) / (reg_item + item_counts)
        user_bias = np.bincount(users, ratings - global_mean - item_bias[items], n_users) / (reg_user + user_counts)
    return user_bias, item_bias


def user_bias_given_items(history: sp.csr_matrix, user: int, global_mean: float, item_bias: np.ndarray,
                          reg_user: float) -> float:
    """The ALS user-bias step for one user with item biases fixed (used for real-time fold-in)."""
    row = history.getrow(user)
    return float((row.data - global_mean - item_bias[row.indices]).sum() / (reg_user + row.nnz))


# ---- models -------------------------------------------------------------------------------------
class PopularityRecommender(Recommender):
    """Most-rated items first; rating estimate = the item's mean rating (global mean if unrated).

    Fold-in changes nothing in the catalogue (popularity is a training-time snapshot); the base
    class still hides the items a user just rated.
    """

    name = "popularity"
    phase = 0
    predicts_ratings = True

    def __init__(self) -> None:
        pass

    def _fit(self, users, items, ratings, data) -> None:
        n_items = len(self.item_ids_)
        self.counts_ = np.bincount(items, minlength=n_items).astype(np.float64)
        sums = np.bincount(items, ratings, minlength=n_items)
        self.item_mean_ = np.where(self.counts_ > 0, sums / np.maximum(self.counts_, 1), self.global_mean_)

    def _score_users(self, users):
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_)))

    def _predict(self, users, items):
        return np.where(items >= 0, self.item_mean_[np.maximum(items, 0)], self.global_mean_)

    def explain(self, user, item):
        return f"popular: rated by {int(self.counts_[item])} people"

    def _add_user(self) -> None:
        pass

    def _fold_in(self, user, items, ratings, timestamps) -> None:
        pass

    def _get_state(self):
        return {"counts": self.counts_, "item_mean": self.item_mean_}, {}

    def _set_state(self, arrays, meta) -> None:
        self.counts_, self.item_mean_ = arrays["counts"], arrays["item_mean"]


def because_you_liked(history: sp.csr_matrix, user: int, similarities: np.ndarray, titles: list[str]) -> str:
    """Reason naming the liked item (rated at least the user's own average) most like the
    recommended one; similarities are the recommended item's row."""
    row = history.getrow(user)
    if row.nnz == 0:
        return "rated highly by people overall"
    liked = row.data >= row.data.mean()
    candidates = row.indices[liked] if liked.any() else row.indices
    return f"because you liked {titles[candidates[np.argmax(similarities[candidates])]]}"


class UserBiasFoldIn:
    """Real-time update shared by bias-based models: keep the user's ratings in ``history_`` and
    re-solve their bias with item parameters fixed."""

    def _add_user(self) -> None:
        self.history_ = append_empty_row(self.history_)
        self.user_bias_ = np.append(self.user_bias_, 0.0)

    def _fold_in(self, user, items, ratings, timestamps) -> None:
        self.history_ = merge_user_row(self.history_, user, items, ratings)
        self.user_bias_[user] = user_bias_given_items(self.history_, user, self.global_mean_, self.item_bias_,
                                                      self.reg_user)


class BiasBaseline(UserBiasFoldIn, Recommender):
    """``r_ui ≈ μ + b_u + b_i``, biases by regularised ALS (Surprise ``BaselineOnly``, method 'als').

    Surprise's defaults are ``reg_user=15``, ``reg_item=10``; ours (5 and 3) won a grid on a
    validation split carved from the training part of an ML-100k fold (val RMSE 0.9465 vs 0.9512).
    Ranking: the score is the predicted rating, so within one user items are ordered by ``b_i``
    (a damped mean rating), the same "best rated" list for everyone. With light damping it is led
    by films with a handful of glowing ratings: NDCG@10 0.054 on ML-100k's random 80/20 split,
    against 0.171 for plain popularity.
    Fold-in re-solves the user's bias from all their ratings with item biases fixed.
    """

    name = "baseline"
    phase = 2
    predicts_ratings = True

    def __init__(self, reg_user: float = 5.0, reg_item: float = 3.0, n_epochs: int = 10) -> None:
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_epochs = n_epochs

    def _fit(self, users, items, ratings, data) -> None:
        require_non_negative(self.name, reg_user=self.reg_user, reg_item=self.reg_item)
        require_positive_int(self.name, n_epochs=self.n_epochs)
        shape = (len(self.user_ids_), len(self.item_ids_))
        self.history_ = rating_matrix(users, items, ratings, shape)
        self.rating_range_ = (float(ratings.min()), float(ratings.max()))
        self.titles_ = item_titles(data, self.item_ids_)
        self.user_bias_, self.item_bias_ = als_biases(users, items, ratings, *shape, self.global_mean_,
                                                      self.reg_user, self.reg_item, self.n_epochs)

    def _score_users(self, users):
        return self.global_mean_ + self.user_bias_[users, None] + self.item_bias_[None, :]

    def _predict(self, users, items):
        user_bias = np.where(users >= 0, self.user_bias_[np.maximum(users, 0)], 0.0)
        item_bias = np.where(items >= 0, self.item_bias_[np.maximum(items, 0)], 0.0)
        return np.clip(self.global_mean_ + user_bias + item_bias, *self.rating_range_)

    def explain(self, user, item):
        return f"rated above average by most people ({self.item_bias_[item]:+.2f} stars)"


    def _get_state(self):
        arrays = {"user_bias": self.user_bias_, "item_bias": self.item_bias_} | csr_to_arrays(self.history_, "history")
        return arrays, {"rating_range": list(self.rating_range_), "titles": self.titles_}

    def _set_state(self, arrays, meta) -> None:
        self.user_bias_, self.item_bias_ = arrays["user_bias"], arrays["item_bias"]
        self.history_ = csr_from_arrays(arrays, "history", (len(self.user_ids_), len(self.item_ids_)))
        self.rating_range_ = tuple(meta["rating_range"])
        self.titles_ = meta["titles"]
