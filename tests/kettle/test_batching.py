import itertools
import random

import pytest

from kettle.batching import plan_batches, windows


@pytest.mark.parametrize("seed", range(5))
def test_plan_covers_every_index_once_within_limits(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 300) for _ in range(rng.randint(1, 500))]
    batches = plan_batches(lengths, batch_size=32, token_budget=2048)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 32
        widest = max(lengths[i] for i in batch)
        assert widest * len(batch) <= 2048 or len(batch) == 1


def test_plan_groups_similar_lengths():
    lengths = [5, 200, 6, 201, 7, 199]
    batches = plan_batches(lengths, batch_size=3, token_budget=10_000)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[5, 6, 7], [199, 200, 201]]


def test_text_longer_than_budget_gets_its_own_batch():
    assert plan_batches([10, 5000, 10], batch_size=8, token_budget=100) == [[0, 2], [1]]


def test_plan_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([1, 2], batch_size=0)


def test_windows_are_lazy_and_bounded():
    consumed = []

    def source():
        for i in itertools.count():
            consumed.append(i)
            yield i

    it = windows(source(), size=10)
    assert next(it) == list(range(10))
    assert len(consumed) <= 11  # never more than one window (plus the lookahead) pulled
    assert next(it) == list(range(10, 20))


def test_windows_last_chunk_is_partial():
    assert list(windows(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
