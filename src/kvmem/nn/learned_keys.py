"""Keys learned by gradient descent to make items discriminable (docs/science.md 1.5, 3.1).

The paper's Figure 2 (docs/science.md 3.1) optimises a free key per memory so that softmax over
key-query scores picks the right memory. Free keys cannot key a *new* query, though: a
corrupted cue must go through the same map as the items. So here the learned object is a
linear key map ``phi(x) = normalize((x - mu) W)``, ``W`` ``[D, d_k]`` (a slowly learned
projection ``k = x W_k``, docs/science.md 1.5), trained so that a corrupted copy of item ``i``
retrieves item ``i`` among the training items:

    L(W) = -1/N sum_i log softmax_j( beta * phi(q_i) . phi(x_j) )_i,   q_i = corrupt(x_i)

(cross-entropy of the softmax read's attention on the right slot; the keys and queries share
``W``, and the gradient flows through both). ``corrupt`` is a function the learner calls
itself, with fresh randomness at every step: **the learner sees only the items it is
fitted on and its own corrupted copies of them**. What the items are is the caller's
choice (the keys-vs-values experiment fits on a disjoint set of "experience" images by
default, so the map never sees the stored items or the test cues; see there).

``W`` starts at the PCA-whitening map of the training items (top ``d_k`` components,
:class:`kvmem.core.key_maps.WhitenedKeys` with ``kind="pca"``) or at a random Gaussian
projection (``init="random"``), and is trained with full-batch Adam for ``steps`` steps.
The fit is batched: items ``[..., N, D]`` train one independent map per leading index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from kvmem.core.key_maps import LinearKeys, WhitenedKeys
from kvmem.core.validation import as_float_tensor, check_int_at_least, check_positive, shape_str

__all__ = ["retrieval_loss", "LearnedLinearKeys", "Corruption"]

#: ``corrupt(items [..., N, D], generator) -> queries [..., N, D]``
Corruption = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def retrieval_loss(
    weight: torch.Tensor,
    mean: torch.Tensor | None,
    items: torch.Tensor,
    queries: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Softmax-retrieval cross-entropy of a linear key map, per memory.

    ``weight`` ``[..., D, d_k]``, ``mean`` ``[..., D]`` or ``None``, ``items`` and
    ``queries`` ``[..., N, D]`` (query ``i`` asks for item ``i``). Keys
    ``k = normalize((x - mu) W)``; returns ``[...]``:
    ``-mean_i log softmax_j(beta k(q_i) . k(x_j))_i`` (0 = every query retrieves its item
    with certainty; ``log N`` = chance).
    """
    if mean is not None:
        items = items - mean.unsqueeze(-2)
        queries = queries - mean.unsqueeze(-2)
    k = torch.nn.functional.normalize(items @ weight, dim=-1)
    q = torch.nn.functional.normalize(queries @ weight, dim=-1)
    logits = beta * (q @ k.transpose(-1, -2))  # [..., N, N]
    logp = torch.log_softmax(logits, dim=-1)
    return -torch.diagonal(logp, dim1=-2, dim2=-1).mean(-1)


class LearnedLinearKeys(LinearKeys):
    """A linear key map fitted by gradient descent on :func:`retrieval_loss`.

    ``LearnedLinearKeys(corrupt, d_k=64, steps=150, lr=0.01, beta=20.0)``; ``fit(items)``
    trains ``W`` (see the module docstring) and then maps like :class:`LinearKeys`.
    ``corrupt(items, generator)`` makes the training queries (fresh randomness each step,
    drawn from a generator seeded with ``seed``). After ``fit``: ``loss_history`` (one
    mean loss per step), and ``loss_initial`` / ``loss_final`` ``[...]``: the loss of the
    initial and the trained map on one fixed, separately drawn set of corrupted copies of
    the training items (so the two are comparable).
    """

    def __init__(
        self,
        corrupt: Corruption,
        *,
        d_k: int = 64,
        steps: int = 150,
        lr: float = 0.01,
        beta: float = 20.0,
        init: Literal["pca", "random"] = "pca",
        shrinkage: float = 1.0,
        seed: int = 0,
    ) -> None:
        if not callable(corrupt):
            raise TypeError(f"corrupt: expected a callable, got {type(corrupt).__name__}")
        self.corrupt = corrupt
        self.d_k_requested = check_int_at_least(d_k, 1, "d_k")
        self.steps = check_int_at_least(steps, 0, "steps")
        self.lr = check_positive(lr, "lr")
        self.beta = check_positive(beta, "beta")
        if init not in ("pca", "random"):
            raise ValueError(f"init: expected 'pca' or 'random', got {init!r}")
        self.init = init
        self.shrinkage = float(shrinkage)
        self.seed = check_int_at_least(seed, 0, "seed")
        self.normalize = True
        self.weight = None  # type: ignore[assignment]
        self.mean = None
        self.d_in = None
        self.loss_history: list[float] = []
        self.loss_initial: torch.Tensor | None = None
        self.loss_final: torch.Tensor | None = None

    def fit(self, items: Any) -> LearnedLinearKeys:
        """Train ``W`` on ``items`` ``[..., N, D]`` (N >= 2) and their corrupted copies."""
        x = as_float_tensor(items, "items", min_ndim=2, allow_integer=True)
        if x.shape[-2] < 2:
            raise ValueError(
                f"items: expected at least two items to discriminate (shape [..., N >= 2, D]), "
                f"got shape {shape_str(x.shape)}"
            )
        d = int(x.shape[-1])
        gen = torch.Generator().manual_seed(self.seed)
        mu = x.mean(dim=-2)
        if self.init == "pca":
            pca = WhitenedKeys("pca", shrinkage=self.shrinkage, normalize=False).fit(x)
            assert pca.weight is not None
            w0 = pca.weight[..., : self.d_k_requested]
        else:
            w0 = torch.randn(
                (*x.shape[:-2], d, self.d_k_requested), generator=gen, dtype=torch.float64
            ).to(device=x.device, dtype=x.dtype) / math.sqrt(d)
        # fixed evaluation queries, drawn before (and apart from) the training queries
        eval_queries = self._corrupt(x, gen)
        with torch.no_grad():
            self.loss_initial = retrieval_loss(w0, mu, x, eval_queries, self.beta)
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        history: list[float] = []
        for _ in range(self.steps):
            q = self._corrupt(x, gen)
            loss = retrieval_loss(w, mu, x, q, self.beta)
            total = loss.sum()  # independent maps per leading index: Adam is elementwise
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            history.append(float(loss.detach().mean()))
        w = w.detach()
        with torch.no_grad():
            self.loss_final = retrieval_loss(w, mu, x, eval_queries, self.beta)
        self.loss_history = history
        self.weight = w
        self.mean = mu
        self.d_in = d
        self._dtype = x.dtype
        self._device = x.device
        return self

    def _corrupt(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        q = self.corrupt(x, gen)
        if not isinstance(q, torch.Tensor) or q.shape != x.shape:
            got = shape_str(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise ValueError(
                f"corrupt: expected queries of the items' shape {shape_str(x.shape)}, got {got}"
            )
        return q.to(dtype=x.dtype)

    def transform(self, x: Any) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("LearnedLinearKeys: call fit(items) before transform")
        return super().transform(x)

    def __repr__(self) -> str:
        return (
            f"LearnedLinearKeys(d_k={self.d_k_requested}, steps={self.steps}, lr={self.lr}, "
            f"beta={self.beta}, init={self.init!r}, seed={self.seed})"
        )
