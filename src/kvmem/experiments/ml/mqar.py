"""Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology"), kvmem layers trained.

**The task.** A sequence shows ``N`` key-value token pairs ``k_1 v_1 k_2 v_2 ... k_N v_N``
(``N`` distinct keys drawn from ``n_keys`` key tokens, values drawn with replacement from
``n_values`` value tokens), then queries every key once, in random order: ``k_pi(1) ...
k_pi(N)``. At each query position the model must output that key's value (cross-entropy
over the value tokens, on query positions only). Accuracy is the percentage of query
tokens answered correctly on held-out sequences (fresh random draws from a separate
generator, never trained on). It is the standard synthetic probe of in-context key-value
recall, and the paper's argument in a trained model (docs/science.md 1.2, 1.3, 1.5): recall
needs the right key to be *discriminable* from the other stored keys.

**Models.** Two blocks over a learned token embedding (``d_model = width``), each block

    u = conv_2(LayerNorm(x))            (causal short convolution, kernel 2: token t sees t-1)
    x = x + LayerNorm(mix(u))           (the kvmem memory layer, causal)
    x = x + MLP(LayerNorm(x))           (width -> 2 width -> width, GELU)

then LayerNorm and a linear read-out over the value tokens. The short convolution is the
one DeltaNet and Zoology's recurrent models use: it puts the key beside its value so a
single mixing layer can write the pair. ``mix`` is the only thing that changes:

- ``attention``: ``kvmem.nn.KeyValueAttention(width, width, causal=True)`` (softmax,
  scaled dot; the dual form, storage grows with the sequence);
- ``hebbian``: ``kvmem.nn.FastWeightMemory(rule="hebbian")``, linear attention / fast
  weights with a learned write strength (primal form, a ``width x width`` state);
- ``delta``: ``FastWeightMemory(rule="delta")``, DeltaNet: the same state, written by
  error correction (docs/science.md 1.3);
- ``hopfield``: ``kvmem.nn.Hopfield(width, causal=True)``, a modern Hopfield retrieval of
  the sequence so far (Ramsauer et al. 2021; ``beta = 1 / sqrt(width)``, one update).

All layers are single-head with ``d_k = d_v = width``, so the recurrent layers' state is
``width x width`` at every width. One model per (layer, width) is trained on a mixture of
the sweep's pair counts (step ``i`` uses ``n_pairs[i mod len]``; ``pairs_per_batch`` pairs
per batch, so the batch is ``pairs_per_batch / N`` sequences) with AdamW and a one-cycle
learning-rate schedule, then tested at each pair count, as Zoology trains on a mixture of
sequence lengths and reports each.

**Published shape** (Arora et al. 2023, Fig. 2 and Sec. 3; no exact numbers are read
from it, the claims below are about the shape): attention solves MQAR at every size;
gated-convolution and linear-attention models fail as the number of pairs grows toward
what their fixed state can hold; DeltaNet (Yang et al. 2024, MQAR figure) holds out
longer than linear attention at the same state size.

**Protocol and how it differs from the paper.** Zoology uses a vocabulary of 8,192
tokens, sequence lengths 64-512 with up to 64 pairs, widths 64-512, two blocks,
100,000 training sequences for up to 64 epochs, and a learning-rate sweep per cell (best
reported). That is GPU-hours; the default here is the largest protocol that trains in
about a minute or two on one CPU core: width 64 only, one block, 128 key and 128 value
tokens, pairs 4-64, 300 AdamW steps of ``pairs_per_batch = 512`` pairs each, one
learning rate (``lr = 0.01``) for every layer. One block suffices because the short
convolution does the job of Zoology's first layer (bringing the key beside its value).
``lr`` and the LayerNorm on the mixer output were fixed once on a pilot run of the
Hebbian and delta models at width 64 (lr 1e-3, 3e-3, 1e-2, with and without that norm):
only lr 1e-2 with the norm got linear attention off its initial plateau within this
budget; attention learns at 3e-3 and 1e-2. At width 32, and with fewer steps or fewer
small pair counts in the training mix, the Hebbian and delta models stay at chance (an
optimisation failure, not a capacity limit); the claims are checked on the default. The
paper-sized protocol is reachable with ``--set`` (e.g. ``widths=64,128 n_blocks=2
n_keys=4096 n_values=4096 steps=20000``). Accuracy intervals are 95 % Student-t
intervals over held-out sequences (pooled over ``n_seeds`` training seeds).

**Measured** (default protocol, seed 0; 4 / 8 / 16 / 32 / 64 pairs): attention 100 / 100
/ 99.7 / 99.6 / 99.3 %, Hopfield 100 / 99.9 / 99.8 / 99.7 / 99.2 %, delta rule 100 / 100
/ 99.6 / 93.9 / 68.1 %, Hebbian 96.7 / 95.8 / 94.7 / 83.8 / 55.3 % (seed 1: delta 73.7 %,
Hebbian 64.4 % at 64 pairs). With ``--set widths=128`` (a state twice the largest pair
count) Hebbian reaches 87.9 % and the delta rule 94.6 % at 64 pairs.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from kvmem.experiments.base import (
    Claim,
    ProgressFactory,
    TaskPool,
    charge_to_most_grown,
    default_workers,
    null_progress,
    single_thread,
)
from kvmem.metrics import mean_ci
from kvmem.nn.attention import KeyValueAttention
from kvmem.nn.fast_weights import FastWeightMemory
from kvmem.nn.hopfield_layers import Hopfield
from kvmem.results import Result

__all__ = [
    "NAME",
    "DESCRIPTION",
    "LAYERS",
    "Config",
    "CLAIMS",
    "MQARModel",
    "make_batch",
    "quick",
    "run",
    "plot",
    "estimate_bytes",
]

NAME = "mqar"
DESCRIPTION = (
    "Multi-query associative recall (Arora et al. 2023): attention, linear attention, the "
    "delta rule and Hopfield layers trained end to end, accuracy against number of pairs"
)

LAYERS = ("attention", "hebbian", "delta", "hopfield")


@dataclass(frozen=True)
class Config:
    """MQAR sweep: ``layers`` x ``widths`` models, each tested at every ``n_pairs``.

    ``n_keys`` / ``n_values`` the key and value vocabularies (``n_keys >= max(n_pairs)``:
    keys in a sequence are distinct); ``n_blocks`` blocks per model; ``steps`` training
    steps of ``pairs_per_batch`` key-value pairs; ``lr`` the peak AdamW learning rate
    (one-cycle schedule, ``weight_decay``); ``chunk_size`` the fast-weight layers' chunk;
    ``n_test`` held-out sequences per pair count; ``n_seeds`` training seeds per model.
    """

    seed: int = 0
    layers: tuple[str, ...] = LAYERS
    widths: tuple[int, ...] = (64,)
    n_pairs: tuple[int, ...] = (4, 8, 16, 32, 64)
    n_keys: int = 128
    n_values: int = 128
    n_blocks: int = 1
    steps: int = 300
    pairs_per_batch: int = 512
    lr: float = 0.01
    weight_decay: float = 0.0
    chunk_size: int = 32
    n_test: int = 256
    n_seeds: int = 1

    def __post_init__(self) -> None:
        if not self.layers or any(name not in LAYERS for name in self.layers):
            raise ValueError(f"layers: expected names from {', '.join(LAYERS)}, got {self.layers}")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers: expected distinct names, got {self.layers}")
        if not self.widths or any(w < 2 for w in self.widths):
            raise ValueError(f"widths: expected integers >= 2, got {self.widths}")
        p = self.n_pairs
        if not p or p[0] < 1 or list(p) != sorted(set(p)):
            raise ValueError(f"n_pairs: expected strictly increasing integers >= 1, got {p}")
        if self.n_keys < p[-1]:
            raise ValueError(
                f"n_keys: expected at least max(n_pairs) = {p[-1]} (keys are distinct), "
                f"got {self.n_keys}"
            )
        for name in ("n_values", "n_blocks", "steps", "chunk_size", "n_test", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.pairs_per_batch < p[-1]:
            raise ValueError(
                f"pairs_per_batch: expected at least max(n_pairs) = {p[-1]}, "
                f"got {self.pairs_per_batch}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a finite value > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a finite value >= 0, got {self.weight_decay}")


def quick(config: Config) -> Config:
    """Width 16, pairs 2 and 4, 30 steps: a smoke test (a second; the claims do not apply)."""
    return replace(
        config,
        widths=(16,),
        n_pairs=(2, 4),
        n_keys=16,
        n_values=16,
        n_blocks=1,
        steps=30,
        pairs_per_batch=64,
        n_test=32,
        n_seeds=1,
    )


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float32), keyed by the size field grown most over the default.

    The held-out test batch, ``n_test`` sequences of ``T = 3 max(n_pairs)`` tokens, is the
    peak on the default: its activations (~10 floats per token and unit per block), the
    attention scores and weights ``[n_test, T, T]``, the fast-weight states
    ``[n_test, T / chunk_size, w, w]`` and intra-chunk matrices ``[n_test, T, chunk_size]``.
    Training holds the largest batch's activations with their gradients (~40 floats per
    token and unit per block, ``3 pairs_per_batch`` tokens), its attention ``[B, T, T]``
    and fast-weight states. Models train side by side, one per
    :func:`~kvmem.experiments.base.default_workers` thread (at most one per model), each
    with its own peak. ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    w, t, n_max = max(c.widths), 3 * max(c.n_pairs), max(c.n_pairs)
    chunks = -(-t // c.chunk_size)
    test = 10 * c.n_test * t * w * c.n_blocks + 3 * c.n_test * t * t
    test += 2 * c.n_test * chunks * w * w + 3 * c.n_test * t * c.chunk_size
    train = (40 * 3 * c.pairs_per_batch * w + 27 * c.pairs_per_batch * n_max) * c.n_blocks
    train += 12 * c.pairs_per_batch // c.chunk_size * w * w
    grown = {
        "widths": max(c.widths) / max(d.widths),
        "pairs_per_batch": c.pairs_per_batch / d.pairs_per_batch,
        "n_blocks": c.n_blocks / d.n_blocks,
        "n_test": c.n_test / d.n_test,
        "n_pairs": (n_max / max(d.n_pairs)) ** 2,
        "chunk_size": c.chunk_size / d.chunk_size,
    }
    cells = len(c.layers) * len(c.widths) * c.n_seeds
    in_flight = max(1, min(default_workers(), cells))
    return charge_to_most_grown(grown, 4 * max(test, train) * in_flight)


# ----------------------------------------------------------------------------- the task


def make_batch(
    batch: int, n_pairs: int, n_keys: int, n_values: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` MQAR sequences: tokens ``[batch, 3 n_pairs]`` and targets ``[batch, n_pairs]``.

    Key tokens are ``0 .. n_keys-1`` (distinct within a sequence), value tokens
    ``n_keys .. n_keys+n_values-1``; targets are value indices ``0 .. n_values-1`` of the
    queried keys, in query order (the last ``n_pairs`` positions).
    """
    keys = torch.rand(batch, n_keys, generator=gen).argsort(-1)[:, :n_pairs]
    values = torch.randint(0, n_values, (batch, n_pairs), generator=gen)
    order = torch.rand(batch, n_pairs, generator=gen).argsort(-1)
    context = torch.stack([keys, values + n_keys], dim=-1).reshape(batch, 2 * n_pairs)
    tokens = torch.cat([context, keys.gather(1, order)], dim=1)
    return tokens, values.gather(1, order)


