"""The three-factor slot memory circuit (docs/science.md 1.3; paper Figure 1 right).

Tyulmankov, Fang, Vadaparty & Yang (2021), "Biological learning in key-value memory
networks". A two-layer circuit: input ``x`` (d units) -> S hidden *slots* -> output
(d_v units). The input->hidden weights of slot i are its key ``K_i``, the hidden->output
weights its value ``V_i``. Three factors gate plasticity:

- ``mu`` in {0, 1}: a global *store* signal (a neuromodulator) per item;
- ``gamma_i`` in {0, 1}: a local *slot selector* (a dendritic plateau potential, BTSP-like)
  that picks which slots an item is written into: ``"sequential"`` (least recently used:
  the n-th stored item takes slot ``n mod S``) or ``"random"`` (each slot independently
  with probability ``p``);
- the pre/post-synaptic activity.

Write rules, for item ``(x, v)``, learning rates ``eta_K``, ``eta_V`` (1 in the paper's
capacity protocol)::

    key write    K_i <- K_i + eta_K * mu * gamma_i * (x - K_i)        (pre-synaptic only)
    value write  V_i <- V_i + eta_V * mu * gamma_i * a_i * (v - V_i)  (Hebbian, output = v)

Read (no plasticity, ``mu = 0``)::

    a = sigma(beta * K x)     (softmax by default)       v_hat = a V     (sign(v_hat) for +-1 data)

**The hidden activity ``a_i`` at write time** (``value_gate``). While an item is stored the
selected slots receive a plateau potential, which drives them; the default
``value_gate="selector"`` takes that literally, ``a_i = gamma_i`` during a write, so the
value write is ``V_i <- V_i + eta_V mu gamma_i (v - V_i)``. With ``eta_K = eta_V = 1`` every
selected slot then holds exactly ``K_i = x``, ``V_i = v``: the item overwrites its slots,
which is what the capacity protocol assumes (one-hot sequential selection fills slot
``n mod S`` with item n). ``value_gate="activity"`` uses instead the read activity of the
input at write time, computed *after* the key write, ``a = sigma(beta K x)``; the selected
slot then already matches ``x``, so ``a_i`` is close to 1 for a single selected slot with a
large ``beta``, and the value is shared out when several slots are selected at once (each
gets ``a_i`` ~ 1 / (number selected)). Both rules are the Hebbian rule of docs/science.md 1.3;
they differ only in what drives the postsynaptic slot during storage.

**Computation.** With full learning rates and the selector gate each slot's final content is
simply that of the *last* item that selected it, so :meth:`ThreeFactorSlotMemory.store` finds
the last writer of every slot by an ``argmax`` over item indices of the selection masks and
gathers, with no loop over items, batched over any leading dimensions (e.g. seeds x loads). With
partial learning rates or the activity gate the rule is incremental: a loop over items,
vectorised over the batch.

Slots start empty (``K = V = 0``). An empty slot scores 0 under the dot kernel and so still
takes a share of the softmax, but it adds nothing to ``v_hat`` (its value is 0): the sign of a
read is unchanged, its magnitude shrinks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from kvmem.core.separation import get_separation
from kvmem.core.similarity import get_similarity
from kvmem.core.validation import (
    as_float_tensor,
    check_dim,
    check_int_at_least,
    check_positive,
    shape_str,
)

__all__ = ["ThreeFactorSlotMemory", "SELECTIONS", "VALUE_GATES"]

#: Slot selectors gamma.
SELECTIONS: tuple[str, ...] = ("sequential", "random")
#: What the hidden activity a_i is during a value write.
VALUE_GATES: tuple[str, ...] = ("selector", "activity")


def _check_choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _check_rate(value: Any, name: str) -> float:
    v = check_positive(value, name)
    if v > 1:
        raise ValueError(f"{name}: expected a learning rate in (0, 1], got {value!r}")
    return v


class ThreeFactorSlotMemory:
    """Key-value slot memory written by three-factor local plasticity (docs/science.md 1.3).

    State: keys ``K [..., S, d]``, values ``V [..., S, d_v]`` (leading dims = independent
    circuits, e.g. seeds x loads), ``n_stored [...]`` (items stored so far: the sequential
    pointer) and ``owner [..., S]`` (index of the item that last wrote each slot, -1 if none).

    Args:
        n_slots: S, the number of hidden slots.
        selection: ``"sequential"`` (least recently used, item n -> slot n mod S) or
            ``"random"`` (each slot selected independently with probability ``p``).
        p: selection probability for ``"random"``.
        beta: inverse temperature of the read, ``a = softmax(beta K x)``.
        similarity: key-query kernel (default ``"dot"``: ``K x``), see ``kvmem.core.similarity``.
        separation: ``"softmax"`` or ``"sparsemax"`` (both use ``beta``), or any other
            operator name / callable of ``kvmem.core.separation`` (``beta`` unused; bind
            parameters with ``get_separation(name, **params)``).
        key_lr, value_lr: ``eta_K``, ``eta_V`` in (0, 1].
        value_gate: ``"selector"`` (``a_i = gamma_i`` during a write) or ``"activity"``
            (``a = sigma(beta K x)`` after the key write); see the module docstring.
        seed: seed of the memory's own generator for random selection.
    """

    def __init__(
        self,
        n_slots: int,
        *,
        selection: str = "sequential",
        p: float = 0.1,
        beta: float = 1.0,
        similarity: str | Callable[..., torch.Tensor] = "dot",
        separation: str | Callable[..., torch.Tensor] = "softmax",
        key_lr: float = 1.0,
        value_lr: float = 1.0,
        value_gate: str = "selector",
        seed: int = 0,
    ) -> None:
        self.n_slots = check_int_at_least(n_slots, 1, "n_slots")
        self.selection = _check_choice(selection, SELECTIONS, "selection")
        try:
            p_val = float(p)
        except (TypeError, ValueError):
            raise TypeError(f"p: expected a probability in (0, 1], got {p!r}") from None
        if not (0.0 < p_val <= 1.0):
            raise ValueError(f"p: expected a probability in (0, 1], got {p!r}")
        self.p = p_val
        self.beta = check_positive(beta, "beta")
        self.key_lr = _check_rate(key_lr, "key_lr")
        self.value_lr = _check_rate(value_lr, "value_lr")
        self.value_gate = _check_choice(value_gate, VALUE_GATES, "value_gate")
        self.similarity = get_similarity(similarity)
        if isinstance(separation, str) and separation.lower() in ("softmax", "sparsemax"):
            self.separation = get_separation(separation, beta=self.beta)
        else:
            self.separation = get_separation(separation)
        self.seed = check_int_at_least(seed, 0, "seed")
        self._generator = torch.Generator().manual_seed(self.seed)
        self.keys: torch.Tensor | None = None  # [..., S, d]
        self.values: torch.Tensor | None = None  # [..., S, d_v]
        self.n_stored: torch.Tensor | None = None  # [...] int64
        self.owner: torch.Tensor | None = None  # [..., S] int64

    # ------------------------------------------------------------------ selection
    def select(self, mu: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Slot selector gamma for a sequence of items: ``mu [..., T] -> gamma [..., T, S]``.

        ``gamma[..., t, i]`` is True when item t is written into slot i: sequential gives
        slot ``(n_stored + number of stored items before t) mod S``; random gives each slot
        with probability ``p`` (drawn on the CPU from ``generator`` or the memory's own).
        Items with ``mu = 0`` select nothing. Does not change the memory.
        """
        s = self.n_slots
        stored = mu.bool()
        if self.selection == "sequential":
            start = (
                torch.zeros(mu.shape[:-1], dtype=torch.int64, device=mu.device)
                if self.n_stored is None
                else self.n_stored.to(mu.device).expand(mu.shape[:-1])
            )
            rank = torch.cumsum(stored.to(torch.int64), dim=-1) - 1 + start[..., None]
            slot = torch.remainder(rank, s)
            # one_hot(slot, s) as bools directly (no int64 [..., T, S] tensor)
            gamma = slot[..., None] == torch.arange(s, device=mu.device)
        else:
            gen = generator if generator is not None else self._generator
            u = torch.rand((*mu.shape, s), generator=gen, dtype=torch.float64)
            gamma = (u < self.p).to(mu.device)
        return gamma & stored[..., None]

    # ------------------------------------------------------------------ writing
    def store(
        self,
        x: Any,
        v: Any = None,
        mu: Any = None,
        *,
        gamma: Any = None,
        generator: torch.Generator | None = None,
        method: str = "auto",
    ) -> ThreeFactorSlotMemory:
        """Present items ``x [..., T, d]`` with values ``v [..., T, d_v]`` (default ``v = x``,
        autoassociative) in order t = 0..T-1; returns ``self``.

        ``mu [..., T]`` (bool or 0/1, broadcast to x's leading dims) is the store signal
        (default: all stored); use it to pad
        circuits of different loads into one batch. ``gamma [..., T, S]`` (bool) overrides
        the slot selector (default :meth:`select`). Applies the three-factor rules of the
        module docstring; later calls continue the same sequence (same batch shape).
        ``method``: ``"auto"`` takes the loop-free last-writer computation whenever it is
        exact (full learning rates, selector gate), ``"loop"`` always applies the rules
        item by item (the reference implementation the fast path is tested against).
        """
        if method not in ("auto", "loop"):
            raise ValueError(f"method: expected 'auto' or 'loop', got {method!r}")
        x = as_float_tensor(x, "x", min_ndim=2, allow_integer=True)
        v = x if v is None else as_float_tensor(v, "v", min_ndim=2, allow_integer=True, like=x)
        if v.shape[:-1] != x.shape[:-1]:
            raise ValueError(
                f"v: expected shape {shape_str(x.shape[:-1])} + [d_v] (one value per item), "
                f"got shape {shape_str(v.shape)}"
            )
        batch, t_items = x.shape[:-2], x.shape[-2]
        if mu is None:
            mu_t = torch.ones((*batch, t_items), dtype=torch.bool, device=x.device)
        else:
            mu_t = torch.as_tensor(mu, device=x.device)
            try:
                mu_t = mu_t.expand(*batch, t_items)
            except RuntimeError:
                raise ValueError(
                    f"mu: expected shape {shape_str((*batch, t_items))} (one store signal per "
                    f"item, broadcastable), got shape {shape_str(mu_t.shape)}"
                ) from None
            if mu_t.dtype != torch.bool:
                bad = (mu_t != 0) & (mu_t != 1)
                if bool(bad.any()):
                    raise ValueError(
                        f"mu: expected values in {{0, 1}} (store or not), got {int(bad.sum())} "
                        f"other value(s), e.g. {mu_t[bad].flatten()[0].item()!r}"
                    )
                mu_t = mu_t != 0
        fresh = self.keys is None
        exact = self.key_lr == 1.0 and self.value_lr == 1.0 and self.value_gate == "selector"
        overwrite = method == "auto" and exact
        # A first full-rate store defines every slot itself: no zero state to allocate.
        self._init_state(batch, x, v, allocate=not (fresh and overwrite and t_items > 0))
        assert self.n_stored is not None and self.owner is not None
        if gamma is None:
            g = self.select(mu_t, generator)
        else:
            g = torch.as_tensor(gamma, device=x.device)
            if g.dtype != torch.bool or g.shape != (*batch, t_items, self.n_slots):
                raise ValueError(
                    f"gamma: expected a bool tensor of shape "
                    f"{shape_str((*batch, t_items, self.n_slots))}, got {g.dtype} "
                    f"{shape_str(g.shape)}"
                )
            g = g & mu_t[..., None]
        if t_items == 0:
            return self
        # global index of each item in the circuit's history, for ``owner``
        item_index = self.n_stored[..., None] + torch.arange(t_items, device=x.device)
        if overwrite:
            self._store_overwrite(x, v, g, item_index)
        else:
            self._store_incremental(x, v, g, item_index)
        self.n_stored = self.n_stored + mu_t.sum(-1)
        return self

    def _init_state(
        self, batch: torch.Size, x: torch.Tensor, v: torch.Tensor, allocate: bool = True
    ) -> None:
        """Fresh state for a first store (keys and values zero unless ``allocate=False``:
        then the caller's first write sets them), or check a later store against it."""
        s = self.n_slots
        if self.keys is None or self.values is None:
            if allocate:
                self.keys = x.new_zeros((*batch, s, x.shape[-1]))
                self.values = v.new_zeros((*batch, s, v.shape[-1]))
            self.n_stored = torch.zeros(batch, dtype=torch.int64, device=x.device)
            self.owner = torch.full((*batch, s), -1, dtype=torch.int64, device=x.device)
            return
        if self.keys.shape[:-2] != batch:
            raise ValueError(
                f"x: expected batch shape {shape_str(self.keys.shape[:-2])} (as stored), "
                f"got shape {shape_str(x.shape)}"
            )
        check_dim(x, -1, self.keys.shape[-1], "x", "key size d (as stored)")
        check_dim(v, -1, self.values.shape[-1], "v", "value size d_v (as stored)")

    def _store_overwrite(
        self, x: torch.Tensor, v: torch.Tensor, g: torch.Tensor, item_index: torch.Tensor
    ) -> None:
        """Full-rate writes: each slot ends up holding its last writer (no item loop)."""
        assert self.owner is not None
        t_items = x.shape[-2]
        # score = t + 1 where item t selects the slot, 0 elsewhere; argmax = last writer
        # (the narrowest integer type that holds T + 1: the max is exact in any of them)
        small = torch.int16 if t_items < 2**15 else torch.int64
        order = torch.arange(1, t_items + 1, device=x.device, dtype=small)
        best, last = (g * order[:, None]).max(dim=-2)  # [..., S]
        written = best > 0
        new_k = torch.gather(x, -2, last[..., None].expand(*last.shape, x.shape[-1]))
        # autoassociative (v is x): the same gather
        new_v = (
            new_k
            if v is x
            else torch.gather(v, -2, last[..., None].expand(*last.shape, v.shape[-1]))
        )
        if self.keys is None or self.values is None:
            # first store: unwritten slots stay zero (new_k and new_v are fresh tensors)
            unwritten = ~written[..., None]
            self.keys = new_k.masked_fill_(unwritten, 0.0)
            # (a copy when autoassociative: keys and values are separate, mutable tensors)
            self.values = self.keys.clone() if new_v is new_k else new_v.masked_fill_(unwritten, 0)
        else:
            self.keys = torch.where(written[..., None], new_k, self.keys)
            self.values = torch.where(written[..., None], new_v, self.values)
        self.owner = torch.where(written, torch.gather(item_index, -1, last), self.owner)

    def _store_incremental(
        self, x: torch.Tensor, v: torch.Tensor, g: torch.Tensor, item_index: torch.Tensor
    ) -> None:
        """The rules applied item by item (loop over T, vectorised over the batch)."""
        assert self.keys is not None and self.values is not None and self.owner is not None
        k_mat, v_mat, owner = self.keys, self.values, self.owner
        gf = g.to(x.dtype)
        for t in range(x.shape[-2]):
            gt = gf[..., t, :]  # [..., S]
            xt, vt = x[..., t : t + 1, :], v[..., t : t + 1, :]  # [..., 1, d]
            k_mat = k_mat + self.key_lr * gt[..., None] * (xt - k_mat)
            if self.value_gate == "selector":
                a = gt
            else:
                a = self.separation(self.similarity(xt, k_mat)).squeeze(-2)  # [..., S]
            v_mat = v_mat + self.value_lr * (gt * a)[..., None] * (vt - v_mat)
            owner = torch.where(g[..., t, :], item_index[..., t : t + 1], owner)
        self.keys, self.values, self.owner = k_mat, v_mat, owner

    # ------------------------------------------------------------------ reading
    def _check_read(self, x: Any) -> torch.Tensor:
        if self.keys is None:
            raise ValueError("memory is empty: store(x, v) before reading")
        q = as_float_tensor(x, "x", min_ndim=2, allow_integer=True, like=self.keys)
        check_dim(q, -1, self.keys.shape[-1], "x", "key size d (as stored)")
        return q

    def scores(self, x: Any) -> torch.Tensor:
        """Pre-separation match ``S(x, K)``: ``x [..., Q, d] -> [..., Q, S]`` (``K x`` for dot)."""
        q = self._check_read(x)
        return self.similarity(q, self.keys)

    def activity(self, x: Any) -> torch.Tensor:
        """Hidden slot activity ``a = sigma(beta S(x, K))``: ``[..., Q, d] -> [..., Q, S]``."""
        return self.separation(self.scores(x))

    def read(self, x: Any) -> torch.Tensor:
        """Retrieved value ``v_hat = a V``: ``x [..., Q, d] -> [..., Q, d_v]`` (science 1.3)."""
        a = self.activity(x)
        assert self.values is not None
        return a @ self.values

    def recall(self, x: Any) -> torch.Tensor:
        """``sign(v_hat)`` for +-1 data: ``[..., Q, d] -> [..., Q, d_v]`` (0 where v_hat = 0)."""
        return torch.sign(self.read(x))

    def __repr__(self) -> str:
        return (
            f"ThreeFactorSlotMemory(n_slots={self.n_slots}, selection={self.selection!r}, "
            f"p={self.p}, beta={self.beta}, key_lr={self.key_lr}, value_lr={self.value_lr}, "
            f"value_gate={self.value_gate!r})"
        )
