"""What fades is access, not content: retrieval probability versus precision (docs/science.md 4.8).

**The phenomenon.** Berens, Richards & Horner (2020, *Nature Human Behaviour* 4: 866-877, a
registered report) had people learn word-location associations (each word paired with a
location on a circle) and tested them across four days by continuous report: place the
word's location on the circle. Fitting the standard mixture model to the angular errors
(a fraction ``p_T`` of responses from a von Mises distribution centred on the true location,
concentration ``kappa``; the rest uniform guesses; Zhang & Luck 2008) they found, in their
abstract's words, that "forgetting involves losses in memory accessibility with no changes
in memory precision": ``p_T`` falls with delay while ``kappa`` stays flat. The published
numbers were **not transcribed** in this build (their figure values are not in this
repository): the figure draws the published *pattern* (precision ratio 1 across delays, from
the abstract), and the claims are the qualitative dissociation. Replace with values read
from their Fig. 2, or fitted to their data (the paper states that the anonymised data and
the MATLAB analysis scripts are on OSF, http://osf.io/8mzyc/; this project's build machines
cannot reach it), when available.

**Protocol (per simulated subject).** ``len(delays) * items_per_delay`` word-location pairs
are studied in one session (day 0, one context); each pair is tested once, after its delay
(``delays`` in days; different pairs at different delays, so testing never re-studies a
tested pair). On each day between study and test, ``interfering_per_day`` new word-location
pairs are learned in that day's context (everyday interference). Words are random unit
vectors (``d_word``), locations uniform on the circle. The location actually stored is the
true one plus encoding noise (wrapped normal, sd ``encoding_sd``): the precision set at
encoding.

**Models, on the same pairs, interference and cue noise:**

- ``kv`` (key-value slot memory, ``kvmem.SlotMemory``): key = word bound to the study
  context, ``k = [w, c_day] / sqrt(2)`` (docs/science.md 1.7: context as part of the key), value =
  the stored location as ``(cos theta, sin theta)``. The context drifts from day to day
  (``c_{t+1} = normalise(rho_day c_t + sqrt(1 - rho_day^2) e_t)``); the test cue is the word in
  the *test day's* context plus Gaussian noise (sd ``cue_noise`` per unit). Retrieval is a
  winner-take-all read (``hard_max`` separation) over the scores ``q K^T`` of every pair
  stored by the test day: as the context drifts the right key's match falls toward that of
  the interfering pairs learned since, so the wrong pair increasingly wins (its location is
  unrelated to the target: a "guess" to the mixture model). When the right pair wins, its
  value comes back *unchanged*, so precision cannot fall: time acts on the keys only.
- ``value_decay`` (the contrast: forgetting as degradation of the stored content): the
  same memory, pairs, interference and cue noise, but the key's context does not drift
  (``rho = 1``: access is stable) and each stored location diffuses with time,
  ``theta(t) = theta_0 + sqrt(value_diffusion * t) z`` (a random walk on the circle: the
  trace gets noisier).

Every subject's errors at each delay are fitted with the mixture model by batched EM
(``kvmem.behavior.precision_tasks.fit_mixture_em``); series are the mean over subjects with a
Student-t 95 % interval (for kappa, whose estimates are right-skewed, the geometric mean:
the mean and interval of ``log kappa``, exponentiated). The pooled fit over subjects with
the Nelder-Mead fit of ``kvmem.behavior.retrieval_tasks.fit_mixture_model`` is reported
beside it (``*_pooled_*``). ``true_access_M`` is the fraction of tests in which the right
pair won (the quantity ``p_retrieved`` estimates). ``stored_retrievable_kv``: of the pairs
the natural cue failed to retrieve at the longest delay, the percentage that a perfect cue
(the stored key itself, with the same cue noise) retrieves: the content is still stored.

**Free parameters, fixed once** (set a priori, not fitted to data): ``d_word = d_context =
32``, ``rho_day = 0.85``, ``interfering_per_day = 40``, ``cue_noise = 0.15`` (chosen from a
few settings tried so that immediate retrieval is high, about 0.9, and falls substantially over
three days), ``encoding_sd = 0.3`` rad (kappa about 11) and ``value_diffusion = 0.1`` rad^2
per day for the contrast (so its noise at three days equals about three times the encoding
variance). Which model shows the human dissociation is a prediction of where time acts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from matplotlib.figure import Figure

from kvmem.behavior.paired_associates import drifting_context, unit_vectors
from kvmem.behavior.precision_tasks import (
    angle_to_vector,
    fit_mixture_em,
    vector_to_angle,
    wrapped_normal,
)
from kvmem.behavior.retrieval_tasks import fit_mixture_model, wrap_angle
from kvmem.core.separation import hard_max
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
    "NAME",
    "DESCRIPTION",
    "Config",
    "MODELS",
    "PUBLISHED",
    "CLAIMS",
    "quick",
    "estimate_bytes",
    "run",
    "plot",
]

NAME = "accessibility-precision"
DESCRIPTION = (
    "Accessibility falls, precision stays (Berens, Richards & Horner 2020): drifting keys "
    "lose access to intact values; a decaying-value memory loses precision instead"
)

MODELS = ("kv", "value_decay")
#: The published pattern, from the abstract of Berens et al. 2020: precision did not change
#: with delay (ratio of kappa at each delay to the first test = 1). The per-delay p_T and
#: kappa values of their Fig. 2 were not transcribed in this build.
PUBLISHED_PRECISION_RATIO = 1.0


@dataclass(frozen=True)
class Config:
    """Word-location pairs tested after ``delays`` days (Berens et al. 2020 design).

    ``n_subjects`` simulated subjects each study ``len(delays) * items_per_delay`` pairs
    (``items_per_delay`` tested at each delay) and ``interfering_per_day`` new pairs per
    day. ``d_word`` / ``d_context``: dimensions of words and context; ``rho_day``: context
    cosine between successive days (kv keys); ``cue_noise``: sd of the cue noise per unit;
    ``encoding_sd``: sd (radians) of the encoding error of the stored location;
    ``value_diffusion``: variance (rad^2) added per day to the stored locations of the
    ``value_decay`` model; ``em_iterations``: EM steps of the per-subject mixture fits.
    """

    seed: int = 0
    n_subjects: int = 40
    items_per_delay: int = 40
    delays: tuple[int, ...] = (0, 1, 2, 3)
    interfering_per_day: int = 40
    d_word: int = 32
    d_context: int = 32
    rho_day: float = 0.85
    cue_noise: float = 0.15
    encoding_sd: float = 0.3
    value_diffusion: float = 0.1
    em_iterations: int = 400

    def __post_init__(self) -> None:
        for name in ("n_subjects", "items_per_delay", "d_word", "d_context", "em_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.interfering_per_day < 0:
            raise ValueError(
                f"interfering_per_day: expected an integer >= 0, got {self.interfering_per_day}"
            )
        d = self.delays
        if len(d) < 2 or d[0] < 0 or list(d) != sorted(set(d)):
            raise ValueError(
                f"delays: expected at least two strictly increasing integers >= 0, got {d}"
            )
        if not 0.0 <= self.rho_day <= 1.0:
            raise ValueError(f"rho_day: expected a value in [0, 1], got {self.rho_day}")
        for name in ("cue_noise", "encoding_sd", "value_diffusion"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {v}")


def estimate_bytes(config: Config) -> dict[str, int]:
    """Peak memory of a run (float64), keyed by the size field grown most over the default.

    Per subject, with ``P = len(delays) items_per_delay`` studied and ``J = max(delays)
    interfering_per_day`` interfering pairs: a read's scores, mask and weights
    ``[P, P + J]``, the words, keys, cues and cue noise ``[P + J, d_word + d_context]``,
    and the mixture fits' per-pair terms. ``check_memory`` refuses a config over this
    machine's memory.
    """
    c, d = config, Config()
    p = len(c.delays) * c.items_per_delay
    slots = p + max(c.delays) * c.interfering_per_day
    per_subject = 5 * p * slots + 8 * slots * (c.d_word + c.d_context) + 20 * p
    grown = {
        "n_subjects": c.n_subjects / d.n_subjects,
        "items_per_delay": (c.items_per_delay / d.items_per_delay) ** 2,
        "delays": len(c.delays) * max(c.delays) / (len(d.delays) * max(d.delays)),
        "interfering_per_day": c.interfering_per_day / d.interfering_per_day,
        "d_word": c.d_word / d.d_word,
        "d_context": c.d_context / d.d_context,
    }
    return charge_to_most_grown(grown, 8 * c.n_subjects * per_subject)


def quick(config: Config) -> Config:
    """8 subjects, 20 pairs per delay, delays 0 and 3 days."""
    return replace(config, n_subjects=8, items_per_delay=20, delays=(0, 3), em_iterations=200)


# ----------------------------------------------------------------------------- simulation


class _Task:
    """One cohort's pairs: words ``[S, P, d_w]``, locations ``[S, P]``, contexts, test days.

    ``P = len(delays) * items_per_delay`` studied pairs followed by ``max(delays) *
    interfering_per_day`` interfering pairs (day ``1..max(delays)``); ``slot_day [P + J]``
    is the day each pair was learned, ``test_day [P]`` the day each studied pair is tested.
    """

    def __init__(self, c: Config, gen: torch.Generator) -> None:
        s, n_days = c.n_subjects, max(c.delays)
        self.n_study = len(c.delays) * c.items_per_delay
        n_int = n_days * c.interfering_per_day
        self.words = unit_vectors((s, self.n_study + n_int), c.d_word, gen)
        u = torch.rand(s, self.n_study + n_int, generator=gen, dtype=torch.float64)
        self.true_angle = (2 * u - 1) * math.pi
        self.encoded = wrapped_normal(self.true_angle, c.encoding_sd, gen)
        self.slot_day = torch.cat(
            [
                torch.zeros(self.n_study, dtype=torch.long),
                torch.arange(1, n_days + 1).repeat_interleave(c.interfering_per_day),
            ]
        )
        self.test_day = torch.tensor(c.delays).repeat_interleave(c.items_per_delay)
        shape = (s, self.n_study, c.d_word + c.d_context)
        self.cue_noise = c.cue_noise * torch.randn(shape, generator=gen, dtype=torch.float64)
        self.diffusion_z = torch.randn(s, self.n_study, generator=gen, dtype=torch.float64)
        # the kv model's drifting day contexts and the stable context of value_decay
        self.context = drifting_context((s,), n_days + 1, c.d_context, c.rho_day, gen)
        self.stable = self.context[:, :1].expand(-1, n_days + 1, -1)


def _respond(
    task: _Task, context: torch.Tensor, values: torch.Tensor, cue_context: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Winner-take-all reads of every test: response angles ``[S, P]`` and hits ``[S, P]``.

    ``context [S, days + 1, d_c]`` (each pair's key binds its learning day's context),
    ``values [S, P + J, 2]`` (stored locations), ``cue_context [S, P, d_c]`` (context of
    each test cue). Each test sees only the pairs learned by its test day.
    """
    s = context.shape[0]
    subj = torch.arange(s)[:, None]
    keys = torch.cat([task.words, context[subj, task.slot_day[None, :]]], -1) / math.sqrt(2.0)
    mem = SlotMemory("dot", "identity")  # scores only; masked winner-take-all below
    mem.write(keys, values)
    cues = torch.cat([task.words[:, : task.n_study], cue_context], -1) / math.sqrt(2.0)
    scores = mem.scores(cues + task.cue_noise)  # [S, P, P + J]
    visible = task.slot_day[None, None, :] <= task.test_day[None, :, None]
    weights = hard_max(scores.masked_fill(~visible, -math.inf))
    read = weights @ mem.values  # [S, P, 2]
    hit = weights.argmax(-1) == torch.arange(task.n_study)[None, :]
    return vector_to_angle(read), hit


