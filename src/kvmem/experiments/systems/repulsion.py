"""Repulsion of similar keys under a discrimination demand, and what happens when the
demand is removed (docs/science.md 4 item 11; Chanales et al. 2017; the paper's prediction).

**The phenomenon.** Chanales, Oza, Favila & Kuhl (2017, Curr. Biol. 27:2307) had people
learn routes through a virtual city; pairs of routes overlapped (shared segments). Late in
learning, hippocampal activity patterns of overlapping routes became *less* similar than
those of non-overlapping routes: not just pattern separation (down to the baseline) but
*repulsion* (below it), and more repulsion went with less interference between the routes.
Gershman, Fiete & Irie (2025) read this as keys optimised for discriminability and predict
that it should reverse when the demand to tell the memories apart is removed. **No number
is read from a figure here**: the published result is its sign (overlapping-route
similarity below non-overlapping-route similarity), drawn in the figure as such.

**Model** (the Figure 2 setting of the paper, docs/science.md 3.1, with pairs of highly similar
items). Per simulated subject, ``n_pairs`` pairs of memories; memory ``i`` has a free key
``k_i`` (``d_key``) and a free value ``v_i`` (``d_content + 2``). The two memories of a pair
start with keys and values at cosine ``initial_similarity`` (0.9: highly similar items, as
overlapping routes); unrelated memories start independent. Each memory is the query for
itself; the *stored* keys are detached, as in the paper's code (gradient through the query
side only):

    s_ij   = key_beta cos(k_i, sg[k_j]) + context_beta x_i . x_j
    out_i  = sum_j softmax_j(s_ij) sigmoid(v_j)
    L      = mean_i [ |out_i[:d_c] - c_p(i)|^2 + w |out_i[d_c:] - e_i|^2 ]

- ``x_i`` is a fixed unit *context* code shared by the two memories of a pair and
  independent across pairs (where in the city a route is): it already tells unrelated
  memories apart, so the learned keys face the one demand that matters here, telling the
  pair apart. Keys enter by their direction only (``cos``: a fixed-norm code, as a
  k-winners-take-all population has fixed activity), so they can only discriminate by
  moving apart, not by growing.
- targets: the pair's shared content ``c_p`` (``d_content`` random bits, the same for both
  memories: the overlapping segments) and a one-hot label ``e_i`` saying which member of the
  pair it is (the distinct route end); ``w = demand_weight``.
- Adam (lr ``lr``, zeroed gradients every step) for ``demand_steps`` steps with the demand,
  then ``relax_steps`` more steps **with the same optimiser (its state kept)** on the loss
  without the demand (``w = 0``: a read that confuses the pair is no longer penalised).

Similarity of two memories' keys (or of their values ``sigmoid(v)``) is the Pearson
correlation across units (the pattern similarity Chanales et al. computed across voxels),
averaged over pairs: similar pairs (the two members of each pair) and unrelated pairs
(member 1 of pair p with member 2 of pair p+1). ``repulsion`` = unrelated minus similar-pair
key similarity at the end of learning (> 0: repulsion); ``relaxation`` = the fraction of it
undone after the demand is removed, ``(r_demand - r_end) / r_demand`` with ``r`` the
repulsion (1: back to the unrelated level; > 1: the pair ends *more* similar than unrelated
memories; 0: nothing undone).

**Contrasts on the same protocol, items and optimiser:**

- ``free_norm``: the same key-value memory with raw dot products of free keys
  (``key_beta k_i . k_j / sqrt(d_key)``): keys can also discriminate by growing;
- ``tied`` (the autoassociative alternative the paper argues against): one representation
  per memory serves as key and content, ``k_i = v_i`` (so ``s_ij`` uses ``cos(v_i, v_j)``
  and the read ``sigmoid(v_j)``): keys can only move apart by taking the content with them.

**Parameters**, fixed once by hand: ``n_pairs = 10``, ``d_key = 16``, ``d_content = 16``,
``initial_similarity = 0.9``, ``key_beta = 4``, ``context_beta = 6``, ``demand_weight = 4``,
``lr = 0.01``, ``demand_steps = 1000``, ``relax_steps = 2000``, ``n_seeds = 20`` subjects.
``context_beta`` sets how much the rest of memory leaks into a read and so how fast the
shared content pulls a relaxed pair back: at 4 (8) instead of 6, repulsion is 0.43 (0.69)
and relaxation 2.8 (0.61) after 2000 steps, so the reversal's *speed* depends on it (the
relaxation claim fails at 8) while every sign (repulsion in the key-value model, none in
the contrasts, a positive relaxation) is the same over 4-8. The others were not tuned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from matplotlib.figure import Figure

from kvmem.experiments.base import (
    Claim,
    ProgressFactory,
    charge_to_most_grown,
    null_progress,
    single_thread,
)
from kvmem.metrics import mean_ci
from kvmem.results import Result

__all__ = [
    "NAME",
    "DESCRIPTION",
    "Config",
    "MODELS",
    "CLAIMS",
    "pearson",
    "make_items",
    "quick",
    "estimate_bytes",
    "run",
    "plot",
]

NAME = "repulsion"
DESCRIPTION = (
    "Repulsion (Chanales et al. 2017): keys of similar memories trained to be told apart "
    "fall below unrelated ones while their values keep the overlap; without the demand "
    "the shared content pulls them back"
)

#: The key-value model (fixed-norm keys), its free-norm variant, and keys tied to values.
MODELS = ("kv", "free_norm", "tied")


@dataclass(frozen=True)
class Config:
    """Pairs of similar memories learned with, then without, a demand to tell them apart.

    ``n_seeds`` independent subjects of ``n_pairs`` pairs; ``d_key`` and ``d_content`` the
    key and shared-content dimensions; ``initial_similarity`` the starting cosine of a
    pair's keys and values; ``key_beta``, ``context_beta`` the inverse temperatures of the
    key match and of the fixed pair context; ``demand_weight`` the weight ``w`` of the
    which-member label; ``lr`` Adam's step; ``demand_steps`` then ``relax_steps`` steps;
    similarities are logged every ``log_every`` steps.
    """

    seed: int = 0
    n_seeds: int = 20
    n_pairs: int = 10
    d_key: int = 16
    d_content: int = 16
    d_context: int = 8
    initial_similarity: float = 0.9
    key_beta: float = 4.0
    context_beta: float = 6.0
    demand_weight: float = 4.0
    lr: float = 0.01
    demand_steps: int = 1000
    relax_steps: int = 2000
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("n_seeds", "d_key", "d_content", "d_context", "demand_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.n_pairs < 2:
            raise ValueError(f"n_pairs: expected an integer >= 2, got {self.n_pairs}")
        if self.relax_steps < 0:
            raise ValueError(f"relax_steps: expected an integer >= 0, got {self.relax_steps}")
        if self.demand_steps % self.log_every or self.relax_steps % self.log_every:
            raise ValueError(
                f"log_every: expected a divisor of demand_steps and relax_steps, got "
                f"{self.log_every} ({self.demand_steps}, {self.relax_steps})"
            )
        if not 0.0 <= self.initial_similarity < 1.0:
            raise ValueError(
                f"initial_similarity: expected a value in [0, 1), got {self.initial_similarity}"
            )
        for name in ("key_beta", "lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite value > 0, got {v}")
        for name in ("context_beta", "demand_weight"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {v}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float64), keyed by the size field grown most over the default.

    Per subject and model, with ``N = 2 n_pairs`` memories: the autograd graph of one step
    (scores and weights ``[N, N]``, keys, values and contexts ``[N, d]``), the parameters
    with their gradients and Adam moments; plus the logged similarities, ``[4]`` per
    subject, model and logged step (each a small tensor: ~300 bytes of overhead).
    ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    n, dv = 2 * c.n_pairs, c.d_content + 2
    per_subject = 3 * (8 * n * n + 8 * n * (c.d_key + dv + c.d_context))
    per_subject += 4 * n * (2 * c.d_key + 3 * dv)
    logs = (c.demand_steps + c.relax_steps) // c.log_every + 1
    grown = {
        "n_seeds": c.n_seeds / d.n_seeds,
        "n_pairs": (c.n_pairs / d.n_pairs) ** 2,
        "d_key": c.d_key / d.d_key,
        "d_content": c.d_content / d.d_content,
        "d_context": c.d_context / d.d_context,
        "demand_steps": c.demand_steps / d.demand_steps,
        "relax_steps": c.relax_steps / d.relax_steps,
    }
    need = 8 * c.n_seeds * per_subject + 3 * logs * (32 * c.n_seeds + 300)
    return charge_to_most_grown(grown, need)


def quick(config: Config) -> Config:
    """4 subjects, 200 + 200 steps."""
    return replace(config, n_seeds=4, demand_steps=200, relax_steps=200)


# ----------------------------------------------------------------------------- the model


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation across the last axis: ``[..., d] x [..., d] -> [...]``."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)


def _pair_draw(shape: tuple[int, ...], rho: float, gen: torch.Generator) -> torch.Tensor:
    """``[S, P, d] -> [S, 2P, d]``: member 2 of each pair is ``rho a + sqrt(1-rho^2) z``."""
    a = torch.randn(shape, generator=gen, dtype=torch.float64)
    z = torch.randn(shape, generator=gen, dtype=torch.float64)
    b = rho * a + math.sqrt(1 - rho**2) * z
    return torch.stack([a, b], 2).reshape(shape[0], 2 * shape[1], shape[2])


def make_items(config: Config, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Initial keys ``[S, N, d_key]``, values ``[S, N, d_content + 2]`` (scale 0.1: reads
    start near 0.5), contexts ``[S, N, d_context]`` and targets ``[S, N, d_content + 2]``;
    memories ``2p`` and ``2p + 1`` form pair ``p``."""
    c = config
    s, p, rho = c.n_seeds, c.n_pairs, c.initial_similarity
    keys = _pair_draw((s, p, c.d_key), rho, gen)
    values = 0.1 * _pair_draw((s, p, c.d_content + 2), rho, gen)
    ctx = torch.randn(s, p, 1, c.d_context, generator=gen, dtype=torch.float64)
    ctx = torch.nn.functional.normalize(ctx, dim=-1).expand(-1, -1, 2, -1).reshape(s, 2 * p, -1)
    content = (torch.rand(s, p, 1, c.d_content, generator=gen) < 0.5).to(torch.float64)
    content = content.expand(-1, -1, 2, -1).reshape(s, 2 * p, -1)
    label = torch.eye(2, dtype=torch.float64).repeat(p, 1).expand(s, -1, -1)
    return {
        "keys": keys,
        "values": values,
        "context": ctx,
        "targets": torch.cat([content, label], -1),
    }


