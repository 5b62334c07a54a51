"""Capacity and the memory cliff (SCIENCE.md 4 item 1; Tyulmankov et al. 2021 protocol).

Protocol (the defaults): N = 40 units; P random +-1 patterns are stored; each stored
pattern is then queried by itself with 60 % of its entries set to 0 (unknown); the bit
accuracy of a read is the fraction of its N units whose sign matches the stored pattern;
the *capacity* is the largest number of stored patterns whose mean bit accuracy is at
least 98 %, reported as a fraction of N.

Models (one batched call per model and load block; no loop over patterns or trials):

- ``hopfield``: classical Hopfield network, Hebbian weights, asynchronous sign dynamics
  to a fixed point (SCIENCE.md 1.4; ``ClassicalHopfield``);
- ``kv_sequential``: three-factor slot memory with S = N slots and sequential (least
  recently used) slot choice (SCIENCE.md 1.3; ``ThreeFactorSlotMemory``);
- ``kv_random``: the same with each slot selected with probability p = 0.1;
- ``kv_random_4_over_n``: the same with p = 4 / N (equal to 0.1 at N = 40; differs at
  N = 20, 80);
- ``modern_hopfield``: xi <- softmax(beta xi X^T) X (SCIENCE.md 1.4; ``ModernHopfield``);
- ``dense_n3``: dense associative memory with F(x) = x^3 (SCIENCE.md 1.4;
  ``DenseAssociativeMemory``, synchronous updates).

For the slot memories the item is its own key and value (``K_i = V_i = x`` in the slot it
took) and the read is ``sign(V softmax(beta K x_cue))``.

Scoring details (chosen so every model is scored alike; see ``kvmem.metrics``):

- An output unit that is exactly 0 is undecided and scores 1/2 (a coin flip). Only a
  slot memory whose item owns no slot *and* that holds nothing else reads exactly 0 (an
  empty memory); the attractor networks never output 0.
- *Chance-corrected* accuracy subtracts what the cue already gives: the cue has 40 %
  correct bits and 60 % unknown ones worth 1/2, a baseline b = 0.7 (measured on the
  actual cues), and ``(acc - b) / (1 - b)`` is 0 for a network that returns its cue
  unchanged and 1 for perfect recall. ``capacity_chance_corrected_<model>`` applies the
  same 98 % criterion on that scale (raw accuracy >= 99.4 %).
- Statistics: at every load at least ``n_seeds`` independent networks are simulated, and
  more at small loads, so that at least ``items_per_load`` stored patterns are queried per
  load (a curve of 20 single networks is too noisy at P = 1, 2, where one failed item moves
  the mean by several percent). The capacity comes from the pooled mean curve; its spread
  (``capacity_std_<model>``) is the standard deviation of the capacities measured on
  ``n_seeds`` disjoint subsets of the networks (subset g = replicates r = g mod n_seeds).
- Networks are grouped into blocks by load (padded to the block's largest load with a
  mask), so a block is one batched store/retrieve call.

Expected results. Sequential slot choice is perfect up to P = S = N, then each new item
overwrites the oldest (graceful forgetting): capacity 1.0 N. The 98 % criterion tolerates
a few lost items (a lost item still scores ~0.5), so on an integer load grid the measured
value is 1.0 N to 1.05 N; the default grid steps by 4 above N, giving 1.0 N. Random slot
choice with probability p keeps an item only if one of its slots has not been
overwritten since: an item followed by m others owns at least one slot with probability
``1 - (1 - p (1 - p)^m)^S``; averaging this over the P items and scoring lost items 0.5-0.6
(a lost item reads a blend of the others: 0.5 from an empty memory, ~0.58 measured at
P = 12) puts the 98 % crossing at P = 5-6 for N = S = 40, p = 0.1 (0.125-0.15 N;
published ~0.16 N).
The classical Hopfield net retrieves from its 40 %-known cue up to about P = 4-5 at
N = 40 (0.10-0.125 N; interpolated ~0.12 N; published ~0.14 N, close to the asymptotic
0.138 N stability limit; finite N and the heavily erased cue lower it; synchronous
dynamics, ``hopfield_dynamics="synchronous"``, gives ~0.125-0.135 N). The n = 3 dense
associative memory holds ~0.9 N from these cues. Modern Hopfield does not fail on the
default grid (up to 2 N): its capacity is censored at the largest load tested
(``capacity_<model>`` equal to the metric ``max_load``, in units of N: a lower bound).

Result. Metrics (capacities as fractions of N): ``capacity_<model>`` (the protocol's
value, from the integer load grid), ``capacity_interp_<model>`` (linear interpolation of
the first crossing), ``capacity_std_<model>`` (spread over subsets),
``capacity_chance_corrected_<model>``, ``cue_accuracy`` (%), ``max_load``. Series:
``load``, ``load_over_n``, ``networks_per_load``, ``accuracy_cue`` and, per model,
``accuracy_<model>``, ``accuracy_std_<model>``, ``accuracy_chance_corrected_<model>``,
``accuracy_chance_corrected_std_<model>`` (all in %).

Speed: each network is queried on at most ``max_queries`` of its stored items (a uniform
random subset, so recency effects of the slot memories are sampled fairly), and the run is
single-threaded (many small tensor operations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from matplotlib.figure import Figure

from kvmem.bio.three_factor import ThreeFactorSlotMemory
from kvmem.core.dense_associative import DenseAssociativeMemory
from kvmem.core.hopfield import ClassicalHopfield
from kvmem.core.modern_hopfield import ModernHopfield
from kvmem.data.patterns import mask_fraction, random_patterns
from kvmem.experiments.base import Claim, ProgressFactory, null_progress, single_thread
from kvmem.metrics import (
    bit_accuracy,
    capacity_from_curve,
    capacity_interpolated,
    chance_corrected,
    cue_accuracy,
)
from kvmem.results import Result

__all__ = [
    "CLAIMS",
    "NAME",
    "DESCRIPTION",
    "PUBLISHED",
    "MODELS",
    "LABELS",
    "Config",
    "default_loads",
    "quick",
    "run",
    "plot",
]

NAME = "capacity"
DESCRIPTION = (
    "Memory cliff: bit accuracy vs load for Hopfield, key-value slot memories "
    "(sequential / random slots), modern Hopfield and dense associative memory"
)

_SOURCE = "Tyulmankov et al. 2021 (SCIENCE.md 4 item 1), N = 40, capacity / N"
#: Published capacities as a fraction of N.
#: They are approximate ("~0.14 N"), so the report accepts +-0.02 N (the third entry).
PUBLISHED: dict[str, tuple[float, str, float]] = {
    "capacity_hopfield": (0.14, _SOURCE, 0.02),
    "capacity_kv_sequential": (1.0, _SOURCE, 0.02),
    "capacity_kv_random": (0.16, _SOURCE + ", p = 0.1", 0.02),
}

MODELS: tuple[str, ...] = (
    "hopfield",
    "kv_sequential",
    "kv_random",
    "kv_random_4_over_n",
    "modern_hopfield",
    "dense_n3",
)

LABELS: dict[str, str] = {
    "hopfield": "classical Hopfield",
    "kv_sequential": "key-value, sequential slots",
    "kv_random": "key-value, random slots (p = 0.1)",
    "kv_random_4_over_n": "key-value, random slots (p = 4/N)",
    "modern_hopfield": "modern Hopfield",
    "dense_n3": "dense associative (n = 3)",
}

_COLORS: dict[str, str] = {
    "hopfield": "tab:red",
    "kv_sequential": "tab:blue",
    "kv_random": "tab:green",
    "kv_random_4_over_n": "tab:olive",
    "modern_hopfield": "tab:purple",
    "dense_n3": "tab:orange",
}


def default_loads(n_units: int) -> tuple[int, ...]:
    """The default load grid for N units: every integer up to N/2, then steps of 2 up to N,
    then steps of 4 up to 2N (40 loads for N = 40: fine where the cliffs of Hopfield and
    random slots are, coarser beyond)."""
    n = int(n_units)
    half = max(1, n // 2)
    loads = set(range(1, half + 1))
    loads.update(range(half, n + 1, 2))
    loads.update(range(n, 2 * n + 1, 4))
    loads.add(n)
    loads.add(2 * n)
    return tuple(sorted(loads))


@dataclass(frozen=True)
class Config:
    """Capacity protocol (SCIENCE.md 4 item 1); defaults are Tyulmankov et al.'s.

    ``loads``: numbers of stored patterns (empty = :func:`default_loads` of ``n_units``).
    ``n_slots``: slots of the key-value memories (``None`` = N). ``kv_beta``: read inverse
    temperature of the slot memories (on raw dot products ``K x``). ``modern_beta`` and
    ``modern_steps``: the modern Hopfield update. ``hopfield_dynamics``: the classical
    network's schedule (asynchronous reaches a fixed point; synchronous may 2-cycle).
    """

    seed: int = 0
    n_units: int = 40
    loads: tuple[int, ...] = ()
    n_seeds: int = 20
    items_per_load: int = 800
    max_queries: int = 32
    mask_frac: float = 0.6
    criterion: float = 0.98
    models: tuple[str, ...] = MODELS
    n_slots: int | None = None
    kv_beta: float = 1.0
    random_p: float = 0.1
    modern_beta: float = 1.0
    modern_steps: int = 3
    hopfield_dynamics: Literal["asynchronous", "synchronous"] = "asynchronous"
    hopfield_max_steps: int = 50
    dense_max_steps: int = 20

    def __post_init__(self) -> None:
        if self.n_units < 2:
            raise ValueError(f"n_units: expected an integer >= 2, got {self.n_units}")
        if any(p < 1 for p in self.loads):
            raise ValueError(f"loads: expected positive integers, got {self.loads}")
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds: expected >= 1, got {self.n_seeds}")
        if self.items_per_load < 0:
            raise ValueError(f"items_per_load: expected >= 0, got {self.items_per_load}")
        if self.max_queries < 0:
            raise ValueError(f"max_queries: expected >= 0 (0 = all), got {self.max_queries}")
        if not 0.0 <= self.mask_frac < 1.0:
            raise ValueError(f"mask_frac: expected a fraction in [0, 1), got {self.mask_frac}")
        if not 0.0 < self.criterion <= 1.0:
            raise ValueError(f"criterion: expected a fraction in (0, 1], got {self.criterion}")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ValueError(
                f"models: expected a non-empty subset of {', '.join(MODELS)}, got {self.models}"
            )
        if self.n_slots is not None and self.n_slots < 1:
            raise ValueError(f"n_slots: expected >= 1 or none, got {self.n_slots}")
        for name in ("kv_beta", "modern_beta"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite value > 0, got {v}")
        if not 0.0 < self.random_p <= 1.0:
            raise ValueError(f"random_p: expected a probability in (0, 1], got {self.random_p}")
        for name in ("modern_steps", "hopfield_max_steps", "dense_max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.hopfield_dynamics not in ("asynchronous", "synchronous"):
            raise ValueError(
                "hopfield_dynamics: expected 'asynchronous' or 'synchronous', "
                f"got {self.hopfield_dynamics!r}"
            )

    def load_grid(self) -> tuple[int, ...]:
        """The loads actually run (sorted, unique)."""
        return tuple(sorted(set(self.loads))) if self.loads else default_loads(self.n_units)


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run by the field that drives it (``check_memory`` refuses too big).

    Each load is run for all seeds at once: weight matrices ``[seeds, N, N]``, stored
    patterns, cues and reads ``[seeds, items, N]`` in float64, for every model in turn.
    """
    n = config.n_units
    loads = config.loads or (4 * n,)
    per_seed = 8 * (n * n + 4 * (max(loads) + config.items_per_load) * n)
    return {"n_seeds": config.n_seeds * per_seed, "n_units": 0}


