"""Generalisation by blending: queries between stored keys (docs/science.md 4 item 3).

Keys are points of a smooth 1-D input space, ``k_n ~ U[0, 1]`` (N = 16 per memory); each
value is a smooth function of its key, ``v_n = sin(2 pi f k_n)`` (f = 1; optional Gaussian
noise on the stored values). Queries are new points drawn uniformly *between* the stored
keys (in ``[min k, max k]``, never a stored key), and each read is compared with the true
function there. The slot memory uses the negative squared Euclidean similarity
``S(q, k) = -(q - k)^2`` (docs/science.md 1.2), so the separation operator decides how a new
input is answered:

- ``softmax`` with inverse temperature beta: ``v_hat(q) = sum_n w_n v_n``,
  ``w = softmax(-beta (q - k)^2)``: Nadaraya-Watson kernel regression with a Gaussian
  kernel of width ``1 / sqrt(2 beta)``. It *blends* the values of neighbouring keys, i.e.
  interpolates; a small beta over-smooths towards the global mean, a very large beta
  converges to ``max``.
- ``max`` (one-hot argmax): nearest-neighbour regression, a staircase that snaps every
  query to the value of its closest stored key.
- ``identity`` (linear): ``v_hat = sum_n -(q - k_n)^2 v_n``, an unnormalised sum whose
  scale has nothing to do with the values: poor.

The error is the mean squared error between read and true function over all queries and
memories. The expected picture: error against beta is U-shaped, its minimum (at a width
comparable to the key spacing) below the nearest-neighbour error; as beta grows the error
approaches the max error from below; identity is far worse than either.

Uncertainty: the ``n_trials`` = 50 memories are independent repeats (fresh keys, values
and queries). Each error is the mean over them of the per-memory mean squared error, with
a Student-t 95 % interval (:func:`kvmem.metrics.mean_ci`): series ``error_softmax_ci``
(per beta), ``error_max_ci``, ``error_identity_ci``; metrics ``<error metric>_ci``, and
``best_softmax_vs_max_ci`` for the ratio of the best softmax error to the max error, paired
per memory (delta method: the interval of the mean of ``(a_i - R b_i) / mean(b)``). The
best beta is chosen on the mean curve. The figure draws the intervals as bands.
Measured (default config): best softmax (beta = 316) 0.0165 [0.0088, 0.0242], max
0.0249 [0.0170, 0.0328], identity 0.73 [0.56, 0.89]; best softmax / max 0.66 [0.55, 0.77]
(paired: the per-memory errors vary a lot, the comparison within a memory much less).
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
from kvmem.metrics import mean_ci
from kvmem.results import Result

__all__ = [
    "CLAIMS",
    "NAME",
    "DESCRIPTION",
    "Config",
    "neg_squared_euclidean",
    "target_function",
    "quick",
    "estimate_bytes",
    "run",
    "plot",
]

NAME = "generalization"
DESCRIPTION = (
    "Generalisation by blending: softmax interpolates between stored keys, "
    "max snaps to the nearest one (1-D function regression)"
)


@dataclass(frozen=True)
class Config:
    """Queries between stored keys (docs/science.md 4 item 3).

    ``n_keys`` keys per memory, ``n_trials`` independent memories, ``n_queries`` random
    between-key queries per memory; values ``sin(2 pi frequency k)`` plus Gaussian noise of
    standard deviation ``value_noise``; ``betas`` the softmax sweep; ``curve_points``
    evenly spaced inputs on which the figure draws each method's read for the first memory.
    """

    seed: int = 0
    n_keys: int = 16
    n_trials: int = 50
    n_queries: int = 200
    frequency: float = 1.0
    value_noise: float = 0.0
    betas: tuple[float, ...] = tuple(round(10 ** (e / 2), 1) for e in range(0, 13))  # 1..1e6
    curve_points: int = 400

    def __post_init__(self) -> None:
        if self.n_keys < 2:
            raise ValueError(f"n_keys: expected an integer >= 2, got {self.n_keys}")
        for name in ("n_trials", "n_queries", "curve_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.frequency) and self.frequency > 0):
            raise ValueError(f"frequency: expected a finite value > 0, got {self.frequency}")
        if not (math.isfinite(self.value_noise) and self.value_noise >= 0):
            raise ValueError(f"value_noise: expected a finite value >= 0, got {self.value_noise}")
        if not self.betas or any(not (math.isfinite(b) and b > 0) for b in self.betas):
            raise ValueError(f"betas: expected finite values > 0, got {self.betas}")
        if list(self.betas) != sorted(set(self.betas)):
            raise ValueError(f"betas: expected strictly increasing values, got {self.betas}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float64), keyed by the size field grown most over the default.

    The squared distances of every query to every key, built from coordinate differences
    ``[n_trials, n_queries, n_keys, 1]`` (with temporaries), the scores and weights of a
    read, and the figure's curves ``[curve_points, n_keys]``.
    ``check_memory`` refuses a config over this machine's memory.
    """
    c, d = config, Config()
    t, q, n = c.n_trials, c.n_queries, c.n_keys
    need = 8 * (6 * t * q * n + 4 * t * (q + n) + 6 * c.curve_points * n)
    grown = {
        "n_trials": c.n_trials / d.n_trials,
        "n_queries": c.n_queries / d.n_queries,
        "n_keys": c.n_keys / d.n_keys,
        "curve_points": c.curve_points / d.curve_points,
    }
    return charge_to_most_grown(grown, need)


