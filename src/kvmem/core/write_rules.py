"""Write rules of the primal (weight) memory as batched functions (docs/science.md 1.1, 1.3).

Every function works on row vectors, as in the paper: a memory matrix ``M`` is
``[..., d_k, d_v]``, keys ``[..., N, d_k]``, values ``[..., N, d_v]``; leading dimensions
broadcast. Learning rates ``lr`` (eta) and decays (lambda) are a scalar or one number per
item ``[..., N]``.

All rules share one dual form (docs/science.md 1.2, 1.3). With
``Gamma_n = prod_{m > n} lambda_m`` (the decay an item sees *after* it was written),

    M_N = (prod_n lambda_n) M_0 + sum_n Gamma_n k_n^T u_n,

where ``u_n = eta_n v_n`` for the Hebbian rule and ``u_n`` is the delta rule's scaled
residual error. So the memory is exactly a slot memory with keys ``k_n`` and values
``Gamma_n u_n`` (``MatrixMemory.to_slots``).

The chunkwise-parallel delta rule follows the WY / UT representation of Yang, Wang,
Zhang, Shen & Kim (2024), "Parallelizing linear transformers with the delta rule over
sequence length", with the decay (gating) of Yang, Kautz & Hatamizadeh (2024), "Gated
delta networks"; ``delta_write_sequential`` is its step-by-step reference, and the two
are checked against each other in ``tests/core/test_write_rules.py``.
"""

from __future__ import annotations

import math

import torch

from kvmem.core.validation import check_finite, check_int_at_least, shape_str

__all__ = [
    "hebbian_write",
    "hebbian_dual_values",
    "delta_write_sequential",
    "delta_write_chunked",
    "later_decay",
    "total_decay",
    "as_rate",
    "check_decay",
]

Rate = float | torch.Tensor


# --------------------------------------------------------------------------- helpers


def as_rate(x: Rate | None, keys: torch.Tensor, name: str) -> torch.Tensor | None:
    """A rate ``x`` (eta or lambda) on ``keys``' device/dtype: 0-d for a scalar, else ``[..., N]``.

    A per-item tensor (or numpy array) must end in ``N`` (the number of items in ``keys``);
    its leading dimensions broadcast against the batch dimensions of ``keys``. NaN / Inf,
    booleans and non-numbers raise, naming ``name``. ``None`` passes through.
    """
    if x is None:
        return None
    if isinstance(x, bool):
        raise TypeError(f"{name}: expected a real number or tensor, got {x!r}")
    if isinstance(x, (int, float)):
        if not math.isfinite(x):
            raise ValueError(f"{name}: expected a finite number, got {x!r}")
        # Straight to the keys' dtype: going through float32 would round 0.9 in float64 work.
        return torch.tensor(float(x), dtype=keys.dtype, device=keys.device)
    try:
        t = torch.as_tensor(x, device=keys.device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name}: expected a real number or tensor, got {type(x).__name__}"
        ) from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected a real number or tensor, got dtype {t.dtype}")
    t = t.to(keys.dtype)
    if t.ndim == 0:
        if not bool(torch.isfinite(t)):
            raise ValueError(f"{name}: expected a finite number, got {float(t)!r}")
        return t
    n = keys.shape[-2]
    if t.shape[-1] != n:
        raise ValueError(
            f"{name}: expected a scalar or one value per item, shape [..., {n}], "
            f"got shape {shape_str(t.shape)}"
        )
    check_finite(t, name)
    return t


def check_decay(decay: torch.Tensor | None) -> None:
    """Decays (lambda) must lie in [0, 1]: 1 keeps the memory, 0 erases it."""
    if decay is not None and bool(((decay < 0) | (decay > 1)).any()):
        got = (
            f"{float(decay):g}"
            if decay.ndim == 0
            else f"values from {float(decay.min()):g} to {float(decay.max()):g}"
        )
        raise ValueError(f"decay: expected values in [0, 1], got {got}")


def later_decay(decay: Rate, n: int) -> torch.Tensor:
    """Products of the decays applied *after* each item: ``Gamma_n = prod_{m > n} lambda_m``.

    ``decay`` is a number, a 0-d tensor or ``[..., N]``; returns ``[..., N]`` (``[N]``
    for a scalar, float64 for a Python number: ``lambda ** (N - 1 - n)``). Computed with
    a reversed cumulative product, so a zero decay (full erasure) is exact (no division,
    no logarithm). docs/science.md 1.3.
    """
    d = torch.as_tensor(decay, dtype=None if torch.is_tensor(decay) else torch.float64)
    if d.ndim == 0:
        # lambda^(N-1-n) for n = 0..N-1
        return d ** torch.arange(n - 1, -1, -1, device=d.device, dtype=d.dtype)
    # rev[n] = prod_{m >= n} lambda_m; shift by one to exclude lambda_n itself.
    rev = torch.flip(torch.cumprod(torch.flip(d, (-1,)), dim=-1), (-1,))
    ones = torch.ones_like(d[..., :1])
    return torch.cat([rev[..., 1:], ones], dim=-1)


