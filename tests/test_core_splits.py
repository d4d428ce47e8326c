import numpy as np
import pandas as pd
import pytest

from mlcasebook.core import splits


def test_kfold_tests_every_row_once_and_is_seeded():
    folds = list(splits.kfold_indices(23, 5, seed=1))
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(23))
    for train, test in folds:
        assert not set(train) & set(test)
        assert len(train) + len(test) == 23
    again = list(splits.kfold_indices(23, 5, seed=1))
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    with pytest.raises(ValueError):
        list(splits.kfold_indices(3, 5))


def test_per_group_time_split_holds_out_each_groups_latest_rows():
    frame = pd.DataFrame({"user": [1] * 10 + [2] * 3 + [3], "t": list(range(10, 0, -1)) + [5, 6, 7] + [1]})
    train, test = splits.per_group_time_split(frame, "user", "t", 0.2)
    held = frame.iloc[test]
    # user 1: 2 of 10 rows, the two latest (t=10, 9); user 2: round(0.6)=1 row (t=7); user 3 keeps its only row
    assert sorted(held[held.user == 1].t) == [9, 10]
    assert held[held.user == 2].t.tolist() == [7]
    assert 3 not in set(held.user)
    assert len(train) + len(test) == len(frame)
    assert frame.iloc[train].groupby("user").t.max().le(frame.groupby("user").t.max()).all()


def test_leave_last_out_keeps_single_row_groups_in_train():
    frame = pd.DataFrame({"user": [1, 1, 1, 2], "t": [3, 1, 2, 9]})
    train, test = splits.leave_last_out(frame, "user", "t")
    assert test.tolist() == [0]
    assert train.tolist() == [1, 2, 3]


def test_random_holdout_fraction():
    train, test = splits.random_holdout(100, 0.25, seed=0)
    assert len(test) == 25 and len(train) == 75
    with pytest.raises(ValueError):
        splits.random_holdout(10, 1.5)
