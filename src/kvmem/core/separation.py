"""Separation operators sigma(s): how sharply the best-matching memories win (docs/science.md 1.2).

Every operator maps scores ``[..., Q, N]`` (from a similarity kernel) to read weights of the
same shape, acting along the last axis (over memories). The taxonomy follows Millidge et al.
2022 ("universal Hopfield networks"): identity (linear / correlation-matrix memory), softmax
(modern Hopfield, attention), hard max (nearest neighbour), top-k, rectified polynomial (dense
associative memory), threshold (Kanerva's sparse distributed memory) and sparsemax.

>>> import torch
>>> from kvmem.core.separation import get_separation
>>> get_separation("top_k", k=2)(torch.tensor([[3.0, 1.0, 2.0]]))
tensor([[0.5000, 0.0000, 0.5000]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from kvmem.core._named import resolve
from kvmem.core.validation import as_float_tensor, check_int_at_least, check_positive

__all__ = [
    "Separation",
    "identity",
    "softmax",
    "hard_max",
    "top_k",
    "polynomial",
    "threshold",
    "sparsemax",
    "SEPARATIONS",
    "ALIASES",
    "get_separation",
    "separation_name",
    "canonical_separation_name",
]

Separation = Callable[[torch.Tensor], torch.Tensor]


def _scores(s: Any) -> torch.Tensor:
    """Accept a tensor (as is) or array-like scores with at least one axis."""
    if not isinstance(s, torch.Tensor):
        s = as_float_tensor(s, "scores", min_ndim=1, check_values=False)
    if s.ndim < 1:
        raise ValueError("scores: expected shape [..., N], got a 0-dimensional tensor")
    return s


def _check_power(n: Any) -> float | int:
    """``n`` must be a finite real number >= 1 (an integer for the classical DAM)."""
    if isinstance(n, bool):
        raise TypeError(f"n: expected a number >= 1, got {n!r}")
    try:
        v = float(n)
    except (TypeError, ValueError):
        raise TypeError(f"n: expected a number >= 1, got {n!r}") from None
    if not math.isfinite(v) or v < 1:
        raise ValueError(f"n: expected a number >= 1, got {n!r}")
    return int(v) if v == int(v) else v


def _check_theta(theta: Any) -> float:
    try:
        v = float(theta)
    except (TypeError, ValueError):
        raise TypeError(f"theta: expected a finite number, got {theta!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"theta: expected a finite number, got {theta!r}")
    return v


def identity(s: torch.Tensor) -> torch.Tensor:
    """Identity (linear) separation ``sigma(s) = s`` (docs/science.md 1.1-1.2).

    ``[..., Q, N] -> [..., Q, N]``. With the dot kernel the read ``sigma(q K^T) V = q (K^T V)``
    is the correlation-matrix memory.
    """
    return _scores(s)


def softmax(s: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Softmax with inverse temperature: ``sigma(s)_n = exp(beta s_n) / sum_m exp(beta s_m)``.

    ``[..., Q, N] -> [..., Q, N]``, rows sum to 1 (docs/science.md 1.2, 1.4 modern Hopfield). Large
    ``beta`` approaches ``hard_max``, small ``beta`` a uniform average (metastable mixtures).
    """
    beta = check_positive(beta, "beta")
    s = _scores(s)
    # s * 1.0 is s bit for bit: skip the pass (and the copy) at the default temperature
    return torch.softmax(s if beta == 1.0 else s * beta, dim=-1)


def hard_max(s: torch.Tensor) -> torch.Tensor:
    """One-hot argmax ``sigma(s)_n = 1[n = argmax_m s_m]``; ties go to the first index.

    ``[..., Q, N] -> [..., Q, N]`` (docs/science.md 1.2): perfect on clean cues, brittle under
    noise. Piecewise constant, so it passes no gradient to the scores.
    """
    s = _scores(s)
    idx = torch.argmax(s, dim=-1, keepdim=True)  # documented to return the first maximum
    return torch.zeros_like(s).scatter_(-1, idx, 1.0)


# Rows shorter than this are sorted outright: for them one sort is cheaper than ``topk`` plus
# the tie fix-up (both give the same result, so the cut-off only affects speed).
_TOPK_MIN_N = 256


