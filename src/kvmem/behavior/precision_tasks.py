"""Continuous-report helpers for accessibility versus precision (docs/science.md 4.8).

- :func:`angle_to_vector` / :func:`vector_to_angle`: a location on a circle stored as a
  value ``v = (cos theta, sin theta)`` and read back with ``atan2``.
- :func:`wrapped_normal`: angles plus Gaussian noise, wrapped to ``[-pi, pi)`` (encoding
  noise and the diffusion of a decaying stored value; seeded by a ``torch.Generator``).
- :func:`a1_inverse`: the inverse of ``A_1(kappa) = I_1(kappa) / I_0(kappa)``, the mean
  resultant length of a von Mises distribution, batched.
- :func:`fit_mixture_em`: the standard mixture model of continuous-report errors (Zhang &
  Luck 2008), fitted by expectation-maximisation *batched over any leading dimensions*
  (subjects x delays x models in one tensor), so per-subject fits need no Python loop over
  subjects. It maximises the same likelihood as
  :func:`kvmem.behavior.retrieval_tasks.fit_mixture_model` (Nelder-Mead, one data set at a
  time); the tests check the two agree.

The mixture density of an error ``e`` (mean fixed at the true angle, as in Zhang & Luck):

    f(e) = p * exp(kappa cos e) / (2 pi I_0(kappa)) + (1 - p) / (2 pi).
"""

from __future__ import annotations

import math

import torch

from kvmem.behavior.retrieval_tasks import wrap_angle

__all__ = [
    "angle_to_vector",
    "vector_to_angle",
    "wrapped_normal",
    "a1",
    "a1_inverse",
    "mixture_log_likelihood",
    "fit_mixture_em",
]

_KAPPA_MIN = 1e-6


def angle_to_vector(theta: torch.Tensor) -> torch.Tensor:
    """Angles ``[...]`` (radians) to unit vectors ``[..., 2] = (cos theta, sin theta)``."""
    return torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)


def vector_to_angle(v: torch.Tensor) -> torch.Tensor:
    """Vectors ``[..., 2]`` to their angles ``[...]`` in ``[-pi, pi]`` (``atan2(y, x)``)."""
    if v.shape[-1] != 2:
        raise ValueError(f"v: expected shape [..., 2], got {list(v.shape)}")
    return torch.atan2(v[..., 1], v[..., 0])


def wrapped_normal(
    theta: torch.Tensor, sd: torch.Tensor | float, gen: torch.Generator
) -> torch.Tensor:
    """``wrap(theta + sd * z)``, ``z`` standard normal (``sd`` broadcasts against ``theta``).

    A wrapped normal of variance ``sd^2`` is close to a von Mises of ``kappa ~ 1 / sd^2`` when
    ``sd`` is small (``A_1(kappa) = exp(-sd^2 / 2)`` matches them exactly).
    """
    z = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
    return wrap_angle(theta + torch.as_tensor(sd, dtype=theta.dtype) * z)


def a1(kappa: torch.Tensor) -> torch.Tensor:
    """``A_1(kappa) = I_1(kappa) / I_0(kappa)`` (exponentially scaled Bessels: no overflow)."""
    return torch.special.i1e(kappa) / torch.special.i0e(kappa)


def a1_inverse(r: torch.Tensor, kappa_max: float = 1e4, newton_steps: int = 4) -> torch.Tensor:
    """``kappa`` with ``A_1(kappa) = r`` for mean resultant lengths ``r [...]``.

    Starts from the piecewise approximation of Fisher (1993, eq. 4.40) and refines it with
    Newton steps on ``A_1(kappa) - r`` (``A_1' = 1 - A_1 / kappa - A_1^2``). ``r <= 0`` gives
    ``kappa ~ 0`` (no concentration); the result is clamped to ``[1e-6, kappa_max]``.
    """
    r = r.clamp(0.0, 1.0 - 1e-12)
    k = torch.where(
        r < 0.53,
        2 * r + r**3 + 5 * r**5 / 6,
        torch.where(r < 0.85, -0.4 + 1.39 * r + 0.43 / (1 - r), 1 / (r**3 - 4 * r**2 + 3 * r)),
    ).clamp(_KAPPA_MIN, kappa_max)
    for _ in range(newton_steps):
        a = a1(k)
        slope = (1 - a / k - a**2).clamp(min=1e-12)
        k = (k - (a - r) / slope).clamp(_KAPPA_MIN, kappa_max)
    return k


def _vm_density(e: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """von Mises density at ``e`` with mean 0: ``exp(kappa (cos e - 1)) / (2 pi i0e(kappa))``."""
    k = kappa.unsqueeze(-1)
    return torch.exp(k * (torch.cos(e) - 1)) / (2 * math.pi * torch.special.i0e(k))


def mixture_log_likelihood(
    errors: torch.Tensor, p: torch.Tensor, kappa: torch.Tensor
) -> torch.Tensor:
    """Summed log-likelihood ``[...]`` of ``errors [..., n]`` under the mixture (module doc)."""
    e = wrap_angle(errors)
    like = p.unsqueeze(-1) * _vm_density(e, kappa) + (1 - p.unsqueeze(-1)) / (2 * math.pi)
    return torch.log(like.clamp(min=1e-300)).sum(-1)


def fit_mixture_em(
    errors: torch.Tensor, n_iter: int = 300, kappa_max: float = 1e4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood ``(p, kappa)``, each ``[...]``, for ``errors [..., n]`` by EM.

    E-step: responsibilities ``r_i = p f_vm(e_i) / (p f_vm(e_i) + (1 - p) / 2 pi)``.
    M-step: ``p = mean_i r_i`` and ``kappa = A_1^{-1}(sum_i r_i cos e_i / sum_i r_i)`` (the
    von Mises MLE with the mean fixed at 0, weighted by the responsibilities). Every
    leading index is an independent data set, fitted at once. Starts at ``p = 0.5, kappa =
    5``; ``n_iter`` EM steps (each never lowers the likelihood).
    """
    if errors.ndim < 1 or errors.shape[-1] < 1:
        raise ValueError(f"errors: expected shape [..., n] with n >= 1, got {list(errors.shape)}")
    e = wrap_angle(errors.to(torch.float64))
    cos_e = torch.cos(e)
    p = torch.full(e.shape[:-1], 0.5, dtype=e.dtype)
    kappa = torch.full(e.shape[:-1], 5.0, dtype=e.dtype)
    for _ in range(n_iter):  # EM iterations (a loop over steps, batched over data sets)
        vm = p.unsqueeze(-1) * _vm_density(e, kappa)
        resp = vm / (vm + (1 - p.unsqueeze(-1)) / (2 * math.pi))
        mass = resp.sum(-1)
        p = (mass / e.shape[-1]).clamp(1e-9, 1 - 1e-9)
        r_bar = (resp * cos_e).sum(-1) / mass.clamp(min=1e-12)
        kappa = a1_inverse(r_bar, kappa_max=kappa_max)
    return p, kappa
