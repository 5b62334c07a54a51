"""Paper Figure 2: keys and values optimised differently (A: 2 classes, B: 3 classes).

docs/science.md 3.1. ``N = classes * memories_per_class`` memories, each a free 2-D key
``k_i`` and a free 2-D value ``v_i``, and a class ``c(i)`` with a target feature
``t_i`` (A: class 0 -> (1, 0), class 1 -> (0, 1); B adds class 2 -> (1, 1)). Every memory
queries the memory with its own key and must read out its own class feature:

    a_j    = softmax_i( sg[k_i] . k_j / sqrt(2) )       (softmax over the stored memories i;
                                                         sg = stop-gradient on the stored keys)
    out_j  = sum_i a_j[i] sigmoid(v_i)
    L      = mean_{j, d} (out_j[d] - t_j[d])^2           (torch.nn.MSELoss)

optimised by Adam (lr 3e-4, betas (0.9, 0.999), eps 1e-8) for 5,000 (A) or 10,000 (B)
full-batch steps. Keys drift apart class by class (discriminability) while sigmoid(values)
converge onto the class features (fidelity).

Every detail follows the authors' notebooks ``2classes_key_value_optimization.ipynb`` and
``3classes_key_value_optimization.ipynb`` (github.com/kazuki-irie/kv-memory-brain):

- seed 42; keys ``torch.randn([N, 2]).uniform_(0, 1)``, values ``torch.rand([N, 2])``, then
  classes ``torch.randint(0, C, [N])``, in that order (the random stream);
- scores ``K.detach().mm(K.T) * 2 ** -0.5`` with ``Softmax(dim=0)`` and output
  ``A.T @ sigmoid(V)``: the *stored* keys ``k_i`` (the side the softmax runs over) are
  detached, and the gradient flows through the key used as the *query* ``k_j``. Note that
  docs/science.md 3.1 says the opposite ("the query side is detached"); kvmem follows the
  published code, which is what reproduces the published figure;
- the gradients are never zeroed: ``loss.backward()`` accumulates, so Adam sees the running
  sum of all per-step gradients (``accumulate_gradients=True``, the default; ``False`` is
  the textbook variant that zeroes them every step).

Two engines compute the same thing: ``"autograd"`` is the literal transcription of the
notebook (``nn.Parameter``, autograd, ``torch.optim.Adam``); ``"fast"`` (default) uses
hand-derived gradients (below) and an in-place Adam with the same arithmetic as
``torch.optim.Adam``, in one loop over preallocated buffers. They agree to float32
rounding (tests: final metrics within 1e-5 relative). With the scores
``S[j, i] = k_j . k_i / sqrt(2)``, ``E[j, i] = exp(S[j, i] - m_j)`` (any row shift ``m_j``),
``z_j = sum_i E[j, i]``, softmax rows ``B[j, i] = E[j, i] / z_j``,
``G = dL/dout = 2 (out - T) / (2N)`` and ``r_j = G_j . out_j``::

    dL/dk_j = (1 / sqrt(2)) sum_i B[j, i] (G_j . sigmoid(v_i) - r_j) k_i
            = (1 / (sqrt(2) z_j)) [ sum_d G_jd (E (s_d * K))_j - r_j (E K)_j ]
    dL/dv_i = (sum_j B[j, i] G_j) * s_i * (1 - s_i),          s = sigmoid(V)

so one product of ``E`` with ``[s, s_0 K, s_1 K, K, 1]`` gives the output, the row sums
``z`` and the key gradient together, and ``G^T E`` the value gradient. ``s`` and ``K`` enter
centred (minus their means over memories; exact, since softmax rows sum to 1), which keeps
the two terms of the key gradient small: measured against the same computation in float64,
the fast engine's float32 error is smaller than the autograd engine's (tests). Scores are
shifted by ``m_j = |k_j| max_i |k_i| / sqrt(2)`` (>= the row maximum, so ``exp`` cannot
overflow) inside the same score product; for keys longer than 20 the exact row maximum is
used instead. 0-d constant tensors, feature-major ``[2, N]`` buffers and precomputed views
keep the per-step overhead to a few dozen tiny kernel launches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from kvmem import metrics
from kvmem.experiments.base import (
    Claim,
    ProgressFactory,
    charge_to_most_grown,
    null_progress,
    single_thread,
)
from kvmem.results import Result

if TYPE_CHECKING:  # matplotlib is imported by plot() only: a run without a figure skips it
    from matplotlib.figure import Figure

__all__ = [
    "CLAIMS",
    "NAME",
    "DESCRIPTION",
    "Config",
    "CLASS_FEATURES",
    "Problem",
    "make_problem",
    "key_separability",
    "value_error",
    "retrieval_loss",
    "train",
    "estimate_bytes",
    "quick",
    "run",
    "plot",
]

NAME = "kv-optimization"
DESCRIPTION = "Paper Fig. 2: keys move apart for discriminability, values converge for fidelity"

#: target feature of each class (row c is class c); A uses the first 2 rows, B all 3
CLASS_FEATURES: tuple[tuple[float, float], ...] = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))

KEY_DIM = 2
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam defaults
# below this key norm the Cauchy-Schwarz shift cannot underflow exp in float32:
# exp(-c |k|^2 / 4) > 1e-30 for |k| < 20
_SAFE_NORM = 20.0


@dataclass(frozen=True)
class Config:
    """Key-value optimisation (docs/science.md 3.1); the defaults are the published protocol.

    ``steps=None`` means the published length: 5,000 steps for 2 classes, 10,000 for 3.
    ``trajectory_every``: keep a snapshot of keys and values every this many steps for the
    figure (``None``: about 100 snapshots). ``engine``: ``"fast"`` (hand-derived gradients)
    or ``"autograd"`` (the notebook's code, literally).
    """

    classes: Literal[2, 3] = 2
    steps: int | None = None
    lr: float = 3e-4
    memories_per_class: int = 100
    seed: int = 42
    accumulate_gradients: bool = True
    trajectory_every: int | None = None
    engine: Literal["fast", "autograd"] = "fast"

    def __post_init__(self) -> None:
        if self.classes not in (2, 3):
            raise ValueError(f"classes: expected 2 or 3, got {self.classes!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps: expected >= 1 or none, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a finite value > 0, got {self.lr}")
        if self.memories_per_class < 1:
            raise ValueError(f"memories_per_class: expected >= 1, got {self.memories_per_class}")
        if self.trajectory_every is not None and self.trajectory_every < 1:
            raise ValueError(
                f"trajectory_every: expected >= 1 or none, got {self.trajectory_every}"
            )
        if self.engine not in ("fast", "autograd"):
            raise ValueError(f"engine: expected 'fast' or 'autograd', got {self.engine!r}")

    @property
    def n_steps(self) -> int:
        """The number of Adam steps actually run."""
        if self.steps is not None:
            return self.steps
        return 5000 if self.classes == 2 else 10000

    @property
    def snapshot_every(self) -> int:
        """Steps between trajectory snapshots."""
        if self.trajectory_every is not None:
            return self.trajectory_every
        return max(1, self.n_steps // 100)


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run by the field that drives it (``check_memory`` refuses too big).

    The ``[N, N]`` score and gradient matrices (float32, a few copies), the loss curve, and
    the kept trajectory snapshots of keys and values (``[snapshots, N, 2]`` each, plus the
    JSON lists they become); checked within 2x of the measured peak of the defaults.
    """
    c, d = config, Config(classes=config.classes)
    n = c.classes * c.memories_per_class
    snaps = c.n_steps // c.snapshot_every + 2
    need = 4 * 8 * n * n + 40 * c.n_steps + snaps * n * (2 * 2 * 4 + 2 * 150)
    grown = {
        "memories_per_class": (c.memories_per_class / d.memories_per_class) ** 2,
        "steps": c.n_steps / d.n_steps,
        "trajectory_every": snaps / (d.n_steps // d.snapshot_every + 2),
    }
    return charge_to_most_grown(grown, need)


def quick(config: Config) -> Config:
    """300 steps: the same experiment, shrunk for smoke tests."""
    return replace(config, steps=300)


# ----------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class Problem:
    """Initial memories of one run: keys ``[N, 2]``, raw values ``[N, 2]`` (float32),
    classes ``[N]`` (int64) and targets ``[N, 2]`` = the class feature of each memory."""

    keys: torch.Tensor
    values: torch.Tensor
    classes: torch.Tensor
    targets: torch.Tensor


def make_problem(classes: int, memories_per_class: int = 100, seed: int = 42) -> Problem:
    """Draw the initial memories exactly as the published notebooks (same random stream).

    A generator seeded with ``seed`` (the same stream as ``torch.manual_seed(seed)``, but
    leaving the global RNG alone) draws keys ``randn([N, 2]).uniform_(0, 1)``, values
    ``rand([N, 2])`` and classes ``randint(0, classes, [N])``, in that order.
    """
    n = classes * memories_per_class
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn([n, KEY_DIM], generator=g).uniform_(0, 1, generator=g)
    values = torch.rand([n, KEY_DIM], generator=g)
    cls = torch.randint(low=0, high=classes, size=[n], generator=g)
    features = torch.tensor(CLASS_FEATURES[:classes], dtype=torch.float32)
    return Problem(keys, values, cls, features[cls])


# ----------------------------------------------------------------------------- measures


def key_separability(keys: torch.Tensor, classes: torch.Tensor) -> float:
    """Between-class over within-class scatter of the keys (docs/architecture.md), in float64.

    ``sum_c n_c |mu_c - mu|^2 / sum_i |k_i - mu_{c(i)}|^2`` for keys ``[N, d]`` and integer
    classes ``[N]``: ``kvmem.metrics.key_separability`` as a Python float.
    """
    return float(metrics.key_separability(keys.detach().to(torch.float64), classes))


def value_error(values: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over memories of ``|sigmoid(v_i) - t_i|^2`` (summed over the 2 dimensions)."""
    s = torch.sigmoid(values.detach().to(torch.float64))
    return float(metrics.value_error(s, targets.to(torch.float64)))


def retrieval_loss(keys: torch.Tensor, values: torch.Tensor, targets: torch.Tensor) -> float:
    """The training objective at the given memories (float32, as in the notebook)."""
    with torch.no_grad():
        a = torch.softmax(keys.mm(keys.T) * (KEY_DIM**-0.5), dim=0)
        out = torch.matmul(a.T, torch.sigmoid(values))
        return float(nn.functional.mse_loss(out, targets))


# ----------------------------------------------------------------------------- engines

Snapshot = Callable[[int, torch.Tensor, torch.Tensor], None]


class _KeyValueMemory(nn.Module):
    """The notebook's ``SoftmaxKeyValueMemory`` (free keys and values, softmax over dim 0).

    ``K.detach().mm(K.T)``: rows (the stored keys, softmax axis) are detached; gradients
    reach the keys only through their role as queries (columns)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.key_representations = nn.Parameter(keys)
        self.value_representations = nn.Parameter(values)
        self.softmax = nn.Softmax(dim=0)

    def forward(self) -> torch.Tensor:
        k = self.key_representations
        attn = self.softmax(k.detach().mm(k.T) * (KEY_DIM**-0.5))
        return torch.matmul(attn.T, torch.sigmoid(self.value_representations))


def _train_autograd(
    problem: Problem,
    steps: int,
    lr: float,
    accumulate: bool,
    snapshot: Snapshot,
    progress: ProgressFactory,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    model = _KeyValueMemory(problem.keys.clone(), problem.values.clone())
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = torch.empty(steps)
    for t in progress(range(1, steps + 1), total=steps, desc="kv-optimization"):
        if not accumulate:
            optimizer.zero_grad()
        loss = loss_fn(model(), problem.targets)
        loss.backward()
        optimizer.step()
        losses[t - 1] = loss.detach()
        snapshot(t, model.key_representations.detach(), model.value_representations.detach())
    return (
        model.key_representations.detach().clone(),
        model.value_representations.detach().clone(),
        losses,
    )


def _train_fast(
    problem: Problem,
    steps: int,
    lr: float,
    accumulate: bool,
    snapshot: Snapshot,
    progress: ProgressFactory,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Everything is stored feature-major ([2, N]: one row per coordinate) so that the small
    # elementwise operations run over contiguous rows of length N; constants are 0-d tensors
    # (a Python number costs a wrapped-tensor allocation per operation).
    n = len(problem.keys)
    c = KEY_DIM**-0.5
    norm = 2.0 / (n * KEY_DIM)  # d mean((out - t)^2) / d out = norm * (out - t)
    c_t = torch.tensor(c)
    beta2_t = torch.tensor(_BETA2)
    eps_t = torch.tensor(_EPS)
    # torch.optim.Adam's per-step bias corrections (computed in double, used as float32)
    step_sizes = [lr / (1 - _BETA1**t) for t in range(1, steps + 1)]
    bc2_sqrt = torch.tensor([(1 - _BETA2**t) ** 0.5 for t in range(1, steps + 1)]).unbind()
    # parameters, gradients, Adam moments: [2, 2, N] stacks (index 0 keys^T, 1 values^T)
    params = torch.stack([problem.keys.T, problem.values.T]).to(torch.float32).contiguous()
    keys, values = params[0], params[1]
    grad = torch.zeros_like(params)
    step_grad = torch.empty_like(params)
    d_keys, d_values = step_grad[0], step_grad[1]
    grad_scale = torch.tensor([c * norm, norm]).view(2, 1, 1)
    exp_avg = torch.zeros_like(params)
    exp_avg_sq = torch.zeros_like(params)
    denom = torch.empty_like(params)
    target = problem.targets.T.to(torch.float32).contiguous()

    # shifted scores in one product: E[j, i] = [c k_j, |k_j|] . [k_i, -c max|k|]
    # = c k_j . k_i - m_j with m_j = c |k_j| max_i |k_i| >= max_i c k_j . k_i
    # (Cauchy-Schwarz), so exp <= 1; a row shift cancels in the softmax
    query = torch.empty(KEY_DIM + 1, n)
    q_keys, key_norm = query[:KEY_DIM], query[KEY_DIM]
    memory = torch.empty(KEY_DIM + 1, n)
    m_keys, m_shift = memory[:KEY_DIM], memory[KEY_DIM]
    e = torch.empty(n, n)  # E; the softmax rows are E / z
    # one product [s', s'_0 k', s'_1 k', k', 1]^T E^T gives the output, the key gradient and
    # z, with s' = s - mean(s) and k' = k - mean(k): centring changes nothing mathematically
    # (the softmax weights sum to 1 and sum_i B[j, i] (G_j . (s_i - out_j)) = 0) but keeps the
    # two terms of the key gradient small, so their difference loses fewer digits
    w = torch.ones(4 * KEY_DIM + 1, n)
    w_s, w_k = w[0:2], w[6:8]
    w_sk = w[2:6].view(KEY_DIM, KEY_DIM, n)  # [d, 2, N]: s'_d * k'
    sig = torch.empty(KEY_DIM, n)  # s = sigmoid(values)
    s_mean = torch.empty(KEY_DIM, 1)
    k_mean = torch.empty(KEY_DIM, 1)
    out_c = torch.empty(KEY_DIM, n)  # out - mean(s)
    ew = torch.empty(4 * KEY_DIM + 1, n)
    ew_s, ew_s0k, ew_s1k, ew_k, ew_z = ew[0:2], ew[2:4], ew[4:6], ew[6:8], ew[8]
    inv_z = torch.empty(n)
    out = torch.empty(KEY_DIM, n)
    diff = torch.empty(KEY_DIM, n)
    dz = torch.empty(KEY_DIM, n)
    dz0, dz1 = dz[0], dz[1]
    r = torch.empty(n)
    tmp = torch.empty(KEY_DIM, n)
    sq_err = torch.empty(steps)
    # views of the buffers, made once (the loop only writes into existing storage)
    query_t, e_t, s_rows, k_rows = query.T, e.T, w_s.unsqueeze(1), w_k.unsqueeze(0)
    diff_flat, keys_x, keys_y = diff.view(-1), keys[0], keys[1]
    keys_nd, values_nd = keys.T, values.T
    sq_err_at = sq_err.unbind()

    for t in progress(range(1, steps + 1), total=steps, desc="kv-optimization"):
        # forward: E = exp(c K K^T - shift), z = row sums of E, out = (E s) / z
        torch.hypot(keys_x, keys_y, out=key_norm)
        largest = float(key_norm.max())
        torch.mul(keys, c_t, out=q_keys)
        if largest < _SAFE_NORM:
            m_keys.copy_(keys)
            m_shift.fill_(-c * largest)
            torch.mm(query_t, memory, out=e)
        else:  # huge keys: the bound could underflow exp, shift by the exact row maximum
            torch.mm(q_keys.T, keys, out=e)
            e.sub_(torch.amax(e, 1, keepdim=True))
        e.exp_()
        torch.sigmoid(values, out=sig)
        torch.sub(sig, torch.mean(sig, 1, keepdim=True, out=s_mean), out=w_s)
        torch.sub(keys, torch.mean(keys, 1, keepdim=True, out=k_mean), out=w_k)
        torch.mul(s_rows, k_rows, out=w_sk)
        torch.mm(w, e_t, out=ew)
        torch.reciprocal(ew_z, out=inv_z)
        torch.mul(ew_s, inv_z, out=out_c)
        torch.add(out_c, s_mean, out=out)
        torch.sub(out, target, out=diff)
        torch.dot(diff_flat, diff_flat, out=sq_err_at[t - 1])
        # backward (module docstring), in units of norm (keys: c * norm), scaled below
        torch.mul(diff, inv_z, out=dz)
        torch.mul(diff, out_c, out=tmp)
        torch.add(tmp[0], tmp[1], out=r).mul_(inv_z)
        torch.mul(ew_s0k, dz0, out=d_keys)
        d_keys.addcmul_(ew_s1k, dz1).addcmul_(ew_k, r, value=-1)
        torch.mm(dz, e, out=d_values)
        torch.addcmul(sig, sig, sig, value=-1, out=tmp)  # sigmoid' = s (1 - s)
        d_values.mul_(tmp)
        step_grad.mul_(grad_scale)
        if accumulate:
            grad.add_(step_grad)
        else:
            grad.copy_(step_grad)
        # Adam, with torch.optim.Adam's arithmetic (single-tensor path)
        exp_avg.lerp_(grad, 1 - _BETA1)
        exp_avg_sq.mul_(beta2_t).addcmul_(grad, grad, value=1 - _BETA2)
        torch.sqrt(exp_avg_sq, out=denom).div_(bc2_sqrt[t - 1]).add_(eps_t)
        params.addcdiv_(exp_avg, denom, value=-step_sizes[t - 1])
        snapshot(t, keys_nd, values_nd)
    return keys_nd.clone(), values_nd.clone(), sq_err / (n * KEY_DIM)


def train(
    problem: Problem,
    steps: int,
    lr: float = 3e-4,
    accumulate_gradients: bool = True,
    engine: Literal["fast", "autograd"] = "fast",
    snapshot_every: int = 0,
    progress: ProgressFactory = null_progress,
) -> dict[str, Any]:
    """Optimise keys and values of ``problem`` for ``steps`` Adam steps.

    Returns ``keys`` and ``values`` (final, ``[N, 2]``), ``loss`` (``[steps]``, the loss of
    each step before its update) and, if ``snapshot_every > 0``, ``snapshot_steps``,
    ``key_trajectory`` and ``value_trajectory`` (``[S, N, 2]``, sigmoid of the values) with
    snapshots at step 0, every ``snapshot_every`` steps and at the last step. Runs
    single-threaded (the tensors are tiny; results do not depend on the thread count).
    """
    snap_steps = [0]
    key_snaps = [problem.keys.clone()]
    value_snaps = [torch.sigmoid(problem.values)]

    def snapshot(t: int, k: torch.Tensor, v: torch.Tensor) -> None:
        if snapshot_every > 0 and (t % snapshot_every == 0 or t == steps):
            snap_steps.append(t)
            key_snaps.append(k.clone())
            value_snaps.append(torch.sigmoid(v))

    fn = {"fast": _train_fast, "autograd": _train_autograd}[engine]
    with single_thread():
        keys, values, losses = fn(problem, steps, lr, accumulate_gradients, snapshot, progress)
    result: dict[str, Any] = {"keys": keys, "values": values, "loss": losses}
    if snapshot_every > 0:
        result["snapshot_steps"] = snap_steps
        result["key_trajectory"] = torch.stack(key_snaps)
        result["value_trajectory"] = torch.stack(value_snaps)
    return result


# ----------------------------------------------------------------------------- the experiment


def _rounded(x: torch.Tensor, decimals: int = 3) -> list[Any]:
    return np.round(x.numpy().astype(np.float64), decimals).tolist()


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Optimise keys and values; report loss, key separability and value error."""
    problem = make_problem(config.classes, config.memories_per_class, config.seed)
    out = train(
        problem,
        config.n_steps,
        config.lr,
        config.accumulate_gradients,
        config.engine,
        config.snapshot_every,
        progress,
    )
    k0, v0, tgt, cls = problem.keys, problem.values, problem.targets, problem.classes
    metrics = {
        "loss_initial": retrieval_loss(k0, v0, tgt),
        "loss_final": retrieval_loss(out["keys"], out["values"], tgt),
        "key_separability_initial": key_separability(k0, cls),
        "key_separability_final": key_separability(out["keys"], cls),
        "value_error_initial": value_error(v0, tgt),
        "value_error_final": value_error(out["values"], tgt),
    }
    series = {
        "loss": out["loss"].tolist(),
        "trajectory_step": out["snapshot_steps"],
        "key_trajectory": _rounded(out["key_trajectory"]),
        "value_trajectory": _rounded(out["value_trajectory"]),
        "classes": cls.tolist(),
        "class_features": [list(f) for f in CLASS_FEATURES[: config.classes]],
    }
    return Result(experiment=NAME, config={}, metrics=metrics, series=series)


# ----------------------------------------------------------------------------- the figure


def _class_colors(n_classes: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["hsv"](np.linspace(0, 0.7, n_classes))  # the notebooks' colours


def plot(result: Result) -> Figure:
    """Keys (top row) and sigmoid(values) (bottom row): initial, trajectories, final."""
    s = result.series
    cls = np.asarray(s["classes"], dtype=int)
    n_classes = len(s["class_features"])
    colors = _class_colors(n_classes)[cls]
    steps = np.asarray(s["trajectory_step"])
    rows = (
        ("keys", np.asarray(s["key_trajectory"])),
        ("sigmoid(values)", np.asarray(s["value_trajectory"])),
    )
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7.6), layout="constrained")
    axes = fig.subplots(2, 3)
    for r, (label, traj) in enumerate(rows):
        ax0, ax1, ax2 = axes[r]
        ax0.scatter(traj[0, :, 0], traj[0, :, 1], c=colors, s=14)
        # trajectories: every snapshot, fading in over training (as in the notebooks)
        n_snap = len(traj)
        alphas = np.repeat(np.linspace(0.02, 0.25, n_snap), traj.shape[1])
        rgba = np.tile(colors, (n_snap, 1))
        rgba[:, 3] = alphas
        ax1.scatter(
            traj[:, :, 0].ravel(), traj[:, :, 1].ravel(), c=rgba, s=3, lw=0, rasterized=True
        )
        ax1.scatter(traj[-1, :, 0], traj[-1, :, 1], c=colors, s=16, edgecolors="k", linewidths=0.4)
        ax2.scatter(traj[-1, :, 0], traj[-1, :, 1], c=colors, s=14)
        if r == 1:
            feats = np.asarray(s["class_features"])
            for ax in (ax0, ax1, ax2):
                ax.scatter(
                    feats[:, 0],
                    feats[:, 1],
                    marker="*",
                    s=160,
                    c=_class_colors(n_classes),
                    edgecolors="k",
                    zorder=5,
                )
        if r == 0:  # keys: one square window holding every trajectory
            lo, hi = float(traj.min()), float(traj.max())
            pad = 0.05 * (hi - lo + 1e-9)
            lo, hi = lo - pad, hi + pad
        else:  # sigmoid(values) live in the unit square
            lo, hi = -0.05, 1.05
        for ax in (ax0, ax1, ax2):
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
        unit = "key" if r == 0 else "sigmoid(value)"
        for ax in (ax0, ax1, ax2):
            ax.set_xlabel(f"{unit} dimension 1")
            ax.set_ylabel(f"{unit} dimension 2")
        ax0.set_title(f"{label}: initial (step 0)", fontsize=10)
        ax1.set_title(f"{label}: trajectories (final positions outlined)", fontsize=10)
        ax2.set_title(f"{label}: final (step {int(steps[-1])})", fontsize=10)
    panel = "A" if n_classes == 2 else "B"
    m = result.metrics
    fig.suptitle(
        f"{panel}  {n_classes} classes: loss {m['loss_initial']:.3g} -> {m['loss_final']:.3g}, "
        f"key separability {m['key_separability_initial']:.3g} -> "
        f"{m['key_separability_final']:.3g}, value error {m['value_error_initial']:.3g} -> "
        f"{m['value_error_final']:.3g}",
        fontsize=11,
    )
    return fig


#: What Figure 2 shows, checked on every run (the paper prints no numbers for it).
#: The metric the report's summary shows first.
HEADLINE = "key_separability_final"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "training lowers the retrieval loss",
        lambda r: r.metrics["loss_final"] < r.metrics["loss_initial"],
    ),
    Claim(
        "keys separate by class: key separability rises at least 100-fold",
        lambda r: (
            r.metrics["key_separability_final"] >= 100 * r.metrics["key_separability_initial"]
        ),
    ),
    Claim(
        "sigmoid(values) converge on the class features: value error falls at least 5-fold",
        lambda r: 5 * r.metrics["value_error_final"] <= r.metrics["value_error_initial"],
    ),
)
