import numpy as np
import pytest

from kettle.pooling import cls_pool, mean_pool, normalize, pool, splade_pool


def test_mean_pool_ignores_padding():
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    out = mean_pool(hidden, mask)
    np.testing.assert_allclose(out[0], hidden[0, :2].mean(axis=0))
    np.testing.assert_allclose(out[1], hidden[1, 0])


def test_cls_pool_takes_first_token():
    hidden = np.random.default_rng(0).normal(size=(3, 4, 5))
    np.testing.assert_array_equal(cls_pool(hidden), hidden[:, 0])


def test_splade_pool_is_masked_max_of_log1p_relu():
    logits = np.array([[[1.0, -2.0], [3.0, 0.5], [9.0, 9.0]]])
    mask = np.array([[1, 1, 0]])
    out = splade_pool(logits, mask)
    np.testing.assert_allclose(out, [[np.log1p(3.0), np.log1p(0.5)]])


def test_normalize_unit_rows_and_zero_row():
    v = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(v), [[0.6, 0.8], [0.0, 0.0]])


def test_pool_dispatch_and_passthrough():
    hidden = np.ones((2, 3, 4))
    mask = np.ones((2, 3))
    assert pool("mean", hidden, mask).shape == (2, 4)
    pooled = np.ones((2, 4))
    assert pool("eos", pooled, mask) is pooled  # already pooled by the graph
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        pool("max", hidden, mask)
