"""Dense associative memory (Krotov & Hopfield 2016; Demircigil et al. 2017), docs/science.md 1.4.

Energy over +-1 states s, with stored +-1 patterns xi_mu (rows of X ``[..., P, N]``):

    E(s) = - sum_mu F(xi_mu . s)

F(x) = x^n ("polynomial"), max(x, 0)^n ("rectified_polynomial"), or exp(beta x)
("exponential"). Capacity grows like N^(n-1) for the polynomials and exponentially in N
for the exponential (docs/science.md 1.4). Each unit moves to whichever of its two states has
the lower energy:

    s_i <- sign( sum_mu [ F(xi_mu,i + sum_{j != i} xi_mu,j s_j)
                        - F(-xi_mu,i + sum_{j != i} xi_mu,j s_j) ] )

Synchronous dynamics (the default) updates all units at once. Writing m_mu = xi_mu . s
and using xi, s in {-1, +1}, the bracket summed over mu collapses (exactly) to

    Delta_i = 1/2 [ s_i sum_mu (2 F(m) - F(m - 2) - F(m + 2))
                    + sum_mu xi_mu,i (F(m + 2) - F(m - 2)) ]

(and to sum_mu xi_mu,i (F(m + 1) - F(m - 1)) for a unit with s_i = 0, a masked cue
entry), so a step costs two matrix products, never a [Q, P, N] tensor. For n = 2 this is
4 N times the classical Hopfield field with zero diagonal. Asynchronous dynamics visits
units in a random order each sweep and never raises E.

Numerics: the dynamics run in float64, where the polynomial terms are exact integers up
to 2^53. The exponential is evaluated as exp(beta (x - c)) with c the state's largest
overlap (+2): a positive factor common to every unit of that state, so the signs, and
thus the dynamics, are unchanged and nothing overflows. ``energy`` reports the unshifted
E, which can overflow to -inf for exponential F at large beta N in float32.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kvmem.core.hopfield import (
    DYNAMICS,
    _as_cues,
    _as_mask,
    _as_patterns,
    _batch_shape,
    _check_name,
    _check_pm1,
    _iterate,
    _make_generator,
    _random_orders,
    _sign_keep,
    _StoredPatterns,
    _synchronous,
)
from kvmem.core.validation import check_int_at_least, check_positive

__all__ = ["DenseAssociativeMemory", "INTERACTIONS"]

#: Interaction functions F accepted by ``DenseAssociativeMemory``.
INTERACTIONS: tuple[str, ...] = ("polynomial", "rectified_polynomial", "exponential")


class DenseAssociativeMemory(_StoredPatterns):
    """Dense associative memory with +-1 units (docs/science.md 1.4, module docstring).

    Patterns ``[..., P, N]`` (+-1; leading dims = independent networks), optional
    ``mask [..., P]`` for padded loads; cues ``[..., Q, N]`` (read by sign, 0 = unknown).
    Tie rule as :class:`~kvmem.core.hopfield.ClassicalHopfield`: Delta_i = 0 keeps the
    unit, and sets it to +1 if it was 0.

    Args:
        interaction: ``"polynomial"`` (x^n), ``"rectified_polynomial"`` (max(x, 0)^n) or
            ``"exponential"`` (exp(beta x), Demircigil et al. 2017).
        n: the polynomial degree (>= 2; n = 2 is the classical Hopfield network).
        beta: inverse temperature of the exponential (> 0); ignored by the polynomials.
        dynamics: default schedule, ``"synchronous"`` or ``"asynchronous"``.
        max_steps: default limit on updates (synchronous) or sweeps (asynchronous).
        seed: seed of the memory's own generator for asynchronous unit orders.
    """

    def __init__(
        self,
        interaction: str = "polynomial",
        n: int = 3,
        beta: float = 1.0,
        dynamics: str = "synchronous",
        max_steps: int = 100,
        seed: int = 0,
    ) -> None:
        self.interaction = _check_name(interaction, INTERACTIONS, "interaction")
        self.n = check_int_at_least(n, 2, "n")
        self.beta = check_positive(beta, "beta")
        self.dynamics = _check_name(dynamics, DYNAMICS, "dynamics")
        self.max_steps = check_int_at_least(max_steps, 1, "max_steps")
        self.seed = check_int_at_least(seed, 0, "seed")
        self._generator = torch.Generator().manual_seed(self.seed)
        self._x: torch.Tensor | None = None  # float64 patterns [..., P, N]
        self._mask: torch.Tensor | None = None  # [..., P] bool
        self._dtype: torch.dtype | None = None  # output dtype: the first stored patterns'

    # ------------------------------------------------------------------ storage
    def store(self, patterns: Any, mask: Any = None) -> DenseAssociativeMemory:
        """Append +-1 patterns ``[..., P, N]`` (``mask [..., P]`` bool); returns ``self``.

        Later calls must have the same batch shape and N; patterns are concatenated along P.
        """
        x = _as_patterns(patterns)
        m = _as_mask(mask, x)
        _check_pm1(x, m, "patterns")
        # Masked rows may hold anything (padding); zero them so they are inert everywhere.
        # (masked_fill on a fresh copy: ~10x faster here than where() with a Python scalar)
        x64 = x.to(torch.float64, copy=True).masked_fill_(~m[..., None], 0.0)
        if self._x is None:
            self._dtype = x.dtype
        else:
            x64 = x64.to(self._x.device)
        self._append_patterns(x64, m.to(x64.device))
        return self

    @property
    def patterns(self) -> torch.Tensor:
        """Stored patterns ``[..., P, N]`` (masked rows are zero), in the patterns' dtype."""
        x, _ = self._stored()
        assert self._dtype is not None
        return x.to(self._dtype)

    # ------------------------------------------------------------------ interaction
    def _f(self, x: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
        """F(x) (float64); ``shift [..., Q, 1]`` rescales the exponential by exp(-beta c)."""
        if self.interaction == "polynomial":
            return x**self.n
        if self.interaction == "rectified_polynomial":
            return x.clamp(min=0) ** self.n
        return torch.exp(self.beta * (x - shift) if shift is not None else self.beta * x)

    def _shift(self, m: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
        """Per-state exponent shift c = max_mu m_mu + 2 (exponential only), ``[..., Q, 1]``.

        ``valid`` (bool, broadcastable to ``m [..., Q, P]``) marks the stored patterns.
        """
        if self.interaction != "exponential":
            return None
        top = m.masked_fill(~valid, float("-inf")).amax(-1, keepdim=True)
        return torch.where(torch.isfinite(top), top + 2.0, torch.zeros_like(top))

    # ------------------------------------------------------------------ dynamics
    def energy(self, states: Any) -> torch.Tensor:
        """E(s) = -sum_mu F(xi_mu . s): ``states [..., Q, N] -> [..., Q]`` (memory's dtype)."""
        x, mask = self._stored()
        assert self._dtype is not None
        s = _as_cues(states, x.shape[-1], x, name="states")
        _batch_shape(s.shape[:-2], x.shape[:-2], name="states")
        return self._energy(s, x, mask).to(self._dtype)

    def _energy(self, s: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = s @ x.transpose(-1, -2)
        w = mask[..., None, :].to(m.dtype)
        return -(self._f(m, None) * w).sum(-1)

    def retrieve(
        self,
        cues: Any,
        dynamics: str | None = None,
        max_steps: int | None = None,
        return_info: bool = False,
        generator: torch.Generator | int | None = None,
        track_energy: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the energy-descent dynamics from ``cues [..., Q, N]``; returns ``[..., Q, N]``.

        Same arguments and ``info`` (``steps``, ``converged``, optional ``energy
        [T + 1, ..., Q]``) as :meth:`ClassicalHopfield.retrieve
        <kvmem.core.hopfield.ClassicalHopfield.retrieve>`. Output batch shape is the
        broadcast of the cues' and the networks' leading dims; dtype/device the memory's.
        """
        x, mask = self._stored()
        assert self._dtype is not None
        dyn = _check_name(dynamics if dynamics is not None else self.dynamics, DYNAMICS, "dynamics")
        steps_max = (
            self.max_steps if max_steps is None else check_int_at_least(max_steps, 1, "max_steps")
        )
        n_units = x.shape[-1]
        c = _as_cues(cues, n_units, x)
        batch = _batch_shape(c.shape[:-2], x.shape[:-2])
        s = torch.sign(c).expand(*batch, *c.shape[-2:]).contiguous()  # a fresh tensor
        gen = _make_generator(generator, self._generator)
        p = x.shape[-2]
        if dyn == "synchronous":

            def step(st: torch.Tensor, nets: torch.Tensor | None) -> torch.Tensor:
                if nets is None:
                    return _sign_keep(self._delta_all(st, x, mask), st)
                x_sel = x.reshape(-1, *x.shape[-2:])[nets]
                return _sign_keep(self._delta_all(st, x_sel, mask.reshape(-1, p)[nets]), st)

            def update(s: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
                return _synchronous(s, live, x.shape[:-2], step)

        else:
            # Column i of network b's X is row b * N + i of X^T viewed as [networks * N, P];
            # ``base`` is each (network, cue) pair's first row there.
            cols = x.transpose(-1, -2).reshape(-1, p)
            nets = torch.arange(cols.shape[0] // n_units, device=s.device).reshape(x.shape[:-2])
            base = (nets.expand(batch) * n_units)[..., None].expand(s.shape[:-1]).reshape(-1)
            valid = mask[..., None, :].expand(*s.shape[:-1], p).reshape(-1, p)
            overlaps = (s @ x.transpose(-1, -2)).reshape(-1, p)  # m = s X^T, kept up to date

            def update(s: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
                flat = s.view(-1, n_units)
                changed = self._sweep(flat, overlaps, cols, base, valid, live.reshape(-1), gen)
                return changed.view(live.shape)

        energy = (lambda s: self._energy(s, x, mask)) if track_energy else None
        out, info = _iterate(s, update, steps_max, energy)
        out = out.to(self._dtype)
        if not return_info:
            return out
        if track_energy:
            info["energy"] = info["energy"].to(self._dtype)
        return out, info

    def _delta_all(self, s: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Delta_i for every unit at once (module docstring): ``[..., Q, N]``."""
        m = s @ x.transpose(-1, -2)  # [..., Q, P] overlaps, exact integers
        if self._odd_power_exact(x):
            return self._delta_odd_power(s, x, m)
        valid = mask[..., None, :]
        w = valid.to(m.dtype)
        shift = self._shift(m, valid)
        f0, fp2, fm2 = self._f(m, shift), self._f(m + 2, shift), self._f(m - 2, shift)
        curv = ((2 * f0 - fm2 - fp2) * w).sum(-1, keepdim=True)  # [..., Q, 1]
        delta = 0.5 * (s * curv + ((fp2 - fm2) * w) @ x)
        unset = s == 0
        if bool(unset.any()):
            g1 = ((self._f(m + 1, shift) - self._f(m - 1, shift)) * w) @ x
            delta = torch.where(unset, g1, delta)
        return delta

    def _odd_power_exact(self, x: torch.Tensor) -> bool:
        """Whether F = x^n with n odd and every term below is an exact float64 integer:
        ``|m| <= N``, so ``2 P (N + 2)^n < 2^53`` bounds every sum of the step."""
        if self.interaction != "polynomial" or self.n % 2 == 0:
            return False
        p, n_units = x.shape[-2], x.shape[-1]
        return 2 * max(p, 1) * (n_units + 2) ** self.n < 2**53

    def _delta_odd_power(self, s: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """:meth:`_delta_all` for F = x^n, n odd, by the binomial expansions

            F(m + a) - F(m - a) = 2 sum_{k odd} C(n, k) a^k m^(n-k)      (even in m, > 0)
            2 F(m) - F(m + 2) - F(m - 2) = -2 sum_{k even >= 2} C(n, k) 2^k m^(n-k)

        evaluated by Horner's rule. Every value is an integer below 2^53
        (:meth:`_odd_power_exact`), so each is exact and equals the direct evaluation bit
        for bit, with a third of the passes over the ``[..., Q, P]`` overlaps.
        """

        def poly(coef: dict[int, float], z: torch.Tensor) -> torch.Tensor:
            """sum_j coef[j] z^j by Horner's rule, in place on one fresh tensor."""
            top = max(coef)
            out = z * coef[top]
            for j in range(top - 1, 0, -1):  # out <- (out + c_j) z
                if coef.get(j):
                    out.add_(coef[j])
                out.mul_(z)
            if coef.get(0):
                out.add_(coef[0])
            return out

        n = self.n

        def odd_part(a: int) -> dict[int, float]:
            return {n - k: 2.0 * math.comb(n, k) * a**k for k in range(1, n + 1, 2)}

        even = {n - k: -2.0 * math.comb(n, k) * 2**k for k in range(2, n + 1, 2)}
        # (+ 0.0: an exact zero is +0, as the direct difference gives)
        # Masked (unstored) rows of x are zero, so their overlaps m are 0: the even part
        # (odd powers of m) is 0 there and the odd part meets a zero row of x, so no
        # weighting by the mask is needed.
        curv = poly(even, m).sum(-1, keepdim=True) + 0.0  # [..., Q, 1]
        delta = torch.addcmul(poly(odd_part(2), m) @ x, s, curv).mul_(0.5)
        unset = s == 0
        if bool(unset.any()):
            g1 = poly(odd_part(1), m) @ x
            delta = torch.where(unset, g1, delta)
        return delta

    def _sweep(
        self,
        s: torch.Tensor,
        overlaps: torch.Tensor,
        cols: torch.Tensor,
        base: torch.Tensor,
        valid: torch.Tensor,
        live: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """One asynchronous sweep over the ``live`` rows of ``s [R, N]``; returns changed ``[R]``.

        ``overlaps [R, P]`` (m = s X^T, exact integers) is kept up to date as units flip, so
        each unit costs O(P). ``cols [networks * N, P]`` holds the columns of each network's
        X, ``base [R]`` each row's first column there, ``valid [R, P]`` the mask. Rows that
        are not live sit at a fixed point and are skipped; their unit orders are still
        drawn, so the generator's stream does not depend on which rows are skipped.
        """
        n_units = s.shape[-1]
        changed = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
        rows = live.nonzero().squeeze(-1)
        order = _random_orders(s.shape[0], n_units, gen, rows)  # [A, N]
        if rows.numel() == 0:
            return changed
        # States in visiting order: column k of ``sp`` is the unit the row updates at step k,
        # still in its starting state (each unit is visited once per sweep).
        sp = s[rows].gather(-1, order)
        new_p = torch.empty_like(sp)
        m, v = overlaps[rows], valid[rows]
        w = v.to(m.dtype)
        col = base[rows][:, None] + order  # [A, N]: row of ``cols`` of each (row, step)
        moved_any = torch.zeros(rows.numel(), dtype=torch.bool, device=s.device)
        for k in range(n_units):
            xi = cols[col[:, k]]  # [A, P]: xi_mu,i for each row's unit i
            old = sp[:, k : k + 1]
            r = m - xi * old  # overlaps without unit i
            shift = self._shift(r, v)
            delta = ((self._f(r + xi, shift) - self._f(r - xi, shift)) * w).sum(-1, keepdim=True)
            new = _sign_keep(delta, old)
            new_p[:, k : k + 1] = new
            m += xi * (new - old)
            moved_any |= (new != old).squeeze(-1)
        s[rows] = torch.empty_like(new_p).scatter_(-1, order, new_p)
        overlaps[rows] = m
        changed[rows] = moved_any
        return changed

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: ``patterns`` and ``mask`` (empty if nothing stored)."""
        if self._x is None or self._mask is None:
            return {}
        assert self._dtype is not None
        return {"patterns": self._x.to(self._dtype), "mask": self._mask}

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        return {
            "interaction": self.interaction,
            "n": self.n,
            "beta": self.beta,
            "dynamics": self.dynamics,
            "max_steps": self.max_steps,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return (
            f"DenseAssociativeMemory(interaction={self.interaction!r}, n={self.n}, "
            f"beta={self.beta}, dynamics={self.dynamics!r}, max_steps={self.max_steps})"
        )
