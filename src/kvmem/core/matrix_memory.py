"""``MatrixMemory``: the primal (weight, correlation-matrix) key-value memory.

docs/science.md 1.1 (Hebbian correlation-matrix memory) and 1.3 (delta rule, decay). The
memory is one matrix ``M [..., d_k, d_v]``; a read is ``q M``. It also keeps the keys and
the *dual values* it has written, so ``to_slots()`` returns the exact dual
``SlotMemory`` (dot similarity, identity separation, docs/science.md 1.2) whose reads equal
this memory's reads.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from kvmem.core.validation import (
    as_float_tensor,
    broadcast_shapes,
    check_dim,
    check_finite,
    check_int_at_least,
    finite_sum,
    shape_str,
)
from kvmem.core.write_rules import (
    as_rate,
    check_decay,
    delta_write_chunked,
    hebbian_dual_values,
    hebbian_write,
    later_decay,
    total_decay,
)

__all__ = ["MatrixMemory", "RULES"]

RULES: tuple[str, ...] = ("hebbian", "delta")

_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")


# The batch shape of a memory without leading dimensions.
_NO_BATCH = torch.Size()

# Writes of at most this many elements (N * (d_k + d_v)) are copied into a buffer the memory
# owns (MatrixMemory._keep_copies) instead of kept by reference (issue 15, per-call
# overhead): every kept tensor object is tracked by Python's cyclic garbage collector, so
# thousands of small writes made each later write slower; copying a few pairs costs about
# as much as keeping a reference (64 KiB in float32, cache-resident). Larger writes stay
# by reference: a copy would then cost time comparable to the product, and there can be
# at most one such chunk per 16384 elements written, so their objects stay few.
_COPY_MAX_ELEMENTS = 16384
_TAIL_MIN_ROWS = 64  # smallest buffer: a few small writes fill it before the first doubling
_PENDING_WRITES = 32  # small writes' copies held as blocks before one copy into the buffer

# (device type, dtype) -> whether this backend's matmul turns every NaN / Inf of its inputs into a
# non-finite output (decided once by _propagates_non_finite).
_PROPAGATES: dict[tuple[str, torch.dtype], bool] = {}


def _propagates_non_finite(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``a.mT @ b`` here is non-finite whenever ``a`` or ``b`` holds a NaN / Inf.

    In exact IEEE arithmetic it is: a NaN or Inf entry ``a[n, i]`` makes every ``[i, j]`` of
    the product NaN or +-Inf (``0 * Inf = NaN``), and likewise for ``b``. A BLAS that skips
    zero multipliers would break that, so it is probed once per device type and dtype, with
    the bad entry facing zeros only (the case such a shortcut would hide).
    """
    key = (device.type, dtype)
    known = _PROPAGATES.get(key)  # one lookup: this runs on every write
    if known is not None:
        return known
    ok = True
    for n, d_k, d_v in ((1, 1, 1), (5, 3, 2), (257, 64, 48)):
        for bad in (float("nan"), float("inf")):
            for side in (0, 1):
                a = torch.zeros(n, d_k, device=device, dtype=dtype)
                b = torch.zeros(n, d_v, device=device, dtype=dtype)
                (a if side == 0 else b)[n // 2, 0] = bad
                ok = ok and not bool(torch.isfinite(a.mT @ b).all())
    _PROPAGATES[key] = ok
    return ok


def _finite_number(value: Any, name: str, lo: float | None = None, hi: float | None = None):
    """A finite Python float (optionally inside ``[lo, hi]``) or a clear error naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a finite number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
    return v


class MatrixMemory:
    """Correlation-matrix (primal) key-value memory with a Hebbian or delta-rule write.

    docs/science.md 1.1, 1.3. Write (``rule="hebbian"``), for each pair in order,

        M_n = lambda_n M_{n-1} + eta_n k_n^T v_n;

    ``rule="delta"`` (error-correcting; decay applied before the correction),

        M_n = lambda_n M_{n-1} + eta_n k_n^T (v_n - lambda_n k_n M_{n-1}).

    Read: ``v_hat = q M`` (``[..., Q, d_k] -> [..., Q, d_v]``). ``lambda = 1`` without
    decay. Both rules unroll to ``M_N = (prod lambda) M_0 + sum_n Gamma_n k_n^T u_n`` with
    ``Gamma_n = prod_{m>n} lambda_m`` and ``u_n = eta_n v_n`` (Hebbian) or the delta
    rule's scaled residual (see ``kvmem.core.write_rules``); the memory keeps ``k_n`` and
    ``Gamma_n u_n`` so that ``to_slots()`` is its exact dual.

    Parameters
    ----------
    d_k, d_v: key and value widths.
    rule: ``"hebbian"`` or ``"delta"``.
    lr: default learning rate eta (any finite number; negative rates unlearn).
    decay: default decay lambda in ``[0, 1]`` per written item, or ``None`` (no decay).
    chunk_size: chunk length of the chunkwise-parallel delta rule.
    device, dtype: where and in what precision ``M`` lives. Unset, the first write (or
        ``M0``) fixes them.
    M0: optional initial matrix ``[..., d_k, d_v]`` (zeros by default); its leading
        dimensions fix the batch shape.
    keep_pairs: keep keys and dual values for ``to_slots`` (memory grows with N). With
        ``False`` only ``M`` is stored.

    Leading (batch) dimensions are fixed by the first write (or ``M0``); later writes
    must have the same batch shape or one that broadcasts to it. With ``keep_pairs`` a
    small write (``N (d_k + d_v) <= 16384`` elements, 2-D, no decay) is copied into a
    buffer the memory owns, so many small writes leave one chunk, not one tensor per write
    (issue 15); in-place changes of the caller's tensors afterwards do not reach it. Larger
    writes keep the key tensors (and, at rate 1 without decay, the value tensors, which
    are then the dual values ``u_n = v_n``) by reference, not copied, so such a write
    costs one ``K^T V``. As autograd does with the tensors it saves, the memory records
    their version counters and checks them whenever the pairs are used (``keys``,
    ``dual_values``, ``to_slots``, ``state_tensors``): a tensor changed in place after
    ``write`` raises ``RuntimeError`` there (pass ``keys.clone()`` or use
    ``keep_pairs=False``). ``M`` itself never depends on the caller's tensors after a
    write. Numpy input is copied (numpy writes are not tracked).
    """

    def __init__(
        self,
        d_k: int,
        d_v: int,
        rule: str = "hebbian",
        lr: float = 1.0,
        decay: float | None = None,
        chunk_size: int = 64,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        M0: torch.Tensor | np.ndarray | None = None,
        keep_pairs: bool = True,
    ) -> None:
        self.d_k = check_int_at_least(d_k, 1, "d_k")
        self.d_v = check_int_at_least(d_v, 1, "d_v")
        if not isinstance(rule, str) or rule not in RULES:
            raise ValueError(f"rule: expected one of {', '.join(map(repr, RULES))}, got {rule!r}")
        self.rule = rule
        self.lr = _finite_number(lr, "lr")
        self.decay = None if decay is None else _finite_number(decay, "decay", 0.0, 1.0)
        self.chunk_size = check_int_at_least(chunk_size, 1, "chunk_size")
        if isinstance(dtype, str):
            if dtype.removeprefix("torch.") not in _DTYPES:
                raise ValueError(f"dtype: expected one of {', '.join(_DTYPES)}, got {dtype!r}")
            dtype = _DTYPES[dtype.removeprefix("torch.")]
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
        self._dtype_arg: torch.dtype | None = dtype
        self._device_arg = None if device is None else torch.device(device)
        self.keep_pairs = bool(keep_pairs)
        self._lr_tensor: tuple[tuple[Any, ...], torch.Tensor] | None = None
        self._M0: torch.Tensor | None = None
        if M0 is not None:
            m0 = as_float_tensor(M0, "M0", min_ndim=2)
            if m0.shape[-2:] != (self.d_k, self.d_v):
                raise ValueError(
                    f"M0: expected shape [..., {self.d_k}, {self.d_v}], "
                    f"got shape {shape_str(m0.shape)}"
                )
            self._M0 = m0.to(
                device=self._device_arg or m0.device, dtype=self._dtype_arg or m0.dtype
            ).clone()
        self._reset()

    # ------------------------------------------------------------------ state

    def _reset(self) -> None:
        m0 = self._M0
        self._M: torch.Tensor | None = None if m0 is None else m0.clone()
        # An M0 without leading dimensions leaves the batch shape to the first write.
        self._batch: torch.Size | None = None if m0 is None or m0.ndim == 2 else m0.shape[:-2]
        self._dtype: torch.dtype | None = self._dtype_arg if m0 is None else m0.dtype
        self._device: torch.device | None = self._device_arg if m0 is None else m0.device
        self._count = 0
        # Written pairs in chunks (one per write call), concatenated lazily. Each chunk's
        # dual values already include the decays of its own call; ``_call_decay[j]`` is
        # the total decay of call j, which scales every earlier chunk (None: no decay).
        self._key_chunks: list[torch.Tensor] = []
        self._dual_chunks: list[torch.Tensor] = []
        self._call_decay: list[torch.Tensor | None] = []
        # prod of every decay so far: how much of M0 is left.
        self._initial_scale: torch.Tensor | None = None
        # Caller tensors kept by reference in the chunks, with their version counters at
        # write time and the argument's name: checked before every use (_check_kept).
        self._kept: list[tuple[torch.Tensor, int, str]] = []
        # Buffer of the copied small writes (_keep_copies): [keys and dual values side by side
        # [capacity, d_k + d_v], rows used, capacity, pending blocks (the latest writes, not
        # yet in the buffer), their rows], standing for the last chunk; None whenever the
        # chunk lists are rewritten (_flush_tail), so it is never written again.
        self._tail: list[Any] | None = None

    def clear(self) -> None:
        """Forget everything written: back to ``M0`` (or zeros), keep the settings."""
        self._reset()

    def __len__(self) -> int:
        """Number of pairs written (over all write calls, every batch element alike)."""
        return self._count

    def __repr__(self) -> str:
        return (
            f"MatrixMemory(d_k={self.d_k}, d_v={self.d_v}, rule={self.rule!r}, lr={self.lr}, "
            f"decay={self.decay}, n={self._count}, batch={list(self.batch_shape or [])})"
        )

    @property
    def batch_shape(self) -> torch.Size | None:
        """Leading dimensions fixed by the first write (or ``M0``); ``None`` before that."""
        return self._batch

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype or torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        return self._device or torch.device("cpu")

    @property
    def M(self) -> torch.Tensor:
        """The weight matrix ``[..., d_k, d_v]`` (zeros ``[d_k, d_v]`` before any write)."""
        if self._M is None:
            return torch.zeros(self.d_k, self.d_v, dtype=self.dtype, device=self.device)
        return self._M

    @property
    def weights(self) -> torch.Tensor:
        """Alias of ``M``."""
        return self.M

    # ------------------------------------------------------------------ input checks

    def _as_input(
        self,
        x: Any,
        name: str,
        width: int,
        what: str,
        dtype: torch.dtype | None,
        device: torch.device | None,
        check_values: bool = True,
    ) -> torch.Tensor:
        t = as_float_tensor(x, name, min_ndim=2, check_values=check_values)
        check_dim(t, -1, width, name, what)
        return t.to(device=device or t.device, dtype=dtype or t.dtype)

    def _fix_batch(self, batch: torch.Size, keys: torch.Tensor) -> torch.Size:
        if self._batch is None:
            return batch
        try:
            merged = broadcast_shapes(self._batch, batch)
        except RuntimeError:
            merged = None
        if merged != self._batch:
            raise ValueError(
                f"keys: expected leading (batch) dimensions {shape_str(self._batch)} fixed by "
                f"the first write (shape [{', '.join(map(str, self._batch))}, N, {self.d_k}] "
                f"or broadcastable), got shape {shape_str(keys.shape)}"
            )
        return self._batch

    # ------------------------------------------------------------------ write / read

    def write(
        self,
        keys: torch.Tensor | np.ndarray,
        values: torch.Tensor | np.ndarray,
        lr: float | torch.Tensor | np.ndarray | None = None,
        decay: float | torch.Tensor | np.ndarray | None = None,
    ) -> MatrixMemory:
        """Write N pairs in order (docs/science.md 1.1, 1.3); returns ``self``.

        ``keys [..., N, d_k]``, ``values [..., N, d_v]``; ``lr`` (eta) and ``decay``
        (lambda) default to the constructor's and may be a scalar or one value per item
        ``[..., N]``. Hebbian: one matmul, ``M <- Lambda M + K^T diag(Gamma eta) V``;
        delta rule: the chunkwise-parallel form (``delta_write_chunked``).
        """
        if self._write_plain(keys, values, lr, decay):
            return self
        # The first write fixes dtype and device (unless given); committed only once all
        # checks pass, so a rejected write leaves the memory as it was.
        # Hebbian writes check keys and values for NaN / Inf through the product: M' is finite
        # only if both are (see _propagates_non_finite), so the usual case costs no pass over
        # them; a non-finite M' (bad input, or an overflow, accepted as before) runs the full
        # checks, which name the argument. The delta rule checks its inputs up front.
        dtype = self._dtype or (keys.dtype if isinstance(keys, torch.Tensor) else None)
        device = self._device or (keys.device if isinstance(keys, torch.Tensor) else None)
        late = (
            self.rule == "hebbian"
            and dtype is not None
            and dtype.is_floating_point
            and device is not None
            and _propagates_non_finite(device, dtype)
        )
        k = self._as_input(
            keys, "keys", self.d_k, "d_k", self._dtype, self._device, check_values=not late
        )
        v = self._as_input(
            values, "values", self.d_v, "d_v", k.dtype, k.device, check_values=not late
        )
        n = k.shape[-2]
        if v.shape[-2] != n:
            raise ValueError(
                f"values: expected N = {n} items to match keys (shape [..., {n}, {self.d_v}]), "
                f"got shape {shape_str(v.shape)}"
            )
        if lr is None and self.rule == "hebbian":
            # the memory's rate as a 0-d tensor, made once per value, dtype and device (the
            # Hebbian write only reads it)
            key = (self.lr, k.dtype, k.device)
            if self._lr_tensor is None or self._lr_tensor[0] != key:
                self._lr_tensor = (key, as_rate(self.lr, k, "lr"))
            eta = self._lr_tensor[1]
        else:
            eta = as_rate(self.lr if lr is None else lr, k, "lr")
        assert eta is not None
        if decay is not None and not isinstance(decay, torch.Tensor | np.ndarray):
            decay = _finite_number(decay, "decay", 0.0, 1.0)  # as the constructor's decay
        lam = as_rate(self.decay if decay is None else decay, k, "decay")
        check_decay(lam)
        try:
            batch = broadcast_shapes(
                k.shape[:-2],
                v.shape[:-2],
                eta.shape[:-1] if eta.ndim else (),
                lam.shape[:-1] if lam is not None and lam.ndim else (),
            )
        except RuntimeError:
            raise ValueError(
                f"values, lr, decay: leading (batch) dimensions do not broadcast with keys: "
                f"keys {shape_str(k.shape)}, values {shape_str(v.shape)}, lr "
                f"{shape_str(eta.shape)}, decay {shape_str(() if lam is None else lam.shape)}"
            ) from None
        batch = self._fix_batch(batch, k)
        self._dtype, self._device = k.dtype, k.device
        if n == 0:
            return self
        k_in, v_in = k, v
        if self.rule == "delta":
            _warn_if_unstable(eta, k)
        # Caller tensors to keep by reference (and check, _check_kept) instead of copying.
        kept: list[tuple[torch.Tensor, int, str]] = []
        k_store = k
        if self.keep_pairs and _shares_input(k, keys):
            if _trackable(k, keys):
                kept.append((k, k._version, "keys"))
            else:
                # numpy (its writes bump no version counter), inference tensors (no counter)
                # and non-contiguous layouts (a copy's layout, hence to_slots' reads, may
                # differ): copied, as before
                k_store = k.clone()

        M = self._M
        if M is None:
            M = torch.zeros(*batch, self.d_k, self.d_v, dtype=k.dtype, device=k.device)
        k = k.expand(*batch, n, self.d_k)
        v = v.expand(*batch, n, self.d_v)
        call_decay = None if lam is None else total_decay(lam, n)  # [...]: decay of whole call

        dual: torch.Tensor | None = None
        if self.rule == "hebbian" and not self.keep_pairs:
            # Only M is kept: with a scalar rate this scales the small [d_k, d_v] product
            # instead of materialising diag(eta) V. The common case (scalar rate, no decay)
            # is hebbian_write's own arithmetic, inlined: its argument checks were done above.
            if lam is None and eta.ndim == 0:
                M = M + eta * (k.mT @ v)
            else:
                M = hebbian_write(M, k, v, eta, lam)
        elif self.rule == "hebbian":
            # Gamma_n eta_n v_n (hebbian_dual_values; inlined for a scalar rate without decay)
            if lam is None and eta.ndim == 0:
                rate = self.lr if lr is None else lr
                if (
                    isinstance(rate, int | float)
                    and rate == 1.0
                    and v.is_contiguous()
                    and (not _shares_input(v_in, values) or _trackable(v_in, values))
                ):
                    # v * 1.0 is v bit for bit, and a contiguous v is laid out as the product
                    # would be: the matmul below and the dual are unchanged, without the copy.
                    dual = v
                    if _shares_input(v_in, values):
                        kept.append((v_in, v_in._version, "values"))
                else:
                    dual = v * eta
            else:
                dual = hebbian_dual_values(v, eta, lam)
            if call_decay is not None:
                M = M * call_decay[..., None, None]
            # One matmul: M + K^T (diag(Gamma eta) V), docs/science.md 1.1.
            M = M + k.mT @ dual
        else:
            M, u = delta_write_chunked(M, k, v, eta, lam, chunk_size=self.chunk_size)
            if self.keep_pairs:
                # Gamma_n u_n, Gamma_n = prod_{m>n} lambda_m: the decay after item n
                dual = u if lam is None else u * later_decay(lam, n)[..., None]
        # (a finite sum proves M finite; one that overflows only costs the full checks)
        if late and not finite_sum(M):
            check_finite(k_in, "keys")
            check_finite(v_in, "values")

        self._M = M.expand(*batch, self.d_k, self.d_v).contiguous()
        self._batch = batch
        self._count += n
        if call_decay is not None:
            self._initial_scale = (
                call_decay if self._initial_scale is None else self._initial_scale * call_decay
            )
        if dual is not None and self._copies(batch, call_decay, k_store, dual, n):
            # a small write without batch dimensions or decay: copied (issue 15)
            self._keep_copies(k_store, dual, n)
        elif dual is not None:
            # Expanded view of the stored keys: batch-broadcast keys are materialised only on
            # concatenation. Dual values are fresh tensors or the caller's, kept as the keys.
            self._flush_tail()  # the buffered small writes come first
            self._key_chunks.append(k_store.expand(*batch, n, self.d_k))
            self._dual_chunks.append(dual)
            self._call_decay.append(call_decay)
            self._kept.extend(kept)
        return self

    def _write_plain(self, keys: Any, values: Any, lr: Any, decay: Any) -> bool:
        """The common Hebbian write, ``M <- M + K^T V`` (docs/science.md 1.1), if it applies.

        Per-call overhead (issue 15): a write of a few pairs costs a few microseconds of
        arithmetic, so the general path's conversions, broadcasts and expands dominate it.
        This path takes only what needs none of them: 2-D ``keys [N, d_k]`` and
        ``values [N, d_v]`` tensors with ``N >= 1``, already of the memory's (2-D) ``M``'s
        dtype and device, rate exactly 1 and no decay. It does the general path's arithmetic
        (``eta * X`` and ``v * eta`` are ``X`` and ``v`` bit for bit at rate 1, an expand to
        the same shape is the tensor itself) and the same checks; the checks it skips cannot
        fail on such input. Returns whether it wrote; ``False`` leaves everything to
        ``write``.
        """
        # Cheapest tests first; each one that fails hands the call to the general path.
        M = self._M
        rate = self.lr if lr is None else lr
        if (
            M is None
            or self.rule != "hebbian"
            or decay is not None
            or self.decay is not None
            # (a Python float exactly 1: a bool, tensor or array rate goes the general way)
            or type(rate) is not float
            or rate != 1.0
            or not isinstance(keys, torch.Tensor)
            or not isinstance(values, torch.Tensor)
        ):
            return False
        ks, vs = keys.shape, values.shape
        dtype, device = M.dtype, M.device
        keep = self.keep_pairs
        if not (
            len(ks) == len(vs) == M.ndim == 2
            and ks[1] == self.d_k
            and vs[1] == self.d_v
            and ks[0] == vs[0] > 0
            and keys.dtype == values.dtype == dtype
            and keys.device == values.device == device
            # with keep_pairs only trackable tensors, as in the general path (_trackable,
            # inlined: both are tensors)
            and (
                not keep
                or not (keys.is_inference() or values.is_inference())
                and keys.is_contiguous()
                and values.is_contiguous()
            )
        ):
            return False
        # keys and values are checked for NaN / Inf through M' (see write)
        if not _propagates_non_finite(device, dtype):
            return False
        M = M + keys.mT @ values
        if not finite_sum(M):
            check_finite(keys, "keys")
            check_finite(values, "values")
        self._M = M  # a fresh contiguous [d_k, d_v]: the general path's expand + contiguous
        self._batch = _NO_BATCH
        self._count += ks[0]
        if not keep:
            return True
        n = ks[0]
        # _copies(_NO_BATCH, None, keys, values, n) for this input (dtype, device and layout
        # are checked above), inlined: the call costs ~0.4 us, a tenth of this write
        if n * (ks[1] + vs[1]) <= _COPY_MAX_ELEMENTS and not (
            keys.requires_grad or values.requires_grad or torch.is_inference_mode_enabled()
        ):
            # Few pairs: copied into the memory's buffer (issue 15, see _keep_copies); the
            # dual values at rate 1 are the values themselves.
            self._keep_copies(keys, values, n)
        else:
            # Fresh views (as the general path's expands), so the stored chunks keep their
            # shape whatever the caller does to its tensor objects; in-place changes of the
            # data are caught by the version counters (_check_kept).
            self._flush_tail()  # the buffered small writes come first
            self._key_chunks.append(keys.view_as(keys))
            self._dual_chunks.append(values.view_as(values))
            self._call_decay.append(None)
            self._kept.append((keys, keys._version, "keys"))
            self._kept.append((values, values._version, "values"))
        return True

    def _copies(
        self,
        batch: torch.Size,
        call_decay: torch.Tensor | None,
        keys: torch.Tensor,
        dual: torch.Tensor,
        n: int,
    ) -> bool:
        """Whether the general path's pairs are copied (``_keep_copies``), not kept as they are.

        Only small writes (``N (d_k + d_v) <= _COPY_MAX_ELEMENTS``) without batch dimensions or
        decay (the buffer's chunk is then one plain ``[N, d]`` block with no call decay), of
        contiguous tensors of the memory's dtype and device (a strided layout is kept as it
        was, as are tensors in an autograd graph), outside inference mode (the buffer is then
        a normal tensor, writable later).
        """
        M = self._M
        return (
            M is not None
            and not batch
            and call_decay is None
            and n * (self.d_k + self.d_v) <= _COPY_MAX_ELEMENTS
            and keys.dtype == dual.dtype == M.dtype
            and keys.device == dual.device == M.device
            and keys.is_contiguous()
            and dual.is_contiguous()
            and not (keys.requires_grad or dual.requires_grad)
            and not torch.is_inference_mode_enabled()
        )

    def _keep_copies(self, keys: torch.Tensor, dual: torch.Tensor, n: int) -> None:
        """Copy a small write's ``keys [N, d_k]`` and dual values ``[N, d_v]`` into the buffer.

        Issue 15 (per-call overhead): keeping each small write's tensors (and, by reference,
        their version records) grows the objects Python's garbage collector traverses by a
        few per write, without bound. The pairs go instead into ``self._tail``'s buffer
        ``[capacity, d_k + d_v]`` (keys, then dual values), after its used rows: each write's
        pairs are copied side by side (one ``torch.cat``) into a list of pending blocks,
        and every ``_PENDING_WRITES`` writes the list goes into the buffer as one copy
        (``_merge_pending``; a slice of the buffer per write cost as much as the copy). A
        full buffer is replaced by one of twice the capacity. While the buffer is live, the
        last entries of ``_key_chunks`` / ``_dual_chunks`` stand for it (the lists do not
        grow) and are filled in by ``_flush_tail``, which every reader of the chunks
        (``_consolidate``) and every other chunk's append calls first. The copies are the
        inputs bit for bit and private: nothing goes to ``_kept``.
        """
        tail = self._tail
        if tail is None:
            M = self.M
            cap = max(_TAIL_MIN_ROWS, 2 * n)
            buf = torch.empty(cap, self.d_k + self.d_v, dtype=M.dtype, device=M.device)
            # placeholders until _flush_tail (the buffer's shape: a stray use fails loudly)
            self._key_chunks.append(buf)
            self._dual_chunks.append(buf)
            self._call_decay.append(None)
            tail = self._tail = [buf, 0, cap, [], 0]
        pending = tail[3]
        pending.append(torch.cat((keys, dual), 1))
        tail[4] += n
        if len(pending) >= _PENDING_WRITES:
            self._merge_pending(tail)

    @staticmethod
    def _merge_pending(tail: list[Any]) -> None:
        """Copy the pending blocks of ``tail`` (``[buffer, used, capacity, pending, rows]``)
        into its buffer after the used rows, growing it if they do not fit."""
        buf, used, cap, pending, rows = tail
        end = used + rows
        if end > cap:
            # full: twice the capacity (at least what the rows need), used rows copied
            cap = max(2 * cap, end)
            grown = torch.empty(cap, buf.shape[1], dtype=buf.dtype, device=buf.device)
            grown[:used].copy_(buf[:used])
            buf = grown
        torch.cat(pending, 0, out=buf[used:end])
        tail[:] = buf, end, cap, [], 0

    def _flush_tail(self) -> None:
        """Turn the live buffer's used rows into the last chunk; the buffer is then dropped.

        Keys and dual values become fresh contiguous tensors, laid out as the caller's
        contiguous tensors they copy, so every reader sees what it saw before the buffer. A
        dropped buffer is never written into again.
        """
        tail = self._tail
        if tail is not None:
            if tail[3]:
                self._merge_pending(tail)
            buf, used = tail[0], tail[1]
            fmt = torch.contiguous_format
            self._key_chunks[-1] = buf[:used, : self.d_k].clone(memory_format=fmt)
            self._dual_chunks[-1] = buf[:used, self.d_k :].clone(memory_format=fmt)
            self._tail = None

    def read(self, queries: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Primal read ``v_hat = q M``: ``[..., Q, d_k] -> [..., Q, d_v]`` (docs/science.md 1.1).

        Reading an empty memory returns zeros (or ``q M0``). The output has the queries'
        device and dtype; the product is computed on the memory's device in the wider
        of the two dtypes.
        """
        M = self._M
        if (
            M is not None
            and M.ndim == 2
            and isinstance(queries, torch.Tensor)
            and queries.ndim == 2
            and queries.dtype == M.dtype
            and queries.device == M.device
            and queries.shape[1] == self.d_k
        ):
            # The common case (issue 15, per-call overhead): 2-D queries of the memory's dtype
            # and device need no conversion and broadcast trivially; only NaN / Inf can fail.
            # (check_finite's test without its dtype checks, done above: ~0.4 us less)
            if not finite_sum(queries):
                check_finite(queries, "queries")
            return queries @ M
        q = as_float_tensor(queries, "queries", min_ndim=2)
        check_dim(q, -1, self.d_k, "queries", "d_k")
        M = self.M
        try:
            broadcast_shapes(q.shape[:-2], M.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"queries: expected leading (batch) dimensions that broadcast with the memory's "
                f"{shape_str(M.shape[:-2])} (shape [..., Q, {self.d_k}]), "
                f"got shape {shape_str(q.shape)}"
            ) from None
        if q.dtype == M.dtype and q.device == M.device:
            return q @ M  # the common case: no conversion either way
        work = torch.promote_types(q.dtype, M.dtype)
        out = q.to(device=M.device, dtype=work) @ M.to(work)
        return out.to(device=q.device, dtype=q.dtype)

    # ------------------------------------------------------------------ dual form

    def _check_kept(self) -> None:
        """Raise if a caller tensor kept by reference was changed in place since its write.

        The check autograd makes on the tensors it saves: in-place operations bump a tensor's
        version counter (shared with its views and its base).
        """
        for t, version, name in self._kept:
            if t._version != version:
                raise RuntimeError(
                    f"{name}: modified in place after MatrixMemory.write (version {version}, "
                    f"now {t._version}); the memory keeps the written {name} by reference "
                    f"for to_slots, keys and dual_values: pass a copy ({name}.clone()) to "
                    f"write, or use keep_pairs=False"
                )

    def _consolidate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate the stored chunks once, folding in the decays of later calls.

        Every reader of the kept pairs comes through here, so the caller tensors kept by
        reference are checked here (``_check_kept``).
        """
        self._check_kept()
        # the copied small writes as a chunk of their own; later ones start a new buffer
        self._flush_tail()
        if len(self._key_chunks) > 1:
            scale: torch.Tensor | None = None  # product of call decays after chunk j
            duals: list[torch.Tensor] = []
            for j in range(len(self._dual_chunks) - 1, -1, -1):
                d = self._dual_chunks[j]
                if scale is not None:
                    d = d * scale[..., None, None]
                duals.append(d)
                cd = self._call_decay[j]
                if cd is not None:
                    scale = cd if scale is None else scale * cd
            batch = self._batch or torch.Size()
            keys = torch.cat([c.expand(*batch, *c.shape[-2:]) for c in self._key_chunks], -2)
            dual = torch.cat([d.expand(*batch, *d.shape[-2:]) for d in reversed(duals)], -2)
            self._key_chunks, self._dual_chunks = [keys], [dual]
            # The merged chunk is the earliest; its own call decay scales nothing.
            self._call_decay = [None]
            # torch.cat made fresh tensors: nothing of the caller's is kept any more.
            self._kept = []
        return self._key_chunks[0], self._dual_chunks[0]

    @property
    def keys(self) -> torch.Tensor:
        """All written keys ``[..., N, d_k]`` in write order."""
        self._require_pairs("keys")
        return self._consolidate()[0]

    @property
    def dual_values(self) -> torch.Tensor:
        """The dual values ``Gamma_n u_n`` ``[..., N, d_v]``: ``M = Lambda M0 + K^T U``.

        Hebbian: ``Gamma_n eta_n v_n``; delta rule: ``Gamma_n`` times the scaled residuals
        ``u_n = eta_n (v_n - lambda_n k_n M_{n-1})``; ``Gamma_n`` is the product of all
        decays applied after item n (over later write calls too).
        """
        self._require_pairs("dual_values")
        return self._consolidate()[1]

    @property
    def initial_scale(self) -> torch.Tensor:
        """``prod lambda`` over everything written: the weight of ``M0`` left in ``M``."""
        if self._initial_scale is None:
            return torch.ones((), dtype=self.dtype, device=self.device)
        return self._initial_scale

    def _require_pairs(self, what: str) -> None:
        if not self.keep_pairs:
            raise ValueError(
                f"{what}: this MatrixMemory was built with keep_pairs=False and stores only M"
            )
        if self._count == 0:
            raise ValueError(f"{what}: the memory is empty; write at least one pair first")

    def to_slots(self, include_initial: bool = True) -> Any:
        """The exact dual ``SlotMemory`` (dot similarity, identity separation; docs/science.md 1.2).

        Its keys are the written keys and its values the dual values, so
        ``to_slots().read(q) == read(q)`` (``q K^T U = q (M - Lambda M0)``). A nonzero
        ``M0`` is carried as ``d_k`` extra slots placed first, with the standard basis as
        keys and the rows of ``Lambda M0`` as values (``q I (Lambda M0) = q Lambda M0``);
        ``include_initial=False`` leaves them out (the slot memory then holds only what
        was written). Raises ``ValueError`` on an empty memory or with ``keep_pairs=False``.
        """
        from kvmem.core.slot_memory import SlotMemory

        self._require_pairs("to_slots")
        keys, dual = self._consolidate()
        # An all-zero M0 is the default memory: nothing to carry into the dual form.
        if include_initial and self._M0 is not None and bool(self._M0.any()):
            batch = self._batch or torch.Size()
            eye = torch.eye(self.d_k, dtype=keys.dtype, device=keys.device)
            m0 = self._M0.to(device=keys.device, dtype=keys.dtype)
            m0 = m0 * self.initial_scale[..., None, None]
            keys = torch.cat([eye.expand(*batch, self.d_k, self.d_k), keys], dim=-2)
            dual = torch.cat([m0.expand(*batch, self.d_k, self.d_v), dual], dim=-2)
        slots = SlotMemory(similarity="dot", separation="identity")
        slots.write(keys, dual)
        return slots

    # ------------------------------------------------------------------ persistence

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (docs/architecture.md, persistence protocol)."""
        return {
            "d_k": self.d_k,
            "d_v": self.d_v,
            "rule": self.rule,
            "lr": self.lr,
            "decay": self.decay,
            "chunk_size": self.chunk_size,
            "dtype": _dtype_name(self._dtype_arg),
            "keep_pairs": self.keep_pairs,
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """``M``, ``M0``, written keys, dual values, count and ``initial_scale`` (if any)."""
        out: dict[str, torch.Tensor] = {"count": torch.tensor([self._count], dtype=torch.int64)}
        if self._M is not None:
            out["M"] = self._M.contiguous()
        if self._M0 is not None:
            out["M0"] = self._M0.contiguous()
        if self._initial_scale is not None:
            out["initial_scale"] = self._initial_scale
        if self.keep_pairs and self._count:
            keys, dual = self._consolidate()
            out["keys"] = keys.contiguous()
            out["dual_values"] = dual.contiguous()
        return out

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> MatrixMemory:
        """Rebuild a memory saved with ``state_config`` / ``state_tensors``."""
        mem = cls(**{**config, "M0": tensors.get("M0")})
        count = int(tensors["count"].reshape(-1)[0]) if "count" in tensors else 0
        if "M" in tensors:
            M = tensors["M"]
            mem._M = M.clone()
            mem._batch = M.shape[:-2]
            mem._dtype, mem._device = M.dtype, M.device
        mem._count = count
        if "initial_scale" in tensors:
            mem._initial_scale = tensors["initial_scale"].clone()
        if "keys" in tensors and "dual_values" in tensors:
            mem._key_chunks = [tensors["keys"].clone()]
            mem._dual_chunks = [tensors["dual_values"].clone()]
            mem._call_decay = [None]
            mem._tail = None  # (no buffer: the loaded pairs are a chunk of their own)
        elif mem.keep_pairs and count:
            raise ValueError("tensors: expected 'keys' and 'dual_values' for a non-empty memory")
        return mem


def _shares_input(t: torch.Tensor, original: Any) -> bool:
    """Whether ``t`` (from ``MatrixMemory._as_input``) may share memory with ``original``.

    A tensor argument comes back as itself unless its dtype or device changed (then it is a
    fresh copy); a numpy array through ``torch.from_numpy``, sharing its memory unless
    ``np.ascontiguousarray`` or a dtype change copied it; nested lists become fresh arrays.
    """
    if isinstance(original, torch.Tensor):
        return t is original
    if isinstance(original, np.ndarray):
        return t.numel() > 0 and t.data_ptr() == original.__array_interface__["data"][0]
    return False


def _trackable(t: torch.Tensor, original: Any) -> bool:
    """Whether the caller's ``t`` can be kept by reference and checked by version counter.

    Not numpy memory (numpy writes bump no counter), not inference tensors (they have
    none), and only contiguous tensors, laid out as the copy kept before would be.
    """
    return isinstance(original, torch.Tensor) and not t.is_inference() and t.is_contiguous()


def _warn_if_unstable(eta: torch.Tensor, keys: torch.Tensor) -> None:
    """Warn when the delta rule's step overshoots: ``eta_n |k_n|^2 > 2`` (docs/science.md 1.3).

    Each write multiplies the memory's component along ``k_n`` by ``1 - eta_n |k_n|^2``;
    beyond 2 in magnitude that factor exceeds 1 and repeated writes blow up. The result is
    still the exact recurrence, so this is a warning, not an error.
    """
    gain = (eta * (keys.detach() ** 2).sum(-1)).max()
    if float(gain) > 2.0:
        warnings.warn(
            f"lr: the delta rule is unstable when lr * |k|^2 > 2 (largest here "
            f"{float(gain):.3g}); normalise the keys or lower lr",
            RuntimeWarning,
            stacklevel=3,
        )
