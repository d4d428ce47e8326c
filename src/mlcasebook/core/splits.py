"""Train/test splits over tables of interactions, reproducible from a seed.

Every function returns row positions (numpy arrays) so callers keep their own table type.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd


def kfold_indices(n_rows: int, n_folds: int = 5, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled K-fold over rows; every row is tested exactly once."""
    if not 2 <= n_folds <= n_rows:
        raise ValueError(f"n_folds must be between 2 and the number of rows ({n_rows}), got {n_folds}")
    order = np.random.default_rng(seed).permutation(n_rows)
    for fold in np.array_split(order, n_folds):
        test = np.sort(fold)
        train = np.setdiff1d(np.arange(n_rows), test, assume_unique=True)
        yield train, test


def random_holdout(n_rows: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One random split of rows."""
    _check_fraction(test_fraction)
    order = np.random.default_rng(seed).permutation(n_rows)
    n_test = int(round(n_rows * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def per_group_time_split(
    frame: pd.DataFrame, group: str, time: str, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """The last ``test_fraction`` of each group's rows in time go to test (at least one row
    stays in train). Ties in time are broken by row order so the split is deterministic."""
    _check_fraction(test_fraction)
    ordered = frame[[group, time]].reset_index(drop=True)
    ordered["_pos"] = np.arange(len(ordered))
    ordered = ordered.sort_values([group, time, "_pos"], kind="mergesort")
    rank = ordered.groupby(group).cumcount().to_numpy()
    size = ordered.groupby(group)[group].transform("size").to_numpy()
    n_test = np.minimum(np.floor(size * test_fraction + 0.5).astype(int), size - 1)
    is_test = rank >= size - n_test
    positions = ordered["_pos"].to_numpy()
    return np.sort(positions[~is_test]), np.sort(positions[is_test])


def leave_last_out(frame: pd.DataFrame, group: str, time: str) -> tuple[np.ndarray, np.ndarray]:
    """Each group's latest row is the test row (groups with a single row stay in train)."""
    ordered = frame[[group, time]].reset_index(drop=True)
    ordered["_pos"] = np.arange(len(ordered))
    ordered = ordered.sort_values([group, time, "_pos"], kind="mergesort")
    size = ordered.groupby(group)[group].transform("size").to_numpy()
    is_last = (ordered.groupby(group).cumcount(ascending=False).to_numpy() == 0) & (size > 1)
    positions = ordered["_pos"].to_numpy()
    return np.sort(positions[~is_last]), np.sort(positions[is_last])


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test fraction must lie strictly between 0 and 1, got {fraction}")
