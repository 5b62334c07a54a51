"""Synthetic patterns and corruptions for memory experiments (docs/science.md 1.4, 4).

Generators return ``torch`` tensors of shape ``[*batch_shape, P, N]`` (``P`` patterns of
``N`` units, any leading batch dimensions, e.g. seeds x loads), so one call builds the
patterns of every network of an experiment. Corruptions act on the last axis of any
tensor ``[..., N]`` and return a new tensor (the input is never modified).

Randomness: every function takes ``generator`` (a ``torch.Generator``) or ``seed`` (an
``int``, used to build a fresh generator); with neither, torch's global generator is
used. Random numbers are drawn on the CPU (so results do not depend on the device)
and moved to ``device``/the input's device afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from kvmem.core.validation import as_float_tensor, check_int_at_least

__all__ = [
    "make_generator",
    "random_patterns",
    "sparse_patterns",
    "correlated_patterns",
    "CorrelatedPatterns",
    "random_subset_mask",
    "mask_fraction",
    "flip_bits",
    "add_gaussian_noise",
    "mask_bottom_half",
    "drop_pixels",
]


# ----------------------------------------------------------------------------- randomness


def make_generator(
    generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Generator | None:
    """The generator to draw from: ``generator`` if given, else a new one seeded with
    ``seed``, else ``None`` (torch's global generator). Giving both is an error."""
    if generator is not None and seed is not None:
        raise ValueError(
            f"generator, seed: expected either generator or seed, not both; got seed={seed!r} "
            "and a generator"
        )
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator: expected a torch.Generator, got {type(generator).__name__}"
            )
        return generator
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {seed!r}")
        return torch.Generator().manual_seed(seed)
    return None


def _check_fraction(frac: float, name: str) -> float:
    try:
        f = float(frac)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number in [0, 1], got {frac!r}") from None
    if not (0.0 <= f <= 1.0):
        raise ValueError(f"{name}: expected a number in [0, 1], got {frac!r}")
    return f


def _shape(batch_shape: Sequence[int] | int, *tail: int) -> tuple[int, ...]:
    if isinstance(batch_shape, int):
        batch_shape = (batch_shape,)
    for s in batch_shape:
        check_int_at_least(s, 0, "batch_shape")
    return (*tuple(int(s) for s in batch_shape), *tail)


def _rand(shape: Sequence[int], gen: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) numbers on the CPU from ``gen`` (float64 so ties are negligible)."""
    return torch.rand(tuple(shape), generator=gen, dtype=torch.float64)


# ----------------------------------------------------------------------------- generators


def random_patterns(
    n_patterns: int,
    n_units: int,
    *,
    batch_shape: Sequence[int] | int = (),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random +-1 patterns, each unit independently +1 or -1 with probability 1/2.

    Returns ``[*batch_shape, n_patterns, n_units]``: the standard load for a classical
    Hopfield network (docs/science.md 1.4) and for the capacity protocol (docs/science.md 4 item 1).
    """
    check_int_at_least(n_patterns, 0, "n_patterns")
    check_int_at_least(n_units, 1, "n_units")
    gen = make_generator(generator, seed)
    shape = _shape(batch_shape, n_patterns, n_units)
    if dtype.is_floating_point:
        # The same draws as int64 bits (randint's stream does not depend on the dtype), made
        # in the output dtype: 2 b - 1 is exact there, and it skips two int64 passes.
        bits = torch.randint(0, 2, shape, generator=gen, dtype=dtype)
        return bits.mul_(2).sub_(1).to(device=device)
    bits = torch.randint(0, 2, shape, generator=gen)
    return (2 * bits - 1).to(dtype=dtype, device=device)


