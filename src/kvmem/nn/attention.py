"""Key-value attention with learned projections: the slot read as a layer (docs/science.md 1.2).

Input ``x [batch, T, d_model]`` (and optionally a separate ``context [batch, N, d_model]``
to read from). Learned projections give queries, keys and values per head,

    Q = x W_q,  K = c W_k,  V = c W_v          ([batch, heads, T|N, d_k|d_v])
    A = sigma(S(Q, K))                          (read weights over the stored values)
    out = concat_heads(A V) W_o                 ([batch, T, d_model])

with ``S`` any kvmem similarity (``kvmem.core.similarity``) and ``sigma`` any kvmem
separation (``kvmem.core.separation``). Each row of ``A`` is the dual reading: the output
for a token is a weighted sum of the stored values, the weights being how well its query
matches each stored key. With ``similarity="scaled_dot"`` (``q.k / sqrt(d_k)``) and
``separation="softmax"`` this is standard (multi-head) scaled dot-product attention and is
computed by ``torch.nn.functional.scaled_dot_product_attention`` (SDPA: fused kernels, no
``[T, N]`` weight matrix kept for backward) unless the weights are asked for; so is
``similarity="dot"`` with softmax, and a softmax ``beta`` (SDPA's ``scale`` is
``beta / sqrt(d_k)`` or ``beta``). ``causal=True`` lets token ``t`` read only items
``n <= t + N - T`` (aligned at the end, so ``N = T`` is the usual lower triangle and a
longer context is a prefix every token may read); softmax-family separations see ``-inf``
scores on masked items, other separations have masked weights set to zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kvmem.core.separation import canonical_separation_name, get_separation, separation_name
from kvmem.core.similarity import canonical_similarity_name, get_similarity, similarity_name

__all__ = ["KeyValueAttention", "check_sequence"]

_NEG_INF_SEPARATIONS = {"softmax", "hard_max", "top_k", "sparsemax"}


def check_sequence(x: Any, d_model: int, name: str = "x") -> torch.Tensor:
    """Raise a clear error unless ``x`` is a tensor ``[batch, T, d_model]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor [batch, T, {d_model}], got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(
            f"{name}: expected shape [batch, T, {d_model}], "
            f"got shape [{', '.join(map(str, x.shape))}]"
        )
    return x


