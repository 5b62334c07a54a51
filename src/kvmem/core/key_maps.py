"""Key representations built for discrimination: item -> key maps (docs/science.md 1.5, 1.7).

A key-value memory stores two representations per memory (docs/science.md, "The argument in
brief"): the value is the item itself (fidelity), the *key* is a separate code shaped so
that the right memory can be found among similar ones (discriminability). This module holds
fixed or closed-form key maps ``phi: R^D -> R^{d_k}``; a memory stores ``(phi(x_n), x_n)``
and a query ``q`` is matched through the same map, ``S(phi(q), phi(x_n))``, so a corrupted
cue is mapped exactly like the items were. Keys learned by gradient descent live in
:mod:`kvmem.nn.learned_keys` (core holds no training loops); they are applied through
:class:`LinearKeys`.

| class | key ``phi(x)`` | fitted on the items |
|---|---|---|
| :class:`CenteredKeys` | ``(x - m) / |x - m|`` | ``m``: own mean (none) or items' mean |
| :class:`WhitenedKeys` | ``(x - mu) W``, ``W = (C + eps I)^(-1/2)`` or top PCs | ``mu``, ``C`` |
| :class:`ExpansionKWTAKeys` | kWTA of a random expansion ``(x - m) R`` | ``m`` only |
| :class:`LinearKeys` | ``(x - mu) W``, ``W`` given (e.g. learned) | nothing |

Every map follows one small estimator protocol (like scikit-learn's): ``fit(items)`` with
items ``[..., N, D]`` returns the map itself; ``transform(x)`` (or calling the map) takes
``[..., Q, D]`` and returns keys ``[..., Q, d_k]``. Leading dimensions are independent
memories (e.g. seeds): a map fitted on items ``[S, N, D]`` holds one set of parameters per
memory and maps queries ``[S, Q, D]`` (or ``[Q, D]``, broadcast) memory by memory. With
``normalize=True`` (the default) keys have unit length, so the dot product of two keys is
their cosine and dot, cosine and negative Euclidean similarity rank memories identically.

>>> import torch
>>> items = torch.rand(50, 16, dtype=torch.float64)
>>> keys = WhitenedKeys(shrinkage=0.0, normalize=False).fit_transform(items)
>>> cov = (keys - keys.mean(0)).T @ (keys - keys.mean(0)) / 50
>>> bool(torch.allclose(cov, torch.eye(16, dtype=torch.float64), atol=1e-8))
True
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from kvmem.core.validation import (
    as_float_tensor,
    check_dim,
    check_int_at_least,
    shape_str,
)

__all__ = [
    "KeyMap",
    "CenteredKeys",
    "WhitenedKeys",
    "ExpansionKWTAKeys",
    "LinearKeys",
    "kwta",
]


def _unit(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``x`` scaled to unit Euclidean length (a zero row stays zero)."""
    return torch.nn.functional.normalize(x, dim=-1, eps=eps)


