"""Tests for the linear-Gaussian factor model (probabilistic PCA) and its inference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.linear_gaussian import FactorModel


def _data(batch: tuple[int, ...], n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, d, generator=g, dtype=torch.float64)


def test_fit_recovers_the_ml_solution_of_a_planted_factor_model() -> None:
    """Data from x = z W + mu + eps: the fitted sigma^2 and W W^T match the truth."""
    g = torch.Generator().manual_seed(0)
    k, d, n, s2 = 3, 20, 20000, 0.1
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    x = z @ w + mu + s2**0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    m = FactorModel(k, noise_floor=1e-6).fit(x)
    assert float(m.noise) == pytest.approx(s2, rel=0.05)
    # W is identifiable up to a rotation of the latents: compare W^T W
    assert torch.allclose(m.weight.T @ m.weight, w.T @ w, atol=0.15 * float((w.T @ w).abs().max()))
    assert torch.allclose(m.mean, mu, atol=0.05)


def test_ml_noise_is_the_mean_discarded_eigenvalue() -> None:
    x = _data((), 50, 10, 1)
    m = FactorModel(4, noise_floor=1e-9).fit(x)
    xc = x - x.mean(0)
    lam = torch.linalg.eigvalsh(xc.T @ xc / 50).flip(0)
    assert float(m.noise) == pytest.approx(float(lam[4:].mean()), rel=1e-9)
    # W W^T eigenvalues are lambda_i - sigma^2 (Tipping & Bishop)
    ev = torch.linalg.eigvalsh(m.weight @ m.weight.T).flip(0)
    assert torch.allclose(ev, lam[:4] - m.noise, atol=1e-9)


def test_few_episodes_are_memorised_exactly() -> None:
    """With N <= k + 1 points the model spans them and reconstructs each from half of it."""
    x = _data((), 4, 12, 2)
    m = FactorModel(3, noise_floor=1e-6).fit(x)
    observed = torch.zeros(12, dtype=torch.bool)
    observed[:6] = True
    rec = m.reconstruct(m.posterior_mean(x * observed, observed))
    assert torch.allclose(rec, x, atol=1e-3)


def _energy(m: FactorModel, cues: torch.Tensor, observed: torch.Tensor, z: torch.Tensor):
    """E(z) = |o * (x - mu - z W)|^2 / (2 sigma^2) + |z|^2 / 2, per cue."""
    err = observed * (cues - m.mean.unsqueeze(-2) - z @ m.weight)
    return err.square().sum(-1) / (2 * m.noise[..., None]) + 0.5 * z.square().sum(-1)


@settings(max_examples=20, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    n=st.integers(2, 30),
    d=st.integers(4, 16),
    q=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_gradient_inference_descends_and_reaches_the_posterior_mean(
    batch: tuple[int, ...], n: int, d: int, q: int, seed: int
) -> None:
    """Preconditioned gradient steps on the prediction error never raise E(z), for any
    shapes and any pattern of observed entries, and converge to its exact minimiser."""
    k = max(1, d // 3)
    x = _data(batch, n, d, seed)
    # a noise floor of half the mean variance bounds the Hessian's condition number by
    # ~1 + 2 D, so 800 steps converge for every mask (the rate depends on the mask)
    m = FactorModel(k, noise_floor=0.5).fit(x)
    g = torch.Generator().manual_seed(seed + 1)
    cues = torch.randn(*batch, q, d, generator=g, dtype=torch.float64)
    observed = torch.rand(*batch, q, d, generator=g) < 0.6
    exact = m.posterior_mean(cues, observed)
    energies = torch.stack(
        [_energy(m, cues, observed, m.infer(cues, observed, steps=t)) for t in (0, 1, 2, 5, 20)]
    )
    assert bool((energies.diff(dim=0) <= 1e-9 * (1 + energies.abs()[1:])).all())
    z = m.infer(cues, observed, steps=800)
    assert torch.allclose(z, exact, atol=1e-6 * (1 + float(exact.abs().max())))


def test_plain_gradient_descent_converges_too() -> None:
    """Without the preconditioner, lr = 1 / L descends E for every mask (slower)."""
    x = _data((2,), 30, 10, 7)
    m = FactorModel(3, noise_floor=0.5).fit(x)
    g = torch.Generator().manual_seed(8)
    cues = torch.randn(2, 4, 10, generator=g, dtype=torch.float64)
    observed = torch.rand(2, 4, 10, generator=g) < 0.5
    exact = m.posterior_mean(cues, observed)
    z = m.infer(cues, observed, steps=3000, preconditioned=False)
    assert torch.allclose(z, exact, atol=1e-6)
    # a few steps are not enough: the check can fail
    assert not torch.allclose(m.infer(cues, observed, steps=2, preconditioned=False), exact)


def test_posterior_mean_is_the_energy_minimum() -> None:
    x = _data((), 40, 8, 3)
    m = FactorModel(2).fit(x)
    observed = torch.tensor([True] * 5 + [False] * 3)
    cue = x[:3] * observed
    z = m.posterior_mean(cue, observed).requires_grad_(True)
    err = observed * (cue - m.mean - z @ m.weight)
    energy = err.square().sum() / (2 * m.noise) + 0.5 * z.square().sum()
    (grad,) = torch.autograd.grad(energy, z)
    assert grad.abs().max() < 1e-9


def test_unobserved_entries_do_not_change_inference() -> None:
    x = _data((), 40, 8, 4)
    m = FactorModel(2).fit(x)
    observed = torch.tensor([True] * 4 + [False] * 4)
    a = x[:2].clone()
    b = a.clone()
    b[:, 4:] = 100.0
    assert torch.allclose(m.posterior_mean(a, observed), m.posterior_mean(b, observed))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_latent"):
        FactorModel(0)
    with pytest.raises(ValueError, match="noise_floor"):
        FactorModel(2, noise_floor=0.0)
    with pytest.raises(ValueError, match="not fitted"):
        FactorModel(2).posterior_mean(torch.zeros(1, 4), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="D > n_latent"):
        FactorModel(4).fit(torch.zeros(5, 4))
    m = FactorModel(2).fit(_data((), 10, 6, 5))
    with pytest.raises(TypeError, match="observed"):
        m.infer(torch.zeros(1, 6), torch.ones(6))
    with pytest.raises(ValueError, match="last dimension"):
        m.posterior_mean(torch.zeros(1, 5), torch.ones(5, dtype=torch.bool))
