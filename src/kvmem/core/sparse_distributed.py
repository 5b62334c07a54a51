"""Sparse distributed memory (Kanerva 1988), docs/science.md 1.4 and 1.7.

M fixed random *hard locations*, each with an address a_m in {-1, +1}^{N_a} (drawn once
from ``seed``; +-1 rather than Kanerva's {0, 1} so Hamming distance is a dot product)
and a vector of integer counters c_m in Z^{N_d}.

- A location is active for address x if Hamming(a_m, x) <= r, i.e. a_m . x >= N_a - 2r
  (the threshold separation operator of docs/science.md 1.2 on a dot-product similarity).
- Write (x, d), d in {-1, +1}^{N_d}: c_m <- c_m + d for every active location.
- Read at x: sum the counters of the active locations and threshold,
  d_hat = sign(sum_{m active} c_m), with ties (a zero sum, including no active
  location) read as +1.

The radius is given directly or from an activation probability p: the smallest r with
P(Binomial(N_a, 1/2) <= r) >= p, the chance that a random address activates a location.

Counters are ``counter_dtype`` integers (int32 by default). They never overflow
silently: a write that would push a counter past the dtype's range raises
``OverflowError`` and leaves the memory unchanged, unless ``clip`` is set, in which case
counters saturate at +-clip. Clipping is applied after each ``write`` call, i.e. to the
summed increments of the batch (equal to writing one pattern at a time with clipping
unless a counter would cross the bound and come back within one batch).

Batching: leading dims of the written addresses/data index independent memories that
share the same hard-location addresses (their counters differ); reads broadcast against
them. A write is two matrix products (activations, counter increments).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

from kvmem.core.hopfield import _as_mask, _batch_shape, _check_pm1
from kvmem.core.validation import (
    as_float_tensor,
    check_dim,
    check_int_at_least,
    shape_str,
)

__all__ = ["SparseDistributedMemory", "radius_for_probability"]

_COUNTER_DTYPES: dict[str, torch.dtype] = {
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
}
_FLOAT32_EXACT = 2**24


def radius_for_probability(address_dim: int, probability: float) -> int:
    """Smallest radius r with P(Binomial(address_dim, 1/2) <= r) >= probability.

    Exact (integer binomial sums), so the activation probability of a location for a
    random address is at least ``probability`` and as close to it as the integers allow.
    """
    n = check_int_at_least(address_dim, 1, "address_dim")
    # exact rational arithmetic: a float 2**n overflows for address_dim > 1023
    target = Fraction(_check_probability(probability, "probability")) * 2**n
    total = 0
    for r in range(n + 1):
        total += math.comb(n, r)
        if total >= target:
            return r
    return n


def _check_probability(p: float, name: str = "activation_probability") -> float:
    try:
        v = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number in (0, 1], got {p!r}") from None
    if not (0.0 < v <= 1.0):
        raise ValueError(f"{name}: expected a value in (0, 1], got {p!r}")
    return v


def _as_counter_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = _COUNTER_DTYPES.get(dtype.removeprefix("torch."), dtype)  # type: ignore[arg-type]
    if dtype not in _COUNTER_DTYPES.values():
        raise ValueError(
            f"counter_dtype: expected one of {', '.join(_COUNTER_DTYPES)}, got {dtype!r}"
        )
    return dtype  # type: ignore[return-value]


class SparseDistributedMemory:
    """Kanerva's sparse distributed memory (module docstring; docs/science.md 1.4).

    Args:
        address_dim: N_a, bits per address.
        data_dim: N_d, bits per datum; ``None`` makes it autoassociative (N_d = N_a).
        n_locations: M, the number of hard locations.
        radius: Hamming radius r (integer >= 0). Give this or ``activation_probability``;
            with neither, the activation probability is 0.05.
        activation_probability: p in (0, 1]; the radius is the binomial quantile.
        clip: saturate counters at +-clip (integer >= 1) instead of raising on overflow.
        counter_dtype: integer dtype of the counters (int8/int16/int32/int64; default int32;
            a narrow one makes overflow reachable in tests).
        seed: seed of the hard-location addresses.
    """

    def __init__(
        self,
        address_dim: int,
        data_dim: int | None = None,
        n_locations: int = 1000,
        radius: int | None = None,
        activation_probability: float | None = None,
        clip: int | None = None,
        counter_dtype: torch.dtype | str = torch.int32,
        seed: int = 0,
    ) -> None:
        self.address_dim = check_int_at_least(address_dim, 1, "address_dim")
        self.data_dim = (
            self.address_dim if data_dim is None else check_int_at_least(data_dim, 1, "data_dim")
        )
        self.autoassociative = data_dim is None
        self.n_locations = check_int_at_least(n_locations, 1, "n_locations")
        if radius is not None and activation_probability is not None:
            raise ValueError(
                "radius, activation_probability: expected at most one of them, got both "
                f"(radius={radius!r}, activation_probability={activation_probability!r})"
            )
        if radius is None:
            p = 0.05 if activation_probability is None else activation_probability
            self.radius = radius_for_probability(self.address_dim, _check_probability(p))
        else:
            self.radius = check_int_at_least(radius, 0, "radius")
        self.counter_dtype = _as_counter_dtype(counter_dtype)
        info = torch.iinfo(self.counter_dtype)
        if clip is not None:
            clip = check_int_at_least(clip, 1, "clip")
            if clip > info.max:
                raise ValueError(
                    f"clip: expected an integer <= {info.max} (the range of {self.counter_dtype})"
                    f", got {clip}"
                )
        self.clip = clip
        self.seed = check_int_at_least(seed, 0, "seed")
        gen = torch.Generator().manual_seed(self.seed)
        bits = torch.randint(0, 2, (self.n_locations, self.address_dim), generator=gen)
        self._addresses = (2 * bits - 1).to(torch.float32)  # [M, N_a], +-1
        self._counters: torch.Tensor | None = None  # [..., M, N_d] counter_dtype
        self._dtype: torch.dtype | None = None  # output dtype: the first written data's

    # ------------------------------------------------------------------ properties
    @property
    def addresses(self) -> torch.Tensor:
        """Hard-location addresses ``[M, N_a]`` (+-1, float32)."""
        return self._addresses

    @property
    def counters(self) -> torch.Tensor:
        """Counters ``[..., M, N_d]`` (``counter_dtype``)."""
        return self._stored()

    @property
    def activation_probability(self) -> float:
        """Exact probability that a random address activates a given location."""
        n, r = self.address_dim, min(self.radius, self.address_dim)
        return sum(math.comb(n, k) for k in range(r + 1)) / 2**n

    def _stored(self) -> torch.Tensor:
        if self._counters is None:
            raise ValueError("memory is empty: write(addresses, data) or store(patterns) first")
        return self._counters

    # ------------------------------------------------------------------ activation
    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        """Active locations for addresses ``x [..., Q, N_a]`` (read by sign): float 0/1."""
        a = self._addresses.to(x.device)
        # +-1 dot products are exact integers in float32 (N_a < 2**24).
        dots = torch.sign(x).to(torch.float32) @ a.T  # [..., Q, M]
        return (dots >= self.address_dim - 2 * self.radius).to(torch.float32)

    def activations(self, addresses: Any) -> torch.Tensor:
        """Which locations each address activates: ``[..., Q, N_a] -> [..., Q, M]`` (bool)."""
        x = as_float_tensor(addresses, "addresses", min_ndim=2, allow_integer=True)
        check_dim(x, -1, self.address_dim, "addresses", "address_dim N_a")
        return self._activate(x).bool()

    # ------------------------------------------------------------------ write
    def write(self, addresses: Any, data: Any = None, mask: Any = None) -> SparseDistributedMemory:
        """Write ``data [..., P, N_d]`` at ``addresses [..., P, N_a]`` (all +-1); returns self.

        c_m += sum_p mask_p [a_m within r of x_p] d_p for every location m (docs/science.md 1.4),
        as one product over the batch. ``data=None`` writes the addresses themselves
        (autoassociative memories only). ``mask [..., P]`` (bool) drops padded rows. The
        batch shape (leading dims) must match earlier writes.
        """
        x = as_float_tensor(addresses, "addresses", min_ndim=2, allow_integer=True)
        check_dim(x, -1, self.address_dim, "addresses", "address_dim N_a")
        if data is None:
            if not self.autoassociative:
                raise ValueError(
                    f"data: expected shape [..., P, {self.data_dim}] for a heteroassociative "
                    "memory (data_dim given), got None"
                )
            d = x
        else:
            d = as_float_tensor(data, "data", min_ndim=2, allow_integer=True)
            check_dim(d, -1, self.data_dim, "data", "data_dim N_d")
            if d.shape[:-1] != x.shape[:-1]:
                raise ValueError(
                    f"data: expected shape {shape_str((*x.shape[:-1], self.data_dim))} (one "
                    f"datum per address), got shape {shape_str(d.shape)}"
                )
            d = d.to(x.device)
        m = _as_mask(mask, x)
        _check_pm1(x, m, "addresses")
        _check_pm1(d, m, "data")
        batch = x.shape[:-2]
        if self._counters is not None and self._counters.shape[:-2] != batch:
            raise ValueError(
                f"addresses: expected batch shape {shape_str(self._counters.shape[:-2])} (as "
                f"written before), got shape {shape_str(x.shape)}"
            )
        p = x.shape[-2]
        # Increments are sums of at most P terms in {-1, 0, 1}: exact in float32 below 2**24.
        fdtype = torch.float32 if p < _FLOAT32_EXACT else torch.float64
        act = self._activate(x).to(fdtype)  # [..., P, M]
        dm = d.to(fdtype) * m[..., None].to(fdtype)
        inc = (act.transpose(-1, -2) @ dm).round().to(torch.int64)  # [..., M, N_d]
        old = (
            torch.zeros_like(inc)
            if self._counters is None
            else self._counters.to(device=inc.device, dtype=torch.int64)
        )
        new = old + inc
        if self.clip is not None:
            new = new.clamp(-self.clip, self.clip)
        else:
            info = torch.iinfo(self.counter_dtype)
            over = (new > info.max) | (new < info.min)
            if bool(over.any()):
                worst = int(new.abs().max())
                raise OverflowError(
                    f"counters: this write would overflow {int(over.sum())} counter(s) of dtype "
                    f"{self.counter_dtype} (range [{info.min}, {info.max}]; largest |value| "
                    f"{worst}); memory left unchanged. Set clip= to saturate or use a wider "
                    "counter_dtype"
                )
        if self._counters is None:
            self._dtype = d.dtype
        self._counters = new.to(self.counter_dtype)
        self._addresses = self._addresses.to(x.device)
        return self

    def store(self, patterns: Any, mask: Any = None) -> SparseDistributedMemory:
        """Autoassociative write: each pattern ``[..., P, N_a]`` at its own address."""
        if not self.autoassociative:
            raise ValueError(
                "store: expected an autoassociative memory (data_dim=None); use "
                "write(addresses, data) for a heteroassociative one"
            )
        return self.write(patterns, None, mask)

    def clear(self) -> None:
        """Zero the memory (the hard-location addresses are kept)."""
        self._counters = None

    # ------------------------------------------------------------------ read
    def _read(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bits, sums, n_active) for addresses ``x [..., Q, N_a]`` on the memory's device."""
        counters = self._stored()
        act = self._activate(x)  # [..., Q, M]
        # max(-min, max), not abs().max(): abs of the most negative integer overflows.
        top = max(-int(counters.min()), int(counters.max())) if counters.numel() else 0
        bound = top * self.n_locations
        # Sums of counters are exact in float32 only while they stay below 2**24.
        fdtype = torch.float32 if bound < _FLOAT32_EXACT else torch.float64
        sums = act.to(fdtype) @ counters.to(fdtype)  # [..., Q, N_d]
        bits = torch.where(sums >= 0, 1.0, -1.0)  # ties (0) read as +1
        return bits, sums, act.sum(-1).to(torch.int64)

    def read(
        self, addresses: Any, return_info: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One read at ``addresses [..., Q, N_a]``: d_hat = sign(sum of active counters).

        Returns ``[..., Q, N_d]`` (+-1, in the first written data's dtype; ties -> +1).
        Leading dims broadcast against the memory's batch shape. Addresses are read by
        sign (a 0 entry counts as half a mismatch). With ``return_info``: ``sums [..., Q,
        N_d]`` (the summed counters, float) and ``n_active [..., Q]`` (int64).
        """
        counters = self._stored()
        assert self._dtype is not None
        x = as_float_tensor(addresses, "addresses", min_ndim=2, allow_integer=True)
        check_dim(x, -1, self.address_dim, "addresses", "address_dim N_a")
        _batch_shape(x.shape[:-2], counters.shape[:-2], name="addresses")
        bits, sums, n_active = self._read(x.to(counters.device))
        if not return_info:
            return bits.to(self._dtype)
        return bits.to(self._dtype), {"sums": sums, "n_active": n_active}

    def retrieve(
        self, cues: Any, iterations: int = 1, return_info: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Autoassociative recall: read at ``cues [..., Q, N_a]``, feeding each read back.

        ``iterations`` reads at most (Kanerva's iterated read, converging on a stored
        pattern when the cue is within its critical distance); a cue stops once a read
        returns its own address (a fixed point). With ``return_info``: ``steps [..., Q]``
        (reads that changed the state), ``converged [..., Q]`` (fixed point reached),
        ``n_active [..., Q]`` (active locations at the last read).
        """
        if not self.autoassociative and self.data_dim != self.address_dim:
            raise ValueError(
                f"retrieve: expected data_dim == address_dim to feed reads back as addresses, "
                f"got data_dim {self.data_dim} and address_dim {self.address_dim}"
            )
        iters = check_int_at_least(iterations, 1, "iterations")
        counters = self._stored()
        assert self._dtype is not None
        c = as_float_tensor(cues, "cues", min_ndim=2, allow_integer=True)
        check_dim(c, -1, self.address_dim, "cues", "address_dim N_a")
        batch = _batch_shape(c.shape[:-2], counters.shape[:-2])
        s = c.to(counters.device).expand(*batch, *c.shape[-2:])
        steps = torch.zeros(s.shape[:-1], dtype=torch.int64, device=s.device)
        converged = torch.zeros(s.shape[:-1], dtype=torch.bool, device=s.device)
        n_active = torch.zeros_like(steps)
        for _ in range(iters):
            bits, _, act = self._read(s)
            bits = bits.to(s.dtype)
            changed = (bits != s).any(-1)
            live = ~converged
            s = torch.where(live[..., None], bits, s)
            n_active = torch.where(live, act, n_active)
            steps += (changed & live).to(torch.int64)
            converged |= ~changed
            if bool(converged.all()):
                break
        out = s.to(self._dtype)
        if not return_info:
            return out
        return out, {"steps": steps, "converged": converged, "n_active": n_active}

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: hard-location ``addresses`` and ``counters`` (if written)."""
        out = {"addresses": self._addresses}
        if self._counters is not None:
            out["counters"] = self._counters
        return out

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (radius resolved) plus the output dtype."""
        return {
            "address_dim": self.address_dim,
            "data_dim": None if self.autoassociative else self.data_dim,
            "n_locations": self.n_locations,
            "radius": self.radius,
            "clip": self.clip,
            "counter_dtype": str(self.counter_dtype).removeprefix("torch."),
            "seed": self.seed,
            "dtype": None if self._dtype is None else str(self._dtype).removeprefix("torch."),
        }

    @classmethod
    def from_state(
        cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> SparseDistributedMemory:
        """Rebuild a memory from ``state_config()`` and ``state_tensors()``."""
        cfg = dict(config)
        dtype = cfg.pop("dtype", None)
        mem = cls(**cfg)
        if "addresses" in tensors:
            mem._addresses = tensors["addresses"].to(torch.float32)
        if "counters" in tensors:
            mem._counters = tensors["counters"].to(mem.counter_dtype)
            mem._dtype = getattr(torch, dtype) if dtype else torch.get_default_dtype()
        return mem

    def __repr__(self) -> str:
        return (
            f"SparseDistributedMemory(address_dim={self.address_dim}, data_dim={self.data_dim}, "
            f"n_locations={self.n_locations}, radius={self.radius}, clip={self.clip}, "
            f"counter_dtype={self.counter_dtype})"
        )
