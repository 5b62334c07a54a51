"""Fast-weight memory: the matrix form as a causal sequence layer (docs/science.md 1.1, 1.3).

Per head, a ``d_k x d_v`` state ``S`` is written by every token and read by its query
(linear attention / fast weights, Schlag, Irie & Schmidhuber 2021; DeltaNet, Yang et al.
2024). With ``q_t, k_t`` (L2-normalised), ``v_t`` learned projections of ``x_t`` and a
learned write strength ``beta_t = sigmoid(x_t W_beta)``, optional decay ``lambda``:

    hebbian:  u_t = beta_t v_t
    delta:    u_t = beta_t (v_t - lambda k_t S_{t-1})          (correct the error on k_t)
    S_t = lambda S_{t-1} + k_t^T u_t,     o_t = q_t S_t        (causal, inclusive read)

``fast_weight_chunked`` computes this chunkwise in parallel (the WY / UT form of
``kvmem.core.write_rules.delta_write_chunked``): inside a chunk of ``C`` tokens starting
from state ``S``, with ``D[i, j] = lambda^(i-j)`` (``j <= i``) and ``g_i = lambda^i``,

    (I + strict_lower(diag(beta) (K K^T * D))) U = diag(beta) V - diag(beta g) K S
    O = diag(g) Q S + (Q K^T * D) U,        S <- g_C S + K^T diag(D[C, :]) U,

one triangular solve for all chunks and one pair of matmuls per chunk hand-over.
Gradients are autograd through this form. ``fast_weight_reference`` is the step-by-step
recurrence beside it (tests compare values and gradients).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kvmem.core.validation import check_int_at_least
from kvmem.core.write_rules import _segment_decay
from kvmem.nn.attention import check_sequence

__all__ = ["FastWeightMemory", "fast_weight_chunked", "fast_weight_reference"]

Rule = Literal["hebbian", "delta"]


def _check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, rule: str
) -> None:
    if rule not in ("hebbian", "delta"):
        raise ValueError(f"rule: expected 'hebbian' or 'delta', got {rule!r}")
    if q.ndim < 2 or q.shape != k.shape or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            "q, k, v: expected shapes [..., T, d_k], [..., T, d_k], [..., T, d_v], got "
            f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}"
        )
    if beta.shape != k.shape[:-1]:
        raise ValueError(f"beta: expected shape {list(k.shape[:-1])}, got {list(beta.shape)}")


def fast_weight_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    rule: Rule = "delta",
    decay: float | None = None,
) -> torch.Tensor:
    """Step-by-step recurrence: ``q, k [..., T, d_k]``, ``v [..., T, d_v]``, ``beta [..., T]``.

    Returns outputs ``o [..., T, d_v]`` with ``o_t = q_t S_t`` (module docstring equations),
    starting from ``S_0 = 0``. A Python loop over T: the reference, not the fast path.
    """
    _check_inputs(q, k, v, beta, rule)
    S = q.new_zeros(*k.shape[:-2], k.shape[-1], v.shape[-1])
    outs = []
    for t in range(k.shape[-2]):
        kt, vt, qt = k[..., t : t + 1, :], v[..., t : t + 1, :], q[..., t : t + 1, :]
        b = beta[..., t, None, None]
        if decay is not None:
            S = S * decay
        u = b * (vt - kt @ S) if rule == "delta" else b * vt
        S = S + kt.mT @ u
        outs.append(qt @ S)
    return torch.cat(outs, dim=-2)


def fast_weight_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    rule: Rule = "delta",
    decay: float | None = None,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Chunkwise-parallel form of ``fast_weight_reference`` (same arguments and output).

    float16 / bfloat16 inputs are computed in float32 (the triangular solve needs it) and
    returned in their own dtype. ``T`` need not be a multiple of ``chunk_size`` (zero-padded).
    """
    _check_inputs(q, k, v, beta, rule)
    chunk_size = check_int_at_least(chunk_size, 1, "chunk_size")
    low = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else None
    if low is not None:
        q, k, v, beta = q.float(), k.float(), v.float(), beta.float()
    *batch, n, d_k = k.shape
    d_v = v.shape[-1]
    c = min(chunk_size, max(n, 1))
    n_chunks = -(-n // c)
    pad = n_chunks * c - n
    if pad:
        q = F.pad(q, (0, 0, 0, pad))
        k = F.pad(k, (0, 0, 0, pad))
        v = F.pad(v, (0, 0, 0, pad))
        beta = F.pad(beta, (0, pad))
    Qc = q.reshape(*batch, n_chunks, c, d_k)
    Kc = k.reshape(*batch, n_chunks, c, d_k)
    Vc = v.reshape(*batch, n_chunks, c, d_v)
    Bc = beta.reshape(*batch, n_chunks, c)
    if decay is None:
        D = torch.ones(c, c, dtype=q.dtype, device=q.device).tril()
        g = None
    else:
        lam = torch.full((c,), float(decay), dtype=q.dtype, device=q.device)
        D = _segment_decay(lam)  # [C, C]
        g = torch.cumprod(lam, 0)  # [C]
    attn = (Qc @ Kc.mT) * D  # inclusive causal read inside a chunk
    if rule == "delta":
        IA = torch.eye(c, dtype=q.dtype, device=q.device) + (
            Bc[..., :, None] * ((Kc @ Kc.mT) * D)
        ).tril(-1)
        wk = Bc if g is None else Bc * g
        rhs = torch.cat([Bc[..., None] * Vc, wk[..., None] * Kc], dim=-1)
        sol = torch.linalg.solve_triangular(IA, rhs, upper=False, unitriangular=True)
        U_tilde, W = sol[..., :d_v], sol[..., d_v:]
    else:
        U_tilde, W = Bc[..., None] * Vc, None
    Qg = Qc if g is None else Qc * g[:, None]
    Kend = Kc if g is None else Kc * D[-1, :, None]
    g_end = None if g is None else g[-1]
    S = q.new_zeros(*batch, d_k, d_v)
    outs = []
    for ci in range(n_chunks):
        U = U_tilde[..., ci, :, :]
        if W is not None:
            U = U - W[..., ci, :, :] @ S
        outs.append(Qg[..., ci, :, :] @ S + attn[..., ci, :, :] @ U)
        S = (S if g_end is None else S * g_end) + Kend[..., ci, :, :].mT @ U
    o = torch.cat(outs, dim=-2)[..., :n, :]
    return o.to(low) if low is not None else o


class FastWeightMemory(nn.Module):
    """Causal fast-weight layer (linear attention / DeltaNet): ``[B, T, d_model] -> same``.

    Args: ``d_model``; ``d_k`` and ``d_v`` per-head state size (``d_v`` defaults to
    ``d_k``; the state is ``heads x d_k x d_v``); ``heads``; ``rule`` ``"hebbian"`` or
    ``"delta"``; ``decay`` lambda in (0, 1] or None; ``chunk_size``; ``learn_beta``
    (``False``: beta_t = 1); ``normalize`` (L2-normalise q, k; needed for a stable delta
    rule); ``naive=True`` runs the step-by-step reference instead (for checks).
    """

    def __init__(
        self,
        d_model: int,
        d_k: int,
        d_v: int | None = None,
        heads: int = 1,
        rule: Rule = "delta",
        decay: float | None = None,
        chunk_size: int = 64,
        learn_beta: bool = True,
        normalize: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        for name, val in (("d_model", d_model), ("d_k", d_k), ("heads", heads)):
            check_int_at_least(val, 1, name)
        if rule not in ("hebbian", "delta"):
            raise ValueError(f"rule: expected 'hebbian' or 'delta', got {rule!r}")
        if decay is not None and not (0.0 < float(decay) <= 1.0):
            raise ValueError(f"decay: expected a value in (0, 1] or None, got {decay!r}")
        self.chunk_size = check_int_at_least(chunk_size, 1, "chunk_size")
        d_v = d_k if d_v is None else check_int_at_least(d_v, 1, "d_v")
        self.d_model, self.d_k, self.d_v, self.heads = d_model, d_k, d_v, heads
        self.rule, self.decay, self.normalize = rule, decay, normalize
        self.W_q = nn.Linear(d_model, heads * d_k, bias=bias)
        self.W_k = nn.Linear(d_model, heads * d_k, bias=bias)
        self.W_v = nn.Linear(d_model, heads * d_v, bias=bias)
        self.W_beta = nn.Linear(d_model, heads, bias=True) if learn_beta else None
        self.W_o = nn.Linear(heads * d_v, d_model, bias=bias)

    def _heads(self, t: torch.Tensor, d: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, d).transpose(1, 2)

    def forward(self, x: torch.Tensor, naive: bool = False) -> torch.Tensor:
        check_sequence(x, self.d_model, "x")
        q = self._heads(self.W_q(x), self.d_k)
        k = self._heads(self.W_k(x), self.d_k)
        v = self._heads(self.W_v(x), self.d_v)
        if self.normalize:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        if self.W_beta is not None:
            beta = torch.sigmoid(self.W_beta(x)).transpose(1, 2)  # [B, H, T]
        else:
            beta = x.new_ones(x.shape[0], self.heads, x.shape[1])
        fn = fast_weight_reference if naive else fast_weight_chunked
        kw = {} if naive else {"chunk_size": self.chunk_size}
        o = fn(q, k, v, beta, self.rule, self.decay, **kw)
        b, _, t, _ = o.shape
        return self.W_o(o.transpose(1, 2).reshape(b, t, self.heads * self.d_v))
