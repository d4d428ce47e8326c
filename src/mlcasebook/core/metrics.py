"""Rating and ranking metrics, written once for every case.

Ranking metrics take a ranked list of item ids and the set of relevant ids for one user; the
``mean_*`` helpers average over users, skipping users without relevant items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def hit_rate_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """1 if any of the top-k items is relevant, else 0."""
    rel = set(relevant)
    return float(any(item in rel for item in list(ranked)[:k]))


def precision_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Relevant items among the top k, divided by k (a short list still counts k slots)."""
    rel = set(relevant)
    return sum(item in rel for item in list(ranked)[:k]) / k


def recall_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Relevant items among the top k, divided by all relevant items."""
    rel = set(relevant)
    if not rel:
        return 0.0
    return sum(item in rel for item in list(ranked)[:k]) / len(rel)


def ndcg_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    """Binary-relevance NDCG: DCG of the top k over the DCG of a perfect top k."""
    rel = set(relevant)
    if not rel:
        return 0.0
    gains = [1.0 / np.log2(pos + 2) for pos, item in enumerate(list(ranked)[:k]) if item in rel]
    ideal = sum(1.0 / np.log2(pos + 2) for pos in range(min(len(rel), k)))
    return float(sum(gains) / ideal)


def catalogue_coverage(recommendation_lists: Iterable[Sequence], catalogue_size: int) -> float:
    """Share of the catalogue that appears in at least one user's list."""
    if catalogue_size <= 0:
        raise ValueError("catalogue_size must be positive")
    shown = set()
    for items in recommendation_lists:
        shown.update(items)
    return len(shown) / catalogue_size


def ranking_report(
    ranked_by_user: dict, relevant_by_user: dict, k: int, catalogue_size: int
) -> dict[str, float]:
    """HR/NDCG/precision/recall@k averaged over users with at least one relevant item, plus coverage."""
    users = [u for u, rel in relevant_by_user.items() if len(rel) and u in ranked_by_user]
    if not users:
        raise ValueError("no user has both a ranking and at least one relevant item")
    out = {
        f"hr@{k}": np.mean([hit_rate_at_k(ranked_by_user[u], relevant_by_user[u], k) for u in users]),
        f"ndcg@{k}": np.mean([ndcg_at_k(ranked_by_user[u], relevant_by_user[u], k) for u in users]),
        f"precision@{k}": np.mean([precision_at_k(ranked_by_user[u], relevant_by_user[u], k) for u in users]),
        f"recall@{k}": np.mean([recall_at_k(ranked_by_user[u], relevant_by_user[u], k) for u in users]),
        f"coverage@{k}": catalogue_coverage((list(ranked_by_user[u])[:k] for u in users), catalogue_size),
    }
    return {name: float(value) for name, value in out.items()} | {"users": len(users)}


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"need two non-empty arrays of one shape, got {t.shape} and {p.shape}")
    return t, p