def quick(config: Config) -> Config:
    """Coarse grid (every third default load), 4 networks per load, 80 items per load."""
    grid = default_loads(config.n_units)
    loads = tuple(sorted(set(grid[::3]) | {grid[-1]}))
    return replace(config, loads=loads, n_seeds=4, items_per_load=80)


# ----------------------------------------------------------------------------- layout


@dataclass
class _Block:
    """Networks whose loads fit one padded tensor ``[B, pad, N]``."""

    pad: int
    load: torch.Tensor  # [B] number of stored patterns of each network
    load_index: torch.Tensor  # [B] index into the load grid
    replicate: torch.Tensor  # [B] replicate number r of the network at its load


#: Smallest padded block: fewer, larger blocks cost fewer dynamics loops.
_MIN_PAD = 8


def _replicates(load: int, n_seeds: int, items_per_load: int, max_queries: int) -> int:
    """Networks simulated at ``load``: at least ``n_seeds``, and enough that at least
    ``items_per_load`` stored items are queried (each network queries
    ``min(load, max_queries)`` of its items; ``max_queries = 0``: all)."""
    per_net = min(load, max_queries) if max_queries else load
    return max(n_seeds, math.ceil(items_per_load / per_net))


def _blocks(
    loads: tuple[int, ...], n_seeds: int, items_per_load: int, max_queries: int
) -> list[_Block]:
    """Networks per load (:func:`_replicates`), grouped by the power of two (at least
    ``_MIN_PAD``) their load rounds up to, so padding wastes at most half of a block
    above that size."""
    groups: dict[int, list[tuple[int, int, int]]] = {}
    top = max(loads)
    for j, p in enumerate(loads):
        reps = _replicates(p, n_seeds, items_per_load, max_queries)
        pad = min(top, max(_MIN_PAD, 1 << (p - 1).bit_length()))
        groups.setdefault(pad, []).extend((p, j, r) for r in range(reps))
    out = []
    for pad in sorted(groups):
        rows = torch.tensor(groups[pad], dtype=torch.int64)
        out.append(_Block(pad, rows[:, 0], rows[:, 1], rows[:, 2]))
    return out


