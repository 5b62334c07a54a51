"""Measures of retrieval quality, capacity, key discriminability and value fidelity.

All functions accept torch tensors or numpy arrays, broadcast over leading dimensions
and return torch tensors (float64 for the curve analyses). Accuracies here are
*fractions* in [0, 1]; experiments multiply by 100 when they report percentages
(docs/architecture.md, result.json).

- :func:`bit_accuracy`: fraction of correct signs of a +-1 read (docs/science.md 4 item 1);
- :func:`cue_accuracy`, :func:`chance_corrected`: accuracy above what the cue already
  gives (4 item 1);
- :func:`retrieval_accuracy`: the read is nearest to the right stored value (4 items 2, 4);
- :func:`squared_error_success`: the universal-Hopfield image criterion (4 item 4);
- :func:`capacity_from_curve`, :func:`capacity_interpolated`: the largest load meeting a
  criterion (4 item 1);
- :func:`key_separability`: between / within class scatter of keys (3.1);
- :func:`value_error`: squared error of retrieved values (3.1, 4 item 2);
- :func:`mean_ci`: the mean over seeds (or subjects) and its 95 % t interval, the
  convention of every ``*_ci`` series in ``result.json``.
"""

from __future__ import annotations

from typing import Any

import torch

from kvmem.core.validation import as_float_tensor, shape_str

__all__ = [
    "bit_accuracy",
    "cue_accuracy",
    "chance_corrected",
    "retrieval_accuracy",
    "squared_error_success",
    "capacity_from_curve",
    "capacity_interpolated",
    "key_separability",
    "value_error",
    "mean_ci",
]


