"""Analyses shared by the retrieval-failure experiments (docs/science.md 4 items 7-9).

- :func:`auc` and :func:`goodman_kruskal_gamma`: how well a graded judgement (a
  feeling of knowing) predicts a binary outcome (later recognition), by ranks (the
  Mann-Whitney statistic), without scikit-learn; :func:`batched_auc_gamma` gives both for
  many subjects at once (one tensor of pair comparisons, no loop over subjects).
- :func:`wrap_angle` and :func:`fit_mixture_model`: the standard mixture model of
  continuous-report errors (Zhang & Luck 2008; as used by Berens, Richards & Horner 2020):
  a fraction ``p`` of responses comes from a von Mises distribution centred on the true
  angle with concentration ``kappa`` (the precision of what is retrieved), the rest from
  the uniform distribution on the circle (guesses),

      f(e) = p * exp(kappa cos e) / (2 pi I_0(kappa)) + (1 - p) / (2 pi),

  fitted by maximum likelihood with ``scipy.optimize`` from several starting points.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import optimize, special, stats

__all__ = [
    "auc",
    "goodman_kruskal_gamma",
    "batched_auc_gamma",
    "wrap_angle",
    "mixture_nll",
    "fit_mixture_model",
]


def auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of ``scores`` for the binary ``labels`` (1-D, same length).

    The Mann-Whitney form: ``AUC = (R_1 - n_1 (n_1 + 1) / 2) / (n_1 n_0)`` with ``R_1`` the
    sum of the (tie-averaged) ranks of the positive cases: the probability that a random
    positive scores above a random negative, ties counting one half. NaN when either class
    is empty.
    """
    s = np.asarray(torch.as_tensor(scores).detach().cpu(), dtype=np.float64).ravel()
    y = np.asarray(torch.as_tensor(labels).detach().cpu()).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"labels: expected shape {s.shape} like scores, got {y.shape}")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def goodman_kruskal_gamma(scores: Any, labels: Any) -> float:
    """Goodman-Kruskal gamma between a graded score and a binary outcome.

    ``gamma = (C - D) / (C + D)`` over positive-negative pairs (ties dropped); computed
    from concordant / discordant counts via ranks, so ``gamma = 2 AUC - 1`` when no
    scores tie. The statistic of the feeling-of-knowing literature.
    """
    s = np.asarray(torch.as_tensor(scores).detach().cpu(), dtype=np.float64).ravel()
    y = np.asarray(torch.as_tensor(labels).detach().cpu()).astype(bool).ravel()
    pos, neg = np.sort(s[y]), s[~y]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    below = np.searchsorted(pos, neg, side="left")  # positives < each negative
    above = pos.size - np.searchsorted(pos, neg, side="right")  # positives > each negative
    c, d = float(above.sum()), float(below.sum())
    return (c - d) / (c + d) if c + d > 0 else math.nan


def batched_auc_gamma(
    scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """AUC and Goodman-Kruskal gamma per row: ``scores, labels, mask [..., n] -> [...], [...]``.

    Over the pairs (positive i, negative j) of the cases in ``mask`` (default all) of each
    row, with ``C`` = pairs where the positive scores higher, ``D`` lower, ``T`` tied:

        AUC = (C + T / 2) / (C + D + T),      gamma = (C - D) / (C + D),

    the same numbers as :func:`auc` and :func:`goodman_kruskal_gamma` on each row alone.
    NaN where a row has no positive or no negative case (gamma also when ``C + D = 0``).
    Memory ``O(... n^2)``: meant for per-subject item sets (tens of items).
    """
    s = torch.as_tensor(scores, dtype=torch.float64)
    y = torch.as_tensor(labels).to(torch.bool)
    if y.shape != s.shape:
        raise ValueError(f"labels: expected shape {list(s.shape)} like scores, got {list(y.shape)}")
    m = torch.ones_like(y) if mask is None else torch.as_tensor(mask).to(torch.bool)
    if m.shape != s.shape:
        raise ValueError(f"mask: expected shape {list(s.shape)} like scores, got {list(m.shape)}")
    pos, neg = (y & m).double(), (~y & m).double()
    pair = pos[..., :, None] * neg[..., None, :]  # [..., n, n], positive i with negative j
    diff = s[..., :, None] - s[..., None, :]
    c = (pair * (diff > 0)).sum((-2, -1))
    d = (pair * (diff < 0)).sum((-2, -1))
    t = (pair * (diff == 0)).sum((-2, -1))
    n_pairs = c + d + t
    nan = torch.full_like(c, math.nan)
    auc_ = torch.where(n_pairs > 0, (c + 0.5 * t) / n_pairs.clamp(min=1), nan)
    gamma = torch.where(c + d > 0, (c - d) / (c + d).clamp(min=1), nan)
    return auc_, gamma


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles (radians) to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def mixture_nll(params: np.ndarray, errors: np.ndarray) -> float:
    """Negative log-likelihood of the uniform + von Mises mixture (module docstring).

    ``params = (logit p, log kappa)``; ``errors``: radians in ``[-pi, pi)``. Uses the
    exponentially scaled Bessel function ``i0e`` so large kappa does not overflow.
    """
    p = 1.0 / (1.0 + math.exp(-float(np.clip(params[0], -30, 30))))
    kappa = math.exp(float(np.clip(params[1], -10, 10)))
    # von Mises density: exp(kappa (cos e - 1)) / (2 pi i0e(kappa))
    vm = np.exp(kappa * (np.cos(errors) - 1.0)) / (2 * math.pi * special.i0e(kappa))
    like = p * vm + (1 - p) / (2 * math.pi)
    return float(-np.log(np.maximum(like, 1e-300)).sum())


def fit_mixture_model(
    errors: Any, starts: tuple[tuple[float, float], ...] | None = None
) -> tuple[float, float]:
    """Maximum-likelihood ``(p_retrieved, kappa)`` of the mixture model for ``errors`` [n].

    Nelder-Mead on ``(logit p, log kappa)`` from each of ``starts`` (``(p, kappa)`` pairs;
    default a 3 x 3 grid over p in {0.2, 0.5, 0.9} and kappa in {2, 10, 50}); the best
    optimum wins. ``p`` is in (0, 1) and ``kappa`` in [e^-10, e^10].
    """
    e = np.asarray(torch.as_tensor(errors).detach().cpu(), dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("errors: expected at least one error, got none")
    e = np.remainder(e + math.pi, 2 * math.pi) - math.pi
    if starts is None:
        starts = tuple((p, k) for p in (0.2, 0.5, 0.9) for k in (2.0, 10.0, 50.0))
    best: tuple[float, np.ndarray] | None = None
    for p0, k0 in starts:
        x0 = np.array([math.log(p0 / (1 - p0)), math.log(k0)])
        res = optimize.minimize(
            mixture_nll, x0, args=(e,), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6}
        )
        if best is None or res.fun < best[0]:
            best = (float(res.fun), res.x)
    assert best is not None
    x = np.clip(best[1], [-30, -10], [30, 10])
    return float(1.0 / (1.0 + math.exp(-x[0]))), float(math.exp(x[1]))