def _reads(
    keys: torch.Tensor, values: torch.Tensor, context: torch.Tensor, c: Config, normalized: bool
) -> torch.Tensor:
    """``out_i = sum_j softmax_j(s_ij) sigmoid(v_j)``, stored keys detached: ``[S, N, d_v]``."""
    if normalized:
        q = torch.nn.functional.normalize(keys, dim=-1)
        scores = c.key_beta * q @ q.detach().mT
    else:
        scores = c.key_beta * keys @ keys.detach().mT / math.sqrt(keys.shape[-1])
    scores = scores + c.context_beta * context @ context.mT
    return torch.softmax(scores, dim=-1) @ torch.sigmoid(values)


def _loss(out: torch.Tensor, targets: torch.Tensor, c: Config, weight: float) -> torch.Tensor:
    """Sum over subjects of the per-subject mean loss (subjects stay independent)."""
    dc = c.d_content
    err = (out[..., :dc] - targets[..., :dc]).square().sum(-1)
    err = err + weight * (out[..., dc:] - targets[..., dc:]).square().sum(-1)
    return err.mean(-1).sum()


def _similarities(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per subject ``[S, 4]``: key similar, key unrelated, value similar, value unrelated."""
    n = keys.shape[1]
    i = torch.arange(0, n, 2)
    j, u = i + 1, (i + 3) % n  # the twin; member 2 of the next pair
    sig = torch.sigmoid(values)
    return torch.stack(
        [
            pearson(keys[:, i], keys[:, j]).mean(-1),
            pearson(keys[:, i], keys[:, u]).mean(-1),
            pearson(sig[:, i], sig[:, j]).mean(-1),
            pearson(sig[:, i], sig[:, u]).mean(-1),
        ],
        -1,
    )


def _discrimination(out: torch.Tensor, targets: torch.Tensor, c: Config) -> torch.Tensor:
    """% of memories whose read names the right member of its pair: ``[S]``."""
    dc = c.d_content
    hit = out[..., dc:].argmax(-1) == targets[..., dc:].argmax(-1)
    return 100.0 * hit.to(torch.float64).mean(-1)


def train(config: Config, progress: ProgressFactory = null_progress) -> dict[str, torch.Tensor]:
    """Learn with the demand, then without; the three models in one Adam loop.

    Returns per model ``sim_<model>`` ``[S, T, 4]`` (see :func:`_similarities`, at each
    logged step) and ``acc_<model>`` ``[S, 2]`` (pair discrimination at the end of each
    phase). Adam is elementwise and each subject's loss touches only its own parameters, so
    the models and subjects, optimised together, stay independent.
    """
    c = config
    gen = torch.Generator().manual_seed(c.seed)
    items = make_items(c, gen)
    params = {
        "kv": [items["keys"].clone(), items["values"].clone()],
        "free_norm": [items["keys"].clone(), items["values"].clone()],
        "tied": [items["values"].clone()],  # one representation: key = value
    }
    flat = [p.requires_grad_(True) for ps in params.values() for p in ps]
    opt = torch.optim.Adam(flat, lr=c.lr)
    total = c.demand_steps + c.relax_steps
    sims: dict[str, list[torch.Tensor]] = {m: [] for m in MODELS}
    acc: dict[str, list[torch.Tensor]] = {m: [] for m in MODELS}
    targets, ctx = items["targets"], items["context"]

    def forward() -> dict[str, torch.Tensor]:
        kv_k, kv_v = params["kv"]
        fn_k, fn_v = params["free_norm"]
        (tied,) = params["tied"]
        return {
            "kv": _reads(kv_k, kv_v, ctx, c, normalized=True),
            "free_norm": _reads(fn_k, fn_v, ctx, c, normalized=False),
            "tied": _reads(tied, tied, ctx, c, normalized=True),
        }

    def log() -> None:
        with torch.no_grad():
            for m in MODELS:
                k, v = params[m][0], params[m][-1]
                sims[m].append(_similarities(k, v))

    for step in progress(range(total + 1), total=total + 1, desc="steps"):
        if step % c.log_every == 0:
            log()
        if step in (c.demand_steps, total):
            with torch.no_grad():
                for m, out in forward().items():
                    acc[m].append(_discrimination(out, targets, c))
        if step == total:
            break
        weight = c.demand_weight if step < c.demand_steps else 0.0
        outs = forward()
        loss = sum(_loss(out, targets, c, weight) for out in outs.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    res: dict[str, torch.Tensor] = {}
    for m in MODELS:
        res[f"sim_{m}"] = torch.stack(sims[m], 1)
        res[f"acc_{m}"] = (
            torch.stack(acc[m], -1)
            if len(acc[m]) == 2
            else torch.cat([acc[m][0][:, None], acc[m][0][:, None]], -1)
        )
    return res


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Train the three models; similarity trajectories and repulsion / relaxation."""
    with single_thread():
        return _run(config, progress)


_SERIES = (
    "key_similarity_similar_pairs",
    "key_similarity_unrelated_pairs",
    "value_similarity_similar_pairs",
    "value_similarity_unrelated_pairs",
)


def _run(config: Config, progress: ProgressFactory) -> Result:
    c = config
    out = train(c, progress)
    steps = list(range(0, c.demand_steps + c.relax_steps + 1, c.log_every))
    t_demand = c.demand_steps // c.log_every  # index of the end of learning
    series: dict[str, list] = {"step": steps}
    metrics: dict[str, float] = {"demand_steps": float(c.demand_steps)}
    for m in MODELS:
        sfx = "" if m == "kv" else f"_{m}"
        sim = out[f"sim_{m}"]  # [S, T, 4]
        for q, name in enumerate(_SERIES):
            mean, ci = mean_ci(sim[..., q])
            series[f"{name}{sfx}"], series[f"{name}{sfx}_ci"] = mean, ci
        rep = sim[:, :, 1] - sim[:, :, 0]  # unrelated minus similar, per subject and step
        r_demand, r_end = rep[:, t_demand], rep[:, -1]
        mean, ci = mean_ci(r_demand)
        metrics[f"repulsion{sfx}"] = float(mean)
        series[f"repulsion{sfx}_ci"] = ci
        # the share undone; only where there was repulsion to undo
        relax = torch.where(r_demand > 0, (r_demand - r_end) / r_demand, math.nan)
        if c.relax_steps > 0 and bool((r_demand > 0).any()):
            mean, ci = mean_ci(relax)
            metrics[f"relaxation{sfx}"] = float(mean)
            series[f"relaxation{sfx}_ci"] = ci
        metrics[f"key_similarity_similar_initial{sfx}"] = float(sim[:, 0, 0].mean())
        metrics[f"key_similarity_similar_end_of_learning{sfx}"] = float(sim[:, t_demand, 0].mean())
        metrics[f"value_similarity_similar_end_of_learning{sfx}"] = float(
            sim[:, t_demand, 2].mean()
        )
        metrics[f"value_similarity_unrelated_end_of_learning{sfx}"] = float(
            sim[:, t_demand, 3].mean()
        )
        metrics[f"discrimination_end_of_learning{sfx}"] = float(out[f"acc_{m}"][:, 0].mean())
        metrics[f"discrimination_end{sfx}"] = float(out[f"acc_{m}"][:, 1].mean())
    metrics["n_seeds"] = float(c.n_seeds)
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure

_COLORS = {"kv": "tab:blue", "free_norm": "tab:green", "tied": "tab:red"}
_LABELS = {
    "kv": "key-value (fixed-norm keys)",
    "free_norm": "key-value, free-norm keys",
    "tied": "tied: key = value (autoassociative)",
}


def _line(ax, s: dict, key: str, color: str, style: str, label: str) -> None:
    x = s["step"]
    ax.plot(x, s[key], style, color=color, lw=1.5, label=label)
    ci = s[f"{key}_ci"]
    ax.fill_between(x, [p[0] for p in ci], [p[1] for p in ci], color=color, alpha=0.2, lw=0)


def plot(result: Result) -> Figure:
    """(A) key similarity of similar and unrelated pairs over training, demand removed at
    the dotted line; (B) value similarity; (C) repulsion at the end of learning per model,
    beside the sign Chanales et al. (2017) report. Bands: 95 % intervals over subjects."""
    s, m = result.series, result.metrics
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3, width_ratios=[1.2, 1.2, 0.8])
    for mod in MODELS:
        sfx = "" if mod == "kv" else f"_{mod}"
        if f"key_similarity_similar_pairs{sfx}" not in s:
            continue
        col, lab = _COLORS[mod], _LABELS[mod]
        _line(ax_a, s, f"key_similarity_similar_pairs{sfx}", col, "-", f"{lab}: similar pairs")
        _line(ax_a, s, f"key_similarity_unrelated_pairs{sfx}", col, ":", "unrelated pairs")
        _line(ax_b, s, f"value_similarity_similar_pairs{sfx}", col, "-", f"{lab}: similar pairs")
        _line(ax_b, s, f"value_similarity_unrelated_pairs{sfx}", col, ":", "unrelated pairs")
    t = m["demand_steps"]
    for ax, what in ((ax_a, "key"), (ax_b, "value")):
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.text(t, 1.02, " demand removed", fontsize=7, va="bottom")
        ax.set_xlabel("training step (Adam)")
        ax.set_ylabel(f"{what} similarity (Pearson r)")
        ax.set_ylim(-1.05, 1.1)
        ax.grid(alpha=0.3)
    ax_a.set_title("A  keys: repulsion, then relaxation", loc="left", fontsize=10)
    ax_b.set_title("B  values keep the pair's overlap", loc="left", fontsize=10)
    ax_a.legend(fontsize=6, loc="lower right", ncol=1)
    names = [mod for mod in MODELS if f"repulsion{'' if mod == 'kv' else '_' + mod}" in m]
    vals = [m[f"repulsion{'' if mod == 'kv' else '_' + mod}"] for mod in names]
    cis = [s[f"repulsion{'' if mod == 'kv' else '_' + mod}_ci"] for mod in names]
    err = [
        [v - c[0] for v, c in zip(vals, cis, strict=True)],
        [c[1] - v for v, c in zip(vals, cis, strict=True)],
    ]
    ax_c.bar(range(len(names)), vals, yerr=err, color=[_COLORS[n] for n in names], capsize=4)
    ax_c.bar([len(names)], [0.3], color="none", edgecolor="k", hatch="//")
    ax_c.annotate(
        "Chanales et al. 2017:\noverlapping < non-\noverlapping routes\n(sign only, schematic)",
        (len(names), 0.3),
        (len(names) - 1.4, 0.45),
        fontsize=7,
    )
    ax_c.axhline(0, color="k", lw=0.8)
    ax_c.set_xticks(range(len(names) + 1), [*names, "published"], fontsize=8)
    ax_c.set_ylabel("repulsion: unrelated - similar key similarity")
    ax_c.set_title("C  end of learning (> 0 = repulsion)", loc="left", fontsize=10)
    ax_c.grid(alpha=0.3, axis="y")
    return fig


