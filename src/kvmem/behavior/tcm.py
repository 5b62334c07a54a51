"""The temporal context model of free recall as a key-value memory (docs/science.md 1.7, 4 item 12).

A drifting *context* vector is the key, the studied *item* the value (Howard & Kahana 2002,
TCM; Polyn, Norman & Kahana 2009, CMR without its semantic and source parts). Items are
one-hot features ``f_i`` (``L`` units for a list of ``L`` words); context has ``L + 1``
units (unit 0 marks the start of the list, unit ``i + 1`` is item ``i``'s pre-experimental
context). Two :class:`kvmem.MatrixMemory` hold the associations (docs/science.md 1.1,
``v_hat = q M``, Hebbian write ``M <- M + eta k^T v``):

- item -> context ``M^FC`` (key ``f``, value ``c``, ``[L, L + 1]``), pre-experimental part
  ``M^FC_0 = (1 - gamma) P`` (``P`` maps item ``i`` to context unit ``i + 1``), written
  with rate ``gamma``: ``M^FC <- M^FC + gamma f_i^T c_i``;
- context -> item ``M^CF`` (key ``c``, value ``f``, ``[L + 1, L]``), pre-experimental part
  ``M^CF_0 = alpha 1 + delta P^T``, written with the primacy gradient
  ``phi_i = phi_s exp(-phi_d (i - 1)) + 1``: ``M^CF <- M^CF + phi_i c_i^T f_i``.

Context drift (every study event and every recall). The input is what the item retrieves,
``c_in = f M^FC / |f M^FC|``, and

    c_i = rho_i c_{i-1} + beta c_in,
    rho_i = sqrt(1 + beta^2 ((c_{i-1} . c_in)^2 - 1)) - beta (c_{i-1} . c_in),

the one ``rho`` that keeps ``|c_i| = 1``; ``beta = B_enc`` at study, ``B_rec`` after a
recall, and ``B_start`` for the drift back towards the start-of-list unit before recall
begins.

Retrieval: the current context cues ``M^CF``, ``a = c M^CF`` (``[L]``, one match strength
per item). Recall at output position ``n`` (``n`` recalls made so far) stops with
probability ``p_stop(n) = min(1, x1 exp(x2 n))`` (CMR's exponential stop rule; 1 once every
item is out); otherwise item ``j`` (not yet recalled) wins by Luce choice on
``a_j^tau``:

    P(j) = (1 - p_stop(n)) a_j^tau / sum_{k not recalled} a_k^tau.

A recalled item reinstates its study context through ``M^FC`` (the drift above with
``B_rec``). Everything is batched over trials (lists): encoding is the same for every list
(items are positions), so its memories are shared, and recall runs as ``[T, ...]`` tensors
with one loop over output positions. :func:`log_likelihood` gives each recorded sequence's
log probability (its stop included) and is differentiable in the parameters;
:func:`simulate` draws recall sequences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from kvmem.core.matrix_memory import MatrixMemory

__all__ = [
    "PARAM_NAMES",
    "BOUNDS",
    "Encoded",
    "drift",
    "primacy",
    "encode",
    "choice_log_probs",
    "log_likelihood",
    "simulate",
]

#: The model's free parameters, in the order of a parameter vector.
PARAM_NAMES: tuple[str, ...] = (
    "B_enc",
    "B_rec",
    "B_start",
    "gamma",
    "alpha",
    "delta",
    "phi_s",
    "phi_d",
    "tau",
    "stop_x1",
    "stop_x2",
)

#: Search bounds of the maximum-likelihood fit (all within the model's valid range).
BOUNDS: dict[str, tuple[float, float]] = {
    "B_enc": (0.05, 0.95),
    "B_rec": (0.05, 0.95),
    "B_start": (0.0, 0.95),
    "gamma": (0.0, 0.95),
    "alpha": (1e-4, 1.0),
    "delta": (0.0, 10.0),
    "phi_s": (0.0, 20.0),
    "phi_d": (0.0, 5.0),
    "tau": (0.5, 30.0),
    "stop_x1": (1e-4, 0.5),
    "stop_x2": (0.0, 1.0),
}

_EPS = 1e-12
Params = Mapping[str, float | torch.Tensor]


def _p(params: Params, name: str, dtype: torch.dtype) -> torch.Tensor:
    v = params[name]
    return v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=dtype)


def drift(c: torch.Tensor, c_in: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """One context update ``c' = rho c + beta c_in`` with ``|c'| = 1``: ``[..., d] -> [..., d]``.

    ``c`` and ``c_in`` must be unit vectors; ``rho = sqrt(1 + beta^2 ((c . c_in)^2 - 1)) -
    beta (c . c_in)`` (Howard & Kahana 2002), ``0 <= beta < 1``.
    """
    dot = (c * c_in).sum(-1, keepdim=True)
    rho = torch.sqrt(1 + beta**2 * (dot**2 - 1)) - beta * dot
    return rho * c + beta * c_in


def primacy(params: Params, list_length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Learning rates of ``M^CF``, ``phi_i = phi_s exp(-phi_d (i - 1)) + 1``: ``[L]``."""
    i = torch.arange(list_length, dtype=dtype)
    return _p(params, "phi_s", dtype) * torch.exp(-_p(params, "phi_d", dtype) * i) + 1