def sparse_patterns(
    n_patterns: int,
    n_units: int,
    sparsity: float,
    *,
    exact: bool = False,
    batch_shape: Sequence[int] | int = (),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sparse binary {0, 1} patterns with a fraction ``sparsity`` of active units.

    With ``exact=False`` each unit is active independently with probability
    ``sparsity``; with ``exact=True`` every pattern has exactly
    ``round(sparsity * n_units)`` active units (a random subset). Returns
    ``[*batch_shape, n_patterns, n_units]``. Sparse codes are the hippocampal-style,
    pattern-separated keys of docs/science.md (thesis point 2; 4 item 4).
    """
    check_int_at_least(n_patterns, 0, "n_patterns")
    check_int_at_least(n_units, 1, "n_units")
    f = _check_fraction(sparsity, "sparsity")
    gen = make_generator(generator, seed)
    shape = _shape(batch_shape, n_patterns, n_units)
    if exact:
        active = random_subset_mask(shape, round(f * n_units), generator=gen)
    else:
        active = _rand(shape, gen) < f
    return active.to(dtype=dtype, device=device)


class CorrelatedPatterns(NamedTuple):
    """Output of :func:`correlated_patterns`."""

    patterns: torch.Tensor  # [*batch, P, N], +-1
    templates: torch.Tensor  # [*batch, C, N], +-1
    labels: torch.Tensor  # [*batch, P], int64 template index of each pattern


def correlated_patterns(
    n_patterns: int,
    n_units: int,
    n_templates: int,
    correlation: float,
    *,
    batch_shape: Sequence[int] | int = (),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> CorrelatedPatterns:
    """+-1 patterns scattered around random +-1 templates (categories).

    Each pattern picks a template uniformly at random and copies it, flipping each unit
    independently with probability ``(1 - correlation) / 2``, so the expected overlap
    ``E[xi_mu . t_c] / N = correlation`` with its own template, and two patterns of the
    same template overlap ``correlation**2`` on average. ``correlation = 0`` gives
    independent random patterns, ``1`` exact copies. Returns
    ``CorrelatedPatterns(patterns [*b, P, N], templates [*b, C, N], labels [*b, P])``.
    """
    check_int_at_least(n_patterns, 0, "n_patterns")
    check_int_at_least(n_units, 1, "n_units")
    check_int_at_least(n_templates, 1, "n_templates")
    c = _check_fraction(correlation, "correlation")
    gen = make_generator(generator, seed)
    bshape = _shape(batch_shape)
    templates = random_patterns(n_templates, n_units, batch_shape=bshape, generator=gen)
    labels = torch.randint(0, n_templates, (*bshape, n_patterns), generator=gen)
    idx = labels.unsqueeze(-1).expand(*bshape, n_patterns, n_units)
    base = torch.gather(templates, -2, idx)
    flip = _rand((*bshape, n_patterns, n_units), gen) < (1.0 - c) / 2.0
    patterns = torch.where(flip, -base, base)
    return CorrelatedPatterns(
        patterns.to(dtype=dtype, device=device),
        templates.to(dtype=dtype, device=device),
        labels.to(device=device),
    )


# ----------------------------------------------------------------------------- corruptions


def random_subset_mask(
    shape: Sequence[int], k: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Boolean mask of ``shape`` with exactly ``k`` True entries along the last axis,
    a uniformly random subset for every row: the first ``k`` entries of a random order,
    the ``argsort`` of uniform noise (no loop)."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("shape: expected at least one dimension, got []")
    n = shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not (0 <= k <= n):
        raise ValueError(f"k: expected an integer in [0, {n}], got {k!r}")
    return _smallest_mask(_rand(shape, generator), k)


def _smallest_mask(u: torch.Tensor, k: int) -> torch.Tensor:
    """Where the first ``k`` entries of ``u.argsort(-1)`` are, per row of ``u [..., n]``.

    Those are the row's ``k`` smallest entries, whatever order the sort gives them, so one
    ``topk`` (a selection, about 3x faster than sorting rows of 160; issue 15) of the
    smaller side marks the same set. Only a tie at the border between the two sides
    leaves the choice to the sort: then the sort decides, as before, bit for bit.
    """
    n = u.shape[-1]
    if k in (0, n):
        return torch.full(u.shape, k == n, dtype=torch.bool)
    # select the smaller side: the k smallest, or the n - k largest (the rest unmarked)
    small = 2 * k <= n
    vals, idx = torch.topk(u, k if small else n - k, largest=not small, sorted=False)
    if small:  # border: the k-th smallest; no other entry may equal it
        clean = bool(((u <= vals.amax(-1, keepdim=True)).sum(-1) == k).all())
    else:  # border: the (k + 1)-th smallest
        clean = bool(((u >= vals.amin(-1, keepdim=True)).sum(-1) == n - k).all())
    if clean:
        return torch.full(u.shape, not small, dtype=torch.bool).scatter_(-1, idx, small)
    order = u.argsort(dim=-1)
    return torch.zeros(u.shape, dtype=torch.bool).scatter_(-1, order[..., :k], True)


def _entry_mask(
    x: torch.Tensor, frac: float, exact: bool, gen: torch.Generator | None
) -> torch.Tensor:
    """Which entries of ``x`` to corrupt: exactly ``round(frac * N)`` per row, or each
    entry independently with probability ``frac``. Returned on ``x``'s device."""
    if exact:
        m = random_subset_mask(x.shape, round(frac * x.shape[-1]), generator=gen)
    else:
        m = _rand(x.shape, gen) < frac
    return m.to(x.device)


def mask_fraction(
    x: torch.Tensor,
    frac: float,
    generator: torch.Generator | None = None,
    *,
    exact: bool = True,
    seed: int | None = None,
) -> torch.Tensor:
    """Set a random fraction ``frac`` of the entries of every row of ``x`` to 0.

    ``x``: ``[..., N]``. With ``exact=True`` (default) exactly ``round(frac * N)`` entries
    per row are zeroed (a random subset); otherwise each entry independently with
    probability ``frac``. For +-1 patterns a zero is an unknown bit: this is the partial
    cue of the Tyulmankov et al. capacity protocol (``frac = 0.6``, docs/science.md 4 item 1).
    """
    x = as_float_tensor(x, "x", allow_integer=True)
    f = _check_fraction(frac, "frac")
    gen = make_generator(generator, seed)
    return x.masked_fill(_entry_mask(x, f, exact, gen), 0.0)


def flip_bits(
    x: torch.Tensor,
    frac: float,
    generator: torch.Generator | None = None,
    *,
    exact: bool = True,
    seed: int | None = None,
) -> torch.Tensor:
    """Flip the sign of a random fraction ``frac`` of the entries of every row of ``x``.

    ``x``: ``[..., N]`` (usually +-1). ``exact`` as in :func:`mask_fraction`. A +-1
    pattern with ``frac`` flipped has overlap ``1 - 2 frac`` with the original.
    """
    x = as_float_tensor(x, "x", allow_integer=True)
    f = _check_fraction(frac, "frac")
    gen = make_generator(generator, seed)
    return torch.where(_entry_mask(x, f, exact, gen), -x, x)


def add_gaussian_noise(
    x: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
) -> torch.Tensor:
    """``x + sigma * eps`` with ``eps ~ N(0, I)`` of ``x``'s shape (``[..., d]``)."""
    x = as_float_tensor(x, "x", allow_integer=True)
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise TypeError(f"sigma: expected a number >= 0, got {sigma!r}") from None
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"sigma: expected a finite number >= 0, got {sigma!r}")
    gen = make_generator(generator, seed)
    eps = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return x + s * eps.to(device=x.device, dtype=x.dtype)


