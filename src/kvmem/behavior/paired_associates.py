"""Paired-associate lists with a drifting list context, and MMFR scoring (docs/science.md 1.7, 4.6).

The A-B / A-C paradigm (Barnes & Underwood 1959): ``P`` stimuli ``A_i`` are paired with
responses ``B_i`` (list 1), then re-paired with new responses ``C_i`` (list 2). Every
study-test trial happens in a *list context* ``c_t``, a unit vector that drifts slowly
from trial to trial (Estes' stimulus fluctuation, the temporal context model's context):

    c_{t+1} = normalise(rho c_t + sqrt(1 - rho^2) eps_t),   eps_t ~ N(0, I / d_c),

so ``E[c_t . c_{t+lag}] ~ rho^lag``: trials close in time have similar contexts.
A cue or key for pair ``i`` on trial ``t`` binds stimulus and context by concatenation,

    k_{i,t} = [A_i, c_t] / sqrt(2)     (unit norm; k . k' = (A.A' + c.c') / 2).

Responses are one-hot over ``2 P`` output units: ``B_i`` is unit ``i``, ``C_i`` unit
``P + i``. Modified modified free recall (MMFR; Barnes & Underwood) asks for *both*
responses to each ``A_i``, with no competition at output: a model's read-out ``r``
(``[..., P, 2P]``) is scored list by list, the best response of each list being reported,

    recalled_list1(i) = [argmax_{j < P} r_ij == i] and [r_ii > theta],
    recalled_list2(i) = [argmax_{j >= P} r_ij == P + i] and [r_i,P+i > theta].

Everything is batched over leading (subject) dimensions.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "drifting_context",
    "unit_vectors",
    "bind",
    "response_targets",
    "mmfr_recalled",
]


def unit_vectors(shape: tuple[int, ...], d: int, gen: torch.Generator) -> torch.Tensor:
    """Random unit vectors ``[*shape, d]`` (isotropic Gaussian, normalised)."""
    x = torch.randn(*shape, d, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def drifting_context(
    batch: tuple[int, ...], n_steps: int, d: int, rho: float, gen: torch.Generator
) -> torch.Tensor:
    """A slowly drifting context ``[*batch, n_steps, d]`` of unit vectors.

    ``c_0`` is a random unit vector, ``c_{t+1} = normalise(rho c_t + sqrt(1 - rho^2) e_t)``
    with ``e_t`` a fresh random unit vector, so neighbouring steps have cosine ~ ``rho``
    and the similarity falls roughly as ``rho^lag``. ``rho`` in ``[0, 1]``.
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho: expected a value in [0, 1], got {rho}")
    noise = unit_vectors((*batch, n_steps), d, gen)
    out = torch.empty_like(noise)
    c = noise[..., 0, :]
    out[..., 0, :] = c
    s = math.sqrt(1.0 - rho * rho)
    for t in range(1, n_steps):  # a loop over time steps only
        c = rho * c + s * noise[..., t, :]
        c = c / c.norm(dim=-1, keepdim=True)
        out[..., t, :] = c
    return out


def bind(stimuli: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Key / cue binding a stimulus to a context: ``[A, c] / sqrt(2)``.

    ``stimuli [..., P, d_s]`` and ``context [..., d_c]`` (one context for all pairs)
    give ``[..., P, d_s + d_c]``; with unit inputs the result has unit norm.
    """
    c = context.unsqueeze(-2).expand(*stimuli.shape[:-1], context.shape[-1])
    return torch.cat([stimuli, c], dim=-1) / math.sqrt(2.0)


def response_targets(n_pairs: int, list_index: int, dtype: torch.dtype = torch.float64):
    """One-hot responses ``[P, 2P]`` of list 1 (``B_i`` = unit i) or list 2 (``C_i`` = P+i)."""
    if list_index not in (1, 2):
        raise ValueError(f"list_index: expected 1 or 2, got {list_index}")
    eye = torch.eye(n_pairs, dtype=dtype)
    zero = torch.zeros(n_pairs, n_pairs, dtype=dtype)
    return torch.cat([eye, zero] if list_index == 1 else [zero, eye], dim=-1)


def mmfr_recalled(readout: torch.Tensor, list_index: int, threshold: float) -> torch.Tensor:
    """MMFR scoring: which pairs' list-``list_index`` responses are recalled.

    ``readout [..., P, 2P]`` (row i: the model's response strengths for cue ``A_i``).
    Within the list's ``P`` response units the strongest one is reported; pair ``i`` is
    recalled when that is its own response and its strength exceeds ``threshold``.
    Returns a bool tensor ``[..., P]``.
    """
    p = readout.shape[-1] // 2
    if readout.shape[-1] != 2 * p or readout.shape[-2] != p:
        raise ValueError(f"readout: expected shape [..., P, 2P], got {list(readout.shape)}")
    part = readout[..., :p] if list_index == 1 else readout[..., p:]
    own = torch.diagonal(part, dim1=-2, dim2=-1)
    best = part.argmax(dim=-1)
    return (best == torch.arange(p, device=readout.device)) & (own > threshold)
