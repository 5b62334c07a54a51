"""Keys versus values on real, correlated content: MNIST digits (docs/science.md 4 item 4).

Question. Classical memories retrieve by similarity between the cue and the stored items
themselves (key = value = image, docs/science.md 1.4). Does a key-value memory whose keys are a
*separate* representation built for discrimination (decorrelated, sparse, learned;
docs/science.md 1.5, 1.7) while its values are the original images retrieve correlated images
better from degraded cues?

Protocol (defaults; every number is a ``Config`` field).

- Items: MNIST test images (vendored ``mnist_test10k``), pixels in [0, 1] (uint8 / 255),
  D = 784. Per seed a random permutation of the 10,000 images; the first ``N`` are
  stored, for N in ``n_stored`` = 10, 20, 50, 100, 200, 500, 1000 (nested sets, so the
  curves over N share their random draws).
- Queries: every stored image, corrupted three ways (:mod:`kvmem.data.patterns`):
  ``noise`` = image + Gaussian noise, sigma = 1.0 per pixel, not clipped; ``mask`` = the
  bottom 14 rows set to 0; ``dropout`` = each pixel set to 0 with probability 0.5.
- Success (the universal-Hopfield benchmark criterion, Millidge et al. 2022, public code
  ``BerenMillidge/Theory_Associative_Memory``: ``functions.py`` ``ERROR_THRESHOLD = 60``,
  ``plotting.py`` ``error_threshold = 60``; images from ``ToTensor()``, i.e. in [0, 1]): a
  read succeeds when ``sum_pixels (read - original)^2 < 60`` for a 28 x 28 image. Their
  ``normalize_error_threshold`` option rescales the threshold to ``60 * 784 / D`` for other
  image sizes (their threshold-sweep figure marks 50); every image here has D = 784, so
  the threshold is 60 (``threshold``). They count ``<= 60``, here ``< 60``
  (:func:`kvmem.metrics.squared_error_success`); no read lands exactly on 60. Reported in
  percent of queries, mean over seeds.
- Caveat, measured: this criterion is loose on MNIST. Returning the *mean stored image*
  to every query succeeds for ~75 % of targets (series ``baseline_mean_image``), so a
  blurred blend of many digits can "succeed". The stricter ``identified_*`` series also
  requires the read to be nearest (Euclidean) to its own target among the stored images
  (for max separation: the right memory was picked).

Methods (series names).

- Autoassociative, key = value = image (the universal-Hopfield benchmark setting):
  ``auto_dot``, ``auto_euclidean``, ``auto_manhattan``: similarity dot, negative
  Euclidean, negative Manhattan distance (:mod:`kvmem.core.similarity`) with max
  separation (the read is the best-matching stored image); ``auto_<sim>_softmax``: the
  same with softmax separation, beta = 1 (dot), 10 (Euclidean), 1 (Manhattan), chosen so
  that the softmax read is still selective (on clean cues it identifies the right item
  about as often as max does) yet soft; smaller betas raise ``success`` by blending while
  identification collapses (a pilot run, one seed, N = 1000: dot with beta = 0.1 gives
  95-100 % success but <= 35 % identified).
- Key-value, key = phi(image), value = image, dot similarity of unit-length keys (= cosine),
  max separation (:mod:`kvmem.core.key_maps`); the query goes through the same phi:
  ``kv_centered``: ``phi(x) = (x - mean_j x_j) / |.|``, each image centred on its own mean
  (match = Pearson correlation); ``kv_whitened``: ZCA whitening fitted on the N stored
  images, ``(C + eps I)^(-1/2)`` with ``eps = shrinkage * tr(C) / D``, shrinkage 1;
  ``kv_expansion_kwta``: dentate-gyrus-like pattern separation, a fixed random expansion
  of the centred image to 2,000 units and 10 % binary k-winners-take-all;
  ``kv_learned``: a linear map ``D -> 64`` trained by gradient descent
  (:mod:`kvmem.nn.learned_keys`; softmax-retrieval cross-entropy, beta 20, full-batch
  Adam, 100 steps, initialised at PCA whitening).

What the learned map sees (``learned_fit``). ``"experience"`` (default): it is trained on
``n_experience`` = 500 *other* MNIST images (disjoint from every stored image of that seed)
and on corrupted copies of them that it generates itself, with fresh randomness each step,
from a mixture of the three corruption families (each copy gets noise, the mask or
dropout with probability 1/3, same sigma and fraction as the test). It never sees a stored
image or a test query; the trained map then keys every memory size (a slowly learned
projection, fast writes: docs/science.md 1.5). ``"stored"``: one map per N and seed, trained
on the N stored images and their self-generated corrupted copies (the paper-Figure-2
setting of keys optimised for the stored items). Caveat: the bottom-half mask is
deterministic, so the learner's masked copy of a stored image *is* that image's test
query; the ``mask`` numbers of ``"stored"`` are therefore optimistic.

Results (default config, seeds 0-2; success in % at N = 100 / N = 1000; the spread over
seeds is <= 1.2 points except for the dot-product memories, 3-9 points):

==========================  =============  =============  =============
method                      noise          mask           dropout
==========================  =============  =============  =============
auto_dot                    80.0 / 50.7    84.7 / 45.5    90.3 / 66.3
auto_euclidean              100  / 99.8    70.3 / 61.5    83.3 / 78.3
auto_manhattan              100  / 99.3    80.3 / 72.7    92.0 / 91.5
auto_dot_softmax            83.7 / 57.6    95.3 / 69.0    98.7 / 84.8
auto_euclidean_softmax      100  / 100     75.0 / 71.9    86.7 / 86.8
auto_manhattan_softmax      100  / 99.8    82.7 / 77.2    93.3 / 93.7
kv_centered                 99.7 / 99.5    99.7 / 98.8    100  / 100
kv_whitened                 93.7 / 79.3    97.7 / 99.3    100  / 99.5
kv_expansion_kwta           79.0 / 61.3    98.3 / 95.1    100  / 99.9
kv_learned (experience)     96.7 / 94.1    99.7 / 99.8    100  / 100
mean stored image as read   73.0 / 74.2 (whatever the cue)
==========================  =============  =============  =============

What they show. (1) Incomplete cues (mask, dropout): every separate key beats every
key = value memory, and the gap grows with N: at N = 1000 the best separate key is 27 points
above the best autoassociative memory (Manhattan, max) under masking and 8.5 points under
dropout; strict identification separates them further (mask: 97-98 % for whitened or
learned keys vs 62 % for Manhattan, 30-35 % for dot and Euclidean). Raw-pixel similarity
is dominated by what the cue lacks (the missing half, the dropped ink), which a centred,
decorrelated or learned key discounts. (2) White pixel noise: key = value with Euclidean
or Manhattan distance is already (near) perfect, as nearest-neighbour in pixel space is
what i.i.d. noise calls for; centring costs nothing, but whitening (79 %), the learned
projection (94 %) and the sparse kWTA code (61 %) *lose*: they give weight to
low-variance directions, where the noise is relatively strongest, or re-code it. So the
claim "pattern separation helps on correlated content" holds for incomplete cues, not for
additive noise. (3) The random expansion + kWTA code is never better than the centred
image it is computed from (a lossy random re-coding: it decorrelates stored codes but
decorrelates the cue from its target as much); sparser codes are worse still (a pilot run
with 2 % active units: 53 % under masking). (4) The
dot-product key = value memory is worst everywhere (it favours images with more ink).
(5) The learned map, trained only on other images, transfers: best on masked cues, tied
on dropout, behind the centred keys on noise. Fitted instead on the stored items
(``learned_fit="stored"``) it gives noise 95.9 %, mask 100 % (optimistic, see above) and
dropout 100 % at N = 1000.

Uncertainty. Every curve point and headline number is a mean over the ``n_seeds`` = 3
seeds (each a fresh draw of stored images, experience images, noise and dropout) with a
Student-t 95 % interval (:func:`kvmem.metrics.mean_ci`; with 3 seeds t = 4.3, so the
intervals are wide): series ``success_<corruption>_<method>_ci``,
``identified_<corruption>_<method>_ci`` and ``baseline_mean_image_ci`` (``[low, high]``
per N), metrics ``success_<corruption>_<method>_n<N>_ci``, ``best_success_<corruption>_ci``
and ``kv_minus_auto_<corruption>_n<N>_ci`` (the gap paired by seed). At N = 1000 the
masking gap is 27.2 [25.4, 28.9] points, dropout 8.5 [4.9, 12.2], noise -0.3 [-0.9, 0.4].
Ties between the binary kWTA codes are broken by float rounding, which depends on how the
score matrix is computed; the kWTA numbers can move by a few tenths of a point with it.

Progress and run time: the work is cut into jobs that run side by side on the cores torch
may use (per corruption: the key = value memories, dot and Euclidean sharing their
products, and each fixed key map's memory; per N: each refitted map; the fits), every
kernel on one thread, so the numbers are a serial run's bit for bit whatever the thread
count (``OMP_NUM_THREADS=1`` runs the jobs one after another). The bar ticks once per
unit of work: each job's score matrix filled in chunks of at most 400,000 query-item
pairs per seed (50,000 for the torch Manhattan loop), each refit and each fit. Manhattan
scores of large runs go through a compiled kernel (:mod:`kvmem.core.manhattan_kernel`,
numba) with the torch loop's exact sums. Each worker thread reuses scratch blocks
reserved once at the largest size (scores, softmax outcomes, column copies), so the
run does not fault in fresh memory chunk after chunk.

Measured on 2 cores with a single-thread matmul peak of 111-117 GFLOP/s (a quiet host):
the default run takes 4.9 s of computation; at 4000 stored, 24-27 s (4.5 GB peak). On a
slower day (74-95 GFLOP/s) the same runs took 8 s and 44 s. The float32 matrix products
alone are about 3,000 GFLOP.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.figure import Figure

from kvmem.core import manhattan_kernel
from kvmem.core.key_maps import CenteredKeys, ExpansionKWTAKeys, KeyMap, WhitenedKeys
from kvmem.data.bundled import load_mnist_test10k
from kvmem.data.patterns import add_gaussian_noise, drop_pixels, mask_bottom_half
from kvmem.experiments.base import (
    Claim,
    ProgressFactory,
    TaskPool,
    charge_to_most_grown,
    null_progress,
    single_thread,
)
from kvmem.metrics import mean_ci, squared_error_success
from kvmem.nn.learned_keys import LearnedLinearKeys
from kvmem.results import Result

__all__ = [
    "CLAIMS",
    "estimate_bytes",
    "NAME",
    "DESCRIPTION",
    "Config",
    "quick",
    "run",
    "plot",
    "CORRUPTIONS",
    "AUTO_METHODS",
    "KV_METHODS",
    "METHODS",
]

NAME = "keys-vs-values"
DESCRIPTION = (
    "MNIST: key = value retrieval vs separate discriminative keys (centred, whitened, "
    "kWTA, learned) under noise, masking and pixel dropout"
)

CORRUPTIONS: tuple[str, ...] = ("noise", "mask", "dropout")
#: autoassociative methods: name -> (similarity, separation)
AUTO_METHODS: dict[str, tuple[str, str]] = {
    "auto_dot": ("dot", "max"),
    "auto_euclidean": ("euclidean", "max"),
    "auto_manhattan": ("manhattan", "max"),
    "auto_dot_softmax": ("dot", "softmax"),
    "auto_euclidean_softmax": ("euclidean", "softmax"),
    "auto_manhattan_softmax": ("manhattan", "softmax"),
}
KV_METHODS: tuple[str, ...] = ("kv_centered", "kv_whitened", "kv_expansion_kwta", "kv_learned")
METHODS: tuple[str, ...] = (*AUTO_METHODS, *KV_METHODS)

_N_IMAGES = 10_000
_SIDE = 28


@dataclass(frozen=True)
class Config:
    """Keys-vs-values protocol (module docstring). Pixels in [0, 1]; D = 784."""

    seed: int = 0
    n_seeds: int = 3
    n_stored: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000)
    noise_sigma: float = 1.0
    dropout_fraction: float = 0.5
    threshold: float = 60.0
    beta_dot: float = 1.0
    beta_euclidean: float = 10.0
    beta_manhattan: float = 1.0
    whitening_shrinkage: float = 1.0
    expansion_units: int = 2000
    expansion_active: float = 0.1
    learned_fit: Literal["experience", "stored"] = "experience"
    n_experience: int = 500
    learned_dim: int = 64
    learned_steps: int = 100
    learned_lr: float = 0.01
    learned_beta: float = 20.0

    def __post_init__(self) -> None:
        ns = tuple(self.n_stored)
        if not ns:
            raise ValueError("n_stored: expected at least one memory size")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ns):
            raise ValueError(f"n_stored: expected positive integers, got {ns}")
        if any(b <= a for a, b in zip(ns[:-1], ns[1:], strict=True)):
            raise ValueError(f"n_stored: expected strictly increasing sizes, got {ns}")
        if self.learned_fit == "stored" and ns[0] < 2:
            raise ValueError("n_stored: learned_fit='stored' needs at least 2 stored images")
        extra = self.n_experience if self.learned_fit == "experience" else 0
        if ns[-1] + extra > _N_IMAGES:
            raise ValueError(
                f"n_stored: the largest memory ({ns[-1]}) plus n_experience ({extra}) must "
                f"fit in the {_N_IMAGES} MNIST test images"
            )
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds: expected an integer >= 1, got {self.n_seeds}")
        if self.learned_fit not in ("experience", "stored"):
            raise ValueError(
                f"learned_fit: expected 'experience' or 'stored', got {self.learned_fit!r}"
            )
        if self.learned_fit == "experience" and self.n_experience < 2:
            raise ValueError(f"n_experience: expected an integer >= 2, got {self.n_experience}")
        if not (math.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            raise ValueError(f"noise_sigma: expected a number >= 0, got {self.noise_sigma}")
        if not (0.0 <= self.dropout_fraction <= 1.0):
            raise ValueError(
                f"dropout_fraction: expected a number in [0, 1], got {self.dropout_fraction}"
            )
        for name in (
            "threshold",
            "beta_dot",
            "beta_euclidean",
            "beta_manhattan",
            "learned_lr",
            "learned_beta",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a number > 0, got {v}")
        if not (math.isfinite(self.whitening_shrinkage) and self.whitening_shrinkage >= 0):
            raise ValueError(
                f"whitening_shrinkage: expected a number >= 0, got {self.whitening_shrinkage}"
            )
        if self.expansion_units < 1:
            raise ValueError(
                f"expansion_units: expected an integer >= 1, got {self.expansion_units}"
            )
        if not (0.0 < self.expansion_active <= 1.0):
            raise ValueError(
                f"expansion_active: expected a number in (0, 1], got {self.expansion_active}"
            )
        if self.learned_dim < 1:
            raise ValueError(f"learned_dim: expected an integer >= 1, got {self.learned_dim}")
        if self.learned_steps < 0:
            raise ValueError(f"learned_steps: expected an integer >= 0, got {self.learned_steps}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run by the field that drives it (``check_memory`` refuses too big).

    Per seed: the stored images and their corrupted cues (float32 ``[n, 784]`` per
    corruption), the ``[n, n]`` score matrices of each method and corruption, the
    expansion codes ``[n, expansion_units]``, the whitening and learned maps; plus the
    10,000 bundled test images. Checked within 2x of the measured peak of the defaults.
    """
    c, d = config, Config()
    n, u, dim = max(c.n_stored), c.expansion_units, 784
    per_seed = 4 * (2 * 3 * n * dim + n * dim) + 8 * n * n + 4 * 4 * 3 * n * n
    per_seed += 4 * 3 * 4 * n * u + 8 * 3 * dim * dim + 4 * 3 * c.n_experience * dim
    per_seed += 4 * 4 * n * c.learned_dim
    grown = {
        "n_seeds": c.n_seeds / d.n_seeds,
        "n_stored": (n / max(d.n_stored)) ** 2,
        "expansion_units": c.expansion_units / d.expansion_units,
        "n_experience": c.n_experience / d.n_experience,
        "learned_dim": c.learned_dim / d.learned_dim,
    }
    return charge_to_most_grown(grown, 3 * 4 * 10_000 * dim + c.n_seeds * per_seed)


