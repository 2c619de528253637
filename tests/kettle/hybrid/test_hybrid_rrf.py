"""reciprocal_rank_fusion against scores worked out by hand."""

from __future__ import annotations

import pytest

from kettle.hybrid import reciprocal_rank_fusion


def test_two_lists_by_hand():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60))
    assert fused == pytest.approx(
        {"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 63 + 1 / 62, "d": 1 / 63}
    )
    order = [item for item, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])]
    assert order == ["b", "c", "a", "d"]


def test_weights_k_and_top_k():
    rankings = [["x", "y"], ["y", "x"]]
    # equal weights tie; the id met first wins the tie
    assert [i for i, _ in reciprocal_rank_fusion(rankings)] == ["x", "y"]
    weighted = reciprocal_rank_fusion(rankings, k=1, weights=[1.0, 3.0])
    # y: rank 2 in list 1, rank 1 in list 2 (weight 3); x the other way round
    assert weighted == [("y", pytest.approx(1 / 3 + 3 / 2)), ("x", pytest.approx(1 / 2 + 3 / 3))]
    assert reciprocal_rank_fusion(rankings, top_k=1) == reciprocal_rank_fusion(rankings)[:1]
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([["a"], ["b"]], weights=[0.0, 1.0]) == [("b", 1 / 61)]
    assert reciprocal_rank_fusion([iter([1, 2]), (3,)], k=1) == [
        (1, pytest.approx(1 / 2)),
        (3, pytest.approx(1 / 2)),
        (2, pytest.approx(1 / 3)),
    ]


def test_a_repeated_id_counts_once_at_its_best_rank():
    assert reciprocal_rank_fusion([["a", "a", "b"]], k=10) == [
        ("a", pytest.approx(1 / 11)),
        ("b", pytest.approx(1 / 13)),
    ]


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be positive"):
        reciprocal_rank_fusion([["a"]], k=0)
    with pytest.raises(ValueError, match="1 weights for 2 rankings"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
    with pytest.raises(ValueError, match=r"weights\[1\] is negative"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0, -1.0])