def quick(config: Config) -> Config:
    """10 memories, 50 queries each, every other beta."""
    return replace(config, n_trials=10, n_queries=50, betas=config.betas[::2], curve_points=100)


def neg_squared_euclidean(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``S(q, k) = -|q - k|^2``: ``[..., Q, d] x [..., N, d] -> [..., Q, N]`` (docs/science.md 1.2).

    With softmax separation the read weights are a normalised Gaussian kernel
    ``exp(-beta |q - k|^2)``, i.e. Nadaraya-Watson regression. Computed from coordinate
    differences (exact for nearby points).
    """
    return -(q.unsqueeze(-2) - k.unsqueeze(-3)).square().sum(-1)


def target_function(x: torch.Tensor, frequency: float = 1.0) -> torch.Tensor:
    """The smooth function the values sample: ``sin(2 pi frequency x)``."""
    return torch.sin(2 * math.pi * frequency * x)


def _memory(
    separation: str, beta: float | None, keys: torch.Tensor, values: torch.Tensor
) -> SlotMemory:
    mem = SlotMemory(neg_squared_euclidean, separation, beta=beta)
    mem.write(keys, values)
    return mem


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Interpolation error of softmax (each beta), max and identity; curves for the figure."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    gen = torch.Generator().manual_seed(config.seed)
    t, n, f = config.n_trials, config.n_keys, config.frequency
    dt = torch.float64
    keys = torch.rand(t, n, 1, generator=gen, dtype=dt).sort(dim=1).values  # [T, N, 1]
    values = target_function(keys, f)
    if config.value_noise > 0:
        values = values + config.value_noise * torch.randn(values.shape, generator=gen, dtype=dt)
    lo, hi = keys[:, :1], keys[:, -1:]
    queries = lo + (hi - lo) * torch.rand(t, config.n_queries, 1, generator=gen, dtype=dt)
    truth = target_function(queries, f)

    # the figure's curves: the first memory read on an even grid over [0, 1]
    grid = torch.linspace(0, 1, config.curve_points, dtype=dt)[:, None]
    k0, v0 = keys[0], values[0]

    def mse(read: torch.Tensor) -> torch.Tensor:
        """Per-memory mean squared error, ``[T]``."""
        return (read - truth).square().mean((-2, -1))

    series: dict[str, list] = {"beta": [float(b) for b in config.betas]}
    per_beta = []
    for beta in progress(config.betas, total=len(config.betas), desc="betas"):
        per_beta.append(mse(_memory("softmax", beta, keys, values).read(queries)))
    soft_t = torch.stack(per_beta, dim=-1)  # [T, betas]
    max_t = mse(_memory("hard_max", None, keys, values).read(queries))  # [T]
    id_t = mse(_memory("identity", None, keys, values).read(queries))
    errors, errors_ci = mean_ci(soft_t)
    err_max, err_max_ci = mean_ci(max_t)
    err_id, err_id_ci = mean_ci(id_t)
    series["error_softmax"] = errors
    series["error_softmax_ci"] = errors_ci
    series["error_max"] = [err_max]
    series["error_max_ci"] = [err_max_ci]
    series["error_identity"] = [err_id]
    series["error_identity_ci"] = [err_id_ci]

    best = min(range(len(errors)), key=errors.__getitem__)
    # figure curves: over-smoothed (smallest beta), best, and sharp (largest beta) softmax
    shown = sorted({0, best, len(errors) - 1})
    series["curve_x"] = grid.squeeze(-1).tolist()
    series["curve_true"] = target_function(grid, f).squeeze(-1).tolist()
    series["curve_max"] = _memory("hard_max", None, k0, v0).read(grid).squeeze(-1).tolist()
    series["curve_identity"] = _memory("identity", None, k0, v0).read(grid).squeeze(-1).tolist()
    series["curve_softmax_betas"] = [float(config.betas[i]) for i in shown]
    series["curve_softmax"] = [
        _memory("softmax", config.betas[i], k0, v0).read(grid).squeeze(-1).tolist() for i in shown
    ]
    series["stored_keys"] = k0.squeeze(-1).tolist()
    series["stored_values"] = v0.squeeze(-1).tolist()

    metrics: dict[str, float | list[float]] = {
        "error_max": err_max,
        "error_max_ci": err_max_ci,
        "error_identity": err_id,
        "error_identity_ci": err_id_ci,
        "error_softmax_best": errors[best],
        "error_softmax_best_ci": errors_ci[best],
        "best_beta": float(config.betas[best]),
        "error_softmax_largest_beta": errors[-1],
        "error_softmax_largest_beta_ci": errors_ci[-1],
        "error_softmax_smallest_beta": errors[0],
        "error_softmax_smallest_beta_ci": errors_ci[0],
        "best_softmax_vs_max": errors[best] / err_max if err_max > 0 else math.nan,
    }
    if err_max > 0:
        # the ratio of means R = mean(a) / mean(b), paired per memory (delta method): its
        # error is that of the mean of (a_i - R b_i) / mean(b), which has mean 0
        r = errors[best] / err_max
        resid = (soft_t[:, best] - r * max_t) / max_t.mean()
        _, half = mean_ci(resid)
        metrics["best_softmax_vs_max_ci"] = [r + half[0], r + half[1]]
    return Result(experiment=NAME, config=asdict(config), metrics=metrics, series=series)


def plot(result: Result) -> Figure:
    """(A) the first memory: true function, stored points and each method's read across
    the input range; (B) between-key error against beta, with max and identity levels."""
    s, m = result.series, result.metrics
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2)

    x = s["curve_x"]
    ax_a.plot(x, s["curve_true"], color="k", lw=2.5, alpha=0.35, label="true function")
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    betas = s["curve_softmax_betas"]
    for i, (beta, curve) in enumerate(zip(betas, s["curve_softmax"], strict=True)):
        tag = " (best)" if beta == m.get("best_beta") else ""
        ax_a.plot(
            x,
            curve,
            color=cmap(0.1 + 0.75 * i / max(1, len(betas) - 1)),
            lw=1.5,
            label=f"softmax, beta = {beta:g}{tag}",
        )
    ident = s["curve_identity"]
    peak = max(abs(v) for v in ident) or 1.0
    ax_a.plot(
        x,
        [v / peak for v in ident],
        color="tab:gray",
        ls=":",
        lw=1.2,
        label=f"identity (divided by {peak:.3g})",
    )
    ax_a.plot(x, s["curve_max"], color="tab:red", ls="--", lw=1.3, label="max (nearest neighbour)")
    ax_a.plot(s["stored_keys"], s["stored_values"], "o", color="k", ms=5, label="stored pairs")
    ax_a.set_xlabel("input (key / query)")
    ax_a.set_ylabel("value read")
    ax_a.set_ylim(-1.6, 1.6)
    ax_a.set_title("A  reads across the input space (one memory)", loc="left", fontsize=10)
    ax_a.legend(fontsize=7, loc="lower left")

    ax_b.loglog(s["beta"], s["error_softmax"], "-o", color="tab:blue", ms=4, label="softmax")
    if "error_softmax_ci" in s:
        ci = s["error_softmax_ci"]
        ax_b.fill_between(
            s["beta"], [p[0] for p in ci], [p[1] for p in ci], color="tab:blue", alpha=0.2, lw=0
        )
    ax_b.axhline(m["error_max"], color="tab:red", lw=1.3, label="max (nearest neighbour)")
    ax_b.axhline(m["error_identity"], color="tab:gray", ls=":", lw=1.3, label="identity")
    for key, col in (("error_max_ci", "tab:red"), ("error_identity_ci", "tab:gray")):
        if key in m:
            ax_b.axhspan(*m[key], color=col, alpha=0.15, lw=0)
    ax_b.plot(
        [m["best_beta"]],
        [m["error_softmax_best"]],
        "*",
        ms=14,
        color="gold",
        mec="k",
        label=f"best beta = {m['best_beta']:g}",
    )
    ax_b.set_xlabel("softmax inverse temperature beta")
    ax_b.set_ylabel("mean squared error at between-key queries")
    n_trials = (result.config or {}).get("n_trials")
    band = f"\n   bands: 95 % intervals over {n_trials} memories" if n_trials else ""
    ax_b.set_title(
        f"B  blending beats snapping at intermediate beta{band}", loc="left", fontsize=10
    )
    ax_b.legend(fontsize=8)
    return fig


#: The generalisation-by-blending claims of docs/science.md 4 item 3, checked on every run.
#: The metric the report's summary shows first.
HEADLINE = "best_softmax_vs_max"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "between stored keys, an intermediate softmax beta interpolates better than "
        "nearest-neighbour (max) retrieval",
        lambda r: r.metrics["error_softmax_best"] < r.metrics["error_max"],
    ),
    Claim(
        "a very large beta approaches max (within 5 %)",
        lambda r: (
            abs(r.metrics["error_softmax_largest_beta"] - r.metrics["error_max"])
            <= 0.05 * r.metrics["error_max"]
        ),
    ),
    Claim(
        "identity separation (an unnormalised linear read) does not generalise (10x the "
        "error of max)",
        lambda r: r.metrics["error_identity"] > 10 * r.metrics["error_max"],
    ),
)
