"""The pseudo-inverse (projection) rule and the pseudo-inverse Hopfield net (docs/science.md 1.4).

Two things live here:

- :func:`pinv_solve`, the pseudo-inverse learning rule ``W = A^+ B``: the minimum-norm
  least-squares weights that map inputs ``A [..., K, n]`` onto targets ``B [..., K, m]``
  (``A W = B`` exactly whenever the K inputs are linearly independent). The scaffold
  memories :class:`kvmem.core.mesh.MESH` and :class:`kvmem.core.vector_hash.VectorHaSH`
  learn their heteroassociations with it.
- :class:`PseudoInverseHopfield`, the classical baseline with the best possible linear
  autoassociative weights (Personnaz, Guyon & Dreyfus 1985; Kanter & Sompolinsky 1987):
  the weight matrix projects onto the span of the stored patterns,

      W = X^+ X          (X [P, N] the stored +-1 patterns, X^+ its Moore-Penrose inverse)
      W_ii = 0           (``zero_diagonal``, the default)

  so W = X^T (X X^T)^{-1} X for linearly independent patterns. Retrieval is synchronous
  sign dynamics s <- sign(s W). With the diagonal removed, a stored pattern x has field
  x W = x - x * diag(X^+ X), i.e. h_i = x_i (1 - P_ii), which keeps every sign while
  P < N: all stored patterns are exact fixed points up to N - 1 patterns. At P >= N the
  projection is the identity, W = 0, no field is left and recall fails completely (every
  unit is a tie, the cliff at P = N).

The projector is kept and grown incrementally (Greville's recursion, the exact form of
the projection-learning rule): a block of new patterns ``X_b`` adds its residual outside
the current span, ``R = X_b (I - P)``, as ``P <- P + R^T (R R^T)^+ R``. A sweep over loads
then costs O(N^2) per pattern instead of recomputing a pseudo-inverse at every load.

Shapes: patterns ``[..., P, N]`` with an optional bool ``mask [..., P]`` (masked rows are
zeroed, which does not change the span, so networks with different loads batch by
padding); cues ``[..., Q, N]``.

Ties: a unit whose field is within ``tol`` of 0 keeps its state, as in
:class:`~kvmem.core.hopfield.ClassicalHopfield` (at P = N - 1 a few units of a stored
pattern have fields ~1e-12, and flipping them to 0 would start a cascade). A unit that
receives no input at all (its row of W is 0, as every row is once P >= N) has nothing
to go on and outputs 0 ("undetermined"; count it as half an error), so a clean cue is
not simply passed through a network that has lost every weight.
"""

from __future__ import annotations

from typing import Any

import torch

from kvmem.core.hopfield import _as_cues, _as_mask, _as_patterns, _batch_shape, _check_pm1
from kvmem.core.validation import check_dim, check_int_at_least, shape_str

__all__ = ["PseudoInverseHopfield", "pinv_solve"]

# A Cholesky factor whose smallest pivot (squared) falls below this fraction of the
# Gram matrix's largest diagonal entry is treated as rank deficient (SVD fallback).
_RCOND = 1e-10


def _gram_chol(g: torch.Tensor) -> torch.Tensor | None:
    """Cholesky factor of the Gram matrices ``g [..., n, n]``, or ``None`` when any is
    (numerically) singular, judged by its pivots against its largest diagonal entry."""
    low, info = torch.linalg.cholesky_ex(g)
    if bool((info != 0).any()):
        return None
    piv = low.diagonal(dim1=-2, dim2=-1).square()
    scale = g.diagonal(dim1=-2, dim2=-1).amax(-1).clamp(min=1e-300)
    if bool((piv.amin(-1) <= _RCOND * scale).any()):
        return None
    return low


