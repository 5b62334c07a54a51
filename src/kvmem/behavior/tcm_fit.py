"""Maximum-likelihood fit of the temporal context model (:mod:`kvmem.behavior.tcm`).

The objective is the negative log-likelihood of every recorded recall sequence, stops
included, ``-sum_t log L_t(theta)`` (:func:`kvmem.behavior.tcm.log_likelihood`, batched
over trials). It is minimised with ``scipy.optimize.minimize(method="L-BFGS-B")`` inside
the box :data:`kvmem.behavior.tcm.BOUNDS`, with exact gradients from torch autograd, from
``n_starts`` starting points drawn uniformly in the box by ``numpy.random.default_rng(seed)``
(multi-start: the best end point wins). Deterministic for a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize

from kvmem.behavior.tcm import BOUNDS, PARAM_NAMES, log_likelihood

__all__ = ["FitResult", "negative_log_likelihood", "fit_mle"]


def _silent(iterable: Iterable[Any], *, total: int | None = None, desc: str = "") -> Iterator[Any]:
    yield from iterable


@dataclass
class FitResult:
    """Best parameters, their negative log-likelihood, and each start's end value."""

    params: dict[str, float]
    nll: float
    start_nlls: list[float] = field(default_factory=list)
    n_evaluations: int = 0


def _as_params(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: x[i] for i, name in enumerate(PARAM_NAMES)}


def negative_log_likelihood(
    params: dict[str, float], recalls: torch.Tensor, list_length: int
) -> float:
    """``-sum_t log L_t`` of the recall matrix ``recalls [T, R]`` under ``params``."""
    return float(-log_likelihood(params, recalls, list_length).sum())


def fit_mle(
    recalls: torch.Tensor,
    list_length: int,
    n_starts: int = 8,
    seed: int = 0,
    max_iter: int = 300,
    progress: Callable[..., Iterable[Any]] = _silent,
) -> FitResult:
    """Multi-start L-BFGS-B maximum-likelihood fit (module doc); returns the best start."""
    recalls = torch.as_tensor(recalls, dtype=torch.int64)
    lo = np.array([BOUNDS[n][0] for n in PARAM_NAMES])
    hi = np.array([BOUNDS[n][1] for n in PARAM_NAMES])
    rng = np.random.default_rng(seed)
    starts = lo + (hi - lo) * rng.uniform(0.05, 0.95, size=(n_starts, len(PARAM_NAMES)))
    count = 0

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal count
        count += 1
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        nll = -log_likelihood(_as_params(xt), recalls, list_length).sum()
        if not torch.isfinite(nll):
            return 1e12, np.zeros_like(x)
        (grad,) = torch.autograd.grad(nll, xt)
        return float(nll), grad.numpy().copy()

    best_x, best_f, ends = None, np.inf, []
    for x0 in progress(starts, total=n_starts, desc="fit starts"):
        res = minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lo, hi, strict=True)),
            options={"maxiter": max_iter},
        )
        ends.append(float(res.fun))
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    assert best_x is not None
    params = {n: float(v) for n, v in zip(PARAM_NAMES, best_x, strict=True)}
    return FitResult(params=params, nll=best_f, start_nlls=ends, n_evaluations=count)