def _simulate(model: str, task: _Task, c: Config) -> dict[str, torch.Tensor]:
    """Errors ``[S, P]`` (response minus true location) and hits for one model."""
    s = task.words.shape[0]
    subj = torch.arange(s)[:, None]
    if model == "kv":
        context = task.context
        stored = task.encoded
    else:  # value_decay: stable keys, stored location random-walks for test_day days
        context = task.stable
        sd = torch.sqrt(c.value_diffusion * task.test_day.double())[None, :]
        drift = torch.zeros_like(task.encoded)
        drift[:, : task.n_study] = sd * task.diffusion_z
        stored = wrap_angle(task.encoded + drift)
    cue_context = context[subj, task.test_day[None, :]]
    angle, hit = _respond(task, context, angle_to_vector(stored), cue_context)
    errors = wrap_angle(angle - task.true_angle[:, : task.n_study])
    return {"errors": errors, "hit": hit}


def _stored_retrievable(task: _Task, hit: torch.Tensor, c: Config) -> float:
    """% of the longest-delay pairs kv failed on that the stored key itself retrieves."""
    s = task.words.shape[0]
    subj = torch.arange(s)[:, None]
    # a perfect cue: the study context reinstated (the stored key), same cue noise
    study_context = task.context[subj, torch.zeros_like(task.test_day)[None, :]]
    _, hit_perfect = _respond(task, task.context, angle_to_vector(task.encoded), study_context)
    last = task.test_day == max(c.delays)
    failed = ~hit[:, last]
    if not bool(failed.any()):
        return math.nan
    return 100.0 * float(hit_perfect[:, last][failed].double().mean())