def _arrayish(x: Any) -> Any:
    """Python numbers become 0-d float64 tensors; anything else passes through."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(float(x), dtype=torch.float64)
    return x


def _pair(pred: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p = as_float_tensor(pred, "pred", allow_integer=True)
    t = as_float_tensor(target, "target", allow_integer=True, like=p)
    if p.shape[-1] != t.shape[-1]:
        raise ValueError(
            f"target: expected last dimension {p.shape[-1]} like pred {shape_str(p.shape)}, "
            f"got shape {shape_str(t.shape)}"
        )
    try:
        torch.broadcast_shapes(p.shape, t.shape)
    except RuntimeError:
        raise ValueError(
            f"target: expected a shape broadcastable with pred {shape_str(p.shape)}, "
            f"got shape {shape_str(t.shape)}"
        ) from None
    return p, t


# ----------------------------------------------------------------------------- accuracies


def bit_accuracy(pred: Any, target: Any, *, zero_as_half: bool = False) -> torch.Tensor:
    """Fraction of units whose sign matches a +-1 target, per pattern.

    ``pred``: ``[..., N]`` (any real read; only its sign counts), ``target``: ``[..., N]``
    of +-1. Returns ``[...]``: ``mean_j 1[sign(pred_j) = target_j]``. A zero in ``pred``
    is an undecided unit: wrong by default, or worth 1/2 with ``zero_as_half`` (the
    expected score of guessing it; used for the cue baseline of :func:`cue_accuracy`).
    """
    p, t = _pair(pred, target)
    s = torch.sign(p)
    correct = (s == torch.sign(t)).to(p.dtype)
    if zero_as_half:
        correct = correct + 0.5 * (s == 0).to(p.dtype)
    return correct.mean(dim=-1)


def cue_accuracy(cue: Any, target: Any) -> torch.Tensor:
    """The bit accuracy a cue already has before any retrieval, per pattern.

    Known (nonzero) entries count when their sign is right, unknown (zero) entries count
    1/2 (a coin flip). For the capacity protocol's cue (60% of a +-1 pattern zeroed) it is
    ``0.4 + 0.6 / 2 = 0.7``. ``cue``, ``target``: ``[..., N]``; returns ``[...]``.
    """
    return bit_accuracy(cue, target, zero_as_half=True)


def chance_corrected(accuracy: Any, baseline: Any) -> torch.Tensor:
    """Accuracy above a baseline, rescaled so the baseline is 0 and perfect is 1.

    ``(accuracy - baseline) / (1 - baseline)`` (both fractions, broadcast). With the
    cue's own accuracy as baseline (:func:`cue_accuracy`) it scores what retrieval adds:
    a network that returns its cue unchanged scores 0, one that returns chance-level
    bits (0.5) scores ``(0.5 - b) / (1 - b) < 0`` (docs/science.md 4 item 1: "a Hopfield net
    starts from its cue").
    """
    a = as_float_tensor(_arrayish(accuracy), "accuracy", min_ndim=0, allow_integer=True)
    b = as_float_tensor(_arrayish(baseline), "baseline", min_ndim=0, allow_integer=True, like=a)
    if bool((b >= 1).any()):
        raise ValueError(
            "baseline: expected values < 1 (a perfect baseline leaves no room), "
            f"got a maximum of {float(b.max())!r}"
        )
    return (a - b) / (1 - b)


def retrieval_accuracy(pred: Any, values: Any, target_index: Any | None = None) -> torch.Tensor:
    """Whether each read is nearest (Euclidean) to its correct stored value.

    ``pred``: ``[..., Q, d]`` reads, ``values``: ``[..., N, d]`` the stored values,
    ``target_index``: ``[..., Q]`` int index of the correct value (default
    ``arange(Q)``, i.e. query q asks for memory q). Returns a bool tensor ``[..., Q]``:
    ``argmin_n |pred_q - v_n|^2 == target_q``. Ties go to the lowest index.
    """
    p = as_float_tensor(pred, "pred", min_ndim=2, allow_integer=True)
    v = as_float_tensor(values, "values", min_ndim=2, allow_integer=True, like=p)
    if p.shape[-1] != v.shape[-1]:
        raise ValueError(
            f"values: expected last dimension {p.shape[-1]} like pred {shape_str(p.shape)}, "
            f"got shape {shape_str(v.shape)}"
        )
    q = p.shape[-2]
    try:
        expected = (*torch.broadcast_shapes(p.shape[:-2], v.shape[:-2]), q)
    except RuntimeError:
        raise ValueError(
            f"values: expected leading dimensions broadcastable with pred {shape_str(p.shape)}, "
            f"got shape {shape_str(v.shape)}"
        ) from None
    if target_index is None:
        if q > v.shape[-2]:
            raise ValueError(
                f"target_index: needed when there are more queries ({q}) than values "
                f"({v.shape[-2]})"
            )
        target = torch.arange(q, device=p.device)
    else:
        target = torch.as_tensor(target_index, device=p.device)
        if target.dtype.is_floating_point or target.dtype == torch.bool:
            raise TypeError(f"target_index: expected an integer tensor, got {target.dtype}")
        try:
            ok = torch.broadcast_shapes(target.shape, expected) == expected
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"target_index: expected a shape broadcastable to {shape_str(expected)} (one "
                f"index per query), got shape {shape_str(target.shape)}"
            )
    # |p - v|^2 = |p|^2 - 2 p.v + |v|^2; |p|^2 is constant over n
    d2 = (v * v).sum(-1).unsqueeze(-2) - 2 * p @ v.transpose(-1, -2)
    return d2.argmin(dim=-1) == target


def squared_error_success(
    pred: Any, target: Any, threshold: float = 60.0, *, scale: float = 1.0
) -> torch.Tensor:
    """The universal-Hopfield benchmark criterion: a retrieval succeeds when the summed
    squared error to the target is below ``threshold``.

    ``success = sum_j (scale * (pred_j - target_j))^2 < threshold`` over the last axis;
    ``pred``, ``target``: ``[..., D]``, returns bool ``[...]``. Millidge et al. 2022
    (universal Hopfield networks) count an MNIST/CIFAR retrieval correct when this sum,
    on pixels in [0, 1], is below 60; use ``scale = 1/255`` for raw 0-255 pixels.
    """
    p, t = _pair(pred, target)
    return ((float(scale) * (p - t)) ** 2).sum(-1) < float(threshold)


# ----------------------------------------------------------------------------- capacity


def _curve(loads: Any, accuracy: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_float_tensor(loads, "loads", allow_integer=True).to(torch.float64)
    a = as_float_tensor(accuracy, "accuracy", allow_integer=True).to(torch.float64)
    if x.ndim != 1:
        raise ValueError(f"loads: expected shape [L], got shape {shape_str(x.shape)}")
    if a.shape[-1] != x.shape[0]:
        raise ValueError(
            f"accuracy: expected shape [..., {x.shape[0]}] (one value per load), "
            f"got shape {shape_str(a.shape)}"
        )
    if x.numel() > 1 and not bool((x[1:] > x[:-1]).all()):
        raise ValueError("loads: expected strictly increasing loads")
    return x, a


def capacity_from_curve(
    loads: Any, accuracy: Any, criterion: float = 0.98, *, contiguous: bool = True
) -> torch.Tensor:
    """The largest load whose accuracy meets ``criterion``, from an accuracy-vs-load curve.

    ``loads``: ``[L]`` strictly increasing (number of stored patterns), ``accuracy``:
    ``[..., L]`` on the same scale as ``criterion`` (fractions by default). With
    ``contiguous=True`` (default) the capacity is the last load before the *first*
    failure, ``max {L_j : acc_i >= criterion for all i <= j}``, so a lucky point past the
    cliff does not count; with ``contiguous=False`` it is the largest passing load
    anywhere. 0 when even the first load fails. When no load fails the true capacity is
    at least ``loads[-1]`` (a censored estimate). Returns float64 ``[...]``
    (docs/science.md 4 item 1: "capacity = largest number stored with accuracy >= 0.98").
    """
    x, a = _curve(loads, accuracy)
    ok = a >= criterion
    if contiguous:
        ok = torch.cumprod(ok.to(torch.int64), dim=-1).bool()
    vals = torch.where(ok, x.expand_as(a), torch.zeros_like(a))
    return vals.amax(dim=-1) if vals.shape[-1] else vals.sum(-1)


def capacity_interpolated(loads: Any, accuracy: Any, criterion: float = 0.98) -> torch.Tensor:
    """Capacity where the accuracy curve first crosses ``criterion``, interpolated linearly.

    Between the last passing load ``L_j`` and the first failing load ``L_{j+1}``:
    ``L_j + (L_{j+1} - L_j) (acc_j - c) / (acc_j - acc_{j+1})``. Equal to ``loads[-1]``
    when no load fails (censored) and to 0 when the first load fails. A finer estimate
    than :func:`capacity_from_curve` on a coarse load grid. Shapes as there.
    """
    x, a = _curve(loads, accuracy)
    c = float(criterion)
    n = x.shape[0]
    if n == 0:  # no load tested: capacity 0, as capacity_from_curve
        return torch.zeros(a.shape[:-1], dtype=torch.float64)
    ok = torch.cumprod((a >= c).to(torch.int64), dim=-1)
    n_ok = ok.sum(-1)  # number of leading passing loads
    j = (n_ok - 1).clamp(min=0)
    j1 = n_ok.clamp(max=n - 1)
    xj, xj1 = x[j], x[j1]
    aj = torch.gather(a, -1, j.unsqueeze(-1)).squeeze(-1)
    aj1 = torch.gather(a, -1, j1.unsqueeze(-1)).squeeze(-1)
    denom = aj - aj1
    frac = torch.where(denom > 0, (aj - c) / torch.where(denom > 0, denom, 1.0), 0.0)
    est = xj + (xj1 - xj) * frac.clamp(0.0, 1.0)
    est = torch.where(n_ok == n, x[-1].expand_as(est), est)
    return torch.where(n_ok == 0, torch.zeros_like(est), est)


# ----------------------------------------------------------------------------- keys and values


def key_separability(keys: Any, labels: Any) -> torch.Tensor:
    """Between-class over within-class scatter of keys (a Fisher-style discriminability).

    ``sum_c n_c |mu_c - mu|^2 / sum_i |k_i - mu_{c(i)}|^2`` with ``mu`` the mean key,
    ``mu_c`` the mean key of class ``c`` and ``n_c`` its size. ``keys``: ``[..., N, d]``,
    ``labels``: ``[..., N]`` ints (class ids need not be contiguous; empty classes do not
    count). Returns ``[...]``; ``inf`` when every class collapses to a point but classes
    differ; ``0`` when all keys coincide (the ``kv-optimization`` metrics; docs/science.md 3.1).
    """
    k = as_float_tensor(keys, "keys", min_ndim=2, allow_integer=True)
    lab = torch.as_tensor(labels, device=k.device)
    if lab.dtype.is_floating_point or lab.dtype == torch.bool:
        raise TypeError(f"labels: expected an integer tensor, got {lab.dtype}")
    if lab.shape != k.shape[:-1]:
        raise ValueError(
            f"labels: expected shape {shape_str(k.shape[:-1])} (one per key), "
            f"got shape {shape_str(lab.shape)}"
        )
    _, inverse = torch.unique(lab, return_inverse=True)
    n_classes = int(inverse.max()) + 1 if inverse.numel() else 0
    onehot = torch.nn.functional.one_hot(inverse, n_classes).to(k.dtype)  # [..., N, C]
    counts = onehot.sum(-2)  # [..., C]
    sums = onehot.transpose(-1, -2) @ k  # [..., C, d]
    mu_c = sums / counts.clamp(min=1).unsqueeze(-1)
    mu = k.mean(dim=-2, keepdim=True)  # [..., 1, d]
    between = (counts * ((mu_c - mu) ** 2).sum(-1)).sum(-1)
    within = ((k - onehot @ mu_c) ** 2).sum(-1).sum(-1)
    # 0/0 (all keys identical) means no separation at all, not an undefined score
    return torch.where(between == 0, torch.zeros_like(between), between / within)


def value_error(pred: Any, target: Any, *, reduction: str = "mean") -> torch.Tensor:
    """Squared error of retrieved values, summed over value dimensions.

    ``e_i = |pred_i - target_i|^2`` for ``pred``, ``target``: ``[..., N, d_v]``
    (broadcast). ``reduction="mean"`` returns the mean over memories and every leading
    dimension (a scalar: the ``value_error`` of docs/architecture.md / docs/science.md 3.1),
    ``"none"`` returns ``e`` of shape ``[..., N]``.
    """
    p, t = _pair(pred, target)
    e = ((p - t) ** 2).sum(-1)
    if reduction == "none":
        return e
    if reduction == "mean":
        return e.mean()
    raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")


def mean_ci(
    samples: Any, dim: int = 0, level: float = 0.95
) -> tuple[list[float] | float, list[list[float]] | list[float]]:
    """Mean over ``dim`` and its two-sided ``level`` Student-t interval.

    ``samples``: ``[S, ...]`` (S seeds, subjects or networks along ``dim``). Returns
    ``(mean, ci)`` as plain floats / lists for ``result.json``: for a 1-D input a float and
    ``[low, high]``; otherwise the mean's nested list and, per point, ``[low, high]`` pairs
    (the last axis of ``ci`` is the pair). The interval is
    ``mean +- t_{(1+level)/2, S-1} * sd / sqrt(S)``; with ``S = 1`` it collapses to the mean
    (no spread is measurable). NaN samples are ignored per point.
    """
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), got {level}")
    raw = _arrayish(samples)
    if isinstance(raw, torch.Tensor):
        x = raw.detach().to(torch.float64)
    else:  # a copy: numpy inputs may be read-only (pandas' are)
        import numpy as np

        x = torch.from_numpy(np.array(raw, dtype=np.float64))
    if x.ndim == 0:
        raise ValueError(f"samples: expected at least 1 dimension, got shape {shape_str(x)}")
    x = x.movedim(dim, 0)
    valid = ~torch.isnan(x)
    n = valid.sum(0).to(torch.float64)
    mean = torch.where(valid, x, 0.0).sum(0) / n.clamp(min=1)
    dev = torch.where(valid, x - mean, 0.0)
    sd = (dev.square().sum(0) / (n - 1).clamp(min=1)).sqrt()
    dof = (n - 1).clamp(min=1).numpy()
    half = torch.as_tensor(student_t.ppf(0.5 + level / 2, dof)) * sd / n.clamp(min=1).sqrt()
    half = torch.where(n > 1, half, 0.0)
    mean = torch.where(n > 0, mean, torch.nan)
    ci = torch.stack([mean - half, mean + half], dim=-1)
    if mean.ndim == 0:
        return float(mean), [float(v) for v in ci]
    return mean.tolist(), ci.tolist()
