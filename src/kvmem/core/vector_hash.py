"""Vector-HaSH: a key-value memory on a grid-cell scaffold (Chandra, Sharma, Chaudhuri & Fiete,
Nature 2025; docs/science.md 1.7).

Vector Hippocampal Scaffolded Heteroassociative memory. The scaffold is a set of grid
modules: module m has period ``lambda_m`` and, in ``dims`` = 2 dimensions, ``lambda_m^2``
cells of which exactly one is active (the module's phase). A position x in
``[0, prod(lambda))^dims`` activates, in each module, the cell of phase ``x mod lambda_m``;
with co-prime periods (3, 4, 5) the 9 + 16 + 25 = 50 grid cells have ``60^2 = 3,600``
distinct states, and *every* combination of module phases is one of them. Layers (row
vectors; one network per leading index):

- grid ``g`` [n_grid]: one-hot per module (the scaffold states);
- hippocampus ``h`` [n_hidden]: a fixed random projection with a threshold nonlinearity,

      h = ReLU(g W_hg - theta),        W_hg [n_grid, n_hidden] ~ N(0, 1), fixed;

- the learned hippocampus -> grid map, fitted once over all scaffold states, followed by
  the grid modules' attractor dynamics (module-wise winner-take-all), which snaps a noisy
  hippocampal state back onto the scaffold,

      g = WTA_m(h W_gh),               W_gh = H_all^+ G_all  (pseudo-inverse rule);

- heteroassociation between hippocampus and sensory content (key in, value out),

      W_hs = S^+ H_K  (sensory -> hippocampus),   W_sh = H_K^+ V  (hippocampus -> sensory),

  memory i taking grid state ``order[i mod S]`` (a random order of the positions, fixed per
  network; the paper stores memories along a trajectory, any fixed order works).

Recall from a sensory cue q:

    h0 = ReLU(q W_hs),  g = WTA_m(h0 W_gh),  h = ReLU(g W_hg - theta),  v = sign(h W_sh).

Exact for every stored memory while the stored hippocampal states are linearly
independent (K <= n_hidden) and the cue finds its grid state; past that recall degrades
gradually (the memory continuum), with no cliff.

The learning rules (``"pinv"`` and the Hebbian-learnable ``"online"`` form), the
``write`` / ``read`` interface, batching over networks, devices and persistence are those
of :class:`kvmem.core.mesh.MESH` (its module docstring gives the equations).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kvmem.core.mesh import _ScaffoldMemory
from kvmem.core.validation import check_int_at_least

__all__ = ["VectorHaSH", "grid_states"]


def grid_states(periods: tuple[int, ...], dims: int = 2) -> torch.Tensor:
    """Grid codes of every position, ``[prod(periods)^dims, sum(period^dims)]`` (float64 0/1).

    Position ``x = (x_1, ..., x_dims)`` (row-major) activates in module m the cell of phase
    ``(x_1 mod lambda_m, ..., x_dims mod lambda_m)``, flattened row-major.
    """
    n = math.prod(periods)
    axes = torch.cartesian_prod(*[torch.arange(n)] * dims).reshape(-1, dims)
    out = torch.zeros(axes.shape[0], sum(p**dims for p in periods), dtype=torch.float64)
    offset = 0
    for period in periods:  # a loop over the few grid modules, not over memories
        phase = axes % period
        cell = (phase * period ** torch.arange(dims - 1, -1, -1)).sum(-1)
        out[torch.arange(axes.shape[0]), offset + cell] = 1.0
        offset += period**dims
    return out


class VectorHaSH(_ScaffoldMemory):
    """Vector-HaSH memory (module docstring): grid-module scaffold, random hippocampal layer.

    Args:
        periods: grid module periods (default (3, 4, 5); pairwise co-prime).
        dims: spatial dimensions of the grid modules (1 or 2; default 2).
        n_hidden: hippocampal cells (default 400).
        theta: threshold of the hippocampal ReLU (default 0.5, about 40 % of cells active).
        rule, ridge, binarize, seed: as for :class:`kvmem.core.mesh.MESH`.
    """

    def __init__(
        self,
        periods: tuple[int, ...] | list[int] = (3, 4, 5),
        dims: int = 2,
        n_hidden: int = 400,
        *,
        theta: float = 0.5,
        rule: str = "pinv",
        ridge: float = 1e-6,
        binarize: bool = True,
        seed: int = 0,
    ) -> None:
        per = tuple(check_int_at_least(p, 2, "periods") for p in periods)
        if not per:
            raise ValueError("periods: expected at least one grid module period")
        for i, a in enumerate(per):
            for b in per[i + 1 :]:
                if math.gcd(a, b) != 1:
                    raise ValueError(
                        f"periods: expected pairwise co-prime periods (so every combination of "
                        f"module phases is a position), got {per}"
                    )
        self.periods = per
        self.dims = check_int_at_least(dims, 1, "dims")
        if self.dims > 2:
            raise ValueError(f"dims: expected 1 or 2, got {dims}")
        if math.prod(per) ** self.dims > 10**6:
            raise ValueError(f"periods: {math.prod(per) ** self.dims} positions is over 10**6")
        self.theta = float(theta)
        if not math.isfinite(self.theta):
            raise ValueError(f"theta: expected a finite number, got {theta!r}")
        super().__init__(n_hidden, rule=rule, ridge=ridge, binarize=binarize, seed=seed)

    @property
    def n_grid(self) -> int:
        """Grid cells, ``sum(period^dims)``."""
        return sum(p**self.dims for p in self.periods)

    def _states(self) -> torch.Tensor:
        return grid_states(self.periods, self.dims)

    def _hidden(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre - self.theta)

    def _encode(self, pre: torch.Tensor) -> torch.Tensor:
        # the cue's hippocampal estimate, kept non-negative like hippocampal rates
        return torch.relu(pre)

    def _cleanup(self, drive: torch.Tensor) -> torch.Tensor:
        """Module-wise winner-take-all: one active cell per grid module."""
        out = torch.zeros_like(drive)
        offset = 0
        for period in self.periods:  # a loop over the grid modules
            size = period**self.dims
            seg = drive[..., offset : offset + size]
            out[..., offset : offset + size].scatter_(-1, seg.argmax(-1, keepdim=True), 1.0)
            offset += size
        return out

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (plus the output dtype)."""
        return {
            "periods": list(self.periods),
            "dims": self.dims,
            "theta": self.theta,
            **self._base_config(),
        }

    @property
    def n_synapses(self) -> int:
        """Synapses of one network, fixed and learned: ``2 n_grid n_hidden + n_hidden (d_k +
        d_v)`` (projection, clean-up, sensory -> hippocampus -> sensory); needs a write."""
        d_k, d_v = self._dims()
        return 2 * self.n_grid * self.n_hidden + self.n_hidden * (d_k + d_v)

    def __repr__(self) -> str:
        return (
            f"VectorHaSH(periods={self.periods}, dims={self.dims}, n_hidden={self.n_hidden}, "
            f"theta={self.theta}, rule={self.rule!r}, n_states={self.n_states})"
        )
