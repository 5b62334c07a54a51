"""Modern Hopfield layers (Ramsauer et al. 2021, "Hopfield networks is all you need").

docs/science.md 1.4 (modern Hopfield) and 1.2 (the same read as softmax attention); the core
reference is ``kvmem.core.ModernHopfield``, which ``hopfield_retrieve`` equals when keys and
values are both the stored patterns (tests/nn/test_hopfield_layers.py).

The continuous modern Hopfield update of a state (query) pattern ``xi`` against stored
patterns ``Y`` (rows) with inverse temperature ``beta`` is

    xi_new = softmax(beta xi Y^T) Y,

which converges in one step for well-separated patterns. The layers follow the
``hopfield-layers`` package's interface: ``Hopfield`` associates a state sequence ``R``
with a stored sequence ``Y`` (both projected: ``xi = R W_q``, keys ``Y W_k``, values
``Y W_v``), running ``update_steps`` retrieval steps on the projected state before the
final read ``softmax(beta xi K^T) V W_o``; ``HopfieldLayer`` stores *learned* patterns
(``n_patterns`` learned keys and values: a key-value lookup table); ``HopfieldPooling``
uses ``n_queries`` learned state patterns to pool a sequence into a fixed-size output.
``beta`` defaults to ``1 / sqrt(d_hidden)``. Shapes: ``[batch, T, d_model]`` in, as
documented per class out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kvmem.core.validation import check_int_at_least, check_positive
from kvmem.nn.attention import check_sequence

__all__ = ["Hopfield", "HopfieldLayer", "HopfieldPooling", "hopfield_retrieve"]


def hopfield_retrieve(
    xi: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    beta: float,
    update_steps: int = 1,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``update_steps - 1`` updates ``xi <- softmax(beta xi K^T) K``, then the read.

    ``xi [..., T, d]``, ``keys [..., N, d]``, ``values [..., N, d_v]``, ``mask [T, N]``
    (True = may read). Returns ``(softmax(beta xi K^T) V [..., T, d_v], weights [..., T, N])``.
    """
    check_int_at_least(update_steps, 1, "update_steps")
    for step in range(update_steps):  # a few fixed-point updates (sequential by nature)
        s = beta * (xi @ keys.mT)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=-1)
        if step < update_steps - 1:
            xi = w @ keys  # the state moves in the (projected) key space
    return w @ values, w


class _HopfieldBase(nn.Module):
    def __init__(self, d_model: int, d_hidden: int | None, beta: float | None, update_steps: int):
        super().__init__()
        self.d_model = check_int_at_least(d_model, 1, "d_model")
        self.d_hidden = d_model if d_hidden is None else check_int_at_least(d_hidden, 1, "d_hidden")
        self.beta = 1.0 / math.sqrt(self.d_hidden) if beta is None else check_positive(beta, "beta")
        self.update_steps = check_int_at_least(update_steps, 1, "update_steps")


class Hopfield(_HopfieldBase):
    """Hopfield association of a state sequence with a stored sequence.

    Forward ``R [B, T, d_model]``, ``stored [B, N, d_model]`` (default ``R``: self-association);
    returns ``[B, T, d_model]`` (and weights ``[B, T, N]`` with ``return_weights``).
    ``causal=True`` lets state ``t`` retrieve only stored items ``<= t``.
    """

    def __init__(
        self,
        d_model: int,
        d_hidden: int | None = None,
        beta: float | None = None,
        update_steps: int = 1,
        causal: bool = False,
    ) -> None:
        super().__init__(d_model, d_hidden, beta, update_steps)
        self.causal = bool(causal)
        self.W_q = nn.Linear(d_model, self.d_hidden, bias=False)
        self.W_k = nn.Linear(d_model, self.d_hidden, bias=False)
        self.W_v = nn.Linear(d_model, self.d_hidden, bias=False)
        self.W_o = nn.Linear(self.d_hidden, d_model, bias=False)

    def forward(
        self, R: torch.Tensor, stored: torch.Tensor | None = None, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_sequence(R, self.d_model, "R")
        Y = R if stored is None else check_sequence(stored, self.d_model, "stored")
        mask = None
        if self.causal:
            t, n = R.shape[1], Y.shape[1]
            mask = torch.ones(t, n, dtype=torch.bool, device=R.device).tril(n - t)
        out, w = hopfield_retrieve(
            self.W_q(R), self.W_k(Y), self.W_v(Y), self.beta, self.update_steps, mask
        )
        out = self.W_o(out)
        return (out, w) if return_weights else out


class HopfieldLayer(_HopfieldBase):
    """Learned stored patterns: ``n_patterns`` keys ``[n, d_hidden]`` and values ``[n, d_model]``.

    Forward ``x [B, T, d_model] -> [B, T, d_model]``: each token's projected state
    retrieves from the learned table, ``softmax(beta (x W_q) K^T) V``.
    """

    def __init__(
        self,
        d_model: int,
        n_patterns: int,
        d_hidden: int | None = None,
        beta: float | None = None,
        update_steps: int = 1,
    ) -> None:
        super().__init__(d_model, d_hidden, beta, update_steps)
        self.n_patterns = check_int_at_least(n_patterns, 1, "n_patterns")
        self.W_q = nn.Linear(d_model, self.d_hidden, bias=False)
        self.keys = nn.Parameter(torch.randn(n_patterns, self.d_hidden) / math.sqrt(self.d_hidden))
        self.values = nn.Parameter(torch.randn(n_patterns, d_model) / math.sqrt(d_model))

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, self.d_model, "x")
        k, v = self.keys.to(x.dtype), self.values.to(x.dtype)
        out, w = hopfield_retrieve(self.W_q(x), k, v, self.beta, self.update_steps)
        return (out, w) if return_weights else out


class HopfieldPooling(_HopfieldBase):
    """Pool a sequence with ``n_queries`` learned state patterns (the ``hopfield-layers`` pooling).

    Forward ``x [B, T, d_model] -> [B, n_queries, d_model]`` (weights ``[B, n_queries, T]``
    with ``return_weights``): ``softmax(beta Xi (x W_k)^T) (x W_v)`` with ``Xi`` the learned
    queries ``[n_queries, d_hidden]``; a fixed-size summary of a variable-length sequence.
    """

    def __init__(
        self,
        d_model: int,
        n_queries: int = 1,
        d_hidden: int | None = None,
        beta: float | None = None,
        update_steps: int = 1,
    ) -> None:
        super().__init__(d_model, d_hidden, beta, update_steps)
        self.n_queries = check_int_at_least(n_queries, 1, "n_queries")
        self.query = nn.Parameter(torch.randn(n_queries, self.d_hidden) / math.sqrt(self.d_hidden))
        self.W_k = nn.Linear(d_model, self.d_hidden, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, self.d_model, "x")
        xi = self.query.to(x.dtype).expand(x.shape[0], -1, -1)
        out, w = hopfield_retrieve(xi, self.W_k(x), self.W_v(x), self.beta, self.update_steps)
        return (out, w) if return_weights else out