def run(config: Config, progress: ProgressFactory = null_progress) -> Result:
    """Simulate both models on the same pairs; mixture-model fits per delay with 95 % CIs."""
    with single_thread():
        return _run(config, progress)


def _run(config: Config, progress: ProgressFactory) -> Result:
    c = config
    task = _Task(c, torch.Generator().manual_seed(c.seed))
    n_d, n_i = len(c.delays), c.items_per_delay
    series: dict[str, list] = {"delay": [int(d) for d in c.delays]}
    metrics: dict[str, float] = {"n_subjects": float(c.n_subjects)}
    outs = {m: _simulate(m, task, c) for m in progress(MODELS, total=len(MODELS), desc="models")}
    # errors [M, S, D, I]: test order is delay-major (test_day repeat_interleave)
    errors = torch.stack([outs[m]["errors"].reshape(-1, n_d, n_i) for m in MODELS])
    p_fit, k_fit = fit_mixture_em(errors, n_iter=c.em_iterations)  # [M, S, D] each
    for j, m in enumerate(MODELS):
        p, k = p_fit[j], k_fit[j]
        series[f"p_retrieved_{m}"], series[f"p_retrieved_{m}_ci"] = mean_ci(p)
        # kappa estimates are right-skewed (a subject with few retrieved pairs can give a
        # large one): average log kappa, i.e. the geometric mean over subjects
        log_k, log_k_ci = mean_ci(torch.log(k))
        series[f"precision_{m}"] = [math.exp(v) for v in log_k]
        series[f"precision_{m}_ci"] = [[math.exp(lo), math.exp(hi)] for lo, hi in log_k_ci]
        access = outs[m]["hit"].reshape(-1, n_d, n_i).double().mean(-1)
        series[f"true_access_{m}"], series[f"true_access_{m}_ci"] = mean_ci(access)
        pooled = [fit_mixture_model(errors[j, :, d].reshape(-1)) for d in range(n_d)]
        series[f"p_retrieved_pooled_{m}"] = [pp for pp, _ in pooled]
        series[f"precision_pooled_{m}"] = [kk for _, kk in pooled]
        drop = p[:, 0] - p[:, -1]  # per subject, first minus last delay
        metrics[f"p_retrieved_drop_{m}"], metrics[f"p_retrieved_drop_{m}_ci"] = mean_ci(drop)
        log_ratio = torch.log(k[:, -1] / k[:, 0])  # geometric mean ratio over subjects
        lr_mean, lr_ci = mean_ci(log_ratio)
        metrics[f"precision_ratio_{m}"] = math.exp(lr_mean)
        metrics[f"precision_ratio_{m}_ci"] = [math.exp(v) for v in lr_ci]
    metrics["stored_retrievable_kv"] = _stored_retrievable(task, outs["kv"]["hit"], c)
    return Result(experiment=NAME, config=asdict(c), metrics=metrics, series=series)


