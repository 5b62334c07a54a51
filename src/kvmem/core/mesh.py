"""MESH: key-value memory on a fixed scaffold (Sharma, Chandra & Fiete 2022; docs/science.md 1.7).

Memory Scaffold with Heteroassociation. The keys are not learned: a fixed *scaffold*
supplies well-separated internal states, and only the maps between the scaffold and the
content are learned. Three layers (row vectors; one network per leading index):

- label layer ``l``: k-hot codes over ``n_label`` units, all ``S = C(n_label, k)`` of them
  scaffold states (18 units, 3-hot: 816 states);
- hidden layer ``h``: a *fixed* random projection of the label, thresholded,

      h = sign(l W_HL),              W_HL [n_label, n_hidden] ~ N(0, 1), fixed;

- the hidden layer maps back onto the label layer through weights learned once, before
  any memory, over all scaffold states, so a noisy hidden state snaps to the nearest
  scaffold state (error correction: the scaffold's S states are fixed points),

      l = top_k(h W_LH),             W_LH = H_all^+ L_all  (pseudo-inverse rule);

- heteroassociation between the hidden layer and the content (key / feature layer in,
  value layer out), learned from the stored memories,

      W_HK = K^+ H_K    (key -> hidden),     W_VH = H_K^+ V    (hidden -> value)

  where memory i is given the scaffold state ``order[i mod S]`` (a random order of the
  states, fixed per network) and ``H_K`` holds those states' hidden patterns.

Recall from a key cue q (clean or noisy): hidden estimate, clean-up through the label
layer, back to the hidden layer, out to the value layer,

    h0 = sign(q W_HK),  l = top_k(h0 W_LH),  h = sign(l W_HL),  v = sign(h W_VH).

The readout is exact for every stored memory while the hidden patterns of the stored
states are linearly independent (K <= n_hidden) and the cue finds its state; past that
the least-squares map shares the hidden layer among more memories and recall degrades
gradually (the memory continuum), with no cliff. Memories past S reuse scaffold states.

Learning rules (``rule``): ``"pinv"`` recomputes the exact pseudo-inverse maps from the
stored pairs (:func:`kvmem.core.pinv_hopfield.pinv_solve`); ``"online"`` is its
Hebbian-learnable, incremental form (Tapson & van Schaik 2013, recursive least squares):
for a block of inputs A and targets B,

    G = theta A^T (I + A theta A^T)^{-1},   W <- W + G (B - A W),   theta <- theta - G A theta

(an outer product of a presynaptic term and the postsynaptic error), from ``W = 0``,
``theta = I / ridge``; it converges to ``(A^T A + ridge I)^{-1} A^T B``, the pseudo-inverse
solution as ``ridge -> 0``, without storing the memories.

Usable where a ``SlotMemory`` is: ``write(keys, values)`` appends memories
``[..., P, d_k]``, ``[..., P, d_v]`` (``values`` omitted: autoassociative, the key is its own
value), ``read(queries [..., Q, d_k]) -> [..., Q, d_v]``. Leading dimensions index
independent networks, each with its own random projection and state order (drawn from
``seed`` on the CPU at the first write, so a seed gives the same networks on any device).
All maps are computed in float64.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from kvmem.core.pinv_hopfield import pinv_solve
from kvmem.core.validation import (
    as_float_tensor,
    check_dim,
    check_int_at_least,
    check_positive,
    shape_str,
)

__all__ = ["MESH", "RULES", "label_states"]

#: Learning rules of the heteroassociative maps.
RULES: tuple[str, ...] = ("pinv", "online")


def label_states(n_label: int, k: int) -> torch.Tensor:
    """All k-hot codes over ``n_label`` units, lexicographic, ``[C(n_label, k), n_label]``
    (float64 0/1)."""
    combos = torch.tensor(list(itertools.combinations(range(n_label), k)), dtype=torch.int64)
    out = torch.zeros(combos.shape[0], n_label, dtype=torch.float64)
    return out.scatter_(1, combos, 1.0)


def _rls_update(
    w: torch.Tensor, theta: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block recursive-least-squares step (the online pseudo-inverse rule, module docstring).

    ``w [..., n, m]``, ``theta [..., n, n]``, inputs ``a [..., P, n]``, targets ``b [..., P, m]``.
    A block of P rows gives the same result as P one-row steps; blocks longer than n rows
    are taken n rows at a time, so the solve is at most n x n.
    """
    n = a.shape[-1]
    if a.shape[-2] > n:  # a loop over blocks of n memories, each one batched step
        for start in range(0, a.shape[-2], n):
            w, theta = _rls_update(
                w, theta, a[..., start : start + n, :], b[..., start : start + n, :]
            )
        return w, theta
    ta = theta @ a.transpose(-1, -2)  # [..., n, P]
    s = torch.eye(a.shape[-2], dtype=a.dtype, device=a.device) + a @ ta
    gain = torch.linalg.solve(s, ta.transpose(-1, -2)).transpose(-1, -2)  # S symmetric
    w = w + gain @ (b - a @ w)
    theta = theta - gain @ ta.transpose(-1, -2)
    return w, 0.5 * (theta + theta.transpose(-1, -2))


