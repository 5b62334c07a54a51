"""The numba builds of :mod:`kvmem.core.manhattan_kernel` (imported only when numba is)."""

from __future__ import annotations

import types

import numba
import numpy as np
from numba import prange

#: Query rows and item columns of one tile: the tile's partial sums (16 x 256 float32,
#: 16 KiB) stay in L1 across the D coordinates, and each item row read serves 16 queries.
_TILE_Q = 16
_TILE_N = 256


def _l1_tiles(q, xt, seed_of, out):  # noqa: ANN001, ANN202 - compiled by numba below
    """``out[b, i, j] = -sum_d |q[b, i, d] - xt[seed_of[b], d, j]|``, d = 0, 1, ... in order.

    ``q`` ``[B, Q, D]``, ``xt`` ``[S, D, N]`` (items transposed), ``seed_of`` ``[B]`` (the
    item set each query batch reads), ``out`` ``[B, Q, N]``; float32 but ``seed_of``
    (int64). Each tile of queries x items is one task; ``prange`` is ``range`` in the
    serial build.
    """
    n_b, n_q, n_d = q.shape
    n_n = xt.shape[2]
    tiles_q = (n_q + _TILE_Q - 1) // _TILE_Q
    tiles_n = (n_n + _TILE_N - 1) // _TILE_N
    per_b = tiles_q * tiles_n
    for t in prange(n_b * per_b):
        b = t // per_b
        r = t % per_b
        i0 = (r // tiles_n) * _TILE_Q
        j0 = (r % tiles_n) * _TILE_N
        ni = min(i0 + _TILE_Q, n_q) - i0
        nj = min(j0 + _TILE_N, n_n) - j0
        acc = np.zeros((_TILE_Q, _TILE_N), dtype=np.float32)
        xs = xt[seed_of[b]]
        qb = q[b]
        for d in range(n_d):
            xrow = xs[d, j0 : j0 + nj]
            for ii in range(ni):
                qv = qb[i0 + ii, d]
                arow = acc[ii]
                for jj in range(nj):
                    arow[jj] = arow[jj] + abs(qv - xrow[jj])
        ob = out[b]
        for ii in range(ni):
            orow = ob[i0 + ii, j0 : j0 + nj]
            arow = acc[ii]
            for jj in range(nj):
                orow[jj] = -arow[jj]


def _named(f: types.FunctionType, name: str) -> types.FunctionType:
    """``f`` under another name: numba's disk cache is keyed by the function's name, not by
    the compile options, so two builds of one function would load each other's code."""
    g = types.FunctionType(f.__code__, f.__globals__, name, f.__defaults__, f.__closure__)
    g.__qualname__ = name
    g.__doc__ = f.__doc__
    return g


# no fast-math: float additions keep their order (no reassociation), so the sums are
# cdist's; nogil lets other Python threads run while a kernel does
_OPTIONS = {"cache": True, "fastmath": False, "boundscheck": False, "nogil": True}
l1_tiles_serial = numba.njit(**_OPTIONS)(_named(_l1_tiles, "l1_tiles_serial"))
l1_tiles_parallel = numba.njit(parallel=True, **_OPTIONS)(_named(_l1_tiles, "l1_tiles_parallel"))