# ----------------------------------------------------------------------------- models


def _read(
    model: str,
    config: Config,
    patterns: torch.Tensor,
    mask: torch.Tensor,
    cues: torch.Tensor,
    seed: int,
) -> torch.Tensor:
    """Store ``patterns [B, P, N]`` (``mask [B, P]``) in one batched memory of kind ``model``
    and read every cue ``[B, Q, N]``; returns the reads ``[B, Q, N]`` (only signs count)."""
    n = patterns.shape[-1]
    if model == "hopfield":
        net = ClassicalHopfield(
            dynamics=config.hopfield_dynamics, max_steps=config.hopfield_max_steps, seed=seed
        )
        return net.store(patterns, mask=mask).retrieve(cues)
    if model.startswith("kv_"):
        p = {"kv_random": config.random_p, "kv_random_4_over_n": min(1.0, 4.0 / n)}.get(model)
        mem = ThreeFactorSlotMemory(
            config.n_slots or n,
            selection="sequential" if p is None else "random",
            p=p if p is not None else 0.1,
            beta=config.kv_beta,
            seed=seed,
        )
        return mem.store(patterns, mu=mask).read(cues)
    if model == "modern_hopfield":
        mh = ModernHopfield(beta=config.modern_beta, max_steps=config.modern_steps)
        return mh.store(patterns, mask=mask).retrieve(cues)
    if model == "dense_n3":
        dam = DenseAssociativeMemory(
            interaction="polynomial", n=3, max_steps=config.dense_max_steps, seed=seed
        )
        return dam.store(patterns, mask=mask).retrieve(cues)
    raise ValueError(f"model: unknown {model!r}")  # pragma: no cover - Config checks