def quick(config: Config) -> Config:
    """Two seeds, N = 10, 50, 200, a smaller expansion and a short key-learning run."""
    return replace(
        config,
        n_seeds=2,
        n_stored=(10, 50, 200),
        expansion_units=500,
        n_experience=200,
        learned_steps=20,
    )


# ----------------------------------------------------------------------------- data


def _images() -> torch.Tensor:
    """All 10,000 MNIST test images, float32 ``[10000, 784]`` in [0, 1]."""
    x, _ = load_mnist_test10k()
    return torch.from_numpy(np.asarray(x, dtype=np.float32) / 255.0)


def _corrupt(x: torch.Tensor, kind: str, config: Config, gen: torch.Generator) -> torch.Tensor:
    """One corruption of images ``x`` ``[..., n, 784]`` (same shape out)."""
    if kind == "noise":
        return add_gaussian_noise(x, config.noise_sigma, gen)
    if kind == "mask":
        return mask_bottom_half(x, height=_SIDE, width=_SIDE)
    if kind == "dropout":
        return drop_pixels(x, config.dropout_fraction, gen)
    raise ValueError(f"corruption: expected one of {CORRUPTIONS}, got {kind!r}")


def _mixture(config: Config):  # noqa: ANN202 - a closure handed to the key learner
    """The learner's corruption family: each copy gets noise, the mask or dropout (p = 1/3).

    The same distributions as :func:`_corrupt` (``x + sigma * eps``; bottom 14 rows = 0;
    each pixel 0 with probability ``dropout_fraction``), drawn in the items' dtype and only
    for the copies that need them (this runs at every learning step).
    """
    sigma, frac = float(config.noise_sigma), float(config.dropout_fraction)
    bottom = (_SIDE - _SIDE // 2) * _SIDE

    def corrupt(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        which = torch.randint(0, 3, x.shape[:-1], generator=gen)
        q = x.clone()
        noisy, masked, dropped = which == 0, which == 1, which == 2
        n_noisy, n_dropped = int(noisy.sum()), int(dropped.sum())
        eps = torch.randn((n_noisy, x.shape[-1]), generator=gen, dtype=x.dtype)
        q[noisy] = x[noisy] + sigma * eps
        keep = torch.rand((n_dropped, x.shape[-1]), generator=gen, dtype=x.dtype) >= frac
        q[dropped] = x[dropped] * keep
        q[..., bottom:] = torch.where(masked.unsqueeze(-1), 0.0, q[..., bottom:])
        return q

    return corrupt


# ----------------------------------------------------------------------------- scoring


#: ``scratch(name, shape) -> tensor``: a contiguous float32 block of that shape, uninitialised
#: (the caller writes before it reads); the same name may hand back the same memory.
_Scratch = Callable[[str, tuple[int, ...]], torch.Tensor]


def _fresh(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A :data:`_Scratch` that allocates a new block every time."""
    return torch.empty(shape)


def _auto_blocks(
    sims: tuple[str, ...],
    queries: torch.Tensor,
    items: torch.Tensor,
    items_t: torch.Tensor,
    *,
    kernel: bool = False,
    x2: torch.Tensor | None = None,
    scratch: _Scratch | None = None,
) -> dict[str, torch.Tensor]:
    """Key = value scores ``{sim: [C, S, Q, N]}`` of queries ``[C, S, Q, D]`` against items
    ``[S, N, D]`` (``items_t``: the same items transposed, ``[S, D, N]``), for one group of
    similarities: ``("dot", "euclidean")``, which share their product ``q . x``, or
    ``("manhattan",)``, by the compiled kernel when ``kernel`` (the same bits, several
    times faster; :mod:`kvmem.core.manhattan_kernel`), else by the torch loop. ``x2``: the
    items' squared norms ``[S, 1, N]`` (:func:`_squared_norms`) when already computed;
    ``scratch``: where the blocks are written (:data:`_Scratch`, default fresh tensors).
    """
    new = scratch or _fresh
    shape = (*queries.shape[:-1], items.shape[-2])
    if sims == ("dot", "euclidean"):
        qx = _dot(queries, items, items_t, out=new("block_dot", shape))
        return {"dot": qx, "euclidean": _neg_euclidean(queries, items, qx, x2, scratch=new)}
    if sims == ("manhattan",):
        if kernel:
            block = manhattan_kernel.neg_manhattan_sequential(
                queries, items_t, out=new("block_manhattan", shape)
            )
            return {"manhattan": block}
        return {"manhattan": _neg_manhattan(queries, items, items_t)}
    raise ValueError(f"similarities: unknown group {sims!r}")


def _neg_euclidean(
    queries: torch.Tensor,
    items: torch.Tensor,
    qx: torch.Tensor,
    x2: torch.Tensor | None = None,
    scratch: _Scratch | None = None,
) -> torch.Tensor:
    """``-sqrt(|q|^2 + |x|^2 - 2 q.x)`` ``[C, S, Q, N]`` from the dot scores ``qx``.

    A BLAS matmul; the library's ``neg_euclidean`` subtracts coordinates exactly but is
    ~20x slower, and at these distances, >= 1 apart for distinct images, the difference is
    ~1e-6 relative. ``x2``: :func:`_squared_norms` of the items, when the caller has them
    (a row chunk of queries against all N items would otherwise square every item again).
    The steps after the sum run in place on it: the same operations, so the same bits.
    ``scratch``: where the blocks are written (:data:`_Scratch`, default fresh tensors).
    """
    new = scratch or _fresh
    q2 = (queries * queries).sum(-1, keepdim=True)
    shape = tuple(qx.shape)
    d2 = torch.add(q2, _squared_norms(items) if x2 is None else x2, out=new("block_euc", shape))
    d2.sub_(torch.mul(qx, 2.0, out=new("block_tmp", shape))).clamp_min_(0.0)  # (= 2.0 * qx)
    return d2.sqrt_().neg_()


def _squared_norms(items: torch.Tensor) -> torch.Tensor:
    """``|x|^2`` of items ``[S, N, D]`` as ``[S, 1, N]`` (:func:`_neg_euclidean`'s broadcast)."""
    return (items * items).sum(-1).unsqueeze(-2)


def _matmul_c(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` for ``a [C, S, M, K]`` and ``b [S, K, N]`` (broadcast over C): ``[C, S, M, N]``.

    The value of torch's broadcast product, bit for bit: that product copies ``b`` once
    per C into a contiguous ``[C * S, K, N]`` and runs one batched product; here ``b`` is
    made contiguous once and the same per-seed products ``[M, K] @ [K, N]`` run as one
    batched product per C (the same GEMM shapes and layouts, so the same kernel and
    rounding; checked in the tests), about twice as fast on the large blocks. Stacking the
    C blocks' rows into one product per seed would be faster still but changes the BLAS
    kernel for small M, and with it the last bits. ``out``: a contiguous ``[C, S, M, N]``
    block to write the product into (a scratch buffer; the same kernel, so the same bits).
    """
    bc = b.contiguous()
    if out is None:
        out = torch.empty(*a.shape[:-1], b.shape[-1], dtype=a.dtype)
    for c in range(a.shape[0]):  # C = 3 corruptions, each one batched product
        torch.bmm(a[c], bc, out=out[c])
    return out


def _dot(
    queries: torch.Tensor,
    items: torch.Tensor,
    items_t: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dot scores ``q . x``: queries ``[C, S, Q, D]`` x items ``[S, N, D]`` -> ``[C, S, Q, N]``
    (:func:`kvmem.core.similarity.dot`'s value, via :func:`_matmul_c`). ``items_t``: the
    same items already transposed, ``[S, D, N]`` (a column slice of a transposed copy made
    once: copying that slice is a fast row copy, transposing the items for every block of
    the score matrix was the run's largest cost). ``out``: as :func:`_matmul_c`'s."""
    return _matmul_c(queries, items.transpose(-1, -2) if items_t is None else items_t, out)


def _neg_manhattan(
    queries: torch.Tensor, items: torch.Tensor, items_t: torch.Tensor | None = None
) -> torch.Tensor:
    """``-sum_d |q_d - x_d|``: queries ``[C, S, Q, D]`` x items ``[S, N, D]`` -> ``[C, S, Q, N]``.

    The value of :func:`kvmem.core.similarity.neg_manhattan` (``torch.cdist``, p = 1, direct
    mode), bit for bit: on the CPU cdist adds the terms of each pair one after another,
    d = 0, 1, ..., D - 1, in float32, one pair at a time (~0.65 G terms/s). Here the same
    additions in the same order run for all pairs of the block at once, one coordinate
    at a time (a loop over the D features, each step vectorised over C x S x Q x N pairs),
    ~3x faster on the large blocks; checked in the tests.
    """
    qt = queries.movedim(-1, 0).contiguous().unsqueeze(-1)  # [D, C, S, Q, 1]
    # [D, S, 1, N]: a view of the transposed items when given (the terms are elementwise,
    # so the layout does not change them), else a transposed copy
    xt = (
        items_t.movedim(-2, 0) if items_t is not None else items.movedim(-1, 0).contiguous()
    ).unsqueeze(-2)
    acc = torch.zeros(*queries.shape[:-1], items.shape[-2], dtype=queries.dtype)
    tmp = torch.empty_like(acc)
    for d in range(queries.shape[-1]):
        acc.add_(torch.sub(qt[d], xt[d], out=tmp).abs_())
    return acc.neg_()


@dataclass
class _Outcome:
    """Per-seed fractions ``[C, S]`` of one method at one N, and (at N_max) the picks."""

    success: torch.Tensor
    identified: torch.Tensor
    picks: torch.Tensor | None = None  # [C, S, n] indices chosen by max separation


def _max_outcome(scores: torch.Tensor, d2: torch.Tensor, threshold: float) -> _Outcome:
    """Max separation: the read is the best-matching stored image.

    ``scores`` ``[C, S, n, n]`` (query i of item i), ``d2`` ``[S, n, n]`` squared distances
    between the stored images, so the read's squared error is ``d2[i, argmax]``.
    """
    idx = scores.argmax(-1)  # [C, S, n] (the index of sep.hard_max's one-hot)
    n = idx.shape[-1]
    err = torch.gather(d2.unsqueeze(0).expand(idx.shape[0], -1, -1, -1), -1, idx.unsqueeze(-1))
    err = err.squeeze(-1)
    target = torch.arange(n)
    ok = err < threshold
    ident = ok & (idx == target)
    return _Outcome(ok.double().mean(-1), ident.double().mean(-1), idx)


def _soft_outcome(
    scores: torch.Tensor,
    beta: float,
    values: torch.Tensor,
    threshold: float,
    scratch: _Scratch = _fresh,
) -> _Outcome:
    """Softmax separation: the read ``softmax(beta s) V`` ``[C, S, n, D]`` is a blend.

    The values of :func:`kvmem.core.separation.softmax`,
    :func:`kvmem.metrics.squared_error_success` and :func:`_identified` on these inputs,
    bit for bit, with fewer passes over the ``[C, S, n, n]`` and ``[C, S, n, D]`` blocks
    (checked in the tests): no input checks (the scores are finite by construction), no
    ``1.0 *`` scale pass, the squares and the identification's ``2 r`` formed in place,
    and ``|v|^2 - 2 r.v`` written over the product. Every block is taken from ``scratch``
    (the run hands each worker's blocks from one outcome to the next, instead of the page
    faults of fresh ones, ~0.1 s per 183 MB block); the softmax weights' block is reused
    for the identification's product, once the read is formed.
    """
    s_shape = tuple(scores.shape)
    if beta != 1.0:
        x = torch.mul(scores, beta, out=scratch("scores", s_shape))
    elif scores.is_contiguous():
        x = scores
    else:  # (the softmax makes this contiguous copy itself otherwise)
        x = scratch("scores", s_shape).copy_(scores)
    w = torch.ops.aten._softmax.out(x, -1, False, out=scratch("weights", s_shape))
    v = values if values.is_contiguous() else scratch("values", tuple(values.shape)).copy_(values)
    r_shape = (*s_shape[:-1], v.shape[-1])
    read = _matmul_c(w, v, out=scratch("read", r_shape))  # [C, S, n, D], = w @ values
    diff = torch.sub(read, v, out=scratch("diff", r_shape))
    ok = diff.mul_(diff).sum(-1) < threshold  # (x * x is torch's x ** 2, bit for bit)
    sq = torch.mul(v, v, out=diff[0]).sum(-1).unsqueeze(-2)  # (diff is spent: reuse it)
    v_t = scratch("values_t", (v.shape[0], v.shape[-1], v.shape[-2]))
    v_t.copy_(v.transpose(-1, -2))
    ident = ok & _identified(read.mul_(2.0), v_t, sq, out=w)  # (w is spent: reuse it)
    return _Outcome(ok.double().mean(-1), ident.double().mean(-1))


def _identified(
    read2: torch.Tensor,
    values_t: torch.Tensor,
    sq: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`kvmem.metrics.retrieval_accuracy` of reads ``r`` ``[C, S, n, D]``, given doubled
    (``read2 = 2 r``, an exact doubling), against the stored values, given transposed
    (``values_t [S, D, n]``) with their squared norms (``sq [S, 1, n]``) (read i nearest to
    value i): ``[C, S, n]`` bool, bit for bit.

    The same ``|v|^2 - 2 r.v`` scores, with the product by :func:`_matmul_c` instead of a
    broadcast matmul, which copies the values once per C (about 1.4x faster at n = 2000),
    written into ``out`` ``[C, S, n, n]`` when given.
    """
    prod = _matmul_c(read2, values_t, out=out)
    d2 = torch.sub(sq, prod, out=prod)  # elementwise, so writing over the product is safe
    return d2.argmin(dim=-1) == torch.arange(read2.shape[-2])


def _pairwise_d2(v: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[S, n, n]`` between stored images (float64, diag 0).

    ``(|a|^2 + |b|^2 - 2 a.b)`` clamped at 0, each step written over the last block (the
    same values as fresh tensors, with one ``[S, n, n]`` float64 block alive instead of
    four).
    """
    v64 = v.double()
    sq = (v64 * v64).sum(-1)
    prod = v64 @ v64.transpose(-1, -2)
    d2 = torch.add(sq.unsqueeze(-1), sq.unsqueeze(-2))
    d2.sub_(prod.mul_(2.0)).clamp_min_(0)
    del prod
    d2.diagonal(dim1=-2, dim2=-1).zero_()  # (x * 0 for x >= 0: the old mask's +0)
    return d2


def _key_outcome(
    keymap: KeyMap,
    queries: torch.Tensor,
    items: torch.Tensor,
    d2: torch.Tensor,
    threshold: float,
    held: _WorkerBlocks,
) -> _Outcome:
    """Max separation over the dot scores of unit keys ``phi(q) . phi(x)``: queries ``[C, S,
    n, D]``, items ``[S, n, D]``, their distances ``d2 [S, n, n]``; fractions ``[C, S]``.

    One corruption's ``[1, S, n, n]`` scores at a time, in this thread's scratch block:
    the same per-corruption products as one ``[C, S, n, n]`` block (:func:`_matmul_c`),
    so the same bits, with a third of the memory and no fresh pages at every N (the block
    of the first score matrix of the scoring jobs, which never run at the same time on
    one thread).
    """
    with torch.no_grad():
        q_code, v_code = keymap(queries), keymap(items)
    v_code_t = v_code.transpose(-1, -2).contiguous()
    scratch = held.get
    got = []
    for c in range(q_code.shape[0]):
        shape = (1, *q_code.shape[1:-1], v_code.shape[-2])
        scores = _dot(q_code[c : c + 1], v_code, v_code_t, scratch("matrix_0", shape))
        got.append(_max_outcome(scores, d2, threshold))
    picks = [o.picks for o in got]
    return _Outcome(
        torch.cat([o.success for o in got]),
        torch.cat([o.identified for o in got]),
        torch.cat(picks) if all(p is not None for p in picks) else None,  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------------------- run

#: Largest number of (query, item) score pairs per seed and corruption in one progress tick:
#: Manhattan scores cost ~D element passes per pair, dot products one GEMM (whose rows run
#: at half speed in blocks of a dozen, so those blocks are larger).
_CHUNK_CELLS = 50_000
_CHUNK_CELLS_GEMM = 400_000
#: Manhattan terms (queries x items x D, all seeds and corruptions) from which the run uses
#: the compiled kernel: the default run has 7e9, the quick one 3e8.
_KERNEL_MIN_TERMS = 2_000_000_000


def _chunk_plan(
    ns: tuple[int, ...], cells: int = _CHUNK_CELLS
) -> list[list[tuple[int, int, int, int]]]:
    """For each memory size ``ns[i]``, the score-matrix rectangles ``(row0, row1, col0,
    col1)`` it adds to those of ``ns[i - 1]`` (new query rows against all items, old rows
    against the new items), cut into row chunks of at most ``cells`` pairs."""
    plan = []
    prev = 0
    for n in ns:
        rects = [(prev, n, 0, n)] + ([(0, prev, prev, n)] if prev else [])
        chunks = []
        for r0, r1, c0, c1 in rects:
            step = max(1, cells // (c1 - c0))
            chunks.extend((a, min(a + step, r1), c0, c1) for a in range(r0, r1, step))
        plan.append(chunks)
        prev = n
    return plan


#: One tick of the progress bar, one unit of work: ``(job, corruption, step, chunk)``, the
#: corruption index ``-1`` for work on every corruption at once and the step (the index
#: of N in ``n_stored``) ``-1`` for fitting a key map.
_Unit = tuple[str, int, int, int]


def _learner(config: Config, seed_offset: int) -> LearnedLinearKeys:
    return LearnedLinearKeys(
        _mixture(config),
        d_k=config.learned_dim,
        steps=config.learned_steps,
        lr=config.learned_lr,
        beta=config.learned_beta,
        shrinkage=config.whitening_shrinkage,
        seed=config.seed + seed_offset,
    )


def _score_methods(
    config: Config,
    V: torch.Tensor,
    Q: torch.Tensor,
    E: torch.Tensor | None,
    D2: torch.Tensor,
    progress: ProgressFactory,
) -> tuple[dict[str, list[_Outcome]], LearnedLinearKeys | None]:
    """Every method's outcome at every N (``{method: [_Outcome per N]}``, fractions
    ``[C, S]``) and the learned map whose losses are reported (the last one fitted).

    Stored items ``V`` ``[S, N_max, D]``, queries ``Q`` ``[C, S, N_max, D]``, experience set
    ``E`` ``[S, n_experience, D]`` (None: keys learned on the stored items), distances
    between stored items ``D2`` ``[S, N_max, N_max]``.

    The nested memories share one score matrix per method and corruption
    ``[S, N_max, N_max]``, filled block by block as N grows (the rows and columns the new
    items add), each block in row chunks of at most ``_CHUNK_CELLS_GEMM`` query-item pairs
    (``_CHUNK_CELLS`` for the torch Manhattan loop), so the total is the work of one full
    matrix; the outcomes at N are scored once its last chunk is in. Maps fitted on the N
    stored items (whitened keys, keys learned on them) are refitted and scored at every N.

    The work is cut into jobs that share nothing they write: per corruption, the
    key = value memories (dot and Euclidean scores share their products) and each fixed
    key map's memory; per N, each refitted map; and the fits of the fixed maps, which the
    jobs of that map wait for. Corruptions are independent row blocks of the same
    products, softmaxes and reductions, so splitting them changes no bit. The jobs run on
    a :class:`~kvmem.experiments.base.TaskPool` (every kernel on one thread, the numbers a
    serial run's, bit for bit); the progress bar ticks once per chunk, fit or refit.
    """
    ns = tuple(config.n_stored)
    n_max, n_c, n_s = ns[-1], Q.shape[0], Q.shape[1]
    thr = float(config.threshold)
    betas = {
        "dot": config.beta_dot,
        "euclidean": config.beta_euclidean,
        "manhattan": config.beta_manhattan,
    }
    # The compiled Manhattan kernel gives the torch loop's bits several times faster (so its
    # chunks are as large as the GEMMs'); below a few seconds of work, importing and
    # loading it would cost more than it saves.
    kernel = manhattan_kernel.available() and (
        n_c * n_s * n_max * n_max * Q.shape[-1] >= _KERNEL_MIN_TERMS
    )
    gemm_plan = _chunk_plan(ns, _CHUNK_CELLS_GEMM)
    manhattan_plan = gemm_plan if kernel else _chunk_plan(ns, _CHUNK_CELLS)
    fixed = ["kv_centered", "kv_expansion_kwta"] + (["kv_learned"] if E is not None else [])
    refit = ["kv_whitened"] + (["kv_learned"] if E is None else [])
    pairs: list[tuple[str, ...]] = [("dot", "euclidean"), ("manhattan",)]

    # what the jobs write, each cell by one job: outcomes [1, S] per method, corruption
    # and N; outcomes [C, S] per refitted method and N; the fitted maps' codes
    per_c: dict[str, list[list[_Outcome | None]]] = {
        m: [[None] * len(ns) for _ in range(n_c)]
        for m in [*AUTO_METHODS, *fixed]  # (auto methods: max and softmax of each pair)
    }
    whole: dict[str, list[_Outcome | None]] = {m: [None] * len(ns) for m in refit}
    codes: dict[str, Future] = {m: Future() for m in fixed}
    fits: dict[int, LearnedLinearKeys] = {}  # by step, -1: the fit on the experience set
    held = _WorkerBlocks(n_s * n_max * n_max)  # each worker's blocks, reused from job to job

    def fill_scores(
        plan: list[list[tuple[int, int, int, int]]],
        items_t: torch.Tensor,
        score: Any,
        label: str,
        c: int,
        on_step: Any,
    ) -> Iterator[_Unit]:
        """Fill score matrices chunk by chunk with ``score(r0, r1, c0, c1, items_t_block)
        -> {name: block [1, S, r1 - r0, c1 - c0]}``; after step i's last chunk, call
        ``on_step(i, {name: [1, S, N_max, N_max]})``."""
        full: dict[str, torch.Tensor] = {}
        scratch = held.get
        cols: tuple[int, int] | None = None
        block_t = items_t
        for i in range(len(ns)):
            for k, (r0, r1, c0, c1) in enumerate(plan[i]):
                if cols != (c0, c1):
                    # the transposed items' columns of this rectangle, copied once for all
                    # its chunks (the product needs them contiguous)
                    cols = (c0, c1)
                    block_t = scratch("items_t", (*items_t.shape[:-1], c1 - c0))
                    block_t.copy_(items_t[..., c0:c1])
                for name, block in score(r0, r1, c0, c1, block_t).items():
                    if name not in full:
                        full[name] = scratch(f"matrix_{len(full)}", (1, n_s, n_max, n_max))
                    full[name][..., r0:r1, c0:c1] = block
                if k == len(plan[i]) - 1:
                    on_step(i, full)
                yield (label, c, i, k)

    v_t = V.transpose(-1, -2).contiguous()  # [S, D, N_max], read by the key = value jobs

    def key_value_job(sims: tuple[str, ...], c: int) -> Iterator[_Unit]:
        q = Q[c : c + 1]
        norms: dict[tuple[int, int], torch.Tensor] = {}  # the items' |x|^2 by column range

        def score(r0: int, r1: int, c0: int, c1: int, vt: torch.Tensor) -> dict:
            items = V[:, c0:c1]
            x2 = None
            if "euclidean" in sims:
                if (c0, c1) not in norms:
                    norms.clear()  # (the chunks of one rectangle share its columns)
                    norms[c0, c1] = _squared_norms(items)
                x2 = norms[c0, c1]
            return _auto_blocks(
                sims, q[:, :, r0:r1], items, vt, kernel=kernel, x2=x2, scratch=held.get
            )

        def on_step(i: int, full: dict[str, torch.Tensor]) -> None:
            n = ns[i]
            for sim in sims:
                scores = full[sim][..., :n, :n]
                per_c[f"auto_{sim}"][c][i] = _max_outcome(scores, D2[:, :n, :n], thr)
                per_c[f"auto_{sim}_softmax"][c][i] = _soft_outcome(
                    scores, betas[sim], V[:, :n], thr, held.get
                )

        plan = manhattan_plan if sims == ("manhattan",) else gemm_plan
        yield from fill_scores(plan, v_t, score, "auto_" + "_".join(sims), c, on_step)

    def codes_job(method: str) -> Iterator[_Unit]:
        """Fit a fixed key map and compute every query's and item's key, once for the
        three corruption jobs of that map."""
        try:
            if method == "kv_centered":
                kmap: KeyMap = CenteredKeys("self").fit(V)
            elif method == "kv_expansion_kwta":
                kmap = ExpansionKWTAKeys(
                    config.expansion_units,
                    config.expansion_active,
                    center="self",
                    seed=config.seed,
                ).fit(V)
            else:
                assert E is not None
                kmap = fits[-1] = _learner(config, 0).fit(E)
            with torch.no_grad():
                q_code, v_code = kmap(Q), kmap(V)
            codes[method].set_result((q_code, v_code, v_code.transpose(-1, -2).contiguous()))
        except BaseException as err:  # the map's jobs must not wait for it forever
            codes[method].set_exception(err)
            raise
        yield (method, -1, -1, 0)

    def fixed_map_job(method: str, c: int) -> Iterator[_Unit]:
        q_code, v_code, v_code_t = codes[method].result()
        q = q_code[c : c + 1]

        def score(r0: int, r1: int, c0: int, c1: int, vt: torch.Tensor) -> dict:
            shape = (1, n_s, r1 - r0, c1 - c0)
            return {
                method: _dot(q[:, :, r0:r1], v_code[:, c0:c1], vt, held.get("block_dot", shape))
            }

        def on_step(i: int, full: dict[str, torch.Tensor]) -> None:
            n = ns[i]
            scores = full[method][..., :n, :n]
            per_c[method][c][i] = _max_outcome(scores, D2[:, :n, :n], thr)

        yield from fill_scores(gemm_plan, v_code_t, score, method, c, on_step)

    def refit_job(method: str, i: int) -> Iterator[_Unit]:
        """A map fitted on the N stored items: its own scores at this N (every corruption)."""
        n = ns[i]
        if method == "kv_whitened":
            kmap: KeyMap = WhitenedKeys("zca", shrinkage=config.whitening_shrinkage)
            kmap.fit(V[:, :n])
        else:
            kmap = fits[i] = _learner(config, i).fit(V[:, :n])
        whole[method][i] = _key_outcome(kmap, Q[:, :, :n], V[:, :n], D2[:, :n, :n], thr, held)
        yield (method, -1, i, 0)

    # Longest first, so the last job to finish is short; the fits before the jobs that
    # wait for them. With one worker the same jobs run in this order on the caller's thread.
    jobs: list[Iterator[_Unit]] = [codes_job(m) for m in reversed(fixed)]
    jobs += [key_value_job(sims, c) for sims in pairs for c in range(n_c)]
    refits = [(m, i) for i in reversed(range(len(ns))) for m in refit]
    jobs += [refit_job(m, i) for m, i in refits[: len(refit)]]
    jobs += [
        fixed_map_job(m, c)
        for m in ("kv_expansion_kwta", "kv_learned", "kv_centered")
        if m in fixed
        for c in range(n_c)
    ]
    jobs += [refit_job(m, i) for m, i in refits[len(refit) :]]
    total = len(fixed) + len(refits)
    total += n_c * sum(len(p) for p in gemm_plan) * (1 + len(fixed))
    total += n_c * sum(len(p) for p in manhattan_plan)
    with TaskPool() as pool, single_thread():
        for _ in progress(pool.drive(jobs, total), total=total, desc=NAME):
            pass

    outcomes: dict[str, list[_Outcome]] = {m: list(v) for m, v in whole.items()}  # type: ignore[misc]
    for m, rows in per_c.items():
        outcomes[m] = []
        for i in range(len(ns)):
            got = [rows[c][i] for c in range(n_c)]
            assert all(o is not None for o in got), (m, i)
            picks = [o.picks for o in got]  # type: ignore[union-attr]
            outcomes[m].append(
                _Outcome(
                    torch.cat([o.success for o in got]),  # type: ignore[union-attr]
                    torch.cat([o.identified for o in got]),  # type: ignore[union-attr]
                    torch.cat(picks) if all(p is not None for p in picks) else None,
                )
            )
    last_fit = fits[max(fits)] if fits else None
    return outcomes, last_fit


class _WorkerBlocks(threading.local):
    """Each worker thread's scratch blocks; :meth:`get` is a :data:`_Scratch`.

    One flat block per name, shaped by a view: one thread runs one job at a time, and each
    step of a job is done with its blocks before the next asks for them, so a worker's jobs
    reuse memory already touched instead of paying the page faults of fresh blocks (~0.1 s
    per 183 MB). Each block is allocated at least ``reserve`` elements large (the largest
    score matrix): untouched pages cost nothing, and the blocks need not grow, and fault
    again, as N does.
    """

    def __init__(self, reserve: int) -> None:  # (run once in each thread that uses it)
        self.reserve = reserve
        self.blocks: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        numel = math.prod(shape)
        block = self.blocks.get(name)
        if block is None or block.numel() < numel:
            self.blocks.pop(name, None)  # (freed before the larger one is allocated)
            block = self.blocks[name] = torch.empty(max(numel, self.reserve))
        return block[:numel].view(shape)


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Store N MNIST images, query each with a corrupted copy, score every method."""
    ns = tuple(config.n_stored)
    n_max = ns[-1]
    seeds = [config.seed + i for i in range(config.n_seeds)]
    images = _images()

    # --- stored items, experience set and queries, per seed ([S, ...]) ---------------------
    stored, experience, queries = [], [], []
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        perm = torch.randperm(_N_IMAGES, generator=gen)
        v = images[perm[:n_max]]
        stored.append(v)
        experience.append(images[perm[n_max : n_max + config.n_experience]])
        queries.append(torch.stack([_corrupt(v, c, config, gen) for c in CORRUPTIONS]))
    V = torch.stack(stored)  # [S, N_max, D]
    Q = torch.stack(queries, dim=1)  # [C, S, N_max, D]
    E = torch.stack(experience) if config.learned_fit == "experience" else None
    D2 = _pairwise_d2(V)
    thr = float(config.threshold)

    outcomes, last_fit = _score_methods(config, V, Q, E, D2, progress)
    learned_info: dict[str, Any] = {}
    if last_fit is not None:
        assert last_fit.loss_initial is not None and last_fit.loss_final is not None
        learned_info = {
            "loss_initial": float(last_fit.loss_initial.mean()),
            "loss_final": float(last_fit.loss_final.mean()),
            "loss_history": last_fit.loss_history,
        }

    # --- series -----------------------------------------------------------------------------
    series: dict[str, Any] = {"n_stored": list(ns)}
    per_seed: dict[str, torch.Tensor] = {}  # success per seed at the largest N, [S] (%)
    for ci, c in enumerate(CORRUPTIONS):
        for m in METHODS:
            succ = torch.stack([o.success[ci] for o in outcomes[m]])  # [len(ns), S]
            ident = torch.stack([o.identified[ci] for o in outcomes[m]])
            series[f"success_{c}_{m}"] = _pct(succ.mean(-1))
            series[f"success_{c}_{m}_ci"] = _pct_ci(succ)
            series[f"std_{c}_{m}"] = _pct(succ.std(-1, unbiased=False))
            series[f"identified_{c}_{m}"] = _pct(ident.mean(-1))
            series[f"identified_{c}_{m}_ci"] = _pct_ci(ident)
            per_seed[f"{c}_{m}"] = 100.0 * succ[-1]
    base = []
    for n in ns:
        mean_img = V[:, :n].mean(-2, keepdim=True)
        base.append(squared_error_success(mean_img, V[:, :n], thr).double().mean(-1))  # [S]
    series["baseline_mean_image"] = _pct(torch.stack(base).mean(-1))
    series["baseline_mean_image_ci"] = _pct_ci(torch.stack(base))
    if learned_info:
        series["learned_loss"] = [round(v, 6) for v in learned_info["loss_history"]]

    # --- metrics ------------------------------------------------------------------------------
    # intervals: Student-t 95 % over the n_seeds seeds (each a fresh draw of stored images,
    # noise and dropout); gaps are paired (the same seed's images for both methods)
    metrics: dict[str, Any] = {}
    tag = f"n{n_max}"
    for c in CORRUPTIONS:
        for m in METHODS:
            metrics[f"success_{c}_{m}_{tag}"] = series[f"success_{c}_{m}"][-1]
            metrics[f"success_{c}_{m}_{tag}_ci"] = series[f"success_{c}_{m}_ci"][-1]
    for c in CORRUPTIONS:
        best = _best(series, c, METHODS)
        best_auto = _best(series, c, tuple(m for m in AUTO_METHODS if "softmax" not in m))
        best_kv = _best(series, c, KV_METHODS)
        metrics[f"best_method_{c}"] = best
        metrics[f"best_success_{c}"] = series[f"success_{c}_{best}"][-1]
        metrics[f"best_success_{c}_ci"] = series[f"success_{c}_{best}_ci"][-1]
        metrics[f"best_auto_max_{c}"] = best_auto
        metrics[f"best_kv_{c}"] = best_kv
        metrics[f"kv_minus_auto_{c}_{tag}"] = round(
            series[f"success_{c}_{best_kv}"][-1] - series[f"success_{c}_{best_auto}"][-1], 4
        )
        gap = per_seed[f"{c}_{best_kv}"] - per_seed[f"{c}_{best_auto}"]
        metrics[f"kv_minus_auto_{c}_{tag}_ci"] = [round(v, 4) for v in mean_ci(gap)[1]]
    metrics[f"baseline_mean_image_{tag}"] = series["baseline_mean_image"][-1]
    metrics[f"baseline_mean_image_{tag}_ci"] = series["baseline_mean_image_ci"][-1]
    if learned_info:
        metrics["learned_loss_initial"] = round(learned_info["loss_initial"], 6)
        metrics["learned_loss_final"] = round(learned_info["loss_final"], 6)

    # --- example retrievals (seed 0, N_max) ------------------------------------------------------
    # the first query the best key = value memory (max) fails and the best kv memory
    # retrieves; else the first where they pick different images; else query 0
    ex_images, ex_methods, ex_index, ex_errors = [], [], [], []
    for ci, c in enumerate(CORRUPTIONS):
        a, k = metrics[f"best_auto_max_{c}"], metrics[f"best_kv_{c}"]
        pa = outcomes[a][-1].picks
        pk = outcomes[k][-1].picks
        assert pa is not None and pk is not None
        ia, ik = pa[ci, 0], pk[ci, 0]
        tgt = torch.arange(n_max)
        ok_a = D2[0, tgt, ia] < thr
        ok_k = D2[0, tgt, ik] < thr
        cand = torch.nonzero(~ok_a & ok_k).flatten()
        if cand.numel() == 0:
            cand = torch.nonzero(ia != ik).flatten()
        j = int(cand[0]) if cand.numel() else 0
        imgs = [V[0, j], Q[ci, 0, j], V[0, int(ia[j])], V[0, int(ik[j])]]
        ex_images.append([[round(float(p), 3) for p in im] for im in imgs])
        ex_methods.append([a, k])
        ex_index.append(j)
        ex_errors.append([round(float(D2[0, j, ia[j]]), 2), round(float(D2[0, j, ik[j]]), 2)])
    series["example_images"] = ex_images
    series["example_errors"] = ex_errors
    series["example_methods"] = ex_methods
    series["example_query_index"] = ex_index

    return Result(experiment=NAME, config=asdict(config), metrics=metrics, series=series)


def _pct(t: torch.Tensor) -> list[float]:
    return [round(100.0 * float(v), 4) for v in t]


def _pct_ci(t: torch.Tensor) -> list[list[float]]:
    """95 % interval over seeds of fractions ``[points, S]``, in %: ``[points][2]``."""
    _, ci = mean_ci(100.0 * t.double(), dim=-1)
    return [[round(lo, 4), round(hi, 4)] for lo, hi in ci]


def _best(series: dict[str, Any], corruption: str, methods: tuple[str, ...]) -> str:
    """The method with the highest success at the largest N; ties -> identified, then order."""
    return max(
        methods,
        key=lambda m: (
            series[f"success_{corruption}_{m}"][-1],
            series[f"identified_{corruption}_{m}"][-1],
            -methods.index(m),
        ),
    )


# ----------------------------------------------------------------------------- plot

_STYLE: dict[str, tuple[str, str]] = {
    "auto_dot": ("tab:blue", "--"),
    "auto_euclidean": ("tab:orange", "--"),
    "auto_manhattan": ("tab:green", "--"),
    "auto_dot_softmax": ("tab:blue", ":"),
    "auto_euclidean_softmax": ("tab:orange", ":"),
    "auto_manhattan_softmax": ("tab:green", ":"),
    "kv_centered": ("tab:red", "-"),
    "kv_whitened": ("tab:purple", "-"),
    "kv_expansion_kwta": ("tab:brown", "-"),
    "kv_learned": ("black", "-"),
}
#: Readable legend labels (the raw method names stay in result.json).
LABELS: dict[str, str] = {
    "auto_dot": "key = value, dot, max",
    "auto_euclidean": "key = value, Euclidean, max",
    "auto_manhattan": "key = value, Manhattan, max",
    "auto_dot_softmax": "key = value, dot, softmax",
    "auto_euclidean_softmax": "key = value, Euclidean, softmax",
    "auto_manhattan_softmax": "key = value, Manhattan, softmax",
    "kv_centered": "separate key: centred image",
    "kv_whitened": "separate key: whitened (ZCA)",
    "kv_expansion_kwta": "separate key: expansion + kWTA",
    "kv_learned": "separate key: learned projection",
}
_CORRUPTION_LABEL = {
    "noise": "Gaussian noise",
    "mask": "bottom half masked",
    "dropout": "pixels dropped",
}


def plot(result: Result) -> Figure:
    """Success (top) and strict identification (middle) vs N, one column per corruption
    (key = value dashed for max, dotted for softmax; separate keys solid; grey: the mean
    stored image as a read; bands: 95 % intervals over seeds), the legend in its own panel
    at the right; bottom: example retrievals at the largest N (original, cue, best
    key = value read with max, best kv read, with their squared errors)."""
    s, m, cfg = result.series, result.metrics, result.config
    ns = np.asarray(s["n_stored"], dtype=float)
    n_max = int(ns[-1])
    fig = Figure(figsize=(19, 10.5), layout="constrained")
    handles: list[Any] = []
    names: list[str] = []
    # 12 columns for the plots (4 per corruption, one image each in the bottom row) and a
    # wide 13th for the legend, so it sits beside the curves at a readable size
    gs = fig.add_gridspec(3, 13, height_ratios=[1.0, 1.0, 0.55], width_ratios=[1] * 12 + [3.6])
    methods = [x for x in METHODS if f"success_noise_{x}" in s]
    details = {
        "noise": f"sigma = {cfg.get('noise_sigma')}",
        "mask": "bottom 14 rows = 0",
        "dropout": f"p = {cfg.get('dropout_fraction')}",
    }
    for ci, c in enumerate(CORRUPTIONS):
        for row, key, ylabel in (
            (0, "success", "success (%), error < threshold"),
            (1, "identified", "identified (%), strict"),
        ):
            ax = fig.add_subplot(gs[row, 4 * ci : 4 * ci + 4])
            for meth in methods:
                col, ls = _STYLE[meth]
                ax.plot(
                    ns,
                    s[f"{key}_{c}_{meth}"],
                    ls=ls,
                    color=col,
                    marker="o",
                    ms=3,
                    lw=1.8 if meth.startswith("kv_") else 1.3,
                    label=LABELS.get(meth, meth),
                )
                band = s.get(f"{key}_{c}_{meth}_ci")
                if band:
                    ax.fill_between(
                        ns, [p[0] for p in band], [p[1] for p in band], color=col, alpha=0.12, lw=0
                    )
            if row == 0 and "baseline_mean_image" in s:
                ax.plot(
                    ns,
                    s["baseline_mean_image"],
                    ls=(0, (1, 3)),
                    color="0.5",
                    lw=1.2,
                    label="mean stored image as the read",
                )
            ax.set_xscale("log")
            ax.set_ylim(-3, 103)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(
                    f"{_CORRUPTION_LABEL[c]} ({details[c]})\n"
                    f"best at N={n_max}: {LABELS.get(m.get(f'best_method_{c}'), '?')} "
                    f"({m.get(f'best_success_{c}', float('nan')):.1f} %)",
                    fontsize=9,
                )
            ax.set_xlabel("images stored N")
            if ci == 0:
                ax.set_ylabel(ylabel)
            if row == 0 and ci == 0:
                handles, names = ax.get_legend_handles_labels()
    ax_leg = fig.add_subplot(gs[0:2, 12])
    ax_leg.axis("off")
    ax_leg.legend(
        handles,
        names,
        loc="center left",
        fontsize=10,
        title=f"method (bands: 95 % interval,\n{cfg.get('n_seeds')} seeds)",
        title_fontsize=10,
        frameon=False,
        handlelength=3.0,
    )
    labels = ["original", "cue", "auto", "kv"]
    for ci in range(len(CORRUPTIONS)):
        imgs = s["example_images"][ci]
        a, k = s["example_methods"][ci]
        errs = s.get("example_errors", [[None, None]] * len(CORRUPTIONS))[ci]
        for p in range(4):
            ax = fig.add_subplot(gs[2, 4 * ci + p])
            ax.imshow(
                np.asarray(imgs[p], dtype=float).reshape(_SIDE, _SIDE),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            title = labels[p]
            if p >= 2:
                err = errs[p - 2]
                title += f"\n{a if p == 2 else k}"
                if err is not None:
                    title += f"\nerror {err:.0f}"
            ax.set_title(title, fontsize=7)
    verdicts = []
    for c in CORRUPTIONS:
        gap = float(m.get(f"kv_minus_auto_{c}_n{n_max}", float("nan")))
        who = "separate keys win" if gap > 1 else "key = value wins" if gap < -1 else "tie"
        verdicts.append(
            f"{c}: {who} ({m.get(f'best_kv_{c}')} vs {m.get(f'best_auto_max_{c}')}, "
            f"{gap:+.1f} points)"
        )
    fig.suptitle(
        f"Keys vs values on MNIST, N = {n_max}, success = squared error < "
        f"{cfg.get('threshold')}, mean of {cfg.get('n_seeds')} seeds. Best separate key minus "
        f"best key = value (max):\n" + ";  ".join(verdicts),
        fontsize=10,
    )
    return fig


def _gap(result: Result, corruption: str) -> float:
    """Best separate-key success minus best key = value success at the largest N."""
    prefix = f"kv_minus_auto_{corruption}_"
    return next(v for k, v in result.metrics.items() if k.startswith(prefix))


#: What the numbers show (docs/science.md 4 item 4), checked on every run.
#: The metric the report's summary shows first.
HEADLINE = "kv_minus_auto_mask_n1000"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "masked cues: a separate key representation beats every key = value memory "
        "(by >= 10 points at the largest N)",
        lambda r: _gap(r, "mask") >= 10,
    ),
    Claim(
        "dropped pixels: a separate key representation beats every key = value memory",
        lambda r: _gap(r, "dropout") > 0,
    ),
    Claim(
        "Gaussian noise: key = value with Euclidean distance is as good as any separate key "
        "(within 2 points): separation helps on incomplete cues, not on noisy ones",
        lambda r: _gap(r, "noise") <= 2,
    ),
)
