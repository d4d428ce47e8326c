"""Open-source peers wrapped in our `Recommender` API so the very same protocol code measures them.

Surprise is a benchmark-only dependency (extra `bench`); `implicit` ALS is used exactly as its
users use it: binary interactions, library defaults apart from the factor count.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlcasebook.recsys.models.base import Recommender


class SurprisePeer(Recommender):
    """Any Surprise algorithm, trained on the same rows; ranks by predicted rating."""

    phase = 2

    def __init__(self, algorithm: str = "SVD", options: dict | None = None, seed: int = 0):
        self.algorithm = algorithm
        self.options = options or {}
        self.seed = seed

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"surprise-{self.algorithm}"

    def _fit(self, users, items, ratings, data) -> None:
        import pandas as pd
        import surprise

        frame = pd.DataFrame({"u": users, "i": items, "r": ratings})
        low, high = float(ratings.min()), float(ratings.max())
        trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(low, high))).build_full_trainset()
        options = {"verbose": False} | dict(self.options)
        if self.algorithm in {"SVD", "SVDpp", "NMF"}:
            options.setdefault("random_state", self.seed)
        self.algo_ = getattr(surprise, self.algorithm)(**options)
        self.algo_.fit(trainset)
        self.trainset_ = trainset

    def _predict(self, users, items):
        return np.array([self.algo_.predict(int(u), int(i), clip=True).est for u, i in zip(users, items, strict=True)])

    def _score_users(self, users):
        n_items = len(self.item_ids_)
        grid_users = np.repeat(users, n_items)
        grid_items = np.tile(np.arange(n_items), len(users))
        return self._predict(grid_users, grid_items).reshape(len(users), n_items)


class ImplicitALSPeer(Recommender):
    """`implicit`'s ALS on binary interactions (every rating counts as a view)."""

    name = "implicit-als"
    phase = 2
    predicts_ratings = False

    def __init__(self, factors: int = 64, seed: int = 0):
        self.factors = factors
        self.seed = seed

    def _fit(self, users, items, ratings, data) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        matrix = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=self.seen_.shape)
        self.model_ = AlternatingLeastSquares(factors=self.factors, random_state=self.seed, num_threads=1)
        self.model_.fit(matrix, show_progress=False)

    def _score_users(self, users):
        return self.model_.user_factors[users] @ self.model_.item_factors.T