# ----------------------------------------------------------------------------- figure

_COLORS = {"kv": "tab:blue", "value_decay": "tab:orange"}
_LABELS = {
    "kv": "kv: drifting keys, intact values",
    "value_decay": "value_decay: stable keys, diffusing values",
}


def _band(ax, x, s, key, color) -> None:
    lo = [p[0] for p in s[f"{key}_ci"]]
    hi = [p[1] for p in s[f"{key}_ci"]]
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)


def plot(result: Result) -> Figure:
    """(A) retrieval probability and (B) precision against delay, with 95 % bands;
    (C) both relative to the first test, beside the published pattern."""
    s = result.series
    x = s["delay"]
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3)
    for m in MODELS:
        col = _COLORS[m]
        ax_a.plot(x, s[f"p_retrieved_{m}"], "-o", color=col, ms=4, label=_LABELS[m])
        _band(ax_a, x, s, f"p_retrieved_{m}", col)
        ax_a.plot(x, s[f"true_access_{m}"], ":", color=col, lw=1)
        ax_b.plot(x, s[f"precision_{m}"], "-o", color=col, ms=4, label=_LABELS[m])
        _band(ax_b, x, s, f"precision_{m}", col)
        p0, k0 = s[f"p_retrieved_{m}"][0], s[f"precision_{m}"][0]
        ax_c.plot(x, [v / p0 for v in s[f"p_retrieved_{m}"]], "-o", color=col, ms=4,
                  label=f"{m}: p_retrieved")  # fmt: skip
        ax_c.plot(x, [v / k0 for v in s[f"precision_{m}"]], "--s", color=col, ms=4,
                  label=f"{m}: precision (kappa)")  # fmt: skip
    ax_c.axhline(
        PUBLISHED_PRECISION_RATIO,
        color="k",
        lw=2.5,
        alpha=0.6,
        label="humans: precision unchanged\n(Berens et al. 2020, abstract)",
    )
    ax_c.annotate(
        "humans: p_T falls over days\n(Berens et al. 2020; values\nnot transcribed here)",
        xy=(x[-1], 1.22),
        fontsize=7,
        ha="right",
    )
    ax_a.set_ylabel("p_retrieved (mixture fit; dotted: true)")
    ax_a.set_ylim(0, 1.02)
    ax_b.set_ylabel("precision: von Mises kappa")
    ax_b.set_ylim(bottom=0)
    ax_c.set_ylabel("relative to the first test")
    ax_c.set_ylim(0, 1.5)
    ax_a.set_title("A  accessibility", loc="left", fontsize=10)
    ax_b.set_title("B  precision of what is retrieved", loc="left", fontsize=10)
    ax_c.set_title("C  which fades? models vs humans", loc="left", fontsize=10)
    for ax in (ax_a, ax_b, ax_c):
        ax.set_xlabel("delay (days)")
        ax.grid(alpha=0.3)
    ax_a.legend(fontsize=7, loc="lower left")
    ax_c.legend(fontsize=6, loc="lower left")
    return fig


