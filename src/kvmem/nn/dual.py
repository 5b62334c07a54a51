"""The key-value memory that plain SGD writes, as an object you can query and edit.

docs/science.md 1.6 (Irie, Csordas & Schmidhuber 2022): a linear layer ``y = x W^T + b``
(PyTorch layout, ``W`` is ``[out, in]``) trained by plain SGD from ``W_0`` holds

    W = W_0 + sum_n v_n^T k_n,      b = b_0 + sum_n v_n * 1,
    v_n = -eta_n * dL/dy_n          (one pair per example and step; loss reduction folded in)

so for any input ``x``

    y(x) = x W_0^T + b_0 + sum_n ((x . k_n) v_n + v_n)        (dual read: keys k_n, values v_n)

The paper writes row vectors, ``y = x W`` with ``W = W_0 + sum_n k_n^T v_n``; PyTorch's
``weight`` is that matrix transposed. :class:`KeyValueTrace` holds the pairs recorded by
:class:`kvmem.nn.recorder.SGDRecorder` and lets you

- count pairs per tag (``count("task")``), select pairs with keyword filters
  (``task=1``, ``label=0``, ``epoch=3``, ``example_index=[...]``, ``step=range(10)``,
  ``layer="in1"``, or a callable ``step=lambda s: s < 100``);
- edit the memory without retraining: ``scale(beta, **filters)`` multiplies the selected
  pairs' values, ``delete(**filters)`` removes them, ``keep(**filters)`` removes the rest,
  ``with_initial(alpha)`` scales ``W_0``. Edits return a new view over the same storage;
- read it: ``weight(layer)`` materialises ``alpha W_0 + sum_n s_n v_n^T k_n`` (float64
  accumulation, cast back), ``read(layer, x)`` evaluates the dual sum directly,
  ``materialize(model)`` gives a copy of the network with every recorded layer
  materialised, ``dual_forward(model, x)`` runs the network with every recorded layer
  replaced by its dual read;
- attribute a prediction to training pairs or examples (``attribute``; definition there).

Keys that are rows of a registered dataset are stored by reference (dataset + row); other
keys (hidden activations) are stored as copies in the layer's dtype.

``save(path)`` / ``KeyValueTrace.load(path)`` write and read a trace (the view, with its
edits) as a safetensors file, never pickle; the format is described at :meth:`KeyValueTrace.save`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _safetensors_bytes
from torch import nn

from kvmem._version import __version__
from kvmem.core.checksum import CHECKSUM_KEY, content_digest, verify_digest
from kvmem.core.persistence import check_device, check_readable
from kvmem.results import atomic_write_bytes

__all__ = ["Attribution", "DatasetRef", "KeyValueTrace", "LayerPairs", "FIELDS", "TRACE_FORMAT"]

#: the ``kvmem_format`` metadata value of a file written by :meth:`KeyValueTrace.save`
TRACE_FORMAT = "kvmem-trace-1"

#: per-pair integer fields every layer has (``-1`` where unknown)
FIELDS: tuple[str, ...] = ("step", "example_index", "label", "dataset", "visit")

_CHUNK = 8192  # pairs (or dataset rows) per block in sums and reads: bounds temporary memory


@dataclass(frozen=True)
class DatasetRef:
    """A dataset whose rows are stored keys by reference.

    ``x`` is the tensor that was registered (not a copy): ``[M, ...]`` with ``prod(...)`` equal
    to the layer's ``in_features``; ``labels`` ``[M]`` int64 or ``None``.
    """

    name: str
    x: torch.Tensor
    labels: torch.Tensor | None = None

    def rows(self, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Rows ``index`` flattened to ``[len(index), d]`` in ``dtype``."""
        return self.x[index].reshape(len(index), -1).to(dtype)


@dataclass
class LayerPairs:
    """All pairs one ``nn.Linear`` layer received, N of them (docs/science.md 1.6).

    - ``grad [N, out]``: dL/dy for each example (loss reduction folded in), layer dtype;
    - ``value_scale [N]`` float64: signed step size applied to the pair, so the value is
      ``v_n = value_scale_n * grad_n`` (``-lr`` of the step that applied it; the sum over
      steps when gradients were accumulated without zeroing; ``+lr`` with ``maximize``);
    - ``bias_scale [N]`` float64: the same for the bias (0 when the bias was not stepped);
    - ``key_source [N]`` int64: ``-1`` for a copied key (row ``key_row`` of ``key_copies``),
      else the id of the dataset whose row ``key_row`` is the key;
    - ``fields``: ``step``, ``example_index``, ``label``, ``dataset``, ``visit`` (int64 [N],
      -1 unknown); ``visit`` counts earlier pairs of the same (dataset, example) in this layer;
    - ``tags``: name -> (codes int64 [N], categories), code -1 where the tag was unset.
    """

    name: str
    in_features: int
    out_features: int
    dtype: torch.dtype
    weight0: torch.Tensor
    bias0: torch.Tensor | None
    grad: torch.Tensor
    value_scale: torch.Tensor
    bias_scale: torch.Tensor
    key_source: torch.Tensor
    key_row: torch.Tensor
    key_copies: torch.Tensor
    fields: dict[str, torch.Tensor]
    tags: dict[str, tuple[torch.Tensor, tuple[Any, ...]]]

    def __len__(self) -> int:
        return int(self.grad.shape[0])

    @property
    def has_bias(self) -> bool:
        return self.bias0 is not None

    @property
    def nbytes(self) -> int:
        """Bytes held by this layer's pairs and initial weights (referenced datasets excluded)."""
        ts = [self.weight0, self.grad, self.value_scale, self.bias_scale, self.key_source]
        ts += [self.key_row, self.key_copies, *self.fields.values()]
        ts += [codes for codes, _ in self.tags.values()]
        if self.bias0 is not None:
            ts.append(self.bias0)
        return int(sum(t.numel() * t.element_size() for t in ts))


@dataclass
class _Store:
    """Storage shared by every view of one trace, plus a cache of partial sums."""

    layers: dict[str, LayerPairs]
    datasets: list[DatasetRef]
    n_steps: int
    # (layer, mask digest) -> (mask, float64 weight sum, bias sum)
    cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = field(
        default_factory=dict
    )
    x64: dict[tuple[int, torch.dtype], torch.Tensor] = field(default_factory=dict)

    def rows64(self, d_id: int, index: torch.Tensor | slice, dtype: torch.dtype) -> torch.Tensor:
        """Rows of dataset ``d_id`` as keys of a layer of ``dtype``, in float64 ``[n, d]``
        (the dataset is converted once and kept: ``8 * M * d`` bytes per dataset)."""
        x = self.x64.get((d_id, dtype))
        if x is None:
            ds = self.datasets[d_id].x
            x = self.x64[(d_id, dtype)] = ds.reshape(len(ds), -1).to(dtype).double()
        return x[index]