def total_decay(decay: Rate, n: int) -> torch.Tensor:
    """The product of all ``n`` decays, ``prod_n lambda_n``: shape ``[...]`` (0-d for a scalar)."""
    d = torch.as_tensor(decay, dtype=None if torch.is_tensor(decay) else torch.float64)
    if d.ndim == 0:
        return d**n
    return torch.prod(d, dim=-1)


def _scale_matrix(M: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g M`` with ``g`` of shape ``[...]`` (or 0-d) scaling each ``[d_k, d_v]`` matrix."""
    return M * g[..., None, None]


def _check_pair(M: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
    if keys.ndim < 2 or values.ndim < 2 or M.ndim < 2:
        raise ValueError(
            "M, keys, values: expected shapes [..., d_k, d_v], [..., N, d_k], [..., N, d_v], "
            f"got {shape_str(M.shape)}, {shape_str(keys.shape)}, {shape_str(values.shape)}"
        )
    d_k, d_v = M.shape[-2], M.shape[-1]
    if keys.shape[-1] != d_k:
        raise ValueError(
            f"keys: expected d_k = {d_k} (shape [..., N, {d_k}]), got shape {shape_str(keys.shape)}"
        )
    if values.shape[-1] != d_v:
        raise ValueError(
            f"values: expected d_v = {d_v} (shape [..., N, {d_v}]), "
            f"got shape {shape_str(values.shape)}"
        )
    if keys.shape[-2] != values.shape[-2]:
        raise ValueError(
            f"values: expected N = {keys.shape[-2]} items to match keys, "
            f"got shape {shape_str(values.shape)}"
        )


def _batch_shape(
    M: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *rates: torch.Tensor | None,
) -> torch.Size:
    """The broadcast leading shape of ``M``, ``keys``, ``values`` and per-item rates."""
    shapes = [M.shape[:-2], keys.shape[:-2], values.shape[:-2]]
    shapes += [r.shape[:-1] for r in rates if r is not None and r.ndim]
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            "M, keys, values, lr, decay: leading (batch) dimensions do not broadcast, got "
            + ", ".join(shape_str(s) for s in shapes)
        ) from None


# --------------------------------------------------------------------------- Hebbian


def hebbian_dual_values(
    values: torch.Tensor, lr: Rate = 1.0, decay: Rate | None = None
) -> torch.Tensor:
    """The dual (slot) values of a Hebbian write: ``Gamma_n eta_n v_n``, shape ``[..., N, d_v]``.

    ``Gamma_n = prod_{m > n} lambda_m`` (1 without decay). Writing these values with
    ``lr = 1`` and no decay gives the same matrix as writing ``values`` with ``lr`` and
    ``decay`` (apart from the decay of ``M_0``). docs/science.md 1.1-1.3.
    """
    lr_t = as_rate(lr, values, "lr")
    dec = as_rate(decay, values, "decay")
    check_decay(dec)
    w = lr_t
    if dec is not None:
        w = w * later_decay(dec, values.shape[-2])
    return values * w[..., None] if w.ndim else values * w


def hebbian_write(
    M: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    lr: Rate = 1.0,
    decay: Rate | None = None,
) -> torch.Tensor:
    """Hebbian (outer-product) write of N pairs at once (docs/science.md 1.1, 1.3).

    Shapes: ``M [..., d_k, d_v]``, ``keys [..., N, d_k]``, ``values [..., N, d_v]``,
    ``lr`` and ``decay`` scalar or ``[..., N]``; returns ``[..., d_k, d_v]``
    (leading dimensions broadcast). Without decay

        M_N = M_0 + K^T diag(eta) V = M_0 + sum_n eta_n k_n^T v_n

    (one matmul). With decay, ``M_n = lambda_n M_{n-1} + eta_n k_n^T v_n`` unrolls exactly
    to ``M_N = (prod_n lambda_n) M_0 + sum_n (prod_{m>n} lambda_m) eta_n k_n^T v_n``, so
    the per-item weights come from a cumulative product and there is still no loop.
    The order of the items does not matter without decay.
    """
    _check_pair(M, keys, values)
    lr_t = as_rate(lr, keys, "lr")
    dec = as_rate(decay, keys, "decay")
    check_decay(dec)
    n = keys.shape[-2]
    w = lr_t
    if dec is not None:
        w = w * later_decay(dec, n)
        M = _scale_matrix(M, total_decay(dec, n))
    if w.ndim == 0:
        # Scalar rate: scale the small [d_k, d_v] product, not the big [N, d] operand.
        return M + w * (keys.mT @ values)
    # Per-item weights: scale whichever operand is narrower (fewer multiplications).
    if keys.shape[-1] <= values.shape[-1]:
        return M + (keys * w[..., None]).mT @ values
    return M + keys.mT @ (values * w[..., None])


# --------------------------------------------------------------------------- delta rule


def delta_write_sequential(
    M: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    lr: Rate = 1.0,
    decay: Rate | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delta-rule write, step by step: the reference recurrence (docs/science.md 1.3).

    Shapes: ``M [..., d_k, d_v]``, ``keys [..., N, d_k]``, ``values [..., N, d_v]``,
    ``lr`` (eta) and ``decay`` (lambda, in [0, 1]) scalar or ``[..., N]``. Each step first
    decays the memory, then corrects its error on the new key (the gated delta rule):

        u_n = eta_n (v_n - lambda_n k_n M_{n-1})          (scaled residual error)
        M_n = lambda_n M_{n-1} + k_n^T u_n
            = lambda_n M_{n-1} + eta_n k_n^T (v_n - k_n lambda_n M_{n-1}).

    Without decay this is ``M_n = M_{n-1} + eta_n k_n^T (v_n - k_n M_{n-1})``. Unrolled,

        M_N = (prod_n lambda_n) M_0 + sum_n (prod_{m>n} lambda_m) k_n^T u_n,

    so the residuals are the dual (slot) values. Returns ``(M_N [..., d_k, d_v],
    u [..., N, d_v])``. A Python loop over N: use ``delta_write_chunked`` for speed.
    """
    _check_pair(M, keys, values)
    lr_t = as_rate(lr, keys, "lr")
    dec = as_rate(decay, keys, "decay")
    check_decay(dec)
    n = keys.shape[-2]
    batch = _batch_shape(M, keys, values, lr_t, dec)
    M = M.expand(*batch, *M.shape[-2:]).clone()
    us = []
    for i in range(n):
        k = keys[..., i : i + 1, :]  # [..., 1, d_k]
        v = values[..., i : i + 1, :]  # [..., 1, d_v]
        if dec is not None:
            lam = dec if dec.ndim == 0 else dec[..., i, None, None]
            M = M * lam
        eta = lr_t if lr_t.ndim == 0 else lr_t[..., i, None, None]
        u = eta * (v - k @ M)  # [..., 1, d_v]
        M = M + k.mT @ u
        us.append(u)
    if n == 0:
        u_all = values.new_zeros(*batch, 0, values.shape[-1])
    else:
        u_all = torch.cat(us, dim=-2).expand(*batch, n, values.shape[-1])
    return M, u_all


def _segment_decay(lam: torch.Tensor) -> torch.Tensor:
    """``D[..., i, j] = prod_{j < m <= i} lambda_m`` for ``j <= i`` (1 on the diagonal), else 0.

    ``lam`` is ``[..., C]``; returns ``[..., C, C]``. A cumulative product down the
    columns of a masked copy of ``lambda``, so zeros are exact (no logs, no division).
    """
    c = lam.shape[-1]
    strict_lower = torch.ones(c, c, dtype=torch.bool, device=lam.device).tril(-1)
    x = torch.where(strict_lower, lam[..., :, None], torch.ones_like(lam[..., :, None]))
    return torch.cumprod(x, dim=-2).tril()


def delta_write_chunked(
    M: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    lr: Rate = 1.0,
    decay: Rate | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delta-rule write, chunkwise parallel (WY / UT representation; docs/science.md 1.3).

    Same recurrence, arguments and outputs as ``delta_write_sequential`` (``(M_N, u)``,
    with ``u_n = eta_n (v_n - lambda_n k_n M_{n-1})``), decay included. Split the items
    into chunks of ``C = chunk_size``; inside a chunk starting from state ``S``, with
    ``D[i, j] = prod_{j<m<=i} lambda_m`` and ``g_i = prod_{m<=i} lambda_m``, the residuals
    satisfy the unit-lower-triangular system

        (I + A) U = diag(eta) V - diag(eta g) K S,
        A = strict_lower(diag(eta) (K K^T * D)),

    solved for all chunks at once (``torch.linalg.solve_triangular``) as
    ``U = U~ - W S`` with ``U~ = T diag(eta) V``, ``W = T diag(eta g) K``,
    ``T = (I + A)^{-1}``. Only the state hand-over stays sequential, one pair of matmuls
    per chunk: ``U_c = U~_c - W_c S``, ``S <- g_C S + K_c^T diag(D[C, :]) U_c``.
    ``N`` need not be a multiple of ``C`` (the tail is padded with items of zero key and
    zero rate, which leave the memory unchanged). float16 / bfloat16 inputs are computed
    in float32 (the triangular solve needs it) and returned in their own dtype.
    """
    _check_pair(M, keys, values)
    chunk_size = check_int_at_least(chunk_size, 1, "chunk_size")
    if keys.dtype in (torch.float16, torch.bfloat16):
        low = keys.dtype
        lr_f = lr.float() if isinstance(lr, torch.Tensor) else lr
        dec_f = decay.float() if isinstance(decay, torch.Tensor) else decay
        M_f, u_f = delta_write_chunked(
            M.float(), keys.float(), values.float(), lr_f, dec_f, chunk_size
        )
        return M_f.to(low), u_f.to(low)
    lr_t = as_rate(lr, keys, "lr")
    dec = as_rate(decay, keys, "decay")
    check_decay(dec)
    n, d_k, d_v = keys.shape[-2], keys.shape[-1], values.shape[-1]
    batch = _batch_shape(M, keys, values, lr_t, dec)
    M = M.expand(*batch, d_k, d_v)
    if n == 0:
        return M.clone(), values.new_zeros(*batch, 0, d_v)

    c = min(chunk_size, n)
    n_chunks = -(-n // c)
    pad = n_chunks * c - n
    keys = keys.expand(*batch, n, d_k)
    values = values.expand(*batch, n, d_v)
    eta = lr_t.expand(*batch, n)
    lam = None if dec is None else dec.expand(*batch, n)
    if pad:
        # Padding items: zero key and zero rate give u = 0 and no change; decay 1 keeps M.
        keys = torch.cat([keys, keys.new_zeros(*batch, pad, d_k)], dim=-2)
        values = torch.cat([values, values.new_zeros(*batch, pad, d_v)], dim=-2)
        eta = torch.cat([eta, eta.new_zeros(*batch, pad)], dim=-1)
        if lam is not None:
            lam = torch.cat([lam, lam.new_ones(*batch, pad)], dim=-1)

    # [..., n_chunks, C, d]
    Kc = keys.reshape(*batch, n_chunks, c, d_k)
    Vc = values.reshape(*batch, n_chunks, c, d_v)
    Ec = eta.reshape(*batch, n_chunks, c)

    gram = Kc @ Kc.mT  # [..., n_chunks, C, C]
    if lam is not None:
        Lc = lam.reshape(*batch, n_chunks, c)
        D = _segment_decay(Lc)  # [..., n_chunks, C, C]
        g = torch.cumprod(Lc, dim=-1)  # decay from chunk start to item i, inclusive
        g_end = g[..., -1]  # [..., n_chunks]
        d_end = D[..., -1, :]  # prod_{j<m<=C} lambda_m: decay after item j to chunk end
        gram = gram * D
    eye = torch.eye(c, dtype=keys.dtype, device=keys.device)
    IA = eye + (Ec[..., :, None] * gram).tril(-1)
    # One batched triangular solve for all chunks: [U~ | W] = T [diag(eta) V | diag(eta g) K].
    wk = Ec if lam is None else Ec * g
    rhs = torch.cat([Ec[..., None] * Vc, wk[..., None] * Kc], dim=-1)
    sol = torch.linalg.solve_triangular(IA, rhs, upper=False, unitriangular=True)
    U_tilde, W = sol[..., :d_v], sol[..., d_v:]
    # Keys weighted by the decay after each item to the chunk end, for the state update.
    Kend = Kc if lam is None else Kc * d_end[..., None]

    S = M
    us = []
    for ci in range(n_chunks):
        U = U_tilde[..., ci, :, :] - W[..., ci, :, :] @ S
        if lam is None:
            S = S + Kend[..., ci, :, :].mT @ U
        else:
            S = _scale_matrix(S, g_end[..., ci]) + Kend[..., ci, :, :].mT @ U
        us.append(U)
    u_all = torch.cat(us, dim=-2)[..., :n, :]
    if S is M:
        S = S.clone()
    return S, u_all