# ----------------------------------------------------------------------------- the model


def _mixer(layer: str, width: int, chunk_size: int) -> nn.Module:
    if layer == "attention":
        return KeyValueAttention(width, width, causal=True)
    if layer == "hopfield":
        return Hopfield(width, causal=True)
    return FastWeightMemory(width, width, rule=layer, chunk_size=chunk_size)


class _Block(nn.Module):
    """Short causal convolution, memory layer, MLP (pre-norm residual; module docstring)."""

    def __init__(self, layer: str, width: int, chunk_size: int) -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(width)
        self.conv = nn.Conv1d(width, width, kernel_size=2)
        self.mix = _mixer(layer, width, chunk_size)
        # The fast-weight read grows with the number of writes; normalising the mixer's
        # output keeps one learning rate usable for every layer and sequence length.
        self.norm_mix = nn.LayerNorm(width)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm_in(x).transpose(1, 2)
        u = self.conv(F.pad(u, (1, 0))).transpose(1, 2)  # causal: left padding only
        x = x + self.norm_mix(self.mix(u))
        return x + self.mlp(self.norm_mlp(x))


class MQARModel(nn.Module):
    """Embedding, ``n_blocks`` blocks with a kvmem mixing layer, read-out over value tokens.

    ``tokens [B, T] -> logits [B, n_query, n_values]`` for the last ``n_query`` positions.
    """

    def __init__(
        self, layer: str, width: int, n_keys: int, n_values: int, n_blocks: int, chunk_size: int
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_keys + n_values, width)
        self.blocks = nn.ModuleList(_Block(layer, width, chunk_size) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_values)

    def forward(self, tokens: torch.Tensor, n_query: int) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, -n_query:]))


