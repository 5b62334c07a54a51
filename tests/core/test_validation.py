import numpy as np
import pytest
import torch

from kvmem.core.validation import (
    as_float_tensor,
    check_dim,
    check_int_at_least,
    check_positive,
)


def test_numpy_keeps_float64():
    t = as_float_tensor(np.zeros((2, 3)), "keys")
    assert t.dtype == torch.float64 and t.shape == (2, 3)


def test_like_moves_dtype():
    like = torch.zeros(1, dtype=torch.float32)
    assert as_float_tensor(np.ones((2, 2)), "q", like=like).dtype == torch.float32


@pytest.mark.parametrize("bad", [np.array([[1, 2]]), torch.tensor([[True]])])
def test_integer_rejected_with_name(bad):
    with pytest.raises(TypeError, match="keys: expected a floating dtype"):
        as_float_tensor(bad, "keys")


def test_integer_allowed_when_asked():
    assert as_float_tensor(np.array([[1, -1]]), "p", allow_integer=True).is_floating_point()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_rejected(value):
    with pytest.raises(ValueError, match="values: contains 1 NaN or Inf"):
        as_float_tensor(torch.tensor([[0.0, value]]), "values")


def test_min_ndim_and_type():
    with pytest.raises(ValueError, match=r"queries: expected at least 2 .* got shape \[3\]"):
        as_float_tensor(torch.zeros(3), "queries", min_ndim=2)
    with pytest.raises(TypeError, match="queries: expected a torch.Tensor"):
        as_float_tensor("abc", "queries")


def test_check_dim_message_has_both_shapes():
    with pytest.raises(ValueError, match=r"expected d_k = 4 .* got shape \[2, 3\]"):
        check_dim(torch.zeros(2, 3), -1, 4, "queries", "d_k")


def test_scalars():
    assert check_positive(2, "beta") == 2.0
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            check_positive(bad, "beta")
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        check_int_at_least(0, 1, "k")
    with pytest.raises(TypeError, match="k"):
        check_int_at_least(1.5, 1, "k")


def test_overflowing_sum_of_finite_values_is_accepted():
    big = torch.full((4,), 60000.0, dtype=torch.float16)  # the sum overflows float16
    assert not torch.isfinite(big.sum())
    assert as_float_tensor(big, "x") is big


def test_check_positive_rejects_bool():
    with pytest.raises(TypeError, match="beta: expected a positive number, got True"):
        check_positive(True, "beta")


def test_broadcast_shapes_equals_torch() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from kvmem.core.validation import broadcast_shapes

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.lists(st.integers(0, 3), max_size=4), min_size=1, max_size=4))
    def check(shapes: list[list[int]]) -> None:
        try:
            ref = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                broadcast_shapes(*shapes)
            return
        assert broadcast_shapes(*shapes) == ref

    check()
