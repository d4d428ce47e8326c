"""Metrics against values worked out by hand."""

import math

import pytest

from mlcasebook.core import metrics


def test_rmse_and_mae_by_hand():
    # errors 1, -2, 0 -> squared 1, 4, 0 -> mean 5/3
    assert metrics.rmse([3, 4, 5], [4, 2, 5]) == pytest.approx(math.sqrt(5 / 3))
    assert metrics.mae([3, 4, 5], [4, 2, 5]) == pytest.approx(1.0)


def test_rmse_rejects_mismatched_or_empty():
    with pytest.raises(ValueError):
        metrics.rmse([1, 2], [1])
    with pytest.raises(ValueError):
        metrics.mae([], [])


def test_ranking_metrics_by_hand():
    ranked = ["a", "b", "c", "d", "e"]
    relevant = {"b", "e", "z"}
    # top-3 holds b only
    assert metrics.hit_rate_at_k(ranked, relevant, 3) == 1.0
    assert metrics.hit_rate_at_k(ranked, relevant, 1) == 0.0
    assert metrics.precision_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, relevant, 5) == pytest.approx(2 / 3)
    # DCG@5 = 1/log2(3) + 1/log2(6); ideal with 3 relevant = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg_at_k(ranked, relevant, 5) == pytest.approx(dcg / ideal)


def test_ndcg_is_one_for_a_perfect_list_and_zero_without_hits():
    assert metrics.ndcg_at_k([1, 2, 3], {1, 2}, 3) == pytest.approx(1.0)
    assert metrics.ndcg_at_k([4, 5, 6], {1, 2}, 3) == 0.0
    assert metrics.ndcg_at_k([1, 2], set(), 3) == 0.0


def test_precision_counts_k_slots_even_for_a_short_list():
    assert metrics.precision_at_k([1], {1}, 4) == pytest.approx(0.25)


def test_catalogue_coverage_by_hand():
    assert metrics.catalogue_coverage([[1, 2], [2, 3]], 10) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        metrics.catalogue_coverage([[1]], 0)


def test_ranking_report_averages_over_users_with_relevant_items():
    ranked = {1: [10, 11], 2: [12, 13], 3: [14, 15]}
    relevant = {1: {10}, 2: {99}, 3: set()}  # user 3 has nothing relevant: skipped
    report = metrics.ranking_report(ranked, relevant, 2, catalogue_size=8)
    assert report["users"] == 2
    assert report["hr@2"] == pytest.approx(0.5)
    assert report["ndcg@2"] == pytest.approx(0.5)
    assert report["coverage@2"] == pytest.approx(4 / 8)