def _first_k_sorted(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: a *stable* descending sort keeps equal scores in index order."""
    vals, idx = torch.sort(s, dim=-1, descending=True, stable=True)
    return vals[..., :k], idx[..., :k]


def _first_k_topk(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``_first_k_sorted`` from ``torch.topk``: O(N) per row instead of a full sort.

    ``torch.topk`` picks a correct set of the k largest but leaves ties in any order, and when
    a tie straddles the cut it may keep a later index than the stable sort. So it takes the
    ``k + 1`` largest: where the (k+1)-th differs from the k-th, the kept set is exactly the
    stable sort's, and sorting those k by (score descending, index ascending) gives its order;
    rows where they are equal (a tie across the cut) or NaN is at the cut are redone with the
    stable sort. Same values and indices, bit for bit, as ``_first_k_sorted``.
    """
    n = s.shape[-1]
    if k >= n:
        return _first_k_sorted(s, k)
    vals, idx = torch.topk(s, k + 1, dim=-1, largest=True, sorted=True)
    if bool((vals[..., :-1] > vals[..., 1:]).all()):
        # The usual case: the k + 1 largest strictly decreasing in every row (no tie, no NaN,
        # which topk would have ranked first), so the kept set and its order are the only
        # ones possible, the stable sort's included.
        return vals[..., :k], idx[..., :k]
    kth, nxt = vals[..., k - 1], vals[..., k]
    # Order the k kept: ascending index first, then a stable sort by score (k elements only).
    idx, perm = torch.sort(idx[..., :k], dim=-1)
    vals = vals[..., :k].gather(-1, perm)
    vals, perm = torch.sort(vals, dim=-1, descending=True, stable=True)
    idx = idx.gather(-1, perm)
    redo = (nxt == kth) | torch.isnan(kth)  # [...]: rows the fast path may have got wrong
    if bool(redo.any()):
        rows = redo.reshape(-1).nonzero().squeeze(-1)
        v_ref, i_ref = _first_k_sorted(s.reshape(-1, n).index_select(0, rows), k)
        vals = vals.reshape(-1, k).index_copy(0, rows, v_ref).reshape(vals.shape)
        idx = idx.reshape(-1, k).index_copy(0, rows, i_ref).reshape(idx.shape)
    return vals, idx


def _first_k(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest scores and their indices, ties broken towards the lower index.

    ``torch.topk`` leaves the order of ties unspecified; a *stable* descending sort keeps equal
    scores in index order, so ``top_k(k=1)`` agrees with ``hard_max`` even on ties. Long rows
    use ``torch.topk`` with a fix-up that returns exactly the stable sort's result.
    """
    if s.shape[-1] < _TOPK_MIN_N or k >= s.shape[-1] or s.numel() == 0:
        return _first_k_sorted(s, k)
    return _first_k_topk(s, k)


def top_k(s: torch.Tensor, k: int, beta: float | None = None) -> torch.Tensor:
    """Keep the ``k`` largest scores per row; weight them uniformly or by softmax.

    ``[..., Q, N] -> [..., Q, N]`` (docs/science.md 1.2). With ``beta=None`` each kept memory gets
    ``1/k``; otherwise ``sigma(s)_n = exp(beta s_n) / sum_{m in top k} exp(beta s_m)`` on the kept
    set and 0 elsewhere. ``k = 1`` equals ``hard_max``; ``k > N`` is clamped to ``N``. Ties at the
    cut are broken towards the lower index.
    """
    k = check_int_at_least(k, 1, "k")
    if beta is not None:
        beta = check_positive(beta, "beta")
    s = _scores(s)
    k = min(k, s.shape[-1])
    vals, idx = _first_k(s, k)
    if beta is None:
        w = torch.full_like(vals, 1.0 / k)
    else:
        w = torch.softmax(vals * beta, dim=-1)
    return torch.zeros_like(s).scatter(-1, idx, w)


def polynomial(s: torch.Tensor, n: float = 2, normalize: bool = False) -> torch.Tensor:
    """Rectified polynomial ``sigma(s)_n = max(0, s_n)^n`` (docs/science.md 1.2, 1.4).

    The separation of the dense associative memory. ``[..., Q, N] -> [..., Q, N]``. With
    ``normalize`` each row is divided by its sum (a row with no positive score stays all zero
    rather than dividing by zero).
    """
    n = _check_power(n)
    s = _scores(s)
    w = torch.clamp(s, min=0.0).pow(n)
    if normalize:
        total = w.sum(dim=-1, keepdim=True)
        # where the total is 0 every entry is 0, so any positive divisor returns zeros
        w = w / torch.where(total > 0, total, torch.ones_like(total))
    return w


def threshold(s: torch.Tensor, theta: float = 0.0) -> torch.Tensor:
    """Threshold ``sigma(s)_n = 1[s_n >= theta]`` (Kanerva's SDM; docs/science.md 1.2, 1.4).

    ``[..., Q, N] -> [..., Q, N]`` of 0.0 / 1.0 in the scores' dtype; e.g. with scores equal to
    minus the Hamming distance, ``theta = -r`` activates every location within radius ``r``.
    """
    theta = _check_theta(theta)
    s = _scores(s)
    return (s >= theta).to(s.dtype)


def sparsemax(s: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo 2016): Euclidean projection of ``beta s`` onto the simplex.

    ``[..., Q, N] -> [..., Q, N]`` (docs/science.md 1.2): ``sigma(s) = max(0, beta s - tau)`` with
    ``tau`` chosen so each row sums to 1. Exact, sort-based: with ``z`` sorted descending,
    ``k* = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}`` and
    ``tau = (sum_{j<=k*} z_(j) - 1) / k*``. Unlike softmax it gives exact zeros.
    """
    beta = check_positive(beta, "beta")
    s = _scores(s)
    z = s * beta
    zs, _ = torch.sort(z, dim=-1, descending=True)
    cs = zs.cumsum(dim=-1) - 1.0
    r = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    support = r * zs > cs  # true on a prefix of the sorted scores
    k_star = support.sum(dim=-1, keepdim=True).clamp(min=1)
    tau = cs.gather(-1, k_star - 1) / k_star.to(z.dtype)
    return torch.clamp(z - tau, min=0.0)


SEPARATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "identity": identity,
    "linear": identity,
    "softmax": softmax,
    "hard_max": hard_max,
    "max": hard_max,
    "top_k": top_k,
    "topk": top_k,
    "polynomial": polynomial,
    "threshold": threshold,
    "sparsemax": sparsemax,
}
"""Operator name (aliases included) -> function ``f(s, **params)``."""

ALIASES: dict[str, str] = {"linear": "identity", "max": "hard_max", "topk": "top_k"}
"""Alias -> canonical operator name."""

_PARAMS: dict[str, tuple[str, ...]] = {
    "identity": (),
    "softmax": ("beta",),
    "hard_max": (),
    "top_k": ("k", "beta"),
    "polynomial": ("n", "normalize"),
    "threshold": ("theta",),
    "sparsemax": ("beta",),
}
_REQUIRED: dict[str, tuple[str, ...]] = {"top_k": ("k",)}


def _check_param(name: str, value: Any) -> Any:
    """Validate one operator parameter by name; returns the cleaned value."""
    if name == "beta":
        return check_positive(value, "beta")
    if name == "k":
        return check_int_at_least(value, 1, "k")
    if name == "n":
        return _check_power(value)
    if name == "theta":
        return _check_theta(value)
    if name == "normalize":
        return bool(value)
    return value


def canonical_separation_name(name: str) -> str:
    """Resolve aliases (``"max"`` -> ``"hard_max"``...); raise ``ValueError`` on unknown names."""
    key = name.lower()
    if key not in SEPARATIONS:
        raise ValueError(
            f"separation: unknown operator {name!r}; accepted names: "
            + ", ".join(sorted(SEPARATIONS))
        )
    return ALIASES.get(key, key)


def separation_name(fn: Any) -> str | None:
    """The canonical name of ``fn`` if it is a built-in operator, else ``None``."""
    for name, f in SEPARATIONS.items():
        if fn is f:
            return ALIASES.get(name, name)
    return None


def get_separation(
    name_or_callable: str | Callable[..., torch.Tensor], **params: Any
) -> Separation:
    """Resolve an operator by name (see ``SEPARATIONS``) or wrap a callable, binding ``params``.

    Returns a one-argument ``sigma(scores) -> weights``, ``[..., Q, N] -> [..., Q, N]``.
    Parameters whose value is ``None`` mean "the operator's default" and are dropped. Unknown
    names raise ``ValueError`` listing the accepted names; ``beta <= 0``, ``k < 1``, ``n < 1``
    or a parameter the operator does not take raise ``ValueError`` naming the parameter.
    """
    return resolve(
        "separation",
        name_or_callable,
        params,
        canonical=canonical_separation_name,
        table=SEPARATIONS,
        accepted=_PARAMS,
        required=_REQUIRED,
        check_param=_check_param,
    )
