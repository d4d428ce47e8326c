"""The estimator API every recommender follows (scikit-learn style).

``fit(data)`` learns from a ``RatingData``; learned state ends in ``_``; ``predict(user, item)``
gives a rating estimate; ``recommend(user, k)`` gives the top-k unseen items with a reason.
Public methods take raw ids (as in the data files); subclasses work on dense indices
(``0..n_users-1``, ``0..n_items-1``) and implement ``_fit``, ``_score_users`` and, for rating
models, ``_predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...core.errors import CasebookError

if TYPE_CHECKING:
    from ..data import RatingData


@dataclass(frozen=True)
class Recommendation:
    item_id: int
    score: float
    reason: str


class UnknownIdError(CasebookError, KeyError):
    """A user or item id the model has never seen (the API turns it into a 404)."""


class Recommender:
    """Base class. Subclasses set ``name`` and ``phase`` (1 rules, 2 CF, 3 deep) and implement
    ``_fit``/``_score_users`` (ranking) and ``_predict`` (rating models only)."""

    name: ClassVar[str] = "recommender"
    phase: ClassVar[int] = 0
    predicts_ratings: ClassVar[bool] = True

    # ---- public API (raw ids) -------------------------------------------------------------
    def fit(self, data: RatingData) -> Recommender:
        ratings = data.ratings
        if ratings.empty:
            raise CasebookError("cannot fit on an empty ratings table", hint="check the split / data file")
        self.user_ids_ = np.sort(ratings["user_id"].unique())
        self.item_ids_ = np.sort(data.items.index.to_numpy()) if data.items is not None and len(data.items) \
            else np.sort(ratings["item_id"].unique())
        self.item_ids_ = np.union1d(self.item_ids_, ratings["item_id"].unique())
        self._user_pos = pd.Index(self.user_ids_)
        self._item_pos = pd.Index(self.item_ids_)
        users = self._user_pos.get_indexer(ratings["user_id"])
        items = self._item_pos.get_indexer(ratings["item_id"])
        values = ratings["rating"].to_numpy(dtype=np.float64)
        self.global_mean_ = float(values.mean())
        self.seen_ = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)),
                                   shape=(len(self.user_ids_), len(self.item_ids_)))
        self._fit(users, items, values, data)
        return self

    def predict(self, user_id: Any, item_id: Any) -> float:
        return float(self.predict_many(np.array([user_id]), np.array([item_id]))[0])

    def predict_many(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Rating estimates; unknown users/items fall back to the model's own prior (global mean
        for most), never an error, so rating evaluation covers every test pair."""
        if not self.predicts_ratings:
            raise CasebookError(f"{self.name} ranks items but does not predict ratings")
        users = self._user_pos.get_indexer(np.asarray(user_ids))
        items = self._item_pos.get_indexer(np.asarray(item_ids))
        return self._predict(users, items)

    def score_users(self, user_ids: np.ndarray) -> np.ndarray:
        """Scores over all items (columns follow ``item_ids_``), shape (len(user_ids), n_items)."""
        return self._score_users(self._indices(user_ids))

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True) -> list[Recommendation]:
        user = self._index(user_id)
        scores = self._score_users(np.array([user]))[0].astype(np.float64, copy=True)
        if exclude_seen:
            scores[self.seen_.indices[self.seen_.indptr[user]:self.seen_.indptr[user + 1]]] = -np.inf
        top = _top_k(scores, k)
        return [Recommendation(int(self.item_ids_[i]), float(scores[i]), self.explain(user, int(i))) for i in top]

    def explain(self, user: int, item: int) -> str:
        """Human-readable reason for recommending dense ``item`` to dense ``user``."""
        return f"{self.name} score"

    def similar_items(self, item_id: Any, k: int = 10) -> list[Recommendation]:
        """Items most like ``item_id``; default: cosine similarity of who rated them."""
        item = self.item_index(item_id)
        sims = self._item_similarities(item).astype(np.float64, copy=True)
        sims[item] = -np.inf
        return [Recommendation(int(self.item_ids_[i]), float(sims[i]), "rated by the same people")
                for i in _top_k(sims, k)]

    def fold_in(self, user_id: Any, item_ids: np.ndarray, ratings: np.ndarray,
                timestamps: np.ndarray | None = None) -> None:
        """Real-time update: take this user's new ratings into account without retraining the
        catalogue. New users are added. ``item_ids`` must be known items."""
        item_ids = np.atleast_1d(np.asarray(item_ids))
        items = self._item_pos.get_indexer(item_ids)
        if (items < 0).any():
            raise UnknownIdError(f"unknown item id {item_ids[items < 0][0]!r}",
                                 hint="use an item id from the catalogue")
        ratings = np.asarray(ratings, dtype=np.float64).reshape(-1)
        stamps = None if timestamps is None else np.asarray(timestamps, dtype=np.int64).reshape(-1)
        if len(ratings) != len(items) or (stamps is not None and len(stamps) != len(items)):
            raise CasebookError("item_ids, ratings and timestamps must have the same length")
        pos = self._user_pos.get_indexer([user_id])[0]
        if pos < 0:
            self.user_ids_ = np.append(self.user_ids_, user_id)
            self._user_pos = pd.Index(self.user_ids_)
            self.seen_ = sp.vstack([self.seen_, sp.csr_matrix((1, len(self.item_ids_)), dtype=np.float32)]).tocsr()
            pos = len(self.user_ids_) - 1
            self._add_user()
        self.seen_ = _mark_seen(self.seen_, int(pos), items)
        self._fold_in(int(pos), items.astype(np.int64), ratings, stamps)

    def _item_similarities(self, item: int) -> np.ndarray:
        column = self.seen_[:, item]
        overlap = np.asarray((self.seen_.T @ column).todense()).ravel()
        counts = np.asarray(self.seen_.sum(axis=0)).ravel()
        return overlap / np.sqrt(np.maximum(counts * counts[item], 1.0))

    def _add_user(self) -> None:
        """Grow per-user state by one row (the new user is the last index)."""
        raise NotImplementedError(f"{self.name} cannot add users after fitting")

    def _fold_in(self, user: int, items: np.ndarray, ratings: np.ndarray, timestamps: np.ndarray | None) -> None:
        """Update per-user state from the user's new ratings (``seen_`` is already updated)."""
        raise NotImplementedError(f"{self.name} does not support real-time updates")

    # ---- persistence: arrays + JSON metadata through core.checkpoint (no pickle) ------------
    def save(self, path) -> None:
        from ...core.checkpoint import save_checkpoint

        arrays, meta = self._get_state()
        seen = self.seen_.tocoo()
        arrays = arrays | {"_user_ids": self.user_ids_, "_item_ids": self.item_ids_,
                           "_seen_rows": seen.row.astype(np.int64), "_seen_cols": seen.col.astype(np.int64)}
        save_checkpoint(path, arrays, {"model": self.name, "params": self.get_params(),
                                       "global_mean": self.global_mean_, "state": meta})

    @classmethod
    def load(cls, path) -> Recommender:
        from ...core.checkpoint import load_checkpoint

        arrays, meta = load_checkpoint(path)
        if meta.get("model") != cls.name:
            raise CasebookError(f"{path} holds a '{meta.get('model')}' model, not '{cls.name}'")
        model = cls(**meta["params"])
        model.user_ids_, model.item_ids_ = arrays.pop("_user_ids"), arrays.pop("_item_ids")
        model._user_pos, model._item_pos = pd.Index(model.user_ids_), pd.Index(model.item_ids_)
        rows, cols = arrays.pop("_seen_rows"), arrays.pop("_seen_cols")
        model.seen_ = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                    shape=(len(model.user_ids_), len(model.item_ids_)))
        model.global_mean_ = meta["global_mean"]
        model._set_state(arrays, meta["state"])
        return model

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters: the ``__init__`` arguments, stored as attributes of the same name."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Learned arrays and JSON-able extras (beyond id maps and ``seen_``)."""
        raise NotImplementedError(f"{self.name} cannot be saved yet")

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---- for subclasses -------------------------------------------------------------------
    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, data: RatingData) -> None:
        raise NotImplementedError

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Dense indices, -1 for unknown ids."""
        raise NotImplementedError

    def _index(self, user_id: Any) -> int:
        pos = self._user_pos.get_indexer([user_id])[0]
        if pos < 0:
            raise UnknownIdError(f"unknown user id {user_id!r}", hint="create the user first (POST /users)")
        return int(pos)

    def _indices(self, user_ids: np.ndarray) -> np.ndarray:
        pos = self._user_pos.get_indexer(np.asarray(user_ids))
        if (pos < 0).any():
            raise UnknownIdError(f"unknown user ids: {np.asarray(user_ids)[pos < 0][:5].tolist()}")
        return pos

    def item_index(self, item_id: Any) -> int:
        pos = self._item_pos.get_indexer([item_id])[0]
        if pos < 0:
            raise UnknownIdError(f"unknown item id {item_id!r}", hint="use an item id from the catalogue")
        return int(pos)


def _mark_seen(seen: sp.csr_matrix, row: int, items: np.ndarray) -> sp.csr_matrix:
    """``seen`` with ``items`` set in ``row``, splicing one CSR row (a LIL round trip costs
    milliseconds per rating on a live service)."""
    start, end = seen.indptr[row], seen.indptr[row + 1]
    new = np.setdiff1d(items, seen.indices[start:end])
    if not len(new):
        return seen
    merged = np.sort(np.concatenate([seen.indices[start:end], new]))
    indices = np.concatenate([seen.indices[:start], merged, seen.indices[end:]])
    indptr = seen.indptr.copy()
    indptr[row + 1:] += len(new)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=seen.shape)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.array([], dtype=int)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]