class _ScaffoldMemory:
    """A fixed scaffold of states, a fixed random projection to a hidden layer, a learned
    clean-up map back, and learned heteroassociation between hidden layer and content.

    Subclasses define the scaffold (``_states``), the hidden nonlinearity (``_hidden``),
    the cue's hidden estimate (``_encode``) and the clean-up (``_cleanup``).
    """

    def __init__(
        self,
        n_hidden: int,
        *,
        rule: str = "pinv",
        ridge: float = 1e-6,
        binarize: bool = True,
        seed: int = 0,
    ) -> None:
        self.n_hidden = check_int_at_least(n_hidden, 1, "n_hidden")
        if rule not in RULES:
            raise ValueError(f"rule: expected one of {', '.join(map(repr, RULES))}, got {rule!r}")
        self.rule = rule
        self.ridge = check_positive(ridge, "ridge")
        self.binarize = bool(binarize)
        self.seed = check_int_at_least(seed, 0, "seed")
        self._states_cache: torch.Tensor | None = None
        self.clear()

    # ------------------------------------------------------------------ the scaffold
    def _states(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _hidden(self, pre: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, pre: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _cleanup(self, drive: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _projection_scale(self) -> float:
        return 1.0

    @property
    def scaffold_states(self) -> torch.Tensor:
        """All scaffold states, ``[S, d_scaffold]`` (float64, CPU)."""
        if self._states_cache is None:
            self._states_cache = self._states()
        return self._states_cache

    @property
    def n_states(self) -> int:
        """S, the number of scaffold states."""
        return int(self.scaffold_states.shape[0])

    def clear(self) -> None:
        """Forget the networks and every memory (the next write draws fresh networks)."""
        self._proj: torch.Tensor | None = None  # fixed W [..., d_s, n_h]
        self._order: torch.Tensor | None = None  # state order [..., S]
        self._back: torch.Tensor | None = None  # learned hidden -> scaffold [..., n_h, d_s]
        self._count = 0
        self._keys: torch.Tensor | None = None  # pinv rule: stored pairs and hidden targets
        self._values: torch.Tensor | None = None
        self._targets: torch.Tensor | None = None
        self._w_in: torch.Tensor | None = None  # key -> hidden, [..., d_k, n_h]
        self._w_out: torch.Tensor | None = None  # hidden -> value, [..., n_h, d_v]
        self._theta_in: torch.Tensor | None = None  # online rule: inverse correlations
        self._theta_out: torch.Tensor | None = None
        self._dtype: torch.dtype | None = None

    def _build(self, batch: torch.Size, device: torch.device) -> None:
        """Draw the fixed projection and state order of each network and learn the clean-up."""
        states = self.scaffold_states
        gen = torch.Generator().manual_seed(self.seed)
        proj = torch.randn(
            (*batch, states.shape[1], self.n_hidden), generator=gen, dtype=torch.float64
        )
        proj = proj * self._projection_scale()
        order = torch.rand((*batch, states.shape[0]), generator=gen, dtype=torch.float64)
        self._proj = proj.to(device)
        self._order = order.argsort(-1).to(device)
        st = states.to(device)
        h_all = self._hidden(st @ self._proj)  # [..., S, n_h]
        self._back = self._fit(h_all, st.expand(*batch, *st.shape))

    def _fit(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The clean-up map ``a -> b``, learned once over all scaffold states before any
        memory (part of the fixed scaffold): the exact pseudo-inverse rule."""
        return pinv_solve(a, b)

    def hidden_of_states(self, states: torch.Tensor) -> torch.Tensor:
        """Hidden patterns ``[..., P, n_h]`` of scaffold vectors ``states [..., P, d_s]``."""
        self._check_built()
        assert self._proj is not None
        return self._hidden(states.to(self._proj) @ self._proj)

    def _check_built(self) -> None:
        if self._proj is None:
            raise ValueError("memory is empty: write(keys, values) before reading")

    @property
    def n_memories(self) -> int:
        """Memories written so far (per network)."""
        return self._count

    @property
    def slots(self) -> torch.Tensor:
        """Scaffold state index of every stored memory, ``[..., K]`` (int64)."""
        self._check_built()
        assert self._order is not None
        idx = torch.arange(self._count, device=self._order.device) % self.n_states
        return self._order[..., idx]

    # ------------------------------------------------------------------ write / read
    def write(self, keys: Any, values: Any = None) -> None:
        """Append memories: ``keys [..., P, d_k]``, ``values [..., P, d_v]`` (``None``:
        ``values = keys``). Memory i (counting every write) takes scaffold state
        ``order[i mod S]``; the first write fixes the networks' batch shape and device."""
        k = as_float_tensor(keys, "keys", min_ndim=2, allow_integer=True)
        v = k if values is None else as_float_tensor(values, "values", min_ndim=2, like=k)
        if v.shape[:-1] != k.shape[:-1]:
            raise ValueError(
                f"values: expected shape [{', '.join(map(str, k.shape[:-1]))}, d_v] (the keys' "
                f"shape without the last axis), got shape {shape_str(v.shape)}"
            )
        if self._proj is None:
            self._build(k.shape[:-2], k.device)
            self._dtype = v.dtype
        else:
            assert self._proj is not None
            if k.shape[:-2] != self._proj.shape[:-2]:
                raise ValueError(
                    f"keys: expected batch shape {shape_str(self._proj.shape[:-2])} (as built "
                    f"by the first write), got shape {shape_str(k.shape)}"
                )
            d_k, d_v = self._dims()
            check_dim(k, -1, d_k, "keys", "key size d_k (as written before)")
            check_dim(v, -1, d_v, "values", "value size d_v (as written before)")
        assert self._order is not None and self._proj is not None
        p = k.shape[-2]
        idx = (self._count + torch.arange(p, device=self._order.device)) % self.n_states
        slot = self._order[..., idx]  # [..., P]
        states = self.scaffold_states.to(self._proj)[slot]  # [..., P, d_s]
        h = self._hidden(states @ self._proj)
        k64, v64 = k.to(self._proj), v.to(self._proj)
        self._count += p
        if self.rule == "pinv":
            cat = torch.cat
            self._keys = k64 if self._keys is None else cat([self._keys, k64], -2)
            self._values = v64 if self._values is None else cat([self._values, v64], -2)
            self._targets = h if self._targets is None else cat([self._targets, h], -2)
            self._w_in = self._w_out = None  # recomputed at the next read
            return
        if self._w_in is None:
            batch = k.shape[:-2]
            eye_k = torch.eye(k.shape[-1], dtype=torch.float64, device=k.device)
            eye_h = torch.eye(self.n_hidden, dtype=torch.float64, device=k.device)
            self._theta_in = (eye_k / self.ridge).expand(*batch, -1, -1)
            self._theta_out = (eye_h / self.ridge).expand(*batch, -1, -1)
            self._w_in = k64.new_zeros(*batch, k.shape[-1], self.n_hidden)
            self._w_out = k64.new_zeros(*batch, self.n_hidden, v.shape[-1])
        assert self._theta_in is not None and self._theta_out is not None
        assert self._w_out is not None
        self._w_in, self._theta_in = _rls_update(self._w_in, self._theta_in, k64, h)
        self._w_out, self._theta_out = _rls_update(self._w_out, self._theta_out, h, v64)

    def _dims(self) -> tuple[int, int]:
        if self._keys is not None and self._values is not None:
            return int(self._keys.shape[-1]), int(self._values.shape[-1])
        assert self._w_in is not None and self._w_out is not None
        return int(self._w_in.shape[-2]), int(self._w_out.shape[-1])

    @property
    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned heteroassociation ``(W_in [..., d_k, n_h], W_out [..., n_h, d_v])``."""
        self._check_built()
        if self._w_in is None or self._w_out is None:
            assert self._keys is not None and self._targets is not None
            assert self._values is not None
            self._w_in = pinv_solve(self._keys, self._targets)
            self._w_out = pinv_solve(self._targets, self._values)
        return self._w_in, self._w_out

    @property
    def cleanup_weights(self) -> torch.Tensor:
        """The learned hidden -> scaffold map, ``[..., n_h, d_s]``."""
        self._check_built()
        assert self._back is not None
        return self._back

    def read(
        self, queries: Any, return_info: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Recall from cues ``queries [..., Q, d_k]``: returns values ``[..., Q, d_v]``
        (sign of the readout if ``binarize``, 0 on a tie), in the values' dtype.

        With ``return_info`` also ``{"scaffold": [..., Q, d_s], "hidden": [..., Q, n_h]}``,
        the cleaned-up scaffold state and its hidden pattern.
        """
        w_in, w_out = self.weights
        assert self._back is not None and self._proj is not None and self._dtype is not None
        q = as_float_tensor(queries, "queries", min_ndim=2, like=w_in)
        check_dim(q, -1, w_in.shape[-2], "queries", "key size d_k (as written)")
        h0 = self._encode(q @ w_in)
        scaffold = self._cleanup(h0 @ self._back)
        h = self._hidden(scaffold @ self._proj)
        out = h @ w_out
        if self.binarize:
            out = torch.sign(out)
        out = out.to(self._dtype)
        if return_info:
            return out, {"scaffold": scaffold, "hidden": h}
        return out

    def read_state(self, states: Any) -> torch.Tensor:
        """Values recalled from scaffold states directly, ``[..., P, d_s] -> [..., P, d_v]``
        (e.g. ``scaffold_states[slots]``: what each memory's own key state returns)."""
        _, w_out = self.weights
        assert self._dtype is not None
        out = self.hidden_of_states(torch.as_tensor(states)) @ w_out
        return (torch.sign(out) if self.binarize else out).to(self._dtype)

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: projection, state order, clean-up map, and the stored pairs
        (``pinv``) or the online weights and inverse correlations (``online``)."""
        if self._proj is None:
            return {}
        assert self._order is not None and self._back is not None
        out = {
            "projection": self._proj,
            "order": self._order,
            "cleanup": self._back,
            "count": torch.tensor(self._count, dtype=torch.int64),
        }
        names = ("keys", "values", "targets", "w_in", "w_out", "theta_in", "theta_out")
        for name in names:
            t = getattr(self, f"_{name}")
            if t is not None and (self.rule == "online") == (name.startswith(("w_", "theta"))):
                out[name] = t.contiguous()
        return out

    def state_config(self) -> dict[str, Any]:  # pragma: no cover - per subclass
        raise NotImplementedError

    def _base_config(self) -> dict[str, Any]:
        return {
            "n_hidden": self.n_hidden,
            "rule": self.rule,
            "ridge": self.ridge,
            "binarize": self.binarize,
            "seed": self.seed,
            "dtype": None if self._dtype is None else str(self._dtype).removeprefix("torch."),
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
        """Rebuild a memory from ``state_config()`` and ``state_tensors()``."""
        cfg = dict(config)
        dtype = cfg.pop("dtype", None)
        mem = cls(**cfg)
        if tensors:
            mem._proj = tensors["projection"].to(torch.float64)
            mem._order = tensors["order"].to(torch.int64)
            mem._back = tensors["cleanup"].to(torch.float64)
            mem._count = int(tensors["count"])
            for name in ("keys", "values", "targets", "w_in", "w_out", "theta_in", "theta_out"):
                if name in tensors:
                    setattr(mem, f"_{name}", tensors[name].to(torch.float64))
            mem._dtype = getattr(torch, dtype) if dtype else torch.get_default_dtype()
        return mem


class MESH(_ScaffoldMemory):
    """MESH memory (module docstring): k-hot label scaffold, fixed random hidden projection.

    Args:
        n_label: label units (default 18).
        k: active label units per state (default 3; ``C(18, 3) = 816`` states).
        n_hidden: hidden units (default 300).
        rule: ``"pinv"`` (exact pseudo-inverse) or ``"online"`` (its incremental form).
        ridge: ``online`` only: the initial inverse correlation is ``I / ridge``.
        binarize: return ``sign`` of the value readout (for +-1 values; default).
        seed: seed of the fixed projections and state orders.
    """

    def __init__(
        self,
        n_label: int = 18,
        k: int = 3,
        n_hidden: int = 300,
        *,
        rule: str = "pinv",
        ridge: float = 1e-6,
        binarize: bool = True,
        seed: int = 0,
    ) -> None:
        self.n_label = check_int_at_least(n_label, 2, "n_label")
        self.k = check_int_at_least(k, 1, "k")
        if self.k >= self.n_label:
            raise ValueError(f"k: expected an integer in [1, n_label - 1], got {k}")
        if math.comb(self.n_label, self.k) > 10**6:
            raise ValueError(
                f"n_label, k: C({n_label}, {k}) = {math.comb(n_label, k)} label states is "
                "more than the 10**6 this implementation enumerates"
            )
        super().__init__(n_hidden, rule=rule, ridge=ridge, binarize=binarize, seed=seed)

    def _states(self) -> torch.Tensor:
        return label_states(self.n_label, self.k)

    def _hidden(self, pre: torch.Tensor) -> torch.Tensor:
        # h = sign(l W_HL), with 0 (a measure-zero tie) sent to +1 so h is always +-1
        return torch.where(pre >= 0, 1.0, -1.0).to(pre.dtype)

    _encode = _hidden

    def _cleanup(self, drive: torch.Tensor) -> torch.Tensor:
        top = drive.topk(self.k, dim=-1).indices
        return torch.zeros_like(drive).scatter_(-1, top, 1.0)

    def state_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (plus the output dtype)."""
        return {"n_label": self.n_label, "k": self.k, **self._base_config()}

    @property
    def n_synapses(self) -> int:
        """Synapses of one network, fixed and learned: ``2 n_label n_hidden + n_hidden (d_k +
        d_v)`` (projection, clean-up, key -> hidden, hidden -> value); needs a write."""
        d_k, d_v = self._dims()
        return self.n_label * self.n_hidden * 2 + self.n_hidden * (d_k + d_v)

    def __repr__(self) -> str:
        return (
            f"MESH(n_label={self.n_label}, k={self.k}, n_hidden={self.n_hidden}, "
            f"rule={self.rule!r}, n_states={self.n_states})"
        )