@dataclass
class Encoded:
    """The state after study: final context ``[L + 1]`` and the two associative memories."""

    context: torch.Tensor
    fc: MatrixMemory
    cf: MatrixMemory
    list_length: int


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=_EPS)


def encode(params: Params, list_length: int, dtype: torch.dtype = torch.float64) -> Encoded:
    """Study one list of ``list_length`` items (the same for every trial), see module doc.

    Returns the context after the last item and ``M^FC`` ``[L, L + 1]`` / ``M^CF``
    ``[L + 1, L]`` as :class:`MatrixMemory` (Hebbian, pre-experimental ``M0``).
    """
    n, d = list_length, list_length + 1
    proj = torch.zeros(n, d, dtype=dtype)
    proj[torch.arange(n), torch.arange(1, d)] = 1.0  # item i -> context unit i + 1
    gamma = _p(params, "gamma", dtype)
    fc = MatrixMemory(n, d, M0=(1 - gamma) * proj, keep_pairs=False)
    cf0 = _p(params, "alpha", dtype) * torch.ones(d, n, dtype=dtype)
    cf = MatrixMemory(d, n, M0=cf0 + _p(params, "delta", dtype) * proj.T, keep_pairs=False)
    phi = primacy(params, n, dtype)
    b_enc = _p(params, "B_enc", dtype)
    c = torch.zeros(1, d, dtype=dtype)
    c[0, 0] = 1.0
    eye = torch.eye(n, dtype=dtype)
    for i in range(n):  # study positions
        f = eye[i : i + 1]  # [1, L]
        c = drift(c, _normalise(fc.read(f)), b_enc)
        fc.write(f, c, lr=gamma)
        cf.write(c, f, lr=phi[i])
    return Encoded(context=c[0], fc=fc, cf=cf, list_length=n)


def _start_context(enc: Encoded, params: Params, n_trials: int) -> torch.Tensor:
    dtype = enc.context.dtype
    start = torch.zeros_like(enc.context)
    start[0] = 1.0
    c = drift(enc.context, start, _p(params, "B_start", dtype))
    return c.expand(n_trials, -1)


