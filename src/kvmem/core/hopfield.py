"""Classical Hopfield network: Hebbian weights, +-1 units, sign dynamics (docs/science.md 1.4).

The autoassociative baseline the paper argues against: the stored pattern is both the
thing that is matched (the key) and the thing that comes back (the value).

Shapes (row vectors, docs/science.md conventions):

- patterns ``[..., P, N]``: P patterns of N units per network; the leading dimensions
  index *independent networks* (e.g. seeds x loads), so a whole capacity sweep is one
  batched call. ``mask [..., P]`` (bool) says which patterns are really stored, so one
  batch can hold networks with different loads by padding.
- cues ``[..., Q, N]``: Q cues per network; their leading dimensions broadcast against the
  networks' batch shape.

This module also holds the small private helpers shared with
:mod:`kvmem.core.dense_associative`, :mod:`kvmem.core.modern_hopfield` and
:mod:`kvmem.core.sparse_distributed` (pattern and mask checking, batch broadcasting, the
sign-with-memory nonlinearity, random unit orders, the fixed-point loop of the sign
dynamics, and ``_StoredPatterns``, the masked pattern store of the two memories that keep
their patterns).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import torch

from kvmem.core.validation import (
    as_float_tensor,
    check_dim,
    check_int_at_least,
    shape_str,
)

__all__ = ["ClassicalHopfield", "DYNAMICS"]

#: Update schedules accepted by ``ClassicalHopfield`` and ``DenseAssociativeMemory``.
DYNAMICS: tuple[str, ...] = ("synchronous", "asynchronous")

# Integer-valued float arithmetic is exact below 2**24 in float32 (2**53 in float64). The
# Hebbian sums and local fields are integers for +-1 patterns, so keeping them below this
# bound makes retrieval bit-exact and independent of how networks are batched.
_FLOAT32_EXACT = 2**24


# ----------------------------------------------------------------------------------------
# Shared private helpers (also used by dense_associative.py and modern_hopfield.py)
# ----------------------------------------------------------------------------------------


def _check_name(value: str, allowed: tuple[str, ...], name: str) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _as_patterns(
    patterns: Any, name: str = "patterns", *, allow_integer: bool = True
) -> torch.Tensor:
    """Patterns ``[..., P, N]`` as a finite floating tensor (integer +-1 input accepted)."""
    x = as_float_tensor(patterns, name, min_ndim=2, allow_integer=allow_integer)
    if x.shape[-1] == 0:
        raise ValueError(
            f"{name}: expected at least one unit (shape [..., P, N >= 1]), "
            f"got shape {shape_str(x.shape)}"
        )
    return x


def _as_mask(mask: Any, patterns: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Mask ``[..., P]`` (bool) matching ``patterns [..., P, N]``; ``None`` = all stored."""
    expected = patterns.shape[:-1]
    if mask is None:
        return torch.ones(expected, dtype=torch.bool, device=patterns.device)
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    elif isinstance(mask, (list, tuple)):
        mask = torch.as_tensor(np.asarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a bool tensor or array, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name}: expected dtype bool, got {mask.dtype}")
    if mask.shape != expected:
        raise ValueError(
            f"{name}: expected shape {shape_str(expected)} (patterns' shape without the last "
            f"axis), got shape {shape_str(mask.shape)}"
        )
    return mask.to(patterns.device)


def _check_pm1(x: torch.Tensor, mask: torch.Tensor | None, name: str) -> None:
    """Raise ``ValueError`` unless every stored (unmasked) row of ``x`` is in {-1, +1}."""
    bad = x.abs() != 1
    if not bool(bad.any()):
        return  # the usual case, padding rows included: no mask pass needed
    if mask is not None:
        bad = bad & mask[..., None]
    if bool(bad.any()):
        n_bad = int(bad.sum())
        raise ValueError(
            f"{name}: expected entries in {{-1, +1}} (shape [..., P, N]), got {n_bad} other "
            f"value(s) in shape {shape_str(x.shape)}"
        )


def _as_cues(cues: Any, n_units: int, like: torch.Tensor, name: str = "cues") -> torch.Tensor:
    """Cues ``[..., Q, N]`` on the memory's device and dtype, N checked."""
    c = as_float_tensor(cues, name, min_ndim=2, like=like, allow_integer=True)
    check_dim(c, -1, n_units, name, "pattern size N (as stored)")
    return c


