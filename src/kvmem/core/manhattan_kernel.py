"""A compiled Manhattan-distance kernel with the exact arithmetic of ``torch.cdist(p=1)``.

``sum_d |q_d - x_d|`` for every (query, item) pair, added in float32 one coordinate after
another, ``d = 0, 1, ..., D - 1``, starting from 0: the order in which CPU ``torch.cdist``
(p = 1) adds the terms, so the results are the same bit for bit (checked in the tests).
Pairs are independent, so the kernel vectorises over items and splits tiles of queries
and items across threads without changing any sum; only the coordinate order is fixed.
Compiled with numba (no fast-math: no reassociation, no contraction), about 3-4x the
coordinate-by-coordinate torch loop on one thread, which must write and re-read a
full block of partial sums per coordinate.

``available()`` says whether numba can be imported; callers keep a torch path for when
it cannot, and use this one only for blocks large enough to repay the first call's
compilation (cached on disk after that).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["available", "neg_manhattan_sequential"]


@functools.cache
def available() -> bool:
    """Whether the compiled kernel can be used (numba imports)."""
    try:
        import numba  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means: use the torch path
        return False
    return True


@functools.cache
def _kernels() -> tuple[Any, Any]:
    """The serial and the multi-threaded build of the kernel (compiled on first use of
    each, then cached on disk by numba)."""
    from kvmem.core import _manhattan_numba

    return _manhattan_numba.l1_tiles_serial, _manhattan_numba.l1_tiles_parallel


def neg_manhattan_sequential(
    queries: torch.Tensor,
    items_t: torch.Tensor,
    threads: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``-sum_d |q_d - x_d|`` of queries ``[C, S, Q, D]`` and items ``[S, D, N]`` (the items
    transposed, as a view or a copy): ``[C, S, Q, N]`` float32, equal to
    ``-torch.cdist(q, x, p=1)`` bit for bit (module docstring).

    ``threads``: how many threads the kernel may use (default ``torch.get_num_threads()``,
    so it runs single-threaded inside :func:`kvmem.experiments.base.single_thread`); with one
    thread the serial build runs, which is safe to call from several Python threads at once.
    ``out``: a float32 ``[C, S, Q, N]`` block to write into and return (any strides whose
    first two dimensions merge, e.g. a block of a larger matrix when C = 1; each entry is
    computed on its own, so the layout changes no bit).
    """
    if queries.dtype != torch.float32 or items_t.dtype != torch.float32:
        raise TypeError("neg_manhattan_sequential: expected float32 queries and items")
    n_c, n_s, n_q, n_d = queries.shape
    if items_t.shape[0] != n_s or items_t.shape[1] != n_d:
        raise ValueError(f"items_t: expected shape [{n_s}, {n_d}, N], got {list(items_t.shape)}")
    q = queries.reshape(n_c * n_s, n_q, n_d).contiguous().numpy()
    xt = items_t.contiguous().numpy()
    shape = (n_c, n_s, n_q, items_t.shape[2])
    if out is None:
        out = torch.empty(shape, dtype=torch.float32)
    elif out.dtype != torch.float32 or tuple(out.shape) != shape:
        raise ValueError(
            f"out: expected a float32 tensor of shape {list(shape)}, got "
            f"{out.dtype} {list(out.shape)}"
        )
    seed_of = torch.arange(n_c * n_s, dtype=torch.int64).remainder_(n_s).numpy()
    serial, parallel = _kernels()
    threads = torch.get_num_threads() if threads is None else int(threads)
    kernel = serial
    if threads > 1:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        kernel = parallel
    kernel(q, xt, seed_of, out.view(n_c * n_s, n_q, shape[3]).numpy())
    return out