# ----------------------------------------------------------------------------- run


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Accuracy-vs-load curves and capacities of every model in ``config.models``."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    n = config.n_units
    loads = config.load_grid()
    n_loads = len(loads)
    groups = config.n_seeds
    blocks = _blocks(loads, config.n_seeds, config.items_per_load, config.max_queries)
    gen = torch.Generator().manual_seed(config.seed)

    # patterns and cues are shared by every model (a paired comparison)
    data = []
    for b in blocks:
        x = random_patterns(b.pad, n, batch_shape=(len(b.load),), generator=gen)
        m = torch.arange(b.pad) < b.load[:, None]
        x = torch.where(m[..., None], x, torch.ones_like(x))  # padding: any +-1 rows
        # query a uniformly random subset of at most max_queries stored items per network
        n_q = min(b.pad, config.max_queries) if config.max_queries else b.pad
        u = torch.rand(x.shape[:-1], generator=gen).masked_fill(~m, 2.0)
        q_idx = u.argsort(-1)[:, :n_q]  # stored items first, in random order
        q_ok = torch.gather(m, -1, q_idx)
        targets = torch.gather(x, -2, q_idx[..., None].expand(-1, -1, n))
        cues = mask_fraction(targets, config.mask_frac, gen)
        data.append((b, x, m, q_ok, targets, cues))

    def pooled(values: list[tuple[_Block, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-network mean item scores -> (mean per load [L], per group [G, L])."""
        tot = torch.zeros(n_loads, dtype=torch.float64)
        cnt = torch.zeros(n_loads, dtype=torch.float64)
        gtot = torch.zeros(groups, n_loads, dtype=torch.float64)
        gcnt = torch.zeros(groups, n_loads, dtype=torch.float64)
        for b, per_net in values:
            g = b.replicate % groups
            tot.index_add_(0, b.load_index, per_net)
            cnt.index_add_(0, b.load_index, torch.ones_like(per_net))
            flat = g * n_loads + b.load_index
            gtot.view(-1).index_add_(0, flat, per_net)
            gcnt.view(-1).index_add_(0, flat, torch.ones_like(per_net))
        return tot / cnt, gtot / gcnt.clamp(min=1)

    def per_network(score: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        mf = m.to(torch.float64)
        return (score.to(torch.float64) * mf).sum(-1) / mf.sum(-1)

    base_mean, _ = pooled([(b, per_network(cue_accuracy(c, t), q)) for b, _, _, q, t, c in data])

    series: dict[str, list[float] | list[int]] = {
        "load": list(loads),
        "load_over_n": [p / n for p in loads],
        "networks_per_load": [
            _replicates(p, config.n_seeds, config.items_per_load, config.max_queries) for p in loads
        ],
        "accuracy_cue": (100 * base_mean).tolist(),
    }
    metrics: dict[str, float] = {}
    load_t = torch.tensor(loads, dtype=torch.float64)
    for model in progress(config.models, total=len(config.models), desc="models"):
        scores = []
        seed = config.seed * 1009 + 17 * MODELS.index(model)
        for b, x, m, q, t, c in data:
            out = _read(model, config, x, m, c, seed=seed + b.pad)
            scores.append((b, per_network(bit_accuracy(out, t, zero_as_half=True), q)))
        mean, by_group = pooled(scores)
        cc = chance_corrected(mean, base_mean)
        cc_group = chance_corrected(by_group, base_mean)
        crit = config.criterion
        cap = float(capacity_from_curve(load_t, mean, crit)) / n
        metrics[f"capacity_{model}"] = cap
        metrics[f"capacity_interp_{model}"] = float(capacity_interpolated(load_t, mean, crit)) / n
        metrics[f"capacity_std_{model}"] = (
            float((capacity_from_curve(load_t, by_group, crit) / n).std(correction=0))
            if groups > 1
            else 0.0
        )
        metrics[f"capacity_chance_corrected_{model}"] = (
            float(capacity_from_curve(load_t, cc, crit)) / n
        )
        series[f"accuracy_{model}"] = (100 * mean).tolist()
        series[f"accuracy_std_{model}"] = (100 * by_group.std(0, correction=0)).tolist()
        series[f"accuracy_chance_corrected_{model}"] = (100 * cc).tolist()
        series[f"accuracy_chance_corrected_std_{model}"] = (
            100 * cc_group.std(0, correction=0)
        ).tolist()
    metrics["cue_accuracy"] = float(100 * base_mean.mean())
    metrics["max_load"] = loads[-1] / n
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure


def plot(result: Result) -> Figure:
    """(A) bit accuracy vs load / N with the 98 % criterion and published capacities;
    (B) chance-corrected accuracy; (C) measured vs published capacity per model."""
    s, mtr = result.series, result.metrics
    cfg = result.config or {}
    n = int(cfg.get("n_units", 40))
    crit = 100 * float(cfg.get("criterion", 0.98))
    x = torch.tensor(s["load_over_n"], dtype=torch.float64)
    models = [m for m in MODELS if f"accuracy_{m}" in s]

    fig = Figure(figsize=(15, 5.4), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 1.0]})
    for m in models:
        col = _COLORS[m]
        for ax, key in ((ax_a, "accuracy"), (ax_b, "accuracy_chance_corrected")):
            y = torch.tensor(s[f"{key}_{m}"], dtype=torch.float64)
            sd = torch.tensor(s.get(f"{key}_std_{m}", [0.0] * len(y)), dtype=torch.float64)
            ax.plot(x, y, "-", color=col, lw=1.6, label=LABELS[m])
            ax.fill_between(x, y - sd, y + sd, color=col, alpha=0.15, lw=0)
    ax_a.plot(x, s["accuracy_cue"], ":", color="0.4", lw=1.2, label="the cue itself")
    ax_a.axhline(crit, color="k", lw=0.8, ls="--")
    ax_a.text(x.max(), crit, f" {crit:.0f} % criterion", va="bottom", ha="right", fontsize=8)
    shown = False
    for key, (val, *_) in PUBLISHED.items():
        m = key.removeprefix("capacity_")
        if m in models:
            ax_a.axvline(
                val,
                color=_COLORS[m],
                ls=":",
                lw=1.2,
                label=None if shown else "published capacities (dotted)",
            )
            shown = True
    ax_a.set_xlabel(f"stored patterns / N   (N = {n})")
    ax_a.set_ylabel("bit accuracy (%)")
    ax_a.set_ylim(48, 101)
    ax_a.set_title("A  recall from a cue with 60 % of bits erased", loc="left", fontsize=10)

    ax_b.axhline(0, color="0.4", lw=0.8, ls=":")
    ax_b.axhline(crit, color="k", lw=0.8, ls="--")
    ax_b.set_xlabel(f"stored patterns / N   (N = {n})")
    ax_b.set_ylabel("chance-corrected accuracy (%)")
    ax_b.set_title(
        "B  what retrieval adds to the cue: (acc - cue) / (1 - cue)", loc="left", fontsize=10
    )
    ax_b.set_ylim(-30, 103)
    handles, labels = ax_a.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=4)

    pos = range(len(models))
    meas = [mtr.get(f"capacity_{m}", float("nan")) for m in models]
    err = [mtr.get(f"capacity_std_{m}", 0.0) for m in models]
    ax_c.bar(
        pos,
        meas,
        yerr=err,
        color=[_COLORS[m] for m in models],
        alpha=0.8,
        capsize=3,
        label="measured",
    )
    labelled = False
    for i, m in enumerate(models):
        if f"capacity_{m}" in PUBLISHED:
            ax_c.plot(
                [i],
                [PUBLISHED[f"capacity_{m}"][0]],
                marker="*",
                ms=14,
                color="gold",
                mec="k",
                ls="none",
                label=None if labelled else "published",
            )
            labelled = True
        if meas[i] >= mtr.get("max_load", float("inf")):
            ax_c.text(i, meas[i], ">=", ha="center", va="bottom", fontsize=9)
    ax_c.set_xticks(
        list(pos),
        [LABELS[m].replace(", ", ",\n") for m in models],
        rotation=45,
        ha="right",
        fontsize=7,
    )
    ax_c.set_ylabel("capacity / N (98 % criterion)")
    ax_c.set_title("C  capacity: measured (bars) vs published (stars)", loc="left", fontsize=10)
    handles, labels = ax_c.get_legend_handles_labels()
    if handles:
        ax_c.legend(fontsize=8, loc="upper left")
    return fig


#: The capacity claims of SCIENCE.md 4 item 1, checked on every run.
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "classical Hopfield capacity lies between 0.10 N and 0.20 N (published ~0.14 N)",
        lambda r: 0.10 <= r.metrics["capacity_hopfield"] <= 0.20,
    ),
    Claim(
        "a key-value memory with one slot per item stores about N patterns (>= 0.95 N)",
        lambda r: r.metrics["capacity_kv_sequential"] >= 0.95,
    ),
    Claim(
        "random slot choice (p = 0.1) costs most of that capacity (< 0.3 N)",
        lambda r: r.metrics["capacity_kv_random"] < 0.3,
    ),
    Claim(
        "past capacity, sequential slots degrade gracefully (accuracy at 2 N still >= 70 %)",
        lambda r: r.series["accuracy_kv_sequential"][-1] >= 70,
    ),
)