PUBLISHED: dict[str, tuple[float, str, float]] = {
    "precision_ratio_kv": (
        PUBLISHED_PRECISION_RATIO,
        "Berens, Richards & Horner 2020 (abstract): no change in memory precision over four "
        "days; 1 = unchanged (their per-delay kappa values not transcribed)",
        0.3,
    ),
}


def _enough(r: Result) -> bool:
    if r.metrics["n_subjects"] < 20:
        raise KeyError("n_subjects")  # too few subjects for the claims (a --quick run)
    return True


#: Claims of docs/science.md 4.8, checked on every run (not applicable with < 20 subjects).
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "kv: retrieval probability falls with delay (drop >= 0.2, 95 % interval above 0)",
        lambda r: (
            _enough(r)
            and r.metrics["p_retrieved_drop_kv"] >= 0.2
            and r.metrics["p_retrieved_drop_kv_ci"][0] > 0
        ),
    ),
    Claim(
        "kv: precision of what is retrieved stays flat (kappa ratio last/first in 0.75-1.33)",
        lambda r: _enough(r) and 0.75 <= r.metrics["precision_ratio_kv"] <= 1.33,
    ),
    Claim(
        "value_decay: precision falls instead (kappa ratio < 0.6, interval below 1)",
        lambda r: (
            _enough(r)
            and r.metrics["precision_ratio_value_decay"] < 0.6
            and r.metrics["precision_ratio_value_decay_ci"][1] < 1.0
        ),
    ),
    Claim(
        "value_decay: retrieval probability does not fall like kv's (drop < 0.1, "
        "and less than half of kv's drop)",
        lambda r: (
            _enough(r)
            and r.metrics["p_retrieved_drop_value_decay"] < 0.1
            and r.metrics["p_retrieved_drop_value_decay"] < 0.5 * r.metrics["p_retrieved_drop_kv"]
        ),
    ),
    Claim(
        "kv: pairs the natural cue fails to retrieve are still stored "
        "(a perfect cue retrieves >= 80 % of them)",
        lambda r: r.metrics["stored_retrievable_kv"] >= 80.0,
    ),
    Claim(
        "the mixture fit's p_retrieved tracks the true fraction of correct retrievals "
        "(within 0.1 at every delay, both models)",
        lambda r: all(
            abs(a - b) <= 0.1
            for m in MODELS
            for a, b in zip(r.series[f"p_retrieved_{m}"], r.series[f"true_access_{m}"], strict=True)
        ),
    ),
)
