"""Record plain-SGD training as the key-value pairs it writes (docs/science.md 1.6).

Every ``nn.Linear`` layer ``y = x W^T + b`` trained by plain SGD from ``W_0`` satisfies

    W = W_0 + sum_n v_n^T k_n,   b = b_0 + sum_n v_n,   v_n = -eta_t * dL/dy_n

with one pair per example and step: the key ``k_n`` is the layer's input for that example
(a bias has the constant key 1) and the value ``v_n`` is minus the step's learning rate
times the gradient of the minibatch loss with respect to that example's layer output (so
the loss reduction, e.g. the ``1/B`` of a mean, is folded in). :class:`SGDRecorder` hooks
the layers of a model, captures these pairs during ordinary training, and returns them as
a :class:`kvmem.nn.dual.KeyValueTrace` you can verify, query and edit.

How it captures (no change to the training code):

- a forward hook on each layer stores its input (a *reference* ``(dataset, row)`` when the
  input is exactly a row batch of a registered dataset, else a copy) and registers a tensor
  hook on the layer output that stores ``dL/dy`` when the backward pass reaches it;
- a post-accumulate-grad hook on the weight marks those pairs as *live* (now part of
  ``W.grad``); gradients zeroed (``None`` or all zero) before a backward end the life of the
  earlier live pairs; gradients accumulated over several backward passes keep them all;
- each optimizer step (a global ``torch.optim`` step pre-hook) or each manual step declared
  with :meth:`SGDRecorder.record_step` adds ``-lr`` (read from the optimizer's param group at
  that step, so learning-rate schedulers are fine) to every live pair's value scale. A pair
  applied by several steps (gradients never zeroed) gets the sum of their learning rates.

Only layers whose weight requires grad at the forward call record anything (frozen layers
write nothing). A layer called several times in one forward writes one pair per call and
example (each call is its own key and error signal; the sum stays exact).

Exactness is checked at every step (``verify=True``): the recorded live pairs must explain
``W.grad`` and ``b.grad`` along a random probe direction, or the step raises before it is
applied (gradient clipping, a weight used outside ``Linear.forward``, or a bias trained
while its weight is frozen all break the identity). The recorder refuses optimizers for
which the identity does not hold: anything but ``torch.optim.SGD``, and SGD with momentum,
dampening, nesterov or weight decay.

Usage::

    rec = SGDRecorder(model)                     # every nn.Linear, from the current weights
    rec.register_dataset("train", x_train, y_train)   # keys stored by reference, labels known
    with rec:                                    # hooks attached
        for epoch in range(3):
            rec.set_tags(epoch=epoch)
            for xb, yb in batches:
                opt.zero_grad(); F.cross_entropy(model(xb), yb).backward(); opt.step()
    mem = rec.trace()                            # KeyValueTrace
    mem.max_abs_error(model)                     # ~1e-7 (float32)
    mem.delete(label=3).materialize(model)       # the network without any label-3 pair
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.hooks import RemovableHandle

from kvmem.nn.dual import FIELDS, DatasetRef, KeyValueTrace, LayerPairs, _Store

__all__ = ["SGDRecorder", "UnsupportedOptimizerError", "RecordingError", "check_optimizer"]


class UnsupportedOptimizerError(ValueError):
    """The optimizer's update is not ``-lr x gradient``, so SGD's key-value dual breaks."""


class RecordingError(RuntimeError):
    """The gradients no longer match the recorded pairs (the identity would break)."""


_IDENTITY = (
    "the dual form W = W0 + sum_n x_n^T e_n with e_n = -lr * dL/dy_n (docs/science.md 1.6) holds "
    "only when every step adds exactly -lr x (this step's gradient) to the weights"
)
_FIX = (
    "use torch.optim.SGD(params, lr) with momentum=0, dampening=0, nesterov=False, weight_decay=0"
)


def check_optimizer(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor] | None = None):
    """Raise :class:`UnsupportedOptimizerError` unless ``optimizer`` is plain SGD.

    Checks the param groups holding any of ``params`` (all groups when ``None``): the type
    must be exactly ``torch.optim.SGD``; ``momentum``, ``dampening``, ``weight_decay`` must be
    0 and ``nesterov`` false. The message explains why each breaks the dual form.
    """
    name = type(optimizer).__name__
    if type(optimizer) is not torch.optim.SGD:
        raise UnsupportedOptimizerError(
            f"SGDRecorder: cannot record {name}: {_IDENTITY}; {name} does not do that "
            "(adaptive per-parameter step sizes and/or momentum rescale and mix gradients "
            "across steps), so the trained weights are not W0 plus the sum of the recorded "
            f"key-value pairs. To record, {_FIX}."
        )
    ids = None if params is None else {id(p) for p in params}
    for gi, group in enumerate(optimizer.param_groups):
        if ids is not None and not any(id(p) in ids for p in group["params"]):
            continue
        problems = []
        if float(group.get("momentum", 0.0)) != 0.0:
            problems.append(
                f"momentum={group['momentum']} (each step adds a decaying sum of past "
                "gradients, so a pair keeps changing W after its step)"
            )
        if float(group.get("dampening", 0.0)) != 0.0:
            problems.append(f"dampening={group['dampening']} (a momentum-buffer setting)")
        if bool(group.get("nesterov", False)):
            problems.append("nesterov=True (a momentum look-ahead)")
        if float(group.get("weight_decay", 0.0)) != 0.0:
            problems.append(
                f"weight_decay={group['weight_decay']} (every step shrinks W, W0 and all "
                "earlier pairs by (1 - lr * weight_decay))"
            )
        if problems:
            raise UnsupportedOptimizerError(
                f"SGDRecorder: cannot record SGD param group {gi} with "
                f"{'; '.join(problems)}: {_IDENTITY}. To record, {_FIX}."
            )


# ----------------------------------------------------------------------------- datasets

_P = 2147483647  # 2^31 - 1
_SIG_WEIGHTS: dict[int, torch.Tensor] = {}


def _row_signature(x: torch.Tensor) -> torch.Tensor:
    """An exact integer fingerprint of each row's bits, int64 ``[rows]``.

    Order-independent integer arithmetic (no float rounding), so a row taken from a batch
    and the same row of the full dataset always get the same signature. Equality of
    signatures is then confirmed by comparing the rows themselves.
    """
    x = x.detach().reshape(len(x), -1).contiguous()
    words = x.view(torch.int16) if x.element_size() == 2 else x.view(torch.int32)
    words = words.to(torch.int64)
    width = words.shape[1]
    r = _SIG_WEIGHTS.get(width)
    if r is None:
        gen = torch.Generator().manual_seed(12345)
        r = _SIG_WEIGHTS[width] = torch.randint(
            1, 1 << 16, (width,), generator=gen, dtype=torch.int64
        )
    if width <= 4096:  # |sum| < 2^31 * 2^16 * 2^12 = 2^59: no overflow
        return (words @ r).remainder(_P)
    acc = torch.zeros(len(x), dtype=torch.int64)
    for start in range(0, width, 4096):
        s = words[:, start : start + 4096] @ r[start : start + 4096]
        acc = (acc * 1_000_003 + s.remainder(_P)).remainder(_P)
    return acc


@dataclass
class _Dataset:
    ref: DatasetRef
    row_size: int
    sigs: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    version: int = 0  # the tensor's in-place modification counter at registration

    def view_rows(self, t: torch.Tensor) -> torch.Tensor | None:
        """Row indices if ``t`` is a slice ``x[a:b]`` of the registered tensor itself (same
        memory, same layout): then its rows *are* dataset rows, no comparison needed."""
        x = self.ref.x
        if (
            t.dtype != x.dtype
            or t.device != x.device
            or t.ndim != x.ndim
            or t.shape[1:] != x.shape[1:]
            or len(t) == 0
            or t.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
        ):
            return None
        inner = [st for st, n in zip(x.stride()[1:], x.shape[1:], strict=True) if n > 1]
        inner_t = [st for st, n in zip(t.stride()[1:], t.shape[1:], strict=True) if n > 1]
        if inner != inner_t or (len(t) > 1 and t.stride(0) != x.stride(0)) or x.stride(0) <= 0:
            return None
        off = t.storage_offset() - x.storage_offset()
        if off % x.stride(0):
            return None
        r0 = off // x.stride(0)
        if r0 < 0 or r0 + len(t) > len(x):
            return None
        return torch.arange(r0, r0 + len(t))

    def match(self, t: torch.Tensor, idx: torch.Tensor) -> bool:
        """Whether ``t`` (``[R, ...]``) holds exactly rows ``idx`` of the dataset."""
        fast = self.view_rows(t)
        if fast is not None:
            return torch.equal(fast, idx)
        flat = t.reshape(len(t), -1)
        return flat.shape[1] == self.row_size and torch.equal(self.ref.rows(idx, t.dtype), flat)

    def lookup(self, rows: torch.Tensor) -> torch.Tensor | None:
        """Dataset indices of ``rows [R, row_size]`` if every row is a dataset row, else None."""
        if rows.shape[1] != self.row_size or not rows.is_floating_point():
            return None
        if rows.dtype not in self.sigs:
            sig = _row_signature(self.ref.x.reshape(len(self.ref.x), -1).to(rows.dtype))
            order = torch.argsort(sig)
            self.sigs[rows.dtype] = (sig[order], order)
        sorted_sig, order = self.sigs[rows.dtype]
        q = _row_signature(rows)
        pos = torch.searchsorted(sorted_sig, q).clamp_(max=len(sorted_sig) - 1)
        if not bool((sorted_sig[pos] == q).all()):
            return None
        idx = order[pos]
        if not torch.equal(self.ref.rows(idx, rows.dtype), rows):
            return None
        return idx


# ----------------------------------------------------------------------------- records


@dataclass
class _Record:
    """One forward call of one layer: R rows, hence R pairs once its gradient arrives."""

    key: torch.Tensor | None  # [R, in] copy, or None when referenced
    key_ds: int  # dataset id of referenced keys, -1 for a copy
    key_rows: torch.Tensor | None  # [R] dataset rows
    example: torch.Tensor  # [R] int64 (-1 unknown)
    label: torch.Tensor  # [R] int64 (-1 unknown)
    dataset: int  # dataset of the batch (-1 unknown)
    tags: dict[str, Any]
    grad: torch.Tensor | None = None  # [R, out]
    birth: int = -1  # index into the layer's step list of the first step applying it
    death: int | None = None  # index one past the last step applying it
    step: int = -1  # global step index at birth


@dataclass
class _Layer:
    name: str
    module: nn.Linear
    probe: torch.Tensor  # float64 [in], random direction for the gradient check
    weight0: torch.Tensor | None = None
    bias0: torch.Tensor | None = None
    records: list[_Record] = field(default_factory=list)  # live or dead, in birth order
    inflight: dict[int, list[_Record]] = field(default_factory=dict)
    clear_at: dict[int, bool] = field(default_factory=dict)
    live: list[_Record] = field(default_factory=list)
    deltas_w: list[float] = field(default_factory=list)  # signed step size per step
    deltas_b: list[float] = field(default_factory=list)
    live_w: torch.Tensor | None = None  # float64 [out]: sum of live G^T (K r)
    live_b: torch.Tensor | None = None  # float64 [out]: sum of live G
    live_rows: int = 0
    acc_hook: RemovableHandle | None = None
    acc_param: torch.Tensor | None = None
    ds_proj: dict[int, torch.Tensor] = field(default_factory=dict)  # dataset @ probe

    @property
    def probe_t(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The probe and its absolute value in the layer's compute dtype (>= float32)."""
        dtype = self.module.weight.dtype
        dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        cached = self._probe_cache
        if cached is None or cached[0].dtype != dtype:
            p = self.probe.to(dtype)
            cached = self._probe_cache = (p, p.abs())
        return cached

    _probe_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset_live(self) -> None:
        out = self.module.out_features
        for r in self.live:
            r.death = len(self.deltas_w)
        self.live = []
        self.live_w = torch.zeros(out, dtype=torch.float64)
        self.live_b = torch.zeros(out, dtype=torch.float64)
        self.live_rows = 0


