"""Modern (continuous) Hopfield network of Ramsauer et al. 2021, docs/science.md 1.4.

Stored patterns are the rows of X ``[..., P, N]``; a state xi is a row vector ``[N]``.
One update is softmax attention of the state over the stored patterns:

    xi_new = softmax(beta xi X^T) X                      (paper: xi <- X^T softmax(beta X xi))

It descends the energy (Ramsauer et al. 2021, eq. 2 and Theorem 1)

    E(xi) = -1/beta logsumexp(beta xi X^T) + 1/2 xi . xi + 1/beta log P + 1/2 M^2

with M the largest stored-pattern norm (the last two terms are constants that make
E >= 0). Large beta: one update retrieves the stored pattern nearest the cue. Small
beta: the state falls to a metastable mixture, near the global average of the patterns.

Masked (padding) patterns get score -inf and weight 0, and do not count in P or M. A
network with no stored pattern returns the zero vector and has energy 1/2 xi . xi.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kvmem.core.hopfield import _as_cues, _as_mask, _as_patterns, _batch_shape, _StoredPatterns
from kvmem.core.validation import broadcast_shapes, check_int_at_least, check_positive

__all__ = ["ModernHopfield"]


class ModernHopfield(_StoredPatterns):
    """Modern Hopfield network: xi <- softmax(beta xi X^T) X (docs/science.md 1.4).

    Patterns ``[..., P, N]`` (any real values; leading dims = independent networks),
    optional ``mask [..., P]`` (bool) for padded loads; cues ``[..., Q, N]`` whose leading
    dims broadcast against the networks' batch shape. Outputs are on the memory's device
    and dtype (the first stored patterns').

    Args:
        beta: inverse temperature (> 0).
        max_steps: default number of updates (1: the one-step retrieval of the paper).
        tol: stop early once no entry of a state changes by more than ``tol`` (>= 0).
    """

    def __init__(self, beta: float = 1.0, max_steps: int = 1, tol: float = 1e-6) -> None:
        self.beta = check_positive(beta, "beta")
        self.max_steps = check_int_at_least(max_steps, 1, "max_steps")
        self.tol = _check_tol(tol)
        self._x: torch.Tensor | None = None  # [..., P, N]
        self._mask: torch.Tensor | None = None  # [..., P] bool
        self._facts_key: tuple[Any, ...] | None = None  # what _facts() was computed from
        self._facts_val: tuple[bool, bool, float] = (True, False, 0.0)

    # ------------------------------------------------------------------ storage
    def store(self, patterns: Any, mask: Any = None) -> ModernHopfield:
        """Append patterns ``[..., P, N]`` (``mask [..., P]`` bool); returns ``self``.

        Later calls must have the same batch shape and N; they are cast to the first
        call's dtype and device and concatenated along P.
        """
        x = _as_patterns(patterns, allow_integer=True)
        if self._x is not None:
            x = x.to(device=self._x.device, dtype=self._x.dtype)
        m = _as_mask(mask, x)
        # Zero the padding so masked rows cannot leak into products (0 * anything finite).
        x = torch.where(m[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        self._append_patterns(x, m)
        return self

    @property
    def patterns(self) -> torch.Tensor:
        """Stored patterns ``[..., P, N]`` (masked rows are zero)."""
        return self._stored()[0]

    def _cues(self, cues: Any, name: str = "cues", x: torch.Tensor | None = None) -> torch.Tensor:
        if x is None:
            x, _ = self._stored()
        c = _as_cues(cues, x.shape[-1], x, name=name)
        _cue_batch(c.shape[:-2], x.shape[:-2], name=name)
        return c

    def _facts(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[bool, bool, float]:
        """``(all stored, some network empty, largest pattern norm)`` of the stored state.

        Computed once per stored state (keyed on the tensors and their version counters, so
        a new ``store`` or an in-place edit recomputes it) instead of once per update.
        """
        seen = self._facts_key
        if (
            seen is None
            or seen[0] is not x
            or seen[1] != x._version
            or seen[2] is not mask
            or seen[3] != mask._version
        ):
            key = (x, x._version, mask, mask._version)
            full = bool(mask.all())
            empty = not full and bool((~mask.any(-1)).any())
            norm = float(x.detach().float().norm(dim=-1).amax()) if x.numel() else 0.0
            self._facts_key, self._facts_val = key, (full, empty, norm)
        return self._facts_val

    # ------------------------------------------------------------------ read-out
    def _scores(self, c: torch.Tensor) -> torch.Tensor:
        x, mask = self._stored()
        s = c @ x.transpose(-1, -2)
        return s.masked_fill(~mask[..., None, :], float("-inf"))

    def _weights(
        self, c: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, full: bool, clean: bool
    ) -> torch.Tensor:
        """``_attention(c)`` without the passes that cannot change it.

        ``full`` (nothing masked): ``masked_fill`` would fill nothing; ``clean``: NaN weights
        are possible, so ``nan_to_num`` runs. Bit for bit the same weights.
        """
        s = c @ x.mT
        if not full:
            s = s.masked_fill(~mask[..., None, :], float("-inf"))
        # beta * s in place, on the fresh score matrix: the same products bit for bit, and one
        # [Q, P] buffer fewer per update (a third less memory traffic: 1.19x -> 1.0x the
        # plain loop at X [2000, 64], 100 cues, 3 steps). No autograd node saves s.
        if s.dtype is torch.float32:  # (.float() and .to() would return s and a: ~0.5 us)
            a = torch.softmax(s.mul_(self.beta), dim=-1)
        else:
            a = torch.softmax(s.float().mul_(self.beta), dim=-1).to(s.dtype)
        return torch.nan_to_num(a, nan=0.0) if clean else a

    def _attention(self, c: torch.Tensor) -> torch.Tensor:
        s = self._scores(c)
        # float32 scores: beta * s overflows half precision (inf - inf = NaN in the softmax)
        a = torch.softmax(self.beta * s.float(), dim=-1).to(s.dtype)
        # All -inf (a network with nothing stored) gives NaN rows: define them as 0.
        return torch.nan_to_num(a, nan=0.0)

    def scores(self, cues: Any) -> torch.Tensor:
        """Pre-separation match xi X^T: ``[..., Q, N] -> [..., Q, P]`` (masked: -inf).

        The unnormalised key-query match (a feeling-of-knowing signal, docs/science.md 1.2).
        """
        return self._scores(self._cues(cues))

    def attention(self, cues: Any) -> torch.Tensor:
        """Attention weights softmax(beta xi X^T): ``[..., Q, N] -> [..., Q, P]``."""
        return self._attention(self._cues(cues))

    def energy(self, states: Any) -> torch.Tensor:
        """Ramsauer energy per state (module docstring): ``[..., Q, N] -> [..., Q]``."""
        return self._energy(self._cues(states, name="states"))

    def _energy(self, xi: torch.Tensor) -> torch.Tensor:
        x, mask = self._stored()
        beta = self.beta
        count = mask.sum(-1)  # [...]
        has = (count > 0)[..., None]
        lse = torch.logsumexp(beta * self._scores(xi), dim=-1)  # [..., Q]
        # lse - log P is the log of the mean exp; undefined (and dropped) with no patterns.
        log_p = torch.log(count.clamp(min=1).to(xi.dtype))[..., None]
        lse_term = torch.where(has, -(lse - log_p) / beta, torch.zeros_like(lse))
        big_m2 = (x * x).sum(-1).amax(-1, keepdim=True) if x.shape[-2] else 0.0
        return lse_term + 0.5 * (xi * xi).sum(-1) + 0.5 * big_m2

    # ------------------------------------------------------------------ dynamics
    def retrieve(
        self,
        cues: Any,
        max_steps: int | None = None,
        tol: float | None = None,
        return_info: bool = False,
        track_energy: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Iterate xi <- softmax(beta xi X^T) X from ``cues [..., Q, N]``; returns ``[..., Q, N]``.

        Runs ``max_steps`` updates (default: the memory's, 1 unless set), stopping a state
        once an update moves no entry by more than ``tol`` (that update is kept; the state
        is then frozen, so each result is independent of the rest of the batch).

        With ``return_info``: ``steps [..., Q]`` (updates applied), ``converged [..., Q]``
        (bool), ``attention [..., Q, P]`` (the weights of each state's last update) and,
        with ``track_energy``, ``energy [T + 1, ..., Q]`` (initial state, then each update).
        """
        x, mask = self._stored()
        steps_max = (
            self.max_steps if max_steps is None else check_int_at_least(max_steps, 1, "max_steps")
        )
        tol_v = self.tol if tol is None else _check_tol(tol)
        c = _as_cues(cues, x.shape[-1], x)
        batch = _cue_batch(c.shape[:-2], x.shape[:-2])  # (the check of self._cues, once)
        shape = (*batch, *c.shape[-2:])
        # The first update replaces every state, so a contiguous, full-shape cue needs no copy
        # (a broadcast one is still materialised: the matmul then sees the same layout).
        xi = c if c.shape == shape and c.is_contiguous() else c.expand(shape).clone()
        full, empty, x_norm = self._facts(x, mask)
        # NaN weights come only from an all -inf row (a network with nothing stored) or from
        # scores that overflow: with finite inputs |xi . x_p| <= |xi| max_p |x_p|, and every
        # state after the first is a convex combination of the patterns (|xi| <= max |x_p|).
        # Where that bound (with a 2x margin for rounding) cannot overflow, nan_to_num would
        # change nothing and is skipped.
        # Bounding |xi| costs a pass over the cues (and a sync), worth it only on large reads
        # with more patterns than units.
        clean = empty or x.shape[-2] < 4 * x.shape[-1] or c.numel() * x.shape[-2] < 1 << 22
        if not clean:
            c_norm = float(c.detach().float().norm(dim=-1).amax()) if c.numel() else 0.0
            bound = 2.0 * max(self.beta, 1.0) * max(c_norm, x_norm) * x_norm
            clean = not bound < min(torch.finfo(x.dtype).max, torch.finfo(torch.float32).max)
        steps = converged = None
        if return_info:  # (only read with return_info: counted only then)
            steps = torch.zeros(xi.shape[:-1], dtype=torch.int64, device=xi.device)
        if return_info or steps_max > 1:
            converged = torch.zeros(xi.shape[:-1], dtype=torch.bool, device=xi.device)
        any_converged = False
        last_att: torch.Tensor | None = None
        energies = [self._energy(xi)] if track_energy else []
        for step in range(steps_max):
            att = self._weights(xi, x, mask, full, clean)
            new = att @ x
            if not return_info and step == steps_max - 1:
                if any_converged:
                    assert converged is not None
                    xi = torch.where(~converged[..., None], new, xi)
                else:
                    xi = new
                if track_energy:
                    energies.append(self._energy(xi))
                break  # the last update: nothing reads the convergence test
            assert converged is not None
            moved = (new - xi).abs().amax(-1)  # [..., Q]: largest change of this update
            if any_converged:
                active = ~converged
                xi = torch.where(active[..., None], new, xi)
                if return_info:
                    assert last_att is not None
                    last_att = torch.where(active[..., None], att, last_att)
                    assert steps is not None
                    steps += active.to(torch.int64)
            else:  # every state is still moving: where() would return new (att) itself
                xi = new
                if return_info:
                    assert steps is not None
                    last_att = att
                    steps += 1
            converged |= moved <= tol_v
            if track_energy:
                energies.append(self._energy(xi))
            n_conv = int(converged.sum())
            if n_conv == converged.numel():
                break
            any_converged = n_conv > 0
        if not return_info:
            return xi
        assert last_att is not None and steps is not None
        info: dict[str, torch.Tensor] = {
            "steps": steps,
            "converged": converged,
            "attention": last_att,
        }
        if track_energy:
            info["energy"] = torch.stack(energies)
        return xi, info

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: ``patterns`` and ``mask`` (empty if nothing stored)."""
        if self._x is None or self._mask is None:
            return {}
        return {"patterns": self._x, "mask": self._mask}

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        return {"beta": self.beta, "max_steps": self.max_steps, "tol": self.tol}

    def __repr__(self) -> str:
        return f"ModernHopfield(beta={self.beta}, max_steps={self.max_steps}, tol={self.tol})"


def _cue_batch(cue_batch: torch.Size, mem_batch: torch.Size, name: str = "cues") -> torch.Size:
    """``hopfield._batch_shape`` (the same result and error) without torch's slow broadcast."""
    try:
        return broadcast_shapes(cue_batch, mem_batch)
    except RuntimeError:
        return _batch_shape(cue_batch, mem_batch, name=name)  # raises the ValueError


def _check_tol(tol: float) -> float:
    """Raise unless ``tol`` is a finite number >= 0."""
    try:
        v = float(tol)
    except (TypeError, ValueError):
        raise TypeError(f"tol: expected a number >= 0, got {tol!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"tol: expected a finite value >= 0, got {tol!r}")
    return v
