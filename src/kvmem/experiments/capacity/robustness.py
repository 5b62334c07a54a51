"""Separability versus robustness: how sharply to select under a noisy cue.

(docs/science.md 4 item 2.)

A slot memory (docs/science.md 1.2) stores N = 64 random keys (unit-norm Gaussian, d = 32) with
random values (unit-norm Gaussian, d_v = 32). Each stored key is queried with Gaussian
noise, ``q = k_i + sigma * eps / sqrt(d)``, ``eps ~ N(0, I)``, so ``sigma`` is the noise
norm relative to the key norm. The read ``v_hat = sigma_op(K q) V`` (dot similarity) is
scored two ways:

- **retrieval accuracy**: the percentage of queries whose read is nearest (Euclidean) to
  the correct stored value;
- **value error**: ``|v_hat - v_i|^2`` averaged over queries (values are unit vectors, so
  returning a wrong stored value costs ~2, returning the mean of all values ~1).

Separation operators: ``max`` (one-hot argmax), ``softmax`` for each beta of
``config.betas``, ``softmax_matched`` (beta = d / sigma^2, see below), ``identity``
(linear, the correlation-matrix memory), ``top_k`` (the k best matches averaged with equal
weights, k = 3) and ``threshold`` (sum of the values whose score is >= theta = 0.5).

What the numbers show, honestly:

- Max is perfect on clean cues (accuracy 100 %, value error 0) and no operator beats its
  *retrieval accuracy* at any noise level: with Gaussian noise and equiprobable memories
  the best-matching key is the maximum a posteriori memory, so picking it is optimal
  for identification. Softmax at moderate beta ties max on accuracy (its read is
  dominated by the same winner); too small a beta, identity, top-k and threshold lose.
- The trade-off shows in the **value error**. At zero noise max (and sharp softmax) have
  zero error while soft selection (beta = 4) pays for blending in other values. At high
  noise max snaps to a wrong memory with the full error ~2 whenever it errs, while
  softmax hedges between the plausible memories: its error is lower, and the softer the
  better as the noise grows. With unit keys the posterior over memories is exactly
  ``softmax(d / sigma^2 * K q)``, so softmax at ``beta = d / sigma^2`` returns the
  posterior mean of the value, the minimum-mean-squared-error read
  (``softmax_matched``: the lower envelope of every curve). Metrics
  ``crossover_noise_<op>`` give the noise level above which each softmax beats max on
  value error.

Uncertainty: the ``n_trials`` = 50 memories are independent repeats (fresh keys, values
and noise). Every curve point and headline number is the mean over them with a Student-t
95 % interval (:func:`kvmem.metrics.mean_ci`): series ``accuracy_<op>_ci`` and
``value_error_<op>_ci`` (``[low, high]`` per noise level), metrics ``<metric>_ci`` for the
``_noise0`` and ``_noise_max`` numbers; the figure draws the intervals as bands and error
bars. The crossover noise is read off the mean curves (no interval). Measured (default
config): value error at the largest noise (3.0), max 1.365 [1.337, 1.392], softmax
beta = 4 0.836 [0.823, 0.848]; accuracy there 31.9 [30.5, 33.3] % for max.

Figure: panel B's value-error axis is linear up to 1 and logarithmic above, so identity
(up to ~20) and threshold (~12) stay in view; panel C's log axis reaches two decades
below the smallest nonzero error and every bar carries its value, so an exact 0, 2.8e-7
and 1.6e-29 stay apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from matplotlib.figure import Figure

from kvmem.core.slot_memory import SlotMemory
from kvmem.experiments.base import (
    Claim,
    ProgressFactory,
    charge_to_most_grown,
    null_progress,
    single_thread,
)
from kvmem.metrics import mean_ci, retrieval_accuracy, value_error
from kvmem.results import Result

__all__ = [
    "CLAIMS",
    "NAME",
    "DESCRIPTION",
    "Config",
    "operator_keys",
    "quick",
    "estimate_bytes",
    "run",
    "plot",
]

NAME = "robustness"
DESCRIPTION = (
    "Separability vs robustness: retrieval accuracy and value error against query noise "
    "for max, softmax (beta sweep), identity, top-k and threshold separation"
)


@dataclass(frozen=True)
class Config:
    """Noisy-cue retrieval (docs/science.md 4 item 2).

    ``n_memories`` keys of dimension ``dim`` (unit-norm Gaussian) with values of dimension
    ``value_dim`` (unit-norm Gaussian); ``n_trials`` independent memories; every stored key
    is queried once per noise level of ``noise`` (noise norm / key norm).
    """

    seed: int = 0
    n_memories: int = 64
    dim: int = 32
    value_dim: int = 32
    n_trials: int = 50
    noise: tuple[float, ...] = tuple(round(0.25 * i, 2) for i in range(13))  # 0 .. 3
    betas: tuple[float, ...] = (4.0, 8.0, 16.0, 64.0)
    top_k: int = 3
    theta: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n_memories", "dim", "value_dim", "n_trials", "top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if not self.noise or any(not (math.isfinite(s) and s >= 0) for s in self.noise):
            raise ValueError(f"noise: expected finite levels >= 0, got {self.noise}")
        if list(self.noise) != sorted(set(self.noise)):
            raise ValueError(f"noise: expected strictly increasing levels, got {self.noise}")
        if any(not (math.isfinite(b) and b > 0) for b in self.betas):
            raise ValueError(f"betas: expected finite values > 0, got {self.betas}")
        if not math.isfinite(self.theta):
            raise ValueError(f"theta: expected a finite number, got {self.theta}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float32), keyed by the size field grown most over the default.

    Per memory, with ``L`` noise levels and ``N = n_memories``: the noise, queries and
    their flattened copy ``[L, N, dim]``, a read's scores, weights and the accuracy's
    distances ``[L N, N]`` (with temporaries), and the reads and their errors
    ``[L N, value_dim]``. ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    n, levels = c.n_memories, len(c.noise)
    per_trial = levels * n * (3 * c.dim + 6 * n + 3 * c.value_dim) + n * (c.dim + c.value_dim)
    grown = {
        "n_trials": c.n_trials / d.n_trials,
        "n_memories": (c.n_memories / d.n_memories) ** 2,
        "dim": c.dim / d.dim,
        "value_dim": c.value_dim / d.value_dim,
        "noise": len(c.noise) / len(d.noise),
    }
    return charge_to_most_grown(grown, 4 * c.n_trials * per_trial)


def quick(config: Config) -> Config:
    """10 memories per noise level instead of 50, every other noise level."""
    return replace(config, n_trials=10, noise=config.noise[::2])


def _beta_key(beta: float) -> str:
    """``softmax_4``, ``softmax_2_5``: a metric-name-safe label of a beta."""
    return f"softmax_{beta:g}".replace(".", "_").replace("+", "")


def operator_keys(config: Config) -> list[str]:
    """Operator names in result keys, in plotting order."""
    return [
        "max",
        *[_beta_key(b) for b in config.betas],
        "softmax_matched",
        "identity",
        "top_k",
        "threshold",
    ]


def _memory(key: str, config: Config) -> SlotMemory:
    if key == "max":
        return SlotMemory("dot", "hard_max", beta=None)
    if key == "identity":
        return SlotMemory("dot", "identity", beta=None)
    if key == "top_k":
        return SlotMemory("dot", "top_k", beta=None, k=config.top_k)  # equal weights
    if key == "threshold":
        return SlotMemory("dot", "threshold", beta=None, theta=config.theta)
    beta = {_beta_key(b): b for b in config.betas}[key]
    return SlotMemory("dot", "softmax", beta=beta)


def _crossover(noise: torch.Tensor, err: torch.Tensor, err_max: torch.Tensor) -> float:
    """Smallest noise level above which ``err < err_max`` holds at every level, linearly
    interpolated between grid points; NaN if the last level does not satisfy it."""
    better = err < err_max
    if not bool(better[-1]):
        return math.nan
    j = len(better) - 1
    while j > 0 and bool(better[j - 1]):
        j -= 1
    if j == 0:
        return float(noise[0])
    d0 = float(err[j - 1] - err_max[j - 1])  # >= 0
    d1 = float(err[j] - err_max[j])  # < 0
    t = d0 / (d0 - d1)
    return float(noise[j - 1] + t * (noise[j] - noise[j - 1]))


def _score_level(read: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score reads ``[T, N, d_v]`` of one noise level where query i asks for memory i:
    per trial (accuracy in %, mean value error), ``[T]`` each."""
    ok = retrieval_accuracy(read, values)
    err = value_error(read, values, reduction="none")
    return 100 * ok.float().mean(-1), err.mean(-1)