def _unit_(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """:func:`_unit` in place, for a tensor the caller owns (no autograd): the same norm,
    clamp and division as ``F.normalize``, so the same bits, without a second block."""
    return x.div_(x.norm(2.0, -1, keepdim=True).clamp_min(eps))


def _unit_own(k: torch.Tensor) -> torch.Tensor:
    """:func:`_unit` of ``k``, a block the calling transform has just made: in place
    (:func:`_unit_`) unless autograd records it."""
    return _unit(k) if k.requires_grad and torch.is_grad_enabled() else _unit_(k)


def _check_choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


class KeyMap:
    """Base class of key maps: ``fit(items) -> self``, ``transform(x) -> keys``.

    Subclasses implement ``_fit(items)`` (items a floating tensor ``[..., N, D]``) and
    ``_transform(x)`` (``x`` ``[..., Q, D]`` on the fitted device and dtype).
    """

    #: feature dimension D of the items the map was fitted on (None before ``fit``)
    d_in: int | None = None

    def fit(self, items: Any) -> KeyMap:
        """Fit the map's parameters on the stored items ``[..., N, D]``; returns ``self``."""
        x = as_float_tensor(items, "items", min_ndim=2, allow_integer=True)
        if x.shape[-2] < 1:
            raise ValueError(
                f"items: expected at least one item (shape [..., N >= 1, D]), "
                f"got shape {shape_str(x.shape)}"
            )
        if x.shape[-1] < 1:
            raise ValueError(
                f"items: expected at least one feature (shape [..., N, D >= 1]), "
                f"got shape {shape_str(x.shape)}"
            )
        self.d_in = int(x.shape[-1])
        self._dtype = x.dtype
        self._device = x.device
        self._fit(x)
        return self

    def transform(self, x: Any) -> torch.Tensor:
        """Keys ``[..., Q, d_k]`` of the vectors ``x`` ``[..., Q, D]`` (items or queries)."""
        if self.d_in is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(items) before transform")
        t = as_float_tensor(x, "x", min_ndim=1, allow_integer=True)
        if t.shape[-1] != self.d_in:
            raise ValueError(
                f"x: expected feature dimension D = {self.d_in} (shape [..., {self.d_in}]), "
                f"got shape {shape_str(t.shape)}"
            )
        if t.dtype != self._dtype or t.device != self._device:
            t = t.to(device=self._device, dtype=self._dtype)
        return self._transform(t)

    def fit_transform(self, items: Any) -> torch.Tensor:
        """``fit(items).transform(items)``: the stored keys ``[..., N, d_k]``."""
        return self.fit(items).transform(items)

    def __call__(self, x: Any) -> torch.Tensor:
        return self.transform(x)

    # subclasses -------------------------------------------------------------------------
    def _fit(self, items: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _transform(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------- centring


class CenteredKeys(KeyMap):
    """Centred, unit-length keys: ``phi(x) = (x - m) / |x - m|``.

    With ``center="self"`` (default) ``m`` is the vector's own mean over its D features, so
    ``phi(q) . phi(x)`` is the Pearson correlation of the two images (no fitting; a uniform
    brightness offset or a uniformly darker cue does not change the key's direction). With
    ``center="items"`` ``m`` is the mean of the stored items (fitted), so keys code each
    item's deviation from the typical item and the shared content of correlated items
    (the average digit) no longer dominates the match. ``normalize=False`` keeps the length.
    """

    def __init__(
        self, center: Literal["self", "items"] = "self", *, normalize: bool = True
    ) -> None:
        self.center = _check_choice(center, ("self", "items"), "center")
        self.normalize = bool(normalize)
        self.mean: torch.Tensor | None = None

    def _fit(self, items: torch.Tensor) -> None:
        self.mean = items.mean(dim=-2) if self.center == "items" else None

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.center == "self":
            k = x - x.mean(dim=-1, keepdim=True)
        else:
            assert self.mean is not None
            k = x - self.mean.unsqueeze(-2)
        return _unit_own(k) if self.normalize else k

    def __repr__(self) -> str:
        return f"CenteredKeys(center={self.center!r}, normalize={self.normalize})"


# ----------------------------------------------------------------------------- whitening


def _principal_axes(xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and unit eigenvectors (rows) of ``C = xc^T xc / N``.

    ``xc``: centred items ``[..., N, D]`` (float64). Returns ``lam`` ``[..., r0]`` and ``vh``
    ``[..., r0, D]`` with ``r0 = min(N, D)``. Uses the symmetric eigendecomposition of the
    smaller of ``C`` (D x D) and the Gram matrix ``xc xc^T / N`` (N x N); for the latter
    ``v_i = xc^T a_i / sqrt(N lam_i)`` (rows with ``lam_i ~ 0`` are left at 0). Much faster
    than a thin SVD on CPU, and as accurate for whitening (float64).
    """
    n, d = xc.shape[-2], xc.shape[-1]
    if n >= d:
        lam, u = torch.linalg.eigh(xc.transpose(-1, -2) @ xc / n)
        return lam.flip(-1).clamp_min(0.0), u.flip(-1).transpose(-1, -2)
    lam, a = torch.linalg.eigh(xc @ xc.transpose(-1, -2) / n)
    lam, a = lam.flip(-1).clamp_min(0.0), a.flip(-1)
    scale = torch.where(lam > 0, (n * lam).clamp_min(1e-300).rsqrt(), torch.zeros_like(lam))
    vh = (a.transpose(-1, -2) @ xc) * scale.unsqueeze(-1)
    return lam, vh


class WhitenedKeys(KeyMap):
    """Whitened keys, fitted on the stored items: decorrelate the items' features.

    With the items' mean ``mu`` and covariance ``C = (X - mu)^T (X - mu) / N`` (eigenvalues
    ``lambda_i``, eigenvectors ``u_i``, computed in float64 from the smaller of the
    covariance and the Gram matrix), and the shrinkage ``eps = shrinkage * tr(C) / D``:

    - ``kind="zca"`` (default): ``W = (C + eps I)^(-1/2) = sum_i (lambda_i + eps)^(-1/2)
      u_i u_i^T`` (D x D; directions outside the items' span get ``eps^(-1/2)``);
    - ``kind="pca"``: ``W = [u_1 .. u_r] diag((lambda_i + eps)^(-1/2))`` (D x r), the top
      ``r = n_components`` principal components (default: all with lambda > 0).

    ``phi(x) = (x - mu) W`` (then unit length unless ``normalize=False``). With
    ``shrinkage=0`` and full-rank items the whitened items have identity covariance, so
    the stored keys of correlated items are decorrelated; ``phi(q) . phi(x)`` is then a
    Mahalanobis-style match ``(q - mu) (C + eps I)^(-1) (x - mu)^T`` that weighs the
    directions in which items rarely differ most. The shrinkage (towards the isotropic
    covariance of the same total variance) bounds the gain given to those low-variance
    directions, which is where pixel noise gets amplified: ``shrinkage -> inf`` tends to
    the :class:`CenteredKeys` map with ``center="items"``. ``shrinkage=0`` with fewer
    items than features drops the directions outside the items' span.
    """

    def __init__(
        self,
        kind: Literal["zca", "pca"] = "zca",
        *,
        shrinkage: float = 1.0,
        n_components: int | None = None,
        normalize: bool = True,
    ) -> None:
        self.kind = _check_choice(kind, ("zca", "pca"), "kind")
        s = float(shrinkage)
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"shrinkage: expected a finite number >= 0, got {shrinkage!r}")
        self.shrinkage = s
        if n_components is not None:
            n_components = check_int_at_least(n_components, 1, "n_components")
        self.n_components = n_components
        self.normalize = bool(normalize)
        self.mean: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None
        self.eigenvalues: torch.Tensor | None = None

    def _fit(self, items: torch.Tensor) -> None:
        n, d = items.shape[-2], items.shape[-1]
        mu = items.mean(dim=-2)
        xc = (items - mu.unsqueeze(-2)).to(torch.float64)
        lam, vh = _principal_axes(xc)  # [..., r0] descending, [..., r0, D]
        eps = self.shrinkage * (lam.sum(-1, keepdim=True) / d)  # [..., 1]
        tol = lam.amax(-1, keepdim=True).clamp_min(1e-300) * (max(n, d) * 1e-10)
        keep = lam > tol
        denom = lam + eps
        gain = torch.where(keep, denom.clamp_min(1e-300).rsqrt(), torch.zeros_like(denom))
        if self.kind == "zca":
            w = (vh.transpose(-1, -2) * gain.unsqueeze(-2)) @ vh  # [..., D, D]
            if self.shrinkage > 0:
                # directions outside the kept span: (I - P) eps^(-1/2)
                vk = vh * keep.unsqueeze(-1).to(vh.dtype)
                proj = vk.transpose(-1, -2) @ vk
                eye = torch.eye(d, dtype=torch.float64, device=items.device)
                w = w + (eye - proj) * eps.clamp_min(1e-300).rsqrt().unsqueeze(-1)
        else:
            r_max = int(keep.sum(-1).min()) if keep.numel() else 0
            r = r_max if self.n_components is None else min(self.n_components, vh.shape[-2])
            if r < 1:
                raise ValueError("items: all items are identical; nothing to whiten")
            w = vh[..., :r, :].transpose(-1, -2) * torch.where(
                keep[..., :r], denom[..., :r].rsqrt(), torch.zeros_like(denom[..., :r])
            ).unsqueeze(-2)
        self.mean = mu
        self.weight = w.to(items.dtype)
        self.eigenvalues = lam.to(items.dtype)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.mean is not None and self.weight is not None
        k = (x - self.mean.unsqueeze(-2)) @ self.weight
        return _unit_own(k) if self.normalize else k

    def __repr__(self) -> str:
        return (
            f"WhitenedKeys(kind={self.kind!r}, shrinkage={self.shrinkage}, "
            f"n_components={self.n_components}, normalize={self.normalize})"
        )


# ----------------------------------------------------------------------------- expansion + kWTA


def kwta(
    h: torch.Tensor, k: int, output: Literal["binary", "rectified"] = "binary"
) -> torch.Tensor:
    """k-winners-take-all over the last axis: keep the ``k`` largest units of ``h``.

    ``h``: ``[..., m]`` -> ``[..., m]`` with exactly ``k`` nonzero units per row (ties
    broken by ``torch.topk``). ``output="binary"``: the winners are 1, the rest 0.
    ``output="rectified"``: winners keep their margin over the best loser,
    ``max(0, h_j - h_(k+1))`` plus a tiny floor so that exactly k units stay active
    (a threshold-linear unit with the threshold set by feedback inhibition).
    """
    return _kwta(h, k, output, inplace=False)


def _kwta(h: torch.Tensor, k: int, output: str, *, inplace: bool) -> torch.Tensor:
    """:func:`kwta`; ``inplace``: write the code over ``h`` (a block the caller owns and no
    longer needs; the same values as a fresh block, without its allocation)."""
    k = check_int_at_least(k, 1, "k")
    output = _check_choice(output, ("binary", "rectified"), "output")
    m = h.shape[-1]
    if k > m:
        raise ValueError(f"k: expected at most the number of units {m}, got {k}")
    if output == "binary":
        idx = torch.topk(h, k, dim=-1).indices
        return (h.zero_() if inplace else torch.zeros_like(h)).scatter_(-1, idx, 1.0)
    # one top-(k+1) gives the winners and the best loser h_(k+1) (the inhibition threshold)
    vals, idx = torch.topk(h, min(k + 1, m), dim=-1)
    cut = vals[..., -1:]  # h_(k+1), or the weakest winner when every unit wins (k = m)
    vals, idx = vals[..., :k], idx[..., :k]
    margin = vals - cut
    # a winner tied with the best loser still counts as active (exactly k units)
    floor = margin.abs().amax(-1, keepdim=True).clamp_min(1.0) * 1e-6
    active = margin.clamp_min(0) + floor
    return (h.zero_() if inplace else torch.zeros_like(h)).scatter_(-1, idx, active)


class ExpansionKWTAKeys(KeyMap):
    """Pattern separation by random expansion and k-winners-take-all (dentate-gyrus-like).

    ``h = c(x) R`` with a fixed random Gaussian matrix ``R`` ``[D, n_units]`` (entries
    ``N(0, 1/D)``, drawn from ``seed``; ``n_units`` >> D, an expansion like entorhinal cortex
    -> dentate gyrus), then only the ``k = round(active_fraction * n_units)`` most driven
    units stay active (:func:`kwta`; feedback inhibition), binary by default. ``c`` centres
    the input as :class:`CenteredKeys` does (``"self"``, ``"items"`` or ``"none"``). Keys
    are unit length, so the dot product of two binary keys is the fraction of shared active
    units. The sparse code makes overlapping inputs less overlapping (the overlap of two
    codes falls faster than the cosine of the inputs), but it is a lossy, random
    re-coding: it cannot rank memories better, in expectation, than the cosine of the
    centred inputs it is computed from (see the keys-vs-values experiment).
    """

    def __init__(
        self,
        n_units: int = 4000,
        active_fraction: float = 0.05,
        *,
        output: Literal["binary", "rectified"] = "binary",
        center: Literal["self", "items", "none"] = "self",
        seed: int = 0,
        normalize: bool = True,
    ) -> None:
        self.n_units = check_int_at_least(n_units, 1, "n_units")
        f = float(active_fraction)
        if not (0.0 < f <= 1.0):
            raise ValueError(
                f"active_fraction: expected a number in (0, 1], got {active_fraction!r}"
            )
        self.active_fraction = f
        self.k = max(1, round(f * self.n_units))
        self.output = _check_choice(output, ("binary", "rectified"), "output")
        self.center = _check_choice(center, ("self", "items", "none"), "center")
        self.seed = check_int_at_least(seed, 0, "seed")
        self.normalize = bool(normalize)
        self.mean: torch.Tensor | None = None
        self.projection: torch.Tensor | None = None

    def _fit(self, items: torch.Tensor) -> None:
        d = items.shape[-1]
        gen = torch.Generator().manual_seed(self.seed)
        r = torch.randn(d, self.n_units, generator=gen, dtype=torch.float64) / math.sqrt(d)
        self.projection = r.to(device=items.device, dtype=items.dtype)
        self.mean = items.mean(dim=-2) if self.center == "items" else None

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        assert self.projection is not None
        if self.center == "self":
            x = x - x.mean(dim=-1, keepdim=True)
        elif self.center == "items":
            assert self.mean is not None
            x = x - self.mean.unsqueeze(-2)
        h = x @ self.projection
        if torch.is_grad_enabled() and (x.requires_grad or self.projection.requires_grad):
            k = kwta(h, self.k, self.output)  # (autograd: no in-place steps on its graph)
            return _unit(k) if self.normalize else k
        k = _kwta(h, self.k, self.output, inplace=True)  # (h is this call's own block)
        return _unit_(k) if self.normalize else k

    def __repr__(self) -> str:
        return (
            f"ExpansionKWTAKeys(n_units={self.n_units}, active_fraction={self.active_fraction}, "
            f"output={self.output!r}, center={self.center!r}, seed={self.seed}, "
            f"normalize={self.normalize})"
        )


# ----------------------------------------------------------------------------- linear


class LinearKeys(KeyMap):
    """A given linear key map ``phi(x) = (x - mu) W`` (unit length unless ``normalize=False``).

    ``weight``: ``[..., D, d_k]``; ``mean``: ``[..., D]`` or ``None`` (no centring). The
    leading dimensions index independent memories, as elsewhere. This is how keys learned
    by gradient descent (:mod:`kvmem.nn.learned_keys`, docs/science.md 1.5: ``k = x W_k``) are
    applied; ``fit`` checks the items' dimension and learns nothing.
    """

    def __init__(self, weight: Any, mean: Any | None = None, *, normalize: bool = True) -> None:
        w = as_float_tensor(weight, "weight", min_ndim=2)
        self.weight = w
        self.mean = None if mean is None else as_float_tensor(mean, "mean", like=w)
        if self.mean is not None and self.mean.shape[-1] != w.shape[-2]:
            raise ValueError(
                f"mean: expected shape [..., {w.shape[-2]}] to match weight "
                f"{shape_str(w.shape)}, got shape {shape_str(self.mean.shape)}"
            )
        self.normalize = bool(normalize)
        self.d_in = int(w.shape[-2])
        self._dtype = w.dtype
        self._device = w.device

    @property
    def d_out(self) -> int:
        """The key dimension d_k."""
        return int(self.weight.shape[-1])

    def fit(self, items: Any) -> LinearKeys:
        """Check the items' feature dimension against ``weight`` ``[..., D, d_k]``; learns nothing.

        The map keeps ``weight``'s device and dtype (and its ``d_in``) whatever the items'.
        """
        x = as_float_tensor(items, "items", min_ndim=2, allow_integer=True)
        check_dim(x, -1, self.d_in, "items", "feature dimension D")
        return self

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = x - self.mean.unsqueeze(-2)
        k = x @ self.weight
        return _unit_own(k) if self.normalize else k

    def __repr__(self) -> str:
        return f"LinearKeys(weight={shape_str(self.weight.shape)}, normalize={self.normalize})"