def choice_log_probs(
    enc: Encoded, params: Params, context: torch.Tensor, recalled: torch.Tensor, n_out: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log probabilities of the next event: ``(log P(item j) [T, L], log P(stop) [T])``.

    ``context [T, L + 1]``, ``recalled`` bool ``[T, L]``, ``n_out`` recalls made so far
    (the same for all ``T`` rows). ``P(j) = (1 - p_stop) a_j^tau / sum_k a_k^tau`` over
    items not yet recalled, ``a = c M^CF``; recalled items get ``-inf``.
    """
    dtype = context.dtype
    if n_out >= enc.list_length:  # every item recalled: stop for sure
        n = context.shape[0]
        return torch.full((n, enc.list_length), -math.inf, dtype=dtype), torch.zeros(n, dtype=dtype)
    a = enc.cf.read(context).clamp(min=_EPS)
    logits = (_p(params, "tau", dtype) * a.log()).masked_fill(recalled, -math.inf)
    p_stop = (_p(params, "stop_x1", dtype) * torch.exp(_p(params, "stop_x2", dtype) * n_out)).clamp(
        _EPS, 1 - 1e-9
    )
    log_items = torch.log_softmax(logits, dim=-1) + torch.log1p(-p_stop)
    return log_items, torch.log(p_stop).expand(context.shape[0])


def _reinstate(
    enc: Encoded, params: Params, context: torch.Tensor, items: torch.Tensor, active: torch.Tensor
) -> torch.Tensor:
    f = torch.nn.functional.one_hot(items, enc.list_length).to(context.dtype)
    moved = drift(context, _normalise(enc.fc.read(f)), _p(params, "B_rec", context.dtype))
    return torch.where(active[:, None], moved, context)


def log_likelihood(
    params: Params, recalls: torch.Tensor, list_length: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Log probability of each recorded recall sequence, its stop included: ``[T]``.

    ``recalls``: int ``[T, R]`` 0-based serial positions in output order, ``-1`` after the
    last recall (no repeats or intrusions; :func:`kvmem.data.free_recall.recall_matrix`).
    ``log L_t = sum_n log P(r_tn) + log P(stop after the last recall)``. Batched over
    trials, one loop over output positions; differentiable in tensor-valued ``params``.
    """
    recalls = torch.as_tensor(recalls, dtype=torch.int64)
    n_trials, width = recalls.shape
    lengths = (recalls >= 0).sum(-1)
    enc = encode(params, list_length, dtype)
    context = _start_context(enc, params, n_trials)
    recalled = torch.zeros(n_trials, list_length, dtype=torch.bool)
    total = torch.zeros(n_trials, dtype=dtype)
    for n in range(int(lengths.max()) + 1 if n_trials else 0):  # output positions
        log_items, log_stop = choice_log_probs(enc, params, context, recalled, n)
        total = total + torch.where(lengths == n, log_stop, 0.0)
        if n >= width:
            break
        active = lengths > n
        item = recalls[:, n].clamp(min=0)
        picked = log_items.gather(-1, item[:, None]).squeeze(-1)
        total = total + torch.where(active, picked, 0.0)
        recalled = recalled | (
            torch.nn.functional.one_hot(item, list_length).bool() & active[:, None]
        )
        context = _reinstate(enc, params, context, item, active)
    return total


def simulate(
    params: Params,
    list_length: int,
    n_trials: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Draw ``n_trials`` recall sequences: int ``[T, L]`` 0-based positions, ``-1`` padding.

    The same process as :func:`log_likelihood` (stop draw, then a Luce choice), batched
    over trials; deterministic for a seeded ``generator``.
    """
    enc = encode(params, list_length, dtype)
    context = _start_context(enc, params, n_trials)
    recalled = torch.zeros(n_trials, list_length, dtype=torch.bool)
    active = torch.ones(n_trials, dtype=torch.bool)
    out = torch.full((n_trials, list_length), -1, dtype=torch.int64)
    for n in range(list_length):  # output positions
        log_items, log_stop = choice_log_probs(enc, params, context, recalled, n)
        u = torch.rand(n_trials, generator=generator, dtype=dtype)
        active = active & (u >= log_stop.exp())
        if not bool(active.any()):
            break
        probs = torch.softmax(log_items, dim=-1)  # renormalised over unrecalled items
        item = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        out[:, n] = torch.where(active, item, -1)
        recalled = recalled | (
            torch.nn.functional.one_hot(item, list_length).bool() & active[:, None]
        )
        context = _reinstate(enc, params, context, item, active)
    return out
