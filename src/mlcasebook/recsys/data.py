"""Rating data for the recommender case: the shared table shape, loaders and validation.

Every loader returns a ``RatingData``:
- ``ratings``: columns ``user_id`` (int64), ``item_id`` (int64), ``rating`` (float64),
  ``timestamp`` (int64, Unix seconds); one row per (user, item).
- ``items``: indexed by ``item_id``; columns ``title`` (str), ``year`` (Int64, may be NA),
  ``genres``, ``directors``, ``actors`` (each a list of str, possibly empty).
- ``users``: optional side table indexed by ``user_id`` (ML-100k has age/gender/occupation).
- ``notes``: facts about the load worth reporting (e.g. the metadata match rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_LIST_COLUMNS = ["genres", "directors", "actors"]


@dataclass
class RatingData:
    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def with_ratings(self, rows: np.ndarray | pd.DataFrame) -> RatingData:
        """Same catalogue and users, a subset of the ratings (row positions or a frame)."""
        ratings = rows if isinstance(rows, pd.DataFrame) else self.ratings.iloc[rows]
        return replace(self, ratings=ratings.reset_index(drop=True))

    @property
    def n_users(self) -> int:
        return int(self.ratings["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.ratings["item_id"].nunique())

    def summary(self) -> dict[str, Any]:
        n = len(self.ratings)
        return {"dataset": self.name, "ratings": n, "users": self.n_users, "items": self.n_items,
                "density": n / max(1, self.n_users * self.n_items)} | self.notes