def _ci_pairs(x: torch.Tensor) -> tuple[list[float], list[list[float]]]:
    """Mean over trials and 95 % interval per point: ``x [T, L]`` -> (``[L]``, ``[L][2]``)."""
    mean, ci = mean_ci(x.double())
    assert isinstance(mean, list) and isinstance(ci, list)
    return mean, ci


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Accuracy and value error of every operator at every noise level."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    gen = torch.Generator().manual_seed(config.seed)
    t, n, d = config.n_trials, config.n_memories, config.dim
    keys = torch.nn.functional.normalize(torch.randn(t, n, d, generator=gen), dim=-1)
    values = torch.nn.functional.normalize(
        torch.randn(t, n, config.value_dim, generator=gen), dim=-1
    )
    noise = torch.tensor(config.noise, dtype=torch.float32)
    n_lev = len(noise)
    eps = torch.randn(n_lev, t, n, d, generator=gen) / math.sqrt(d)
    queries = keys + noise[:, None, None, None] * eps  # [L, T, N, d]
    flat_q = queries.permute(1, 0, 2, 3).reshape(t, n_lev * n, d)  # [T, L*N, d]
    target = torch.arange(n).repeat(n_lev)  # query (level, i) asks for memory i

    def score(read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reads [T, L*N, dv] -> per trial (accuracy % [T, L], value error [T, L])."""
        ok = retrieval_accuracy(read, values, target).reshape(t, n_lev, n)
        err = value_error(read, values[:, target], reduction="none").reshape(t, n_lev, n)
        return 100 * ok.float().mean(-1), err.mean(-1)

    series: dict[str, list] = {"noise": [float(s) for s in config.noise]}
    metrics: dict[str, float | list[float]] = {}
    errors: dict[str, torch.Tensor] = {}
    keys_ops = operator_keys(config)
    for key in progress(keys_ops, total=len(keys_ops), desc="operators"):
        if key == "softmax_matched":
            # beta = d / sigma^2 per level: the posterior mean of the value; at zero noise
            # (beta infinite) a large finite beta stands in for max
            acc_l, err_l = [], []
            for j, s in enumerate(config.noise):
                beta = d / s**2 if s > 0 else 1e6
                mem = SlotMemory("dot", "softmax", beta=beta)
                mem.write(keys, values)
                a, e = _score_level(mem.read(queries[j]), values)
                acc_l.append(a)
                err_l.append(e)
            acc, err = torch.stack(acc_l, dim=-1), torch.stack(err_l, dim=-1)  # [T, L]
        else:
            mem = _memory(key, config)
            mem.write(keys, values)
            acc, err = score(mem.read(flat_q))
        errors[key] = err.double().mean(0)
        for name, x in (("accuracy", acc), ("value_error", err)):
            mean, ci = _ci_pairs(x)
            series[f"{name}_{key}"] = mean
            series[f"{name}_{key}_ci"] = ci
            for tag, j in (("noise0", 0), ("noise_max", -1)):
                metrics[f"{name}_{key}_{tag}"] = mean[j]
                metrics[f"{name}_{key}_{tag}_ci"] = ci[j]
    if "max" in errors:
        for key in keys_ops:
            if key.startswith("softmax_") and key != "softmax_matched":
                metrics[f"crossover_noise_{key}"] = _crossover(noise, errors[key], errors["max"])
    return Result(experiment=NAME, config=asdict(config), metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure

_STYLE: dict[str, tuple[str, str]] = {
    "max": ("k", "-"),
    "softmax_matched": ("tab:cyan", "--"),
    "identity": ("tab:gray", ":"),
    "top_k": ("tab:brown", "-."),
    "threshold": ("tab:pink", ":"),
}


def _style(key: str, softmax_rank: float) -> tuple[str, str]:
    if key in _STYLE:
        return _STYLE[key]
    import matplotlib

    return matplotlib.colormaps["viridis"](0.15 + 0.7 * softmax_rank), "-"


def _label(key: str, cfg: dict) -> str:
    if key == "softmax_matched":
        return "softmax, beta = d / noise^2 (posterior mean)"
    if key == "top_k":
        return f"top-k (k = {cfg.get('top_k', 3)}, equal weights)"
    if key == "threshold":
        return f"threshold (theta = {cfg.get('theta', 0.5):g})"
    if key.startswith("softmax_"):
        return "softmax, beta = " + key.removeprefix("softmax_").replace("_", ".")
    return key


def _operators(series: dict) -> list[str]:
    """Operator names present in a result's series, in stored order (``_ci`` excluded)."""
    return [
        k.removeprefix("accuracy_")
        for k in series
        if k.startswith("accuracy_") and not k.endswith("_ci")
    ]


def _band(ax, x: list[float], ci: list[list[float]] | None, color) -> None:  # noqa: ANN001
    if ci:
        ax.fill_between(x, [p[0] for p in ci], [p[1] for p in ci], color=color, alpha=0.18, lw=0)


#: Panel C's log axis starts here: errors below it (exact zeros, float dust) are drawn at
#: the floor and labelled with their value, so 0, 2.8e-7 and 1.6e-29 stay distinguishable.
_LOG_FLOOR_DECADES = 2


def _fmt_err(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.2g}" if 1e-2 <= abs(v) < 100 else f"{v:.1e}"


def plot(result: Result) -> Figure:
    """(A) retrieval accuracy vs noise; (B) value error vs noise (the trade-off; a
    linear-then-log axis that keeps every curve in view); (C) value error of each operator
    on clean and on the noisiest cues, on a log axis reaching the smallest nonzero error,
    each bar labelled with its value. Bands and error bars: 95 % intervals over trials."""
    s, cfg = result.series, result.config or {}
    noise = s["noise"]
    keys = _operators(s)
    soft = [k for k in keys if k.startswith("softmax_") and k != "softmax_matched"]
    rank = {k: (i / max(1, len(soft) - 1)) for i, k in enumerate(soft)}
    n_trials = cfg.get("n_trials")

    fig = Figure(figsize=(15.5, 5.2), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3)
    for k in keys:
        col, ls = _style(k, rank.get(k, 0.0))
        lw = 2.2 if k == "max" else 1.5
        ax_a.plot(noise, s[f"accuracy_{k}"], ls, color=col, lw=lw, label=_label(k, cfg))
        _band(ax_a, noise, s.get(f"accuracy_{k}_ci"), col)
        ax_b.plot(noise, s[f"value_error_{k}"], ls, color=col, lw=lw, label=_label(k, cfg))
        _band(ax_b, noise, s.get(f"value_error_{k}_ci"), col)
    ax_a.set_xlabel("query noise (noise norm / key norm)")
    ax_a.set_ylabel("retrieval accuracy (%)")
    ax_a.set_ylim(-3, 103)
    ax_a.set_title(
        "A  identification (read nearest the right value): max is never beaten",
        loc="left",
        fontsize=9,
    )
    ax_a.legend(fontsize=7, loc="lower left")

    # linear up to 1 (where the trade-off is), logarithmic above: identity and threshold
    # reach ~20 and ~12 and stay on the axis
    top = max(
        max(hi for _, hi in s.get(f"value_error_{k}_ci", [[0, v] for v in s[f"value_error_{k}"]]))
        for k in keys
    )
    top = max(top, max(max(s[f"value_error_{k}"]) for k in keys))
    ax_b.set_yscale("symlog", linthresh=1.0, linscale=2.0)
    ax_b.set_ylim(-0.03, 1.25 * top)
    ticks = [t for t in (0, 0.25, 0.5, 0.75, 1, 2, 5, 10, 20, 50, 100) if t <= 1.25 * top]
    ax_b.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax_b.set_xlabel("query noise (noise norm / key norm)")
    ax_b.set_ylabel("value error |v_hat - v|^2 (linear to 1, log above)")
    ax_b.set_title(
        "B  fidelity: max wins clean, softer selection wins noisy", loc="left", fontsize=10
    )
    for k in soft:
        x = result.metrics.get(f"crossover_noise_{k}", math.nan)
        if x is not None and math.isfinite(x):
            ax_b.axvline(x, color=_style(k, rank[k])[0], lw=0.8, ls=":")

    pos = torch.arange(len(keys), dtype=torch.float64)
    clean = [float(s[f"value_error_{k}"][0]) for k in keys]
    noisy = [float(s[f"value_error_{k}"][-1]) for k in keys]
    positive = [v for v in clean + noisy if v > 0]
    floor = (
        10.0 ** (math.floor(math.log10(min(positive))) - _LOG_FLOOR_DECADES) if positive else 1e-3
    )
    for off, vals, col, j in ((-0.2, clean, "tab:blue", 0), (0.2, noisy, "tab:red", -1)):
        heights = [max(v, floor) - floor for v in vals]
        cis = [
            s.get(f"value_error_{k}_ci", [[v, v]] * len(noise))[j]
            for k, v in zip(keys, vals, strict=True)
        ]
        err = [
            [max(v, floor) - max(c[0], floor) for v, c in zip(vals, cis, strict=True)],
            [max(c[1], floor) - max(v, floor) for v, c in zip(vals, cis, strict=True)],
        ]
        ax_c.bar(
            (pos + off).tolist(),
            heights,
            bottom=floor,
            width=0.4,
            color=col,
            yerr=err,
            capsize=2,
            label=f"noise {noise[j]:g}",
        )
        for x, v in zip((pos + off).tolist(), vals, strict=True):
            ax_c.text(
                x,
                max(v, floor) * 1.5,
                _fmt_err(v),
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax_c.set_yscale("log")
    # headroom above the tallest bar for its label and the legend
    ax_c.set_ylim(floor, 1e5 * max(max(clean), max(noisy), floor * 10))
    ax_c.set_xticks(
        pos.tolist(), [_label(k, cfg) for k in keys], rotation=45, ha="right", fontsize=7
    )
    ax_c.set_ylabel(f"value error (log; axis starts at {floor:.0e}; 0 drawn there)")
    ax_c.set_title(
        "C  value error, clean vs noisiest cue (labels: exact values)", loc="left", fontsize=10
    )
    ax_c.legend(fontsize=8, loc="upper left", ncol=2)
    if n_trials:
        fig.suptitle(
            f"Bands and error bars: 95 % intervals over {n_trials} independent memories",
            fontsize=9,
        )
    return fig


#: The separability-versus-robustness claims of docs/science.md 4 item 2, checked on every run.
#: The metric the report's summary shows first.
HEADLINE = "value_error_softmax_4_noise_max"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "max separation is exact on clean cues (value error 0 at zero noise)",
        lambda r: r.metrics["value_error_max_noise0"] <= 1e-6,
    ),
    Claim(
        "softer selection wins on noisy cues (softmax beta = 4 has lower value error than "
        "max at the largest noise)",
        lambda r: (
            r.metrics["value_error_softmax_4_noise_max"] < r.metrics["value_error_max_noise_max"]
        ),
    ),
    Claim(
        "on nearest-memory accuracy alone max is never beaten; the trade-off is in value error",
        lambda r: all(
            r.series["accuracy_max"][i]
            >= max(
                r.series[f"accuracy_{k}"][i]
                for k in _operators(r.series)
                if k.startswith("softmax_")
            )
            - 1.0
            for i in range(len(r.series["noise"]))
        ),
    ),
)