def pinv_solve(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The pseudo-inverse rule ``W = A^+ B``: ``inputs A [..., K, n]``, ``targets B [..., K, m]``
    -> ``W [..., n, m]`` (float64), so that ``A W`` is the least-squares fit of ``B``.

    Through the smaller Gram matrix and a Cholesky factorisation (K^2 n or K n^2 work,
    batched over the leading dimensions, any device): ``W = A^T (A A^T)^{-1} B`` when
    ``K <= n`` (A W = B exactly), ``W = (A^T A)^{-1} A^T B`` when ``K > n``. If any Gram
    matrix is rank deficient (duplicate or zero rows), the SVD pseudo-inverse
    ``torch.linalg.pinv(A) @ B`` is used instead.
    """
    if inputs.ndim < 2 or targets.ndim < 2 or inputs.shape[-2] != targets.shape[-2]:
        raise ValueError(
            "inputs, targets: expected shapes [..., K, n] and [..., K, m] with the same K, got "
            f"{shape_str(inputs.shape)} and {shape_str(targets.shape)}"
        )
    a = inputs.to(torch.float64)
    b = targets.to(device=a.device, dtype=torch.float64)
    a, b = torch.broadcast_tensors(a[..., None], b[..., None, :])  # align batch dims
    a, b = a[..., 0], b[..., 0, :]
    k, n = a.shape[-2:]
    if k == 0:
        return a.new_zeros(*a.shape[:-2], n, b.shape[-1])
    at = a.transpose(-1, -2)
    if k <= n:
        low = _gram_chol(a @ at)
        if low is not None:
            return at @ torch.cholesky_solve(b, low)
    else:
        low = _gram_chol(at @ a)
        if low is not None:
            return torch.cholesky_solve(at @ b, low)
    return torch.linalg.pinv(a) @ b


def _psd_pinv(g: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of symmetric PSD matrices ``g [..., b, b]``; eigenvalues at or below
    ``floor [..., 1]`` are dropped (rounding left by patterns already in the span, not new
    directions). Cholesky when every pivot clears the floor, else an eigendecomposition."""
    low, info = torch.linalg.cholesky_ex(g)
    if not bool((info != 0).any()):
        piv = low.diagonal(dim1=-2, dim2=-1).square()
        if bool((piv > floor).all()):
            eye = torch.eye(g.shape[-1], dtype=g.dtype, device=g.device)
            return torch.cholesky_solve(eye.expand_as(g), low)
    lam, u = torch.linalg.eigh(g)
    keep = lam > floor
    inv = torch.where(keep, 1.0 / torch.where(keep, lam, 1.0), 0.0)
    return (u * inv[..., None, :]) @ u.transpose(-1, -2)


class PseudoInverseHopfield:
    """Projection-rule Hopfield network, ``W = X^+ X`` with zero diagonal (module docstring).

    Usable like the other autoassociative memories: ``store(patterns, mask=None)`` (alias
    ``write``) appends +-1 patterns ``[..., P, N]`` (leading dims: independent networks),
    ``retrieve(cues)`` (alias ``read``) runs the sign dynamics.

    Args:
        zero_diagonal: remove self-couplings (default; keeping them makes every state a
            fixed point once P >= N).
        max_steps: limit on synchronous updates.
        tol: fields (and weight rows) with magnitude ``<= tol`` count as 0: a tied unit
            keeps its state, a unit with no input outputs 0 (module docstring).
    """

    def __init__(self, zero_diagonal: bool = True, max_steps: int = 20, tol: float = 1e-10):
        self.zero_diagonal = bool(zero_diagonal)
        self.max_steps = check_int_at_least(max_steps, 1, "max_steps")
        self.tol = float(tol)
        if not self.tol >= 0:
            raise ValueError(f"tol: expected a value >= 0, got {tol!r}")
        self._proj: torch.Tensor | None = None  # P = X^+ X, [..., N, N], float64
        self._count: torch.Tensor | None = None  # stored patterns per network, [...]
        self._dtype: torch.dtype | None = None

    @property
    def n_units(self) -> int | None:
        """N (``None`` before the first ``store``)."""
        return None if self._proj is None else int(self._proj.shape[-1])

    @property
    def n_patterns(self) -> torch.Tensor:
        """Number of stored patterns per network, ``[...]`` (int64)."""
        self._check_nonempty()
        assert self._count is not None
        return self._count

    @property
    def rank(self) -> torch.Tensor:
        """Dimension of the stored span per network (trace of the projector), ``[...]``."""
        self._check_nonempty()
        assert self._proj is not None
        return self._proj.diagonal(dim1=-2, dim2=-1).sum(-1).round().to(torch.int64)

    def store(self, patterns: Any, mask: Any = None) -> PseudoInverseHopfield:
        """Append +-1 patterns ``[..., P, N]`` and grow the projector; returns ``self``.

        ``P <- P + R^T (R R^T)^+ R`` with ``R = X_b (I - P)`` (module docstring): the same
        projector as recomputing ``X^+ X`` over all patterns stored so far.
        """
        x = _as_patterns(patterns)
        m = _as_mask(mask, x)
        _check_pm1(x, m, "patterns")
        x64 = x.to(torch.float64) * m[..., None].to(torch.float64)
        n = x.shape[-1]
        if self._proj is None:
            proj = x64.new_zeros(*x.shape[:-2], n, n)
            count = torch.zeros(x.shape[:-2], dtype=torch.int64, device=x.device)
            self._dtype = x.dtype
        else:
            check_dim(x, -1, self._proj.shape[-1], "patterns", "pattern size N (as stored)")
            if x.shape[:-2] != self._proj.shape[:-2]:
                raise ValueError(
                    f"patterns: expected batch shape {shape_str(self._proj.shape[:-2])} "
                    f"(as stored), got shape {shape_str(x.shape)}"
                )
            proj, count = self._proj.to(x.device), self._count.to(x.device)  # type: ignore[union-attr]
        if x.shape[-2] == 0 or (self._proj is not None and bool((self.rank >= n).all())):
            self._proj = proj  # nothing new, or the span is already the whole space
            self._count = count + m.sum(-1)
            return self
        resid = x64 - x64 @ proj  # the part of each new pattern outside the stored span
        # a second pass removes what rounding left inside the span ("twice is enough")
        resid = resid - resid @ proj
        g = resid @ resid.transpose(-1, -2)
        # residuals below 1e-9 of a pattern's squared norm are rounding (already in the span)
        floor = 1e-9 * x64.square().sum(-1).amax(-1, keepdim=True).clamp(min=1.0)
        proj = proj + resid.transpose(-1, -2) @ _psd_pinv(g, floor) @ resid
        if n <= x.shape[-2] + int(count.min()):
            # a full-rank span is the whole space: make P exactly I there (W = 0, all ties)
            full = proj.diagonal(dim1=-2, dim2=-1).sum(-1) > n - 0.5
            eye = torch.eye(n, dtype=proj.dtype, device=proj.device)
            proj = torch.where(full[..., None, None], eye, proj)
        self._proj = 0.5 * (proj + proj.transpose(-1, -2))  # keep it exactly symmetric
        self._count = count + m.sum(-1)
        return self

    write = store

    def clear(self) -> None:
        """Forget every stored pattern."""
        self._proj = self._count = None

    def _check_nonempty(self) -> None:
        if self._proj is None:
            raise ValueError("memory is empty: store(patterns) before retrieving")

    @property
    def weights(self) -> torch.Tensor:
        """``W = X^+ X`` (diagonal zeroed if asked), ``[..., N, N]``, float64."""
        self._check_nonempty()
        assert self._proj is not None
        w = self._proj
        if self.zero_diagonal:
            w = w - torch.diag_embed(w.diagonal(dim1=-2, dim2=-1))
        return w

    def retrieve(self, cues: Any, max_steps: int | None = None) -> torch.Tensor:
        """Synchronous sign dynamics from ``cues [..., Q, N]`` to a fixed point (or
        ``max_steps``); returns states ``[..., Q, N]`` in {-1, 0, +1} (0 = tie), in the
        patterns' dtype. Leading dims of the cues broadcast against the networks'."""
        w = self.weights
        steps = (
            self.max_steps if max_steps is None else check_int_at_least(max_steps, 1, "max_steps")
        )
        c = _as_cues(cues, w.shape[-1], w)
        batch = _batch_shape(c.shape[:-2], w.shape[:-2])
        s = torch.sign(c).expand(*batch, *c.shape[-2:])
        # units with some input keep their state on a tie; units with none output 0
        wired = (w.abs().amax(-2) > self.tol)[..., None, :]  # [..., 1, N]
        for _ in range(steps):  # the dynamics' time steps, batched over networks and cues
            h = s @ w
            keep = torch.where(wired, s, torch.zeros_like(s))
            new = torch.where(h.abs() <= self.tol, keep, torch.sign(h))
            if torch.equal(new, s):
                break
            s = new
        assert self._dtype is not None
        return s.to(self._dtype)

    read = retrieve

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: the projector and the pattern counts (empty if unused)."""
        if self._proj is None or self._count is None:
            return {}
        return {"projector": self._proj, "n_patterns": self._count}

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (plus the output dtype)."""
        return {
            "zero_diagonal": self.zero_diagonal,
            "max_steps": self.max_steps,
            "tol": self.tol,
            "dtype": None if self._dtype is None else str(self._dtype).removeprefix("torch."),
        }

    @classmethod
    def from_state(
        cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> PseudoInverseHopfield:
        """Rebuild a memory from ``state_config()`` and ``state_tensors()``."""
        cfg = dict(config)
        dtype = cfg.pop("dtype", None)
        mem = cls(**cfg)
        if tensors:
            mem._proj = tensors["projector"].to(torch.float64)
            mem._count = tensors["n_patterns"].to(torch.int64)
            mem._dtype = getattr(torch, dtype) if dtype else torch.get_default_dtype()
        return mem

    def __repr__(self) -> str:
        return (
            f"PseudoInverseHopfield(n_units={self.n_units}, zero_diagonal={self.zero_diagonal}, "
            f"max_steps={self.max_steps})"
        )