def mask_bottom_half(
    x: torch.Tensor, *, height: int = 28, width: int = 28, fill: float = 0.0
) -> torch.Tensor:
    """Set the bottom ``height // 2`` rows of flattened images to ``fill``.

    ``x``: ``[..., height * width]`` (row-major flattened images, e.g. MNIST 28 x 28 =
    784). The query of the universal-Hopfield image benchmark (Millidge et al. 2022):
    retrieve the whole image from its top half.
    """
    x = as_float_tensor(x, "x", allow_integer=True)
    check_int_at_least(height, 1, "height")
    check_int_at_least(width, 1, "width")
    if x.shape[-1] != height * width:
        raise ValueError(
            f"x: expected flattened images of {height} x {width} = {height * width} pixels "
            f"(shape [..., {height * width}]), got shape {list(x.shape)}"
        )
    out = x.clone()
    out[..., (height - height // 2) * width :] = fill
    return out


def drop_pixels(
    x: torch.Tensor,
    frac: float,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
) -> torch.Tensor:
    """Set each pixel (entry of ``x``, ``[..., D]``) to 0 independently with probability
    ``frac`` ("salt" dropout of an image; the number dropped varies from image to image,
    unlike :func:`mask_fraction`, which zeroes an exact count)."""
    return mask_fraction(x, frac, generator, exact=False, seed=seed)