def _train_and_test(layer: str, width: int, seed: int, c: Config) -> torch.Tensor:
    """Train one model; per-sequence held-out accuracy (%) ``[len(n_pairs), n_test]``."""
    # the initial weights come from torch's global generator, seeded and restored here;
    # the lock keeps models trained side by side (TaskPool) from seeding it at once
    with _GLOBAL_RNG, torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MQARModel(layer, width, c.n_keys, c.n_values, c.n_blocks, c.chunk_size)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, c.lr, total_steps=c.steps, pct_start=0.1)
    model.train()
    for step in range(c.steps):  # a loop over optimisation steps (sequential by nature)
        n = c.n_pairs[step % len(c.n_pairs)]
        tokens, target = make_batch(c.pairs_per_batch // n, n, c.n_keys, c.n_values, gen)
        logits = model(tokens, n)
        loss = F.cross_entropy(logits.reshape(-1, c.n_values), target.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    test_gen = torch.Generator().manual_seed(10_000 + seed)  # held-out: a different stream
    acc = []
    with torch.no_grad():
        for n in c.n_pairs:
            tokens, target = make_batch(c.n_test, n, c.n_keys, c.n_values, test_gen)
            correct = model(tokens, n).argmax(-1) == target
            acc.append(100.0 * correct.double().mean(-1))
    return torch.stack(acc)


_GLOBAL_RNG = threading.Lock()


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Train every (layer, width, seed) model; accuracy per pair count with 95 % intervals.

    The models are independent (their own seeds and data streams), so they train side by
    side on as many threads as torch is allowed (:class:`~kvmem.experiments.base.TaskPool`,
    each on one intra-op thread: the same numbers as one after another).
    """
    # (the pool is sized before single_thread: by the threads the user allows)
    with TaskPool() as pool, single_thread():
        return _run(config, progress, pool)


def _run(config: Config, progress: ProgressFactory, pool: TaskPool) -> Result:
    series: dict[str, list] = {"n_pairs": [int(n) for n in config.n_pairs]}
    metrics: dict[str, float] = {}
    cells = list(itertools.product(config.layers, config.widths, range(config.n_seeds)))
    futures: list[Any] = []
    pieces = (
        (
            lambda layer=layer, width=width, s=s: _train_and_test(
                layer, width, config.seed + 1000 * s, config
            )
        )
        for layer, width, s in cells
    )
    for _ in progress(pool.stream(pieces, futures), total=len(cells), desc="mqar models"):
        pass
    per_model: dict[tuple[str, int], list[torch.Tensor]] = {}
    for (layer, width, _), fut in zip(cells, futures, strict=True):
        per_model.setdefault((layer, width), []).append(fut.result())
    for (layer, width), accs in per_model.items():
        samples = torch.cat(accs, dim=1)  # [n_pairs, n_seeds * n_test]
        mean, ci = mean_ci(samples, dim=1)
        key = f"accuracy_{layer}_d{width}"
        series[key], series[f"{key}_ci"] = mean, ci
        metrics[f"{key}_mean"] = float(samples.mean())
        metrics[f"{key}_at_{config.n_pairs[-1]}"] = float(mean[-1])
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure

_COLORS = {
    "attention": "tab:blue",
    "hebbian": "tab:red",
    "delta": "tab:green",
    "hopfield": "tab:purple",
}
# Attention and Hopfield lines overlap (both near 100 %): dashes keep both visible.
_STYLES = {"attention": "-o", "hebbian": "-s", "delta": "-^", "hopfield": "--x"}
_LABELS = {
    "attention": "softmax attention",
    "hebbian": "Hebbian fast weights (linear attention)",
    "delta": "delta rule (DeltaNet)",
    "hopfield": "modern Hopfield",
}


def _widths(result: Result) -> list[int]:
    out = set()
    for key in result.series:
        if key.startswith("accuracy_") and not key.endswith("_ci"):
            out.add(int(key.rsplit("_d", 1)[1]))
    return sorted(out)


def plot(result: Result) -> Figure:
    """One panel per width: held-out accuracy against number of pairs, one line per layer."""
    s = result.series
    widths = _widths(result)
    fig = Figure(figsize=(4.6 * max(1, len(widths)), 4.2), layout="constrained")
    axes = fig.subplots(1, max(1, len(widths)), sharey=True, squeeze=False)[0]
    x = s["n_pairs"]
    for ax, width in zip(axes, widths, strict=False):
        for layer in LAYERS:
            key = f"accuracy_{layer}_d{width}"
            if key not in s:
                continue
            ax.plot(x, s[key], _STYLES[layer], color=_COLORS[layer], ms=4, label=_LABELS[layer])
            lo = [p[0] for p in s[f"{key}_ci"]]
            hi = [p[1] for p in s[f"{key}_ci"]]
            ax.fill_between(x, lo, hi, color=_COLORS[layer], alpha=0.2, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(n) for n in x])
        ax.set_xlabel("key-value pairs in context")
        ax.set_title(f"d_model = {width} (state {width} x {width})", fontsize=10)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out query accuracy (%)")
    axes[0].legend(fontsize=7, loc="lower left")
    return fig


# ----------------------------------------------------------------------------- claims


def _curve(r: Result, layer: str, width: int) -> list[float]:
    return r.series[f"accuracy_{layer}_d{width}"]


def _sweep(r: Result) -> list[int]:
    """The widths of a run whose sweep reaches 32 pairs (the claims are about that range)."""
    if r.series["n_pairs"][-1] < 32 or r.series["n_pairs"][0] > 8:
        raise KeyError("n_pairs")
    return _widths(r)


def _filled(r: Result) -> list[int]:
    """Widths whose ``width x width`` state the largest pair count reaches (pairs >= width)."""
    widths = [w for w in _sweep(r) if w <= r.series["n_pairs"][-1]]
    if not widths:
        raise KeyError("widths")  # no state is filled: the capacity claims do not apply
    return widths


def _two_widths(r: Result) -> list[int]:
    widths = _sweep(r)
    if len(widths) < 2:
        raise KeyError("widths")  # one width: the claim does not apply
    return widths


#: The published shape (Arora et al. 2023; Yang et al. 2024), checked on every run.
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "softmax attention solves MQAR at every number of pairs and width (>= 90 %)",
        lambda r: all(min(_curve(r, "attention", w)) >= 90.0 for w in _sweep(r)),
    ),
    Claim(
        "Hebbian linear attention fails as the pairs approach its state size (at every width "
        "whose width x width state the most pairs fill, its accuracy there is at least 20 "
        "points below its accuracy at the fewest pairs)",
        lambda r: all(
            _curve(r, "hebbian", w)[-1] <= _curve(r, "hebbian", w)[0] - 20.0 for w in _filled(r)
        ),
    ),
    Claim(
        "the delta rule holds out longer than Hebbian linear attention at the same state size "
        "(more than 5 points higher at the most pairs, at every width those pairs fill)",
        lambda r: all(
            _curve(r, "delta", w)[-1] > _curve(r, "hebbian", w)[-1] + 5.0 for w in _filled(r)
        ),
    ),
    Claim(
        "a wider state holds more pairs: Hebbian accuracy at the most pairs grows with width",
        lambda r: all(
            _curve(r, "hebbian", b)[-1] >= _curve(r, "hebbian", a)[-1]
            for a, b in itertools.pairwise(_two_widths(r))
        ),
    ),
    Claim(
        "the modern Hopfield layer (attention with beta = 1/sqrt(d)) solves MQAR like attention "
        "(>= 80 % at every number of pairs and width)",
        lambda r: all(min(_curve(r, "hopfield", w)) >= 80.0 for w in _sweep(r)),
    ),
)