class KeyValueAttention(nn.Module):
    """Multi-head key-value attention: ``out = concat_h(sigma(S(x W_q, c W_k)) c W_v) W_o``.

    Args: ``d_model`` input/output width; ``d_k``, ``d_v`` per-head key and value widths
    (``d_v`` defaults to ``d_k``); ``heads``; ``similarity`` / ``separation`` a kvmem name
    or callable, with ``similarity_params`` / ``separation_params``; ``causal``;
    ``out_proj`` (``False``: no output projection, output ``[batch, T, heads * d_v]``);
    ``bias`` for the projections.
    Forward: ``x [B, T, d_model]``, optional ``context [B, N, d_model]`` (default ``x``);
    returns ``[B, T, d_model]``, and the weights ``[B, heads, T, N]`` when
    ``return_weights=True``.
    """

    def __init__(
        self,
        d_model: int,
        d_k: int,
        d_v: int | None = None,
        heads: int = 1,
        similarity: str | Callable[..., torch.Tensor] = "scaled_dot",
        separation: str | Callable[..., torch.Tensor] = "softmax",
        causal: bool = False,
        out_proj: bool = True,
        bias: bool = False,
        similarity_params: dict[str, Any] | None = None,
        separation_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, val in (("d_model", d_model), ("d_k", d_k), ("heads", heads)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {val!r}")
        d_v = d_k if d_v is None else d_v
        if not isinstance(d_v, int) or d_v < 1:
            raise ValueError(f"d_v: expected an integer >= 1, got {d_v!r}")
        self.d_model, self.d_k, self.d_v, self.heads = d_model, d_k, d_v, heads
        self.causal = bool(causal)
        self.similarity = get_similarity(similarity, **(similarity_params or {}))
        self.separation = get_separation(separation, **(separation_params or {}))
        # Names from the arguments (a bound parameter such as beta hides the function's name).
        self._sim_name = (
            canonical_similarity_name(similarity)
            if isinstance(similarity, str)
            else similarity_name(similarity)
        )
        self._sep_name = (
            canonical_separation_name(separation)
            if isinstance(separation, str)
            else separation_name(separation)
        )
        # The SDPA fast path: softmax over (scaled) dot products, at SDPA's ``scale``.
        beta = float((separation_params or {}).get("beta") or 1.0)
        self._sdpa_scale: float | None = None
        if self._sep_name == "softmax" and not (similarity_params or {}):
            if self._sim_name == "scaled_dot":
                self._sdpa_scale = beta / math.sqrt(d_k)
            elif self._sim_name == "dot":
                self._sdpa_scale = beta
        self.W_q = nn.Linear(d_model, heads * d_k, bias=bias)
        self.W_k = nn.Linear(d_model, heads * d_k, bias=bias)
        self.W_v = nn.Linear(d_model, heads * d_v, bias=bias)
        self.W_o = nn.Linear(heads * d_v, d_model, bias=bias) if out_proj else None

    def _split(self, t: torch.Tensor, d: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, d).transpose(1, 2)

    def project(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries ``[B, H, T, d_k]``, keys ``[B, H, N, d_k]``, values ``[B, H, N, d_v]``."""
        check_sequence(x, self.d_model, "x")
        c = x if context is None else check_sequence(context, self.d_model, "context")
        if c.shape[0] != x.shape[0]:
            raise ValueError(
                f"context: expected batch size {x.shape[0]} to match x, got {c.shape[0]}"
            )
        q = self._split(self.W_q(x), self.d_k)
        k = self._split(self.W_k(c), self.d_k)
        v = self._split(self.W_v(c), self.d_v)
        return q, k, v

    def _mask(self, t: int, n: int, device: torch.device) -> torch.Tensor:
        """Causal mask ``[T, N]`` (True = may read), aligned at the end; needs ``N >= T``."""
        if n < t:
            raise ValueError(
                f"context: causal attention needs at least as many items as tokens "
                f"(N >= T = {t}), got N = {n}"
            )
        return torch.ones(t, n, dtype=torch.bool, device=device).tril(n - t)

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Pre-separation match ``S(q, k)`` ``[B, H, T, N]`` (a feeling-of-knowing signal)."""
        return self.similarity(q, k)

    def weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Read weights ``A = sigma(S(q, k))`` ``[B, H, T, N]``, causal mask applied."""
        scores = self.similarity(q, k)
        if not self.causal:
            return self.separation(scores)
        t, n = scores.shape[-2], scores.shape[-1]
        mask = self._mask(t, n, scores.device)
        if self._sep_name in _NEG_INF_SEPARATIONS:
            return self.separation(scores.masked_fill(~mask, float("-inf")))
        return self.separation(scores) * mask

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, d_model]`` (and ``context [B, N, d_model]``) -> ``[B, T, d_model]``.

        With ``return_weights=True`` also the read weights ``[B, heads, T, N]`` (the
        explicit path, not SDPA).
        """
        q, k, v = self.project(x, context)
        if self._sdpa_scale is not None and not return_weights:
            t, n = q.shape[-2], k.shape[-2]
            mask = self._mask(t, n, q.device) if self.causal and t != n else None
            o = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=self.causal and t == n,
                scale=self._sdpa_scale,
            )
            w = None
        else:
            w = self.weights(q, k)
            o = w.to(v.dtype) @ v
        b, _, t, _ = o.shape
        o = o.transpose(1, 2).reshape(b, t, self.heads * self.d_v)
        if self.W_o is not None:
            o = self.W_o(o)
        if return_weights:
            return o, w
        return o
