"""The comparison helper: dtype-derived tolerances and failure messages that show the gap."""

from __future__ import annotations

import pytest
import torch

from tests.numerics import ULPS, assert_close, tolerances


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tolerance_is_a_multiple_of_the_dtype_eps_and_grows_with_stages(dtype):
    eps = torch.finfo(dtype).eps
    assert tolerances(dtype) == (ULPS * eps, ULPS * eps)
    assert tolerances(dtype, stages=3)[0] == pytest.approx(3 * ULPS * eps)


def test_rounding_passes_and_a_real_gap_fails_with_the_greatest_difference_and_the_name():
    expected = torch.linspace(-2, 2, 101, dtype=torch.float32)
    assert_close(expected + 4 * torch.finfo(torch.float32).eps, expected)
    off = expected.clone()
    off[50] += 1.41e-5  # where expected is 0, so only atol allows for it
    with pytest.raises(AssertionError) as failure:
        assert_close(off, expected, name="layer.weight")
    message = str(failure.value)
    assert "layer.weight" in message and "Greatest absolute difference" in message
    assert "at index (50,)" in message
    assert_close(off, expected, stages=6)


def test_integers_compare_exactly():
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1, 2]), torch.tensor([1, 3]))