@dataclass
class _Context:
    """Metadata of the batch being forwarded (from a root forward, a dataset match or
    :meth:`SGDRecorder.set_batch`)."""

    example: torch.Tensor | None = None
    label: torch.Tensor | None = None
    dataset: int = -1
    source: torch.Tensor | None = None  # the input tensor the batch was identified from


class SGDRecorder:
    """Record every key-value pair that plain SGD writes into the ``nn.Linear`` layers of
    ``model`` (docs/science.md 1.6).

    Args:
        model: the network; its current weights are ``W_0`` (snapshot when attached).
        layers: names (as in ``model.named_modules()``) or modules of the ``nn.Linear``
            layers to record; default every ``nn.Linear`` in ``model``.
        optimizer: optional; checked at once with :func:`check_optimizer`. Every
            ``torch.optim`` optimizer that steps a recorded parameter is checked anyway.
        verify: check at every step that the live pairs explain the gradients (cheap: one
            random probe direction per layer) and raise :class:`RecordingError` otherwise.

    Use it as a context manager (``with rec:``) or call :meth:`attach` / :meth:`detach`.
    Training proceeds unchanged; :meth:`trace` returns the memory recorded so far.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Sequence[str | nn.Module] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        verify: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.verify = bool(verify)
        named = dict(model.named_modules())
        by_id = {id(m): n for n, m in named.items()}
        if layers is None:
            chosen = [n for n, m in named.items() if isinstance(m, nn.Linear)]
        else:
            chosen = []
            for item in layers:
                if isinstance(item, str):
                    if item not in named:
                        raise ValueError(f"layers: model has no submodule {item!r}")
                    chosen.append(item)
                elif isinstance(item, nn.Module) and id(item) in by_id:
                    chosen.append(by_id[id(item)])
                else:
                    raise ValueError(f"layers: {item!r} is not a submodule of model")
        if not chosen:
            raise ValueError("model: has no nn.Linear layer to record")
        gen = torch.Generator().manual_seed(2025)
        self._layers: dict[str, _Layer] = {}
        for name in chosen:
            mod = named[name]
            if not isinstance(mod, nn.Linear):
                raise ValueError(f"layers: {name!r} is {type(mod).__name__}, not nn.Linear")
            probe = torch.randn(mod.in_features, generator=gen, dtype=torch.float64)
            self._layers[name] = _Layer(name, mod, probe)
        self._datasets: list[_Dataset] = []
        self._tags: dict[str, Any] = {}
        self._explicit: _Context | None = None
        self._context = _Context()
        self._n_steps = 0
        self._handles: list[RemovableHandle] = []
        self._attached = False
        self._started = False
        if optimizer is not None:
            check_optimizer(optimizer)

    # ------------------------------------------------------------------ configuration

    def register_dataset(
        self, name: str, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> None:
        """Declare a dataset whose rows may be fed to recorded layers.

        A layer input that is exactly a batch of rows of ``x`` (bit for bit, any order) is
        stored as a reference (dataset, row) instead of a copy, and the batch's example
        indices and ``labels`` are attached to every pair of that forward pass (also in
        deeper layers). ``x [M, ...]`` is kept by reference: do not modify it while the
        trace is in use (:meth:`trace` checks torch's in-place modification counter).
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
            raise TypeError(f"x: expected a floating tensor [M, ...], got {type(x).__name__}")
        if any(d.ref.name == name for d in self._datasets):
            raise ValueError(f"name: dataset {name!r} is already registered")
        lab = None
        if labels is not None:
            lab = torch.as_tensor(labels).long().reshape(-1)
            if len(lab) != len(x):
                raise ValueError(f"labels: expected shape [{len(x)}], got {list(lab.shape)}")
        d = _Dataset(DatasetRef(name, x.detach(), lab), int(x[0].numel()))
        d.version = x._version
        self._datasets.append(d)

    def set_tags(self, **tags: int | str | None) -> None:
        """Tag every pair written from now on (``task=1``, ``epoch=3``, ``phase="pre"``).

        Values are ints or strings; ``None`` removes a tag. Tags are snapshot at each
        forward call. Built-in field names (``step``, ``label``...) are reserved.
        """
        for k, v in tags.items():
            if k in FIELDS or k == "layer":
                raise ValueError(f"{k}: reserved field name, choose another tag name")
            if v is None:
                self._tags.pop(k, None)
            elif isinstance(v, (bool, np.bool_)):
                self._tags[k] = int(v)
            elif isinstance(v, (int, np.integer)):
                self._tags[k] = int(v)
            elif isinstance(v, str):
                self._tags[k] = v
            else:
                raise TypeError(f"{k}: tag values must be int or str, got {type(v).__name__}")

    @contextlib.contextmanager
    def tags(self, **tags: int | str | None) -> Iterator[SGDRecorder]:
        """Context manager: :meth:`set_tags` inside the block, previous tags after it."""
        saved = dict(self._tags)
        self.set_tags(**tags)
        try:
            yield self
        finally:
            self._tags = saved

    def set_batch(
        self,
        example_index: Any | None = None,
        labels: Any | None = None,
        dataset: str | None = None,
    ) -> None:
        """Give the metadata of the batches forwarded from now on explicitly (until the next
        call; ``set_batch()`` returns to automatic detection). With ``dataset``, first-layer
        inputs equal to those rows are stored by reference."""
        if example_index is None and labels is None and dataset is None:
            self._explicit = None
            return
        ex = None if example_index is None else torch.as_tensor(example_index).long().reshape(-1)
        lab = None if labels is None else torch.as_tensor(labels).long().reshape(-1)
        d_id = -1
        if dataset is not None:
            names = [d.ref.name for d in self._datasets]
            if dataset not in names:
                raise ValueError(f"dataset: unknown dataset {dataset!r}; registered: {names}")
            d_id = names.index(dataset)
            if ex is None:
                raise ValueError("example_index: required with dataset")
            if lab is None and self._datasets[d_id].ref.labels is not None:
                lab = self._datasets[d_id].ref.labels[ex]
        self._explicit = _Context(ex, lab, d_id)

    # ------------------------------------------------------------------ attach / detach

    def attach(self) -> SGDRecorder:
        """Install the hooks. The first attach snapshots the initial weights ``W_0``."""
        if self._attached:
            return self
        if not self._started:
            for st in self._layers.values():
                st.weight0 = st.module.weight.detach().clone()
                b = st.module.bias
                st.bias0 = None if b is None else b.detach().clone()
                st.reset_live()
            self._started = True
        for st in self._layers.values():
            self._handles.append(st.module.register_forward_hook(self._make_forward_hook(st)))
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre_hook))
        self._handles.append(register_optimizer_step_pre_hook(self._optimizer_hook))
        self._attached = True
        return self

    def detach(self) -> None:
        """Remove every hook (the recorded pairs are kept; :meth:`attach` resumes)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for st in self._layers.values():
            if st.acc_hook is not None:
                st.acc_hook.remove()
                st.acc_hook = st.acc_param = None
        self._attached = False

    def __enter__(self) -> SGDRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    @property
    def n_steps(self) -> int:
        """Steps recorded so far (optimizer or manual steps that updated a recorded layer)."""
        return self._n_steps

    # ------------------------------------------------------------------ hooks

    def _root_pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if module is not self.model or not torch.is_grad_enabled():
            return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        self._context = _Context()
        if x is not None and self._explicit is None and x.ndim >= 2:
            self._identify(x)

    def _identify(self, x: torch.Tensor) -> int:
        """Try to match the rows of ``x [R, ...]`` to a registered dataset; on success set
        the context (example indices, labels) and return the dataset id, else -1."""
        x = x.detach()
        found = [(d_id, d.view_rows(x)) for d_id, d in enumerate(self._datasets)]
        if all(idx is None for _, idx in found):  # not a slice of a dataset: compare rows
            found = [
                (d_id, d.lookup(x.reshape(len(x), -1))) for d_id, d in enumerate(self._datasets)
            ]
        for d_id, idx in found:
            if idx is not None:
                d = self._datasets[d_id]
                lab = None if d.ref.labels is None else d.ref.labels[idx]
                self._context = _Context(idx, lab, d_id, x)
                return d_id
        return -1

    def _make_forward_hook(self, st: _Layer):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if module is not st.module or not torch.is_grad_enabled():
                return
            w = module.weight
            if not w.requires_grad or not isinstance(output, torch.Tensor):
                return
            if not output.requires_grad:
                return
            self._capture(st, args[0], output)

        return hook

    def _capture(self, st: _Layer, inp: torch.Tensor, output: torch.Tensor) -> None:
        d_in = st.module.in_features
        flat = inp.detach().reshape(-1, d_in)
        ctx = self._explicit if self._explicit is not None else self._context
        n_rows = len(flat)
        key_ds, key_rows = -1, None
        # 1) is the input the identified batch itself (a first layer)?
        if ctx.example is not None and ctx.dataset >= 0 and len(ctx.example) == n_rows:
            d = self._datasets[ctx.dataset]
            if d.row_size == d_in and d.match(inp.detach(), ctx.example):
                key_ds, key_rows = ctx.dataset, ctx.example
        # 2) no batch known yet: try the input itself (layers called outside a root forward)
        if (
            key_rows is None
            and self._explicit is None
            and (ctx.example is None or len(ctx.example) != inp.shape[0])
            and inp.ndim >= 2
            and len(inp) == n_rows
        ):
            d_id = self._identify(inp)
            if d_id >= 0:
                ctx = self._context
                key_ds, key_rows = d_id, ctx.example
        # per-row metadata: one example per row, or per leading index for [B, T, in] inputs
        example = label = None
        if ctx.example is not None and inp.ndim >= 2 and inp.shape[0] == len(ctx.example):
            reps = n_rows // len(ctx.example)
            example = ctx.example if reps == 1 else ctx.example.repeat_interleave(reps)
            if ctx.label is not None:
                label = ctx.label if reps == 1 else ctx.label.repeat_interleave(reps)
        if example is None:
            example = torch.full((n_rows,), -1, dtype=torch.long)
        if label is None:
            label = torch.full((n_rows,), -1, dtype=torch.long)
        rec = _Record(
            key=None if key_rows is not None else flat.clone(),
            key_ds=key_ds,
            key_rows=key_rows,
            example=example,
            label=label,
            dataset=ctx.dataset if ctx.example is not None else -1,
            tags=dict(self._tags),
        )
        self._ensure_acc_hook(st)
        output.register_hook(self._make_grad_hook(st, rec))

    def _ensure_acc_hook(self, st: _Layer) -> None:
        w = st.module.weight
        if st.acc_param is w:
            return
        if st.acc_hook is not None:
            st.acc_hook.remove()
        st.acc_hook = w.register_post_accumulate_grad_hook(self._make_acc_hook(st))
        st.acc_param = w

    def _make_grad_hook(self, st: _Layer, rec: _Record):
        def hook(grad: torch.Tensor) -> None:
            gid = torch._C._current_graph_task_id()
            if gid not in st.inflight:
                g = st.module.weight.grad
                st.clear_at[gid] = g is None or not bool(g.any())
                st.inflight[gid] = []
            r = rec if rec.grad is None else _Record(**{**rec.__dict__, "grad": None})
            r.grad = grad.detach().reshape(-1, st.module.out_features).clone()
            st.inflight[gid].append(r)

        return hook

    def _make_acc_hook(self, st: _Layer):
        def hook(param: torch.Tensor) -> None:
            if param is not st.module.weight:
                return
            gid = torch._C._current_graph_task_id()
            recs = st.inflight.pop(gid, [])
            clear = st.clear_at.pop(gid, False)
            st.inflight.clear()  # graph tasks that never reached W (e.g. autograd.grad)
            st.clear_at.clear()
            if clear:
                st.reset_live()
            for r in recs:
                self._make_live(st, r)

        return hook

    def _key_probe(self, st: _Layer, r: _Record, absolute: bool = False) -> torch.Tensor:
        """``K r`` for the record's keys and the layer's probe direction ``r`` (or ``|K| |r|``,
        which bounds its rounding, with ``absolute``): ``[R]`` in the layer's dtype (the
        check's tolerance is set by that dtype's epsilon)."""
        probe = st.probe_t[1] if absolute else st.probe_t[0]
        if r.key is not None:
            key = r.key.to(probe.dtype)  # a half-precision layer's keys meet a float32 probe
            return (key.abs() if absolute else key) @ probe
        assert r.key_rows is not None
        proj = st.ds_proj.get(r.key_ds)
        if proj is None:
            d = self._datasets[r.key_ds].ref
            x = d.x.reshape(len(d.x), -1).to(probe.dtype)
            proj = st.ds_proj[r.key_ds] = torch.stack([x @ st.probe_t[0], x.abs() @ st.probe_t[1]])
        return proj[int(absolute), r.key_rows]

    def _make_live(self, st: _Layer, r: _Record) -> None:
        assert r.grad is not None
        r.birth = len(st.deltas_w)
        r.step = self._n_steps
        st.records.append(r)
        st.live.append(r)
        st.live_rows += len(r.grad)
        if self.verify:
            g = r.grad
            if g.dtype != st.probe_t[0].dtype:
                g = g.to(st.probe_t[0].dtype)
            kr = self._key_probe(st, r)
            assert st.live_w is not None and st.live_b is not None
            st.live_w += (g.T @ kr).double()
            if st.module.bias is not None:
                st.live_b += g.sum(0).double()

    def _abs_bounds(self, st: _Layer) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum |G|^T (|K| |r|)`` and ``sum |G|`` over the live pairs, float64 ``[out]``:
        the scale of the rounding in the probe check when the sums cancel."""
        w_abs = torch.zeros(st.module.out_features, dtype=torch.float64)
        b_abs = torch.zeros(st.module.out_features, dtype=torch.float64)
        for r in st.live:
            assert r.grad is not None
            ga = r.grad.to(st.probe_t[0].dtype).abs()
            w_abs += (ga.T @ self._key_probe(st, r, absolute=True)).double()
            b_abs += ga.sum(0).double()
        return w_abs, b_abs

    def _optimizer_hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        group_of: dict[int, dict[str, Any]] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                group_of[id(p)] = group
        steps: dict[str, tuple[float, float]] = {}
        touched: list[torch.Tensor] = []
        for name, st in self._layers.items():
            w, b = st.module.weight, st.module.bias
            gw = group_of.get(id(w)) if w.grad is not None else None
            gb = group_of.get(id(b)) if b is not None and b.grad is not None else None
            if gw is None and gb is None:
                continue
            touched += [w] if gw is not None else []
            touched += [b] if gb is not None and b is not None else []
            steps[name] = (_signed_lr(gw), _signed_lr(gb))
        if not steps:
            return
        check_optimizer(optimizer, touched)
        self._commit(steps)

    def record_step(self, lr: float, layers: Iterable[str] | None = None, maximize: bool = False):
        """Declare a manual plain-SGD update ``W <- W - lr * W.grad`` (and the same for the
        bias) of the recorded layers with a gradient (or only ``layers``).

        For training loops that update parameters by hand instead of calling an optimizer.
        Call it right before or right after the update, while ``.grad`` still holds the
        step's gradient. Parameters whose ``.grad`` is ``None`` are not updated by SGD and
        get no step.
        """
        lr = float(lr)
        if not math.isfinite(lr):
            raise ValueError(f"lr: expected a finite number, got {lr!r}")
        sign = 1.0 if maximize else -1.0
        names = list(self._layers) if layers is None else list(layers)
        steps: dict[str, tuple[float, float]] = {}
        for name in names:
            if name not in self._layers:
                raise ValueError(f"layers: {name!r} is not a recorded layer")
            st = self._layers[name]
            w, b = st.module.weight, st.module.bias
            dw = sign * lr if w.grad is not None else 0.0
            db = sign * lr if b is not None and b.grad is not None else 0.0
            if dw != 0.0 or db != 0.0:
                steps[name] = (dw, db)
        if steps:
            self._commit(steps)

    def _commit(self, steps: dict[str, tuple[float, float]]) -> None:
        """Apply one step: check the gradients, then add the step size to the live pairs."""
        if self.verify:
            for name in steps:
                self._check_grads(self._layers[name])
        for name, (dw, db) in steps.items():
            st = self._layers[name]
            st.deltas_w.append(dw)
            st.deltas_b.append(db)
        self._n_steps += 1
        self._context = _Context()

    def _check_grads(self, st: _Layer) -> None:
        w, b = st.module.weight, st.module.bias
        eps = torch.finfo(w.dtype).eps
        rtol = 8 * eps * (st.live_rows + st.module.in_features + 16)
        assert st.live_w is not None and st.live_b is not None
        why = (
            "Likely causes: the gradient was modified after backward (clipping, scaling, "
            "manual edits), the weight is also used outside this Linear's forward (weight "
            "tying, F.linear), gradients from a pass with the layer's weight frozen, or a "
            "bias trained while its weight was frozen. Recording stops here because "
            f"{_IDENTITY}."
        )
        bounds: tuple[torch.Tensor, torch.Tensor] | None = None
        # accept at once when the error is small against the sum itself; otherwise compare
        # with the rounding bound (sums of absolute values), computed only then
        if w.grad is not None:
            probe = st.probe_t[0]
            actual = (w.grad.detach().to(probe.dtype) @ probe).double()
            err = float((actual - st.live_w).abs().max()) if actual.numel() else 0.0
            tol = rtol * float(st.live_w.abs().max()) if actual.numel() else 0.0
            if err > tol:
                bounds = self._abs_bounds(st)
                tol = rtol * float(bounds[0].max()) + 1e-300
            if err > tol:
                raise RecordingError(
                    f"SGDRecorder: layer {st.name!r}: weight.grad differs from the sum of the "
                    f"recorded pairs (probe error {err:.3g} > tolerance {tol:.3g}). {why}"
                )
        if b is not None and b.grad is not None:
            err = float((b.grad.detach().double() - st.live_b).abs().max())
            tol = rtol * float(st.live_b.abs().max())
            if err > tol:
                bounds = bounds or self._abs_bounds(st)
                tol = rtol * float(bounds[1].max()) + 1e-300
            if err > tol:
                raise RecordingError(
                    f"SGDRecorder: layer {st.name!r}: bias.grad differs from the sum of the "
                    f"recorded pairs (error {err:.3g} > tolerance {tol:.3g}). {why}"
                )

    # ------------------------------------------------------------------ the trace

    def trace(self) -> KeyValueTrace:
        """The memory recorded so far, as a :class:`kvmem.nn.dual.KeyValueTrace`.

        Pairs that no step applied (a backward without an optimizer step) are left out.
        Raises if a registered dataset changed since it was registered.
        """
        if not self._started:
            raise RuntimeError("SGDRecorder: nothing recorded yet (attach it and train)")
        for d in self._datasets:
            if d.ref.x._version != d.version:
                raise RecordingError(
                    f"SGDRecorder: registered dataset {d.ref.name!r} was modified after "
                    "registration; its rows are stored keys, so the trace would be wrong"
                )
        tag_names: list[str] = []
        cats: dict[str, list[Any]] = {}
        for st in self._layers.values():
            for r in st.records:
                for k, v in r.tags.items():
                    if k not in cats:
                        tag_names.append(k)
                        cats[k] = []
                    if v not in cats[k]:
                        cats[k].append(v)
        layers = {name: self._finalize(st, tag_names, cats) for name, st in self._layers.items()}
        return KeyValueTrace(_Store(layers, [d.ref for d in self._datasets], self._n_steps))

    def _finalize(self, st: _Layer, tag_names: list[str], cats: dict[str, list[Any]]) -> LayerPairs:
        mod = st.module
        n_steps = len(st.deltas_w)
        kept: list[_Record] = []
        counts: list[int] = []
        # per-record scalars, expanded to per-pair arrays once at the end
        per: dict[str, list[float] | list[int]] = {
            "vs": [],
            "bs": [],
            "src": [],
            "step": [],
            "ds": [],
        }
        tag_codes: dict[str, list[int]] = {k: [] for k in tag_names}
        lookup = {k: {v: i for i, v in enumerate(cats[k])} for k in tag_names}
        for r in st.records:
            end = n_steps if r.death is None else r.death
            if end <= r.birth:
                continue  # never applied by a step
            assert r.grad is not None
            dw = st.deltas_w[r.birth : end]
            db = st.deltas_b[r.birth : end]
            vscale = dw[0] if len(dw) == 1 else math.fsum(dw)
            bscale = db[0] if len(db) == 1 else math.fsum(db)
            if vscale == 0.0 and bscale == 0.0:
                continue
            kept.append(r)
            counts.append(len(r.grad))
            per["vs"].append(vscale)
            per["bs"].append(bscale)
            per["src"].append(r.key_ds if r.key is None else -1)
            per["step"].append(r.step)
            per["ds"].append(r.dataset)
            for k in tag_names:
                tag_codes[k].append(lookup[k][r.tags[k]] if k in r.tags else -1)

        n = torch.tensor(counts, dtype=torch.long)

        def expand(values: list[Any], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype).repeat_interleave(n)

        def cat(xs: list[torch.Tensor], dtype: torch.dtype, width: int | None = None):
            if xs:
                return torch.cat(xs)
            return torch.zeros((0,) if width is None else (0, width), dtype=dtype)

        copies = [r.key for r in kept if r.key is not None]
        n_copies = torch.tensor([len(r.grad) for r in kept if r.key is not None], dtype=torch.long)
        key_source = expand(per["src"], torch.long)
        key_row = torch.empty(len(key_source), dtype=torch.long)
        ref = key_source >= 0
        key_row[ref] = cat([r.key_rows for r in kept if r.key is None], torch.long)  # type: ignore[misc]
        key_row[~ref] = torch.arange(int(n_copies.sum()))
        example = cat([r.example for r in kept], torch.long)
        dataset = expand(per["ds"], torch.long)
        fields = {
            "step": expand(per["step"], torch.long),
            "example_index": example,
            "label": cat([r.label for r in kept], torch.long),
            "dataset": dataset,
            "visit": _visits(dataset, example),
        }
        assert st.weight0 is not None
        return LayerPairs(
            name=st.name,
            in_features=mod.in_features,
            out_features=mod.out_features,
            dtype=st.weight0.dtype,
            weight0=st.weight0,
            bias0=st.bias0,
            grad=cat([r.grad for r in kept], st.weight0.dtype, mod.out_features),  # type: ignore[misc]
            value_scale=expand(per["vs"], torch.float64),
            bias_scale=expand(per["bs"], torch.float64),
            key_source=key_source,
            key_row=key_row,
            key_copies=cat(copies, st.weight0.dtype, mod.in_features),  # type: ignore[arg-type]
            fields=fields,
            tags={k: (expand(tag_codes[k], torch.long), tuple(cats[k])) for k in tag_names},
        )


def _signed_lr(group: dict[str, Any] | None) -> float:
    if group is None:
        return 0.0
    lr = float(group["lr"])
    return lr if bool(group.get("maximize", False)) else -lr


def _visits(dataset: torch.Tensor, example: torch.Tensor) -> torch.Tensor:
    """For each pair, how many earlier pairs (in record order) share its (dataset, example);
    -1 for pairs of unknown example. With one pass per epoch this is the 0-based epoch."""
    visit = torch.full_like(example, -1)
    known = (example >= 0).nonzero().flatten()
    if len(known) == 0:
        return visit
    key = (dataset[known] + 1) * (1 << 40) + example[known]
    order = torch.sort(key, stable=True).indices
    sk = key[order]
    new = torch.ones(len(sk), dtype=torch.bool)
    new[1:] = sk[1:] != sk[:-1]
    starts = torch.arange(len(sk))[new]
    group = torch.cumsum(new.long(), 0) - 1
    rank = torch.arange(len(sk)) - starts[group]
    visit[known[order]] = rank
    return visit