def _batch_shape(cue_batch: torch.Size, mem_batch: torch.Size, name: str = "cues") -> torch.Size:
    """Broadcast the cues' leading dims against the networks' batch dims."""
    if cue_batch == mem_batch:  # the usual case (torch.broadcast_shapes costs ~0.1 ms)
        return torch.Size(mem_batch)
    try:
        return torch.broadcast_shapes(cue_batch, mem_batch)
    except RuntimeError:
        raise ValueError(
            f"{name}: expected leading dimensions broadcastable to the memory's batch shape "
            f"{shape_str(mem_batch)} (shape [{', '.join(map(str, mem_batch))}, Q, N]), "
            f"got leading dimensions {shape_str(cue_batch)}"
        ) from None


def _sign_keep(h: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """sign(h), except where h == 0: keep ``prev``, and +1 where ``prev`` is 0 too.

    The tie rule: a unit whose input is exactly balanced does not move (the usual
    convention, so a fixed point stays a fixed point); a unit that has no state yet (a
    masked cue entry, 0) and a balanced input is set to +1, so every unit has a definite
    sign after its first update.
    """
    out = torch.sign(h)
    tie = out == 0
    if bool(tie.any()):
        out = torch.where(tie, torch.where(prev == 0, torch.ones_like(prev), prev), out)
    return out


def _iterate(
    s: torch.Tensor,
    update: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps_max: int,
    energy: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Iterate sign dynamics on states ``s [..., Q, N]`` (in place) to a fixed point.

    The loop shared by ``ClassicalHopfield`` and ``DenseAssociativeMemory``: ``update(s,
    live)`` applies one synchronous step or asynchronous sweep in place and returns which
    rows changed, ``[..., Q]``; ``live`` marks the rows not yet at a fixed point (an update
    may skip the others, which cannot change). Stops once every row went through one
    update unchanged, or after ``steps_max`` updates. Returns ``(s, info)`` with ``steps``
    (updates that changed the row), ``converged`` and, when ``energy`` is given, ``energy
    [T + 1, ..., Q]`` (the initial states, then after each update).
    """
    steps = torch.zeros(s.shape[:-1], dtype=torch.int64, device=s.device)
    converged = torch.zeros(s.shape[:-1], dtype=torch.bool, device=s.device)
    energies = [energy(s)] if energy is not None else []
    for _ in range(steps_max):
        changed = update(s, ~converged)
        steps += (changed & ~converged).to(torch.int64)
        converged |= ~changed
        if energy is not None:
            energies.append(energy(s))
        if bool(converged.all()):
            break
    info = {"steps": steps, "converged": converged}
    if energy is not None:
        info["energy"] = torch.stack(energies)
    return s, info


def _synchronous(
    s: torch.Tensor,
    live: torch.Tensor,
    mem_batch: torch.Size,
    step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
) -> torch.Tensor:
    """One synchronous update in place on ``s [*B, Q, N]``; returns changed ``[*B, Q]``.

    Only networks (entries of the leading dims) with a ``live`` row are computed: the
    others sit at a fixed point. ``step(states, nets)`` returns the new states for
    ``states [A, Q, N]`` of the memory's flattened networks ``nets [A]``, or for all of
    ``s`` when ``nets`` is ``None``. Each network is computed alone (a batched matrix
    product per network), so skipping the others does not change its result.
    """
    q, n = s.shape[-2:]
    live_net = live.reshape(-1, q).any(-1)
    # While at least half the networks are live, step them all: gathering the live ones'
    # patterns costs a pass over them, more than the settled ones' wasted products (which
    # leave a fixed point where it is, so the result is the same).
    if 2 * int(live_net.sum()) >= live_net.numel():
        new = step(s, None)
        changed = (new != s).any(-1)
        s.copy_(new)
        return changed
    flat = s.view(-1, q, n)
    sel = live_net.nonzero().squeeze(-1)
    n_mem = math.prod(mem_batch)
    net_of = torch.arange(n_mem, device=s.device).reshape(mem_batch).expand(s.shape[:-2])
    old = flat[sel]
    new = step(old, net_of.reshape(-1)[sel])
    changed = torch.zeros(flat.shape[:-1], dtype=torch.bool, device=s.device)
    changed[sel] = (new != old).any(-1)
    flat[sel] = new
    return changed.view(s.shape[:-1])


def _make_generator(
    generator: torch.Generator | int | None, default: torch.Generator
) -> torch.Generator:
    """A CPU generator: the memory's own (``None``), a fresh seeded one (int), or as given."""
    if generator is None:
        return default
    if isinstance(generator, torch.Generator):
        return generator
    seed = check_int_at_least(generator, 0, "generator")
    return torch.Generator().manual_seed(seed)


def _random_orders(
    n_rows: int, n: int, generator: torch.Generator, rows: torch.Tensor
) -> torch.Tensor:
    """Independent random permutations of ``range(n)`` for ``rows`` of ``n_rows``: ``[A, n]``.

    The sort keys are drawn on the CPU for all ``n_rows`` rows, so a seed gives the same
    orders on every device and the generator's stream does not depend on which rows are
    asked for; the result (int64) is on ``rows``' device.
    """
    keys = torch.rand((n_rows, n), generator=generator)
    return keys[rows.cpu()].argsort(dim=-1).to(rows.device)


class _StoredPatterns:
    """Patterns ``[..., P, N]`` appended along P with a ``[..., P]`` bool mask.

    The storage shared by ``DenseAssociativeMemory`` and ``ModernHopfield``: both keep
    ``self._x`` (masked rows zeroed) and ``self._mask`` and persist them as the tensors
    ``patterns`` and ``mask``; a subclass's ``store(patterns, mask)`` rebuilds it.
    """

    _x: torch.Tensor | None
    _mask: torch.Tensor | None
    # (the mask and its version last found to store something: see _stored)
    _nonempty: tuple[torch.Tensor, int] | None = None

    def store(self, patterns: Any, mask: Any = None) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError

    def clear(self) -> None:
        """Forget every stored pattern."""
        self._x = self._mask = None

    @property
    def mask(self) -> torch.Tensor:
        """Which stored rows are real patterns, ``[..., P]`` bool."""
        return self._stored()[1]

    def _stored(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, m = self._x, self._mask
        if x is None or m is None:
            raise ValueError("memory is empty: store(patterns) before retrieving")
        # mask.any() is a pass and a sync (~1.4 us of a tiny retrieval): check it once per
        # stored mask, again after any in-place change to it (its version counter)
        seen = self._nonempty
        if seen is None or seen[0] is not m or seen[1] != m._version:
            if not bool(m.any()):
                raise ValueError("memory is empty: store(patterns) before retrieving")
            self._nonempty = (m, m._version)
        return x, m

    def _append_patterns(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """Append ``x [..., P, N]`` (masked rows already zeroed) after the stored patterns."""
        if self._x is None or self._mask is None:
            self._x, self._mask = x, mask
            return
        check_dim(x, -1, self._x.shape[-1], "patterns", "pattern size N (as stored)")
        if x.shape[:-2] != self._x.shape[:-2]:
            raise ValueError(
                f"patterns: expected batch shape {shape_str(self._x.shape[:-2])} (as stored), "
                f"got shape {shape_str(x.shape)}"
            )
        self._x = torch.cat([self._x, x], dim=-2)
        self._mask = torch.cat([self._mask, mask], dim=-1)

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Self:
        """Rebuild a memory from ``state_config()`` and ``state_tensors()``."""
        mem = cls(**config)
        if tensors:
            mem.store(tensors["patterns"], tensors["mask"].to(torch.bool))
        return mem


# ----------------------------------------------------------------------------------------
# ClassicalHopfield
# ----------------------------------------------------------------------------------------


class ClassicalHopfield:
    """Classical Hopfield network with Hebbian weights (docs/science.md 1.4).

    Storage (Hebbian outer product over the stored patterns of each network):

        W = (1/N) sum_mu xi_mu^T xi_mu,     W_ii = 0 (``zero_diagonal``)

    Retrieval: sign dynamics s_i <- sign(sum_j W_ij s_j), synchronous (all units at once)
    or asynchronous (units one at a time in a fresh random order every sweep), until a
    fixed point or ``max_steps`` updates (sweeps). Energy E(s) = -1/2 s W s. With a zero
    diagonal, asynchronous dynamics never increases E; synchronous dynamics may end in a
    2-cycle. Critical load ~0.138 N random patterns (Amit, Gutfreund & Sompolinsky 1985).

    Tie rule: a unit with local field exactly 0 keeps its state; a unit whose state is 0
    (a masked cue entry) and whose field is 0 becomes +1. Cue entries are read by their
    sign, so any real cue works and 0 marks an unknown entry.

    Internally the memory keeps C = sum_mu xi_mu^T xi_mu (integer valued) and runs the
    dynamics on s C, which has the sign of s W; integer-valued float arithmetic is exact,
    so a network's result does not depend on what else is in the batch (on a GPU this
    assumes full-precision float32 matmuls, PyTorch's default, not TF32).

    Args:
        n_units: N, or ``None`` to take it from the first ``store``.
        dynamics: default schedule, ``"synchronous"`` or ``"asynchronous"``.
        max_steps: default limit on updates (synchronous) or sweeps (asynchronous).
        zero_diagonal: zero the self-couplings W_ii (the classical model).
        seed: seed of the memory's own generator for asynchronous unit orders.
    """

    def __init__(
        self,
        n_units: int | None = None,
        dynamics: str = "synchronous",
        max_steps: int = 100,
        zero_diagonal: bool = True,
        seed: int = 0,
    ) -> None:
        self.n_units = None if n_units is None else check_int_at_least(n_units, 1, "n_units")
        self.dynamics = _check_name(dynamics, DYNAMICS, "dynamics")
        self.max_steps = check_int_at_least(max_steps, 1, "max_steps")
        self.zero_diagonal = bool(zero_diagonal)
        self.seed = check_int_at_least(seed, 0, "seed")
        self._generator = torch.Generator().manual_seed(self.seed)
        self._sum: torch.Tensor | None = None  # C = sum_mu xi^T xi, [..., N, N]
        self._count: torch.Tensor | None = None  # stored patterns per network, [...] int64
        self._dtype: torch.dtype | None = None  # output dtype (the patterns')

    # ------------------------------------------------------------------ storage
    def store(self, patterns: Any, mask: Any = None) -> ClassicalHopfield:
        """Add patterns ``[..., P, N]`` (+-1) to the Hebbian weights; returns ``self``.

        ``mask [..., P]`` (bool) marks the patterns really stored; masked rows contribute
        nothing (any values allowed there). Later calls add to the same weights and must
        have the same batch shape. Implements C += sum_mu mask_mu xi_mu^T xi_mu.
        """
        x = _as_patterns(patterns)
        m = _as_mask(mask, x)
        _check_pm1(x, m, "patterns")
        n = x.shape[-1]
        if self.n_units is not None:
            check_dim(x, -1, self.n_units, "patterns", "n_units N")
        if self._sum is not None:
            check_dim(x, -1, self._sum.shape[-1], "patterns", "pattern size N (as stored)")
            if x.shape[:-2] != self._sum.shape[:-2]:
                raise ValueError(
                    f"patterns: expected batch shape {shape_str(self._sum.shape[:-2])} "
                    f"(as stored), got shape {shape_str(x.shape)}"
                )
        count = m.sum(-1)
        total = count if self._count is None else self._count.to(count.device) + count
        # float32 keeps C and the fields s C exact while |s C| <= N * P < 2**24.
        p_max = int(total.max()) if total.numel() else 0
        was64 = self._sum is not None and self._sum.dtype == torch.float64
        exact32 = x.dtype != torch.float64 and not was64 and n * p_max < _FLOAT32_EXACT
        cdtype = torch.float32 if exact32 else torch.float64
        xm = x.to(cdtype) * m[..., None].to(cdtype)
        c = xm.transpose(-1, -2) @ xm
        if self.zero_diagonal:
            c.diagonal(dim1=-2, dim2=-1).zero_()
        if self._sum is None:
            self._sum, self._dtype = c, x.dtype
        else:
            self._sum = self._sum.to(dtype=cdtype, device=c.device) + c
        self._count = total
        self.n_units = n
        return self

    def clear(self) -> None:
        """Forget everything stored (N is kept)."""
        self._sum = self._count = None

    @property
    def n_patterns(self) -> torch.Tensor:
        """Number of stored patterns per network, ``[...]`` (int64)."""
        self._check_nonempty()
        assert self._count is not None
        return self._count

    @property
    def weights(self) -> torch.Tensor:
        """W = C / N, ``[..., N, N]``, in the patterns' dtype."""
        self._check_nonempty()
        assert self._sum is not None and self._dtype is not None and self.n_units is not None
        return (self._sum / self.n_units).to(self._dtype)

    def _check_nonempty(self) -> None:
        if self._sum is None or self._count is None or int(self._count.sum()) == 0:
            raise ValueError("memory is empty: store(patterns) before retrieving")

    # ------------------------------------------------------------------ dynamics
    def energy(self, states: Any) -> torch.Tensor:
        """E(s) = -1/2 s W s per state: ``states [..., Q, N] -> [..., Q]``.

        Computed exactly (float64) from the integer sums, returned in the memory's dtype.
        """
        self._check_nonempty()
        assert self._sum is not None and self._dtype is not None and self.n_units is not None
        s = _as_cues(states, self.n_units, self._sum, name="states")
        _batch_shape(s.shape[:-2], self._sum.shape[:-2], name="states")
        return self._energy(s).to(self._dtype)

    def _energy(self, s: torch.Tensor) -> torch.Tensor:
        assert self._sum is not None and self.n_units is not None
        s64 = s.to(torch.float64)
        e = -0.5 * ((s64 @ self._sum.to(torch.float64)) * s64).sum(-1)
        return e / self.n_units

    def retrieve(
        self,
        cues: Any,
        dynamics: str | None = None,
        max_steps: int | None = None,
        return_info: bool = False,
        generator: torch.Generator | int | None = None,
        track_energy: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run sign dynamics from ``cues [..., Q, N]``; returns final states ``[..., Q, N]``.

        Each unit: s_i <- sign(sum_j W_ij s_j) (docs/science.md 1.4), ties as in the class
        docstring. Stops when every network/cue reached a fixed point (an update or sweep
        that changed nothing) or after ``max_steps``. Output batch shape is the broadcast of
        the cues' and the networks' leading dims; dtype and device are the memory's.

        Args:
            dynamics: ``"synchronous"`` or ``"asynchronous"`` (default: the memory's).
            max_steps: limit on updates / sweeps (default: the memory's).
            return_info: also return ``info`` with ``steps [..., Q]`` (int64, the number of
                updates or sweeps that changed the state) and ``converged [..., Q]`` (bool,
                a fixed point was detected within ``max_steps``).
            generator: asynchronous unit orders: ``None`` uses the memory's own generator
                (advances across calls), an int seeds a fresh one.
            track_energy: add ``info["energy"]``, ``[T + 1, ..., Q]``: the energy of the
                initial state and after each of the T updates / sweeps run.
        """
        self._check_nonempty()
        assert self._sum is not None and self._dtype is not None and self.n_units is not None
        dyn = _check_name(dynamics if dynamics is not None else self.dynamics, DYNAMICS, "dynamics")
        steps_max = (
            self.max_steps if max_steps is None else check_int_at_least(max_steps, 1, "max_steps")
        )
        c_mat = self._sum
        c = _as_cues(cues, self.n_units, c_mat)
        batch = _batch_shape(c.shape[:-2], c_mat.shape[:-2])
        s = torch.sign(c).expand(*batch, *c.shape[-2:]).contiguous()  # a fresh tensor
        gen = _make_generator(generator, self._generator)
        if dyn == "synchronous":
            update = _synchronous_update(s, c_mat)
        else:
            n = self.n_units
            # Row i of network b sits at flat row b * N + i of C viewed as [networks * N, N];
            # ``base`` is each (network, cue) pair's first row there.
            c_flat = c_mat.reshape(-1, n)
            nets = torch.arange(c_flat.shape[0] // n, device=s.device).reshape(c_mat.shape[:-2])
            base = (nets.expand(batch) * n)[..., None].expand(s.shape[:-1]).reshape(-1)
            fields = (s @ c_mat).reshape(-1, n)  # s C, kept up to date as units flip

            def update(s: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
                flat = s.view(-1, n)
                return self._sweep(flat, fields, c_flat, base, live.reshape(-1), gen).view(
                    live.shape
                )

        energy = self._energy if track_energy else None
        out, info = _iterate(s, update, steps_max, energy)
        out = out.to(self._dtype)
        if not return_info:
            return out
        if track_energy:
            info["energy"] = info["energy"].to(self._dtype)
        return out, info

    @staticmethod
    def _sweep(
        s: torch.Tensor,
        fields: torch.Tensor,
        c_flat: torch.Tensor,
        base: torch.Tensor,
        live: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """One asynchronous sweep over the ``live`` rows of ``s [R, N]``; returns changed ``[R]``.

        Every (network, cue) row gets its own random unit order and its units are updated
        one at a time in that order, s_i <- sign(h_i) with h = s C (ties as in the class
        docstring); ``fields [R, N]`` holds h and is updated (by a row of C) only where a
        unit flips. Rows that are not live sit at a fixed point (their last sweep changed
        nothing) and are skipped; their unit orders are still drawn, so the generator's
        stream, and thus every result, does not depend on which rows are skipped.
        ``c_flat [networks * N, N]`` holds C's rows, ``base [R]`` each row's first row
        there. The fields are exact integers, so this equals recomputing C_i . s at every
        step. On the CPU the steps run on NumPy views of the same memory
        (:func:`_sweep_cpu`, a few cheap operations per unit); elsewhere a step-by-step
        torch loop (:func:`_sweep_torch`).
        """
        changed = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
        rows = live.nonzero().squeeze(-1)
        order = _random_orders(s.shape[0], s.shape[-1], gen, rows)  # [A, N]
        if rows.numel() == 0:
            return changed
        if s.device.type == "cpu" and c_flat.dtype in (torch.float32, torch.float64):
            changed[rows] = torch.from_numpy(
                _sweep_cpu(
                    s.numpy(),
                    fields.numpy(),
                    c_flat.numpy(),
                    base[rows].numpy(),
                    rows.numpy(),
                    order.numpy(),
                )
            )
        else:
            changed[rows] = _sweep_torch(s, fields, c_flat, base, rows, order)
        return changed

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: the integer Hebbian sums and pattern counts (empty if unused)."""
        if self._sum is None or self._count is None:
            return {}
        return {"hebbian_sum": self._sum, "n_patterns": self._count}

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (plus the output dtype)."""
        return {
            "n_units": self.n_units,
            "dynamics": self.dynamics,
            "max_steps": self.max_steps,
            "zero_diagonal": self.zero_diagonal,
            "seed": self.seed,
            "dtype": None if self._dtype is None else str(self._dtype).removeprefix("torch."),
        }

    @classmethod
    def from_state(
        cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> ClassicalHopfield:
        """Rebuild a memory from ``state_config()`` and ``state_tensors()``."""
        cfg = dict(config)
        dtype = cfg.pop("dtype", None)
        mem = cls(**cfg)
        if tensors:
            mem._sum = tensors["hebbian_sum"]
            mem._count = tensors["n_patterns"].to(torch.int64)
            mem._dtype = getattr(torch, dtype) if dtype else mem._sum.dtype
            mem.n_units = int(mem._sum.shape[-1])
        return mem

    def __repr__(self) -> str:
        return (
            f"ClassicalHopfield(n_units={self.n_units}, dynamics={self.dynamics!r}, "
            f"max_steps={self.max_steps}, zero_diagonal={self.zero_diagonal})"
        )


# ----------------------------------------------------------------------------------------
# Synchronous updates of ClassicalHopfield
# ----------------------------------------------------------------------------------------


def _sign_int(h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``_sign_keep(h, s)`` for integer-valued fields ``h`` (overwritten in place).

    For integer h and s in {-1, 0, +1}, ``sign(h + s / 4 + 1 / 8)`` is sign(h) when
    h != 0 (|s / 4 + 1 / 8| < 1), s when h = 0 and s != 0, and +1 when h = s = 0: the tie
    rule. The sums are rounded, but rounding never moves a value across 0, so this is
    exact (float32 below 2**24, float64 below 2**53) in three in-place passes.
    """
    return h.add_(s, alpha=0.25).add_(0.125).sign_()


def _synchronous_update(
    s: torch.Tensor, c_mat: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The synchronous ``update(s, live)`` of ``_iterate`` for states ``s [*B, Q, N]``.

    One update is s <- sign(s C) with the tie rule (``_sign_int``; the fields s C are
    exact integers). A network (entry of the leading dims) none of whose rows is live sits
    at a fixed point, where recomputing it changes nothing; so all networks are computed
    while at least half are live, and after that only a working set of networks, with
    their C gathered once and shrunk (gathered again) only when fewer than half of it is
    still live, so the copies of C cost about one C in all. Each network's product is its
    own (exact) matrix product, so what else is computed does not change its result.
    """
    q, n = s.shape[-2:]
    flat = s.view(-1, q, n)
    groups = flat.shape[0]
    mem_batch = c_mat.shape[:-2]
    net_of = (
        torch.arange(math.prod(mem_batch), device=s.device)
        .reshape(mem_batch)
        .expand(s.shape[:-2])
        .reshape(-1)
    )
    c_nets = c_mat.reshape(-1, n, n)
    work: dict[str, torch.Tensor] = {}  # "idx" [W] networks of ``flat``, "c" [W, N, N]

    def update(s: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        live_net = live.reshape(-1, q).any(-1)  # [G]
        if "idx" not in work:
            if 2 * int(live_net.sum()) >= groups:
                new = _sign_int(s @ c_mat, s)
                changed = (new != s).any(-1)
                s.copy_(new)
                return changed
            work["idx"] = idx = live_net.nonzero().squeeze(-1)
            work["c"] = c_nets[net_of[idx]]
        else:
            keep = live_net[work["idx"]]
            if 2 * int(keep.sum()) < keep.numel():
                work["idx"], work["c"] = work["idx"][keep], work["c"][keep]
        idx = work["idx"]
        old = flat[idx]
        new = _sign_int(old @ work["c"], old)
        changed = torch.zeros(groups, q, dtype=torch.bool, device=s.device)
        changed[idx] = (new != old).any(-1)
        flat[idx] = new
        return changed.view(s.shape[:-1])

    return update


# ----------------------------------------------------------------------------------------
# Asynchronous sweeps of ClassicalHopfield
# ----------------------------------------------------------------------------------------

#: At most this many rows still flipping: advance each row to its own next flip
#: (``_sweep_cpu``'s event mode) instead of stepping all rows through every unit.
_EVENT_ROWS = 48


def _sweep_cpu(
    s: np.ndarray,
    fields: np.ndarray,
    c_flat: np.ndarray,
    base: np.ndarray,
    rows: np.ndarray,
    order: np.ndarray,
    event_rows: int | None = None,
) -> np.ndarray:
    """One exact asynchronous sweep of ``rows [A]`` of ``s [R, N]`` in place; changed ``[A]``.

    ``order [A, N]`` is each row's unit order, ``fields [R, N]`` = s C (exact integers,
    updated in place), ``c_flat`` C's rows, ``base [A]`` each row's first row there.

    Each unit is visited once per sweep, so until a row's first flip its units would all
    be updated from the fields at the sweep's start: ``sign(h_u)`` against the state at
    the start tells, for every row at once, where (if anywhere) that row first changes.
    Rows that change nothing are done (no steps at all: this is every row's last sweep).
    The rest run the sequential dynamics exactly, in one of two ways:

    - event mode (few rows, at most ``event_rows``): each row jumps to its own next flip,
      applies it (h += delta C_u) and looks ahead again from there, so a sweep costs one
      vectorised look-ahead per flip instead of one step per unit;
    - step mode: all rows step through the positions of their orders together, from the
      first position where any of them changes; a step is a gather of the fields, a sign
      and, for the rows that flip, one row of C added to their fields.

    Tie rule as integers: for integer h and a state s in {-1, 0, +1},
    ``sign(h + s / 4 + 1 / 8)`` is sign(h) when h != 0 (|s / 4 + 1 / 8| < 1), s when h = 0
    and s != 0, and +1 when h = s = 0: exactly ``_sign_keep`` (the sum is rounded but
    never changes sign, in float32 below 2**24 and float64 alike).
    """
    limit = _EVENT_ROWS if event_rows is None else event_rows
    n = s.shape[-1]
    a_n = rows.shape[0]
    sr = s[rows]  # [A, N] states in unit order (a copy, written back at the end)
    h = fields[rows]  # [A, N] fields in unit order (a copy, written back at the end)
    sp = np.take_along_axis(sr, order, -1)  # sweep-start states in visiting order
    bias = sp * 0.25 + 0.125  # tie rule (see above), per visiting position
    # look-ahead from the sweep's start: the first position where each row changes
    new_p = np.sign(np.take_along_axis(h, order, -1) + bias)
    flips = new_p != sp
    first = flips.argmax(-1)
    todo = np.flatnonzero(flips[np.arange(a_n), first])
    changed = np.zeros(a_n, dtype=bool)
    changed[todo] = True
    if todo.size == 0:
        return changed
    if todo.size <= limit:
        # event mode: per row, apply the next flip, then look ahead from the position after
        # it. The fields are kept in visiting order (``hv``, the same sums element by
        # element) and the arrays of the rows still flipping are compacted as rows finish.
        pos = np.arange(n)
        act, j = todo, first[todo]
        o, st, bi, b = order[act], sp[act], bias[act], base[act]
        hv = np.take_along_axis(h[act], o, -1)
        look = new_p[act]
        while True:
            ar = np.arange(act.size)
            u = o[ar, j]
            new = look[ar, j]
            sr[act, u] = new
            hv += (new - st[ar, j])[:, None] * c_flat[(b + u)[:, None], o]
            look = np.sign(hv + bi)
            fl = (look != st) & (pos > j[:, None])
            j = fl.argmax(-1)
            more = fl[ar, j]
            if not more.all():
                fin = ~more
                h[act[fin][:, None], o[fin]] = hv[fin]  # back to unit order
                if not more.any():
                    break
                act, j, o, st, bi, b = act[more], j[more], o[more], st[more], bi[more], b[more]
                hv, look = hv[more], look[more]
    else:
        # step mode: rows in ``todo`` step together from the first position that changes
        ar = np.arange(todo.size)
        o, b, bi, st = order[todo], base[todo], bias[todo], sp[todo]
        hh, ss = h[todo], sr[todo]
        c_rows = b[:, None] + o  # [T, N]: row of c_flat of each (row, step)
        for k in range(int(first[todo].min()), n):
            new = np.sign(hh[ar, o[:, k]] + bi[:, k])
            delta = new - st[:, k]
            moved = np.flatnonzero(delta)
            if moved.size:
                ss[moved, o[moved, k]] = new[moved]
                hh[moved] += delta[moved, None] * c_flat[c_rows[moved, k]]
        h[todo], sr[todo] = hh, ss
    s[rows] = sr
    fields[rows] = h
    return changed


def _sweep_torch(
    s: torch.Tensor,
    fields: torch.Tensor,
    c_flat: torch.Tensor,
    base: torch.Tensor,
    rows: torch.Tensor,
    order: torch.Tensor,
) -> torch.Tensor:
    """The sweep of ``_sweep_cpu`` step by step in torch (any device); changed ``[A]``.

    The loop over the N positions of the orders is the dynamics itself, each step
    vectorised over the live rows; only the rows whose unit flips get a row of C added.
    """
    n = s.shape[-1]
    # States in each row's visiting order: column k of ``sp`` is the unit the row updates
    # at step k, still in its starting state (each unit is visited once per sweep).
    sp = s[rows].gather(-1, order)
    new_p = torch.empty_like(sp)
    h = fields[rows]  # [A, N], unit order
    c_row = base[rows][:, None] + order  # [A, N]: row of C_flat of each (row, step)
    moved_any = torch.zeros(rows.numel(), dtype=torch.bool, device=s.device)
    with torch.no_grad():
        for k in range(n):
            old = sp[:, k]
            new = _sign_keep(h.gather(-1, order[:, k : k + 1]).squeeze(-1), old)
            new_p[:, k] = new
            diff = new - old
            moved = diff != 0
            if bool(moved.any()):
                idx = moved.nonzero().squeeze(-1)
                h.index_add_(0, idx, diff[idx].unsqueeze(-1) * c_flat[c_row[:, k][idx]])
                moved_any |= moved
        s[rows] = torch.empty_like(new_p).scatter_(-1, order, new_p)
        fields[rows] = h
    return moved_any