# ----------------------------------------------------------------------------- claims


def _full(r: Result) -> bool:
    if r.metrics["demand_steps"] < 1000 or r.series["step"][-1] - r.metrics["demand_steps"] < 2000:
        raise KeyError("relax_steps")  # the relaxation claims are about the full protocol
    return True


#: Claims of docs/science.md 4 item 11, checked on every run.
#: The metric the report's summary shows first.
HEADLINE = "repulsion"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "keys of similar memories repel under the demand: their similarity falls from >= 0.8 "
        "to below that of unrelated pairs (repulsion > 0.2, 95 % interval above 0)",
        lambda r: (
            r.metrics["key_similarity_similar_initial"] >= 0.8
            and r.metrics["repulsion"] > 0.2
            and r.series["repulsion_ci"][0] > 0
        ),
    ),
    Claim(
        "values keep the pair's overlap while the keys repel (value similarity >= 0.5, and "
        ">= 0.4 above unrelated pairs, at the end of learning)",
        lambda r: (
            r.metrics["value_similarity_similar_end_of_learning"] >= 0.5
            and r.metrics["value_similarity_similar_end_of_learning"]
            - r.metrics["value_similarity_unrelated_end_of_learning"]
            >= 0.4
        ),
    ),
    Claim(
        "every model learns to tell the pairs apart (>= 95 % discrimination at the end of "
        "learning)",
        lambda r: all(
            r.metrics[f"discrimination_end_of_learning{'' if m == 'kv' else '_' + m}"] >= 95.0
            for m in MODELS
        ),
    ),
    Claim(
        "removing the demand reverses the repulsion (relaxation >= 0.8 after 2000 steps with "
        "the same optimiser): the shared content pulls the pair's keys back together",
        lambda r: _full(r) and r.metrics["relaxation"] >= 0.8,
    ),
    Claim(
        "keys free to grow separate the pair without repelling it (repulsion < 0) and stay put "
        "when the demand is removed (similar-pair similarity changes < 0.1)",
        lambda r: (
            r.metrics["repulsion_free_norm"] < 0
            and abs(
                r.series["key_similarity_similar_pairs_free_norm"][-1]
                - r.metrics["key_similarity_similar_end_of_learning_free_norm"]
            )
            < 0.1
        ),
    ),
    Claim(
        "keys tied to the content (autoassociative) do not repel: the shared content holds "
        "the pair above unrelated pairs (repulsion < 0)",
        lambda r: r.metrics["repulsion_tied"] < 0,
    ),
)
