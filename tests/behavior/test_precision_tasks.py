"""Tests for the continuous-report helpers (mixture model by batched EM, angle codes)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.behavior.precision_tasks import (
    a1,
    a1_inverse,
    angle_to_vector,
    fit_mixture_em,
    mixture_log_likelihood,
    vector_to_angle,
    wrapped_normal,
)
from kvmem.behavior.retrieval_tasks import fit_mixture_model


def _mixture_sample(p: float, kappa: float, n: int, seed: int) -> torch.Tensor:
    """``n`` errors: von Mises(0, kappa) with probability ``p``, else uniform."""
    torch.manual_seed(seed)  # VonMises.sample draws from the global generator
    vm = torch.distributions.VonMises(
        torch.tensor(0.0, dtype=torch.float64), torch.tensor(kappa, dtype=torch.float64)
    )
    e = vm.sample((n,))
    guess = torch.rand(n, dtype=torch.float64) > p
    uniform = (2 * torch.rand(n, dtype=torch.float64) - 1) * math.pi
    return torch.where(guess, uniform, e)


@given(st.floats(0.05, 300.0))
@settings(max_examples=40, deadline=None)
def test_a1_inverse_inverts_a1(kappa: float) -> None:
    k = torch.tensor([kappa], dtype=torch.float64)
    assert a1_inverse(a1(k)).item() == pytest.approx(kappa, rel=1e-6)


def test_a1_inverse_of_zero_resultant_is_no_concentration() -> None:
    assert a1_inverse(torch.tensor([0.0, -0.2], dtype=torch.float64)).max().item() < 1e-3


@given(st.floats(-math.pi + 1e-6, math.pi - 1e-6))
def test_angle_vector_round_trip(theta: float) -> None:
    t = torch.tensor([theta], dtype=torch.float64)
    assert vector_to_angle(angle_to_vector(t)).item() == pytest.approx(theta, abs=1e-12)


def test_vector_to_angle_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        vector_to_angle(torch.zeros(3, 3))


def test_wrapped_normal_has_the_expected_resultant_length() -> None:
    gen = torch.Generator().manual_seed(0)
    x = wrapped_normal(torch.zeros(200_000, dtype=torch.float64), 0.5, gen)
    assert x.abs().max().item() <= math.pi
    # mean resultant length of a wrapped normal: exp(-sd^2 / 2)
    assert torch.cos(x).mean().item() == pytest.approx(math.exp(-0.125), abs=5e-3)


def test_em_recovers_known_parameters() -> None:
    e = _mixture_sample(0.7, 8.0, 8000, seed=1)
    p, k = fit_mixture_em(e)
    assert p.item() == pytest.approx(0.7, abs=0.03)
    assert k.item() == pytest.approx(8.0, rel=0.12)


@given(st.floats(0.35, 0.98), st.floats(4.0, 60.0), st.integers(80, 400), st.integers(0, 10_000))
@settings(max_examples=10, deadline=None)
def test_em_reaches_the_nelder_mead_maximum(p: float, kappa: float, n: int, seed: int) -> None:
    """Batched EM and the Nelder-Mead fit of retrieval_tasks maximise the same likelihood."""
    e = _mixture_sample(p, kappa, n, seed)
    p_em, k_em = fit_mixture_em(e, n_iter=600)
    p_nm, k_nm = fit_mixture_model(e)
    ll_em = mixture_log_likelihood(e, p_em, k_em).item()
    ll_nm = mixture_log_likelihood(
        e, torch.tensor(p_nm, dtype=torch.float64), torch.tensor(k_nm, dtype=torch.float64)
    ).item()
    assert ll_em >= ll_nm - 1e-3
    assert p_em.item() == pytest.approx(p_nm, abs=0.02)
    assert k_em.item() == pytest.approx(k_nm, rel=0.05)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=2), st.integers(0, 1000))
@settings(max_examples=5, deadline=None)
def test_em_batched_equals_one_data_set_at_a_time(shape: list[int], seed: int) -> None:
    n = 60
    sets = [_mixture_sample(0.6, 6.0, n, seed + i) for i in range(math.prod(shape))]
    batch = torch.stack(sets).reshape(*shape, n)
    p_b, k_b = fit_mixture_em(batch, n_iter=100)
    assert p_b.shape == tuple(shape) and k_b.shape == tuple(shape)
    for i, e in enumerate(sets):
        p1, k1 = fit_mixture_em(e, n_iter=100)
        assert p_b.reshape(-1)[i].item() == pytest.approx(p1.item(), rel=1e-9)
        assert k_b.reshape(-1)[i].item() == pytest.approx(k1.item(), rel=1e-9)


def test_em_rejects_empty_errors() -> None:
    with pytest.raises(ValueError, match="errors"):
        fit_mixture_em(torch.zeros(3, 0))
