"""``SlotMemory``: the dual ("slot", "attention") form of key-value memory (docs/science.md 1.2).

Each write appends key-value pairs; a read returns

    v_hat = sigma(S(q, K)) V            ([..., Q, d_k] -> [..., Q, d_v])

with ``S`` a similarity kernel (``kvmem.core.similarity``) and ``sigma`` a separation operator
(``kvmem.core.separation``). With ``S = dot`` and ``sigma = identity`` this is exactly the
correlation-matrix memory ``q M``, ``M = K^T V`` (docs/science.md 1.1): unnormalised linear
attention.

Reads whose score matrix would be large are computed in chunks over the memories with bounded
memory and the same result (online softmax for ``softmax``, running sums for the linear
operators, a running best for ``hard_max`` / ``top_k``).

>>> import torch
>>> from kvmem.core.slot_memory import SlotMemory
>>> mem = SlotMemory(similarity="dot", separation="hard_max")
>>> mem.write(torch.eye(3), torch.tensor([[1.0], [2.0], [3.0]]))
>>> mem.read(torch.tensor([[0.0, 0.9, 0.1]]))
tensor([[2.]])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from itertools import chain
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kvmem.core import separation as _sep
from kvmem.core import similarity as _sim
from kvmem.core.validation import (
    as_float_tensor,
    broadcast_shapes,
    check_finite,
    check_int_at_least,
    check_positive,
    finite_sum,
    shape_str,
)

__all__ = ["SlotMemory"]

#: Floating dtypes whose reads are computed in float32 (range and rounding of the scores).
_HALF = (torch.float16, torch.bfloat16)
_DOT_LIKE = ("dot", "scaled_dot")

# A read whose score matrix [..., Q, N] would exceed this many elements (64 MiB in float32) is
# computed in chunks over N. Chunking costs little (each chunk is still one matmul), so the
# bound is set for memory, not speed.
_AUTO_CHUNK_ELEMENTS = 1 << 24

# Separation operators whose chunked read is a plain sum of per-chunk contributions.
_SUMMABLE = ("identity", "threshold", "polynomial")
# Constructor arguments that belong to one operator / kernel only.
_SEPARATION_ARG = {"k": "top_k", "n": "polynomial", "theta": "threshold"}
_BETA_USERS = ("softmax", "sparsemax", "top_k")


# On CPU, dot-product softmax reads go to ``F.scaled_dot_product_attention`` when the score
# matrix has at least _SDPA_MIN_ELEMENTS elements (16 MiB in float32), or when there are at least
# _SDPA_MIN_N memories and _SDPA_MIN_Q queries per batch element. Its fused kernel reads K and V
# once in blocks and forms no [Q, N] score matrix: faster there (1.2-2.7x at Q >= 8, one thread,
# torch 2.13) and bounded in memory (it replaces the chunked online softmax). With few queries
# two matmuls and a softmax are as fast or faster (Q = 1: ~0.75x SDPA's time at N >= 1e5), and
# they keep the exact numbers every experiment was run with: SDPA's blocked online softmax
# agrees only to ~1e-6, so the cut-offs decide where the last bits change. The experiments' dot
# softmax reads (robustness: N = 64 memories, 50 x 832 x 64 = 2.7e6 scores) stay below both,
# and so does the docs' interference figure (N = Q <= 256).
_SDPA_MIN_ELEMENTS = 1 << 22
_SDPA_MIN_N = 512
_SDPA_MIN_Q = 8


def _cpu_sdpa(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, batch: torch.Size) -> bool:
    """Whether to hand a CPU dot-product softmax read to ``F.scaled_dot_product_attention``.

    (On CUDA every unchunked one goes there, ``SlotMemory._softmax_dot``.) Only float32 reads
    past the cut-offs above, whose stored keys and values need no broadcasting over the
    queries' batch (SDPA would copy them) and have at most two batch dimensions, so they fit
    the 4-D ``[B, H, N, d]`` layout of its fused CPU kernel as views.
    """
    if q.device.type != "cpu" or q.dtype != torch.float32 or len(batch) > 2:
        return False
    if not _past_sdpa_cut_off(_numel(batch), q.shape[-2], K.shape[-2]):
        return False
    return K.shape[:-2] == batch and V.shape[:-2] == batch


def _past_sdpa_cut_off(rows: int, num_q: int, num_n: int) -> bool:
    """Whether a read of ``num_q`` queries against ``num_n`` memories in each of ``rows``
    batch elements is large enough for SDPA (the cut-offs above)."""
    return num_q >= _sdpa_min_queries(rows, num_n)


def _sdpa_min_queries(rows: int, num_n: int) -> int:
    """The fewest queries per batch element past the cut-offs above: at least
    ``_SDPA_MIN_ELEMENTS`` scores in all, or ``_SDPA_MIN_Q`` queries against at least
    ``_SDPA_MIN_N`` memories. The 4-D read decides it once per write and compares one number."""
    by_size = -(-_SDPA_MIN_ELEMENTS // max(rows * num_n, 1))
    return min(by_size, _SDPA_MIN_Q) if num_n >= _SDPA_MIN_N else by_size


# The kernel F.scaled_dot_product_attention runs on CPU for float32 4-D inputs of one head
# dimension with unit last stride (torch's use_flash_attention_cpp). The 4-D read calls it
# directly for the per-query log-sum-exp it returns beside the output; torch builds without it
# keep F.scaled_dot_product_attention.
_FLASH_CPU: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = getattr(
    torch, "_scaled_dot_product_flash_attention_for_cpu", None
)
# torch.backends.cuda.flash_sdp_enabled without its Python frame: the switch that
# torch.nn.attention.sdpa_kernel turns off (for CPU reads too)
_flash_sdp_enabled: Callable[[], bool] = getattr(
    torch._C, "_get_flash_sdp_enabled", torch.backends.cuda.flash_sdp_enabled
)


# Autocast recasts F.scaled_dot_product_attention's inputs (bfloat16 on CPU) but not the flash
# kernel called directly: under any autocast the 4-D read keeps to SDPA
def _any_autocast() -> bool:
    """Whether CPU or CUDA autocast is on (torch builds without the C-level test)."""
    try:
        return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")
    except TypeError:  # torch < 2.4 takes no device
        return bool(torch.is_autocast_cpu_enabled() or torch.is_autocast_enabled())


_autocast_on: Callable[[], bool] = getattr(torch._C, "_is_any_autocast_enabled", _any_autocast)
_Tensor = torch.Tensor
_F32 = torch.float32
#: ``SlotMemory._sdpa_memory``'s decision, made once per write
_SdpaMemory = tuple[
    torch.Tensor, torch.Tensor, int, int, int, int, float, Callable[..., Any] | None
]
# Up to this many queries the flash read checks them through their log-sum-exps read back as a
# list (~0.6 us for 16) rather than a reduction kernel and ``.item()`` (~1.3 us, whatever the
# size), which above it checks the queries themselves.
_LSE_AS_LIST = 32


def _lse_clears_queries(lse: torch.Tensor) -> bool:
    """Whether a flash read's log-sum-exps ``lse [B, H, Q]`` prove its queries free of NaN / Inf.

    With finite keys (``write`` checks them), a query that holds a NaN or Inf has only NaN or
    +-Inf scores ``s_j = q . k_j`` (``Inf * 0`` is NaN). Its row's maximum is then NaN or +Inf,
    which makes ``max_j s_j + log sum_j exp(s_j - max_j s_j)`` NaN or Inf (``exp(Inf - Inf)``
    is NaN), or -Inf, a row the kernel treats as fully masked and gives a log-sum-exp of exactly
    0 (and an output of 0). So entries all finite and none 0 clear the queries, which a finite,
    non-zero product (in float64) shows in one pass: a NaN, an Inf or a 0 among them makes it
    NaN, Inf or 0. Anything else (also an overflow, an underflow, or a genuine 0) is for
    ``check_finite`` to sort out.
    """
    p = math.prod(chain.from_iterable(chain.from_iterable(lse.tolist())))
    return p != 0.0 and math.isfinite(p)


def _numel(shape: torch.Size | tuple[int, ...]) -> int:
    return int(math.prod(shape))


class SlotMemory:
    """Key-value memory in the dual (slot) form: stores pairs, reads ``sigma(S(q, K)) V``.

    ``similarity`` and ``separation`` are names (``SIMILARITIES``, ``SEPARATIONS``) or callables
    ``S(q, k) -> [..., Q, N]`` and ``sigma(s) -> [..., Q, N]``. Parameters go to the operator or
    kernel that uses them: ``beta`` (inverse temperature, > 0) to ``softmax``, ``sparsemax`` and
    ``top_k`` (ignored by the others; ``beta=None`` gives ``top_k`` uniform weights), ``k`` to
    ``top_k``, ``n`` to ``polynomial``, ``theta`` to ``threshold``, ``gamma`` to ``rbf``; giving
    ``k``, ``n``, ``theta`` or ``gamma`` to an operator or kernel that does not use it is a
    ``ValueError``. Further parameters (``eps``, ``num_features``, ``seed``, ``phi``,
    ``normalize``) go in ``similarity_params`` / ``separation_params``.

    ``chunk_size`` fixes the number of memories scored at a time in ``read`` (default: chunk
    only when the score matrix would exceed 2**24 elements).

    The first ``write`` fixes ``d_k``, ``d_v``, the leading batch shape, the device and the dtype;
    later writes and queries are converted to that device and dtype. Tensors are stored by
    reference (autograd flows through reads); numpy arrays are copied.
    """

    def __init__(
        self,
        similarity: str | Callable[..., torch.Tensor] = "dot",
        separation: str | Callable[..., torch.Tensor] = "softmax",
        beta: float | None = 1.0,
        k: int | None = None,
        n: float | None = None,
        theta: float | None = None,
        gamma: float | None = None,
        chunk_size: int | None = None,
        *,
        similarity_params: Mapping[str, Any] | None = None,
        separation_params: Mapping[str, Any] | None = None,
    ) -> None:
        # --- similarity kernel -------------------------------------------------------------
        sim_params = dict(similarity_params or {})
        if "gamma" in sim_params:
            raise ValueError("similarity_params: pass gamma as SlotMemory(gamma=...)")
        if isinstance(similarity, str):
            sim_name: str | None = _sim.canonical_similarity_name(similarity)
        elif callable(similarity):
            sim_name = _sim.similarity_name(similarity)
        else:
            raise TypeError(
                f"similarity: expected a name or a callable, got {type(similarity).__name__}"
            )
        if gamma is not None:
            if sim_name != "rbf":
                raise ValueError(
                    f"gamma: only used by similarity 'rbf', got similarity {sim_name or 'callable'}"
                )
            gamma = check_positive(gamma, "gamma")
            sim_params["gamma"] = gamma
        self._similarity = _sim.get_similarity(
            sim_name if sim_name is not None else similarity, **sim_params
        )

        # --- separation operator -----------------------------------------------------------
        sep_params = dict(separation_params or {})
        for p in ("beta", "k", "n", "theta"):
            if p in sep_params:
                raise ValueError(f"separation_params: pass {p} as SlotMemory({p}=...)")
        if isinstance(separation, str):
            sep_name: str | None = _sep.canonical_separation_name(separation)
        elif callable(separation):
            sep_name = _sep.separation_name(separation)
        else:
            raise TypeError(
                f"separation: expected a name or a callable, got {type(separation).__name__}"
            )
        if beta is not None:
            beta = check_positive(beta, "beta")
        if beta is not None and sep_name in _BETA_USERS:
            sep_params["beta"] = beta
        for arg, value in (("k", k), ("n", n), ("theta", theta)):
            if value is None:
                continue
            if sep_name != _SEPARATION_ARG[arg]:
                raise ValueError(
                    f"{arg}: only used by separation {_SEPARATION_ARG[arg]!r}, "
                    f"got separation {sep_name or 'callable'}"
                )
            sep_params[arg] = value
        if sep_name == "top_k" and k is None:
            raise ValueError("k: separation 'top_k' needs k (the number of memories kept)")
        self._separation = _sep.get_separation(
            sep_name if sep_name is not None else separation, **sep_params
        )
        # keep the validated values the chunked read needs
        self._sep_params: dict[str, Any] = {
            p: _sep._check_param(p, v) for p, v in sep_params.items()
        }

        if chunk_size is not None:
            chunk_size = check_int_at_least(chunk_size, 1, "chunk_size")

        self._sim_name = sim_name
        self._sep_name = sep_name
        self._user_similarity = similarity if sim_name is None else None
        self._user_separation = separation if sep_name is None else None
        self.beta = beta
        self.k = None if k is None else int(self._sep_params["k"])
        self.n = None if n is None else self._sep_params["n"]
        self.theta = None if theta is None else self._sep_params["theta"]
        self.gamma = gamma
        self.chunk_size = chunk_size
        self._similarity_params = {p: v for p, v in sim_params.items() if p != "gamma"}
        self._separation_params = {
            p: v for p, v in sep_params.items() if p not in ("beta", "k", "n", "theta")
        }
        self.clear()

    # ----------------------------------------------------------------------------- storage

    def clear(self) -> None:
        """Forget every memory and the fixed shapes, device and dtype (the config is kept)."""
        self._key_chunks: list[torch.Tensor] = []
        self._value_chunks: list[torch.Tensor] = []
        self._n = 0
        self._d_k: int | None = None
        self._d_v: int | None = None
        self._batch_shape: torch.Size | None = None
        self._dtype: torch.dtype | None = None
        self._device: torch.device | None = None
        self._invalidate()

    def _invalidate(self) -> None:
        self._keys_cache: torch.Tensor | None = None
        self._values_cache: torch.Tensor | None = None
        self._primal_cache: torch.Tensor | None = None
        # what the fast 4-D SDPA read needs of the memory (_sdpa_memory), False when it does
        # not apply, None: not decided yet
        self._sdpa_kv: _SdpaMemory | bool | None = None
        # (values, their version, whether they hold a -0.0): see _has_negative_zero
        self._negative_zero: tuple[torch.Tensor, int, bool] | None = None

    def __len__(self) -> int:
        """Number of stored memories N."""
        return self._n

    @property
    def d_k(self) -> int | None:
        """Key dimension (``None`` before the first write)."""
        return self._d_k

    @property
    def d_v(self) -> int | None:
        """Value dimension (``None`` before the first write)."""
        return self._d_v

    @property
    def batch_shape(self) -> torch.Size | None:
        """Leading batch shape fixed by the first write (``None`` before it)."""
        return self._batch_shape

    @property
    def dtype(self) -> torch.dtype | None:
        return self._dtype

    @property
    def device(self) -> torch.device | None:
        return self._device

    @property
    def similarity(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The bound kernel ``S(q, k) -> [..., Q, N]``."""
        return self._similarity

    @property
    def separation(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The bound operator ``sigma(s) -> [..., Q, N]``."""
        return self._separation

    @staticmethod
    def _concat(chunks: list[torch.Tensor], shape: tuple[int, ...], like: Any) -> torch.Tensor:
        if not chunks:
            return torch.empty(shape, dtype=like[0], device=like[1])
        if len(chunks) == 1:
            return chunks[0]
        # Collapse the list so the next concatenation starts from one block. Build the graph
        # even under no_grad: the block replaces the chunks for good, and a graph-less copy
        # would silently cut later reads off from the caller's tensors. CatBackward saves no
        # tensors, so a cached graph survives any number of backward passes.
        with torch.enable_grad():
            out = torch.cat(chunks, dim=-2)
        chunks[:] = [out]
        return out

    @property
    def keys(self) -> torch.Tensor | None:
        """Stored keys ``[..., N, d_k]`` (``None`` before the first write)."""
        if self._d_k is None:
            return None
        if self._keys_cache is None:
            assert self._batch_shape is not None
            shape = (*self._batch_shape, 0, self._d_k)
            self._keys_cache = self._concat(self._key_chunks, shape, (self._dtype, self._device))
        return self._keys_cache

    @property
    def values(self) -> torch.Tensor | None:
        """Stored values ``[..., N, d_v]`` (``None`` before the first write)."""
        if self._d_v is None:
            return None
        if self._values_cache is None:
            assert self._batch_shape is not None
            shape = (*self._batch_shape, 0, self._d_v)
            self._values_cache = self._concat(
                self._value_chunks, shape, (self._dtype, self._device)
            )
        return self._values_cache

    def write(self, keys: Any, values: Any) -> None:
        """Append pairs: keys ``[..., N, d_k]``, values ``[..., N, d_v]`` (docs/science.md 1.2).

        The leading (batch) shape and N must agree between keys and values. The first write
        fixes ``d_k``, ``d_v``, the batch shape, device and dtype (keys and values promoted to a
        common dtype); later writes must match them and are converted to that device and dtype.
        NaN / Inf or integer input is rejected.
        """
        first = self._d_k is None
        like = None if first else torch.empty(0, dtype=self._dtype, device=self._device)
        K = as_float_tensor(keys, "keys", min_ndim=2, like=like)
        V = as_float_tensor(values, "values", min_ndim=2, like=like)
        if first and (V.dtype != K.dtype or V.device != K.device):
            dt = torch.promote_types(K.dtype, V.dtype)
            K, V = K.to(dtype=dt), V.to(device=K.device, dtype=dt)
        # numpy input may share memory with the caller's array: copy so later edits don't leak in
        K, V = _own(K, keys), _own(V, values)
        if V.shape[:-1] != K.shape[:-1]:
            raise ValueError(
                f"values: expected shape {shape_str(K.shape[:-1])[:-1]}, d_v] to match keys "
                f"of shape {shape_str(K.shape)} (same batch shape and N), "
                f"got shape {shape_str(V.shape)}"
            )
        if not first:
            assert self._batch_shape is not None
            if K.shape[-1] != self._d_k:
                raise ValueError(
                    f"keys: expected d_k = {self._d_k} (shape [..., N, {self._d_k}]) as in "
                    f"earlier writes, got shape {shape_str(K.shape)}"
                )
            if V.shape[-1] != self._d_v:
                raise ValueError(
                    f"values: expected d_v = {self._d_v} (shape [..., N, {self._d_v}]) as in "
                    f"earlier writes, got shape {shape_str(V.shape)}"
                )
            if K.shape[:-2] != self._batch_shape:
                raise ValueError(
                    f"keys: expected batch shape {shape_str(self._batch_shape)} as in earlier "
                    f"writes (shape {shape_str(self._batch_shape)[:-1]}, N, {self._d_k}]), "
                    f"got shape {shape_str(K.shape)}"
                )
        else:
            self._d_k, self._d_v = int(K.shape[-1]), int(V.shape[-1])
            self._batch_shape = K.shape[:-2]
            self._dtype, self._device = K.dtype, K.device
        if K.shape[-2] == 0:
            return
        self._key_chunks.append(K)
        self._value_chunks.append(V)
        self._n += int(K.shape[-2])
        self._invalidate()

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> SlotMemory:
        """Move the stored memories (and the fixed device / dtype) in place; returns ``self``."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
        if self._d_k is None:
            return self
        K, V = self.keys, self.values
        assert K is not None and V is not None
        K, V = K.to(device=device, dtype=dtype), V.to(device=device, dtype=dtype)
        self._key_chunks = [K] if self._n else []
        self._value_chunks = [V] if self._n else []
        self._dtype, self._device = K.dtype, K.device
        self._invalidate()
        return self

    # ------------------------------------------------------------------------------ reading

    def _queries(self, queries: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """Validate queries against the memory; returns (q [..., Q, d_k], K, V, was_1d)."""
        if self._n == 0:
            raise ValueError("memory is empty: write keys and values before reading")
        K, V = self.keys, self.values
        assert K is not None and V is not None
        if (
            isinstance(queries, torch.Tensor)
            and queries.ndim == K.ndim
            and queries.shape[:-2] == K.shape[:-2]
            and queries.dtype == K.dtype
            and queries.device == K.device
            and queries.shape[-1] == self._d_k
            and K.dtype not in _HALF
        ):
            # The common case (issue 15, per-call overhead): queries with the memory's batch
            # shape, dtype and device need no conversion and broadcast trivially; only NaN /
            # Inf can fail. (check_finite's test without its dtype checks, done above)
            if not finite_sum(queries):
                check_finite(queries, "queries")
            return queries, K, V, False
        q = as_float_tensor(queries, "queries", min_ndim=1, like=K)
        squeeze = q.ndim == 1
        if squeeze:
            q = q.unsqueeze(0)
        if q.shape[-1] != self._d_k:
            raise ValueError(
                f"queries: expected last dimension d_k = {self._d_k} to match keys of shape "
                f"{shape_str(K.shape)}, got shape {shape_str(_caller_shape(queries, q))}"
            )
        try:
            broadcast_shapes(q.shape[:-2], K.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"queries: leading shape {shape_str(q.shape[:-2])} does not broadcast with the "
                f"memory's batch shape {shape_str(K.shape[:-2])} (keys of shape "
                f"{shape_str(K.shape)}), got shape {shape_str(q.shape)}"
            ) from None
        if K.dtype in _HALF:
            # Half-precision scores overflow at large beta (beta * s > 65504 gives inf - inf =
            # NaN in the softmax): compute in float32, hand back the caller's dtype.
            q, K, V = q.float(), K.float(), V.float()
        return q, K, V, squeeze

    def scores(self, queries: Any) -> torch.Tensor:
        """Pre-separation match ``S(q, K)``: ``[..., Q, d_k] -> [..., Q, N]`` (docs/science.md 1.2).

        The feeling-of-knowing signal: how well the cue matches what is stored, without
        retrieving a value. A 1-D query ``[d_k]`` gives ``[..., N]``.
        """
        q, K, _, squeeze = self._queries(queries)
        s = self._similarity(q, K)
        return _like_queries(s.squeeze(-2) if squeeze else s, queries)

    def attention(self, queries: Any) -> torch.Tensor:
        """Read weights ``sigma(S(q, K))``: ``[..., Q, d_k] -> [..., Q, N]`` (science 1.2)."""
        q, K, _, squeeze = self._queries(queries)
        w = self._separation(self._similarity(q, K))
        return _like_queries(w.squeeze(-2) if squeeze else w, queries)

    def read(self, queries: Any) -> torch.Tensor:
        """Retrieve ``v_hat = sigma(S(q, K)) V`` (docs/science.md 1.2).

        Queries ``[..., Q, d_k]`` give ``[..., Q, d_v]``. Leading dimensions of queries and
        memory broadcast; a 1-D query ``[d_k]`` gives ``[..., d_v]``. Large reads run in chunks
        over N with the same result. The output has the queries' device and floating dtype
        (as ``MatrixMemory.read``); the work is done in the memory's.
        """
        out = self._read_sdpa_4d(queries)
        if out is not None:
            return out
        q, K, V, squeeze = self._queries(queries)
        out = self._read(q, K, V)
        return _like_queries(out.squeeze(-2) if squeeze else out, queries)

    def _read_sdpa_4d(self, queries: Any) -> torch.Tensor | None:
        """The read of ``_read``'s CPU SDPA branch, for float32 CPU queries ``[B, H, Q, d_k]``
        with the memory's own 4-D batch shape; ``None`` for any other read (issue 15: the
        general path's validation and dispatch cost ~5 us, a tenth of a read of 1,000
        memories). The same conditions, check and kernel as the general path, so the same
        result; what depends only on the memory is decided once per write.

        Where F.scaled_dot_product_attention would run its flash kernel on the inputs as
        given (contiguous queries, d_v = d_k, flash not disabled by
        ``torch.nn.attention.sdpa_kernel``, no autocast) the kernel is called directly; for up
        to ``_LSE_AS_LIST`` queries its per-query log-sum-exp checks them for NaN / Inf
        (``_lse_clears_queries``): 16 values read back as a list instead of
        a reduction over all 1,024 of the queries, ~1 us of a 50 us read.
        """
        kv = self._sdpa_kv
        if kv is None:
            kv = self._sdpa_kv = self._sdpa_memory()
        if (
            kv is False
            or type(queries) is not _Tensor
            or queries.dtype is not _F32
            or not queries.is_cpu
            or queries.ndim != 4
            or self.chunk_size is not None
        ):
            return None
        K, V, b, h, d_k, min_q, dot_scale, flash = kv
        qb, qh, num_q, qd = queries.shape
        if qb != b or qh != h or qd != d_k or num_q < min_q:
            return None
        beta = self.beta  # (public, so read on every call: the same product as _softmax_scale)
        scale = (1.0 if beta is None else beta) * dot_scale
        if (
            flash is not None
            and queries.is_contiguous()
            and _flash_sdp_enabled()
            and not _autocast_on()
        ):
            out, lse = flash(queries, K, V, scale=scale)
            small = b * h * num_q <= _LSE_AS_LIST
            finite = _lse_clears_queries(lse) if small else finite_sum(queries)
        else:
            out = F.scaled_dot_product_attention(queries, K, V, scale=scale)
            finite = finite_sum(queries)
        # (finite_sum is check_finite's test without its dtype checks: float32 is known here)
        if not finite:
            check_finite(queries, "queries")
        return out

    def _sdpa_memory(self) -> _SdpaMemory | bool:
        """What ``_read_sdpa_4d`` needs of this memory, else False where its reads cannot take
        it (it reads a dot-product softmax memory of float32 CPU keys and values
        ``[B, H, N, d]``): ``(K, V, B, H, d_k, the fewest queries past the SDPA cut-off,
        _dot_scale(), flash)``, ``flash`` the
        CPU flash kernel where the stored K and V meet its conditions (one head dimension,
        unit last stride), else None."""
        if self._n == 0 or self._sep_name != "softmax" or self._sim_name not in _DOT_LIKE:
            return False
        K, V = self.keys, self.values
        assert K is not None and V is not None
        if (
            K.ndim != 4
            or K.dtype is not torch.float32
            or not K.is_cpu
            or V.shape[:2] != K.shape[:2]
        ):
            return False
        b, h, num_n, d_k = K.shape
        unit_last = K.stride(-1) == 1 and V.stride(-1) == 1
        flash = _FLASH_CPU if unit_last and V.shape[-1] == d_k else None
        min_q = _sdpa_min_queries(b * h, num_n)
        return K, V, b, h, d_k, min_q, self._dot_scale(), flash

    # ---- read strategies ------------------------------------------------------------------

    def _chunk_len(self, batch: torch.Size, num_q: int, num_n: int) -> int | None:
        """Memories per chunk, or ``None`` for a single full-matrix pass."""
        if self.chunk_size is not None:
            return self.chunk_size if self.chunk_size < num_n else None
        rows = _numel(batch) * num_q
        if rows * num_n <= _AUTO_CHUNK_ELEMENTS:
            return None
        return max(1, _AUTO_CHUNK_ELEMENTS // max(rows, 1))

    def _match(self, q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """``S(q, K)``; the dot kernel's product directly (``q`` and ``K`` are already checked
        and share a dtype, so ``similarity.dot``'s argument checks would only cost time)."""
        if self._sim_name == "dot":
            return q @ K.mT  # (the same view as transpose(-1, -2), made ~0.25 us faster)
        return self._similarity(q, K)

    def _dot_scale(self) -> float:
        """The factor that turns ``q @ K^T`` into this memory's dot-type score."""
        assert self._d_k is not None
        return 1.0 / math.sqrt(self._d_k) if self._sim_name == "scaled_dot" and self._d_k else 1.0

    def _softmax_scale(self) -> float:
        """The factor of ``q @ K^T`` inside a dot-type softmax read: ``beta * _dot_scale()``."""
        return (self.beta if self.beta is not None else 1.0) * self._dot_scale()

    def _primal(self, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``M = K^T V`` ``[..., d_k, d_v]`` (docs/science.md 1.1), cached unless it has a graph."""
        # With autograd on, recompute: a cached M with a graph would break a second backward
        # (MmBackward saves K and V), and one cached under no_grad would carry no gradient.
        if torch.is_grad_enabled() and (K.requires_grad or V.requires_grad):
            return K.transpose(-1, -2) @ V
        if self._primal_cache is None:
            self._primal_cache = K.transpose(-1, -2) @ V
        return self._primal_cache

    def _read(self, q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        sim, sep = self._sim_name, self._sep_name
        # (the same batch shape on both sides, e.g. none: without the broadcast's ~1 us)
        batch = (
            K.shape[:-2]
            if q.shape[:-2] == K.shape[:-2]
            else broadcast_shapes(q.shape[:-2], K.shape[:-2])
        )
        num_q, num_n = q.shape[-2], K.shape[-2]
        d_k, d_v = K.shape[-1], V.shape[-1]
        dot_like = sim in _DOT_LIKE

        if dot_like and sep == "identity":
            # Associativity: (q K^T) V = q (K^T V). The primal form costs N d_k d_v once plus
            # Q d_k d_v, the dual Q N (d_k + d_v); take the cheaper (and it never forms [Q, N]).
            if num_q * num_n * (d_k + d_v) > d_k * d_v * (num_n + num_q):
                return (q * self._dot_scale()) @ self._primal(K, V)

        if sep == "softmax" and dot_like and self.chunk_size is None and _cpu_sdpa(q, K, V, batch):
            # Large CPU reads: the fused kernel is faster and has bounded memory of its own.
            return self._sdpa(q, K, V, batch)
        chunk = self._chunk_len(batch, num_q, num_n)
        if sep == "softmax" and chunk is not None:
            return self._stream_softmax(q, K, V, chunk)
        if sep == "softmax" and dot_like:
            return self._softmax_dot(q, K, V, batch)
        if sep in _SUMMABLE:
            return self._stream_sum(q, K, V, chunk or num_n)
        if sep in ("hard_max", "top_k"):
            return self._stream_best(q, K, V, batch, chunk or num_n)
        # Unchunked non-dot softmax, sparsemax and user operators: whole rows of scores (rows
        # are independent, so memory is bounded by taking blocks of queries instead).
        return self._by_query_blocks(q, K, V, batch, chunk)

    def _softmax_dot(
        self, q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, batch: torch.Size
    ) -> torch.Tensor:
        """``softmax(beta * scale * q K^T) V`` as two matmuls (or fused SDPA on CUDA)."""
        scale = self._softmax_scale()
        if q.device.type == "cuda":
            qe = q.expand(*batch, *q.shape[-2:])
            Ke = K.expand(*batch, *K.shape[-2:])
            Ve = V.expand(*batch, *V.shape[-2:])
            return F.scaled_dot_product_attention(qe, Ke, Ve, scale=scale)
        return torch.softmax(_scaled(q, scale) @ K.transpose(-1, -2), dim=-1) @ V

    def _sdpa(
        self, q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, batch: torch.Size
    ) -> torch.Tensor:
        """``softmax(beta * scale * q K^T) V`` by ``F.scaled_dot_product_attention`` on CPU.

        Inputs are lifted to the 4-D ``[B, H, N, d]`` layout its fused kernel needs, by views
        (``_cpu_sdpa`` checked that K and V need no broadcasting); only the queries are
        expanded over the batch. Output ``[*batch, Q, d_v]``.
        """
        scale = self._softmax_scale()
        if len(batch) == 2 and q.shape[:-2] == batch:
            # already the kernel's 4-D layout: no views to make (a per-call cost of small reads)
            return F.scaled_dot_product_attention(q, K, V, scale=scale)
        lift = (1,) * (2 - len(batch))
        qe = q.expand(*batch, *q.shape[-2:]).reshape(*lift, *batch, *q.shape[-2:])
        Ke = K.reshape(*lift, *K.shape) if lift else K
        Ve = V.reshape(*lift, *V.shape) if lift else V
        out = F.scaled_dot_product_attention(qe, Ke, Ve, scale=scale)
        return out.reshape(*batch, *out.shape[-2:])

    def _stream_softmax(
        self, q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        """Online softmax over chunks of memories (running max, normaliser, weighted sum).

        For each chunk c: ``m' = max(m, max_c s)``, ``l' = l e^{m-m'} + sum_c e^{s-m'}``,
        ``acc' = acc e^{m-m'} + e^{s-m'} V_c``; the read is ``acc / l``. Subtracting the running
        max keeps every exponential <= 1, so it matches the one-pass softmax to rounding.
        """
        beta = self.beta if self.beta is not None else 1.0
        dot_like = self._sim_name in _DOT_LIKE
        qs = _scaled(q, beta * self._dot_scale()) if dot_like else q  # fold beta into [Q, d]
        # In-place exponentials save two [Q, chunk] passes, but only without autograd and on
        # scores this method owns (a user kernel may return a tensor it keeps).
        inplace = (dot_like or beta != 1.0 or self._sim_name is not None) and not (
            torch.is_grad_enabled() and (q.requires_grad or K.requires_grad or V.requires_grad)
        )
        m = lse = acc = None
        for start in range(0, K.shape[-2], chunk):
            Kc = K[..., start : start + chunk, :]
            Vc = V[..., start : start + chunk, :]
            if dot_like:
                s = qs @ Kc.transpose(-1, -2)
            else:
                s = self._similarity(q, Kc)
                s = s * beta if beta != 1.0 else s
            m_new = s.amax(dim=-1, keepdim=True)
            if m is not None:
                m_new = torch.maximum(m, m_new)
            p = s.sub_(m_new).exp_() if inplace else torch.exp(s - m_new)
            if m is None:
                lse, acc = p.sum(dim=-1, keepdim=True), p @ Vc
            else:
                assert lse is not None and acc is not None
                a = torch.exp(m - m_new)  # rescales what was accumulated under the old max
                lse = lse * a + p.sum(dim=-1, keepdim=True)
                acc = acc * a + p @ Vc
            m = m_new
        assert acc is not None and lse is not None
        return acc / lse

    def _stream_sum(
        self, q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        """``sum_c sigma(S(q, K_c)) V_c`` for element-wise operators (identity, polynomial,
        threshold); a normalised polynomial also accumulates the row sums and divides at the end.
        """
        normalize = self._sep_name == "polynomial" and self._sep_params.get("normalize", False)
        fn = self._separation
        if normalize:
            # accumulate the raw powers; dividing per chunk would use partial row sums
            n_pow = self._sep_params.get("n", 2)
            fn = _sep.get_separation("polynomial", n=n_pow)
        acc = total = None
        for start in range(0, K.shape[-2], chunk):
            w = fn(self._similarity(q, K[..., start : start + chunk, :]))
            part = w @ V[..., start : start + chunk, :]
            acc = part if acc is None else acc + part
            if normalize:
                ws = w.sum(dim=-1, keepdim=True)
                total = ws if total is None else total + ws
        assert acc is not None
        if normalize:
            assert total is not None
            acc = acc / torch.where(total > 0, total, torch.ones_like(total))
        return acc

    def _has_negative_zero(self, V: torch.Tensor) -> bool:
        """Whether ``V`` holds a ``-0.0``, checked once per values tensor and version (an
        in-place change is seen): only then does a one-row read need ``add_(0.0)``, a third
        of a tiny hard_max read."""
        seen = self._negative_zero
        if seen is None or seen[0] is not V or seen[1] != V._version:
            flag = bool(((V == 0) & torch.signbit(V)).any())
            seen = self._negative_zero = (V, V._version, flag)
        return seen[2]

    def _stream_best(
        self,
        q: torch.Tensor,
        K: torch.Tensor,
        V: torch.Tensor,
        batch: torch.Size,
        chunk: int,
    ) -> torch.Tensor:
        """``hard_max`` / ``top_k`` read from a running best over chunks, then a gather of V.

        The running best (scores and global indices) is kept ahead of each new chunk and the
        selection is stable, so ties go to the lower index exactly as in the one-pass operator.
        """
        num_n = K.shape[-2]
        kk = 1 if self._sep_name == "hard_max" else min(int(self.k or 1), num_n)
        best_s = best_i = None
        for start in range(0, num_n, chunk):
            # (one chunk of all memories is K itself: the same numbers without ~1 us of slicing)
            s = self._match(q, K if chunk >= num_n else K[..., start : start + chunk, :])
            if best_s is None and start + s.shape[-1] == num_n:
                # One chunk holding every memory: positions are the memory indices.
                if kk == 1:
                    if (
                        self._sep_name == "hard_max"
                        and V.ndim == 2
                        and not (V.requires_grad and torch.is_grad_enabled())
                    ):
                        # the read below with weight 1 on one row is that row, exactly
                        # (0 + 1.0 * v in a one-term product, which turns -0.0 into +0.0,
                        # as add_(0.0) does): the row itself, without ~5 us of weights and
                        # product on small reads (issue 15); argmax, like max(dim), takes the
                        # first maximum (ties) and returns no values tensor (~1.5 us less)
                        rows = V[torch.argmax(s, dim=-1)]
                        return rows.add_(0.0) if self._has_negative_zero(V) else rows
                    best_s, best_i = s.max(dim=-1, keepdim=True)  # first maximum wins ties
                else:
                    best_s, best_i = _sep._first_k(s, kk)
                break
            idx = torch.arange(start, start + s.shape[-1], device=s.device).expand(s.shape)
            if best_s is not None:
                assert best_i is not None
                s = torch.cat([best_s, s], dim=-1)
                idx = torch.cat([best_i, idx], dim=-1)
            if kk == 1:
                vals, j = s.max(dim=-1, keepdim=True)  # first maximum: earlier memories win ties
            else:
                vals, j = _sep._first_k(s, kk)
            best_s, best_i = vals, idx.gather(-1, j)
        assert best_s is not None and best_i is not None
        # read weights [..., Q, 1, kk]
        if self._sep_name == "top_k" and self.beta is not None:
            w = torch.softmax(best_s * self.beta, dim=-1).unsqueeze(-2)
        elif best_s.is_contiguous():
            # uniform, made in their final shape: the same values and strides as
            # full_like(best_s).unsqueeze(-2) of a contiguous best_s, one op fewer
            w = best_s.new_full((*best_s.shape[:-1], 1, kk), 1.0 / kk)
        else:
            w = torch.full_like(best_s, 1.0 / kk).unsqueeze(-2)  # (keeps best_s's layout)
        num_q, d_v = q.shape[-2], V.shape[-1]
        if V.ndim == 2 and not (V.requires_grad and torch.is_grad_enabled()):
            # [..., Q, kk, d_v]: the same copies as the gather below, in one op (kept off the
            # autograd path, whose backward would accumulate into V differently)
            rows = V[best_i]
        else:
            Vb = V.expand(*batch, num_n, d_v).unsqueeze(-3).expand(*batch, num_q, num_n, d_v)
            rows = torch.gather(Vb, -2, best_i.unsqueeze(-1).expand(*batch, num_q, kk, d_v))
        if w.ndim == 3 and rows.ndim == 3:
            # No batch dimensions: matmul of two 3-D tensors of one batch size is this bmm
            # (its expand and reshape to the same shape are no-ops), without ~1.7 us of
            # shape handling (issue 15).
            return torch.bmm(w, rows).squeeze(-2)
        return (w @ rows).squeeze(-2)

    def _by_query_blocks(
        self,
        q: torch.Tensor,
        K: torch.Tensor,
        V: torch.Tensor,
        batch: torch.Size,
        chunk: int | None,
    ) -> torch.Tensor:
        """Full rows of scores for blocks of queries, with the same memory bound as chunking."""
        num_q, num_n = q.shape[-2], K.shape[-2]
        if chunk is None:
            return self._separation(self._similarity(q, K)) @ V
        rows = max(1, (chunk * num_q) // max(num_n, 1))
        parts = [
            self._separation(self._similarity(q[..., i : i + rows, :], K)) @ V
            for i in range(0, num_q, rows)
        ]
        return torch.cat(parts, dim=-2)

    # ---------------------------------------------------------------------------- persistence

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Stored ``keys`` ``[..., N, d_k]`` and ``values`` ``[..., N, d_v]`` ({} if unwritten)."""
        if self._d_k is None:
            return {}
        K, V = self.keys, self.values
        assert K is not None and V is not None
        return {"keys": K.detach(), "values": V.detach()}

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; ``ValueError`` if the memory uses a user callable."""
        if self._sim_name is None or self._sep_name is None:
            which = "similarity" if self._sim_name is None else "separation"
            raise ValueError(
                f"{which}: this SlotMemory was built with a user callable, which cannot be saved "
                "by name (saving code would need pickle); rebuild it with a named "
                f"{which} or save its keys and values yourself"
            )
        config: dict[str, Any] = {
            "similarity": self._sim_name,
            "separation": self._sep_name,
            "beta": self.beta,
            "k": self.k,
            "n": self.n,
            "theta": self.theta,
            "gamma": self.gamma,
            "chunk_size": self.chunk_size,
            "similarity_params": dict(self._similarity_params),
            "separation_params": dict(self._separation_params),
        }
        try:
            json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"similarity_params/separation_params: cannot be saved as JSON ({err}); "
                "a feature map phi or another callable parameter cannot be saved by name"
            ) from None
        return config

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> SlotMemory:
        """Rebuild a memory from ``state_config()`` and ``state_tensors()`` output."""
        mem = cls(**dict(config))
        if "keys" in tensors or "values" in tensors:
            if "keys" not in tensors or "values" not in tensors:
                raise ValueError("tensors: expected both 'keys' and 'values'")
            mem.write(tensors["keys"], tensors["values"])
        return mem

    def __repr__(self) -> str:
        sim = self._sim_name or getattr(self._user_similarity, "__name__", "callable")
        sep = self._sep_name or getattr(self._user_separation, "__name__", "callable")
        extras = "".join(
            f", {p}={getattr(self, p)!r}"
            for p in ("beta", "k", "n", "theta", "gamma", "chunk_size")
            if getattr(self, p) is not None
        )
        shape = (
            ""
            if self._d_k is None
            else f", N={self._n}, d_k={self._d_k}, d_v={self._d_v}, "
            f"batch_shape={tuple(self._batch_shape or ())}, dtype={self._dtype}"
        )
        return f"SlotMemory(similarity={sim!r}, separation={sep!r}{extras}{shape})"


def _scaled(q: torch.Tensor, scale: float) -> torch.Tensor:
    """``q * scale``, skipping the multiply when ``scale == 1``: ``x * 1.0`` is ``x`` bit for bit,
    and a contiguous ``q`` is laid out as the product would be, so the matmul that follows sees
    the same input either way."""
    return q if scale == 1.0 and q.is_contiguous() else q * scale


def _caller_shape(original: Any, converted: torch.Tensor) -> tuple[int, ...]:
    """The shape the caller passed (before a 1-D query was lifted to ``[1, d_k]``)."""
    shape = getattr(original, "shape", None)
    return tuple(shape) if shape is not None else tuple(converted.shape)


def _own(t: torch.Tensor, original: Any) -> torch.Tensor:
    """Copy ``t`` if it still shares memory with the caller's numpy array ``original``."""
    if (
        isinstance(original, np.ndarray)
        and t.numel()
        and t.data_ptr() == original.__array_interface__["data"][0]
    ):
        return t.clone()
    return t


def _like_queries(out: torch.Tensor, queries: Any) -> torch.Tensor:
    """Give ``out`` the device and floating dtype of the caller's queries (docs/architecture.md)."""
    if isinstance(queries, torch.Tensor):
        if out.dtype == queries.dtype and out.device == queries.device:
            return out  # what .to() would return, without its ~0.4 us
        dtype = queries.dtype if queries.is_floating_point() else out.dtype
        return out.to(device=queries.device, dtype=dtype)
    if isinstance(queries, np.ndarray) and queries.dtype.kind == "f":
        return out.to(dtype=torch.from_numpy(np.zeros(0, dtype=queries.dtype)).dtype)
    return out