@dataclass(frozen=True)
class Attribution:
    """Contributions of training pairs (or examples) to one output of a network at ``x``.

    For each chosen layer L with input ``h_L(x)`` and output ``y_L(x)``, let
    ``u_L = d z_target / d y_L`` at ``x`` (autograd through the materialised network). The
    contribution of recorded pair n of layer L is

        c_n = s_n * ( (h_L(x) . k_n) (v_n . u_L) + (v^b_n . u_L) )

    (``v^b_n`` the bias value, the key of a bias being the constant 1, ``s_n`` the view's
    scale), and the initial weights contribute ``alpha_L (h_L W_0^T + b_0) . u_L``. These sum
    exactly to ``total = sum_L u_L . y_L(x)``: the linear read-out of the chosen layers'
    outputs along the gradient. For the last layer alone, ``u`` is the one-hot of the
    target logit (times any fixed output scale) and ``c_n`` is the pair's *direct*
    contribution to that logit. For bias-free ReLU networks (positively homogeneous), and
    chosen layers that every path from input to output crosses once (e.g. all first
    layers), ``total`` equals the logit ``output`` itself (Euler's theorem), so the
    contributions decompose the logit. ``by="example"`` sums the pairs of the same training
    example (over steps, epochs and the chosen layers); pairs of unknown example stay single.

    Arrays are sorted by the requested ``order`` (``scores`` descending for "positive",
    ascending for "negative", by magnitude for "abs") and cover every group, so
    ``scores.sum() + initial == total``. ``top(k)`` lists the first k as dicts.
    """

    target: int
    output: float
    total: float
    initial: float
    layers: tuple[str, ...]
    by: str
    scores: torch.Tensor
    example_index: torch.Tensor
    label: torch.Tensor
    dataset: tuple[str | None, ...]
    layer: tuple[str | None, ...]
    pair_index: torch.Tensor
    dataset_names: tuple[str, ...] = ()
    _dataset_id: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The first ``k`` groups: ``score``, ``example_index``, ``label``, ``dataset``,
        ``layer`` and ``pair_index`` (``None`` / ``-1`` where not applicable)."""
        k = min(int(k), len(self.scores))
        return [
            {
                "score": float(self.scores[i]),
                "example_index": int(self.example_index[i]),
                "label": int(self.label[i]),
                "dataset": self.dataset[i],
                "layer": self.layer[i],
                "pair_index": int(self.pair_index[i]),
            }
            for i in range(k)
        ]


def _tensor_digest(t: torch.Tensor) -> str:
    return hashlib.blake2b(t.contiguous().numpy().tobytes(), digest_size=16).hexdigest()


class KeyValueTrace:
    """The recorded SGD memory of a network: per layer, initial weights plus key-value pairs.

    Built by :meth:`kvmem.nn.recorder.SGDRecorder.trace`. A view carries a per-pair scale
    ``s_n`` (1 unless edited) and a per-layer initial scale ``alpha_L`` (1 unless edited):

        W_L = alpha_L W0_L + sum_n s_n v_n^T k_n,   b_L = alpha_L b0_L + sum_n s_n v_n

    Editing methods (``scale``, ``delete``, ``keep``, ``with_initial``) return a new view;
    storage is shared and never copied.
    """

    def __init__(
        self,
        store: _Store,
        scales: Mapping[str, torch.Tensor | None] | None = None,
        initial: Mapping[str, float] | None = None,
        levels: Mapping[str, tuple[float, ...] | None] | None = None,
    ) -> None:
        self._store = store
        # per layer, a superset of the distinct values of the scale vector (None: unknown);
        # lets weight() group pairs by scale without a sort
        self._levels: dict[str, tuple[float, ...] | None] = {
            name: ((1.0,) if scales is None or scales.get(name) is None else None)
            for name in store.layers
        } | dict(levels or {})
        self._scales: dict[str, torch.Tensor | None] = {name: None for name in store.layers} | dict(
            scales or {}
        )
        self._initial: dict[str, float] = {name: 1.0 for name in store.layers} | dict(initial or {})

    # ------------------------------------------------------------------ description

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the recorded layers (qualified module names in the model)."""
        return tuple(self._store.layers)

    @property
    def datasets(self) -> tuple[DatasetRef, ...]:
        """Datasets whose rows are referenced as keys."""
        return tuple(self._store.datasets)

    @property
    def n_steps(self) -> int:
        """Optimizer steps recorded (steps that updated at least one recorded layer)."""
        return self._store.n_steps

    def pairs(self, layer: str) -> LayerPairs:
        """The raw pairs of ``layer`` (shared storage; do not modify)."""
        return self._layer(layer)

    def n_pairs(self, layer: str | None = None) -> int:
        """Number of stored pairs in ``layer`` (all layers when ``None``)."""
        if layer is None:
            return sum(len(p) for p in self._store.layers.values())
        return len(self._layer(layer))

    def __len__(self) -> int:
        return self.n_pairs()

    @property
    def nbytes(self) -> int:
        """Bytes held by the trace (pairs, metadata, initial weights; referenced datasets
        are not counted, see :attr:`dataset_nbytes`)."""
        return sum(p.nbytes for p in self._store.layers.values())

    @property
    def dataset_nbytes(self) -> int:
        """Bytes of the referenced datasets (shared with the caller, not copied)."""
        return sum(d.x.numel() * d.x.element_size() for d in self._store.datasets)

    def tag_names(self) -> tuple[str, ...]:
        """Names usable as filters and in :meth:`count`: built-in fields and tags."""
        names: list[str] = list(FIELDS)
        for p in self._store.layers.values():
            names += [t for t in p.tags if t not in names]
        return tuple(names)

    def scale_of(self, layer: str) -> torch.Tensor:
        """Per-pair scale ``s_n`` of ``layer`` in this view, float64 ``[N]``."""
        s = self._scales[self._check_layer(layer)]
        return torch.ones(self.n_pairs(layer), dtype=torch.float64) if s is None else s.clone()

    def initial_scale(self, layer: str) -> float:
        """``alpha_L``, the factor on the initial weights of ``layer`` in this view."""
        return self._initial[self._check_layer(layer)]

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {len(p)}" for n, p in self._store.layers.items())
        return f"KeyValueTrace({self.n_steps} steps; pairs {parts}; {self.nbytes / 2**20:.1f} MiB)"

    # ------------------------------------------------------------------ raw arrays

    def keys(self, layer: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Keys ``k_n`` of ``layer``: ``[N, in]`` (or the masked subset) in the layer dtype.

        Referenced keys are gathered from their dataset; the constant-1 bias key is not
        included.
        """
        p = self._layer(layer)
        idx = torch.arange(len(p)) if mask is None else self._mask_index(p, mask)
        out = torch.empty(len(idx), p.in_features, dtype=p.dtype)
        src, row = p.key_source[idx], p.key_row[idx]
        copied = src < 0
        if bool(copied.any()):
            out[copied] = p.key_copies[row[copied]]
        for d_id, ds in enumerate(self._store.datasets):
            sel = src == d_id
            if bool(sel.any()):
                out[sel] = ds.rows(row[sel], p.dtype)
        return out

    def values(self, layer: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Values ``v_n = value_scale_n * dL/dy_n`` of ``layer``: ``[N, out]``, layer dtype."""
        p = self._layer(layer)
        idx = torch.arange(len(p)) if mask is None else self._mask_index(p, mask)
        return (p.grad[idx].double() * p.value_scale[idx, None]).to(p.dtype)

    def bias_values(self, layer: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Bias values ``bias_scale_n * dL/dy_n``: ``[N, out]`` (zeros for a bias-free layer)."""
        p = self._layer(layer)
        idx = torch.arange(len(p)) if mask is None else self._mask_index(p, mask)
        return (p.grad[idx].double() * p.bias_scale[idx, None]).to(p.dtype)

    def field(self, layer: str, name: str) -> torch.Tensor:
        """Per-pair values of field or tag ``name`` in ``layer``.

        Built-in fields are int64 ``[N]``; tags whose categories are all integers are
        returned as int64 (-1 where unset); string tags as a numpy object array (``None``
        where unset).
        """
        p = self._layer(layer)
        if name in p.fields:
            return p.fields[name].clone()
        if name not in p.tags:
            raise ValueError(
                f"{name}: unknown field or tag for layer {layer!r}; available: "
                f"{', '.join(self.tag_names())}"
            )
        codes, cats = p.tags[name]
        if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cats):
            lut = torch.tensor([int(c) for c in cats] + [-1], dtype=torch.long)
            return lut[codes]  # code -1 -> last entry (-1)
        arr = np.array(list(cats) + [None], dtype=object)
        return arr[codes.numpy()]  # type: ignore[return-value]

    # ------------------------------------------------------------------ selection

    def mask(self, layer: str, **filters: Any) -> torch.Tensor:
        """Boolean ``[N]`` mask of the pairs of ``layer`` matching every filter.

        A filter value is a scalar (equality), an iterable (membership: list, tuple, set,
        range, tensor, array) or a callable taking the per-pair values and returning a
        boolean mask. ``dataset`` accepts dataset names. ``layer`` is not allowed here.
        """
        p = self._layer(layer)
        if "layer" in filters:
            raise ValueError("mask: pass the layer as the first argument, not as a filter")
        out = torch.ones(len(p), dtype=torch.bool)
        for name, want in filters.items():
            out &= self._match(p, name, want)
        return out

    def _match(self, p: LayerPairs, name: str, want: Any) -> torch.Tensor:
        if name == "dataset":
            want = self._dataset_ids(want)
        if name in p.fields:
            values = p.fields[name]
            if callable(want):
                return torch.as_tensor(want(values.clone()), dtype=torch.bool)
            wanted = _as_int_set(want, name)
            if len(wanted) == 1:
                return values == next(iter(wanted))
            return torch.isin(values, torch.tensor(sorted(wanted), dtype=torch.long))
        if name not in p.tags:
            if any(name in q.tags for q in self._store.layers.values()):
                return torch.zeros(len(p), dtype=torch.bool)  # tag never set on this layer
            raise ValueError(
                f"{name}: unknown filter; available fields and tags: {', '.join(self.tag_names())}"
            )
        codes, cats = p.tags[name]
        if callable(want):
            vals = self.field(p.name, name)
            return torch.as_tensor(np.asarray(want(vals), dtype=bool))
        if isinstance(want, (torch.Tensor, np.ndarray, np.generic)):
            want = want.tolist()  # a scalar for 0-d input, else a (nested) list
        wanted = set(want) if isinstance(want, (list, tuple, set, frozenset, range)) else {want}
        ok = [i for i, c in enumerate(cats) if c in wanted]
        if len(ok) == 1:
            return codes == ok[0]
        return torch.isin(codes, torch.tensor(ok, dtype=torch.long))

    def _dataset_ids(self, want: Any) -> Any:
        names = [d.name for d in self._store.datasets]

        def one(w: Any) -> int:
            if isinstance(w, str):
                if w not in names:
                    raise ValueError(f"dataset: unknown dataset {w!r}; recorded: {names}")
                return names.index(w)
            return int(w)

        if callable(want):
            return want
        if isinstance(want, (list, tuple, set, frozenset)):
            return [one(w) for w in want]
        return one(want)

    def _selected_layers(self, layer: str | Iterable[str] | None) -> list[str]:
        if layer is None:
            return list(self._store.layers)
        names = [layer] if isinstance(layer, str) else list(layer)
        return [self._check_layer(n) for n in names]

    def count(self, by: str, layer: str | Iterable[str] | None = None, **filters: Any) -> Any:
        """Number of pairs per value of field or tag ``by``.

        Returns ``{value: count}`` for one layer (``layer="in1"``), else
        ``{layer: {value: count}}``. Unset tags count under ``None`` (fields under -1);
        ``filters`` restrict the pairs counted. ``by="dataset"`` reports dataset names.
        """
        names = self._selected_layers(layer)
        result: dict[str, dict[Any, int]] = {}
        for name in names:
            p = self._store.layers[name]
            m = self.mask(name, **filters)
            if by in p.fields:
                vals, cnt = torch.unique(p.fields[by][m], return_counts=True)
                keys: list[Any] = [int(v) for v in vals]
                if by == "dataset":
                    dn = [d.name for d in self._store.datasets]
                    keys = [dn[k] if k >= 0 else None for k in keys]
                result[name] = dict(zip(keys, (int(c) for c in cnt), strict=True))
            elif by in p.tags:
                codes, cats = p.tags[by]
                vals, cnt = torch.unique(codes[m], return_counts=True)
                result[name] = {
                    (cats[int(v)] if int(v) >= 0 else None): int(c)
                    for v, c in zip(vals, cnt, strict=True)
                }
            elif any(by in q.tags for q in self._store.layers.values()):
                result[name] = {None: int(m.sum())} if int(m.sum()) else {}
            else:
                raise ValueError(
                    f"by: unknown field or tag {by!r}; available: {', '.join(self.tag_names())}"
                )
        if isinstance(layer, str):
            return result[layer]
        return result

    # ------------------------------------------------------------------ editing (new views)

    def _replace(
        self,
        scales: dict[str, torch.Tensor | None],
        initial: dict[str, float],
        levels: dict[str, tuple[float, ...] | None],
    ) -> KeyValueTrace:
        return KeyValueTrace(self._store, scales, initial, levels)

    def _new_levels(self, name: str, factor: float, keep_old: bool = True) -> Any:
        old = self._levels.get(name)
        if old is None:
            return None
        new = set(old) | {u * factor for u in old} if keep_old else {u * factor for u in old}
        return tuple(sorted(new)) if len(new) <= 16 else None

    def scale(
        self,
        beta: float,
        *,
        layer: str | Iterable[str] | None = None,
        include_initial: bool = False,
        **filters: Any,
    ) -> KeyValueTrace:
        """Multiply the values of the selected pairs by ``beta`` (a new view).

        Pairs are selected by ``filters`` in the layers ``layer`` (all when ``None``);
        ``include_initial`` also multiplies those layers' initial weights (the published
        Figure 3 manipulation scales ``W_0`` too, docs/science.md 3.2). Scales compose
        multiplicatively. ``beta = 0`` deletes.
        """
        beta = float(beta)
        if not np.isfinite(beta):
            raise ValueError(f"beta: expected a finite number, got {beta!r}")
        scales = dict(self._scales)
        initial = dict(self._initial)
        levels = dict(self._levels)
        selected = self._selected_layers(layer)
        masks = {name: self.mask(name, **filters) for name in selected}
        if filters and not include_initial and not any(bool(m.any()) for m in masks.values()):
            raise ValueError(self._empty_selection_message(selected, filters))
        for name in selected:
            m = masks[name]
            s = self.scale_of(name)
            scales[name] = torch.where(m, s * beta, s)
            levels[name] = self._new_levels(name, beta)
            if include_initial:
                initial[name] *= beta
        return self._replace(scales, initial, levels)

    def _empty_selection_message(self, layers: list[str], filters: dict[str, Any]) -> str:
        """One line naming filters that select no pair, with the values recorded for each."""
        parts = []
        for name, want in filters.items():
            seen: set[Any] = set()
            for layer in layers:
                p = self._store.layers[layer]
                if name in p.tags:
                    seen.update(p.tags[name][1])
                elif name in p.fields:
                    seen.update(torch.unique(p.fields[name]).tolist())
            shown = sorted(seen, key=lambda v: (str(type(v)), v))
            listed = ", ".join(map(repr, shown[:12])) + (", ..." if len(shown) > 12 else "")
            what = "callable" if callable(want) else repr(want)
            parts.append(f"{name}={what} (recorded: {listed or 'none'})")
        where = ", ".join(layers)
        return f"scale: the filters select no pairs in layers {where}: " + "; ".join(parts)

    def delete(self, *, layer: str | Iterable[str] | None = None, **filters: Any) -> KeyValueTrace:
        """Remove the selected pairs (scale 0); initial weights stay. A new view."""
        return self.scale(0.0, layer=layer, **filters)

    def keep(self, *, layer: str | Iterable[str] | None = None, **filters: Any) -> KeyValueTrace:
        """Remove every pair *not* selected by ``filters`` in ``layer`` (all layers when
        ``None``); initial weights stay. A new view."""
        scales = dict(self._scales)
        levels = dict(self._levels)
        for name in self._selected_layers(layer):
            s = self.scale_of(name)
            s[~self.mask(name, **filters)] = 0.0
            scales[name] = s
            levels[name] = self._new_levels(name, 0.0)
        return self._replace(scales, dict(self._initial), levels)

    def with_initial(
        self, alpha: float, *, layer: str | Iterable[str] | None = None
    ) -> KeyValueTrace:
        """Set the factor on the initial weights ``W_0`` (0 removes them). A new view."""
        initial = dict(self._initial)
        for name in self._selected_layers(layer):
            initial[name] = float(alpha)
        return self._replace(dict(self._scales), initial, dict(self._levels))

    def clear_cache(self) -> None:
        """Drop the cached partial sums and float64 dataset copies (shared by all views)."""
        self._store.cache.clear()
        self._store.x64.clear()

    def reset(self) -> KeyValueTrace:
        """The unedited view (every scale 1)."""
        return KeyValueTrace(self._store)

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str], *, include_datasets: bool = True) -> None:
        """Write this view of the trace to ``path`` as a safetensors file, atomically.

        The file holds, per layer ``i`` (in recording order), the tensors
        ``layer{i}.weight0``, ``.bias0`` (if any), ``.grad``, ``.value_scale``,
        ``.bias_scale``, ``.key_source``, ``.key_row``, ``.key_copies``, ``.field{j}`` (the
        built-in fields), ``.tag{j}`` (tag codes) and ``.scale`` (the view's per-pair scales
        ``s_n``, when edited); per referenced dataset ``j``, ``dataset{j}.labels`` (if any)
        and, with ``include_datasets``, ``dataset{j}.x`` (so the file is self-contained).
        Everything else is JSON in the safetensors metadata (strings only): ``kvmem_format``
        (``"kvmem-trace-1"``), ``kvmem_version`` and ``kvmem_trace`` (layer names, sizes and
        dtypes, field and tag names, tag categories, the view's initial scales, ``n_steps``,
        dataset names, shapes and dtypes). Without ``include_datasets`` only the dataset
        names are stored, with the shape, dtype and a BLAKE2b digest of each, and
        :meth:`load` needs the tensors back (``datasets={name: tensor}``).

        Tag categories must be JSON scalars (``int`` or ``str`` as :meth:`SGDRecorder.set_tags`
        gives). The file is serialised in memory and moved into place with
        :func:`kvmem.results.atomic_write_bytes`, so a crash never leaves half a file.
        """
        tensors: dict[str, torch.Tensor] = {}
        seen: set[int] = set()

        def put(name: str, t: torch.Tensor) -> None:
            t = t.detach().to("cpu").contiguous()
            ptr = t.untyped_storage().data_ptr()
            if ptr and ptr in seen:  # safetensors refuses tensors that share memory
                t = t.clone()
            seen.add(t.untyped_storage().data_ptr())
            tensors[name] = t

        layers_meta: list[dict[str, Any]] = []
        for i, (name, p) in enumerate(self._store.layers.items()):
            pre = f"layer{i}."
            put(pre + "weight0", p.weight0)
            if p.bias0 is not None:
                put(pre + "bias0", p.bias0)
            for key in ("grad", "value_scale", "bias_scale", "key_source", "key_row"):
                put(pre + key, getattr(p, key))
            put(pre + "key_copies", p.key_copies)
            for j, t in enumerate(p.fields.values()):
                put(pre + f"field{j}", t)
            tags_meta = []
            for j, (tag, (codes, cats)) in enumerate(p.tags.items()):
                put(pre + f"tag{j}", codes)
                tags_meta.append(
                    {"name": tag, "categories": [_json_category(tag, c) for c in cats]}
                )
            s = self._scales[name]
            if s is not None:
                put(pre + "scale", s)
            levels = self._levels.get(name)
            layers_meta.append(
                {
                    "name": name,
                    "in_features": p.in_features,
                    "out_features": p.out_features,
                    "dtype": _dtype_name(p.dtype),
                    "has_bias": p.bias0 is not None,
                    "fields": list(p.fields),
                    "tags": tags_meta,
                    "scaled": s is not None,
                    "initial": self._initial[name],
                    "levels": None if levels is None else list(levels),
                }
            )
        datasets_meta: list[dict[str, Any]] = []
        for j, d in enumerate(self._store.datasets):
            entry: dict[str, Any] = {
                "name": d.name,
                "shape": list(d.x.shape),
                "dtype": _dtype_name(d.x.dtype),
                "stored": bool(include_datasets),
                "has_labels": d.labels is not None,
            }
            if include_datasets:
                put(f"dataset{j}.x", d.x)
            else:
                entry["blake2b"] = _bytes_digest(d.x)
            if d.labels is not None:
                put(f"dataset{j}.labels", d.labels)
            datasets_meta.append(entry)
        header = {
            "format": TRACE_FORMAT,
            "n_steps": self._store.n_steps,
            "layers": layers_meta,
            "datasets": datasets_meta,
        }
        metadata = {
            "kvmem_format": TRACE_FORMAT,
            "kvmem_version": __version__,
            "kvmem_trace": json.dumps(header),
        }
        metadata[CHECKSUM_KEY] = content_digest(tensors, metadata)
        if os.path.isdir(path):
            raise ValueError(f"path: {os.fspath(path)!r} is a directory; give a file name")
        atomic_write_bytes(path, _safetensors_bytes(tensors, metadata=metadata))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        device: torch.device | str = "cpu",
        datasets: Mapping[str, torch.Tensor] | None = None,
    ) -> KeyValueTrace:
        """Read a trace written by :meth:`save` (the same view: edits included).

        Only safetensors is read, never pickle. Tensors go to ``device`` (the trace's
        queries compute on CPU, so keep the default unless you move them back yourself).
        ``datasets`` maps dataset names to tensors: required for every dataset the file
        references but does not hold (saved with ``include_datasets=False``), checked
        against the stored shape, dtype and digest; for a dataset the file holds, a tensor
        given here must equal it bit for bit and is then used (by reference) instead of
        the file's copy. Given tensors are kept by reference, as :class:`SGDRecorder` does.

        Raises ``ValueError`` for a file that is not a kvmem trace, has an unknown format
        version or is inconsistent, for a missing or mismatched dataset, and for a
        ``datasets`` name the trace does not reference.
        """
        where = f"path: {os.fspath(path)!r}"
        device = check_device(device)
        check_readable(os.fspath(path))
        try:
            with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
                metadata = f.metadata() or {}
                fmt = metadata.get("kvmem_format")
                if fmt is None:
                    what = "a kvmem memory file" if "kvmem_class" in metadata else "safetensors"
                    raise ValueError(
                        f"{where} is {what} but not a kvmem trace (no kvmem_format metadata)"
                    )
                if fmt != TRACE_FORMAT:
                    raise ValueError(
                        f"{where} has unknown format version {fmt!r}; this kvmem "
                        f"({__version__}) reads {TRACE_FORMAT!r}"
                    )
                # get_tensor maps the file: copy, so that later writes to the file (cp over
                # it, truncation) can never change or break the loaded trace
                tensors = {name: f.get_tensor(name).clone() for name in f.keys()}  # noqa: SIM118
        except SafetensorError as err:
            raise ValueError(f"{where} is not a kvmem trace (not safetensors: {err})") from None
        verify_digest(tensors, metadata, where)
        try:
            header = json.loads(metadata.get("kvmem_trace", ""))
        except json.JSONDecodeError as err:
            raise ValueError(f"{where} is a corrupt kvmem trace (kvmem_trace: {err})") from None
        try:
            return cls._from_file(header, tensors, device, dict(datasets or {}))
        except _CorruptTrace as err:
            raise ValueError(f"{where} is a corrupt kvmem trace ({err})") from None

    @classmethod
    def _from_file(
        cls,
        header: Any,
        tensors: dict[str, torch.Tensor],
        device: torch.device,
        given: dict[str, torch.Tensor],
    ) -> KeyValueTrace:
        """Build the trace from a file's header and tensors, checking both."""
        used: set[str] = set()

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise _CorruptTrace(msg)

        def take(name: str, dtype: torch.dtype | None, shape: Sequence[int | None]) -> torch.Tensor:
            need(name in tensors, f"tensor {name!r} is missing")
            t = tensors[name]
            need(dtype is None or t.dtype == dtype, f"tensor {name!r} is {t.dtype}, not {dtype}")
            ok = t.ndim == len(shape) and all(
                n is None or s == n for s, n in zip(t.shape, shape, strict=True)
            )
            need(ok, f"tensor {name!r} has shape {list(t.shape)}, expected {list(shape)}")
            used.add(name)
            return t

        need(isinstance(header, dict), "kvmem_trace is not a JSON object")
        need(header.get("format") == TRACE_FORMAT, "kvmem_trace format differs from kvmem_format")
        try:
            n_steps = int(header["n_steps"])
            ds_meta = list(header["datasets"])
            layers_meta = list(header["layers"])
        except (KeyError, TypeError, ValueError) as err:
            raise _CorruptTrace(f"kvmem_trace lacks {err}") from None

        # ---- datasets
        ds_names = [str(d.get("name")) if isinstance(d, dict) else "" for d in ds_meta]
        unknown = sorted(set(given) - set(ds_names))
        if unknown:
            raise ValueError(
                f"datasets: the trace references no dataset named {unknown[0]!r}; "
                f"it references {ds_names}"
            )
        refs: list[DatasetRef] = []
        for j, d in enumerate(ds_meta):
            try:
                name, shape = str(d["name"]), [int(n) for n in d["shape"]]
                dtype, stored = _dtype_from_name(d["dtype"]), bool(d["stored"])
                has_labels = bool(d["has_labels"])
            except (KeyError, TypeError, ValueError) as err:
                raise _CorruptTrace(f"dataset {j}: {err}") from None
            need(len(shape) >= 2, f"dataset {name!r}: shape {shape} is not [M, ...]")
            x: torch.Tensor | None = None
            if stored:
                x = take(f"dataset{j}.x", dtype, shape)
            if name in given:
                g = given[name]
                if not isinstance(g, torch.Tensor):
                    raise TypeError(
                        f"datasets: {name!r} must be a torch.Tensor, got {type(g).__name__}"
                    )
                if list(g.shape) != shape or g.dtype != dtype:
                    raise ValueError(
                        f"datasets: {name!r} expected shape {shape} and dtype "
                        f"{_dtype_name(dtype)}, got {list(g.shape)} and {_dtype_name(g.dtype)}"
                    )
                same = _same_bits(g, x) if x is not None else _bytes_digest(g) == d.get("blake2b")
                if not same:
                    raise ValueError(
                        f"datasets: {name!r} differs from the dataset the trace was saved with"
                    )
                x = g.detach()
            if x is None:
                raise ValueError(
                    f"datasets: the trace references dataset {name!r}, which the file does not "
                    f"hold (saved with include_datasets=False); pass "
                    f"datasets={{{name!r}: tensor}} to load"
                )
            labels = take(f"dataset{j}.labels", None, [shape[0]]) if has_labels else None
            refs.append(
                DatasetRef(name, x.to(device), None if labels is None else labels.to(device))
            )

        # ---- layers
        layers: dict[str, LayerPairs] = {}
        scales: dict[str, torch.Tensor | None] = {}
        initial: dict[str, float] = {}
        levels: dict[str, tuple[float, ...] | None] = {}
        for i, m in enumerate(layers_meta):
            pre = f"layer{i}."
            try:
                name = str(m["name"])
                d_in, d_out = int(m["in_features"]), int(m["out_features"])
                dtype = _dtype_from_name(m["dtype"])
                has_bias, scaled = bool(m["has_bias"]), bool(m["scaled"])
                field_names = [str(n) for n in m["fields"]]
                tag_meta = [(str(t["name"]), tuple(t["categories"])) for t in m["tags"]]
                alpha = float(m["initial"])
                lv = None if m["levels"] is None else tuple(float(u) for u in m["levels"])
            except (KeyError, TypeError, ValueError) as err:
                raise _CorruptTrace(f"layer {i}: {err}") from None
            need(name not in layers, f"layer name {name!r} appears twice")
            need(all(f in field_names for f in FIELDS), f"layer {name!r} lacks built-in fields")
            grad = take(pre + "grad", dtype, [None, d_out])
            n = len(grad)
            key_source = take(pre + "key_source", torch.long, [n])
            key_row = take(pre + "key_row", torch.long, [n])
            key_copies = take(pre + "key_copies", dtype, [None, d_in])
            if n:
                need(
                    int(key_source.min()) >= -1 and int(key_source.max()) < len(refs),
                    f"layer {name!r}: key_source outside -1..{len(refs) - 1}",
                )
                for src in [-1, *range(len(refs))]:
                    rows = key_row[key_source == src]
                    if not len(rows):
                        continue
                    limit = len(key_copies) if src < 0 else len(refs[src].x)
                    need(
                        int(rows.min()) >= 0 and int(rows.max()) < limit,
                        f"layer {name!r}: key_row outside 0..{limit - 1}",
                    )
                    if src >= 0:
                        width = math.prod(refs[src].x.shape[1:])
                        need(
                            width == d_in,
                            f"layer {name!r}: dataset {refs[src].name!r} rows have {width} "
                            f"entries, the layer takes {d_in}",
                        )
            tags: dict[str, tuple[torch.Tensor, tuple[Any, ...]]] = {}
            for j, (tag, cats) in enumerate(tag_meta):
                codes = take(pre + f"tag{j}", torch.long, [n])
                need(
                    not n or (int(codes.min()) >= -1 and int(codes.max()) < len(cats)),
                    f"layer {name!r}: codes of tag {tag!r} outside -1..{len(cats) - 1}",
                )
                tags[tag] = (codes.to(device), cats)
            fields = {
                f: take(pre + f"field{j}", torch.long, [n]).to(device)
                for j, f in enumerate(field_names)
            }
            bias0 = take(pre + "bias0", dtype, [d_out]).to(device) if has_bias else None
            layers[name] = LayerPairs(
                name=name,
                in_features=d_in,
                out_features=d_out,
                dtype=dtype,
                weight0=take(pre + "weight0", dtype, [d_out, d_in]).to(device),
                bias0=bias0,
                grad=grad.to(device),
                value_scale=take(pre + "value_scale", torch.float64, [n]).to(device),
                bias_scale=take(pre + "bias_scale", torch.float64, [n]).to(device),
                key_source=key_source.to(device),
                key_row=key_row.to(device),
                key_copies=key_copies.to(device),
                fields=fields,
                tags=tags,
            )
            scales[name] = take(pre + "scale", torch.float64, [n]).to(device) if scaled else None
            initial[name] = alpha
            levels[name] = lv
        extra = sorted(set(tensors) - used)
        need(not extra, f"unexpected tensors {extra[:3]}")
        store = _Store(layers, refs, n_steps)
        return cls(store, scales, initial, levels)

    # ------------------------------------------------------------------ sums and reads

    def _weighted_sum(
        self, p: LayerPairs, idx: torch.Tensor, w: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``sum_{n in idx} w_n v_n^T k_n`` ``[out, in]`` and ``sum w_n v^b_n``, float64.

        Referenced keys are summed per dataset row first (``sum_n v_n`` over the pairs that
        share a row, then one product with the distinct rows), so a key seen in E epochs
        costs one row of the product, not E.
        """
        W = torch.zeros(p.out_features, p.in_features, dtype=torch.float64)
        b = torch.zeros(p.out_features, dtype=torch.float64) if p.has_bias else None
        if len(idx) == 0:
            return W, b
        g = p.grad[idx].double()
        ww = p.value_scale[idx] if w is None else p.value_scale[idx] * w
        v = g * ww[:, None]  # [n, out]
        if b is not None:
            wb = p.bias_scale[idx] if w is None else p.bias_scale[idx] * w
            b += wb @ g
        src, row = p.key_source[idx], p.key_row[idx]
        copied = (src < 0).nonzero().flatten()
        for start in range(0, len(copied), _CHUNK):
            c = copied[start : start + _CHUNK]
            W += v[c].T @ p.key_copies[row[c]].double()
        for d_id in range(len(self._store.datasets)):
            sel = src == d_id
            if not bool(sel.any()):
                continue
            uniq, agg = self._aggregate(d_id, row[sel], v[sel])
            if uniq is None:  # dense: agg is [M, out] over every dataset row
                W += agg.T @ self._store.rows64(d_id, slice(None), p.dtype)
                continue
            for start in range(0, len(uniq), _CHUNK):
                W += agg[start : start + _CHUNK].T @ self._store.rows64(
                    d_id, uniq[start : start + _CHUNK], p.dtype
                )
        return W, b

    def _aggregate(
        self, d_id: int, rows: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Sum the values ``v [n, out]`` of pairs whose keys are the same dataset row.

        Returns ``(None, [M, out])`` over all M rows of the dataset when the rows used
        cover a good part of it (no gather needed), else ``(distinct rows, [r, out])``."""
        n_rows = len(self._store.datasets[d_id].x)
        used = int(torch.zeros(n_rows, dtype=torch.bool).index_fill_(0, rows, True).sum())
        if 4 * used >= n_rows:
            agg = torch.zeros(n_rows, v.shape[1], dtype=torch.float64)
            return None, agg.index_add_(0, rows, v)
        uniq, inv = torch.unique(rows, return_inverse=True)
        agg = torch.zeros(len(uniq), v.shape[1], dtype=torch.float64)
        return uniq, agg.index_add_(0, inv, v)

    def _pair_sum(self, p: LayerPairs, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Float64 sum over the pairs in mask ``m`` (unit scales), cached.

        A new mask is first assembled from cached sums of disjoint masks it contains (e.g.
        all pairs = the union of the per-epoch sums), and only the rest is summed anew, so
        sweeping tags (epoch by epoch, then all, then a class) computes each pair once.
        """
        cache = self._store.cache
        key = (p.name, _tensor_digest(m))
        hit = cache.get(key)
        if hit is not None:
            return hit[1], hit[2]
        remaining = m.clone()
        W = torch.zeros(p.out_features, p.in_features, dtype=torch.float64)
        b = torch.zeros(p.out_features, dtype=torch.float64) if p.has_bias else None
        for (name, _), (cm, cW, cb) in list(cache.items()):
            if name != p.name or not bool(remaining.any()):
                continue
            if bool(cm.any()) and not bool((cm & ~remaining).any()):  # cm inside remaining
                W += cW
                if b is not None and cb is not None:
                    b += cb
                remaining &= ~cm
        if bool(remaining.any()):
            rW, rb = self._weighted_sum(p, remaining.nonzero().flatten(), None)
            W += rW
            if b is not None and rb is not None:
                b += rb
            if not torch.equal(remaining, m):
                self._cache_put((p.name, _tensor_digest(remaining)), (remaining, rW, rb))
        self._cache_put(key, (m.clone(), W, b))
        return W, b

    def _cache_put(self, key: tuple[str, str], value: Any) -> None:
        cache = self._store.cache
        if len(cache) >= 128:
            cache.pop(next(iter(cache)))
        cache[key] = value

    def weight(
        self, layer: str, dtype: torch.dtype | None = None, *, with_bias: bool = False
    ) -> Any:
        """Materialise ``W_L = alpha_L W0_L + sum_n s_n v_n^T k_n``, ``[out, in]``.

        Accumulates in float64 and returns ``dtype`` (default: the layer's dtype). Sums over
        groups of pairs with a common scale are cached, so sweeping a scale is cheap. With
        ``with_bias`` returns ``(W, b)`` (``b`` is ``None`` for a bias-free layer).
        """
        p = self._layer(layer)
        alpha = self._initial[layer]
        W = alpha * p.weight0.double()
        b = alpha * p.bias0.double() if p.bias0 is not None else None
        s = self._scales[layer]
        if s is None:
            groups: list[tuple[float, torch.Tensor]] = [(1.0, torch.ones(len(p), dtype=torch.bool))]
        else:
            known = self._levels.get(layer)
            uniq = list(known) if known else torch.unique(s).tolist()
            groups = [(u, s == u) for u in uniq if u != 0.0] if len(uniq) <= 16 else []
            covered = sum(int(m.sum()) for _, m in groups) + int((s == 0).sum())
            if groups and covered != len(s):  # levels were not a superset: group exactly
                uniq = torch.unique(s).tolist()
                groups = [(u, s == u) for u in uniq if u != 0.0] if len(uniq) <= 16 else []
            if not groups and bool((s != 0).any()):
                groups = []
                Wd, bd = self._weighted_sum(p, torch.arange(len(p)), s)
                W += Wd
                if b is not None and bd is not None:
                    b += bd
        for u, m in groups:
            if not bool(m.any()):
                continue
            Wd, bd = self._pair_sum(p, m)
            W += u * Wd
            if b is not None and bd is not None:
                b += u * bd
        out_dtype = p.dtype if dtype is None else dtype
        if with_bias:
            return W.to(out_dtype), (None if b is None else b.to(out_dtype))
        return W.to(out_dtype)

    def bias(self, layer: str, dtype: torch.dtype | None = None) -> torch.Tensor | None:
        """Materialise the bias ``alpha_L b0_L + sum_n s_n v^b_n`` (``None`` if bias-free)."""
        return self.weight(layer, dtype, with_bias=True)[1]

    def read(self, layer: str, x: torch.Tensor) -> torch.Tensor:
        """Dual read of ``layer``: ``y = alpha (x W0^T + b0) + sum_n s_n ((x . k_n) v_n + v^b_n)``.

        ``x [..., in] -> y [..., out]``, computed pair by pair (blocks of pairs, float64
        accumulation) without forming W, then cast to ``x``'s dtype. Costs
        ``Q * N * (in + out)``: use on modest query batches.
        """
        p = self._layer(layer)
        if x.shape[-1] != p.in_features:
            raise ValueError(
                f"x: expected shape [..., {p.in_features}] for layer {layer!r}, got {list(x.shape)}"
            )
        lead = x.shape[:-1]
        q = x.detach().reshape(-1, p.in_features).double()
        alpha = self._initial[layer]
        y = alpha * (q @ p.weight0.double().T)
        if p.bias0 is not None:
            y += alpha * p.bias0.double()
        s = self._scales[layer]
        w = p.value_scale if s is None else p.value_scale * s
        if p.has_bias:
            wb = p.bias_scale if s is None else p.bias_scale * s
            for start in range(0, len(p), _CHUNK):
                y += wb[start : start + _CHUNK] @ p.grad[start : start + _CHUNK].double()
        copied = (p.key_source < 0).nonzero().flatten()
        for start in range(0, len(copied), _CHUNK):
            c = copied[start : start + _CHUNK]
            sim = q @ p.key_copies[p.key_row[c]].double().T  # [Q, n]: x . k_n
            y += (sim * w[c]) @ p.grad[c].double()
        for d_id in range(len(self._store.datasets)):
            sel = (p.key_source == d_id).nonzero().flatten()
            if len(sel) == 0:
                continue
            # pairs sharing a dataset row share a key: sum their values first
            uniq, agg = self._aggregate(d_id, p.key_row[sel], p.grad[sel].double() * w[sel, None])
            if uniq is None:
                y += (q @ self._store.rows64(d_id, slice(None), p.dtype).T) @ agg
                continue
            for start in range(0, len(uniq), _CHUNK):
                keys = self._store.rows64(d_id, uniq[start : start + _CHUNK], p.dtype)
                y += (q @ keys.T) @ agg[start : start + _CHUNK]
        return y.to(x.dtype if x.is_floating_point() else p.dtype).reshape(*lead, p.out_features)

    def materialize(self, model: nn.Module, *, inplace: bool = False) -> nn.Module:
        """The network with every recorded layer's weight (and bias) materialised from this
        view; a deep copy unless ``inplace``. Unrecorded parameters are left as they are."""
        net = model if inplace else copy.deepcopy(model)
        with torch.no_grad():
            for name in self._store.layers:
                mod = _get_linear(net, name)
                W, b = self.weight(name, mod.weight.dtype, with_bias=True)
                mod.weight.copy_(W)
                if mod.bias is not None and b is not None:
                    mod.bias.copy_(b)
        return net

    @contextlib.contextmanager
    def dual_mode(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block, every recorded layer of ``model`` returns its dual read
        (:meth:`read`) instead of ``x W^T + b``."""
        handles = []
        for name in self._store.layers:
            mod = _get_linear(model, name)

            def hook(module: nn.Module, args: tuple[Any, ...], output: Any, _n: str = name):
                return self.read(_n, args[0])

            handles.append(mod.register_forward_hook(hook))
        try:
            yield model
        finally:
            for h in handles:
                h.remove()

    def dual_forward(self, model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        """``model(*args, **kwargs)`` with every recorded layer evaluated in dual form."""
        with torch.no_grad(), self.dual_mode(model):
            return model(*args, **kwargs)

    def max_abs_error(self, model: nn.Module, *, relative: bool = False) -> dict[str, float]:
        """Per layer, ``max |W_dual - W_model|`` over weight and bias entries, where
        ``W_dual`` is materialised from this view (float64) and ``W_model`` read from
        ``model``. With ``relative``, divided by ``max |W_model|`` (the weight scale)."""
        out: dict[str, float] = {}
        for name in self._store.layers:
            mod = _get_linear(model, name)
            W, b = self.weight(name, torch.float64, with_bias=True)
            Wm = mod.weight.detach().double()
            err = float((W - Wm).abs().max()) if Wm.numel() else 0.0
            scale = float(Wm.abs().max()) if Wm.numel() else 1.0
            if b is not None and mod.bias is not None:
                bm = mod.bias.detach().double()
                err = max(err, float((b - bm).abs().max()))
                scale = max(scale, float(bm.abs().max()))
            out[name] = err / scale if relative and scale > 0 else err
        return out

    # ------------------------------------------------------------------ attribution

    def attribute(
        self,
        model: nn.Module,
        x: torch.Tensor,
        *,
        target: int | None = None,
        layers: str | Sequence[str] | None = None,
        by: Literal["example", "pair"] = "example",
        order: Literal["positive", "negative", "abs"] = "positive",
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Attribution:
        """Attribute output ``target`` of the network at one input ``x`` to training pairs.

        ``x`` is one model input (a leading batch dimension of 1 is added if missing);
        the network evaluated is this view materialised into a copy of ``model``.
        ``target`` defaults to the predicted class (argmax of the output). ``layers``
        default to every recorded layer. Definition and exactness: :class:`Attribution`.
        """
        names = self._selected_layers(layers)
        net = self.materialize(model)
        for prm in net.parameters():
            prm.requires_grad_(True)
        inputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        handles = []
        for name in names:

            def hook(module: nn.Module, args: tuple[Any, ...], out: Any, _n: str = name) -> None:
                inputs[_n].append(args[0].detach())
                outputs[_n].append(out)

            handles.append(_get_linear(net, name).register_forward_hook(hook))
        try:
            xb = x if x.ndim and x.shape[0] == 1 else x.unsqueeze(0)
            with torch.enable_grad():
                z = net(xb, **dict(forward_kwargs or {}))
                if z.ndim != 2 or z.shape[0] != 1:
                    raise ValueError(
                        f"attribute: expected the model output of shape [1, classes], got "
                        f"{list(z.shape)}"
                    )
                t = int(z[0].argmax()) if target is None else int(target)
                outs = [o for n in names for o in outputs[n]]
                if not outs:
                    raise ValueError(f"attribute: layers {names} were not called by the model")
                grads = torch.autograd.grad(z[0, t], outs, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
        output = float(z.detach()[0, t])
        gi = iter(grads)
        us = {n: [next(gi) for _ in outputs[n]] for n in names}

        scores: list[torch.Tensor] = []
        owners: list[tuple[str, LayerPairs]] = []
        initial = 0.0
        for name in names:
            p = self._store.layers[name]
            s = self.scale_of(name)
            alpha = self._initial[name]
            contrib = torch.zeros(len(p), dtype=torch.float64)
            for h, u in zip(inputs[name], us[name], strict=True):
                if u is None:
                    continue
                h64 = h.reshape(-1, p.in_features).double()  # [R, in]
                u64 = u.detach().reshape(-1, p.out_features).double()  # [R, out]
                init = (h64 @ p.weight0.double().T) * u64
                initial += alpha * float(init.sum())
                if p.bias0 is not None:
                    initial += alpha * float((p.bias0.double() * u64).sum())
                sim = self._similarities(p, h64)  # [N, R]: k_n . h_r
                for start in range(0, len(p), _CHUNK):
                    i = torch.arange(start, min(start + _CHUNK, len(p)))
                    gu = p.grad[i].double() @ u64.T  # [n, R]
                    c = p.value_scale[i] * (sim[i] * gu).sum(1)
                    if p.has_bias:
                        c += p.bias_scale[i] * gu.sum(1)
                    contrib[i] += c
            scores.append(contrib * s)
            owners.append((name, p))
        all_scores = torch.cat(scores)
        total = initial + float(all_scores.sum())
        ex = torch.cat([p.fields["example_index"] for _, p in owners])
        lab = torch.cat([p.fields["label"] for _, p in owners])
        dsid = torch.cat([p.fields["dataset"] for _, p in owners])
        lay = torch.cat(
            [torch.full((len(p),), k, dtype=torch.long) for k, (_, p) in enumerate(owners)]
        )
        pidx = torch.cat([torch.arange(len(p)) for _, p in owners])
        layer_names = [n for n, _ in owners]
        ds_names = tuple(d.name for d in self._store.datasets)
        if by == "example":
            known = ex >= 0
            # group key: (dataset, example); unknown examples stay single pairs
            key = torch.where(known, (dsid + 1) * (1 << 40) + ex, -(torch.arange(len(ex)) + 1))
            uniq, inv = torch.unique(key, return_inverse=True)
            g_scores = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, all_scores)
            first = torch.full((len(uniq),), len(ex), dtype=torch.long).scatter_reduce_(
                0, inv, torch.arange(len(ex)), reduce="amin"
            )
            g_ex, g_lab, g_ds = ex[first], lab[first], dsid[first]
            single = ~known[first]
            g_lay = torch.where(single, lay[first], torch.full_like(first, -1))
            g_pidx = torch.where(single, pidx[first], torch.full_like(first, -1))
        elif by == "pair":
            g_scores, g_ex, g_lab, g_ds, g_lay, g_pidx = all_scores, ex, lab, dsid, lay, pidx
        else:
            raise ValueError(f"by: expected 'example' or 'pair', got {by!r}")
        if order == "positive":
            perm = torch.argsort(g_scores, descending=True, stable=True)
        elif order == "negative":
            perm = torch.argsort(g_scores, stable=True)
        elif order == "abs":
            perm = torch.argsort(g_scores.abs(), descending=True, stable=True)
        else:
            raise ValueError(f"order: expected 'positive', 'negative' or 'abs', got {order!r}")
        g_ds = g_ds[perm]
        g_lay = g_lay[perm]
        return Attribution(
            target=t,
            output=output,
            total=total,
            initial=initial,
            layers=tuple(names),
            by=by,
            scores=g_scores[perm],
            example_index=g_ex[perm],
            label=g_lab[perm],
            dataset=tuple(ds_names[d] if d >= 0 else None for d in g_ds.tolist()),
            layer=tuple(layer_names[k] if k >= 0 else None for k in g_lay.tolist()),
            pair_index=g_pidx[perm],
            dataset_names=ds_names,
            _dataset_id=g_ds,
        )

    def _similarities(self, p: LayerPairs, h: torch.Tensor) -> torch.Tensor:
        """``k_n . h_r`` for every pair n and query row r: float64 ``[N, R]``.

        Referenced keys are projected once per dataset row, then gathered."""
        sim = torch.zeros(len(p), h.shape[0], dtype=torch.float64)
        copied = (p.key_source < 0).nonzero().flatten()
        for start in range(0, len(copied), _CHUNK):
            c = copied[start : start + _CHUNK]
            sim[c] = p.key_copies[p.key_row[c]].double() @ h.T
        for d_id in range(len(self._store.datasets)):
            sel = (p.key_source == d_id).nonzero().flatten()
            if len(sel) == 0:
                continue
            proj = self._store.rows64(d_id, slice(None), p.dtype) @ h.T  # [M, R]
            sim[sel] = proj[p.key_row[sel]]
        return sim

    # ------------------------------------------------------------------ helpers

    def _check_layer(self, layer: str) -> str:
        if layer not in self._store.layers:
            raise ValueError(
                f"layer: unknown layer {layer!r}; recorded layers: {', '.join(self._store.layers)}"
            )
        return layer

    def _layer(self, layer: str) -> LayerPairs:
        return self._store.layers[self._check_layer(layer)]

    @staticmethod
    def _mask_index(p: LayerPairs, mask: torch.Tensor) -> torch.Tensor:
        if mask.dtype == torch.bool:
            if mask.shape != (len(p),):
                raise ValueError(f"mask: expected shape [{len(p)}], got {list(mask.shape)}")
            return mask.nonzero().flatten()
        return mask.long()


class _CorruptTrace(Exception):
    """Internal: a trace file's header and tensors disagree (reported as ValueError)."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(name: Any) -> torch.dtype:
    dtype = getattr(torch, str(name), None) if str(name).isidentifier() else None
    if not isinstance(dtype, torch.dtype):
        raise _CorruptTrace(f"unknown dtype {name!r}")
    return dtype


def _bytes_digest(t: torch.Tensor) -> str:
    """BLAKE2b (128 bits) of a tensor's bytes in row-major order (any dtype)."""
    b = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.blake2b(memoryview(b), digest_size=16).hexdigest()


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` hold the same dtype, shape and bytes (NaNs included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False

    def raw(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)

    return torch.equal(raw(a), raw(b))


def _json_category(tag: str, value: Any) -> Any:
    """A tag category as a JSON scalar that reads back equal (and of the same type)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(
        f"{tag}: tag category {value!r} ({type(value).__name__}) cannot be saved; "
        "tags must be int or str"
    )


def _as_int_set(want: Any, name: str) -> set[int]:
    if isinstance(want, torch.Tensor):
        return {int(v) for v in want.flatten().tolist()}
    if isinstance(want, np.ndarray):
        return {int(v) for v in want.ravel().tolist()}
    if isinstance(want, (list, tuple, set, frozenset, range)):
        return {int(v) for v in want}
    if isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        return {int(want)}
    raise TypeError(
        f"{name}: expected an integer, an iterable of integers or a callable, got {want!r}"
    )


def _get_linear(model: nn.Module, name: str) -> nn.Linear:
    try:
        mod = model.get_submodule(name) if name else model
    except AttributeError:
        raise ValueError(f"model: has no submodule {name!r}") from None
    if not isinstance(mod, nn.Linear):
        raise ValueError(f"model: submodule {name!r} is {type(mod).__name__}, not nn.Linear")
    return mod
